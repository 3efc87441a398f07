"""The manager pattern: a manager agent delegates tasks to specialists it sees as tools."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any, NotRequired, cast

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.runnables.config import merge_configs
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.errors import GraphBubbleUp
from langgraph.pregel import Pregel
from langgraph.types import Send
from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

from podium.agents import Agent, Budget
from podium.agents._budget import (
    Usage,
    UsageChannel,
    UsageSink,
    budget_binding,
    collect_usage,
    grant_config,
    usage_of,
)
from podium.agents._context import ContextCache
from podium.agents._escalate import Escalation
from podium.agents._loop import (
    TOOLS_NODE,
    LoopNode,
    build_agent_loop,
    check_alternate,
    steps_this_turn,
)
from podium.checkpoints._messages import Messages
from podium.errors import ConfigurationError, MaxRoundsExceededError
from podium.graphs._members import (
    Inventory,
    Member,
    all_tool_names,
    check_members,
    check_rule_names,
    describe,
    enter,
    inventory_of,
    member_description,
    member_runnable,
    member_scope,
    run_config,
)
from podium.graphs._routing import (
    check_graph_options,
    check_loop_agent,
    check_positive,
    final_text,
)
from podium.observe import emit
from podium.tools import GovernedExecutor, GovernedGraph, Policy, ToolTraits
from podium.tools._executor import ToolRequest

__all__ = ["SHARED_KEY", "ManagerState", "create_manager_graph", "shared_view"]


class ManagerState(TypedDict):
    """State of a manager graph: the manager's conversation with the user."""

    messages: Messages
    """The conversation: user messages, manager replies, delegation results."""
    usage: NotRequired[UsageChannel]
    """What the run used: the manager's calls and every specialist's private run."""
    escalation: NotRequired[Escalation | None]
    """A failure of the manager's model waiting for a human."""
    context: NotRequired[ContextCache | None]
    """The manager's context policy's cached summary (:mod:`podium.agents._context`)."""


class _DelegationRequest(ToolRequest):
    """A delegation ``Send``: the tool call plus what the specialist's budget needs."""

    podium_usage: NotRequired[Usage]
    """The manager's usage when it delegated (passed down to the specialist)."""
    podium_at: NotRequired[float]
    """When it delegated (a delegation budget's ``seconds`` count from here)."""
    podium_shared: NotRequired[list[AnyMessage]]
    """The part of the manager's conversation the specialist sees before its task."""


SHARED_KEY = "__podium_shared"
"""``configurable`` key: the manager's messages a delegation shows its specialist."""


def shared_view(messages: Sequence[AnyMessage], n: int) -> list[AnyMessage]:
    """The last ``n`` messages of the user's conversation with the manager.

    Only what the user said and what the manager answered: the manager's delegations
    (tool calls) and the specialists' results stay out, so nothing shown is a call
    without its result, or another specialist's private work.
    """
    if n <= 0:
        return []
    spoken: list[AnyMessage] = [
        m
        for m in messages
        if isinstance(m, HumanMessage) or (isinstance(m, AIMessage) and not m.tool_calls)
    ]
    return spoken[-n:]


class Delegation(BaseModel):
    """The one argument of every delegation tool."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(
        description="The complete task, with every detail the specialist needs: it sees only "
        "this text, never the conversation."
    )


def delegation_tool(
    name: str,
    description: str,
    runnable: Pregel[Any, Any, Any, Any],
    scope: str | None = None,
) -> BaseTool:
    """The tool through which the manager hands ``task`` to one specialist.

    The specialist runs in a private history that starts with the task as its only
    message; only its final answer comes back (its usage rides along as the tool
    message's artifact, ``{"usage": ...}``). It is invoked with the calling node's
    config, so it is a LangGraph subgraph of that task: it checkpoints in its own
    namespace and an interrupt inside it pauses (and later resumes) the whole run.
    A graph specialist (``scope``: its name) runs with its name added to its agents'
    paths (:func:`~podium.graphs._members.enter`); the delegation itself is the
    manager's.
    """

    def run(task: str, config: RunnableConfig) -> tuple[str, dict[str, Any]]:
        emit("delegation", {"name": name, "task": task[:500]}, config)
        config, shown = _shared(config)
        config, sink = collect_usage(enter(config, scope))
        try:
            out = runnable.invoke({"messages": [*shown, HumanMessage(task)]}, config)
        except Exception as exc:
            raise _with_usage(exc, sink)  # noqa: B904 - the same exception, re-raised
        return final_text(out, name), {"usage": usage_of(out)}

    async def arun(task: str, config: RunnableConfig) -> tuple[str, dict[str, Any]]:
        emit("delegation", {"name": name, "task": task[:500]}, config)
        config, shown = _shared(config)
        config, sink = collect_usage(enter(config, scope))
        try:
            out = await runnable.ainvoke({"messages": [*shown, HumanMessage(task)]}, config)
        except Exception as exc:
            raise _with_usage(exc, sink)  # noqa: B904 - the same exception, re-raised
        return final_text(out, name), {"usage": usage_of(out)}

    built = StructuredTool.from_function(
        func=run,
        coroutine=arun,
        name=name,
        description=description or f"Delegate a task to the {name} specialist.",
        args_schema=Delegation,
        response_format="content_and_artifact",
    )
    # read_only: the delegation itself changes nothing; the specialist's own tools go
    # through its executor and ledger. It also keeps an interrupted delegation from
    # being mistaken for an in-doubt call when the run resumes.
    built.metadata = {"podium": ToolTraits(risk="low", read_only=True)}
    return built


def _shared(config: RunnableConfig) -> tuple[RunnableConfig, list[AnyMessage]]:
    """The manager's messages shown to this delegation, taken out of the config."""
    conf = dict(config.get("configurable") or {})
    shown = conf.pop(SHARED_KEY, None) or []
    return cast(RunnableConfig, {**config, "configurable": conf}), list(shown)


def _with_usage(exc: Exception, sink: UsageSink) -> Exception:
    """A failed specialist's error, carrying what its model calls used.

    The governed executor puts it in the error result's artifact, so the manager's
    usage (and budget) counts it.
    """
    if not isinstance(exc, GraphBubbleUp):
        exc.podium_usage = sink.usage  # type: ignore[attr-defined]
    return exc


def _shares(share: object, names: Sequence[str]) -> dict[str, int]:
    """``share=`` as ``{specialist: n}`` (raises ``ConfigurationError`` when invalid)."""

    def count(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigurationError(
                f"create_manager_graph: share must be a whole number of messages (0 or "
                f"more), or {{specialist: n}}; got {value!r}.",
                fix="Pass share=4 to show every specialist the last 4 messages, or "
                'share={"billing": 4}.',
            )
        return value

    if isinstance(share, Mapping):
        unknown = sorted(set(share) - set(names))
        if unknown:
            raise ConfigurationError(
                f"create_manager_graph: share names unknown specialist(s) {unknown}. "
                f"Specialists: {', '.join(names)}.",
                fix="Name specialists of this manager.",
            )
        return {n: count(v) for n, v in share.items()}
    return dict.fromkeys(names, count(share))


def _grants(specialist_budget: object, names: Sequence[str]) -> dict[str, Budget]:
    if specialist_budget is None:
        return {}
    if isinstance(specialist_budget, Budget):
        return dict.fromkeys(names, specialist_budget)
    if isinstance(specialist_budget, Mapping):
        unknown = sorted(set(specialist_budget) - set(names))
        bad = [k for k, v in specialist_budget.items() if not isinstance(v, Budget)]
        if unknown or bad:
            raise ConfigurationError(
                f"create_manager_graph: specialist_budget names unknown specialist(s) "
                f"{unknown} or maps to something other than a Budget ({bad}). "
                f"Specialists: {', '.join(names)}.",
                fix='Pass specialist_budget=Budget(...) for all, or {"name": Budget(...)}.',
            )
        return {str(k): v for k, v in specialist_budget.items()}
    raise ConfigurationError(
        f"create_manager_graph: specialist_budget must be a Budget or a mapping "
        f"{{specialist: Budget}}, got {type(specialist_budget).__name__}.",
        fix="Pass specialist_budget=Budget(output_tokens=2000).",
    )


def _validate(
    manager: object, specialists: Sequence[object], max_rounds: object
) -> tuple[Agent, list[str]]:
    if not isinstance(manager, Agent):
        raise ConfigurationError(
            f"create_manager_graph: the manager must be a podium Agent (it needs a model to "
            f"choose specialists), got {type(manager).__name__}.",
            fix="Pass Agent(name=..., model=...) as the manager; graphs can be specialists.",
        )
    if isinstance(specialists, Agent) or not isinstance(specialists, Sequence):
        raise ConfigurationError(
            "create_manager_graph: specialists must be a list of Agents or graphs, got "
            f"{type(specialists).__name__}.",
            fix="Pass specialists=[agent_a, agent_b].",
        )
    names = check_members(specialists, "specialists")
    for name in names:
        if name == manager.name:
            raise ConfigurationError(
                f"A specialist has the manager's name {name!r}; names must be unique.",
                fix="Rename the specialist or the manager.",
            )
        if name == TOOLS_NODE:
            raise ConfigurationError(
                f"A specialist is named {TOOLS_NODE!r}, the name of the manager's tool step.",
                fix="Rename the specialist, e.g. 'toolsmith'.",
            )
    check_loop_agent(manager, names, "Manager")
    check_alternate(manager)
    check_positive("create_manager_graph", "max_rounds", max_rounds)
    return manager, names


def create_manager_graph(
    manager: Agent,
    specialists: Sequence[Member],
    *,
    policy: Policy | None = None,
    max_rounds: int = 8,
    name: str | None = None,
    description: str = "",
    budget: Budget | None = None,
    specialist_budget: Budget | Mapping[str, Budget] | None = None,
    share: int | Mapping[str, int] = 0,
) -> GovernedGraph[ManagerState, None, ManagerState, ManagerState]:
    """Build a manager graph: one agent delegates tasks to specialists and answers.

    The manager sees each specialist as a tool named after it, taking one argument,
    ``task: str``, described by the specialist's description. A specialist works in
    a private history: it receives only ``[HumanMessage(task)]``, never the manager's
    conversation, and only its final answer comes back, as the tool result. Several
    delegations in one manager reply run in parallel, each its own LangGraph task,
    so an approval inside one specialist never re-runs a sibling when the run
    resumes.

    Delegations pass the same governed executor as tools: an unknown specialist,
    extra arguments or a malformed ``task`` come back to the manager as an error
    tool message and nothing runs, and ``policy`` applies to them too (tool name =
    the specialist's name; ``Rule(tool="billing", action="approve")`` makes delegating
    to ``billing`` wait for a human). A specialist that fails (any exception,
    including its own :class:`~podium.errors.MaxStepsExceededError`) becomes an
    error tool message for the manager; an interrupt inside a specialist pauses the
    whole run and resumes where it stopped.

    Recursion: each manager round is two LangGraph steps (manager, delegation), and
    every specialist runs as a subgraph with its own step count, so ``max_rounds``
    stops a looping manager after ``2 * max_rounds + 1`` steps, long before
    LangGraph's default ``recursion_limit``. If you set ``recursion_limit``
    yourself, give it at least ``2 * max_rounds + 2`` and at least twice the
    largest specialist ``max_steps`` plus two.

    Args:
        manager: The agent that plans, delegates and answers. Its own tools run
            through the governed executor as in any agent.
        specialists: Agents or pattern graphs (compiled or not, with a name).
        policy: Applied to every tool call of every Agent member (manager and
            specialists), delegations included.
        max_rounds: Manager model calls allowed per user turn; one more raises
            :class:`~podium.errors.MaxRoundsExceededError`. Replaces the manager's
            ``max_steps``.
        name: The graph's name as a member of another pattern (default: the
            manager's name).
        description: What the graph does, for a manager or peer choosing it
            (default: the manager's description).
        budget: What the whole run may use (:class:`~podium.Budget`): the manager's
            calls and every specialist's, checked before each model call.
        specialist_budget: A sub-budget granted with each delegation: one
            ``Budget`` for every specialist, or ``{specialist: Budget}``. It limits
            what one delegation may use, from its start, besides the run's and the
            agents' own budgets; when it runs out the specialist stops (or asks a
            human) as its ``on_exhausted`` says, and the manager gets its answer.
        share: How much of the manager's conversation a specialist sees before its
            task: the last *n* messages the user and the manager exchanged (user
            messages and the manager's answers; never delegations or other
            specialists' results), for every specialist or ``{specialist: n}``.
            Default ``0``: the task alone (a private history).

    Returns:
        An uncompiled graph with nodes ``<manager>``, one per specialist, and
        ``tools``; compile it with ``.compile(checkpointer=...)``.

    Raises:
        ConfigurationError: No specialists, duplicate or invalid names, a specialist
            named like the manager or one of its tools, or a bad option.

    Example:
        >>> from langchain_core.messages import AIMessage
        >>> from podium import Agent
        >>> from podium.graphs import create_manager_graph
        >>> from podium.testing import ScriptedChatModel
        >>> delegate = {"name": "math", "args": {"task": "2+2?"}, "id": "c1"}
        >>> boss = Agent(name="boss", model=ScriptedChatModel(
        ...     [AIMessage("", tool_calls=[delegate]), "2+2 is 4."]))
        >>> math = Agent(name="math", description="Does arithmetic",
        ...              model=ScriptedChatModel(["4"]))
        >>> app = create_manager_graph(boss, [math]).compile()
        >>> out = app.invoke({"messages": [("user", "What is 2+2?")]})
        >>> [m.content for m in out["messages"][-2:]]
        ['4', '2+2 is 4.']
    """
    boss, names = _validate(manager, specialists, max_rounds)
    graph_name, graph_description = check_graph_options(
        "create_manager_graph", policy, name, description
    )
    binding = budget_binding("create_manager_graph", budget, graph_name or boss.name)
    shares = _shares(share, names)
    grants = _grants(specialist_budget, names)
    known = all_tool_names([boss, *specialists]) | set(names)
    delegates = {
        n: delegation_tool(
            n, member_description(s), member_runnable(s, known_tools=known), member_scope(s)
        )
        for n, s in zip(names, specialists, strict=True)
    }
    brain = dataclasses.replace(
        boss,
        tools=(*boss.granted_tools, *delegates.values()),
        max_steps=max_rounds,
        # several delegations in one reply (JSON tool calling included) run in parallel
        parallel_tool_calls=boss.parallel_tool_calls is not False,
    )

    def check_rounds(state: ManagerState) -> None:
        used = steps_this_turn(state["messages"], boss.name)
        if used >= max_rounds:
            raise MaxRoundsExceededError(
                f"Manager {boss.name!r} made {used} model calls this turn without a final "
                f"answer (max_rounds={max_rounds}).",
                fix="Raise create_manager_graph(max_rounds=...), tell the manager to answer "
                "once the specialists reported, or check the results it keeps reacting to.",
            )

    def route(state: ManagerState, last: AIMessage, sends: list[Send]) -> list[Send | str]:
        at = time.time()
        return [
            Send(
                s.arg["name"],
                {
                    **s.arg,
                    "podium_usage": state.get("usage") or Usage(),
                    "podium_at": at,
                    "podium_shared": shared_view(state["messages"], shares.get(s.arg["name"], 0)),
                },
            )
            if s.arg["name"] in delegates and "problem" not in s.arg
            else s
            for s in sends
        ]

    nodes = [
        LoopNode(
            n,
            _delegation_node(
                n, GovernedExecutor(boss.name, [delegate], known, policy), grants.get(n), policy
            ),
        )
        for n, delegate in delegates.items()
    ]
    graph = build_agent_loop(
        brain,
        known_tools=known,
        policy=policy,
        route=route,
        nodes=nodes,
        model_node=boss.name,
        before_model=check_rounds,
        state_schema=ManagerState,
    )
    graph.podium_name = graph_name or boss.name
    graph.podium_description = graph_description or boss.description
    graph.podium_configurable = binding
    held = inventory_of([boss, *specialists]) | Inventory(frozenset(names), frozenset(), False)
    check_rule_names("create_manager_graph", policy, held)
    describe(graph, held)
    return graph


def _delegation_node(
    node: str, executor: GovernedExecutor, grant: Budget | None, policy: Policy | None
) -> RunnableLambda[Any, dict[str, Any]]:
    """A node running one delegation: the usage (and grant) and the policy passed down."""

    def prepare(req: _DelegationRequest, config: RunnableConfig) -> tuple[Any, RunnableConfig]:
        call = dict(req)
        call.pop("podium_usage", None)
        call.pop("podium_at", None)
        shown = call.pop("podium_shared", None)
        config = run_config(config, req.get("podium_usage"), policy)
        if grant is not None:
            label = f"delegation:{node}:{req['id']}"
            config = grant_config(config, label, grant, req.get("podium_at") or time.time())
        if shown:
            config = merge_configs(config, {"configurable": {SHARED_KEY: shown}})
        return call, config

    def done(message: ToolMessage) -> dict[str, Any]:
        artifact = message.artifact if isinstance(message.artifact, dict) else {}
        used = artifact.get("usage")
        return {"messages": [message], **({"usage": used} if used else {})}

    def run(req: _DelegationRequest, config: RunnableConfig) -> dict[str, Any]:
        call, config = prepare(req, config)
        return done(executor.run(call, config))

    async def arun(req: _DelegationRequest, config: RunnableConfig) -> dict[str, Any]:
        call, config = prepare(req, config)
        return done(await executor.arun(call, config))

    return RunnableLambda(run, afunc=arun, name=node)
