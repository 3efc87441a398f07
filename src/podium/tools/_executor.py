"""The governed tool executor: the one path by which any agent's tool call runs.

For each tool call it, in order: rejects calls the router flagged (unparseable,
duplicate id) → checks the tool exists and is granted to the calling agent →
validates the arguments against the tool's schema (extra arguments and non-finite
numbers are errors) and fills in defaults → applies every :class:`~podium.Policy`
in force (the enclosing graphs' and its own; the strictest answer wins) to exactly
those arguments → returns the recorded result if the call already ran → for a
gated call, asks a human through the one decision core
(:mod:`podium.tools._decisions`) → starts the call in the exactly-once ledger with
compare-and-set → runs the tool → records the result. Every refusal is a
``ToolMessage`` with ``status="error"`` that tells the model what was wrong and
what is allowed; its artifact records ``{"error": <code>, "executed": False}`` so
tests and the run ledger can tell refusals from tool failures.

A call is identified by its node path, the id of the ``AIMessage`` that asked for
it, its tool-call id and the hash of its arguments (:func:`call_key`), so a replay,
a fork or time travel of a finished call returns its recorded result, and only the
process whose ledger insert created the call's row runs it. Because the executor
itself asks and checks the ledger, graph routing tricks (``update_state(as_node=...)``,
``Command(goto=...)``, crafted sends, stale or garbage resumes) reach the same checks
and cannot run a gated tool.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import json
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import merge_configs
from langchain_core.tools import BaseTool
from langgraph.errors import GraphBubbleUp

from podium.checkpoints._ledger import CallRecord, args_hash
from podium.checkpoints._messages import EDIT_ARTIFACT
from podium.errors import InvalidDecisionError
from podium.observe import emit
from podium.tools import _inflight
from podium.tools._approvals import ApprovalRequest, Decision, RequestKind
from podium.tools._checks import Grants, refusal
from podium.tools._decisions import (
    EXPIRED,
    LEDGER_KEY,
    Question,
    Where,
    ask,
    bind_args,
    current_ledger,
    governance,
    make_request,
    where,
)
from podium.tools._decorator import ToolTraits, traits_of
from podium.tools._policy import Governance, Policy, PolicyDecision
from podium.tools._requests import ToolRequest

__all__ = [
    "LEDGER_KEY",
    "GovernedExecutor",
    "ToolRequest",
    "call_key",
    "current_ledger",
    "idempotency_key",
    "refusal",
]

WAIT_SECONDS = 60.0
"""How long a call waits for the same call that another worker is running."""

_IDEMPOTENCY_KEY: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "podium_idempotency_key", default=None
)


def idempotency_key() -> str | None:
    """The idempotency key of the tool call running now (``None`` outside a call).

    The same on every attempt of one call, so an idempotent tool can pass it to an
    external API (e.g. a payment provider) and a re-run after a crash is recognised.
    """
    return _IDEMPOTENCY_KEY.get()


class _ToolTimeout(Exception):
    """A tool call outlived the executor's timeout."""


def call_key(at: Where, req: ToolRequest, args: dict[str, Any]) -> str:
    """The ledger key of a call: node path, asking message, call id, argument hash.

    Stable across resumes, replays, forks and time travel (no task ids), so the same
    call finds its record; a new model message (a new id) is a new call.
    """
    return f"{at.path}|{req.get('message') or '-'}|{req['id']}|{args_hash(args)[:16]}"


@dataclass(frozen=True)
class _Cleared:
    """What a human let run: the arguments, and who edited them from what."""

    args: dict[str, Any]
    edited_from: dict[str, Any] | None = None
    edited_by: str | None = None


@dataclass(frozen=True)
class _Plan:
    """A call cleared to run: with which arguments, under which ledger record."""

    name: str
    run: _Cleared
    at: Where
    key: str
    idempotency_key: str | None
    """``None`` for read-only tools (no ledger record)."""

    @property
    def args(self) -> dict[str, Any]:
        """The arguments the tool runs with."""
        return self.run.args


class GovernedExecutor:
    """Runs one agent's tool calls under its grants and the policies in force.

    Args:
        agent: The calling agent's name (for messages, requests and events).
        granted: The agent's tools: the only ones it may run.
        known: Names of every tool in the surrounding graph, so a call to another
            agent's tool is reported as *not granted* rather than *unknown*.
        policy: The member's own policy; the enclosing graphs' policies (passed down
            in the config) apply as well, outermost first.
        timeout: Seconds a tool call may run. A call that outlives it is *in doubt*,
            not failed: its row stays ``started`` until it finishes (a sync tool's
            thread cannot be killed; its result is recorded when it ends), and the
            model is told so.
    """

    def __init__(
        self,
        agent: str,
        granted: Sequence[BaseTool],
        known: Collection[str] = (),
        policy: Policy | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        self.agent = agent
        self.timeout = timeout
        self.policy = policy
        self.grants = Grants(agent, granted, known)
        self.granted = self.grants.granted

    def check(self, req: ToolRequest) -> ToolMessage | None:
        """Return a refusal for a call that must not run, else ``None``."""
        return self.grants.check(req)

    # -- humans -------------------------------------------------------------------
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
    ) -> _Cleared | ToolMessage:
        """Ask until a human lets the call run (its arguments) or answers it (a message).

        An edit whose arguments the policy gates for approvers the editor is not one
        of waits for them: a new request for the edited call, naming them.
        """
        name = req["name"] or ""
        traits = traits_of(self.granted[name])
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
                return _Cleared(args) if args is original else _Cleared(args, original, by)
            edited = dict(decision.args or {})
            after = rules.decide(agent=self.agent, tool=name, traits=traits, args=edited)
            if after.action == "deny":  # pragma: no cover - the review refused it already
                return refusal(req["id"], name, "policy_denied", f"policy: {after.reason}")
            by = decision.by
            if after.action == "allow" or after.approvers is None or by in after.approvers:
                return _Cleared(edited, original, by)
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

    # -- planning -----------------------------------------------------------------
    def plan(self, req: ToolRequest, config: RunnableConfig | None) -> _Plan | ToolMessage:
        """Run every check and gate; return a cleared plan or the model's answer."""
        outcome = self._plan(req, config)
        if isinstance(outcome, ToolMessage) and isinstance(outcome.artifact, dict):
            code = outcome.artifact.get("error")
            if code is not None:
                emit(
                    "refusal",
                    {
                        "agent": self.agent,
                        "name": req["name"],
                        "code": code,
                        "status": "error",
                        "tool_call_id": req["id"],
                    },
                    config,
                )
        return outcome

    def _plan(self, req: ToolRequest, config: RunnableConfig | None) -> _Plan | ToolMessage:
        checked = self.grants.checked(req)
        if isinstance(checked, ToolMessage):
            return checked
        name, args = req["name"] or "", checked
        traits = traits_of(self.granted[name])
        rules = governance(config, self.policy)
        verdict = rules.decide(agent=self.agent, tool=name, traits=traits, args=args)
        at = where(config)
        key = call_key(at, req, args)
        gated = verdict.action in ("approve", "escalate")
        kind: RequestKind = "approval" if verdict.action == "approve" else "escalation"
        details: dict[str, Any] = {
            "agent": self.agent,
            "name": name,
            "action": verdict.action,
            "reason": verdict.reason,
            "rule": verdict.rule,
            "args": args,
            "args_hash": args_hash(args),
        }
        if gated and at.ledger.get_approval(at.thread, f"{key}|{kind}") is not None:
            details["recheck"] = True  # the run resumed: the same call, checked again
        emit("policy", details, config)
        if verdict.action == "deny":
            return refusal(
                req["id"],
                name,
                "policy_denied",
                f"policy refused this call of {name!r}: {verdict.reason}. "
                "Nothing was run; do not retry it.",
            )
        # without a thread (no checkpointer) nothing can resume: there is no call to track
        tracked = not traits.read_only and bool(at.thread)
        if tracked:
            record = at.ledger.get_call(at.thread, key)
            if record is not None and record.status == "done":
                return self._replayed(req, record)
        cleared = _Cleared(args)
        if gated:
            asked = self._human(
                req, at, f"{key}|{kind}", kind, args, verdict, rules, verdict.reason, config
            )
            if isinstance(asked, ToolMessage):
                return asked
            cleared = asked
        if not tracked:
            return _Plan(name, cleared, at, key, None)
        return self._claim(req, at, key, cleared, traits, rules, config)

    def _claim(
        self,
        req: ToolRequest,
        at: Where,
        key: str,
        cleared: _Cleared,
        traits: ToolTraits,
        rules: Governance,
        config: RunnableConfig | None,
    ) -> _Plan | ToolMessage:
        """Start the call exactly once: run it, replay it, wait for it, or ask about it."""
        name = req["name"] or ""
        chosen = [cleared]

        def in_doubt(record: CallRecord) -> _inflight.Rerun | ToolMessage:
            asked = self._in_doubt(req, at, key, record, cleared.args, rules, config)
            if isinstance(asked, ToolMessage):
                return asked
            if asked.edited_from is not None:
                first = cleared.edited_from or asked.edited_from
                chosen[0] = _Cleared(asked.args, first, asked.edited_by)
            return _inflight.Rerun(args_hash(chosen[0].args))

        started = _inflight.start_once(
            at.ledger,
            at.thread,
            key,
            name,
            args_hash(cleared.args),
            idempotent=traits.idempotent,
            in_doubt=in_doubt,
            wait=WAIT_SECONDS,
        )
        if isinstance(started, _inflight.Started):
            return _Plan(name, chosen[0], at, key, started.idempotency_key)
        if isinstance(started, CallRecord):
            return self._replayed(req, started)
        return started

    def _in_doubt(
        self,
        req: ToolRequest,
        at: Where,
        key: str,
        record: CallRecord,
        args: dict[str, Any],
        rules: Governance,
        config: RunnableConfig | None,
    ) -> _Cleared | ToolMessage:
        """Ask a human about a call whose process died mid-call (same tier as the call)."""
        name = req["name"] or ""
        traits = traits_of(self.granted[name])
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
                    return self._replayed(req, done)
        return outcome

    def _replayed(self, req: ToolRequest, record: CallRecord) -> ToolMessage:
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

    # -- execution --------------------------------------------------------------
    @contextmanager
    def _keyed(self, plan: _Plan) -> Iterator[None]:
        token = _IDEMPOTENCY_KEY.set(plan.idempotency_key)
        try:
            yield
        finally:
            _IDEMPOTENCY_KEY.reset(token)

    def _tagged(self, config: RunnableConfig | None) -> RunnableConfig:
        return merge_configs(config, {"metadata": {"podium_agent": self.agent}})

    def _call(self, req: ToolRequest, plan: _Plan) -> dict[str, Any]:
        return {"type": "tool_call", "name": plan.name, "args": plan.args, "id": req["id"]}

    def _finish(self, req: ToolRequest, plan: _Plan, output: Any) -> ToolMessage:
        message = (
            output
            if isinstance(output, ToolMessage)
            else ToolMessage(
                content=output if isinstance(output, str) else json.dumps(output, default=str),
                tool_call_id=req["id"],
                name=req["name"] or "",
            )
        )
        run = plan.run
        if run.edited_from is not None:
            artifact = message.artifact if isinstance(message.artifact, dict) else {}
            edited = {"args": run.args, "from": run.edited_from, "by": run.edited_by}
            message = message.model_copy(update={"artifact": {**artifact, EDIT_ARTIFACT: edited}})
        return message

    def _failure(self, req: ToolRequest, exc: Exception) -> ToolMessage:
        # a tool that ran a member (a manager's delegation) reports what its model calls
        # used before it failed, so the run's usage counts them
        used = getattr(exc, "podium_usage", None)
        return ToolMessage(
            content=f"Error: tool {req['name']!r} failed: {type(exc).__name__}: {exc}",
            tool_call_id=req["id"],
            name=req["name"] or "unknown",
            status="error",
            artifact={
                "error": "tool_failed",
                "executed": True,
                **({"usage": used} if used else {}),
            },
        )

    def _timed_out(self, req: ToolRequest, plan: _Plan) -> ToolMessage:
        tracked = plan.idempotency_key is not None
        after = (
            "It is in doubt: it may still finish, and take effect, in the background. Its "
            "result is recorded when it ends; do not call it again for the same purpose."
            if tracked
            else "It may still finish in the background."
        )
        return ToolMessage(
            content=f"Error: tool {req['name']!r} did not finish within {self.timeout:g}s. "
            + after,
            tool_call_id=req["id"],
            name=req["name"] or "unknown",
            status="error",
            artifact={
                "error": "tool_timeout",
                "executed": True,
                **({"in_doubt": True} if tracked else {}),
            },
        )

    def _record(self, plan: _Plan, message: ToolMessage) -> None:
        if plan.idempotency_key is not None:
            result: dict[str, Any] = {"content": message.content, "status": message.status}
            edit = (
                message.artifact.get(EDIT_ARTIFACT) if isinstance(message.artifact, dict) else None
            )
            if edit is not None:  # a replay shows the call that ran, not the one asked for
                result[EDIT_ARTIFACT] = edit
            plan.at.ledger.finish_call(plan.at.thread, plan.key, result)

    def _end(self, plan: _Plan) -> None:
        if plan.idempotency_key is not None:
            _inflight.end(plan.at.ledger, plan.at.thread, plan.key)

    def _settled(
        self, req: ToolRequest, plan: _Plan, future: concurrent.futures.Future[Any]
    ) -> None:
        """A timed-out sync call ended in the background: record what it did."""
        try:
            exc = future.exception()
            message = (
                self._failure(req, exc)
                if isinstance(exc, Exception)
                else self._finish(req, plan, future.result())
            )
            self._record(plan, message)
        except Exception:  # the ledger is gone (process shutting down): stays in doubt
            pass
        finally:
            self._end(plan)

    def run(self, req: ToolRequest, config: RunnableConfig | None = None) -> ToolMessage:
        """Check, gate and run one tool call synchronously; tool failures become messages."""
        plan = self.plan(req, config)
        if isinstance(plan, ToolMessage):
            return plan
        background = False
        try:
            with self._keyed(plan):
                tool, call = self.granted[plan.name], self._call(req, plan)
                if self.timeout is None:
                    output = tool.invoke(call, self._tagged(config))
                else:
                    pool = concurrent.futures.ThreadPoolExecutor(1, "podium-tool-call")
                    future = pool.submit(
                        contextvars.copy_context().run, tool.invoke, call, self._tagged(config)
                    )
                    pool.shutdown(wait=False)
                    done, _ = concurrent.futures.wait([future], timeout=self.timeout)
                    if not done:
                        background = True
                        future.add_done_callback(lambda f: self._settled(req, plan, f))
                        raise _ToolTimeout
                    output = future.result()
                message = self._finish(req, plan, output)
        except GraphBubbleUp:
            raise
        except _ToolTimeout:
            return self._timed_out(req, plan)  # the row stays started: in doubt
        except Exception as exc:
            message = self._failure(req, exc)
        finally:
            if not background:
                self._end(plan)
        self._record(plan, message)
        return message

    async def arun(self, req: ToolRequest, config: RunnableConfig | None = None) -> ToolMessage:
        """Check, gate and run one tool call asynchronously; tool failures become messages.

        The ledger is synchronous (SQLite or a Postgres pool), so its work runs in a
        worker thread (with this task's context, so interrupts and events still work)
        and never blocks the event loop. A timed-out async call is cancelled; whether
        it took effect is unknown, so it stays in doubt.
        """
        plan = await asyncio.to_thread(self.plan, req, config)
        if isinstance(plan, ToolMessage):
            return plan
        try:
            with self._keyed(plan):
                pending = self.granted[plan.name].ainvoke(
                    self._call(req, plan), self._tagged(config)
                )
                output = await asyncio.wait_for(pending, self.timeout)
                message = self._finish(req, plan, output)
        except GraphBubbleUp:
            raise
        except TimeoutError as exc:
            if self.timeout is None or not isinstance(exc.__cause__, asyncio.CancelledError):
                message = self._failure(req, exc)
            else:
                return self._timed_out(req, plan)
        except Exception as exc:
            message = self._failure(req, exc)
        finally:
            self._end(plan)
        await asyncio.to_thread(self._record, plan, message)
        return message
