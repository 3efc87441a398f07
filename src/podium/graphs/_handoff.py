"""The handoff pattern: peers pass the conversation with ``transfer_to_<name>`` tools."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NotRequired

from langchain_core.messages import AIMessage, AnyMessage, ToolMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.graph import END, START
from langgraph.pregel import Pregel
from langgraph.types import Command, Send
from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

from podium.agents import Agent, Budget
from podium.agents._budget import UsageChannel, budget_binding, usage_of
from podium.agents._loop import AgentState, LoopNode, build_agent_loop, route_tool_calls
from podium.agents._structured import NEXT_STEP
from podium.checkpoints._messages import Messages
from podium.errors import ConfigurationError, MaxHandoffsExceededError
from podium.graphs._members import (
    Member,
    all_tool_names,
    check_members,
    check_rule_names,
    describe,
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
    history_view,
    last_ai_message,
    new_messages,
    route_table,
    since_last_human,
)
from podium.observe import emit
from podium.tools import GovernedGraph, Policy
from podium.tools._checks import Grants
from podium.tools._executor import ToolRequest, refusal

__all__ = ["HandoffState", "History", "create_handoff_graph"]

TRANSFER_PREFIX = "transfer_to_"
"""Handoff tools are named ``transfer_to_<agent>``."""
TRANSFER_NODE = "transfer"
"""The step of an agent's loop that answers its handoff calls."""

History = Literal["full"] | int | Callable[[list[AnyMessage]], Sequence[AnyMessage]]
"""What a member sees when it takes control: ``"full"``, the last *n* messages, or a
function of the whole conversation."""


class HandoffState(TypedDict):
    """State of a handoff graph."""

    messages: Messages
    """The shared conversation: every member's replies, tool calls and handoffs."""
    active_agent: NotRequired[str]
    """Who receives the next user message (kept across turns by the checkpointer)."""
    handoffs: NotRequired[list[str]]
    """Ids of this graph's accepted handoff messages in the current turn."""
    usage: NotRequired[UsageChannel]
    """What the run used, every member's calls included."""


class Transfer(BaseModel):
    """The one argument of every handoff tool."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(description="Why the receiver should take over, in one sentence.")


def transfer_tool(target: str, description: str) -> BaseTool:
    """The ``transfer_to_<target>`` tool offered to a model (the handoff step answers it)."""

    def never(reason: str) -> str:  # pragma: no cover - transfers never reach a tool node
        raise RuntimeError("handoff tools are answered by the handoff step, never run")

    what = f": {description}" if description else "."
    return StructuredTool.from_function(
        func=never,
        name=f"{TRANSFER_PREFIX}{target}",
        description=f"Hand the conversation over to {target}{what}",
        args_schema=Transfer,
    )


@dataclasses.dataclass(frozen=True)
class _Outcome:
    target: str | None
    answers: list[ToolMessage]


class _AgentRunner:
    """One Agent's loop inside a handoff graph: model, governed tools, transfers.

    The loop ends when the model answers, or after a reply with an accepted
    transfer. Only the first allowed, well-formed transfer of a reply is followed;
    the reply's other calls are answered ("not run") so the history stays valid.
    """

    def __init__(
        self,
        agent: Agent,
        allowed: Sequence[str],
        everyone: Sequence[str],
        descriptions: Mapping[str, str],
        known: set[str],
    ) -> None:
        self.agent, self.allowed, self.everyone = agent, tuple(allowed), tuple(everyone)
        self.known = known
        transfers = [transfer_tool(t, descriptions[t]) for t in self.allowed]
        self.validator = Grants(agent.name, transfers)
        self.brain = dataclasses.replace(agent, tools=(*agent.granted_tools, *transfers))
        alternate = agent.failure.alternate if agent.failure else None
        if alternate is not None and alternate not in self.allowed:
            raise ConfigurationError(
                f"Agent {agent.name!r} names alternate={alternate!r}, but it may not transfer "
                f"to {alternate!r}. Its allowed transfers: {', '.join(self.allowed) or 'none'}.",
                fix=f"Add {alternate!r} to routes[{agent.name!r}], or change the alternate.",
            )

    @staticmethod
    def is_transfer(req: ToolRequest) -> bool:
        return "problem" not in req and (req["name"] or "").startswith(TRANSFER_PREFIX)

    def decide(self, message: AIMessage) -> _Outcome:
        """Answer every transfer call of ``message`` (a pure function of the message)."""
        reqs = [s.arg for s in route_tool_calls(message, "tools")]
        target: str | None = None
        answers: dict[str, ToolMessage] = {}
        for req in filter(self.is_transfer, reqs):
            wanted = (req["name"] or "").removeprefix(TRANSFER_PREFIX)
            refused = self.validator.check(req) if wanted in self.allowed else None
            if wanted not in self.allowed:
                answers[req["id"]] = self._not_allowed(req, wanted)
            elif refused is not None:
                answers[req["id"]] = refused
            elif target is not None:
                answers[req["id"]] = refusal(
                    req["id"],
                    req["name"],
                    "handoff_ignored",
                    f"only the first transfer of a reply is followed; the conversation "
                    f"already goes to {target!r}.",
                )
            else:
                target = wanted
                reason = str(req["args"]["reason"])
                answers[req["id"]] = ToolMessage(
                    # the receiver acts next, so the result names that step (a small model
                    # otherwise takes the generic "reply with final_answer" cue literally)
                    content=f"Transferred to {wanted}. Reason: {reason}\n"
                    f"{NEXT_STEP} {wanted} handles the request with its own tools.",
                    tool_call_id=req["id"],
                    name=req["name"] or "",
                    artifact={"handoff": {"from": self.agent.name, "to": wanted, "reason": reason}},
                )
        if target is not None:
            for req in reqs:
                answers.setdefault(
                    req["id"],
                    refusal(
                        req["id"],
                        req["name"],
                        "not_run_handoff",
                        f"not run: this reply handed the conversation to {target!r}.",
                    ),
                )
        return _Outcome(target, [answers[r["id"]] for r in reqs if r["id"] in answers])

    def _not_allowed(self, req: ToolRequest, wanted: str) -> ToolMessage:
        unknown = "" if wanted in self.everyone else " (there is no agent of that name)"
        allowed = ", ".join(self.allowed) or "none; answer the user yourself"
        return refusal(
            req["id"],
            req["name"],
            "handoff_not_allowed",
            f"agent {self.agent.name!r} may not transfer to {wanted!r}{unknown}; the "
            f"conversation stays with you. Allowed transfers: {allowed}.",
        )

    def build(self) -> Pregel[Any, Any, Any, Any]:
        """The agent's loop with a ``transfer`` step, compiled as a subgraph."""

        def transfer(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
            last = last_ai_message(state["messages"])
            outcome = self.decide(last) if last else _Outcome(None, [])
            for answer in outcome.answers:
                if isinstance(answer.artifact, dict) and "handoff" in answer.artifact:
                    move = answer.artifact["handoff"]
                    emit(
                        "handoff",
                        {"agent": move["from"], "name": move["to"], "reason": move["reason"]},
                        config,
                    )
            return {"messages": outcome.answers}

        def route(state: AgentState, last: AIMessage, sends: list[Send]) -> list[Send | str] | str:
            if not any(self.is_transfer(s.arg) for s in sends):
                return list(sends)
            if self.decide(last).target is not None:
                return TRANSFER_NODE
            return [*(s for s in sends if not self.is_transfer(s.arg)), TRANSFER_NODE]

        def after_transfer(state: AgentState) -> str:
            last = last_ai_message(state["messages"])
            return END if last is not None and self.decide(last).target else "model"

        alternate = self.agent.failure.alternate if self.agent.failure else None
        loop = build_agent_loop(
            self.brain,
            known_tools=self.known,
            executor_tools=self.agent.granted_tools,
            route=route,
            nodes=[
                LoopNode(
                    TRANSFER_NODE,
                    RunnableLambda(transfer, name=TRANSFER_NODE),
                    after_transfer,
                    ("model", END),
                )
            ],
            alternate_tool=f"{TRANSFER_PREFIX}{alternate}" if alternate else None,
        )
        return loop.compile(name=self.agent.name)


def _reachable(start: str, routes: Mapping[str, Sequence[str]]) -> frozenset[str]:
    """Every member the declared routes lead to from ``start`` (itself included)."""
    seen, todo = {start}, [start]
    while todo:
        for target in routes.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return frozenset(seen)


def create_handoff_graph(
    agents: Sequence[Member],
    *,
    default_agent: str,
    routes: Mapping[str, Sequence[str]] | None = None,
    max_handoffs: int = 4,
    history: History = "full",
    policy: Policy | None = None,
    name: str | None = None,
    description: str = "",
    budget: Budget | None = None,
) -> GovernedGraph[HandoffState, None, HandoffState, HandoffState]:
    """Build a handoff graph: peers pass the conversation with ``transfer_to_<name>``.

    Each Agent gets one ``transfer_to_<target>(reason: str)`` tool per allowed route
    (``routes``; default: every other member). When its reply calls one, the handoff
    step answers the call with a tool message (so the history stays valid for
    OpenAI-style APIs) and control passes to the target in the same user turn. A
    transfer outside the routes, or with bad arguments, is refused: the model gets
    an error tool message listing its allowed targets and keeps the conversation.
    Only the first accepted transfer of a reply is followed; the reply's other tool
    calls are answered as not run. Transfers are control flow, governed by
    ``routes``; ``policy`` governs the agents' tools.

    The member that answers stays active: ``active_agent`` persists in the state,
    so with a checkpointer the next user message goes to it. A graph member (a
    pattern graph standing as a peer) cannot call transfer tools: it takes the
    turn, answers, and the next user message goes back to ``default_agent``.
    Handing control around more than ``max_handoffs`` times in one user turn stops
    the run with :class:`~podium.errors.MaxHandoffsExceededError` before the next
    member starts; the conversation so far is kept.

    ``history`` decides what a member sees each time it takes control: the whole
    conversation, its last *n* messages (never starting with an orphaned tool
    result), or what a function of the conversation returns. What the member adds
    is appended to the shared conversation.

    Recursion: the graph takes at most ``max_handoffs + 2`` LangGraph steps per
    turn; each Agent's loop is a subgraph with its own step count (at most
    ``2 * max_steps + 1``). If you set ``recursion_limit`` yourself, give it at least
    twice the largest ``max_steps`` plus three; the default is far above both.

    Args:
        agents: The peers: Agents, or pattern graphs (compiled or not, with a name).
        default_agent: Who takes the first user message (and the next one after a
            graph member answered).
        routes: ``{agent: [targets]}``; agents left out cannot transfer.
        max_handoffs: Handoffs allowed per user turn (``0``: none).
        history: ``"full"``, a positive ``int`` (last *n* messages), or a function
            ``messages -> messages``.
        policy: Applied to every tool call of every Agent member.
        name: The graph's name as a member of another pattern.
        description: What the graph does, for a manager or peer choosing it.
        budget: What the whole run may use (:class:`~podium.Budget`), every
            member's calls included, checked before each model call. An Agent whose
            ``FailurePolicy(alternate=...)`` names a peer hands the conversation to
            it (a ``transfer_to_<alternate>`` on its behalf) when its models fail;
            the route must be allowed.

    Returns:
        An uncompiled graph with one node per member; compile it with
        ``.compile(checkpointer=...)``.

    Raises:
        ConfigurationError: No agents, duplicate or invalid names, an unknown
            ``default_agent``, a route from or to an unknown member (or from a graph
            member, or to itself), a tool named ``transfer_to_...``, or a bad option.

    Example:
        >>> from langchain_core.messages import AIMessage
        >>> from podium import Agent
        >>> from podium.graphs import create_handoff_graph
        >>> from podium.testing import ScriptedChatModel
        >>> go = {"name": "transfer_to_billing", "args": {"reason": "refund"}, "id": "h1"}
        >>> triage = Agent(name="triage", model=ScriptedChatModel(
        ...     [AIMessage("", tool_calls=[go])]))
        >>> billing = Agent(name="billing", description="Refunds",
        ...                 model=ScriptedChatModel(["Refund issued."]))
        >>> app = create_handoff_graph([triage, billing], default_agent="triage").compile()
        >>> out = app.invoke({"messages": [("user", "I want a refund")]})
        >>> out["messages"][-1].content, out["active_agent"]
        ('Refund issued.', 'billing')
    """
    graph_name, graph_description = check_graph_options(
        "create_handoff_graph", policy, name, description
    )
    binding = budget_binding("create_handoff_graph", budget, graph_name or "handoff")
    if isinstance(agents, Agent) or not isinstance(agents, Sequence):
        raise ConfigurationError(
            f"create_handoff_graph: agents must be a list of Agents or graphs, got "
            f"{type(agents).__name__}.",
            fix="Pass [triage, billing, ...].",
        )
    names = check_members(agents, "agents")
    members: dict[str, Member] = dict(zip(names, agents, strict=True))
    if default_agent not in members:
        raise ConfigurationError(
            f"default_agent={default_agent!r} is not one of the agents: {', '.join(names)}.",
            fix="Pass the name of the agent that should take the first message.",
        )
    check_positive("create_handoff_graph", "max_handoffs", max_handoffs, minimum=0)
    view = history_view(history)
    allowed = route_table(routes, members)
    known = all_tool_names(agents)
    descriptions = {n: member_description(m) for n, m in members.items()}
    runnables: dict[str, Pregel[Any, Any, Any, Any]] = {}
    for n, m in members.items():
        if not isinstance(m, Agent):
            runnables[n] = member_runnable(m, known_tools=known)
            continue
        for t in m.tool_names:
            if t.startswith(TRANSFER_PREFIX):
                raise ConfigurationError(
                    f"Agent {n!r} has a tool named {t!r}; names starting with "
                    f"{TRANSFER_PREFIX!r} are reserved for handoffs.",
                    fix="Rename the tool.",
                )
        check_loop_agent(m, [f"{TRANSFER_PREFIX}{t}" for t in allowed[n]], "Agent")
        runner = _AgentRunner(m, allowed[n], names, descriptions, known)
        runnables[n] = runner.build()

    def turn_handoffs(state: HandoffState) -> list[str]:
        current = {m.id for m in since_last_human(state["messages"])}
        return [h for h in state.get("handoffs", []) if h in current]

    def guard(state: HandoffState, entering: str) -> None:
        done = turn_handoffs(state)
        if len(done) <= max_handoffs:
            return
        hops = {
            m.id: m.artifact["handoff"]
            for m in state["messages"]
            if isinstance(m, ToolMessage) and m.id in done
        }
        chain = " -> ".join([hops[done[0]]["from"], *(hops[h]["to"] for h in done)])
        raise MaxHandoffsExceededError(
            f"The agents handed off {len(done)} times in this turn ({chain}), more than "
            f"max_handoffs={max_handoffs}; stopped before {entering!r} took over.",
            fix="Make the agents' instructions or routes clearer about who answers what, or "
            "raise create_handoff_graph(max_handoffs=...).",
        )

    def make_node(n: str) -> RunnableLambda[HandoffState, Command[str]]:
        runnable, is_agent = runnables[n], isinstance(members[n], Agent)
        scope = member_scope(members[n])

        def finish(state: HandoffState, shown: list[AnyMessage], out: Any) -> Command[str]:
            new = new_messages(shown, out, [m.id for m in state["messages"]])
            used = {"usage": usage_of(out)}
            hop = next(
                (
                    m
                    for m in reversed(new)
                    if is_agent
                    and isinstance(m, ToolMessage)
                    and isinstance(m.artifact, dict)
                    and m.artifact.get("handoff", {}).get("from") == n
                ),
                None,
            )
            if hop is not None and isinstance(hop.id, str):
                target = str(hop.artifact["handoff"]["to"])
                marks = [*turn_handoffs(state), hop.id]
                update = {"messages": new, "active_agent": target, "handoffs": marks, **used}
                return Command(goto=target, update=update)
            stays = n if is_agent else default_agent
            return Command(
                goto=END,
                update={"messages": new, "active_agent": stays, "handoffs": [], **used},
            )

        def node(state: HandoffState, config: RunnableConfig) -> Command[str]:
            guard(state, n)
            shown = view(state["messages"])
            config = run_config(config, state.get("usage"), policy, scope)
            return finish(state, shown, runnable.invoke({"messages": shown}, config))

        async def anode(state: HandoffState, config: RunnableConfig) -> Command[str]:
            guard(state, n)
            shown = view(state["messages"])
            config = run_config(config, state.get("usage"), policy, scope)
            return finish(state, shown, await runnable.ainvoke({"messages": shown}, config))

        return RunnableLambda(node, afunc=anode, name=n)

    reachable = _reachable(default_agent, allowed)

    def entry(state: HandoffState) -> str:
        # only the default agent or one a declared route leads to is ever activated,
        # whatever the state says (it may have been set by update_state)
        active = state.get("active_agent")
        return active if isinstance(active, str) and active in reachable else default_agent

    graph: GovernedGraph[HandoffState, None, HandoffState, HandoffState] = GovernedGraph(
        HandoffState
    )
    for n in names:
        graph.add_node(n, make_node(n), destinations=(*allowed.get(n, ()), END))
    graph.add_conditional_edges(START, entry, names)
    graph.podium_name = graph_name
    graph.podium_description = graph_description
    graph.podium_configurable = binding
    held = inventory_of(agents)
    check_rule_names("create_handoff_graph", policy, held)
    describe(graph, held)
    return graph
