"""The human-decision half of the exactly-once ledger: table ``podium_approvals``.

One row per human question (a gated call, an edit that needs another tier, an
in-doubt call, an escalation, a pipeline gate): the request, and once a human
decided, the decision and the hash of the arguments it lets run. Deciding is
compare-and-set (:meth:`ApprovalLedger.record_decision`): the first decision
recorded binds, later ones get the recorded one back. Storing a request is fenced
by the run's thread lease (see :mod:`podium.checkpoints._leases`).

:class:`ApprovalLedger` is a base of :class:`~podium.checkpoints.ToolLedger` (see
:mod:`podium.checkpoints._ledger`). Standard library only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from podium._scrub import scrub
from podium.checkpoints._calls import utc_now
from podium.checkpoints._leases import Lease
from podium.checkpoints._threads import ThreadRegistry

__all__ = ["ApprovalLedger", "ApprovalRecord", "ApprovalStatus"]

ApprovalStatus = Literal["pending", "decided"]
_APPROVAL_COLUMNS = "request, status, decision, bound_args_hash, call_key, shown"


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


class ApprovalLedger(ThreadRegistry):
    """The ``podium_approvals`` statements (see the module docs)."""

    _order = "rowid"
    """What orders a thread's approvals (Postgres: its ``seq`` column)."""

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
                utc_now(),
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


def _approval(row: Sequence[Any]) -> ApprovalRecord:
    return ApprovalRecord(
        json.loads(row[0]),
        row[1],
        json.loads(row[2]) if row[2] else None,
        row[3],
        row[4],
        json.loads(row[5]) if row[5] else None,
    )
