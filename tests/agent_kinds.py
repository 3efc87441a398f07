"""One agent, two ways to build it: podium's agent graph, or LangChain's ``create_agent``
with :class:`podium.middleware.Governed` (wrapped by :func:`podium.middleware.govern`).

The governance suites (approval bypass, edits, races, crashes, the default path) build
their agent through :func:`agent_app` and run once per kind through the ``agent_kind``
fixture (tests/conftest.py), so both kinds face the same vectors and count the same side
effects. ``"create_agent"`` is what the README tells a ``create_agent`` user to run;
``tests/test_middleware.py`` covers the plain ``create_agent`` call without ``govern``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langgraph.types import Send

from podium import Agent, Policy

AGENT_KINDS = ("podium", "create_agent")
"""``podium``: ``create_agent_graph(Agent(...))``; ``create_agent``: LangChain's
``create_agent(..., middleware=[Governed(...)])`` under ``govern``."""


def agent_app(
    kind: str,
    *,
    name: str,
    model: Any,
    tools: Sequence[Any],
    policy: Policy | None = None,
    checkpointer: Any = None,
    grants: Sequence[str] | None = None,
) -> Any:
    """The compiled app of one governed agent (``grants``: the tools it may run)."""
    if kind == "podium":
        from podium.agents._loop import build_agent_loop
        from podium.graphs import create_agent_graph

        if grants is None:
            agent = Agent(name=name, model=model, tools=list(tools))
            return create_agent_graph(agent, policy=policy).compile(checkpointer=checkpointer)
        granted = [t for t in tools if t.name in grants]
        agent = Agent(name=name, model=model, tools=granted)
        known = [t.name for t in tools]
        loop = build_agent_loop(agent, known_tools=known, policy=policy)
        return loop.compile(checkpointer=checkpointer)
    if kind == "create_agent":
        from langchain.agents import create_agent

        from podium.middleware import Governed, govern

        governed = Governed(policy=policy, grants=grants)
        return govern(
            create_agent(
                model, list(tools), middleware=[governed], checkpointer=checkpointer, name=name
            )
        )
    raise ValueError(f"unknown agent kind {kind!r}")


def tool_send(kind: str, call: dict[str, Any]) -> Send:
    """A crafted ``Send`` straight at the kind's tool step, carrying ``call``."""
    if kind == "podium":
        return Send("tools", {"name": call["name"], "args": call["args"], "id": call["id"]})
    return Send("tools", [{**call, "type": "tool_call"}])
