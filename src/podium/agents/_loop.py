"""The agent loop: model → governed tool step → model … until an answer or a limit.

Built as a LangGraph subgraph from public primitives only: a ``model`` node
(:class:`~podium.agents._step.ModelStep`), a ``tools`` node that receives one
``Send`` per tool call (so parallel calls are separate tasks with their own
interrupts, and a resumed call never re-runs a sibling), a conditional edge that
routes between them and, when the agent's failure policy escalates, an ``escalate``
node that asks a human about a model that kept failing.

It is the one agent loop: :func:`build_agent_loop` serves the single-agent graph,
every Agent member, a handoff desk's agents (a ``transfer`` node) and a manager (a
node per specialist) through its hooks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, NotRequired, get_type_hints

from langchain_core.messages import AIMessage, AnyMessage, ToolMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.tools import BaseTool
from langgraph.graph import END, START
from langgraph.types import Send
from typing_extensions import TypedDict

from podium.agents._budget import UsageChannel
from podium.agents._context import ContextCache
from podium.agents._escalate import ESCALATE_NODE, EscalateStep, Escalation, after_escalate
from podium.agents._models import check_model_spec
from podium.agents._spec import Agent
from podium.agents._step import ModelStep, steps_this_turn
from podium.agents._structured import FINAL_ANSWER
from podium.checkpoints._messages import Messages
from podium.errors import ConfigurationError
from podium.tools._executor import GovernedExecutor, ToolRequest
from podium.tools._graph import GovernedGraph
from podium.tools._policy import Policy

__all__ = [
    "TOOLS_NODE",
    "AgentState",
    "LoopNode",
    "ModelStep",
    "Route",
    "build_agent_loop",
    "check_alternate",
    "loop_state",
    "route_tool_calls",
    "steps_this_turn",
    "unanswered",
]

TOOLS_NODE = "tools"
"""The node that runs an agent's tool calls through the governed executor."""


class AgentState(TypedDict):
    """State of one agent's loop: its conversation, usage, and a pending escalation."""

    messages: Messages
    """The conversation, stored as deltas."""
    usage: NotRequired[UsageChannel]
    """Tokens, cost and model calls so far (see :mod:`podium.agents._budget`)."""
    escalation: NotRequired[Escalation | None]
    """A model failure waiting for a human (set by ``model``, cleared by ``escalate``)."""
    context: NotRequired[ContextCache | None]
    """The context policy's cached summary (see :mod:`podium.agents._context`)."""


def loop_state(state_schema: type[Any], agent: Agent) -> type[Any]:
    """``state_schema`` with the state fields the agent's middleware declare.

    LangChain middleware keep counters in state (``ModelCallLimitMiddleware``'s call
    counts): the loop's state carries them, with the channels their annotations name.
    """
    if not agent.middleware:
        return state_schema
    from podium.agents._middleware import middleware_fields

    extra = middleware_fields(agent.middleware)
    hints = get_type_hints(state_schema, include_extras=True)
    if not set(extra) - set(hints):
        return state_schema
    fields = {**{k: v for k, v in extra.items() if k not in hints}, **hints}
    made: type[Any] = TypedDict(f"{state_schema.__name__}_{agent.name}", fields, total=False)  # type: ignore[misc]
    return made


def route_tool_calls(message: AIMessage, node: str) -> list[Send]:
    """One ``Send`` per tool call of ``message``; flagged calls carry a ``problem``."""
    counts = Counter(c["id"] for c in message.tool_calls)
    sends: list[Send] = []
    seen_dupes: set[str] = set()
    for c in message.tool_calls:
        call_id = c["id"] or ""
        req: ToolRequest = {
            "name": c["name"],
            "args": c["args"],
            "id": call_id,
            "message": message.id,
        }
        if counts[c["id"]] > 1:
            if call_id in seen_dupes:
                continue
            seen_dupes.add(call_id)
            req["problem"] = "duplicate_id"
            req["detail"] = f"{counts[c['id']]} tool calls share the id {call_id!r}"
        sends.append(Send(node, req))
    for i, bad in enumerate(message.invalid_tool_calls):
        bad_id = bad.get("id") or f"invalid_{message.id or 'x'}_{i}"
        sends.append(
            Send(
                node,
                ToolRequest(
                    name=bad.get("name"),
                    args=bad.get("args"),
                    id=bad_id,
                    problem="invalid",
                    detail=bad.get("error") or "unparseable arguments",
                ),
            )
        )
    return sends


def unanswered(messages: Sequence[AnyMessage]) -> AIMessage | None:
    """The latest ``AIMessage`` with only its calls that have no result yet (or ``None``).

    An ``after_model`` middleware may answer some of a reply's calls itself
    (``ToolCallLimitMiddleware`` refuses the calls over its limit with error results);
    only the others go to the tool step.
    """
    answered: set[str] = set()
    for m in reversed(messages):
        if isinstance(m, ToolMessage):
            answered.add(m.tool_call_id)
        elif isinstance(m, AIMessage):
            calls = [c for c in m.tool_calls if c.get("id") not in answered]
            if not calls:
                return None
            return m.model_copy(update={"tool_calls": calls, "invalid_tool_calls": []})
        else:
            return None
    return None


def check_alternate(agent: Agent) -> None:
    """Refuse ``FailurePolicy(alternate=...)`` outside a handoff graph.

    Raises:
        ConfigurationError: Saying where an alternate works.
    """
    alternate = agent.failure.alternate if agent.failure else None
    if alternate is not None:
        raise ConfigurationError(
            f"Agent {agent.name!r} names alternate={alternate!r}, but only a handoff graph "
            "can hand an agent's conversation to another agent; here there is none to route "
            "to.",
            fix="Use alternate= in a handoff graph (with a route to the alternate), or remove "
            "it and rely on fallbacks= and escalation.",
        )


@dataclass(frozen=True)
class LoopNode:
    """A node a pattern adds to an agent's loop, and where the loop goes after it.

    A handoff's ``transfer`` step, or a manager's delegation to one specialist.
    """

    name: str
    """The node's name (a ``route`` hook sends to it)."""
    node: Any
    """The runnable (a ``RunnableLambda`` with sync and async functions)."""
    after: str | Callable[[Any], str] = "model"
    """The next node, or a function of the state choosing it from ``destinations``."""
    destinations: tuple[str, ...] = ()
    """The possible results of ``after`` when it is a function."""


Route = Callable[[Any, AIMessage, list[Send]], "list[Send | str] | str"]
"""A pattern's routing hook: ``(state, reply, sends) -> targets`` where ``sends`` are
the reply's tool calls addressed to the ``tools`` node."""


def build_agent_loop(
    agent: Agent,
    *,
    known_tools: Collection[str] = (),
    policy: Policy | None = None,
    executor_tools: Sequence[BaseTool] | None = None,
    route: Route | None = None,
    nodes: Sequence[LoopNode] = (),
    model_node: str = "model",
    before_model: Callable[[Any], None] | None = None,
    alternate_tool: str | None = None,
    state_schema: type[Any] = AgentState,
) -> GovernedGraph[Any, None, Any, Any]:
    """Build the uncompiled loop graph for one agent: the one agent loop of podium.

    The single-agent graph, every Agent member of a pattern, a handoff desk's agents
    and a manager all run this loop; the patterns add their control flow through
    the hooks (``route``, ``nodes``) instead of wiring a loop of their own.

    Args:
        agent: The agent; its ``tools`` are what the model is offered (a pattern may
            add its transfer or delegation tools with ``dataclasses.replace``).
        known_tools: Every tool name in the surrounding system, so calls to tools
            granted to others are refused as *not granted* rather than *unknown*.
        policy: The member's own policy (the enclosing graphs' apply too, passed
            down in the config); governs its tool calls and escalations.
        executor_tools: The tools the ``tools`` node may run (default: the agent's).
        route: Reroutes a reply's tool calls (default: all to ``tools``).
        nodes: Extra nodes a ``route`` may send to.
        model_node: The model node's name (a manager names it after the manager).
        before_model: Called with the state before each model step (may raise).
        alternate_tool: The handoff tool the model step calls on the agent's behalf
            when its models fail (``FailurePolicy(alternate=...)``).
        state_schema: The loop's state (``AgentState`` or a pattern's equivalent).

    Returns:
        An uncompiled ``StateGraph`` with nodes ``model_node`` and ``tools``, the
        pattern's ``nodes``, and ``escalate`` when the agent's failure policy
        escalates to a human.

    Raises:
        ConfigurationError: For an invalid model spec, a tool named like the JSON
            mode's reserved choice, or an ``alternate`` with nowhere to hand off to.
    """
    check_model_spec(agent.model)
    if agent.tool_calling != "native" and FINAL_ANSWER in agent.tool_names:
        raise ConfigurationError(
            f"Agent {agent.name!r} has a tool named {FINAL_ANSWER!r}, which JSON tool calling "
            "reserves for the final reply.",
            fix="Rename the tool, or set tool_calling='native'.",
        )
    if alternate_tool is None:
        check_alternate(agent)
    step = ModelStep(agent, alternate_tool=alternate_tool, policy=policy)
    timeout = agent.failure.tool_timeout if agent.failure else None
    granted = agent.granted_tools if executor_tools is None else tuple(executor_tools)
    executor = GovernedExecutor(agent.name, granted, known_tools, policy, timeout=timeout)
    taken = {n.name for n in nodes} & {model_node, TOOLS_NODE, ESCALATE_NODE}
    if taken or (step.escalates and ESCALATE_NODE in {n.name for n in nodes}):
        raise ConfigurationError(
            f"{sorted(taken or {ESCALATE_NODE})} would name two steps of {agent.name!r}'s loop.",
            fix="Rename the member.",
        )

    def model(state: Any, config: RunnableConfig) -> dict[str, Any]:
        if before_model is not None:
            before_model(state)
        return step.invoke(state, config)

    async def amodel(state: Any, config: RunnableConfig) -> dict[str, Any]:
        if before_model is not None:
            before_model(state)
        return await step.ainvoke(state, config)

    def run_tool(req: ToolRequest, config: RunnableConfig) -> dict[str, list[AnyMessage]]:
        return {"messages": [executor.run(req, config)]}

    async def arun_tool(req: ToolRequest, config: RunnableConfig) -> dict[str, list[AnyMessage]]:
        return {"messages": [await executor.arun(req, config)]}

    def after_model(state: Any) -> list[Send | str] | str:
        if state.get("escalation"):
            return ESCALATE_NODE
        last = state["messages"][-1] if state["messages"] else None
        if isinstance(last, ToolMessage):  # a middleware answered some calls (a call limit)
            last = unanswered(state["messages"])
            if last is None:
                return model_node
        if not isinstance(last, AIMessage) or not (last.tool_calls or last.invalid_tool_calls):
            return END
        sends = route_tool_calls(last, TOOLS_NODE)
        if route is not None:
            return route(state, last, sends)
        targets: list[Send | str] = list(sends)
        return targets

    graph: GovernedGraph[Any, None, Any, Any] = GovernedGraph(loop_state(state_schema, agent))
    graph.add_node(model_node, RunnableLambda(model, afunc=amodel, name=model_node))
    graph.add_edge(START, model_node)
    for extra in nodes:
        graph.add_node(extra.name, extra.node)
        if isinstance(extra.after, str):
            graph.add_edge(extra.name, model_node if extra.after == "model" else extra.after)
        else:
            graph.add_conditional_edges(extra.name, extra.after, list(extra.destinations))
    graph.add_node(TOOLS_NODE, RunnableLambda(run_tool, afunc=arun_tool, name=TOOLS_NODE))
    graph.add_edge(TOOLS_NODE, model_node)
    targets = [*(n.name for n in nodes), TOOLS_NODE, END]
    if step.escalates:
        escalate = EscalateStep(agent.name, policy)

        def ask_human(state: Any, config: RunnableConfig) -> dict[str, Any]:
            return escalate.invoke(state, config)

        graph.add_node(ESCALATE_NODE, RunnableLambda(ask_human, name=ESCALATE_NODE))
        graph.add_conditional_edges(ESCALATE_NODE, after_escalate(model_node), [model_node, END])
        targets.append(ESCALATE_NODE)
    graph.add_conditional_edges(model_node, after_model, targets)
    return graph
