"""Routing helpers shared by the manager and handoff patterns.

Both patterns run members from inside their own nodes and splice what the member
said into a shared conversation, so both need the same small pieces: build-time
checks on options, a member's final answer as text, and message ids that stay
unique when several models (whose ids may repeat) write to one history.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, ToolMessage

from podium.agents import Agent
from podium.agents._models import check_model_spec
from podium.agents._spec import validate_name
from podium.agents._structured import FINAL_ANSWER
from podium.errors import ConfigurationError
from podium.graphs._members import Member
from podium.tools import Policy

__all__ = [
    "check_graph_options",
    "check_loop_agent",
    "check_positive",
    "final_text",
    "fresh_ids",
    "history_view",
    "last_ai_message",
    "new_messages",
    "route_table",
    "since_last_human",
]

_NS = uuid.UUID("2b7c9e4e-51b8-4d8a-9d0f-6a3c1f0e7b21")


def check_graph_options(
    factory: str, policy: object, name: object, description: object
) -> tuple[str | None, str]:
    """Validate the ``policy=``, ``name=`` and ``description=`` every factory takes.

    Returns:
        The name (validated, or ``None``) and the description.

    Raises:
        ConfigurationError: Naming the bad option and what is allowed.
    """
    if policy is not None and not isinstance(policy, Policy):
        raise ConfigurationError(
            f"{factory}: policy must be a podium Policy, got {type(policy).__name__}.",
            fix="Pass policy=Policy(rules=[Rule(...)]), or leave it out to allow every "
            "granted call.",
        )
    if name is not None:
        validate_name(name, "graph")
    if not isinstance(description, str):
        raise ConfigurationError(
            f"{factory}: description must be a string, got {type(description).__name__}.",
            fix="Pass description='One line saying what this graph does'.",
        )
    return (name if isinstance(name, str) else None), description


def check_positive(factory: str, option: str, value: object, *, minimum: int = 1) -> int:
    """Check that an integer option is at least ``minimum``.

    Raises:
        ConfigurationError: If it is not an integer or is too small.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(
            f"{factory}: {option} must be an integer >= {minimum}, got {value!r}.",
            fix=f"Pass {option}={max(minimum, 1)} or larger.",
        )
    return value


def check_loop_agent(agent: Agent, extra_tools: Collection[str], role: str) -> None:
    """Check an agent whose loop a pattern builds with ``extra_tools`` added.

    Raises:
        ConfigurationError: If the model spec is invalid, or an added tool collides
            with one of the agent's own tools or with the JSON-mode reserved name.
    """
    check_model_spec(agent.model)
    for extra in extra_tools:
        if extra in agent.tool_names:
            raise ConfigurationError(
                f"{role} {agent.name!r} has a tool named {extra!r}, which is also the name "
                f"of the tool the pattern gives it for {extra!r}; the model could not tell "
                "them apart.",
                fix="Rename the tool or the member it collides with.",
            )
    names = {*agent.tool_names, *extra_tools}
    if agent.tool_calling != "native" and FINAL_ANSWER in names:
        raise ConfigurationError(
            f"{role} {agent.name!r} would see a tool named {FINAL_ANSWER!r}, which JSON tool "
            "calling reserves for the final reply.",
            fix="Rename that tool or member, or set tool_calling='native'.",
        )


def final_text(output: object, member: str) -> str:
    """The text of the last message of a member's output state."""
    messages = output.get("messages") if isinstance(output, Mapping) else None
    if not messages:
        return f"({member} returned no messages)"
    last = messages[-1]
    text = last.text if isinstance(last, BaseMessage) else str(last)
    return text or f"({member} returned an empty answer)"


def last_ai_message(messages: Sequence[AnyMessage]) -> AIMessage | None:
    """The most recent ``AIMessage``, if any."""
    for m in reversed(messages):
        if isinstance(m, AIMessage):
            return m
    return None


def since_last_human(messages: Sequence[AnyMessage]) -> list[AnyMessage]:
    """The messages of the current turn: those after the last ``HumanMessage``."""
    for i in range(len(messages) - 1, -1, -1):
        if isinstance(messages[i], HumanMessage):
            return list(messages[i + 1 :])
    return list(messages)


def fresh_ids(messages: Iterable[BaseMessage], taken: Collection[str | None]) -> list[AnyMessage]:
    """Give each message whose id is already ``taken`` a new, deterministic id.

    The shared ``messages`` channel replaces a message when a write reuses its id.
    Different models may reuse ids (a scripted model numbers its replies from 1),
    so a member's reply must never silently overwrite another member's message.
    """
    seen = set(taken)
    out: list[Any] = []
    for m in messages:
        if m.id is not None and m.id in seen:
            n = 0
            new_id = m.id
            while new_id in seen:
                n += 1
                new_id = str(uuid.uuid5(_NS, f"{m.id}:{len(seen)}:{n}"))
            m = m.model_copy(update={"id": new_id})
        seen.add(m.id)
        out.append(m)
    return out


def new_messages(
    view: Sequence[AnyMessage], output: Any, taken: Collection[str | None]
) -> list[AnyMessage]:
    """What a member added to the ``view`` it was given, with ids unique in ``taken``.

    Args:
        view: The messages the member was invoked with.
        output: The member's output state.
        taken: Ids already used in the conversation the new messages join.
    """
    given = {m.id for m in view}
    produced = list(output.get("messages") or []) if isinstance(output, Mapping) else []
    added = [m for m in produced if isinstance(m, BaseMessage) and m.id not in given]
    return fresh_ids(added, taken)


def history_view(history: object) -> Callable[[list[AnyMessage]], list[AnyMessage]]:
    """Turn a handoff graph's ``history=`` option into a function conversation -> view.

    Raises:
        ConfigurationError: If the option is not ``"full"``, a positive int or callable.
    """
    if history == "full":
        return list
    if isinstance(history, int) and not isinstance(history, bool):
        n = check_positive("create_handoff_graph", "history", history)

        def last_n(messages: list[AnyMessage]) -> list[AnyMessage]:
            view = messages[-n:]
            while view and isinstance(view[0], ToolMessage):  # never start with orphan results
                view = view[1:]
            return view

        return last_n
    if callable(history):
        chooser = history

        def chosen(messages: list[AnyMessage]) -> list[AnyMessage]:
            view = chooser(list(messages))
            if not isinstance(view, Sequence) or not all(isinstance(m, BaseMessage) for m in view):
                raise ConfigurationError(
                    f"The history= function must return a list of messages, got {view!r:.80}.",
                    fix="Return a list of langchain messages, e.g. messages[-6:].",
                )
            return list(view)

        return chosen
    raise ConfigurationError(
        f"create_handoff_graph: history={history!r} is not 'full', a positive integer (the "
        "last n messages) or a function of the conversation.",
        fix="Pass history='full', history=10, or history=lambda messages: messages[-10:].",
    )


def route_table(routes: object, members: Mapping[str, Member]) -> dict[str, tuple[str, ...]]:
    """Validate a handoff graph's ``routes=`` and return ``{agent: allowed targets}``.

    ``None`` means every Agent may transfer to every other member; graph members
    never transfer.

    Raises:
        ConfigurationError: For a route from an unknown member or a graph member, to
            an unknown member or to itself, or a malformed mapping.
    """
    names = list(members)
    agents = [n for n, m in members.items() if isinstance(m, Agent)]
    if routes is None:
        return {a: tuple(n for n in names if n != a) for a in agents}
    if not isinstance(routes, Mapping):
        raise ConfigurationError(
            f"routes must map an agent name to the names it may transfer to, got "
            f"{type(routes).__name__}.",
            fix='Pass routes={"triage": ["billing", "tech"], "billing": ["triage"]}.',
        )
    table: dict[str, tuple[str, ...]] = {a: () for a in agents}
    for source, targets in routes.items():
        if source not in members:
            raise ConfigurationError(
                f"routes has a route from {source!r}, which is not an agent of this graph. "
                f"Agents: {', '.join(names)}.",
                fix="Use the agents' names as the keys of routes.",
            )
        if source not in agents:
            raise ConfigurationError(
                f"routes has a route from {source!r}, a graph member; only Agents get "
                "transfer tools (a graph member answers and ends the turn).",
                fix=f"Remove {source!r} from the keys of routes.",
            )
        if isinstance(targets, str) or not isinstance(targets, Sequence):
            raise ConfigurationError(
                f"routes[{source!r}] must be a list of agent names, got {targets!r}.",
                fix=f'Pass routes={{"{source}": ["other_agent"]}}.',
            )
        for target in targets:
            if target not in members or target == source:
                why = "itself" if target == source else "an agent that does not exist"
                raise ConfigurationError(
                    f"routes has a route {source!r} -> {target!r}, to {why}. Possible "
                    f"targets: {', '.join(n for n in names if n != source)}.",
                    fix="Route only between different agents of this graph.",
                )
        table[source] = tuple(dict.fromkeys(targets))
    return table
