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
The statements live by table: :mod:`podium.checkpoints._calls` (tool calls),
:mod:`podium.checkpoints._approvals` (human decisions) and
:mod:`podium.checkpoints._threads` (the registry and its leases); this module holds
the schema and the backends.

Text stored here (arguments, results, requests, decisions) has the values of the
secrets this process read scrubbed out (:mod:`podium._scrub`); hashes are of the
real arguments, so a call's identity does not change.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from podium.checkpoints._approvals import ApprovalLedger, ApprovalRecord, ApprovalStatus
from podium.checkpoints._calls import CallLedger, CallRecord, CallStatus, Claim, args_hash
from podium.checkpoints._owners import owner_alive, process_owner
from podium.checkpoints._threads import LEASE_COLUMNS, THREADS_SCHEMA, migrate_threads

__all__ = [
    "ApprovalRecord",
    "ApprovalStatus",
    "CallRecord",
    "CallStatus",
    "Claim",
    "MemoryLedger",
    "SQLiteLedger",
    "ToolLedger",
    "args_hash",
    "owner_alive",
    "process_owner",
]

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


Row = Sequence[Any]


class ToolLedger(CallLedger, ApprovalLedger, ABC):
    """The exactly-once ledger: what every storage backend provides.

    Implementations run each method as one committed transaction, so a record is
    durable before the method returns (the executor relies on this: ``started``
    is on disk before the tool acts).

    The statements are its bases': tool calls (:class:`~podium.checkpoints._calls.CallLedger`),
    human decisions (:class:`~podium.checkpoints._approvals.ApprovalLedger`) and the
    thread registry with its leases (:class:`~podium.checkpoints._threads.ThreadRegistry`).
    Subclasses implement :meth:`_execute` (and :meth:`close`); the SQL is shared.
    Statements are written with ``?`` placeholders; :attr:`_placeholder` converts.
    """

    _placeholder = "?"

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

    def delete_thread(self, thread_id: str) -> None:
        """Forget every call, approval and the registry row of a thread (with the thread)."""
        self._run("DELETE FROM podium_tool_calls WHERE thread_id=?", (thread_id,))
        self._run("DELETE FROM podium_approvals WHERE thread_id=?", (thread_id,))
        self.forget_thread(thread_id)


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
