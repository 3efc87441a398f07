"""Crash vectors: SIGKILL a process mid-run, resume in a new one, count side effects.

The side effect is a row in a separate SQLite file; it is committed before any kill,
so the count tells exactly how often the tool really acted. Every vector runs for both
agent kinds (podium's agent graph, and LangChain's ``create_agent`` with
``podium.middleware.Governed``; tests/agent_kinds.py).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from _procs import run_app

APP = Path(__file__).with_name("crash_app.py")


class Crash:
    def __init__(self, tmp: Path, kind: str) -> None:
        self.db = tmp / "runs.sqlite"
        self.effects = tmp / "effects.sqlite"
        self.kind = kind

    def run(self, action: str, *flags: str, expect_kill: bool = False) -> dict[str, Any]:
        where = (str(self.db), str(self.effects))
        kind = ("--kind", self.kind)
        return run_app(APP, *where, action, *flags, *kind, expect_kill=expect_kill)

    def count(self, table: str = "effects") -> int:
        with sqlite3.connect(self.effects) as db:
            return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


@pytest.fixture
def crash(tmp_path: Path, agent_kind: str) -> Crash:
    return Crash(tmp_path, agent_kind)


def final_answer(result: dict[str, Any]) -> str:
    return str(result["messages"][-1]["content"])


def test_uninterrupted_reference(crash: Crash) -> None:
    result = crash.run("start")
    assert final_answer(result) == "Charged."
    assert crash.count() == 1


def test_killed_after_effect_before_step_completes(crash: Crash) -> None:
    """(a) The ledger holds the result; the step's writes were lost with the process."""
    crash.run("start", "--crash", "after_done", expect_kill=True)
    assert crash.count() == 1
    result = crash.run("resume")
    assert final_answer(result) == "Charged."
    assert crash.count() == 1
    tool_msg = next(m for m in result["messages"] if m["type"] == "tool")
    assert tool_msg["content"] == "charged 250.0 to A-1"


def test_killed_while_waiting_for_approval(crash: Crash) -> None:
    """(b) Nothing ran before the kill; the approval survives and runs once after it."""
    paused = crash.run("start", "--gate", "--crash", "at_approval", expect_kill=True)
    assert [r["tool"] for r in paused["pending"]] == ["charge"]
    assert crash.count() == 0
    listed = crash.run("pending", "--gate")
    assert [r["id"] for r in listed["pending"]] == [paused["pending"][0]["id"]]
    result = crash.run("decide", "--gate", "--decision", '{"action": "approve", "by": "ops"}')
    assert final_answer(result) == "Charged."
    assert crash.count() == 1


def test_killed_inside_non_idempotent_tool_escalates(crash: Crash) -> None:
    """(c) In doubt: the call is not silently re-run; a human is asked."""
    crash.run("start", "--crash", "inside", expect_kill=True)
    assert crash.count() == 1
    result = crash.run("resume")
    [request] = result["pending"]
    assert request["kind"] == "in_doubt"
    assert "may or may not have taken effect" in request["reason"]
    assert crash.count() == 1
    done = crash.run(
        "decide",
        "--decision",
        '{"action": "respond", "message": "charged 250.0 to A-1", "by": "ops"}',
    )
    assert final_answer(done) == "Charged."
    assert crash.count() == 1
    assert crash.count("attempts") == 1


def test_killed_inside_idempotent_tool_reruns_with_same_key(crash: Crash) -> None:
    crash.run("start", "--idempotent", "--crash", "inside", expect_kill=True)
    result = crash.run("resume", "--idempotent")
    assert final_answer(result) == "Charged."
    assert crash.count() == 1  # the second attempt carried the same idempotency key
    with sqlite3.connect(crash.effects) as db:
        keys = [r[0] for r in db.execute("SELECT key FROM attempts")]
    assert len(keys) == 2
    assert keys[0] == keys[1] != "none"


# -- scale-out: workers share threads through PostgreSQL -------------------------------------
@pytest.fixture
def pg_crash(tmp_path: Path, postgres_url: str, agent_kind: str) -> Crash:
    crash = Crash(tmp_path, agent_kind)
    crash.db = postgres_url  # type: ignore[assignment]
    return crash


@pytest.mark.postgres
def test_worker_killed_mid_run_another_worker_resumes_from_postgres(pg_crash: Crash) -> None:
    """Worker A dies after the side effect; worker B (a new process) finishes the thread."""
    pg_crash.run("start", "--crash", "after_done", expect_kill=True)
    assert pg_crash.count() == 1
    result = pg_crash.run("resume")
    assert final_answer(result) == "Charged."
    assert pg_crash.count() == 1


@pytest.mark.postgres
def test_worker_killed_at_approval_another_worker_approves_from_postgres(pg_crash: Crash) -> None:
    paused = pg_crash.run("start", "--gate", "--crash", "at_approval", expect_kill=True)
    assert [r["tool"] for r in paused["pending"]] == ["charge"]
    result = pg_crash.run("decide", "--gate", "--decision", '{"action": "approve", "by": "ops"}')
    assert final_answer(result) == "Charged."
    assert pg_crash.count() == 1


# -- the default call: durable unless the caller opts out ---------------------------------
# A real provider gives every reply new ids, so a model asked again issues a *new* call.
# The saver is slowed (each checkpoint write takes 0.5 s) to hold open the window in
# which an asynchronously written checkpoint is not yet on disk; the request carries a
# 2 MB document, as a pasted one would.
REAL = ("--fresh-ids", "--slow-saver", "0.5", "--big")


def test_default_call_killed_after_the_effect_acts_once(crash: Crash) -> None:
    """The README's plain invoke: the model's message is saved before the call acts."""
    crash.run("start", *REAL, "--crash", "after_done", expect_kill=True)
    assert crash.count() == 1
    result = crash.run("resume", *REAL)
    assert final_answer(result) == "Charged."
    assert crash.count() == 1


def test_async_durability_opt_out_can_act_twice(crash: Crash) -> None:
    """What a caller gives up with durability="async": the step that asked for the call
    may not be saved when the process dies, so the model is asked again and acts anew."""
    crash.run("start", *REAL, "--durability", "async", "--crash", "after_done", expect_kill=True)
    assert crash.count() == 1
    result = crash.run("retry", *REAL)
    assert final_answer(result) == "Charged."
    assert crash.count() == 2


def test_exit_durability_opt_out_keeps_nothing_of_a_killed_run(crash: Crash) -> None:
    crash.run("start", *REAL, "--durability", "exit", "--crash", "after_done", expect_kill=True)
    assert crash.count() == 1
    with sqlite3.connect(crash.db) as db:  # not one checkpoint of the thread was written
        assert db.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0] == 0
