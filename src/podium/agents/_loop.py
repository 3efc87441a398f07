"""The agent loop: model → governed tool step → model … until an answer or a limit.

Built as a LangGraph subgraph from public primitives only: a ``model`` node
(:class:`~podium.agents._step.ModelStep`), a ``tools`` node that receives one
``Send`` per tool call (so parallel calls are separate tasks with their own
interrupts, and a resumed call never re-runs a sibling), a conditional edge that
routes between them and, when the agent's failure policy escalates, an ``escalate``
node that asks a human about a model that kept failing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from typing import Any, NotRequired

from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.graph import END, START
from langgraph.types import Send
from typing_extensions import TypedDict

from podium.agents._budget import UsageChannel
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
    "AgentState",
    "ModelStep",
    "add_escalation",
    "build_agent_loop",
    "check_alternate",
    "route_tool_calls",
    "steps_this_turn",
]


class AgentState(TypedDict):
    """State of one agent's loop: its conversation, usage, and a pending escalation."""

    messages: Messages
    """The conversation, stored as deltas."""
    usage: NotRequired[UsageChannel]
    """Tokens, cost and model calls so far (see :mod:`podium.agents._budget`)."""
    escalation: NotRequired[Escalation | None]
    """A model failure waiting for a human (set by ``model``, cleared by ``escalate``)."""


def route_tool_calls(message: AIMessage, node: str) -> list[Send]:
    """One ``Send`` per tool call of ``message``; flagged calls carry a ``problem``."""
    counts = Counter(c["id"] for c in message.tool_calls)
    sends: list[Send] = []
    seen_dupes: set[str] = set()
    for c in message.tool_calls:
        call_id = c["id"] or ""
        req: ToolRequest = {"name": c["name"], "args": c["args"], "id": call_id}
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


def add_escalation(graph: Any, step: ModelStep, model_node: str) -> list[str]:
    """Add the ``escalate`` step after ``model_node`` when the agent escalates failures.

    Returns:
        The extra targets for the model node's conditional edge.
    """
    if not step.escalates:
        return []
    escalate = EscalateStep(step.agent.name)
    graph.add_node(ESCALATE_NODE, RunnableLambda(escalate.invoke, name=ESCALATE_NODE))
    graph.add_conditional_edges(ESCALATE_NODE, after_escalate(model_node), [model_node, END])
    return [ESCALATE_NODE]


def build_agent_loop(
    agent: Agent,
    *,
    known_tools: Collection[str] = (),
    policy: Policy | None = None,
) -> GovernedGraph[AgentState, None, AgentState, AgentState]:
    """Build the uncompiled loop graph for one agent.

    Args:
        agent: The agent.
        known_tools: Every tool name in the surrounding system, so calls to tools
            granted to others are refused as *not granted* rather than *unknown*.
        policy: Applied to every tool call (default: allow every granted call).

    Returns:
        An uncompiled ``StateGraph`` with nodes ``model`` and ``tools``, and
        ``escalate`` when the agent's failure policy escalates to a human.

    Raises:
        ConfigurationError: For an invalid model spec, a tool named like the JSON
            mode's reserved choice, or an ``alternate`` (only handoff graphs route).
    """
    check_model_spec(agent.model)
    if agent.tool_calling != "native" and FINAL_ANSWER in agent.tool_names:
        raise ConfigurationError(
            f"Agent {agent.name!r} has a tool named {FINAL_ANSWER!r}, which JSON tool calling "
            "reserves for the final reply.",
            fix="Rename the tool, or set tool_calling='native'.",
        )
    check_alternate(agent)
    step = ModelStep(agent)
    timeout = agent.failure.tool_timeout if agent.failure else None
    executor = GovernedExecutor(
        agent.name, agent.granted_tools, known_tools, policy, timeout=timeout
    )

    def model(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        return step.invoke(state, config)

    async def amodel(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        return await step.ainvoke(state, config)

    def run_tool(req: ToolRequest, config: RunnableConfig) -> dict[str, list[AnyMessage]]:
        return {"messages": [executor.run(req, config)]}

    async def arun_tool(req: ToolRequest, config: RunnableConfig) -> dict[str, list[AnyMessage]]:
        return {"messages": [await executor.arun(req, config)]}

    def route(state: AgentState) -> list[Send] | str:
        if state.get("escalation"):
            return ESCALATE_NODE
        last = state["messages"][-1] if state["messages"] else None
        if isinstance(last, AIMessage) and (last.tool_calls or last.invalid_tool_calls):
            return route_tool_calls(last, "tools")
        return END

    graph: GovernedGraph[AgentState, None, AgentState, AgentState] = GovernedGraph(AgentState)
    graph.add_node("model", RunnableLambda(model, afunc=amodel, name="model"))
    graph.add_node("tools", RunnableLambda(run_tool, afunc=arun_tool, name="tools"))
    graph.add_edge(START, "model")
    extra = add_escalation(graph, step, "model")
    graph.add_conditional_edges("model", route, ["tools", *extra, END])
    graph.add_edge("tools", "model")
    return graph
