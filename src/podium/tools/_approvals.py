"""Human checkpoints: :class:`ApprovalRequest` (what a human is asked) and :class:`Decision`.

Both travel as plain JSON so a remote client (``langgraph-sdk`` against LangGraph
Server) can read a request from the thread's interrupts and resume with
``Command(resume={interrupt_id: decision_json})``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast

from podium.errors import ApproverNotAllowedError, InvalidDecisionError

__all__ = ["ApprovalRequest", "Decision", "DecisionAction", "RequestKind"]

DecisionAction = Literal["approve", "edit", "reject", "respond"]
RequestKind = Literal["approval", "escalation", "in_doubt"]
_ACTIONS: tuple[DecisionAction, ...] = ("approve", "edit", "reject", "respond")


def _now() -> datetime:
    return datetime.now(UTC)


def _parse_time(value: object, what: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidDecisionError(f"{what} must be an ISO-8601 timestamp, got {value!r}.")


@dataclass(frozen=True, kw_only=True)
class ApprovalRequest:
    """A tool call waiting for a human: the value of a podium interrupt.

    Example:
        >>> r = ApprovalRequest(id="apr_1", agent="billing", tool="issue_refund",
        ...                     args={"amount": 250}, reason="refund over 100")
        >>> ApprovalRequest.from_json(r.to_json()) == r
        True
    """

    id: str
    """Stable id of the request; decisions are keyed by it."""
    agent: str
    """The agent whose tool call is gated."""
    tool: str
    """The tool it wants to run."""
    args: dict[str, Any]
    """The arguments it wants to run the tool with."""
    reason: str = ""
    """Why a human is asked (the policy rule's reason, or the error for escalations)."""
    risk: str = "medium"
    """The tool's risk tier."""
    kind: RequestKind = "approval"
    """``approval`` (policy gate), ``escalation`` (policy or failure asks a human) or
    ``in_doubt`` (a non-idempotent call may or may not have run before a crash)."""
    tool_call_id: str = ""
    """The model's tool-call id."""
    created_at: datetime = field(default_factory=_now)
    """When the request was made (UTC)."""
    expires_at: datetime | None = None
    """After this moment a decision counts as a rejection (``None``: never)."""
    note: str = ""
    """Extra context, e.g. why a previous decision for this call was refused."""
    approvers: tuple[str, ...] | None = None
    """Who may decide (values of ``Decision.by``); ``None``: anyone."""
    refused: dict[str, Any] | None = None
    """The last decision that was refused for this request and why:
    ``{"decision": <Decision JSON>, "error": "..."}`` (``None``: none was refused)."""

    def check_approver(self, by: str) -> None:
        """Raise unless ``by`` may decide this request.

        Raises:
            ApproverNotAllowedError: Naming who may decide.
        """
        if self.approvers is not None and by not in self.approvers:
            raise ApproverNotAllowedError(
                f"{by!r} may not decide request {self.id} ({self.tool}, risk {self.risk}); "
                f"allowed approvers: {', '.join(self.approvers) or '(none)'}.",
                fix="Ask one of the allowed approvers to decide.",
            )

    def to_json(self) -> dict[str, Any]:
        """The JSON form used as the interrupt value."""
        return {
            "type": "podium.approval_request",
            "id": self.id,
            "agent": self.agent,
            "tool": self.tool,
            "args": self.args,
            "reason": self.reason,
            "risk": self.risk,
            "kind": self.kind,
            "tool_call_id": self.tool_call_id,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "note": self.note,
            "approvers": list(self.approvers) if self.approvers is not None else None,
            "refused": self.refused,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ApprovalRequest:
        """Rebuild a request from :meth:`to_json` output."""
        created = _parse_time(data.get("created_at"), "created_at") or _now()
        return cls(
            id=str(data["id"]),
            agent=str(data["agent"]),
            tool=str(data["tool"]),
            args=dict(data.get("args") or {}),
            reason=str(data.get("reason", "")),
            risk=str(data.get("risk", "medium")),
            kind=cast(RequestKind, data.get("kind", "approval")),
            tool_call_id=str(data.get("tool_call_id", "")),
            created_at=created,
            expires_at=_parse_time(data.get("expires_at"), "expires_at"),
            note=str(data.get("note", "")),
            approvers=tuple(data["approvers"]) if data.get("approvers") is not None else None,
            refused=dict(data["refused"]) if isinstance(data.get("refused"), dict) else None,
        )

    @staticmethod
    def is_request(value: object) -> bool:
        """Whether an interrupt value is a podium approval request."""
        return isinstance(value, dict) and value.get("type") == "podium.approval_request"

    def expired(self, at: datetime | None = None) -> bool:
        """Whether a decision made at ``at`` (default: now) comes too late."""
        return self.expires_at is not None and (at or _now()) > self.expires_at


@dataclass(frozen=True, kw_only=True)
class Decision:
    """A human's answer to an :class:`ApprovalRequest`.

    Build one with :meth:`approve`, :meth:`edit`, :meth:`reject` or :meth:`respond`;
    its JSON form (``{"action": "approve", "by": "alice"}``) is accepted wherever a
    ``Decision`` is.

    Example:
        >>> Decision.parse({"action": "reject", "reason": "too much", "by": "bo"}).action
        'reject'
    """

    action: DecisionAction
    """``approve``, ``edit`` (run with new ``args``), ``reject`` (``reason`` goes to the
    agent) or ``respond`` (``message`` goes to the agent instead of running the tool)."""
    by: str
    """Who decided (approver identity), recorded in the ledger."""
    args: dict[str, Any] | None = None
    """New arguments, for ``edit``."""
    reason: str = ""
    """Why, for ``reject`` (shown to the agent)."""
    message: str = ""
    """The reply the agent receives instead of the tool's result, for ``respond``."""

    @classmethod
    def approve(cls, *, by: str) -> Decision:
        """Run the tool call as requested."""
        return cls(action="approve", by=by)

    @classmethod
    def edit(cls, args: dict[str, Any], *, by: str) -> Decision:
        """Run the tool with ``args`` instead of the requested arguments."""
        return cls(action="edit", args=dict(args), by=by)

    @classmethod
    def reject(cls, reason: str, *, by: str) -> Decision:
        """Do not run the tool; the agent is told ``reason``."""
        return cls(action="reject", reason=reason, by=by)

    @classmethod
    def respond(cls, message: str, *, by: str) -> Decision:
        """Do not run the tool; the agent receives ``message`` as the call's result."""
        return cls(action="respond", message=message, by=by)

    def to_json(self) -> dict[str, Any]:
        """The JSON form, as a remote client sends it."""
        data: dict[str, Any] = {"action": self.action, "by": self.by}
        if self.action == "edit":
            data["args"] = self.args
        if self.action == "reject":
            data["reason"] = self.reason
        if self.action == "respond":
            data["message"] = self.message
        return data

    @classmethod
    def parse(cls, value: object) -> Decision:
        """Accept a ``Decision`` or its JSON form; anything else is an error.

        Raises:
            InvalidDecisionError: Saying what is wrong and what a decision looks like.
        """
        if isinstance(value, Decision):
            decision = value
        elif isinstance(value, dict):
            unknown = set(value) - {"action", "by", "args", "reason", "message"}
            action = value.get("action")
            if unknown:
                raise InvalidDecisionError(
                    f"Decision has unknown field(s) {sorted(unknown)}; fields are action, by, "
                    "args, reason, message.",
                    fix=_EXAMPLE,
                )
            if action not in _ACTIONS:
                raise InvalidDecisionError(
                    f"Decision action {action!r} is not one of {', '.join(_ACTIONS)}.",
                    fix=_EXAMPLE,
                )
            decision = cls(
                action=cast(DecisionAction, action),
                by=value.get("by"),  # type: ignore[arg-type]  # checked below
                args=value.get("args"),
                reason=value.get("reason", "") or "",
                message=value.get("message", "") or "",
            )
        else:
            raise InvalidDecisionError(
                f"A decision must be a podium Decision or its JSON form, got "
                f"{type(value).__name__}: {value!r:.80}.",
                fix=_EXAMPLE,
            )
        decision.validate()
        return decision

    def validate(self) -> None:
        """Check the fields agree with the action.

        Raises:
            InvalidDecisionError: If they do not.
        """
        if not isinstance(self.by, str) or not self.by.strip():
            raise InvalidDecisionError(
                "Every decision must say who made it: 'by' must be a non-empty string.",
                fix='Pass by="alice" (the approver\'s identity).',
            )
        if self.action == "edit" and not isinstance(self.args, dict):
            raise InvalidDecisionError(
                "An 'edit' decision needs 'args': the new arguments as a JSON object.",
                fix='Decision.edit({"amount": 80}, by="alice").',
            )
        if self.action == "reject" and not isinstance(self.reason, str):
            raise InvalidDecisionError("A 'reject' decision's 'reason' must be a string.")
        if self.action == "respond" and not (isinstance(self.message, str) and self.message):
            raise InvalidDecisionError(
                "A 'respond' decision needs a non-empty 'message' for the agent.",
                fix='Decision.respond("Refund already issued last week.", by="alice").',
            )


_EXAMPLE = (
    'Send e.g. {"action": "approve", "by": "alice"}, {"action": "edit", "args": {...}, '
    '"by": "alice"}, {"action": "reject", "reason": "...", "by": "alice"} or '
    '{"action": "respond", "message": "...", "by": "alice"}.'
)
