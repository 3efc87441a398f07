"""The exactly-once tool ledger and the approval records it binds calls to.

Two tables, beside the checkpoints (the same SQLite file when the graph is compiled
with a SQLite checkpointer):

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
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

__all__ = ["ApprovalRecord", "CallRecord", "ToolLedger", "args_hash"]

CallStatus = Literal["started", "done"]
ApprovalStatus = Literal["pending", "decided"]

_SCHEMA = """
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
    request_id TEXT PRIMARY KEY,
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


class ToolLedger:
    """The ledger over one SQLite database (a file, or private memory).

    Args:
        path: The database file; ``None`` keeps the ledger in memory (for graphs
            compiled without a durable checkpointer).
        synchronous: SQLite's ``synchronous`` level; ``NORMAL`` in WAL mode survives
            process crashes.
    """

    def __init__(self, path: str | Path | None = None, *, synchronous: str = "NORMAL") -> None:
        self.path = str(path) if path is not None else None
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path or ":memory:", check_same_thread=False, isolation_level=None, timeout=30
        )
        if self.path:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    # -- tool calls --------------------------------------------------------------
    def get_call(self, thread_id: str, call_key: str) -> CallRecord | None:
        """The call's record, if it was ever started."""
        with self._lock:
            row = self._db.execute(
                "SELECT tool, args_hash, idempotency_key, status, attempts, result "
                "FROM podium_tool_calls WHERE thread_id=? AND call_key=?",
                (thread_id, call_key),
            ).fetchone()
        if row is None:
            return None
        return CallRecord(
            row[0], row[1], row[2], row[3], row[4], json.loads(row[5]) if row[5] else None
        )

    def start_call(self, thread_id: str, call_key: str, tool: str, hashed: str) -> CallRecord:
        """Record that the call is starting (again); durable before the tool runs."""
        key = hashlib.sha256(f"{thread_id}\0{call_key}\0{hashed}".encode()).hexdigest()[:32]
        with self._lock:
            self._db.execute(
                "INSERT INTO podium_tool_calls (thread_id, call_key, tool, args_hash, "
                "idempotency_key, status, started_at) VALUES (?, ?, ?, ?, ?, 'started', ?) "
                "ON CONFLICT (thread_id, call_key) DO UPDATE SET attempts = attempts + 1, "
                "status = 'started', args_hash = excluded.args_hash",
                (thread_id, call_key, tool, hashed, key, _now()),
            )
        record = self.get_call(thread_id, call_key)
        if record is None:  # pragma: no cover - the row was just written
            raise RuntimeError("ledger row vanished")
        return record

    def finish_call(self, thread_id: str, call_key: str, result: dict[str, Any]) -> None:
        """Store the call's result; later re-runs return it instead of acting again."""
        with self._lock:
            self._db.execute(
                "UPDATE podium_tool_calls SET status='done', result=?, finished_at=? "
                "WHERE thread_id=? AND call_key=?",
                (json.dumps(result, default=str), _now(), thread_id, call_key),
            )

    def count_calls(self, thread_id: str | None = None) -> int:
        """How many distinct calls the ledger holds (optionally for one thread)."""
        with self._lock:
            if thread_id is None:
                (n,) = self._db.execute("SELECT COUNT(*) FROM podium_tool_calls").fetchone()
            else:
                (n,) = self._db.execute(
                    "SELECT COUNT(*) FROM podium_tool_calls WHERE thread_id=?", (thread_id,)
                ).fetchone()
        return int(n)

    # -- approvals -----------------------------------------------------------------
    def ensure_request(
        self, thread_id: str, call_key: str, request_id: str, request: dict[str, Any]
    ) -> ApprovalRecord:
        """Store ``request`` unless the call already has one; return the stored record."""
        with self._lock:
            self._db.execute(
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
        with self._lock:
            row = self._db.execute(
                "SELECT request, status, decision, bound_args_hash FROM podium_approvals "
                "WHERE thread_id=? AND call_key=?",
                (thread_id, call_key),
            ).fetchone()
        if row is None:
            return None
        return ApprovalRecord(
            json.loads(row[0]), row[1], json.loads(row[2]) if row[2] else None, row[3]
        )

    def record_decision(
        self,
        thread_id: str,
        call_key: str,
        decision: dict[str, Any],
        bound_hash: str | None,
    ) -> bool:
        """Bind a decision to a pending request; ``False`` if it was already decided."""
        with self._lock:
            cursor = self._db.execute(
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
            return cursor.rowcount == 1

    def approvals(self, thread_id: str) -> list[ApprovalRecord]:
        """Every approval record of a thread, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT request, status, decision, bound_args_hash FROM podium_approvals "
                "WHERE thread_id=? ORDER BY rowid",
                (thread_id,),
            ).fetchall()
        return [
            ApprovalRecord(json.loads(r[0]), r[1], json.loads(r[2]) if r[2] else None, r[3])
            for r in rows
        ]
