"""A complete trace: pipeline stages, reworks and action gates, parallel branches,
quorum and join are run events in the run ledger, shown by ``render_trace`` and
``plot_timeline``. Every run is the plain ``invoke`` a user makes, on a real SQLite file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AnyMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from pydantic import BaseModel
from rich.console import Console

from podium import Agent, runs
from podium.checkpoints import sqlite_saver
from podium.errors import QuorumNotMetError
from podium.graphs import (
    Rework,
    Stage,
    StageInput,
    create_parallel_graph,
    create_pipeline_graph,
)
from podium.observe import RunEvent, RunLedgerHandler, render_trace, timeline
from podium.testing import ScriptedChatModel
from podium.tools import Decision

CFG = {"configurable": {"thread_id": "trace"}}


class Facts(BaseModel):
    facts: list[str]


def of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == kind]


def text_of(events: list[dict[str, Any]]) -> str:
    console = Console(record=True, width=220)
    render_trace(events, console, title="trace")
    return console.export_text()


# -- a pipeline: stages, a rework, an action gate -----------------------------------------------
def check(inp: StageInput) -> Any:
    if len(inp.previous.facts) < 2:
        return Rework(to="research", feedback="Find at least two facts.")
    return inp.previous


def publish(inp: StageInput) -> str:
    return f"published {len(inp.previous.facts)} facts"


@pytest.fixture
def pipeline_run(tmp_path: Path) -> list[dict[str, Any]]:
    researcher = Agent(
        name="researcher",
        model=ScriptedChatModel(['{"facts": ["a"]}', '{"facts": ["a", "b"]}']),
    )
    app = create_pipeline_graph(
        [
            Stage("research", researcher, Facts),
            Stage("check", check, Facts),
            Stage("publish", publish, action=True),
        ],
        name="release",
    ).compile(checkpointer=sqlite_saver(tmp_path / "runs.sqlite"))
    app.invoke({"messages": [("user", "Research X and publish")]}, CFG)
    [request] = runs.pending(app, CFG)
    assert (request.agent, request.tool) == ("release", "publish")
    out = runs.decide(app, CFG, {request.id: Decision.approve(by="alice")})
    assert out["messages"][-1].content == "published 2 facts"
    return runs.events(app, CFG)


def test_stage_events_say_each_stage_ran_how_long_and_how_it_ended(
    pipeline_run: list[dict[str, Any]],
) -> None:
    finished = of(pipeline_run, "stage_finished")
    assert [
        (e["name"], e["status"], e["data"]["outcome"], e["data"]["round"]) for e in finished
    ] == [
        ("research", "ok", "done", 0),
        ("check", "ok", "rework", 0),
        ("research", "ok", "done", 1),
        ("check", "ok", "done", 1),
        ("publish", "interrupted", "interrupted", 1),  # its gate asked a human
        ("publish", "ok", "done", 1),
    ]
    assert {e["agent"] for e in finished} == {"release"}
    assert all(e["ended_at"] >= e["started_at"] for e in finished)
    # the agent stage's span holds its model call
    [first] = [e for e in finished if e["name"] == "research"][:1]
    [call] = of(pipeline_run, "model")[:1]
    assert first["started_at"] <= call["started_at"] <= call["ended_at"] <= first["ended_at"]
    assert call["agent"] == "researcher"
    started = of(pipeline_run, "stage_started")
    assert [e["name"] for e in started] == [e["name"] for e in finished]
    assert [e["run_id"] for e in started] == [e["run_id"] for e in finished]
    assert started[2]["data"]["feedback"] == "Find at least two facts."


def test_a_rework_is_an_event_from_to_with_feedback_and_round(
    pipeline_run: list[dict[str, Any]],
) -> None:
    [rework] = of(pipeline_run, "rework")
    assert rework["agent"] == "release"
    assert rework["name"] == "check -> research"
    assert {k: rework["data"][k] for k in ("from", "to", "feedback", "round")} == {
        "from": "check",
        "to": "research",
        "feedback": "Find at least two facts.",
        "round": 1,
    }


def test_gate_approvals_are_in_the_trace_with_their_stage(
    pipeline_run: list[dict[str, Any]],
) -> None:
    [asked] = of(pipeline_run, "approval_requested")
    [decided] = of(pipeline_run, "approval_decided")
    for event in (asked, decided):
        assert (event["agent"], event["name"], event["data"]["stage"]) == (
            "release",
            "publish",
            "publish",
        )
    assert decided["data"]["by"] == "alice"
    assert asked["data"]["args"] == {"facts": ["a", "b"]}


def test_render_trace_shows_stages_reworks_and_gates(pipeline_run: list[dict[str, Any]]) -> None:
    rows = timeline(pipeline_run)
    # a finished stage is one row (its start is folded into the span)
    assert [r.kind for r in rows].count("stage_started") == 0
    assert [r.kind for r in rows].count("stage_finished") == 6
    text = text_of(pipeline_run)
    assert "check -> research" in text
    assert "round 1: Find at least two facts." in text
    assert "sent back to research" in text
    assert "gate before stage publish" in text
    assert "waiting for a human" in text
    # stages are # bars on the run's time axis; the rework an arrow back to research
    [line] = [line for line in text.splitlines() if "check -> research" in line]
    assert "<-" in line
    assert any("#" in line and "research" in line for line in text.splitlines())


def test_a_stage_that_never_finished_keeps_its_started_row() -> None:
    started = {"kind": "stage_started", "name": "s", "run_id": "r1", "started_at": 1.0}
    other = {"kind": "stage_finished", "name": "s", "run_id": "r2", "started_at": 2.0}
    assert [r.kind for r in timeline([started, other])] == ["stage_started", "stage_finished"]


def test_a_failing_stage_finishes_with_its_error(tmp_path: Path) -> None:
    def broken(inp: StageInput) -> str:
        raise ValueError("no data")

    app = create_pipeline_graph([Stage("load", broken)]).compile(
        checkpointer=sqlite_saver(tmp_path / "runs.sqlite")
    )
    with pytest.raises(ValueError, match="no data"):
        app.invoke({"messages": [("user", "go")]}, CFG)
    [finished] = of(runs.events(app, CFG), "stage_finished")
    assert (finished["agent"], finished["name"], finished["status"]) == (
        "pipeline",
        "load",
        "error",
    )
    assert finished["data"]["error"] == "ValueError: no data"


async def test_stage_events_under_ainvoke() -> None:
    async def first(inp: StageInput) -> str:
        return "one"

    collected: list[RunEvent] = []
    handler = RunLedgerHandler(collected.extend)
    app = create_pipeline_graph([Stage("a", first), Stage("b", lambda inp: "two")]).compile()
    await app.ainvoke({"messages": [("user", "go")]}, {"callbacks": [handler]})
    handler.close()
    finished = [e for e in collected if e.kind == "stage_finished"]
    assert [(e.name, e.data["outcome"]) for e in finished] == [("a", "done"), ("b", "done")]
    assert all(e.ended_at is not None and e.ended_at >= e.started_at for e in finished)


# -- a parallel vote with one failing reviewer --------------------------------------------------
class _S(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def crashing(name: str) -> Any:
    def crash(state: _S) -> dict[str, Any]:
        raise RuntimeError("reviewer crashed")

    graph = StateGraph(_S)
    graph.add_node("review", crash)
    graph.add_edge(START, "review")
    graph.add_edge("review", END)
    return graph.compile(name=name)


def reviewer(name: str, verdict: str) -> Agent:
    return Agent(name=name, model=ScriptedChatModel([verdict]))


def test_a_vote_that_met_quorum_tells_the_user_a_reviewer_failed(tmp_path: Path) -> None:
    app = create_parallel_graph(
        [reviewer("r1", "Approve."), reviewer("r2", "approve"), crashing("r3")],
        join="vote",
        quorum=2,
        name="reviewers",
    ).compile(checkpointer=sqlite_saver(tmp_path / "runs.sqlite"))
    out = app.invoke({"messages": [("user", "Ship it?")]}, CFG)
    answer = out["messages"][-1]
    assert answer.content == (
        "Approve.\n\n(Note: 1 of 3 branches failed: r3 (RuntimeError: reviewer crashed).)"
    )
    assert answer.response_metadata["podium_answer"] == "Approve."
    assert out["join_result"]["failed"] == {"r3": "RuntimeError: reviewer crashed"}

    events = runs.events(app, CFG)
    branches = {e["agent"]: e for e in of(events, "branch")}
    assert {a: (e["name"], e["status"]) for a, e in branches.items()} == {
        "r1": ("reviewers", "ok"),
        "r2": ("reviewers", "ok"),
        "r3": ("reviewers", "error"),
    }
    assert branches["r3"]["data"]["error"] == "RuntimeError: reviewer crashed"
    assert all(e["ended_at"] >= e["started_at"] for e in branches.values())
    [quorum] = of(events, "quorum")
    assert quorum["agent"] == "reviewers"
    assert quorum["status"] == "ok"
    assert {k: quorum["data"][k] for k in ("met", "required", "succeeded", "failed")} == {
        "met": True,
        "required": 2,
        "succeeded": ["r1", "r2"],
        "failed": {"r3": "RuntimeError: reviewer crashed"},
    }
    [join] = of(events, "join")
    assert (join["agent"], join["name"]) == ("reviewers", "vote")
    assert join["data"]["result"]["votes"] == {"approve": ["r1", "r2"]}
    assert join["data"]["result"]["winner"] == "approve"
    assert join["data"]["failed"] == {"r3": "RuntimeError: reviewer crashed"}

    text = text_of(events)
    assert "2 of 3 succeeded, 2 required: met; failed: r3 (RuntimeError: reviewer crashed)" in text
    assert "votes 'approve': 2; winner 'approve'" in text


def test_a_missed_quorum_is_an_error_event(tmp_path: Path) -> None:
    app = create_parallel_graph([reviewer("r1", "yes"), crashing("r2")], name="pair").compile(
        checkpointer=sqlite_saver(tmp_path / "runs.sqlite")
    )
    with pytest.raises(QuorumNotMetError):
        app.invoke({"messages": [("user", "go")]}, CFG)
    events = runs.events(app, CFG)
    [quorum] = of(events, "quorum")
    assert quorum["status"] == "error"
    assert (quorum["data"]["met"], quorum["data"]["required"]) == (False, 2)
    assert of(events, "join") == []
    assert "1 of 2 succeeded, 2 required: NOT met" in text_of(events)


def test_the_timeline_legend_lists_the_error_bars_it_draws(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from podium.observe import plot_timeline

    app = create_parallel_graph(
        [reviewer("r1", "yes"), reviewer("r2", "yes"), crashing("r3")], join="vote", quorum=2
    ).compile(checkpointer=sqlite_saver(tmp_path / "runs.sqlite"))
    app.invoke({"messages": [("user", "go")]}, CFG)
    ax = plot_timeline(runs.events(app, CFG))
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["model call", "parallel branch", "error", "quorum, join"]
    reds = [p for p in ax.patches if p.get_facecolor() == matplotlib.colors.to_rgba("tab:red")]
    assert len(reds) == 1  # the failed branch's bar, and the legend says what red means
    plt.close(ax.figure)


def test_the_legend_of_a_pipeline_run(pipeline_run: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from podium.observe import plot_timeline

    ax = plot_timeline(pipeline_run)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["model call", "pipeline stage", "rework", "approval"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["release", "researcher"]
    plt.close(ax.figure)


async def test_branch_quorum_and_join_events_under_ainvoke() -> None:
    collected: list[RunEvent] = []
    handler = RunLedgerHandler(collected.extend)
    app = create_parallel_graph(
        [reviewer("r1", "yes"), reviewer("r2", "no"), crashing("r3")], join="vote", quorum=2
    ).compile()
    out = await app.ainvoke({"messages": [("user", "go")]}, {"callbacks": [handler]})
    handler.close()
    assert out["messages"][-1].content.startswith("No majority: the branches tied 1-1")
    assert "(Note: 1 of 3 branches failed: r3 (RuntimeError: reviewer crashed).)" in (
        out["messages"][-1].content
    )
    by_kind = {e.kind: e for e in collected if e.kind in ("quorum", "join")}
    assert by_kind["quorum"].data["failed"] == {"r3": "RuntimeError: reviewer crashed"}
    assert by_kind["join"].agent == "parallel"
    assert by_kind["join"].data["result"]["tie"] is True
    assert sorted((e.agent, e.status) for e in collected if e.kind == "branch") == [
        ("r1", "ok"),
        ("r2", "ok"),
        ("r3", "error"),
    ]
