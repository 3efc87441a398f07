"""Members: what can stand where an agent stands (an Agent, or any pattern graph).

Every pattern factory takes members -- :class:`~podium.Agent` objects or pattern
graphs, compiled or not -- and needs the same three things from each: a name, a
description, and a runnable that takes ``{"messages": [...]}`` and returns the
member's final ``{"messages": [...]}``. This module is the one place that knows how.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import merge_configs
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

from podium.agents import Agent
from podium.agents._budget import Usage, member_config
from podium.agents._loop import build_agent_loop
from podium.agents._spec import validate_name
from podium.errors import ConfigurationError
from podium.observe._scope import SCOPE_KEY, scope_of, scoped
from podium.tools import GovernedGraph, Policy
from podium.tools._app import EFFECTS_KEY
from podium.tools._decisions import with_policy
from podium.tools._decorator import traits_of
from podium.tools._graph import DESCRIPTION_KEY, NAMES_KEY

__all__ = [
    "NOTHING",
    "Inventory",
    "Member",
    "check_members",
    "check_rule_names",
    "describe",
    "enter",
    "inventory",
    "inventory_of",
    "member_description",
    "member_name",
    "member_runnable",
    "member_scope",
    "member_tool_names",
    "run_config",
]

Member = Agent | StateGraph[Any, Any, Any, Any] | Pregel[Any, Any, Any, Any]
"""An Agent, or a pattern graph (compiled or not) standing where an agent stands."""


def member_name(member: object) -> str:
    """The member's name (an agent's name, or a graph's ``name=``)."""
    if isinstance(member, Agent):
        return member.name
    if isinstance(member, GovernedGraph):
        name = member.podium_name
    elif isinstance(member, Pregel):
        name = member.name
    elif isinstance(member, StateGraph):
        name = None
    else:
        raise ConfigurationError(
            f"{member!r} cannot stand where an agent stands; members are podium Agents or "
            "LangGraph graphs (compiled or not) whose state has 'messages'.",
            fix="Wrap logic in an Agent, or build it with a podium create_*_graph factory.",
        )
    if not name or name == "LangGraph":
        raise ConfigurationError(
            f"A graph used as a member needs a name; {type(member).__name__} has none.",
            fix="Pass name='...' to the podium factory that built it, or compile it with "
            ".compile(name='...').",
        )
    return validate_name(name, "member")


def member_description(member: object) -> str:
    """What the member does (for managers and handoff peers)."""
    if isinstance(member, Agent):
        return member.description
    if isinstance(member, GovernedGraph):
        return member.podium_description
    if isinstance(member, Pregel):
        return str(((member.config or {}).get("configurable") or {}).get(DESCRIPTION_KEY, ""))
    return ""


def member_tool_names(member: object) -> set[str]:
    """Names of the tools an Agent member is granted (graphs govern their own)."""
    return set(member.tool_names) if isinstance(member, Agent) else set()


def check_members(members: Iterable[object], what: str) -> list[str]:
    """Validate a group of members: at least one, names valid and unique.

    Returns:
        The names, in order.

    Raises:
        ConfigurationError: Saying which name is duplicated or invalid.
    """
    items = list(members)
    if not items:
        raise ConfigurationError(f"No {what} given; at least one is required.")
    names = [member_name(m) for m in items]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ConfigurationError(
                f"Two {what} are named {name!r}; names must be unique within a graph.",
                fix="Rename one of them.",
            )
        seen.add(name)
    return names


def member_runnable(
    member: Member,
    *,
    known_tools: Collection[str] = (),
) -> Pregel[Any, Any, Any, Any]:
    """A compiled graph for the member, ready to be a node or to be invoked in one.

    An Agent becomes its agent loop; an uncompiled graph is compiled without a
    checkpointer (so it runs as a subgraph on its parent's); a compiled graph is used
    as it is. The enclosing graph's policy reaches the member through the config it
    runs it with (:func:`run_config`), at any depth.
    """
    if isinstance(member, Agent):
        loop = build_agent_loop(member, known_tools=known_tools)
        return loop.compile(checkpointer=None, name=member.name)
    if isinstance(member, Pregel):
        return member
    if isinstance(member, StateGraph):
        return member.compile(name=member_name(member))
    raise ConfigurationError(f"{member!r} is not an Agent or a graph.")


def member_scope(member: object) -> str | None:
    """The segment a member adds to its agents' paths: a graph's name (Agents add none).

    See :mod:`podium.observe._scope`: an agent ``cashier`` of a graph member named
    ``support_desk`` shows as ``support_desk/cashier``.
    """
    return None if isinstance(member, Agent) else member_name(member)


def enter(config: RunnableConfig, scope: str | None) -> RunnableConfig:
    """The config to run a graph member named ``scope`` with (unchanged for ``None``).

    The one place a path segment is added (:mod:`podium.observe._scope`).
    """
    if scope is None:
        return config
    return merge_configs(config, {"metadata": {SCOPE_KEY: scoped(scope_of(config), scope)}})


def run_config(
    config: RunnableConfig,
    usage: Usage | None,
    policy: Policy | None,
    scope: str | None = None,
) -> RunnableConfig:
    """The config a pattern runs a member with.

    It carries the run's usage so far and the pattern's policy, passed down after
    the enclosing graphs' (see :func:`~podium.tools._decisions.with_policy`), and for
    a graph member (``scope``: its :func:`member_scope`) the member's name in the
    path its agents show under.
    """
    return enter(with_policy(member_config(config, usage), policy), scope)


@dataclass(frozen=True)
class Inventory:
    """What a group of members holds, at any depth."""

    tools: frozenset[str] | None
    """Every tool name (``None``: unknown -- a member is not a podium graph)."""
    agents: frozenset[str] | None
    """Every Agent name (``None``: unknown)."""
    effects: bool
    """Whether any of them can have a side effect."""

    def __or__(self, other: Inventory) -> Inventory:
        tools = None if self.tools is None or other.tools is None else self.tools | other.tools
        agents = None if self.agents is None or other.agents is None else self.agents | other.agents
        return Inventory(tools, agents, self.effects or other.effects)


NOTHING = Inventory(frozenset(), frozenset(), False)
"""The inventory of no members."""


def inventory(member: object) -> Inventory:
    """What one member holds: its tools and agents at any depth, and whether it acts."""
    if isinstance(member, Agent):
        effects = any(not traits_of(t).read_only for t in member.granted_tools)
        return Inventory(frozenset(member.tool_names), frozenset({member.name}), effects)
    if isinstance(member, GovernedGraph):
        return Inventory(member.podium_tools, member.podium_agents, member.podium_effects)
    if isinstance(member, Pregel):
        conf = (member.config or {}).get("configurable") or {}
        names = conf.get(NAMES_KEY)
        effects = bool(conf.get(EFFECTS_KEY, True))
        if isinstance(names, dict):
            tools, agents = names.get("tools") or [], names.get("agents") or []
            return Inventory(frozenset(tools), frozenset(agents), effects)
        return Inventory(None, None, effects)
    return Inventory(None, None, True)


def inventory_of(members: Iterable[object]) -> Inventory:
    """What a group of members holds (see :func:`inventory`)."""
    found = NOTHING
    for member in members:
        found = found | inventory(member)
    return found


def describe(graph: GovernedGraph[Any, Any, Any, Any], held: Inventory) -> None:
    """Record on a factory's graph what it holds (for outer graphs and compile)."""
    graph.podium_tools, graph.podium_agents = held.tools, held.agents
    graph.podium_effects = held.effects


def check_rule_names(factory: str, policy: Policy | None, held: Inventory) -> None:
    """Refuse a rule that names a tool or an agent no member of the graph has.

    A typo in ``Rule(tool=...)`` would otherwise build fine and govern nothing. The
    check is skipped when a member is not a podium graph (its names are unknown).

    Raises:
        ConfigurationError: Naming the unknown names and listing the known ones.
    """
    if policy is None or held.tools is None or held.agents is None:
        return
    for index, rule in enumerate(policy.rules):
        for what, named, known in (
            ("tool", rule.tool_names, held.tools),
            ("agent", rule.agent_names, held.agents),
        ):
            unknown = ", ".join(map(repr, sorted((named or frozenset()) - known)))
            if unknown:
                raise ConfigurationError(
                    f"{factory}: policy rule {index} names {what}(s) {unknown}, which no "
                    f"member of this graph has, so it would govern nothing. Known "
                    f"{what}s: {', '.join(sorted(known)) or '(none)'}.",
                    fix=f"Fix the {what} name in Rule({what}=...), or remove the rule.",
                )


def all_tool_names(members: Sequence[object]) -> set[str]:
    """Every tool granted to any Agent member."""
    names: set[str] = set()
    for m in members:
        names |= member_tool_names(m)
    return names
