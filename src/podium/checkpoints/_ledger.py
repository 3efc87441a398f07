"""The exactly-once tool ledger and the human decisions it binds calls to.

Two tables, beside the checkpoints (the same SQLite file, or the same Postgres
database, as the graph's checkpointer):

* ``podium_tool_calls`` -- one row per side-effecting call, keyed by
  ``(thread_id, call_key)``: ``started`` before the tool runs, ``done`` with the
  result after. Starting is compare-and-set (:meth:`ToolLedger.claim_call`): only
  the process whose insert created the row runs the tool; everyone else gets the
  row back (and waits for its result, or finds it *in doubt*). A ``started`` row
  names its ``owner`` (host, process, a per-process nonce) and carries a heartbeat,
  so a call another live process is running is told apart from one whose process
  died mid-call.
* ``podium_approvals`` -- one row per human question (a gated call, an edit that
  needs another tier, an in-doubt call, an escalation, a pipeline gate): the
  request, and once a human decided, the decision and the hash of the arguments it
  lets run. Deciding is compare-and-set too (:meth:`ToolLedger.record_decision`):
  the first decision recorded binds, later ones get the recorded one back.

**Fencing.** Starting a call (:meth:`~ToolLedger.claim_call`,
:meth:`~ToolLedger.reclaim_call`) and storing a request for a human
(:meth:`~ToolLedger.open_request`) take the run's thread lease (``lease=``, see
:mod:`podium.checkpoints._leases`) and write only if the thread's row still has
that lease -- checked inside the same statement (Postgres: ``FOR SHARE``, so a
take-over waits for it), so a run that lost its thread neither acts nor asks; it
gets :class:`~podium.errors.LeaseLostError`. Recording a result
(:meth:`~ToolLedger.finish_call`) is not fenced: an effect that happened is always
recorded, so it is never repeated.

``call_key`` identifies the call, not the graph task that runs it: the node path,
the id of the ``AIMessage`` that asked for it, the tool-call id and the hash of the
arguments the model gave (see :func:`podium.tools._executor.call_key`). Replays,
forks and time travel of the same call therefore find its record; a new model
message acts anew.

:class:`ToolLedger` is the interface; :class:`SQLiteLedger` and
:class:`~podium.checkpoints.PostgresLedger` implement it with the same SQL (every
statement is its own committed transaction, durable before the method returns).

Text stored here (arguments, results, requests, decisions) has the values of the
secrets this process read scrubbed out (:mod:`podium._scrub`); hashes are of the
real arguments, so a call's identity does not change.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from podium._scrub import scrub
from podium.checkpoints._leases import FENCE_SQL, Lease
from podium.checkpoints._owners import (
    owner_alive,
    process_owner,
)
from podium.checkpoints._threads import (
    LEASE_COLUMNS,
    THREADS_SCHEMA,
    ThreadRegistry,
    migrate_threads,
)

__all__ = [
    "ApprovalRecord",
    "CallRecord",
    "Claim",
    "MemoryLedger",
    "SQLiteLedger",
    "ToolLedger",
    "args_hash",
    "owner_alive",
    "process_owner",
]

CallStatus = Literal["started", "done"]
ApprovalStatus = Literal["pending", "decided"]

LEDGER_TABLES = ("podium_tool_calls", "podium_approvals", "podium_threads")
"""The ledger's tables (for size reports and integrity checks)."""


_ADDED_COLUMNS = (
    ("podium_tool_calls", "owner", "TEXT"),
    ("podium_tool_calls", "heartbeat_at", "DOUBLE PRECISION"),
    ("podium_tool_calls", "args", "TEXT"),
    ("podium_tool_calls", "late", "INTEGER"),
    ("podium_approvals", "shown", "TEXT"),
    *LEASE_COLUMNS,
)
"""Columns newer than the first release: added to existing databases on open."""


def ledger_schema(seq_column: str) -> str:
    """The ledger's DDL; ``seq_column`` orders approvals (``rowid`` needs none).

    For PostgreSQL (``seq_column`` set) it also adds columns that older databases
    lack (``ADD COLUMN IF NOT EXISTS``); SQLite ledgers do that on open.
    """
    seq = f"    seq {seq_column},\n" if seq_column else ""
    migrate = (
        "".join(
            f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {kind};\n"
            for table, column, kind in _ADDED_COLUMNS
        )
        if seq_column
        else ""
    )
    return f"""
CREATE TABLE IF NOT EXISTS podium_tool_calls (
    thread_id TEXT NOT NULL,
    call_key TEXT NOT NULL,
    tool TEXT NOT NULL,
    args_hash TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    result TEXT,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    owner TEXT,
    heartbeat_at DOUBLE PRECISION,
    args TEXT,
    late INTEGER,
    PRIMARY KEY (thread_id, call_key)
);
CREATE TABLE IF NOT EXISTS podium_approvals (
{seq}    request_id TEXT PRIMARY KEY,
    thread_id TEXT NOT NULL,
    call_key TEXT NOT NULL,
    request TEXT NOT NULL,
    status TEXT NOT NULL,
    decision TEXT,
    bound_args_hash TEXT,
    decided_by TEXT,
    decided_at TEXT,
    shown TEXT,
    UNIQUE (thread_id, call_key)
);
{THREADS_SCHEMA}{migrate}"""


def args_hash(args: Any) -> str:
    """A stable hash of tool arguments (canonical JSON, sorted keys)."""
    canonical = json.dumps(args, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True)
class CallRecord:
    """A row of ``podium_tool_calls``."""

    tool: str
    """The tool."""
    args_hash: str
    """Hash of the arguments it ran with."""
    idempotency_key: str
    """Passed to idempotent tools, the same on every attempt."""
    status: CallStatus
    """``started`` (running, or in doubt) or ``done``."""
    attempts: int
    """How many times the call was started."""
    result: dict[str, Any] | None
    """For ``done``: ``{"content": ..., "status": ...}`` of the ToolMessage."""
    owner: str | None = None
    """Who started the latest attempt (see :func:`process_owner`)."""
    heartbeat_at: float | None = None
    """When that process last said it is still running the call (epoch seconds)."""
    args: dict[str, Any] | None = None
    """The arguments it runs with (``None`` for rows written before they were kept)."""
    late: bool = False
    """It timed out and the model has not been told how it ended yet."""
    call_key: str = ""
    """The call's key."""


@dataclass(frozen=True)
class Claim:
    """The outcome of :meth:`ToolLedger.claim_call`."""

    won: bool
    """This process started the call and must run it."""
    record: CallRecord
    """The row as it is now (this process's, or the one that was already there)."""


@dataclass(frozen=True)
class ApprovalRecord:
    """A row of ``podium_approvals``."""

    request: dict[str, Any]
    """The request shown to the human (``ApprovalRequest.to_json()``)."""
    status: ApprovalStatus
    """``pending`` or ``decided``."""
    decision: dict[str, Any] | None
    """The accepted decision (``Decision.to_json()``)."""
    bound_args_hash: str | None
    """Hash of the arguments the decision allows to run."""
    call_key: str = ""
    """The question's key (the call's key plus what is asked)."""
    shown: dict[str, Any] | None = None
    """The request as last shown, when it differs from :attr:`request` (a refused
    decision's note): what ``podium pending`` prints."""


Row = Sequence[Any]
_CALL_COLUMNS = (
    "tool, args_hash, idempotency_key, status, attempts, result, owner, heartbeat_at, args, "
    "late, call_key"
)
_APPROVAL_COLUMNS = "request, status, decision, bound_args_hash, call_key, shown"


class ToolLedger(ThreadRegistry, ABC):
    """The exactly-once ledger: what every storage backend provides.

    Implementations run each method as one committed transaction, so a record is
    durable before the method returns (the executor relies on this: ``started``
    is on disk before the tool acts).

    Subclasses implement :meth:`_execute` (and :meth:`close`); the SQL is shared.
    Statements are written with ``?`` placeholders; :attr:`_placeholder` converts.
    """

    _placeholder = "?"
    _order = "rowid"
    _share = ""
    """What a fence's read of the lease row adds (Postgres: ``FOR SHARE``)."""

    @abstractmethod
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[Row], int]:
        """Run one statement in its own transaction; return ``(rows, rowcount)``."""

    @abstractmethod
    def close(self) -> None:
        """Release the ledger's connections."""

    @property
    def location(self) -> str:
        """Where the records live: two ledger objects on one database share it."""
        return f"{type(self).__name__}:{id(self)}"

    def _run(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[Row], int]:
        if self._placeholder != "?":
            sql = sql.replace("?", self._placeholder)
        return self._execute(sql, params)

    def _fence(self, lease: Lease | None) -> tuple[str, tuple[Any, ...]]:
        """The condition a fenced statement adds, and its parameters.

        Without a lease the condition is always true (and costs nothing).
        """
        if lease is None:
            return "1 = 1", ()
        return f"EXISTS ({FENCE_SQL}{self._share})", lease.params

    def _check_lease(self, lease: Lease | None, what: str) -> None:
        if lease is not None and not self.holds(lease):
            raise self.lost_lease_error(lease, what)

    # -- tool calls --------------------------------------------------------------
    def get_call(self, thread_id: str, call_key: str) -> CallRecord | None:
        """The call's record, if it was ever started."""
        rows, _ = self._run(
            f"SELECT {_CALL_COLUMNS} FROM podium_tool_calls WHERE thread_id=? AND call_key=?",
            (thread_id, call_key),
        )
        return _call(rows[0]) if rows else None

    def claim_call(
        self,
        thread_id: str,
        call_key: str,
        tool: str,
        hashed: str,
        owner: str,
        args: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        *,
        lease: Lease | None = None,
    ) -> Claim:
        """Start the call unless it was started before: compare-and-set.

        Only the caller whose insert created the row may run the tool (``won``);
        any other caller gets the existing row -- running elsewhere, done, or in
        doubt -- and must not act. Durable before it returns.

        Raises:
            LeaseLostError: If ``lease`` (the run's) is no longer the thread's:
                nothing was written.
        """
        key = (
            idempotency_key
            or hashlib.sha256(f"{thread_id}\0{call_key}\0{hashed}".encode()).hexdigest()[:32]
        )
        fence, fenced = self._fence(lease)
        _, inserted = self._run(
            "INSERT INTO podium_tool_calls (thread_id, call_key, tool, args_hash, "
            "idempotency_key, status, started_at, owner, heartbeat_at, args, late) "
            f"SELECT ?, ?, ?, ?, ?, 'started', ?, ?, ?, ?, 0 WHERE {fence} "
            "ON CONFLICT (thread_id, call_key) DO NOTHING",
            (
                thread_id,
                call_key,
                tool,
                hashed,
                key,
                _now(),
                owner,
                now := time.time(),
                json.dumps(scrub(args), default=str) if args is not None else None,
                *fenced,
            ),
        )
        if inserted == 1:  # this row, as just written: no read-back
            mine = CallRecord(
                tool, hashed, key, "started", 1, None, owner, now, args, False, call_key
            )
            return Claim(True, mine)
        self._check_lease(lease, f"start of tool call {tool!r}")
        record = self.get_call(thread_id, call_key)
        if record is None:  # pragma: no cover - a conflicting row was there
            raise RuntimeError("ledger row vanished")
        return Claim(False, record)

    def reclaim_call(
        self,
        thread_id: str,
        call_key: str,
        previous_owner: str | None,
        owner: str,
        hashed: str,
        *,
        lease: Lease | None = None,
    ) -> bool:
        """Take over an in-doubt call to run it again: compare-and-set on its owner.

        Succeeds for exactly one caller, and only while the row is still ``started``
        by ``previous_owner``; counts the attempt.

        Raises:
            LeaseLostError: If ``lease`` (the run's) is no longer the thread's.
        """
        fence, fenced = self._fence(lease)
        _, count = self._run(
            "UPDATE podium_tool_calls SET owner=?, heartbeat_at=?, "
            "attempts = attempts + 1, args_hash=?, started_at=? "
            "WHERE thread_id=? AND call_key=? AND status='started' AND COALESCE(owner, '')=? "
            f"AND {fence}",
            (
                owner,
                time.time(),
                hashed,
                _now(),
                thread_id,
                call_key,
                previous_owner or "",
                *fenced,
            ),
        )
        if count != 1:
            self._check_lease(lease, "new attempt of an in-doubt tool call")
        return count == 1

    def release_call(self, thread_id: str, call_key: str, owner: str) -> bool:
        """Forget a first attempt that never reached the tool's service.

        For a call whose service could not be reached at all (nothing was sent): the
        row goes, so the resumed run starts the call afresh instead of finding it in
        doubt. Only the owner's own ``started`` first attempt is removed.
        """
        _, count = self._run(
            "DELETE FROM podium_tool_calls "
            "WHERE thread_id=? AND call_key=? AND status='started' AND owner=? AND attempts=1",
            (thread_id, call_key, owner),
        )
        return count == 1

    def heartbeat(self, thread_id: str, call_key: str, owner: str) -> None:
        """Say that ``owner`` is still running the call."""
        self._run(
            "UPDATE podium_tool_calls SET heartbeat_at=? "
            "WHERE thread_id=? AND call_key=? AND owner=? AND status='started'",
            (time.time(), thread_id, call_key, owner),
        )

    def finish_call(self, thread_id: str, call_key: str, result: dict[str, Any]) -> bool:
        """Store the call's result; later re-runs return it instead of acting again.

        The first result recorded stays (``False`` when the call was already done).
        """
        _, count = self._run(
            "UPDATE podium_tool_calls SET status='done', result=?, finished_at=? "
            "WHERE thread_id=? AND call_key=? AND status='started'",
            (json.dumps(scrub(result), default=str), _now(), thread_id, call_key),
        )
        return count == 1

    def mark_late(self, thread_id: str, call_key: str, late: bool) -> None:
        """Flag a call that timed out (``True``), or note the model was told how it ended."""
        self._run(
            "UPDATE podium_tool_calls SET late=? WHERE thread_id=? AND call_key=?",
            (1 if late else 0, thread_id, call_key),
        )

    def unresolved(self, thread_id: str, tool: str) -> list[CallRecord]:
        """Calls of ``tool`` in the thread that are not settled.

        Still running or in doubt, or timed out and ended since without the model
        being told how.
        """
        rows, _ = self._run(
            f"SELECT {_CALL_COLUMNS} FROM podium_tool_calls WHERE thread_id=? AND tool=? "
            "AND (status='started' OR late=1)",
            (thread_id, tool),
        )
        return [_call(r) for r in rows]

    def count_calls(self, thread_id: str | None = None) -> int:
        """How many distinct calls the ledger holds (optionally for one thread)."""
        if thread_id is None:
            rows, _ = self._run("SELECT COUNT(*) FROM podium_tool_calls")
        else:
            rows, _ = self._run(
                "SELECT COUNT(*) FROM podium_tool_calls WHERE thread_id=?", (thread_id,)
            )
        return int(rows[0][0])

    # -- human decisions -----------------------------------------------------------
    def open_request(
        self,
        thread_id: str,
        call_key: str,
        request_id: str,
        request: dict[str, Any],
        *,
        lease: Lease | None = None,
    ) -> tuple[ApprovalRecord, bool]:
        """Store ``request`` unless the question has one; return the stored record.

        Returns:
            The record, and whether this call created it.

        Raises:
            LeaseLostError: If ``lease`` (the run's) is no longer the thread's.
        """
        fence, fenced = self._fence(lease)
        _, inserted = self._run(
            "INSERT INTO podium_approvals (request_id, thread_id, call_key, request, status) "
            f"SELECT ?, ?, ?, ?, 'pending' WHERE {fence} ON CONFLICT DO NOTHING",
            (request_id, thread_id, call_key, json.dumps(scrub(request)), *fenced),
        )
        if inserted != 1:
            self._check_lease(lease, "request for a human")
        record = self.get_approval(thread_id, call_key)
        if record is None:  # pragma: no cover - the row was just written
            raise RuntimeError("ledger row vanished")
        return record, inserted == 1

    def ensure_request(
        self, thread_id: str, call_key: str, request_id: str, request: dict[str, Any]
    ) -> ApprovalRecord:
        """Store ``request`` unless the question has one; return the stored record."""
        return self.open_request(thread_id, call_key, request_id, request)[0]

    def get_approval(self, thread_id: str, call_key: str) -> ApprovalRecord | None:
        """The record of a question, if it was asked."""
        rows, _ = self._run(
            f"SELECT {_APPROVAL_COLUMNS} FROM podium_approvals WHERE thread_id=? AND call_key=?",
            (thread_id, call_key),
        )
        return _approval(rows[0]) if rows else None

    def find_request(self, thread_id: str, request_id: str) -> ApprovalRecord | None:
        """The record of a request, by its id."""
        rows, _ = self._run(
            f"SELECT {_APPROVAL_COLUMNS} FROM podium_approvals WHERE thread_id=? AND request_id=?",
            (thread_id, request_id),
        )
        return _approval(rows[0]) if rows else None

    def record_decision(
        self,
        thread_id: str,
        call_key: str,
        decision: dict[str, Any],
        bound_hash: str | None,
    ) -> bool:
        """Bind a decision to a pending request: compare-and-set.

        Returns:
            ``True`` if this decision was recorded; ``False`` if the request was
            already decided (the recorded decision stands).
        """
        _, count = self._run(
            "UPDATE podium_approvals SET status='decided', decision=?, bound_args_hash=?, "
            "decided_by=?, decided_at=? WHERE thread_id=? AND call_key=? "
            "AND status='pending'",
            (
                json.dumps(scrub(decision)),
                bound_hash,
                str(decision.get("by", "")),
                _now(),
                thread_id,
                call_key,
            ),
        )
        return count == 1

    def show_request(self, thread_id: str, call_key: str, shown: dict[str, Any]) -> None:
        """Keep how a pending request is shown now (with a refused decision's note)."""
        self._run(
            "UPDATE podium_approvals SET shown=? WHERE thread_id=? AND call_key=? "
            "AND status='pending'",
            (json.dumps(scrub(shown)), thread_id, call_key),
        )

    def approvals(self, thread_id: str) -> list[ApprovalRecord]:
        """Every approval record of a thread, oldest first."""
        rows, _ = self._run(
            f"SELECT {_APPROVAL_COLUMNS} FROM podium_approvals "
            f"WHERE thread_id=? ORDER BY {self._order}",
            (thread_id,),
        )
        return [_approval(r) for r in rows]

    # -- maintenance -----------------------------------------------------------------
    def pending_approvals(self) -> dict[str, int]:
        """Per thread, how many approval requests have no decision yet."""
        rows, _ = self._run(
            "SELECT thread_id, COUNT(*) FROM podium_approvals WHERE status='pending' "
            "GROUP BY thread_id"
        )
        return {str(r[0]): int(r[1]) for r in rows}

    def pending_approvals_of(self, thread_id: str) -> int:
        """How many of one thread's requests have no decision yet."""
        rows, _ = self._run(
            "SELECT COUNT(*) FROM podium_approvals WHERE thread_id=? AND status='pending'",
            (thread_id,),
        )
        return int(rows[0][0])

    def delete_thread(self, thread_id: str) -> None:
        """Forget every call, approval and the registry row of a thread (with the thread)."""
        self._run("DELETE FROM podium_tool_calls WHERE thread_id=?", (thread_id,))
        self._run("DELETE FROM podium_approvals WHERE thread_id=?", (thread_id,))
        self.forget_thread(thread_id)


def _call(row: Row) -> CallRecord:
    return CallRecord(
        row[0],
        row[1],
        row[2],
        row[3],
        int(row[4]),
        json.loads(row[5]) if row[5] else None,
        row[6],
        float(row[7]) if row[7] is not None else None,
        json.loads(row[8]) if row[8] else None,
        bool(row[9]),
        row[10],
    )


def _approval(row: Row) -> ApprovalRecord:
    return ApprovalRecord(
        json.loads(row[0]),
        row[1],
        json.loads(row[2]) if row[2] else None,
        row[3],
        row[4],
        json.loads(row[5]) if row[5] else None,
    )


def add_missing_columns(db: sqlite3.Connection) -> None:
    """Bring an older SQLite ledger's tables up to date (columns added since)."""
    for table, column, kind in _ADDED_COLUMNS:
        present = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
        if present and column not in present:
            try:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            except sqlite3.OperationalError as exc:  # another process added it first
                if "duplicate column" not in str(exc):
                    raise


class SQLiteLedger(ToolLedger):
    """The ledger in a SQLite database: a file, or private memory.

    Args:
        path: The database file (normally the checkpointer's own file); ``None``
            keeps the ledger in memory (for graphs compiled without a durable
            checkpointer).
        synchronous: SQLite's ``synchronous`` level; ``NORMAL`` in WAL mode survives
            process crashes.
        busy_timeout: Seconds a write waits for another process's lock.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        synchronous: str = "NORMAL",
        busy_timeout: float = 30.0,
    ) -> None:
        self.path = str(path) if path is not None else None
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path or ":memory:",
            check_same_thread=False,
            isolation_level=None,
            timeout=busy_timeout,
        )
        if self.path:
            self._db.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(ledger_schema(""))
        migrate_threads(self._db)
        add_missing_columns(self._db)

    @property
    def location(self) -> str:
        """The database file (a private one for an in-memory ledger)."""
        found: str | None = getattr(self, "_location", None)
        if found is None:  # once: every fenced write of a run asks
            found = f"sqlite:{os.path.realpath(self.path)}" if self.path else super().location
            self._location = found
        return found

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[Row], int]:
        with self._lock:
            cursor = self._db.execute(sql, tuple(params))
            return cursor.fetchall(), cursor.rowcount

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()


class MemoryLedger(ToolLedger):
    """A private in-memory ledger, created on first use.

    What a graph compiled without a checkpointer gets: its runs cannot resume, so its
    records only need to last as long as the compiled graph, and must never meet
    another graph's (a subgraph uses its parent's ledger instead, at run time).
    """

    def __init__(self) -> None:
        self._ledger: SQLiteLedger | None = None
        self._lock = threading.Lock()

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[Row], int]:
        with self._lock:
            if self._ledger is None:
                self._ledger = SQLiteLedger()
            ledger = self._ledger
        return ledger._execute(sql, params)

    def close(self) -> None:
        """Drop the records."""
        with self._lock:
            if self._ledger is not None:
                self._ledger.close()
                self._ledger = None
