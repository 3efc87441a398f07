"""Mermaid drawings of manager and handoff graphs, one snapshot per option combination.

Regenerate with ``PODIUM_UPDATE_SNAPSHOTS=1 pytest tests/graphs/test_drawings.py``
(the snapshots live in ``tests/graphs/snapshots/``, named ``manager_*`` and ``handoff_*``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from podium import Agent
from podium.graphs import create_agent_graph, create_handoff_graph, create_manager_graph
from podium.testing import ScriptedChatModel
from podium.tools import tool

SNAPSHOTS = Path(__file__).parent / "snapshots"


@tool
def lookup(order_id: str) -> str:
    """Look up an order."""
    return order_id


def agent(name: str, **kw: Any) -> Agent:
    return Agent(name=name, model=ScriptedChatModel([]), **kw)


def desk() -> Any:
    return create_handoff_graph(
        [agent("triage"), agent("billing")], default_agent="triage", name="support_desk"
    )


CASES: dict[str, Callable[[], Any]] = {
    "manager_basic": lambda: create_manager_graph(
        agent("boss"), [agent("research"), agent("writer")]
    ),
    "manager_tools_and_graph_specialists": lambda: create_manager_graph(
        agent("boss", tools=[lookup]),
        [
            desk(),
            create_agent_graph(agent("inner")).compile(name="solo"),
            agent("analyst", tools=[lookup]),
        ],
        max_rounds=3,
        name="ops",
    ),
    "handoff_all_to_all": lambda: create_handoff_graph(
        [agent("triage"), agent("billing"), agent("tech")], default_agent="triage"
    ),
    "handoff_routes_and_history": lambda: create_handoff_graph(
        [agent("triage"), agent("billing"), agent("tech"), agent("admin")],
        default_agent="triage",
        routes={"triage": ["billing", "tech"], "billing": ["triage"], "tech": ["admin"]},
        history=6,
        max_handoffs=2,
    ),
    "handoff_graph_member": lambda: create_handoff_graph(
        [
            agent("triage"),
            create_manager_graph(agent("lead"), [agent("analyst")], name="research"),
        ],
        default_agent="triage",
        history=lambda messages: messages[-4:],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_drawing_matches_snapshot(case: str) -> None:
    drawing = CASES[case]().compile().get_graph().draw_mermaid()
    path = SNAPSHOTS / f"{case}.mmd"
    if os.environ.get("PODIUM_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(drawing)
    assert path.exists(), f"No snapshot {path.name}; run with PODIUM_UPDATE_SNAPSHOTS=1."
    assert drawing == path.read_text(), (
        f"The drawing of {case} changed; if intended, rerun with PODIUM_UPDATE_SNAPSHOTS=1."
    )


def test_drawings_show_routes_not_just_nodes() -> None:
    graph = CASES["handoff_routes_and_history"]().compile().get_graph()
    edges = {(e.source, e.target) for e in graph.edges}
    assert ("triage", "billing") in edges
    assert ("tech", "admin") in edges
    assert ("billing", "tech") not in edges  # not a declared route
    assert ("admin", "__end__") in edges
    manager = CASES["manager_basic"]().compile().get_graph()
    edges = {(e.source, e.target) for e in manager.edges}
    assert {("boss", "research"), ("research", "boss"), ("boss", "tools")} <= edges
