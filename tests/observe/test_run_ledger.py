"""The run ledger: every event kind from a scripted multi-agent run, batching, failure
isolation, redaction, and the trace/cost reports."""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from rich.console import Console

from podium import Agent, runs
from podium.checkpoints import sqlite_saver
from podium.graphs import create_handoff_graph, create_manager_graph
from podium.observe import (
    REDACTED,
    RunEvent,
    RunLedgerHandler,
    cost_report,
    default_redactor,
    render_trace,
    timeline,
)
from podium.testing import ScriptedChatModel
from podium.tools import Decision, Policy, Rule, tool
from podium.tools._graph import event_store_for, run_ledger_for

CFG = {"configurable": {"thread_id": "obs"}}


def tc(name: str, args: dict[str, Any], id_: str) -> dict[str, Any]:
    return {"name": name, "args": args, "id": id_, "type": "tool_call"}


@tool(risk="high")
def refund(order: str, amount: float, api_key: str = "") -> str:
    """Refund an order."""
    return f"refunded {amount} on {order}"


def events_of(saver: Any) -> list[dict[str, Any]]:
    handler = run_ledger_for(saver)
    assert handler is not None
    handler.flush()
    store = event_store_for(saver)
    assert store is not None
    return store.events("obs")


@pytest.fixture
def manager_run(tmp_path: Path) -> list[dict[str, Any]]:
    billing = Agent(
        name="billing",
        description="Refunds",
        model=ScriptedChatModel(
            [
                AIMessage(
                    "",
                    tool_calls=[
                        tc("refund", {"order": "A", "amount": 250, "api_key": "sk-live-123"}, "r1"),
                        tc("launch", {}, "bad"),
                    ],
                ),
                "Refunded A.",
            ]
        ),
        tools=[refund],
    )
    boss = Agent(
        name="boss",
        model=ScriptedChatModel(
            [
                AIMessage("", tool_calls=[tc("billing", {"task": "refund order A"}, "d1")]),
                "All done.",
            ]
        ),
    )
    saver = sqlite_saver(tmp_path / "runs.sqlite")
    policy = Policy(rules=[Rule(tool="refund", action="approve", reason="big refund")])
    app = create_manager_graph(boss, [billing], policy=policy).compile(checkpointer=saver)
    app.invoke({"messages": [("user", "please refund A")]}, CFG)
    [request] = runs.pending(app, CFG)
    time.sleep(0.05)
    runs.decide(app, CFG, {request.id: Decision.approve(by="alice")})
    events = events_of(saver)
    saver.close()
    return events


def kinds(events: Sequence[dict[str, Any]]) -> set[str]:
    return {e["kind"] for e in events}


def test_every_event_kind_of_a_manager_run(manager_run: list[dict[str, Any]]) -> None:
    assert {
        "model",
        "tool",
        "policy",
        "approval_requested",
        "approval_decided",
        "refusal",
        "delegation",
    } <= kinds(manager_run)


def test_model_events_carry_agent_model_tokens_cost_latency(
    manager_run: list[dict[str, Any]],
) -> None:
    models = [e for e in manager_run if e["kind"] == "model"]
    assert {e["agent"] for e in models} == {"boss", "billing"}
    for e in models:
        assert e["name"] == "scripted"
        assert e["input_tokens"] > 0
        assert e["output_tokens"] > 0
        assert e["cost"] == 0.0
        assert e["ended_at"] >= e["started_at"]
        assert e["data"]["finish_reason"] in ("stop", "tool_calls")
        assert e["thread_id"] == "obs"


def test_tool_policy_and_approval_events(manager_run: list[dict[str, Any]]) -> None:
    refund_runs = [e for e in manager_run if e["kind"] == "tool" and e["name"] == "refund"]
    assert len(refund_runs) == 1
    assert refund_runs[0]["agent"] == "billing"
    assert refund_runs[0]["status"] == "ok"
    decisions = [e for e in manager_run if e["kind"] == "policy" and e["name"] == "refund"]
    assert decisions
    assert {d["data"]["action"] for d in decisions} == {"approve"}
    assert decisions[0]["data"]["args"]["api_key"] == REDACTED
    assert decisions[0]["data"]["args"]["amount"] == 250
    # checked when asked, and checked again when the run resumed with the decision
    assert [d["data"].get("recheck", False) for d in decisions] == [False, True]
    assert [r.detail.split(", ")[:2] for r in timeline(decisions)] == [
        ["action=approve", "reason=big refund"],
        ["action=approve", "recheck=True"],
    ]
    [requested] = [e for e in manager_run if e["kind"] == "approval_requested"]
    [decided] = [e for e in manager_run if e["kind"] == "approval_decided"]
    assert requested["data"]["request_id"] == decided["data"]["request_id"]
    assert decided["data"]["by"] == "alice"
    assert decided["data"]["action"] == "approve"
    assert decided["data"]["waited_seconds"] >= 0.05
    [refused] = [e for e in manager_run if e["kind"] == "refusal"]
    assert refused["name"] == "launch"
    assert refused["data"]["code"] == "unknown_tool"
    delegations = [e for e in manager_run if e["kind"] == "delegation"]
    assert {(d["agent"], d["name"], d["data"]["task"]) for d in delegations} == {
        ("boss", "billing", "refund order A")
    }
    interrupted = [e for e in manager_run if e["kind"] == "tool" and e["name"] == "billing"]
    assert {e["status"] for e in interrupted} == {"interrupted", "ok"}


def test_handoff_events(tmp_path: Path) -> None:
    triage = Agent(
        name="triage",
        model=ScriptedChatModel(
            [AIMessage("", tool_calls=[tc("transfer_to_billing", {"reason": "refund"}, "h1")])]
        ),
    )
    billing = Agent(name="billing", model=ScriptedChatModel(["I can help."]))
    saver = sqlite_saver(tmp_path / "runs.sqlite")
    app = create_handoff_graph([triage, billing], default_agent="triage").compile(
        checkpointer=saver
    )
    app.invoke({"messages": [("user", "refund")]}, CFG)
    [handoff] = [e for e in events_of(saver) if e["kind"] == "handoff"]
    assert (handoff["agent"], handoff["name"], handoff["data"]["reason"]) == (
        "triage",
        "billing",
        "refund",
    )
    saver.close()


def test_reports(manager_run: list[dict[str, Any]]) -> None:
    rows = timeline(manager_run)
    assert rows[0].offset == 0.0
    assert all(a.offset <= b.offset for a, b in itertools.pairwise(rows))
    report = cost_report(manager_run)
    assert set(report) == {"boss", "billing"}
    assert report["billing"].items["tool:refund"].calls == 1
    assert report["boss"].items["model:scripted"].calls == 2
    console = Console(record=True, width=160)
    render_trace(manager_run, console, title="obs")
    text = console.export_text()
    assert "approval_decided" in text
    assert "per agent" in text


def test_a_failing_sink_never_fails_the_run_and_drops_are_counted() -> None:
    def broken(batch: Sequence[RunEvent]) -> None:
        raise OSError("disk full")

    handler = RunLedgerHandler(broken, interval=0.01)
    for i in range(5):
        handler._put(RunEvent(kind="policy", thread_id=str(i)))
    handler.flush()
    assert handler.dropped == 5
    assert handler.written == 0


def test_events_are_written_in_batches() -> None:
    batches: list[int] = []
    handler = RunLedgerHandler(lambda b: batches.append(len(b)), batch_size=50, interval=0.01)
    for i in range(120):
        handler._put(RunEvent(kind="policy", thread_id=str(i)))
    handler.flush()
    assert sum(batches) == 120
    assert max(batches) <= 50
    assert len(batches) < 120


def test_a_full_buffer_drops_and_counts_instead_of_blocking() -> None:
    written: list[str] = []
    handler = RunLedgerHandler(
        lambda b: written.extend(e.thread_id for e in b), max_queue=10, interval=60
    )
    for i in range(15):
        handler._put(RunEvent(kind="policy", thread_id=str(i)))
    assert handler.dropped == 5
    handler.flush()
    assert written == [str(i) for i in range(10)]
    assert handler.written == 10


def test_close_writes_what_is_queued_and_stops_the_writer() -> None:
    written: list[str] = []
    handler = RunLedgerHandler(lambda b: written.extend(e.thread_id for e in b), interval=60)
    handler._put(RunEvent(kind="policy", thread_id="last"))
    handler.close()
    assert written == ["last"]
    assert not handler._thread.is_alive()


def test_ledger_off_records_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_RUN_LEDGER", "off")
    saver = sqlite_saver(tmp_path / "runs.sqlite")
    assert run_ledger_for(saver) is None
    assert event_store_for(saver) is None
    saver.close()


def test_default_redactor() -> None:
    data = {
        "user": "bo",
        "Password": "x",
        "nested": [{"refresh_token": "t", "n": 1}],
        "AUTHORIZATION": "Bearer z",
    }
    assert default_redactor(data) == {
        "user": "bo",
        "Password": REDACTED,
        "nested": [{"refresh_token": REDACTED, "n": 1}],
        "AUTHORIZATION": REDACTED,
    }


def test_plot_timeline_draws_a_lane_per_agent(manager_run: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from podium.observe import plot_timeline

    ax = plot_timeline(manager_run)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["billing", "boss"]
    assert len(ax.patches) == sum(1 for e in manager_run if e["kind"] in ("model", "tool"))


def test_draw_run_highlights_the_path_taken(tmp_path: Path) -> None:
    from podium.graphs import create_agent_graph
    from podium.observe import draw_run

    saver = sqlite_saver(tmp_path / "runs.sqlite")
    agent = Agent(name="solo", model=ScriptedChatModel(["hi"]), tools=[refund])
    app = create_agent_graph(agent).compile(checkpointer=saver)
    app.invoke({"messages": [("user", "x")]}, CFG)
    drawing = draw_run(app, CFG)
    assert drawing.startswith(app.get_graph().draw_mermaid().rstrip())
    assert drawing.rstrip().endswith("class __start__,model taken;")  # tools never ran
    saver.close()
