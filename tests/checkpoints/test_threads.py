"""The thread registry: every top-level run of a podium graph writes its thread's row.

On podium's SQLite and Postgres savers alike, from ``invoke``, ``stream`` and
``ainvoke``: status as the run ends (waiting, done, error, stopped), crashed when
the process that ran it is gone, and the first CLI's table migrated in place.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from podium import Agent, Decision, Policy, Rule, runs
from podium.checkpoints import SQLiteLedger
from podium.graphs import create_agent_graph, create_manager_graph
from podium.testing import ScriptedChatModel
from podium.tools import tool


@tool(risk="high")
def refund(order: str, amount: float) -> str:
    """Refund an order."""
    if order == "boom":
        raise RuntimeError("the payment system is down")
    return f"refunded {amount} on {order}"


def _calls(order: str) -> list[Any]:
    call = {"name": "refund", "args": {"order": order, "amount": 250}, "id": "c1"}
    return [AIMessage("", tool_calls=[call]), "Done."]


def _graph(replies: list[Any], *, gate: bool = True) -> Any:
    agent = Agent(name="cashier", model=ScriptedChatModel(replies), tools=[refund])
    rules = [Rule(tool="refund", action="approve")] if gate else []
    return create_agent_graph(agent, policy=Policy(rules=rules))


def test_a_run_registers_waiting_then_done(durable: Callable[[], Any]) -> None:
    saver = durable()
    app = _graph(_calls("A-1")).compile(checkpointer=saver)
    config = {"configurable": {"thread_id": "t1"}}
    app.invoke({"messages": [("user", "refund A-1")]}, config)
    ledger = saver.podium_ledger
    record = ledger.thread("t1")
    assert (record.graph, record.status, record.runs) == ("cashier", "waiting", 1)
    assert record.request == "refund A-1"
    assert record.owner is None  # the run ended
    [request] = runs.pending(app, config)
    runs.decide(app, config, {request.id: Decision.approve(by="al")})
    record = ledger.thread("t1")
    assert (record.status, record.runs, record.request) == ("done", 2, "refund A-1")
    assert record.updated_at >= record.created_at
    saver.delete_thread("t1")
    assert ledger.thread("t1") is None


def test_a_returned_run_has_its_events_in_the_file(tmp_path: Path) -> None:
    from podium.checkpoints import sqlite_saver
    from podium.checkpoints._events import SQLiteEventStore

    with sqlite_saver(tmp_path / "e.sqlite") as saver:
        app = _graph(_calls("A-9")).compile(checkpointer=saver)
        app.invoke({"messages": [("user", "refund")]}, {"configurable": {"thread_id": "e"}})
        reader = SQLiteEventStore(tmp_path / "e.sqlite")  # another connection, no flush asked
        try:
            kinds = [e["kind"] for e in reader.events("e")]
        finally:
            reader.close()
    assert "model" in kinds
    assert "approval_requested" in kinds


def test_failed_and_abandoned_runs_say_so(tmp_path: Path) -> None:
    from podium.checkpoints import sqlite_saver

    with sqlite_saver(tmp_path / "r.sqlite") as saver:
        app = _graph(_calls("boom"), gate=False).compile(checkpointer=saver)
        failing = {"configurable": {"thread_id": "bad"}}
        app.invoke({"messages": [("user", "refund boom")]}, failing)  # a tool error is a message
        assert saver.podium_ledger.thread("bad").status == "done"

        broken = _graph(["only one reply"], gate=False)
        app = broken.compile(checkpointer=saver)
        config = {"configurable": {"thread_id": "err"}}
        app.invoke({"messages": [("user", "hi")]}, config)
        with pytest.raises(Exception) as raised:  # noqa: PT011 - whatever the script raises
            app.invoke({"messages": [("user", "again")]}, config)
        record = saver.podium_ledger.thread("err")
        assert record.status == "error"
        assert type(raised.value).__name__ in (record.error or "")

        app = _graph(_calls("A-2"), gate=False).compile(checkpointer=saver)
        stream = app.stream({"messages": [("user", "go")]}, {"configurable": {"thread_id": "s"}})
        next(stream)
        stream.close()  # the caller stopped reading
        assert saver.podium_ledger.thread("s").status == "stopped"


async def test_async_runs_register_too(tmp_path: Path) -> None:
    from podium.checkpoints import async_sqlite_saver

    async with async_sqlite_saver(tmp_path / "a.sqlite") as saver:
        app = _graph(_calls("A-3")).compile(checkpointer=saver)
        await app.ainvoke({"messages": [("user", "refund")]}, {"configurable": {"thread_id": "a"}})
    with closing(SQLiteLedger(tmp_path / "a.sqlite")) as ledger:
        record = ledger.thread("a")
    assert record is not None
    assert record.status == "waiting"


def test_nested_graphs_register_only_the_top_level_thread(tmp_path: Path) -> None:
    from podium.checkpoints import sqlite_saver

    inner = _graph(_calls("A-4"), gate=False)
    inner.podium_name = "cashier_desk"
    inner.podium_description = "refunds"
    boss = ScriptedChatModel(
        [
            AIMessage(
                "",
                tool_calls=[{"name": "cashier_desk", "args": {"task": "refund A-4"}, "id": "d1"}],
            ),
            "All done.",
        ]
    )
    manager = create_manager_graph(Agent(name="boss", model=boss), [inner])
    with sqlite_saver(tmp_path / "m.sqlite") as saver:
        app = manager.compile(checkpointer=saver)
        app.invoke({"messages": [("user", "please refund")]}, {"configurable": {"thread_id": "m"}})
        [record] = saver.podium_ledger.threads()
    assert (record.thread_id, record.status, record.runs) == ("m", "done", 1)


RUNNER = """
import sys, time
from langchain_core.messages import AIMessage
from podium import Agent
from podium.checkpoints import sqlite_saver
from podium.graphs import create_agent_graph
from podium.testing import ScriptedChatModel
from podium.tools import tool

@tool(read_only=True)
def slow() -> str:
    '''Wait.'''
    print("in tool", flush=True)
    time.sleep(60)
    return "late"

call = {"name": "slow", "args": {}, "id": "c1"}
agent = Agent(name="sleeper", model=ScriptedChatModel([AIMessage("", tool_calls=[call]), "x"]),
              tools=[slow])
app = create_agent_graph(agent).compile(checkpointer=sqlite_saver(sys.argv[1]))
app.invoke({"messages": [("user", "wait")]}, {"configurable": {"thread_id": "k"}})
"""


def test_a_killed_run_shows_as_crashed(tmp_path: Path) -> None:
    script = tmp_path / "runner.py"
    script.write_text(textwrap.dedent(RUNNER))
    db = tmp_path / "k.sqlite"
    with subprocess.Popen(
        [sys.executable, str(script), str(db)], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "in tool"
            with closing(SQLiteLedger(db)) as ledger:
                assert ledger.thread("k").state == "running"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    with closing(SQLiteLedger(db)) as ledger:
        record = ledger.thread("k")
    assert (record.status, record.state) == ("running", "crashed")
    assert record.to_json()["status"] == "crashed"


def test_the_first_cli_table_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE podium_threads (thread_id TEXT PRIMARY KEY, graph TEXT NOT NULL, "
            "model TEXT NOT NULL, request TEXT NOT NULL, created_at REAL NOT NULL)"
        )
        db.execute(
            "CREATE TABLE podium_approvals (request_id TEXT PRIMARY KEY, thread_id TEXT NOT "
            "NULL, call_key TEXT NOT NULL, request TEXT NOT NULL, status TEXT NOT NULL, "
            "decision TEXT, bound_args_hash TEXT, decided_by TEXT, decided_at TEXT, "
            "UNIQUE (thread_id, call_key))"
        )
        db.execute("INSERT INTO podium_threads VALUES ('w', 'demo:support', 'local', 'hi', 1.0)")
        db.execute("INSERT INTO podium_threads VALUES ('d', 'app:build', 'local', 'yo', 2.0)")
        db.execute(
            "INSERT INTO podium_approvals VALUES ('apr_1', 'w', 'k', '{}', 'pending', "
            "NULL, NULL, NULL, NULL)"
        )
    with closing(SQLiteLedger(path)) as ledger:
        found = {t.thread_id: t for t in ledger.threads()}
    assert (found["w"].source, found["w"].model, found["w"].status) == (
        "demo:support",
        "local",
        "waiting",
    )
    assert (found["d"].source, found["d"].request, found["d"].status) == ("app:build", "yo", "done")
    with closing(SQLiteLedger(path)) as ledger:  # opening again changes nothing
        assert len(ledger.threads()) == 2
