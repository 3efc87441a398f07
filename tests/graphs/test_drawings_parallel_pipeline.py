"""Mermaid drawings of parallel and pipeline graphs, one snapshot per option combination.

Regenerate with ``PODIUM_UPDATE_SNAPSHOTS=1 pytest`` on this file
(the snapshots live in ``tests/graphs/snapshots/``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from podium import Agent
from podium.graphs import Stage, StageInput, best_of, create_parallel_graph, create_pipeline_graph
from podium.testing import ScriptedChatModel

SNAPSHOTS = Path(__file__).parent / "snapshots"


def agent(name: str) -> Agent:
    return Agent(name=name, model=ScriptedChatModel([]))


class Facts(BaseModel):
    facts: list[str]


def check(inp: StageInput) -> str:
    return "ok"


def team() -> Any:
    return create_parallel_graph([agent("web"), agent("papers")], name="research_team")


CASES: dict[str, Callable[[], Any]] = {
    "parallel_concat": lambda: create_parallel_graph([agent("a"), agent("b"), agent("c")]),
    "parallel_select_vote_quorum": lambda: create_parallel_graph(
        [agent("a"), agent("b"), agent("c")],
        join="vote",
        quorum=2,
        select=lambda state: ["a", "b"],
        branch_timeout=5,
    ),
    "parallel_best_of": lambda: create_parallel_graph(
        [agent("a"), agent("b")], join=best_of(len), max_concurrency=2
    ),
    "parallel_synthesiser": lambda: create_parallel_graph(
        [agent("pros"), agent("cons")], join=agent("editor"), name="debate"
    ),
    "parallel_with_pipeline_branch": lambda: create_parallel_graph(
        [
            create_pipeline_graph([Stage("draft", agent("d")), Stage("polish", check)], name="p"),
            agent("solo"),
        ]
    ),
    "pipeline_linear": lambda: create_pipeline_graph(
        [
            Stage("research", agent("r"), output=Facts),
            Stage("outline", check),
            Stage("write", agent("w")),
        ]
    ),
    "pipeline_rework_action": lambda: create_pipeline_graph(
        [
            Stage("research", agent("r"), output=Facts),
            Stage("review", check, rework_to="research"),
            Stage("publish", check, action=True),
        ],
        max_rework=1,
    ),
    "pipeline_parallel_stage": lambda: create_pipeline_graph(
        [Stage("research", team()), Stage("write", agent("w"), action=True)]
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
