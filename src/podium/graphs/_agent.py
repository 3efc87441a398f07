"""Single-agent orchestration: often all you need."""

from __future__ import annotations

from podium.agents import Agent, Budget
from podium.agents._budget import budget_binding
from podium.agents._loop import AgentState, build_agent_loop
from podium.errors import ConfigurationError
from podium.graphs._members import check_rule_names, describe, inventory
from podium.tools import GovernedGraph, Policy

__all__ = ["create_agent_graph"]


def create_agent_graph(
    agent: Agent, *, policy: Policy | None = None, budget: Budget | None = None
) -> GovernedGraph[AgentState, None, AgentState, AgentState]:
    """Build one agent's loop as an uncompiled LangGraph ``StateGraph``.

    The loop is model → governed tool step → model … until the model answers
    without tool calls or ``agent.max_steps`` model calls were made this turn
    (then :class:`~podium.errors.MaxStepsExceededError`). Every tool call passes the
    governed executor: ungranted or unknown tools, malformed or extra arguments,
    unparseable calls and duplicate call ids come back to the model as error
    tool messages and nothing runs.

    Args:
        agent: The agent to run.
        policy: Rules applied to every tool call: allow, deny, or wait for a human
            (:class:`~podium.Policy`; default: allow every granted, well-formed call).
        budget: What the whole run (the thread) may use (:class:`~podium.Budget`),
            checked before every model call; the state's ``usage`` key holds what
            was used. ``agent.failure`` and ``agent.budget`` apply as well.

    Returns:
        An uncompiled graph; compile it with ``.compile(checkpointer=...)``.

    Raises:
        ConfigurationError: If ``agent`` is not an :class:`~podium.Agent` or its model
            spec is invalid.

    Example:
        >>> from podium import Agent
        >>> from podium.graphs import create_agent_graph
        >>> from podium.testing import ScriptedChatModel
        >>> agent = Agent(name="helper", model=ScriptedChatModel(["Hello!"]))
        >>> app = create_agent_graph(agent).compile()
        >>> app.invoke({"messages": [("user", "hi")]})["messages"][-1].content
        'Hello!'
    """
    if not isinstance(agent, Agent):
        raise ConfigurationError(
            f"create_agent_graph expects a podium Agent, got {type(agent).__name__}.",
            fix="Pass Agent(name=..., model=..., tools=[...]).",
        )
    if policy is not None and not isinstance(policy, Policy):
        raise ConfigurationError(
            f"policy must be a podium Policy, got {type(policy).__name__}.",
            fix="Pass Policy(rules=[Rule(...)]).",
        )
    binding = budget_binding("create_agent_graph", budget, agent.name)
    graph = build_agent_loop(agent, policy=policy)
    graph.podium_name = agent.name  # so the graph can stand where an agent stands
    graph.podium_description = agent.description
    graph.podium_configurable = binding
    held = inventory(agent)
    check_rule_names("create_agent_graph", policy, held)
    describe(graph, held)
    return graph
