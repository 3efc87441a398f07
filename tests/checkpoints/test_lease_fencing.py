"""Thread leases in the registry, and fencing in the ledger and the savers.

On podium's SQLite and Postgres savers: a lease is taken once, renewed, released;
one held on another host is respected until it expires; and every write fenced by
a lease that was taken over -- a checkpoint, a task's writes, a tool call's start,
a request for a human -- is refused with nothing written.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint

from podium import LeaseLostError, ThreadBusyError
from podium.checkpoints import SQLiteLedger, ToolLedger, async_postgres_saver, async_sqlite_saver
from podium.checkpoints._leases import LEASE_KEY, Lease
from podium.tools import _inflight
from podium.tools._lease import Claimant, Multitask, release

OTHER_HOST = "elsewhere|4242|99|abcdef"
REJECT = Multitask("reject", 0.0)


def foreign(ledger: ToolLedger, thread: str, seconds: float) -> Lease:
    """A lease held by a process on another host (only its expiry frees it)."""
    seen = ledger.thread(thread)
    lease = ledger.take_lease(
        thread, owner=OTHER_HOST, seconds=seconds, seen=seen, location=ledger.location
    )
    assert lease is not None
    return lease


@pytest.fixture
def saver(durable: Callable[[], Any]) -> Any:
    return durable()


def test_a_lease_is_taken_once_renewed_and_released(saver: Any) -> None:
    ledger = saver.podium_ledger
    taken = Claimant(ledger, "t", REJECT, graph="g", request="hi").take()
    try:
        assert (taken.lease.generation, taken.recovers) == (1, False)
        record = ledger.thread("t")
        assert (record.status, record.runs, record.graph, record.request) == (
            "running",
            1,
            "g",
            "hi",
        )
        assert record.holder == taken.lease.owner
        with pytest.raises(ThreadBusyError) as busy:  # another run of this same process
            Claimant(ledger, "t", REJECT).take()
        assert busy.value.holder == taken.lease.owner
        until = record.lease_until
        time.sleep(0.01)
        assert ledger.renew_lease(taken.lease)
        assert ledger.thread("t").lease_until > until
    finally:
        assert release(ledger, taken, "done")
    record = ledger.thread("t")
    assert (record.status, record.holder, record.runs) == ("done", None, 1)
    again = Claimant(ledger, "t", REJECT).take()
    assert again.lease.generation == 2
    release(ledger, again, "waiting")
    assert not ledger.renew_lease(taken.lease)  # an old lease renews nothing


def test_a_lease_held_on_another_host_is_respected_until_it_expires(saver: Any) -> None:
    ledger = saver.podium_ledger
    foreign(ledger, "far", 0.6)
    with pytest.raises(ThreadBusyError) as busy:
        Claimant(ledger, "far", REJECT).take()
    assert busy.value.holder == OTHER_HOST
    assert f"process {OTHER_HOST} holds it" in str(busy.value)
    with pytest.raises(ThreadBusyError) as waited:  # enqueue gives up at its timeout
        Claimant(ledger, "far", Multitask("enqueue", 0.2)).take()
    assert waited.value.waited >= 0.2
    assert "waited" in str(waited.value)
    time.sleep(0.6)
    taken = Claimant(ledger, "far", REJECT).take()
    assert (taken.lease.generation, taken.recovers) == (2, True)  # its run never ended
    release(ledger, taken, "done")


def test_writes_under_a_lease_that_was_taken_over_are_refused(saver: Any) -> None:
    ledger = saver.podium_ledger
    stale = foreign(ledger, "f", 0.05)
    time.sleep(0.1)
    fresh = Claimant(ledger, "f", REJECT).take()
    try:
        with pytest.raises(LeaseLostError) as lost:
            ledger.claim_call("f", "k1", "pay", "h", OTHER_HOST, lease=stale)
        message = str(lost.value)
        assert "no longer holds thread 'f'" in message
        assert "generation 1" in message
        assert f"held by {fresh.lease.owner}" in message
        assert ledger.get_call("f", "k1") is None  # nothing was written
        with pytest.raises(LeaseLostError):
            ledger.open_request("f", "k2", "apr_1", {"id": "apr_1"}, lease=stale)
        assert ledger.get_approval("f", "k2") is None
        assert ledger.claim_call("f", "k1", "pay", "h", fresh.lease.owner, lease=fresh.lease).won
        with pytest.raises(LeaseLostError):  # a call in doubt is not taken over either
            ledger.reclaim_call("f", "k1", "gone", OTHER_HOST, "h", lease=stale)
        config = {"configurable": {"thread_id": "f", "checkpoint_ns": ""}}
        checkpoint = empty_checkpoint()
        with pytest.raises(LeaseLostError, match="its checkpoint was refused"):
            saver.put(
                {**config, "configurable": {**config["configurable"], LEASE_KEY: stale}},
                checkpoint,
                {},
                {},
            )
        assert saver.get_tuple(config) is None
        mine = {"configurable": {**config["configurable"], LEASE_KEY: fresh.lease}}
        saved = saver.put(mine, checkpoint, {}, {})
        at = {"configurable": {**saved["configurable"], LEASE_KEY: stale}}
        with pytest.raises(LeaseLostError, match="task's writes"):
            saver.put_writes(at, [("messages", "x")], "task-1")
        saver.put_writes(
            {"configurable": {**at["configurable"], LEASE_KEY: fresh.lease}},
            [("messages", "y")],
            "task-2",
        )
        writes = saver.get_tuple(saved).pending_writes
        assert [(t, v) for t, _, v in writes] == [("task-2", "y")]
    finally:
        release(ledger, fresh, "done")


def test_a_lease_of_another_database_does_not_fence(saver: Any, tmp_path: Path) -> None:
    """A run whose ledger is elsewhere (``PODIUM_LEDGER``) cannot fence this saver."""
    with closing(SQLiteLedger(tmp_path / "elsewhere.sqlite")) as other:
        taken = Claimant(other, "o", REJECT).take()
        try:
            config = {
                "configurable": {"thread_id": "o", "checkpoint_ns": "", LEASE_KEY: taken.lease}
            }
            saver.put(config, empty_checkpoint(), {}, {})
            assert saver.get_tuple({"configurable": {"thread_id": "o", "checkpoint_ns": ""}})
        finally:
            release(other, taken, "done")


def test_an_old_registry_gets_the_lease_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE podium_threads (thread_id TEXT PRIMARY KEY, graph TEXT, "
            "description TEXT, source TEXT, source_path TEXT, model TEXT, request TEXT, "
            "status TEXT NOT NULL, error TEXT, owner TEXT, runs INTEGER NOT NULL DEFAULT 0, "
            "created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL)"
        )
        db.execute(
            "INSERT INTO podium_threads VALUES ('w', 'g', NULL, NULL, NULL, NULL, "
            "'hi', 'done', NULL, NULL, 2, 1.0, 1.0)"
        )
    with closing(SQLiteLedger(path)) as ledger:
        assert (ledger.thread("w").lease_gen, ledger.thread("w").runs) == (0, 2)
        taken = Claimant(ledger, "w", REJECT).take()
        assert taken.lease.generation == 1
        release(ledger, taken, "done")
        assert ledger.thread("w").runs == 3


@pytest.mark.postgres
def test_an_old_postgres_registry_gets_the_lease_columns(postgres_server: Any) -> None:
    import psycopg

    from podium.checkpoints import postgres_saver

    url = postgres_server.create_database()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            for column in ("lease_gen", "leased_at", "lease_until"):
                conn.execute(f"ALTER TABLE podium_threads DROP COLUMN {column}")
        with postgres_saver(url, pool_size=2) as saver:
            taken = Claimant(saver.podium_ledger, "w", REJECT).take()
            assert taken.lease.generation == 1
            release(saver.podium_ledger, taken, "done")
    finally:
        postgres_server.drop_database(url)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def async_saver_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_async(
    async_saver_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Callable[[], Any]:
    url = request.getfixturevalue("postgres_url") if async_saver_kind == "postgres" else ""

    def opener() -> Any:
        return async_postgres_saver(url) if url else async_sqlite_saver(tmp_path / "a.sqlite")

    return opener


async def test_async_savers_fence_too(open_async: Callable[[], Any]) -> None:
    async with open_async() as saver:
        ledger = saver.podium_ledger
        stale = foreign(ledger, "a", 0.05)
        time.sleep(0.1)
        fresh = Claimant(ledger, "a", REJECT).take()
        try:
            base = {"thread_id": "a", "checkpoint_ns": ""}
            with pytest.raises(LeaseLostError, match="checkpoint"):
                await saver.aput(
                    {"configurable": {**base, LEASE_KEY: stale}}, empty_checkpoint(), {}, {}
                )
            assert await saver.aget_tuple({"configurable": base}) is None
            saved = await saver.aput(
                {"configurable": {**base, LEASE_KEY: fresh.lease}}, empty_checkpoint(), {}, {}
            )
            at = dict(saved["configurable"])
            with pytest.raises(LeaseLostError, match="task's writes"):
                await saver.aput_writes(
                    {"configurable": {**at, LEASE_KEY: stale}}, [("messages", "x")], "t1"
                )
            await saver.aput_writes(
                {"configurable": {**at, LEASE_KEY: fresh.lease}}, [("messages", "y")], "t2"
            )
            found = await saver.aget_tuple(saved)
            assert [(t, v) for t, _, v in found.pending_writes] == [("t2", "y")]
        finally:
            release(ledger, fresh, "done")


def test_the_heartbeat_thread_renews_held_leases(
    saver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PODIUM_LEASE_SECONDS", "0.6")
    ledger = saver.podium_ledger
    taken = Claimant(ledger, "hb", REJECT).take()
    try:
        first = ledger.thread("hb").lease_until
        time.sleep(1.0)  # past the first expiry: renewed every 0.2 s meanwhile
        assert ledger.thread("hb").lease_until > first
        assert ledger.thread("hb").lease_until > time.time()
        assert _inflight.holding(ledger, "hb")
    finally:
        release(ledger, taken, "done")
    assert not _inflight.holding(ledger, "hb")
