"""The exactly-once tool ledger and the approval records it binds calls to.

Two tables, beside the checkpoints (the same SQLite file, or the same Postgres
database, as the graph's checkpointer):

* ``podium_tool_calls`` -- one row per side-effecting call, keyed by
  ``(thread_id, call_key)``: ``started`` before the tool runs, ``done`` with the
  result after. Re-running the step returns the stored result; a row still
  ``started`` is *in doubt* (the process died mid-call).
* ``podium_approvals`` -- one row per gated call: the request, and once a human
  decided, the decision and the hash of the arguments it approved. The executor
  runs a gated call only when this row holds a decision bound to exactly the
  arguments it is about to run with.

``call_key`` is the tool task's checkpoint namespace plus the tool-call id. LangGraph
derives task ids deterministically from the checkpoint, so a step re-run after a
resume or a crash has the same key, while a new step (or a crafted ``Send``) never
inherits another call's approval.

:class:`ToolLedger` is the interface; :class:`SQLiteLedger` and
:class:`~podium.checkpoints.PostgresLedger` implement it with the same SQL (every
statement is its own committed transaction, durable before the method returns).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

__all__ = ["ApprovalRecord", "CallRecord", "SQLiteLedger", "ToolLedger", "args_hash"]

CallStatus = Literal["started", "done"]
ApprovalStatus = Literal["pending", "decided"]

LEDGER_TABLES = ("podium_tool_calls", "podium_approvals")
"""The ledger's tables (for size reports and integrity checks)."""


def ledger_schema(seq_column: str) -> str:
    """The ledger's DDL; ``seq_column`` orders approvals (``rowid`` needs none)."""
    seq = f"    seq {seq_column},\n" if seq_column else ""
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
    UNIQUE (thread_id, call_key)
);
"""


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
    """``started`` (maybe in doubt) or ``done``."""
    attempts: int
    """How many times the call was started."""
    result: dict[str, Any] | None
    """For ``done``: ``{"content": ..., "status": ...}`` of the ToolMessage."""


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


Row = Sequence[Any]


class ToolLedger(ABC):
    """The exactly-once ledger: what every storage backend provides.

    Implementations run each method as one committed transaction, so a record is
    durable before the method returns (the executor relies on this: ``started``
    is on disk before the tool acts).

    Subclasses implement :meth:`_execute` (and :meth:`close`); the SQL is shared.
    Statements are written with ``?`` placeholders; :attr:`_placeholder` converts.
    """

    _placeholder = "?"
    _order = "rowid"

    @abstractmethod
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[Row], int]:
        """Run one statement in its own transaction; return ``(rows, rowcount)``."""

    @abstractmethod
    def close(self) -> None:
        """Release the ledger's connections."""

    def _run(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[Row], int]:
        if self._placeholder != "?":
            sql = sql.replace("?", self._placeholder)
        return self._execute(sql, params)

    # -- tool calls --------------------------------------------------------------
    def get_call(self, thread_id: str, call_key: str) -> CallRecord | None:
        """The call's record, if it was ever started."""
        rows, _ = self._run(
            "SELECT tool, args_hash, idempotency_key, status, attempts, result "
            "FROM podium_tool_calls WHERE thread_id=? AND call_key=?",
            (thread_id, call_key),
        )
        if not rows:
            return None
        row = rows[0]
        return CallRecord(
            row[0], row[1], row[2], row[3], int(row[4]), json.loads(row[5]) if row[5] else None
        )

    def start_call(self, thread_id: str, call_key: str, tool: str, hashed: str) -> CallRecord:
        """Record that the call is starting (again); durable before the tool runs."""
        key = hashlib.sha256(f"{thread_id}\0{call_key}\0{hashed}".encode()).hexdigest()[:32]
        self._run(
            "INSERT INTO podium_tool_calls (thread_id, call_key, tool, args_hash, "
            "idempotency_key, status, started_at) VALUES (?, ?, ?, ?, ?, 'started', ?) "
            "ON CONFLICT (thread_id, call_key) DO UPDATE SET "
            "attempts = podium_tool_calls.attempts + 1, "
            "status = 'started', args_hash = excluded.args_hash",
            (thread_id, call_key, tool, hashed, key, _now()),
        )
        record = self.get_call(thread_id, call_key)
        if record is None:  # pragma: no cover - the row was just written
            raise RuntimeError("ledger row vanished")
        return record

    def finish_call(self, thread_id: str, call_key: str, result: dict[str, Any]) -> None:
        """Store the call's result; later re-runs return it instead of acting again."""
        self._run(
            "UPDATE podium_tool_calls SET status='done', result=?, finished_at=? "
            "WHERE thread_id=? AND call_key=?",
            (json.dumps(result, default=str), _now(), thread_id, call_key),
        )

    def count_calls(self, thread_id: str | None = None) -> int:
        """How many distinct calls the ledger holds (optionally for one thread)."""
        if thread_id is None:
            rows, _ = self._run("SELECT COUNT(*) FROM podium_tool_calls")
        else:
            rows, _ = self._run(
                "SELECT COUNT(*) FROM podium_tool_calls WHERE thread_id=?", (thread_id,)
            )
        return int(rows[0][0])

    # -- approvals -----------------------------------------------------------------
    def ensure_request(
        self, thread_id: str, call_key: str, request_id: str, request: dict[str, Any]
    ) -> ApprovalRecord:
        """Store ``request`` unless the call already has one; return the stored record."""
        self._run(
            "INSERT INTO podium_approvals (request_id, thread_id, call_key, request, status) "
            "VALUES (?, ?, ?, ?, 'pending') ON CONFLICT DO NOTHING",
            (request_id, thread_id, call_key, json.dumps(request)),
        )
        record = self.get_approval(thread_id, call_key)
        if record is None:  # pragma: no cover - the row was just written
            raise RuntimeError("ledger row vanished")
        return record

    def get_approval(self, thread_id: str, call_key: str) -> ApprovalRecord | None:
        """The approval record of a call, if it has one."""
        rows, _ = self._run(
            "SELECT request, status, decision, bound_args_hash FROM podium_approvals "
            "WHERE thread_id=? AND call_key=?",
            (thread_id, call_key),
        )
        return _approval(rows[0]) if rows else None

    def record_decision(
        self,
        thread_id: str,
        call_key: str,
        decision: dict[str, Any],
        bound_hash: str | None,
    ) -> bool:
        """Bind a decision to a pending request; ``False`` if it was already decided."""
        _, count = self._run(
            "UPDATE podium_approvals SET status='decided', decision=?, bound_args_hash=?, "
            "decided_by=?, decided_at=? WHERE thread_id=? AND call_key=? "
            "AND status='pending'",
            (
                json.dumps(decision),
                bound_hash,
                str(decision.get("by", "")),
                _now(),
                thread_id,
                call_key,
            ),
        )
        return count == 1

    def approvals(self, thread_id: str) -> list[ApprovalRecord]:
        """Every approval record of a thread, oldest first."""
        rows, _ = self._run(
            "SELECT request, status, decision, bound_args_hash FROM podium_approvals "
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

    def delete_thread(self, thread_id: str) -> None:
        """Forget every call and approval of a thread (with the thread itself)."""
        self._run("DELETE FROM podium_tool_calls WHERE thread_id=?", (thread_id,))
        self._run("DELETE FROM podium_approvals WHERE thread_id=?", (thread_id,))


def _approval(row: Row) -> ApprovalRecord:
    return ApprovalRecord(
        json.loads(row[0]), row[1], json.loads(row[2]) if row[2] else None, row[3]
    )


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

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[Row], int]:
        with self._lock:
            cursor = self._db.execute(sql, tuple(params))
            return cursor.fetchall(), cursor.rowcount

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()
