"""The tool-call half of the exactly-once ledger: table ``podium_tool_calls``.

One row per side-effecting call, keyed by ``(thread_id, call_key)``: ``started``
before the tool runs, ``done`` with the result after. Starting is compare-and-set
(:meth:`CallLedger.claim_call`): only the process whose insert created the row runs
the tool; everyone else gets the row back (and waits for its result, or finds it
*in doubt*). A ``started`` row names its ``owner`` and carries a heartbeat, so a
call another live process is running is told apart from one whose process died
mid-call. Starting a call is fenced by the run's thread lease (see
:mod:`podium.checkpoints._leases`); recording a result is not (an effect that
happened is always recorded, so it is never repeated).

:class:`CallLedger` is a base of :class:`~podium.checkpoints.ToolLedger` (see
:mod:`podium.checkpoints._ledger`), whose ``_run`` executes these statements on
SQLite or Postgres. Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from podium._scrub import scrub
from podium.checkpoints._leases import Lease
from podium.checkpoints._threads import ThreadRegistry

__all__ = ["CallLedger", "CallRecord", "CallStatus", "Claim", "args_hash", "utc_now"]

CallStatus = Literal["started", "done"]
_CALL_COLUMNS = (
    "tool, args_hash, idempotency_key, status, attempts, result, owner, heartbeat_at, args, "
    "late, call_key"
)


def args_hash(args: Any) -> str:
    """A stable hash of tool arguments (canonical JSON, sorted keys)."""
    canonical = json.dumps(args, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def utc_now() -> str:
    """Now, as stored in the ledger (ISO 8601, UTC)."""
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


class CallLedger(ThreadRegistry):
    """The ``podium_tool_calls`` statements (see the module docs)."""

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
                utc_now(),
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
                utc_now(),
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
            (json.dumps(scrub(result), default=str), utc_now(), thread_id, call_key),
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


def _call(row: Sequence[Any]) -> CallRecord:
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
