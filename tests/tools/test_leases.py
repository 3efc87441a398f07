"""One run per thread at a time: worker processes race for one thread.

Every race is provoked: the processes start at one instant (``--start-at``), and the
run that takes the thread does not finish before every other process has been
refused (``--wait-refused``) -- or, under ``enqueue``, each run lasts long enough
that the others must wait. A process paused past its lease (SIGSTOP) is woken
(SIGCONT) after another process took the thread over, and must not write. All on
one SQLite file and on one Postgres database, through the README's plain call.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podium import Agent, ThreadBusyError
from podium.checkpoints import postgres_saver, sqlite_saver
from podium.graphs import create_agent_graph
from podium.testing import ScriptedChatModel

WORKER = Path(__file__).with_name("lease_worker.py")
STARTUP = 5.0
"""Seconds for a worker to import podium and open its saver (on a loaded machine)."""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A SQLite file or a Postgres database (with podium's tables) for the workers."""
    if request.param == "sqlite":
        path = tmp_path / "runs.sqlite"
        sqlite_saver(path).close()
        yield str(path)
        return
    server = request.getfixturevalue("postgres_server")
    url = server.create_database()
    yield url
    server.drop_database(url)


def spawn(db: str, thread: str, text: str, *flags: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), db, thread, text, *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def outcome(proc: subprocess.Popen[str], timeout: float = 120) -> dict[str, Any]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(
            f"the worker did not finish in {timeout:g} s; its stderr:\n{err}"
        ) from None
    assert proc.returncode == 0, err
    return dict(json.loads(out.strip().splitlines()[-1]))


def history(db: str, thread: str) -> list[tuple[str, str]]:
    """The thread's messages as (type, text), read by another process's saver."""
    saver: Any = postgres_saver(db, pool_size=2) if db.startswith("postgresql") else None
    saver = saver or sqlite_saver(db)
    try:
        app = create_agent_graph(Agent(name="clerk", model=ScriptedChatModel([]))).compile(
            checkpointer=saver
        )
        messages = app.get_state({"configurable": {"thread_id": thread}}).values["messages"]
        record = saver.podium_ledger.thread(thread)
    finally:
        saver.close()
    assert record is not None
    assert record.holder is None  # every run ended and let the thread go
    return [(m.type, str(m.content)) for m in messages]


def stopped(pid: int, timeout: float = 60) -> None:
    """Wait until process ``pid`` stopped itself (state T)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "T":
            return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} did not stop")


@pytest.mark.parametrize("parties", [2, 3])
def test_processes_sending_at_once_one_runs_the_others_are_refused(
    database: str, tmp_path: Path, parties: int
) -> None:
    refused = tmp_path / "refused"
    refused.mkdir()
    start_at = str(time.time() + STARTUP)
    procs = [
        spawn(
            database,
            "t",
            f"question {i}",
            "--start-at",
            start_at,
            "--wait-refused",
            str(refused),
            str(parties - 1),
        )
        for i in range(parties)
    ]
    got = [outcome(p) for p in procs]
    [winner] = [g for g in got if g["ok"]]
    losers = [g for g in got if not g["ok"]]
    assert len(losers) == parties - 1
    for loser in losers:
        assert loser["error_type"] == "ThreadBusyError", loser
        assert f"|{winner['pid']}|" in loser["holder"]  # names the process holding it
        assert loser["since"] is not None
        assert "Thread 't' is busy" in loser["error"]
        assert "nothing changed" in loser["error"]
        assert "'podium_multitask': 'enqueue'" in loser["error"]  # the fix
    # the acknowledged turn is there whole; the refused ones left nothing
    assert history(database, "t") == [
        ("human", winner["text"]),
        ("ai", f"answer to {winner['text']} by {winner['pid']}"),
    ]


def test_enqueued_processes_all_get_their_turn(database: str) -> None:
    start_at = str(time.time() + STARTUP)
    texts = [f"question {i}" for i in range(3)]
    procs = [
        spawn(database, "q", t, "--start-at", start_at, "--multitask", "enqueue", "--delay", "0.5")
        for t in texts
    ]
    got = [outcome(p) for p in procs]
    assert all(g["ok"] for g in got), got
    by_text = {g["text"]: g["pid"] for g in got}
    turns = history(database, "q")
    assert len(turns) == 6  # every question and every answer: no turn lost
    for i in range(0, 6, 2):  # whole turns, one after the other
        kind, question = turns[i]
        assert kind == "human"
        assert turns[i + 1] == ("ai", f"answer to {question} by {by_text[question]}")
    assert sorted(q for kind, q in turns if kind == "human") == texts
    for g in got:  # and every caller was shown whole turns, its own last
        view = [(kind, text) for kind, text in g["messages"]]
        assert whole_turns(view, by_text), view
        assert view[-2][1] == g["text"]
    assert max(g["seconds"] for g in got) >= 1.0  # someone waited for two runs


def whole_turns(turns: list[tuple[str, str]], pids: dict[str, int]) -> bool:
    """Whether ``turns`` is whole turns one after another: each question, then its answer."""
    if len(turns) % 2:
        return False
    pairs = zip(turns[::2], turns[1::2], strict=True)
    return all(
        kind == "human"
        and question in pids
        and reply == ("ai", f"answer to {question} by {pids[question]}")
        for (kind, question), reply in pairs
    )


def test_without_leases_concurrent_turns_are_lost_or_tangled(tmp_path: Path) -> None:
    """The control: with leases off, three runs inside their model call at once (each
    waits for the others there) all succeed, yet what they saved -- or what a caller
    was shown -- is not their whole turns one after another."""
    db = tmp_path / "runs.sqlite"
    sqlite_saver(db).close()
    meet = tmp_path / "meet"
    meet.mkdir()
    procs = [
        spawn(str(db), "t", f"question {i}", "--meet", str(meet), "3", PODIUM_THREAD_LEASE="off")
        for i in range(3)
    ]
    got = [outcome(p) for p in procs]
    assert all(g["ok"] for g in got), got  # every caller was told its turn was done
    pids = {g["text"]: g["pid"] for g in got}
    final = history(str(db), "t")
    seen = [[(kind, text) for kind, text in g["messages"]] for g in got]
    complete = len(final) == 6 and whole_turns(final, pids)
    assert not (complete and all(whole_turns(view, pids) for view in seen)), (final, seen)


def test_a_killed_holder_is_replaced_at_once_on_the_same_host(database: str) -> None:
    """SIGKILL the process holding the thread: another takes it without waiting for
    the lease (60 s here) to expire, and finishes the killed run before its own."""
    long = {"PODIUM_LEASE_SECONDS": "60"}
    first = spawn(database, "k", "question A", "--stop-in", "model", **long)
    stopped(first.pid)
    first.kill()
    first.communicate(timeout=30)
    second = outcome(spawn(database, "k", "question B", **long))
    assert second["ok"], second
    assert second["seconds"] < 30
    me = second["pid"]
    assert history(database, "k") == [
        ("human", "question A"),
        ("ai", f"answer to question A by {me}"),  # the crashed run, finished first
        ("human", "question B"),
        ("ai", f"answer to question B by {me}"),
    ]


@pytest.mark.parametrize(
    ("saves", "answered_by_first"),
    [(2, False), (4, True)],
    ids=["after-the-question-was-saved", "after-the-answer-was-saved"],
)
def test_new_input_finishes_a_killed_run_first(
    database: str, saves: int, answered_by_first: bool
) -> None:
    """Killed after a step's writes were saved but before the checkpoint that applies
    them (LangGraph would drop them under new input): the next input resumes first."""
    first = spawn(database, "w", "question A", "--die-after-saves", str(saves))
    first.communicate(timeout=120)
    assert first.returncode == -signal.SIGKILL
    second = outcome(spawn(database, "w", "question B"))
    assert second["ok"], second
    by = first.pid if answered_by_first else second["pid"]
    assert history(database, "w") == [
        ("human", "question A"),
        ("ai", f"answer to question A by {by}"),
        ("human", "question B"),
        ("ai", f"answer to question B by {second['pid']}"),
    ]


def test_a_paused_holder_cannot_write_after_its_lease_expired(database: str) -> None:
    """SIGSTOP the holder inside its model call until its 1.5 s lease expired; another
    process takes the thread over; SIGCONT: the paused run's writes are refused."""
    short = {"PODIUM_LEASE_SECONDS": "1.5"}
    paused = spawn(database, "p", "question A", "--stop-in", "model", **short)
    stopped(paused.pid)
    time.sleep(2.0)
    second = outcome(spawn(database, "p", "question B", **short))
    assert second["ok"], second
    paused.send_signal(signal.SIGCONT)
    woken = outcome(paused)
    assert woken["ok"] is False
    assert woken["error_type"] == "LeaseLostError"
    assert "no longer holds thread 'p'" in woken["error"]
    assert "nothing was written" in woken["error"]
    me = second["pid"]
    turns = history(database, "p")
    assert turns == [
        ("human", "question A"),
        ("ai", f"answer to question A by {me}"),
        ("human", "question B"),
        ("ai", f"answer to question B by {me}"),
    ]
    assert not any(f"by {woken['pid']}" in text for _, text in turns)


def test_a_paused_holder_does_not_act_twice(database: str, tmp_path: Path) -> None:
    """Paused in the policy check of a side-effecting call (the model message asking
    for it is saved): the run that takes over makes the call; the woken one does not."""
    short = {"PODIUM_LEASE_SECONDS": "1.5"}
    effects = str(tmp_path / "effects.sqlite")
    paused = spawn(database, "e", "act: pay", "--stop-in", "policy", "--effects", effects, **short)
    stopped(paused.pid)
    time.sleep(2.0)
    second = outcome(spawn(database, "e", "question B", "--effects", effects, **short))
    assert second["ok"], second
    paused.send_signal(signal.SIGCONT)
    woken = outcome(paused)
    # frozen between statements of a write, its session was ended by the server (the
    # idle-in-transaction limit) instead: either way it wrote nothing
    assert woken["error_type"] in ("LeaseLostError", "OperationalError"), woken
    import sqlite3

    with sqlite3.connect(effects) as db:
        rows = db.execute("SELECT pid, text FROM effects").fetchall()
    assert rows == [(second["pid"], "act: pay")]  # once, by the run that took over
    turns = history(database, "e")
    assert [kind for kind, _ in turns] == ["human", "ai", "tool", "ai", "human", "ai"]
    assert turns[2] == ("tool", "noted act: pay")


# -- in one process ------------------------------------------------------------------------
def _app(saver: Any, replies: list[Any], delay: float = 0.0) -> Any:
    model = ScriptedChatModel(replies, delay=delay)
    return create_agent_graph(Agent(name="clerk", model=model)).compile(checkpointer=saver)


async def test_two_runs_of_one_event_loop_on_one_thread(tmp_path: Path) -> None:
    """``ainvoke`` twice at once on one thread: the second is refused (``reject``) or
    waits (``enqueue``) -- without blocking the event loop while it waits."""
    import asyncio

    from podium import ThreadBusyError
    from podium.checkpoints import async_sqlite_saver

    async with async_sqlite_saver(tmp_path / "a.sqlite") as saver:
        app = _app(saver, ["first", "second", "third"], delay=0.5)
        config: Any = {"configurable": {"thread_id": "a"}}
        results = await asyncio.gather(
            app.ainvoke({"messages": [("user", "one")]}, config),
            app.ainvoke({"messages": [("user", "two")]}, config),
            return_exceptions=True,
        )
        refused = [r for r in results if isinstance(r, BaseException)]
        assert len(refused) == 1
        assert isinstance(refused[0], ThreadBusyError)
        [won] = [r for r in results if not isinstance(r, BaseException)]
        first = won["messages"][0].content
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.05)
                ticks += 1

        ticker = asyncio.create_task(tick())
        queued = {"configurable": {"thread_id": "a", "podium_multitask": "enqueue"}}
        both = await asyncio.gather(
            app.ainvoke({"messages": [("user", "three")]}, queued),
            app.ainvoke({"messages": [("user", "four")]}, queued),
        )
        ticker.cancel()
        assert ticks >= 10  # the loop ran while one run waited for the other (~1 s)
        last = both[0] if len(both[0]["messages"]) > len(both[1]["messages"]) else both[1]
        texts = [m.content for m in last["messages"] if m.type == "human"]
        assert texts[0] == first
        assert sorted(texts[1:]) == ["four", "three"]
        assert len(last["messages"]) == 6  # every turn whole: question and answer


def test_multitask_options_are_checked(tmp_path: Path) -> None:
    from podium import ConfigurationError

    with sqlite_saver(tmp_path / "c.sqlite") as saver:
        app = _app(saver, ["x"])
        for value, says in [
            ("interrupt", "LangGraph Server's own strategies"),
            ("queue", "'reject'"),
        ]:
            config = {"configurable": {"thread_id": "c", "podium_multitask": value}}
            with pytest.raises(ConfigurationError, match=says):
                app.invoke({"messages": [("user", "hi")]}, config)
        config = {
            "configurable": {
                "thread_id": "c",
                "podium_multitask": "enqueue",
                "podium_multitask_timeout": -1,
            }
        }
        with pytest.raises(ConfigurationError, match="not a number of seconds"):
            app.invoke({"messages": [("user", "hi")]}, config)
        assert saver.podium_ledger.thread("c") is None  # refused before anything ran


def test_served_runs_wait_for_the_thread_by_default() -> None:
    from podium.tools._lease import multitask

    assert multitask({}, served=False).strategy == "reject"
    assert multitask({}, served=True).strategy == "enqueue"
    assert multitask({"podium_multitask": "reject"}, served=True).strategy == "reject"


def test_a_run_takes_over_from_an_expired_holder_and_finishes_its_run(tmp_path: Path) -> None:
    """A holder on another host stopped heartbeating mid-run: after its lease expired
    the next input first finishes the run it left, then runs."""
    with sqlite_saver(tmp_path / "x.sqlite") as saver:
        ledger = saver.podium_ledger
        config: Any = {"configurable": {"thread_id": "x"}}
        app = _app(saver, ["answer one"])
        app.invoke({"messages": [("user", "one")]}, config)
        # another host's run took the thread, saved its input, and vanished
        row = ledger.thread("x")
        lease = ledger.take_lease(
            "x", owner="far|1|1|n", seconds=0.3, seen=row, location=ledger.location
        )
        assert lease is not None
        from podium.checkpoints._leases import LEASE_KEY

        app.update_state(
            {"configurable": {"thread_id": "x", LEASE_KEY: lease}},
            {"messages": [("user", "two")]},
            as_node="__start__",
        )
        later = _app(saver, ["answer two", "answer three"])
        with pytest.raises(ThreadBusyError):
            later.invoke({"messages": [("user", "three")]}, config)
        time.sleep(0.35)
        out = later.invoke({"messages": [("user", "three")]}, config)
        assert [m.content for m in out["messages"]] == [
            "one",
            "answer one",
            "two",
            "answer two",  # the vanished run, finished first
            "three",
            "answer three",
        ]
        record = ledger.thread("x")
        assert (record.status, record.holder, record.lease_gen) == ("done", None, 3)


def test_podium_threads_shows_who_holds_a_thread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from podium.checkpoints._owners import process_owner
    from podium.cli import main
    from podium.tools._lease import Claimant, Multitask, release

    db = tmp_path / "h.sqlite"
    with sqlite_saver(db) as saver:
        _app(saver, ["hi"]).invoke(
            {"messages": [("user", "hello")]}, {"configurable": {"thread_id": "idle"}}
        )
        taken = Claimant(saver.podium_ledger, "busy", Multitask("reject", 0)).take()
        try:
            assert main(["threads", "--db", str(db), "--json"]) == 0
            rows = {r["thread"]: r for r in json.loads(capsys.readouterr().out)}
            assert rows["busy"]["status"] == "running"
            assert rows["busy"]["holder"] == process_owner()
            assert rows["busy"]["leased_since"] == pytest.approx(taken.lease.since)
            assert rows["busy"]["lease_until"] > time.time()
            assert rows["idle"]["holder"] is None
            assert main(["threads", "--db", str(db)]) == 0
            text = capsys.readouterr().out
            [line] = [line for line in text.splitlines() if line.startswith("busy")]
            assert f"held by {process_owner()} since " in line
            assert "held by" not in next(x for x in text.splitlines() if x.startswith("idle"))
        finally:
            release(saver.podium_ledger, taken, "done")
