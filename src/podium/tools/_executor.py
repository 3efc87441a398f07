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

Two errors a tool raises are not tool failures: :class:`~podium.errors.ToolTimeoutError`
(its service did not answer in time) is handled as the executor's own timeout (the
model is told; a side-effecting call stays in doubt), and
:class:`~podium.errors.ToolUnavailableError` (its service is down) stops the run
instead of answering the model -- the call's ledger claim is released when the call
never reached the service, so ``invoke(None, config)`` runs it afresh once the
service is back, and stays in doubt when it may have.

A tool's result (and a failure's message) has the values of the secrets this process
read scrubbed out before it becomes the model's ``ToolMessage`` (:mod:`podium._scrub`),
so a command that prints a secret never puts it in the model's context, the
checkpoints or the ledger.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import json
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import merge_configs
from langchain_core.tools import BaseTool
from langgraph.errors import GraphBubbleUp

from podium._scrub import has_secrets, scrub, scrub_error
from podium.checkpoints._ledger import CallRecord, args_hash
from podium.checkpoints._messages import EDIT_ARTIFACT
from podium.checkpoints._owners import process_owner
from podium.errors import ToolTimeoutError, ToolUnavailableError
from podium.observe import emit
from podium.tools import _inflight
from podium.tools._approvals import RequestKind
from podium.tools._asking import Asking, Cleared, replayed
from podium.tools._checks import Grants, refusal
from podium.tools._decisions import (
    LEDGER_KEY,
    Where,
    current_ledger,
    governance,
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


Invoke = Callable[[dict[str, Any], RunnableConfig], Any]
"""How a cleared call is run: ``(tool_call, config) -> output``.

The default invokes the granted tool (``tool.invoke(call, config)``); LangChain's
``create_agent`` passes its tool node's handler instead (:mod:`podium.middleware`),
so injected arguments and inner middleware work as they do there."""
AsyncInvoke = Callable[[dict[str, Any], RunnableConfig], Awaitable[Any]]
"""The asynchronous form of :data:`Invoke`."""


def call_key(at: Where, req: ToolRequest, args: dict[str, Any]) -> str:
    """The ledger key of a call: node path, asking message, call id, argument hash.

    Stable across resumes, replays, forks and time travel (no task ids), so the same
    call finds its record; a new model message (a new id) is a new call.
    """
    return f"{at.path}|{req.get('message') or '-'}|{req['id']}|{args_hash(args)[:16]}"


@dataclass(frozen=True)
class _Plan:
    """A call cleared to run: with which arguments, under which ledger record."""

    name: str
    run: Cleared
    at: Where
    key: str
    idempotency_key: str | None
    """``None`` for read-only tools (no ledger record)."""

    @property
    def args(self) -> dict[str, Any]:
        """The arguments the tool runs with."""
        return self.run.args


@dataclass(frozen=True)
class _Decided:
    """A call the checks let through, with the policy's verdict (no ledger work yet)."""

    name: str
    args: dict[str, Any]
    traits: ToolTraits
    rules: Governance
    verdict: PolicyDecision
    at: Where
    key: str
    gated: bool
    """The verdict asks a human (approve or escalate)."""
    tracked: bool
    """The call gets a ledger record (it has effects and the run has a thread)."""


class GovernedExecutor(Asking):
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

    # -- planning -----------------------------------------------------------------
    def plan(self, req: ToolRequest, config: RunnableConfig | None) -> _Plan | ToolMessage:
        """Run every check and gate; return a cleared plan or the model's answer."""
        decided = self._decide(req, config)
        outcome = decided if isinstance(decided, ToolMessage) else self._gate(req, decided, config)
        return self._refused(req, outcome, config)

    async def aplan(self, req: ToolRequest, config: RunnableConfig | None) -> _Plan | ToolMessage:
        """:meth:`plan` from an event loop: the ledger's work runs in a worker thread.

        The checks and the policy's verdict need no ledger; a call that is neither gated
        nor tracked (a read-only tool the policy allows, a denied call) is planned on the
        loop.
        """
        decided = self._decide(req, config)
        if isinstance(decided, ToolMessage):
            outcome: _Plan | ToolMessage = decided
        elif decided.gated or decided.tracked:
            outcome = await asyncio.to_thread(self._gate, req, decided, config)
        else:
            outcome = self._gate(req, decided, config)
        return self._refused(req, outcome, config)

    def _refused(
        self, req: ToolRequest, outcome: _Plan | ToolMessage, config: RunnableConfig | None
    ) -> _Plan | ToolMessage:
        """``outcome``; a refusal (by a check, the policy or a human) is also an event."""
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

    def _decide(self, req: ToolRequest, config: RunnableConfig | None) -> _Decided | ToolMessage:
        """The grant and argument checks and the policy's verdict: no ledger, no events."""
        checked = self.grants.checked(req)
        if isinstance(checked, ToolMessage):
            return checked
        name, args = req["name"] or "", checked
        traits = traits_of(self.granted[name])
        rules = governance(config, self.policy)
        verdict = rules.decide(agent=self.agent, tool=name, traits=traits, args=args)
        at = where(config)
        # without a thread (no checkpointer) nothing can resume: there is no call to track
        return _Decided(
            name,
            args,
            traits,
            rules,
            verdict,
            at,
            call_key(at, req, args),
            gated=verdict.action in ("approve", "escalate"),
            tracked=not traits.read_only and bool(at.thread) and verdict.action != "deny",
        )

    def _gate(
        self, req: ToolRequest, decided: _Decided, config: RunnableConfig | None
    ) -> _Plan | ToolMessage:
        """The ledger's part: a replay, an earlier unsettled call, a human, the claim."""
        name, args, traits, rules, verdict = (
            decided.name,
            decided.args,
            decided.traits,
            decided.rules,
            decided.verdict,
        )
        at, key, gated = decided.at, decided.key, decided.gated
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
        reuse: str | None = None
        record = None
        if decided.tracked:
            record = at.ledger.get_call(at.thread, key)
            if record is not None and record.status == "done":
                return replayed(req, record)
            if record is None:  # a new call: an earlier one of this tool may not be settled
                earlier = self._earlier(req, at, key, traits, args, rules, config)
                if isinstance(earlier, ToolMessage):
                    return earlier
                reuse = earlier
        cleared = Cleared(args)
        if gated:
            asked = self._human(
                req, at, f"{key}|{kind}", kind, args, verdict, rules, verdict.reason, config
            )
            if isinstance(asked, ToolMessage):
                return asked
            cleared = asked
        if not decided.tracked:
            return _Plan(name, cleared, at, key, None)
        return self._claim(req, at, key, cleared, traits, rules, config, reuse, record is None)

    def _claim(
        self,
        req: ToolRequest,
        at: Where,
        key: str,
        cleared: Cleared,
        traits: ToolTraits,
        rules: Governance,
        config: RunnableConfig | None,
        reuse: str | None = None,
        absent: bool = False,
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
                chosen[0] = Cleared(asked.args, first, asked.edited_by)
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
            args=cleared.args,
            idempotency_key=reuse,
            absent=absent,
            lease=at.lease,
        )
        if isinstance(started, _inflight.Started):
            return _Plan(name, chosen[0], at, key, started.idempotency_key)
        if isinstance(started, CallRecord):
            return replayed(req, started)
        return started

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
        if has_secrets():  # a secret's value never reaches the model, the checkpoint or the ledger
            message = message.model_copy(
                update={"content": scrub(message.content), "artifact": scrub(message.artifact)}
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
            content=scrub(f"Error: tool {req['name']!r} failed: {type(exc).__name__}: {exc}"),
            tool_call_id=req["id"],
            name=req["name"] or "unknown",
            status="error",
            artifact={
                "error": "tool_failed",
                "executed": True,
                **({"usage": used} if used else {}),
            },
        )

    def _timed_out(
        self, req: ToolRequest, plan: _Plan, seconds: float | None = None
    ) -> ToolMessage:
        """The model's answer to a call that outlived a timeout.

        ``seconds`` is the service's own timeout, for a
        :class:`~podium.errors.ToolTimeoutError`: that call's result is never
        recorded, so a human settles it if the tool is called again.
        """
        abandoned = seconds is not None
        seconds = self.timeout if seconds is None else seconds
        tracked = plan.idempotency_key is not None
        if tracked:  # in doubt until it ends; the tool does not run again meanwhile
            plan.at.ledger.mark_late(plan.at.thread, plan.key, True)
        idempotent = traits_of(self.grants.granted[plan.name]).idempotent
        after = (
            "It may still finish in the background."
            if not tracked
            else "It may still finish, and take effect, in the background; calling it again "
            "with the same arguments is safe (it carries the same idempotency key)."
            if idempotent
            else "It is in doubt: it may still take effect on its server. The tool does not "
            "run again in this conversation until a human settles this call."
            if abandoned
            else "It is in doubt: it may still finish, and take effect, in the background. Its "
            "result is recorded when it ends, and the tool does not run again in this "
            "conversation until then."
        )
        return ToolMessage(
            content=f"Error: tool {req['name']!r} did not finish within {seconds or 0:g}s. "
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

    def _end(self, plan: _Plan, down: ToolUnavailableError | None = None) -> None:
        if plan.idempotency_key is not None:
            if down is not None and not down.reached:  # nothing was sent: not in doubt
                plan.at.ledger.release_call(plan.at.thread, plan.key, process_owner())
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

    def run(
        self,
        req: ToolRequest,
        config: RunnableConfig | None = None,
        *,
        invoke: Invoke | None = None,
    ) -> ToolMessage:
        """Check, gate and run one tool call synchronously; tool failures become messages.

        Args:
            req: The call.
            config: The running task's config (thread, namespace, ledger, policies).
            invoke: How to run the cleared call (default: the granted tool's ``invoke``).
        """
        plan = self.plan(req, config)
        if isinstance(plan, ToolMessage):
            return plan
        background = False
        message: ToolMessage | None = None
        down: ToolUnavailableError | None = None
        try:
            with self._keyed(plan):
                call = self._call(req, plan)
                act = invoke or self.granted[plan.name].invoke
                if self.timeout is None:
                    output = act(call, self._tagged(config))
                else:
                    pool = concurrent.futures.ThreadPoolExecutor(1, "podium-tool-call")
                    future = pool.submit(
                        contextvars.copy_context().run, act, call, self._tagged(config)
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
        except ToolTimeoutError as exc:
            return self._timed_out(req, plan, exc.seconds)
        except ToolUnavailableError as exc:
            down = scrub_error(exc)  # a secret the tool echoed never leaves the run
            raise  # the run stops; it resumes once the service is back
        except Exception as exc:
            message = self._failure(req, exc)
        finally:
            # recorded before it stops counting as running here: never seen as in doubt
            if message is not None:
                self._record(plan, message)
            if not background:
                self._end(plan, down)
        return message

    async def arun(
        self,
        req: ToolRequest,
        config: RunnableConfig | None = None,
        *,
        ainvoke: AsyncInvoke | None = None,
    ) -> ToolMessage:
        """Check, gate and run one tool call asynchronously; tool failures become messages.

        The ledger is synchronous (SQLite or a Postgres pool), so its work runs in a
        worker thread (with this task's context, so interrupts and events still work)
        and never blocks the event loop; a call that needs none (a read-only tool the
        policy allows) is checked on the loop, policy predicates included -- keep
        ``Rule(when=...)`` functions quick and free of I/O. A timed-out async call is
        cancelled; whether it took effect is unknown, so it stays in doubt.
        """
        plan = await self.aplan(req, config)
        if isinstance(plan, ToolMessage):
            return plan
        message: ToolMessage | None = None
        down: ToolUnavailableError | None = None
        try:
            with self._keyed(plan):
                act = ainvoke or self.granted[plan.name].ainvoke
                pending = act(self._call(req, plan), self._tagged(config))
                output = await asyncio.wait_for(pending, self.timeout)
                message = self._finish(req, plan, output)
        except GraphBubbleUp:
            raise
        except ToolTimeoutError as exc:
            return await asyncio.to_thread(self._timed_out, req, plan, exc.seconds)
        except ToolUnavailableError as exc:
            down = scrub_error(exc)  # a secret the tool echoed never leaves the run
            raise  # the run stops; it resumes once the service is back
        except TimeoutError as exc:
            if self.timeout is None or not isinstance(exc.__cause__, asyncio.CancelledError):
                message = self._failure(req, exc)
            else:
                return await asyncio.to_thread(self._timed_out, req, plan)
        except Exception as exc:
            message = self._failure(req, exc)
        finally:
            # recorded before it stops counting as running here: never seen as in doubt
            if message is not None and plan.idempotency_key is not None:
                await asyncio.to_thread(self._record, plan, message)
            if down is not None and not down.reached:
                await asyncio.to_thread(self._end, plan, down)
            else:
                self._end(plan)
        return message
