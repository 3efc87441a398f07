"""The thread registry: every thread a podium graph ran, in the ledger's database.

Table ``podium_threads`` sits beside the ledger (the checkpointer's SQLite file or
Postgres database, or the database ``PODIUM_LEDGER`` names for served graphs). Every
top-level run of a podium graph -- from Python, the CLI, a notebook or LangGraph
Server -- writes its thread's row when it starts and when it ends, so the CLI and
any later process see every thread from the database alone, without importing the
user's code:

* what graph it is (compiled name and description), the first request, how many
  runs it had;
* its status: ``running`` (with the process that runs it; a dead process shows as
  ``crashed``), ``waiting`` (for a human: requests are in ``podium_approvals``),
  ``done``, ``error`` (with the message) or ``stopped`` (the caller stopped reading
  the stream, or Ctrl-C);
* how to rebuild the graph in another process (``source``: ``package.module:attr`` or
  ``demo:NAME``), recorded by the CLI for the threads it starts, or by
  :func:`podium.runs.record_source` from Python.

The SQL here is the only copy: the ledger's methods (:class:`ThreadRegistry`, a base
of :class:`~podium.checkpoints.ToolLedger`) write and read it on SQLite and Postgres.
The row is also the thread's **lease** (``owner``, ``leased_at``, ``lease_until``,
``lease_gen``): a run takes it when it starts and releases it when it ends, so one
run at a time acts on a thread (see :mod:`podium.checkpoints._leases`).

This module imports only the standard library, so the CLI's read-only commands stay
fast.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from podium.checkpoints._leases import FENCE_SQL, Lease, lease_lost
from podium.checkpoints._owners import owner_alive

if TYPE_CHECKING:
    from podium.errors import LeaseLostError

__all__ = [
    "LEASE_COLUMNS",
    "THREADS_SCHEMA",
    "ThreadRecord",
    "ThreadRegistry",
    "migrate_threads",
    "source_of",
]

ThreadStatus = Literal["new", "running", "waiting", "done", "error", "stopped"]

THREADS_SCHEMA = """
CREATE TABLE IF NOT EXISTS podium_threads (
    thread_id TEXT PRIMARY KEY,
    graph TEXT,
    description TEXT,
    source TEXT,
    source_path TEXT,
    model TEXT,
    request TEXT,
    status TEXT NOT NULL,
    error TEXT,
    owner TEXT,
    runs INTEGER NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    lease_gen INTEGER NOT NULL DEFAULT 0,
    leased_at DOUBLE PRECISION,
    lease_until DOUBLE PRECISION
);
"""
"""The registry's DDL (SQLite and Postgres)."""

LEASE_COLUMNS = (
    ("podium_threads", "lease_gen", "INTEGER NOT NULL DEFAULT 0"),
    ("podium_threads", "leased_at", "DOUBLE PRECISION"),
    ("podium_threads", "lease_until", "DOUBLE PRECISION"),
)
"""The lease's columns, added to registries made before leases existed."""

_COLUMNS = (
    "thread_id, graph, description, source, source_path, model, request, status, error, "
    "owner, runs, created_at, updated_at"
)
_READ = f"{_COLUMNS}, lease_gen, leased_at, lease_until"
REQUEST_CHARS = 500
"""How much of the first request the registry keeps."""


@dataclass(frozen=True)
class ThreadRecord:
    """A row of ``podium_threads``."""

    thread_id: str
    """The thread."""
    graph: str | None
    """The compiled graph's name."""
    description: str | None
    """What the graph does."""
    source: str | None
    """How to rebuild the graph: ``package.module:attr`` or ``demo:NAME`` (``None``:
    not recorded; the CLI then needs ``--graph``)."""
    source_path: str | None
    """The directory ``source``'s module is imported from."""
    model: str | None
    """The model spec the CLI started it with."""
    request: str | None
    """The first request (truncated)."""
    status: ThreadStatus
    """As last written: ``new`` (recorded, never run), ``running``, ``waiting``,
    ``done``, ``error``, ``stopped``."""
    error: str | None
    """Why the last run failed (``status == "error"``)."""
    owner: str | None
    """The process running it, which holds its lease (``status == "running"``)."""
    runs: int
    """Top-level runs so far (new input, resumes, decisions)."""
    created_at: float
    """Epoch seconds."""
    updated_at: float
    """Epoch seconds."""
    lease_gen: int = 0
    """How many times a run took the thread (the lease's generation)."""
    leased_at: float | None = None
    """When the last run took the thread (epoch seconds)."""
    lease_until: float | None = None
    """Until when the holder's lease lasts unless renewed (``None``: not held)."""

    @property
    def expired(self) -> bool:
        """Whether a holder is named but its lease ran out (no heartbeat in time)."""
        return bool(self.owner) and (self.lease_until is None or self.lease_until < time.time())

    @property
    def state(self) -> str:
        """The status, with ``crashed`` for a run whose process is gone.

        Gone means: this host's kernel says the process is dead (for a run on this
        host), or its lease expired -- its heartbeat stopped (a run on any host).
        """
        # pass "now" as the heartbeat so that only this host's kernel can say "dead"
        if self.status == "running" and (
            not owner_alive(self.owner, time.time(), True) or (self.lease_gen > 0 and self.expired)
        ):
            return "crashed"
        return self.status

    @property
    def holder(self) -> str | None:
        """The process holding the thread now (``None``: free, or its holder is gone)."""
        return self.owner if self.state == "running" else None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``state`` included)."""
        return {
            "thread": self.thread_id,
            "graph": self.graph,
            "description": self.description,
            "source": self.source,
            "model": self.model,
            "request": self.request,
            "status": self.state,
            "error": self.error,
            "runs": self.runs,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "holder": self.holder,
            "leased_since": self.leased_at if self.holder else None,
            "lease_until": self.lease_until if self.holder else None,
            "lease_generation": self.lease_gen,
        }


def _record(row: Sequence[Any]) -> ThreadRecord:
    return ThreadRecord(
        str(row[0]),
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        row[8],
        row[9],
        int(row[10]),
        float(row[11]),
        float(row[12]),
        int(row[13] or 0) if len(row) > 13 else 0,
        float(row[14]) if len(row) > 14 and row[14] is not None else None,
        float(row[15]) if len(row) > 15 and row[15] is not None else None,
    )


class ThreadRegistry:
    """The registry's statements, run through the ledger's ``_run`` (see module docs).

    Also the lease check the ledger's other fenced statements make
    (:meth:`_fence`, :meth:`_check_lease`).
    """

    _share = ""
    """What a fence's read of the lease row adds (Postgres: ``FOR SHARE``)."""

    def _run(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[Sequence[Any]], int]:
        raise NotImplementedError  # pragma: no cover - ToolLedger provides it

    # -- the lease (see podium.checkpoints._leases) --------------------------------------
    def take_lease(
        self,
        thread_id: str,
        *,
        owner: str,
        seconds: float,
        seen: ThreadRecord | None,
        location: str,
        graph: str | None = None,
        description: str | None = None,
        request: str | None = None,
        force: bool = False,
    ) -> Lease | None:
        """Take the thread for a run of process ``owner``: compare-and-set.

        ``seen`` is the row as the caller read it (``None``: there was none) and
        found free: released, expired, or held by a process known to be dead. The
        take succeeds only if the row still has ``seen``'s generation and is still
        free (an expired holder that renewed in between keeps it); it marks the
        thread ``running``, counts the run, and increments the generation.
        ``force`` takes it whoever holds it (leases turned off: the row only
        registers the run).

        Returns:
            The :class:`~podium.checkpoints._leases.Lease`, or ``None`` if another
            run changed the row first (read it again).
        """
        now = time.time()
        text = request[:REQUEST_CHARS] if request else None
        if force:
            rows, _ = self._run(
                f"INSERT INTO podium_threads ({_COLUMNS}, lease_gen, leased_at, lease_until) "
                "VALUES (?, ?, ?, NULL, NULL, NULL, ?, 'running', NULL, ?, 1, ?, ?, 1, ?, ?) "
                "ON CONFLICT (thread_id) DO UPDATE SET status='running', error=NULL, "
                "owner=excluded.owner, runs=podium_threads.runs + 1, "
                "updated_at=excluded.updated_at, "
                "graph=COALESCE(podium_threads.graph, excluded.graph), "
                "description=COALESCE(podium_threads.description, excluded.description), "
                "request=COALESCE(podium_threads.request, excluded.request), "
                "lease_gen=podium_threads.lease_gen + 1, leased_at=excluded.leased_at, "
                "lease_until=excluded.lease_until RETURNING lease_gen",
                (thread_id, graph, description, text, owner, now, now, now, now + seconds),
            )
            generation = int(rows[0][0])
        elif seen is None:
            _, inserted = self._run(
                f"INSERT INTO podium_threads ({_COLUMNS}, lease_gen, leased_at, lease_until) "
                "VALUES (?, ?, ?, NULL, NULL, NULL, ?, 'running', NULL, ?, 1, ?, ?, 1, ?, ?) "
                "ON CONFLICT (thread_id) DO NOTHING",
                (thread_id, graph, description, text, owner, now, now, now, now + seconds),
            )
            generation = 1 if inserted == 1 else 0
        else:
            _, updated = self._run(
                "UPDATE podium_threads SET status='running', error=NULL, owner=?, "
                "runs=runs + 1, updated_at=?, graph=COALESCE(graph, ?), "
                "description=COALESCE(description, ?), request=COALESCE(request, ?), "
                "lease_gen=lease_gen + 1, leased_at=?, lease_until=? "
                "WHERE thread_id=? AND lease_gen=? AND (owner IS NULL OR lease_until IS NULL "
                "OR lease_until < ? OR owner=?)",
                (
                    owner,
                    now,
                    graph,
                    description,
                    text,
                    now,
                    now + seconds,
                    thread_id,
                    seen.lease_gen,
                    now,
                    seen.owner or "",
                ),
            )
            generation = seen.lease_gen + 1 if updated == 1 else 0
        if not generation:
            return None
        return Lease(thread_id, generation, owner, location, seconds, now)

    def renew_lease(self, lease: Lease) -> bool:
        """The heartbeat: push the lease's expiry forward; ``False`` if it was lost."""
        _, count = self._run(
            "UPDATE podium_threads SET lease_until=? WHERE thread_id=? AND lease_gen=? AND owner=?",
            (time.time() + lease.seconds, *lease.params),
        )
        return count == 1

    def release_lease(
        self,
        lease: Lease,
        status: ThreadStatus,
        error: str | None = None,
        *,
        counted: bool = True,
        force: bool = False,
    ) -> bool:
        """The run ended (``waiting``, ``done``, ``error``, ``stopped``): free the thread.

        Args:
            lease: The run's lease; a lease that was lost changes nothing.
            status: How the run ended.
            error: Why it failed (``status == "error"``).
            counted: ``False`` for a run refused before it ran (not counted in
                ``runs``).
            force: Write the status whoever holds the thread (leases turned off).

        Returns:
            Whether the run still held the thread.
        """
        which = "thread_id=?" if force else "thread_id=? AND lease_gen=? AND owner=?"
        _, count = self._run(
            "UPDATE podium_threads SET status=?, error=?, owner=NULL, lease_until=NULL, "
            f"updated_at=?, runs=runs - ? WHERE {which}",
            (
                status,
                error[:2000] if error else None,
                time.time(),
                0 if counted else 1,
                *(lease.params[:1] if force else lease.params),
            ),
        )
        return count == 1

    def holds(self, lease: Lease) -> bool:
        """Whether ``lease`` is still the thread's (generation and owner unchanged)."""
        rows, _ = self._run(FENCE_SQL, lease.params)
        return bool(rows)

    def _fence(self, lease: Lease | None) -> tuple[str, tuple[Any, ...]]:
        """The condition a fenced statement adds, and its parameters.

        Without a lease the condition is always true (and costs nothing).
        """
        if lease is None:
            return "1 = 1", ()
        return f"EXISTS ({FENCE_SQL}{self._share})", lease.params

    def _check_lease(self, lease: Lease | None, what: str) -> None:
        """Raise :meth:`lost_lease_error` unless ``lease`` (if any) still holds."""
        if lease is not None and not self.holds(lease):
            raise self.lost_lease_error(lease, what)

    def lost_lease_error(self, lease: Lease, what: str) -> LeaseLostError:
        """The error for a write refused because ``lease`` was lost (names the new holder)."""
        now = self.thread(lease.thread)
        holder = now.holder if now is not None else None
        return lease_lost(lease, what, holder, now.leased_at if now and holder else None)

    def record_source(
        self,
        thread_id: str,
        source: str,
        *,
        source_path: str | None = None,
        model: str | None = None,
        request: str | None = None,
    ) -> None:
        """Say how to rebuild the thread's graph (before or after it first ran)."""
        now = time.time()
        self._run(
            f"INSERT INTO podium_threads ({_COLUMNS}) "
            "VALUES (?, NULL, NULL, ?, ?, ?, ?, 'new', NULL, NULL, 0, ?, ?) "
            "ON CONFLICT (thread_id) DO UPDATE SET source=excluded.source, "
            "source_path=excluded.source_path, "
            "model=COALESCE(excluded.model, podium_threads.model), "
            "request=COALESCE(podium_threads.request, excluded.request)",
            (
                thread_id,
                source,
                source_path,
                model,
                request[:REQUEST_CHARS] if request else None,
                now,
                now,
            ),
        )

    def threads(self) -> list[ThreadRecord]:
        """Every registered thread, oldest first."""
        rows, _ = self._run(f"SELECT {_READ} FROM podium_threads ORDER BY created_at")
        return [_record(r) for r in rows]

    def thread(self, thread_id: str) -> ThreadRecord | None:
        """One thread's record."""
        rows, _ = self._run(f"SELECT {_READ} FROM podium_threads WHERE thread_id=?", (thread_id,))
        return _record(rows[0]) if rows else None

    def forget_thread(self, thread_id: str) -> None:
        """Drop the thread's record (with the thread itself)."""
        self._run("DELETE FROM podium_threads WHERE thread_id=?", (thread_id,))


def migrate_threads(db: sqlite3.Connection) -> None:
    """Bring a SQLite file's registry from the first CLI's table up to date.

    The first release's ``podium_threads`` (written only by the CLI) had
    ``thread_id, graph, model, request, created_at``, its ``graph`` being what is now
    ``source``. Rows are copied into the new table once, in one transaction.
    """
    present = {r[1] for r in db.execute("PRAGMA table_info(podium_threads)")}
    if not present or "status" in present:
        db.executescript(THREADS_SCHEMA)
        return
    try:
        db.execute("BEGIN IMMEDIATE")
        present = {r[1] for r in db.execute("PRAGMA table_info(podium_threads)")}
        if "status" not in present:  # not migrated by another process meanwhile
            db.execute("ALTER TABLE podium_threads RENAME TO podium_threads_v1")
            db.execute(THREADS_SCHEMA)
            db.execute(
                f"INSERT INTO podium_threads ({_COLUMNS}) SELECT thread_id, NULL, NULL, graph, "
                "NULL, model, request, CASE WHEN EXISTS (SELECT 1 FROM podium_approvals a "
                "WHERE a.thread_id = v.thread_id AND a.status = 'pending') THEN 'waiting' "
                "ELSE 'done' END, NULL, NULL, 1, created_at, created_at "
                "FROM podium_threads_v1 v"
            )
            db.execute("DROP TABLE podium_threads_v1")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def source_of(spec: str) -> str | None:
    """The ``sys.path`` entry that ``spec``'s module is imported from (if it was)."""
    module = sys.modules.get(spec.partition(":")[0])
    file = getattr(module, "__file__", None)
    if not file:
        return None
    root = Path(file).resolve().parent
    depth = spec.partition(":")[0].count(".") + (1 if Path(file).name == "__init__.py" else 0)
    for _ in range(depth):
        root = root.parent
    return str(root)
