"""Asking humans about tool calls: the governed executor's side of the decision core.

A gated call, an edit, a call in doubt after a crash, and an earlier call of the same
tool that timed out or whose worker died all become questions through
:func:`podium.tools._decisions.ask`. An edit is a new call for the tool's schema and
for every policy in force; an edited call that needs approvers the editor is not one
of waits for them.
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig

from podium.checkpoints._ledger import CallRecord, args_hash
from podium.checkpoints._messages import EDIT_ARTIFACT
from podium.errors import InvalidDecisionError
from podium.tools import _inflight
from podium.tools._approvals import ApprovalRequest, Decision, RequestKind
from podium.tools._checks import Grants, refusal
from podium.tools._decisions import EXPIRED, Question, Where, ask, bind_args, make_request
from podium.tools._decorator import ToolTraits, traits_of
from podium.tools._policy import Governance, PolicyDecision
from podium.tools._requests import ToolRequest

__all__ = ["Asking", "Cleared", "replayed"]


class Cleared:
    """What a human let run: the arguments, and who edited them from what."""

    __slots__ = ("args", "edited_by", "edited_from")

    def __init__(
        self,
        args: dict[str, Any],
        edited_from: dict[str, Any] | None = None,
        edited_by: str | None = None,
    ) -> None:
        self.args, self.edited_from, self.edited_by = args, edited_from, edited_by


def replayed(req: ToolRequest, record: CallRecord) -> ToolMessage:
    """The recorded result of a call that already ran (a replay acts on nothing)."""
    result = record.result or {}
    artifact: dict[str, Any] = {"replayed": True, "executed": False}
    if isinstance(result.get(EDIT_ARTIFACT), dict):
        artifact[EDIT_ARTIFACT] = result[EDIT_ARTIFACT]
    return ToolMessage(
        content=result.get("content", ""),
        status=result.get("status", "success"),
        tool_call_id=req["id"],
        name=req["name"] or "",
        artifact=artifact,
    )


class Asking:
    """The questions a :class:`~podium.tools.GovernedExecutor` asks (a mixin)."""

    agent: str
    grants: Grants

    def _reviewer(
        self, name: str, rules: Governance, traits: ToolTraits
    ) -> Any:  # a decisions.Review
        """Edited arguments are a new call for the schema and every policy."""

        def review(decision: Decision, request: ApprovalRequest) -> Decision:
            if decision.action != "edit":
                return decision
            merged = {**request.args, **(decision.args or {})}
            checked = self.grants.validate(name, merged)
            if isinstance(checked, tuple):
                raise InvalidDecisionError(
                    f"The edited arguments were refused: {checked[1]}",
                    fix="Edit with arguments the tool accepts (a partial edit is merged onto "
                    "the requested arguments), or approve or reject.",
                )
            verdict = rules.decide(agent=self.agent, tool=name, traits=traits, args=checked)
            if verdict.action == "deny":
                raise InvalidDecisionError(
                    f"The edited call {name}({json.dumps(checked)}) is not allowed by the "
                    f"policy: {verdict.reason}. Nothing ran.",
                    fix="Edit within the policy, approve the request as it is, or reject it.",
                )
            return Decision.edit(checked, by=decision.by)

        return review

    def _human(
        self,
        req: ToolRequest,
        at: Where,
        key: str,
        kind: RequestKind,
        args: dict[str, Any],
        verdict: PolicyDecision,
        rules: Governance,
        reason: str,
        config: RunnableConfig | None,
    ) -> Cleared | ToolMessage:
        """Ask until a human lets the call run (its arguments) or answers it (a message).

        An edit whose arguments the policy gates for approvers the editor is not one
        of waits for them: a new request for the edited call, naming them.
        """
        name = req["name"] or ""
        traits = traits_of(self.grants.granted[name])
        original, by = args, ""
        while True:
            request = make_request(
                at,
                key,
                agent=self.agent,
                tool=name,
                args=args,
                reason=reason,
                kind=kind,
                risk=traits.risk,
                tool_call_id=req["id"],
                approvers=verdict.approvers,
                timeout=rules.approval_timeout,
            )
            question = Question(
                key, request, review=self._reviewer(name, rules, traits), bind=bind_args(args)
            )
            decision = ask(config or {}, question)
            if decision.action == "reject":
                late = decision.reason.startswith(EXPIRED)
                who = f"{decision.by}, too late" if late else decision.by
                return refusal(
                    req["id"],
                    name,
                    "rejected",
                    f"a human ({who}) rejected this call of {name!r}: "
                    f"{decision.reason or 'no reason given'}. Nothing was run.",
                )
            if decision.action == "respond":
                return ToolMessage(
                    content=decision.message,
                    tool_call_id=req["id"],
                    name=name,
                    artifact={"responded_by": decision.by, "executed": False},
                )
            if decision.action == "approve":
                return Cleared(args) if args is original else Cleared(args, original, by)
            edited = dict(decision.args or {})
            after = rules.decide(agent=self.agent, tool=name, traits=traits, args=edited)
            if after.action == "deny":  # pragma: no cover - the review refused it already
                return refusal(req["id"], name, "policy_denied", f"policy: {after.reason}")
            by = decision.by
            if after.action == "allow" or after.approvers is None or by in after.approvers:
                return Cleared(edited, original, by)
            key = f"{key}|edit:{args_hash(edited)[:16]}"
            doubt = kind == "in_doubt"
            if not doubt:
                kind = "approval" if after.action == "approve" else "escalation"
            args, verdict = edited, after
            reason = (
                f"{after.reason} (edited by {decision.by}; the edited call needs "
                f"{', '.join(after.approvers)})"
            )
            if doubt:
                reason = (
                    f"the call this replaces may or may not have taken effect (its process "
                    f"stopped while it ran); approving runs the edited call. {reason}"
                )

    def _earlier(
        self,
        req: ToolRequest,
        at: Where,
        key: str,
        traits: ToolTraits,
        args: dict[str, Any],
        rules: Governance,
        config: RunnableConfig | None,
    ) -> ToolMessage | str | None:
        """Settle an earlier call of the same tool that timed out or whose worker died.

        A timed-out call is in doubt, not failed: while it may still act, the tool does
        not run again in the thread (a model that retries would act twice). Returns a
        refusal for the model, the idempotency key to reuse (an idempotent tool retried
        with the same arguments), or ``None`` to go on.
        """
        name = req["name"] or ""
        asking = key.rsplit("|", 2)[0]  # node path and message: this call's siblings
        for old in at.ledger.unresolved(at.thread, name):
            if old.call_key == key or old.call_key.startswith(f"{asking}|"):
                continue
            if traits.idempotent:
                if old.late and old.args_hash == args_hash(args):
                    at.ledger.mark_late(at.thread, old.call_key, False)
                    return old.idempotency_key
                continue
            if old.status == "done":  # it ended after it timed out: the model was not told
                at.ledger.mark_late(at.thread, old.call_key, False)
                ended = (old.result or {}).get("content", "")
                return refusal(
                    req["id"],
                    name,
                    "earlier_call_finished",
                    f"an earlier call of {name!r} that timed out has finished since: {ended}. "
                    f"This call was not run, so nothing happened twice; call {name!r} again "
                    "only if you still need it.",
                )
            if _inflight.alive(at.ledger, at.thread, old.call_key, old):
                if not old.late:
                    continue  # a sibling running now, not a call in doubt
                return refusal(
                    req["id"],
                    name,
                    "earlier_call_running",
                    f"an earlier call of {name!r} timed out and is still running; nothing was "
                    f"run. Its result is recorded when it ends: do not call {name!r} again "
                    "until then.",
                )
            fresh = at.ledger.get_call(at.thread, old.call_key)  # it may have ended since
            if fresh is None or fresh.status == "done" or fresh.owner != old.owner:
                continue
            answer = self._resolve(req, at, old, traits, rules, config)
            if answer is not None:
                return answer
        return None

    def _resolve(
        self,
        req: ToolRequest,
        at: Where,
        old: CallRecord,
        traits: ToolTraits,
        rules: Governance,
        config: RunnableConfig | None,
    ) -> ToolMessage | None:
        """Ask a human whether an earlier call whose worker died took effect."""
        name = req["name"] or ""
        shown = old.args or {}
        verdict = rules.decide(agent=self.agent, tool=name, traits=traits, args=shown)
        qkey = f"{old.call_key}|in_doubt:{old.attempts}"
        request = make_request(
            at,
            qkey,
            agent=self.agent,
            tool=name,
            args=shown,
            reason=f"an earlier call of {name!r} was running when its process stopped; it may "
            "or may not have taken effect, and the agent now calls the tool again. Respond with "
            "its result if it did, or reject if it did not (the new call then goes ahead).",
            kind="in_doubt",
            risk=traits.risk,
            tool_call_id=req["id"],
            approvers=verdict.approvers
            if verdict.action in ("approve", "escalate")
            else rules.approvers,
            timeout=rules.approval_timeout,
        )
        decision = ask(
            config or {},
            Question(qkey, request, actions=frozenset({"respond", "reject"})),
        )
        at.ledger.mark_late(at.thread, old.call_key, False)
        if decision.action == "reject":
            ended = {"content": f"did not take effect ({decision.by})", "status": "error"}
            at.ledger.finish_call(at.thread, old.call_key, ended)
            return None
        at.ledger.finish_call(at.thread, old.call_key, {"content": decision.message})
        return refusal(
            req["id"],
            name,
            "earlier_call_finished",
            f"an earlier call of {name!r} took effect ({decision.by}): {decision.message}. "
            f"This call was not run; call {name!r} again only if you still need it.",
        )

    def _in_doubt(
        self,
        req: ToolRequest,
        at: Where,
        key: str,
        record: CallRecord,
        args: dict[str, Any],
        rules: Governance,
        config: RunnableConfig | None,
    ) -> Cleared | ToolMessage:
        """Ask a human about a call whose process died mid-call (same tier as the call)."""
        name = req["name"] or ""
        traits = traits_of(self.grants.granted[name])
        verdict = rules.decide(agent=self.agent, tool=name, traits=traits, args=args)
        if verdict.action not in ("approve", "escalate"):
            verdict = PolicyDecision(verdict.action, verdict.reason, verdict.rule, rules.approvers)
        outcome = self._human(
            req,
            at,
            f"{key}|in_doubt:{record.attempts}",
            "in_doubt",
            args,
            verdict,
            rules,
            f"the process stopped while {name!r} was running (attempt {record.attempts}); it "
            "may or may not have taken effect. Approve to run it again, respond with its "
            "result, or reject.",
            config,
        )
        if isinstance(outcome, ToolMessage) and outcome.status != "error":
            result = {"content": outcome.text, "status": "success"}  # a human's answer
            if not at.ledger.finish_call(at.thread, key, result):
                done = at.ledger.get_call(at.thread, key)
                if done is not None and done.result is not None:
                    return replayed(req, done)
        return outcome
