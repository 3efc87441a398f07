"""The governed tool executor: the one path by which any agent's tool call runs.

For each tool call it, in order: rejects calls the router flagged (unparseable,
duplicate id) → checks the tool exists and is granted to the calling agent →
validates the arguments against the tool's schema (extra arguments are an error) →
applies the :class:`~podium.Policy` (allow / deny / approve / escalate) → for a gated
call, interrupts with an :class:`~podium.ApprovalRequest` and binds the human's
decision in the ledger → consults the exactly-once ledger → runs the tool → records
the result. Every refusal is a ``ToolMessage`` with ``status="error"`` that tells the
model what was wrong and what is allowed; its artifact records
``{"error": <code>, "executed": False}`` so tests and the run ledger can tell refusals
from tool failures.

Because the executor itself interrupts and checks the ledger, graph routing tricks
(``update_state(as_node=...)``, ``Command(goto=...)``, crafted sends, stale or
garbage resumes) reach the same checks and cannot run a gated tool.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import hashlib
import json
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, NotRequired

from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import merge_configs
from langchain_core.tools import BaseTool
from langgraph.errors import GraphBubbleUp, GraphInterrupt
from langgraph.types import interrupt
from pydantic import BaseModel, ValidationError
from typing_extensions import TypedDict

from podium.checkpoints._ledger import SQLiteLedger, ToolLedger, args_hash
from podium.errors import ApprovalError, InvalidDecisionError
from podium.observe import emit
from podium.tools._approvals import ApprovalRequest, Decision, RequestKind
from podium.tools._decorator import traits_of
from podium.tools._policy import ALLOW_ALL, Policy, PolicyDecision

__all__ = [
    "LEDGER_KEY",
    "GovernedExecutor",
    "ToolRequest",
    "current_ledger",
    "idempotency_key",
    "refusal",
]

LEDGER_KEY = "__podium_ledger"
"""The ``configurable`` key under which a compiled podium graph carries its ledger."""

_FALLBACK_LEDGER: ToolLedger | None = None
_IDEMPOTENCY_KEY: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "podium_idempotency_key", default=None
)


def idempotency_key() -> str | None:
    """The idempotency key of the tool call running now (``None`` outside a call).

    The same on every attempt of one call, so an idempotent tool can pass it to an
    external API (e.g. a payment provider) and a re-run after a crash is recognised.
    """
    return _IDEMPOTENCY_KEY.get()


def current_ledger(config: RunnableConfig | None) -> ToolLedger:
    """The ledger bound to the running graph (an in-memory one if none is bound).

    Any :class:`~podium.checkpoints.ToolLedger` implementation works (SQLite,
    Postgres); :meth:`GovernedGraph.compile <podium.tools.GovernedGraph.compile>`
    binds the one beside the checkpointer.
    """
    global _FALLBACK_LEDGER
    found = ((config or {}).get("configurable") or {}).get(LEDGER_KEY)
    if isinstance(found, ToolLedger):
        return found
    if _FALLBACK_LEDGER is None:
        _FALLBACK_LEDGER = SQLiteLedger()
    return _FALLBACK_LEDGER


class _ToolTimeout(Exception):
    """A tool call outlived the executor's timeout."""


@dataclass(frozen=True)
class _Where:
    thread: str
    key: str
    ledger: ToolLedger


def _where(req: ToolRequest, config: RunnableConfig | None) -> _Where:
    conf = (config or {}).get("configurable") or {}
    thread = str(conf.get("thread_id", ""))
    namespace = str(conf.get("checkpoint_ns", ""))
    return _Where(thread, f"{namespace}|{req['id']}", current_ledger(config))


@dataclass(frozen=True)
class _Plan:
    """A call cleared to run: with which arguments, under which ledger record."""

    name: str
    args: dict[str, Any]
    where: _Where
    hashed: str
    idempotency_key: str | None


Problem = Literal["invalid", "duplicate_id"]


class ToolRequest(TypedDict):
    """One tool call handed to the executor (the payload of a ``Send``)."""

    name: str | None
    """The tool name the model asked for (``None`` if it could not be parsed)."""
    args: Any
    """The arguments the model supplied: a dict, or raw text for invalid calls."""
    id: str
    """The tool-call id the result must answer."""
    problem: NotRequired[Problem]
    """Set by the router for calls that must not run."""
    detail: NotRequired[str]
    """Why, for ``problem`` calls."""


def refusal(call_id: str, name: str | None, code: str, text: str) -> ToolMessage:
    """A ``ToolMessage`` that tells the model its call was refused and did not run."""
    return ToolMessage(
        content=f"Error: {text}",
        tool_call_id=call_id,
        name=name or "unknown",
        status="error",
        artifact={"error": code, "executed": False},
    )


def _format_validation(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(arguments)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def _schema_of(t: BaseTool) -> tuple[type[BaseModel] | None, dict[str, Any]]:
    schema = t.tool_call_schema
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return schema, schema.model_json_schema()
    return None, dict(schema) if isinstance(schema, dict) else {}


class GovernedExecutor:
    """Runs one agent's tool calls under its grants.

    Args:
        agent: The calling agent's name (for messages and, later, the ledger).
        granted: The agent's tools: the only ones it may run.
        known: Names of every tool in the surrounding graph, so a call to another
            agent's tool is reported as *not granted* rather than *unknown*.
        policy: The policy applied to every call (default: allow all).
        timeout: Seconds a tool call may run; then the model gets an error tool
            message. A sync tool's thread cannot be killed: it may still finish, and
            take effect, in the background (the message says so). Async tools are
            cancelled.
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
        self.policy = policy or ALLOW_ALL
        self.granted = {t.name: t for t in granted}
        self.known = frozenset(known) | frozenset(self.granted)
        self._schemas = {name: _schema_of(t) for name, t in self.granted.items()}

    # -- checks -----------------------------------------------------------------
    def check(self, req: ToolRequest) -> ToolMessage | None:
        """Return a refusal for a call that must not run, else ``None``."""
        name, call_id, args = req["name"], req["id"], req["args"]
        problem = req.get("problem")
        if problem == "invalid":
            return refusal(
                call_id,
                name,
                "invalid_tool_call",
                f"your tool call could not be parsed: {req.get('detail') or 'malformed'}. "
                f"Nothing was run. Call one of: {self._granted_list()}, with JSON object "
                "arguments.",
            )
        if problem == "duplicate_id":
            return refusal(
                call_id,
                name,
                "duplicate_tool_call_id",
                f"{req.get('detail') or 'several tool calls share this id'}; none of them was "
                "run. Give every tool call its own id and call again.",
            )
        if name is None or name not in self.granted:
            if name in self.known:
                return refusal(
                    call_id,
                    name,
                    "tool_not_granted",
                    f"agent {self.agent!r} is not allowed to call tool {name!r}; nothing was "
                    f"run. Tools granted to {self.agent!r}: {self._granted_list()}.",
                )
            return refusal(
                call_id,
                name,
                "unknown_tool",
                f"there is no tool named {name!r}; nothing was run. Available tools: "
                f"{self._granted_list()}.",
            )
        if not isinstance(args, dict):
            return refusal(
                call_id,
                name,
                "malformed_arguments",
                f"arguments for {name!r} must be a JSON object, got {type(args).__name__}; "
                "nothing was run.",
            )
        model, json_schema = self._schemas[name]
        allowed = set(json_schema.get("properties", {}))
        extra = sorted(set(args) - allowed)
        if extra:
            return refusal(
                call_id,
                name,
                "unexpected_arguments",
                f"tool {name!r} does not take argument(s) {', '.join(map(repr, extra))}; "
                f"nothing was run. Its arguments are: {', '.join(sorted(allowed)) or 'none'}.",
            )
        if model is not None:
            try:
                model.model_validate(args)
            except ValidationError as exc:
                return refusal(
                    call_id,
                    name,
                    "malformed_arguments",
                    f"invalid arguments for {name!r}: {_format_validation(exc)}; nothing was "
                    f"run. Expected schema: {json.dumps(json_schema.get('properties', {}))}.",
                )
        return None

    def _granted_list(self) -> str:
        return ", ".join(sorted(self.granted)) or "(none)"

    # -- policy and approvals ---------------------------------------------------
    def _request(
        self,
        req: ToolRequest,
        where: _Where,
        kind: RequestKind,
        reason: str,
        approvers: Sequence[str] | None,
    ) -> ApprovalRequest:
        name = req["name"] or ""
        now = datetime.now(UTC)
        timeout = self.policy.approval_timeout
        digest = hashlib.sha256(f"{where.thread}\0{where.key}\0{kind}".encode()).hexdigest()
        return ApprovalRequest(
            id=f"apr_{digest[:20]}",
            agent=self.agent,
            tool=name,
            args=dict(req["args"]),
            reason=reason,
            risk=traits_of(self.granted[name]).risk,
            kind=kind,
            tool_call_id=req["id"],
            created_at=now,
            expires_at=now + timeout if timeout is not None else None,
            approvers=tuple(approvers) if approvers is not None else None,
        )

    def _ask(self, req: ToolRequest, request: ApprovalRequest) -> Decision:
        """Interrupt until a valid decision arrives (invalid ones re-ask with a note)."""
        note = request.note
        while True:
            try:
                value = interrupt(replace(request, note=note).to_json())
            except GraphInterrupt:
                emit(
                    "approval_requested",
                    {
                        "agent": self.agent,
                        "name": request.tool,
                        "request_id": request.id,
                        "kind": request.kind,
                        "note": note,
                    },
                )
                raise
            try:
                decision = Decision.parse(value)
                request.check_approver(decision.by)
                if decision.action == "edit":
                    refused = self.check({**req, "args": decision.args or {}})
                    if refused is not None:
                        raise InvalidDecisionError(
                            f"The edited arguments were refused: "
                            f"{refused.text.removeprefix('Error: ')}"
                        )
            except ApprovalError as exc:
                note = f"A decision for this request was refused: {exc}"
                continue
            return decision

    def _gate(
        self,
        req: ToolRequest,
        where: _Where,
        kind: RequestKind,
        reason: str,
        approvers: Sequence[str] | None,
    ) -> dict[str, Any] | ToolMessage:
        """Ask a human; return the arguments to run with, or the message for the model."""
        fresh = self._request(req, where, kind, reason, approvers)
        record = where.ledger.ensure_request(
            where.thread, f"{where.key}|{kind}", fresh.id, fresh.to_json()
        )
        stored = ApprovalRequest.from_json(record.request)
        if record.status == "decided" and record.decision is not None:
            done = Decision.parse(record.decision)  # asked again after a restart
            stored = replace(
                stored,
                note=f"Already decided ({done.action} by {done.by}); that decision stands.",
            )
        decision = self._ask(req, stored)
        if record.status == "decided" and record.decision is not None:
            # the first decision binds; later ones change nothing
            decision = Decision.parse(record.decision)
        elif stored.expired():
            decision = Decision.reject(
                f"the approval request expired at {stored.expires_at}; denied by default",
                by=decision.by,
            )
        run_args = decision.args if decision.action == "edit" else req["args"]
        bound = args_hash(run_args) if decision.action in ("approve", "edit") else None
        if record.status != "decided":
            where.ledger.record_decision(
                where.thread, f"{where.key}|{kind}", decision.to_json(), bound
            )
            record = where.ledger.get_approval(where.thread, f"{where.key}|{kind}") or record
            emit(
                "approval_decided",
                {
                    "agent": self.agent,
                    "name": stored.tool,
                    "request_id": stored.id,
                    "kind": kind,
                    "action": decision.action,
                    "by": decision.by,
                    "waited_seconds": (datetime.now(UTC) - stored.created_at).total_seconds(),
                },
            )
        name = req["name"]
        if decision.action == "reject":
            return refusal(
                req["id"],
                name,
                "rejected",
                f"a human ({decision.by}) rejected this call of {name!r}: "
                f"{decision.reason or 'no reason given'}. Nothing was run.",
            )
        if decision.action == "respond":
            return ToolMessage(
                content=decision.message,
                tool_call_id=req["id"],
                name=name or "",
                artifact={"responded_by": decision.by, "executed": False},
            )
        if record.bound_args_hash != args_hash(run_args):  # pragma: no cover - defence in depth
            return refusal(
                req["id"],
                name,
                "approval_mismatch",
                "the approval on record does not match these arguments; nothing ran.",
            )
        return dict(run_args or {})

    # -- execution --------------------------------------------------------------
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
        refused = self.check(req)
        if refused is not None:
            return refused
        name = req["name"] or ""
        traits = traits_of(self.granted[name])
        verdict: PolicyDecision = self.policy.decide(
            agent=self.agent, tool=name, traits=traits, args=req["args"]
        )
        where = _where(req, config)
        details: dict[str, Any] = {
            "agent": self.agent,
            "name": name,
            "action": verdict.action,
            "reason": verdict.reason,
            "rule": verdict.rule,
            "args": req["args"],
            "args_hash": args_hash(req["args"]),
        }
        gated = verdict.action in ("approve", "escalate")
        kind: RequestKind = "approval" if verdict.action == "approve" else "escalation"
        if gated and where.ledger.get_approval(where.thread, f"{where.key}|{kind}") is not None:
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
        args: dict[str, Any] = dict(req["args"])
        if gated:
            outcome = self._gate(req, where, kind, verdict.reason, verdict.approvers)
            if isinstance(outcome, ToolMessage):
                return outcome
            args = outcome
        hashed = args_hash(args)
        if traits.read_only:
            return _Plan(name, args, where, hashed, None)
        previous = where.ledger.get_call(where.thread, where.key)
        if previous is not None and previous.status == "done" and previous.result is not None:
            return ToolMessage(
                content=previous.result.get("content", ""),
                status=previous.result.get("status", "success"),
                tool_call_id=req["id"],
                name=name,
                artifact={"replayed": True, "executed": False},
            )
        if previous is not None and previous.status == "started" and not traits.idempotent:
            outcome = self._gate(
                {**req, "args": args},
                where,
                "in_doubt",
                f"the process stopped while {name!r} was running (attempt "
                f"{previous.attempts}); it may or may not have taken effect. Approve to run it "
                "again, respond with its result, or reject.",
                None,
            )
            if isinstance(outcome, ToolMessage):
                if outcome.status != "error":  # a human supplied the result
                    where.ledger.finish_call(
                        where.thread, where.key, {"content": outcome.text, "status": "success"}
                    )
                return outcome
            args, hashed = outcome, args_hash(outcome)
        record = where.ledger.start_call(where.thread, where.key, name, hashed)
        return _Plan(name, args, where, hashed, record.idempotency_key)

    def _done(self, req: ToolRequest, plan: _Plan, message: ToolMessage) -> ToolMessage:
        if plan.idempotency_key is not None:
            plan.where.ledger.finish_call(
                plan.where.thread,
                plan.where.key,
                {"content": message.content, "status": message.status},
            )
        return message

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

    def _finish(self, req: ToolRequest, output: Any) -> ToolMessage:
        if isinstance(output, ToolMessage):
            return output
        content = output if isinstance(output, str) else json.dumps(output, default=str)
        return ToolMessage(content=content, tool_call_id=req["id"], name=req["name"] or "")

    def _failure(self, req: ToolRequest, exc: Exception) -> ToolMessage:
        return ToolMessage(
            content=f"Error: tool {req['name']!r} failed: {type(exc).__name__}: {exc}",
            tool_call_id=req["id"],
            name=req["name"] or "unknown",
            status="error",
            artifact={"error": "tool_failed", "executed": True},
        )

    def _timed_out(self, req: ToolRequest) -> ToolMessage:
        return ToolMessage(
            content=f"Error: tool {req['name']!r} did not finish within {self.timeout:g}s. It "
            "may still finish, and take effect, in the background: check before calling it "
            "again.",
            tool_call_id=req["id"],
            name=req["name"] or "unknown",
            status="error",
            artifact={"error": "tool_timeout", "executed": True},
        )

    def _invoke(self, tool: BaseTool, call: dict[str, Any], config: RunnableConfig) -> Any:
        if self.timeout is None:
            return tool.invoke(call, config)
        pool = concurrent.futures.ThreadPoolExecutor(1, "podium-tool-call")
        try:
            future = pool.submit(contextvars.copy_context().run, tool.invoke, call, config)
            done, _ = concurrent.futures.wait([future], timeout=self.timeout)
            if not done:
                raise _ToolTimeout
            return future.result()
        finally:
            pool.shutdown(wait=False)

    def run(self, req: ToolRequest, config: RunnableConfig | None = None) -> ToolMessage:
        """Check, gate and run one tool call synchronously; tool failures become messages."""
        plan = self.plan(req, config)
        if isinstance(plan, ToolMessage):
            return plan
        try:
            with self._keyed(plan):
                tool, call = self.granted[plan.name], self._call(req, plan)
                message = self._finish(req, self._invoke(tool, call, self._tagged(config)))
        except GraphBubbleUp:
            raise
        except _ToolTimeout:
            message = self._timed_out(req)
        except Exception as exc:
            message = self._failure(req, exc)
        return self._done(req, plan, message)

    async def arun(self, req: ToolRequest, config: RunnableConfig | None = None) -> ToolMessage:
        """Check, gate and run one tool call asynchronously; tool failures become messages.

        The ledger is synchronous (SQLite or a Postgres pool), so its work runs in a
        worker thread (with this task's context, so interrupts and events still work)
        and never blocks the event loop.
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
                message = self._finish(req, output)
        except GraphBubbleUp:
            raise
        except TimeoutError as exc:
            if self.timeout is None or not isinstance(exc.__cause__, asyncio.CancelledError):
                message = self._failure(req, exc)
            else:
                message = self._timed_out(req)
        except Exception as exc:
            message = self._failure(req, exc)
        return await asyncio.to_thread(self._done, req, plan, message)
