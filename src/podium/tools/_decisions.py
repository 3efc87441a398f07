"""The one decision core: every human checkpoint in podium goes through :func:`ask`.

Tool approvals, edits that need another approver tier, in-doubt calls, escalations
(a failing model, an exhausted budget) and pipeline action gates all ask a human
the same way:

1. the request is stored in the ledger under the question's key, unless it is
   already there (``open_request``: insert-if-absent, so every process and every
   re-run shows the same request, with the same id);
2. the run interrupts with the :class:`~podium.ApprovalRequest` as the value;
3. the answer is validated: its form, who decided (``approvers``), the deadline
   (a late decision counts as a rejection) and the question's own ``review``
   (a tool's schema and the whole policy again for an edit). A refused answer
   re-asks, with the reason in the request's ``note`` and ``refused``;
4. the decision is bound in the ledger with compare-and-set: the first decision
   recorded wins; a later or concurrent one gets the recorded decision back, so
   every process acts on the same decision and nothing runs twice;
5. the same run events are emitted for every kind: ``approval_requested`` (once,
   when the request is stored), ``approval_refused``, ``approval_decided`` (who,
   what, how long it waited, the edited arguments).

**Interrupt positions.** LangGraph matches resume values to the interrupts of a
task by their order. A question whose decision lets work continue (approve, edit)
therefore interrupts on every execution of its task, even once the ledger holds
its decision -- and walks past the refused answers it saw the first time -- so a
later question of the same task (an in-doubt call after a crash, an edit's next
tier, another budget) never receives an answer meant for an earlier one. The
ledger's decision is what counts; the answer at that position is ignored. When no
answer is at hand (the process that had it died), the run pauses on a request the
ledger has already decided: ``runs.pending`` hides it and podium's compiled graphs
(and ``runs.resume``) answer it from the ledger. A rejected or answered question
ends the task's work, so it needs no position and does not interrupt again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import merge_configs
from langgraph.constants import CONFIG_KEY_CHECKPOINTER
from langgraph.types import interrupt

from podium.checkpoints._leases import Lease, lease_of
from podium.checkpoints._ledger import SQLiteLedger, ToolLedger, args_hash
from podium.errors import ApprovalError, HumanUnavailableError, InvalidDecisionError
from podium.observe import emit
from podium.observe._scope import scope_of, scoped
from podium.tools._approvals import ApprovalRequest, Decision, DecisionAction, RequestKind
from podium.tools._policy import Governance, Policy

__all__ = [
    "LEDGER_KEY",
    "POLICIES_KEY",
    "Question",
    "Where",
    "ask",
    "current_ledger",
    "governance",
    "make_request",
    "node_path",
    "request_id",
    "where",
    "with_policy",
]

LEDGER_KEY = "__podium_ledger"
"""The ``configurable`` key under which a compiled podium graph carries its ledger."""
POLICIES_KEY = "__podium_policies"
"""The ``configurable`` key carrying the enclosing graphs' policies (outermost first)."""

EXPIRED = "the request expired"
"""How the reason of a rejection that a late decision became begins."""

_FALLBACK_LEDGER: ToolLedger | None = None
_CONTINUES: frozenset[DecisionAction] = frozenset({"approve", "edit"})


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


def governance(config: RunnableConfig | None, own: Policy | None = None) -> Governance:
    """The policies in force: those the enclosing graphs passed down, then ``own``."""
    outer = ((config or {}).get("configurable") or {}).get(POLICIES_KEY) or ()
    policies = tuple(p for p in outer if isinstance(p, Policy))
    return Governance(policies).inner(own)


def with_policy(config: RunnableConfig, policy: Policy | None) -> RunnableConfig:
    """The config to run a member with: ``policy`` added to the policies in force.

    Every pattern node that runs a member passes its graph's policy down this way,
    so an outer ``policy=`` governs every tool call at any depth.
    """
    if policy is None:
        return config
    found = governance(config, policy).policies
    return merge_configs(config, {"configurable": {POLICIES_KEY: found}})


def node_path(namespace: str) -> str:
    """A checkpoint namespace without its task ids: ``a:1|b:2`` -> ``a|b``.

    Task ids change on forks and time travel; the node path does not.
    """
    return "|".join(part.split(":", 1)[0] for part in namespace.split("|") if part)


@dataclass(frozen=True)
class Where:
    """Where a question or a call is recorded: the thread and its ledger."""

    thread: str
    """The thread id."""
    namespace: str
    """The running task's checkpoint namespace (task ids included)."""
    ledger: ToolLedger
    """The ledger of the running graph."""
    scope: str = ""
    """The path of the member graphs the task runs in (``""`` at top level; see
    :mod:`podium.observe._scope`). Only shown (``ApprovalRequest.agent``), never keyed on."""
    lease: Lease | None = None
    """The run's thread lease (fences what it writes to the ledger), if it holds one."""

    @property
    def path(self) -> str:
        """The namespace without task ids (stable across forks)."""
        return node_path(self.namespace)


def where(config: RunnableConfig | None) -> Where:
    """The thread, namespace and ledger of the running task."""
    conf = (config or {}).get("configurable") or {}
    ledger = current_ledger(config)
    return Where(
        str(conf.get("thread_id", "")),
        str(conf.get("checkpoint_ns", "")),
        ledger,
        scope_of(config),
        lease_of(config, ledger.location),
    )


def request_id(thread: str, key: str) -> str:
    """The id of the request asked under ``key``: the same in every process and re-run."""
    seed = f"{thread}\0{key}".encode()
    return f"apr_{hashlib.sha256(seed).hexdigest()[:20]}"


def make_request(
    at: Where,
    key: str,
    *,
    agent: str,
    tool: str,
    args: dict[str, Any],
    reason: str,
    kind: RequestKind,
    risk: str = "medium",
    tool_call_id: str = "",
    approvers: Sequence[str] | None = None,
    timeout: timedelta | None = None,
) -> ApprovalRequest:
    """A fresh request for the question under ``key`` (the ledger may hold an older one).

    ``agent`` is the name the asking graph knows; the request shows it with its path
    in nested graphs (``support_desk/cashier``). The id depends only on the thread and
    ``key``, never on the path.
    """
    now = datetime.now(UTC)
    return ApprovalRequest(
        id=request_id(at.thread, key),
        agent=scoped(at.scope, agent),
        tool=tool,
        args=args,
        reason=reason,
        risk=risk,
        kind=kind,
        tool_call_id=tool_call_id,
        created_at=now,
        expires_at=now + timeout if timeout is not None else None,
        approvers=tuple(approvers) if approvers is not None else None,
    )


Review = Callable[[Decision, ApprovalRequest], Decision]
"""Checks a well-formed decision against the question (raises ``ApprovalError`` to
refuse it) and returns the decision to record (e.g. an edit with merged arguments)."""


@dataclass(frozen=True)
class Question:
    """One thing a human is asked."""

    key: str
    """Ledger key, unique in the thread (the call's key plus what is asked)."""
    request: ApprovalRequest
    """The request as first asked (see :func:`make_request`)."""
    review: Review | None = None
    """Extra validation of an answer (see :data:`Review`)."""
    actions: frozenset[DecisionAction] = field(
        default=frozenset({"approve", "edit", "reject", "respond"})
    )
    """The decisions this question accepts."""
    bind: Callable[[Decision], str | None] | None = None
    """The hash of the arguments a decision lets run (``None``: nothing runs)."""
    meaning: str = ""
    """What each accepted decision does, shown when a decision is not accepted."""
    tags: Mapping[str, Any] = field(default_factory=dict)
    """Extra details for this question's run events (a pipeline gate adds ``stage``)."""


SHOWN_CHARS = 2000
"""How much of a refused decision a request keeps (a client may send megabytes)."""


def _refuse(decision: object, exc: ApprovalError) -> dict[str, Any]:
    """What a request shows of a refused answer: it, or its start if it is large.

    The answer is stored in the ledger's request and the run ledger's event and shown
    by ``podium pending``; a malicious or broken client's megabytes are cut to
    :data:`SHOWN_CHARS` characters of its JSON text.
    """
    shown = decision.to_json() if isinstance(decision, Decision) else decision
    text = json.dumps(shown, default=repr)
    if len(text) > SHOWN_CHARS:
        shown = f"{text[:SHOWN_CHARS]}... ({len(text):,} characters, cut)"
    return {"decision": shown, "error": (exc.message if exc.message else str(exc))[:SHOWN_CHARS]}


def _review(question: Question, stored: ApprovalRequest, value: object) -> Decision:
    decision = Decision.parse(value)
    if decision.action not in question.actions:
        allowed = ", ".join(sorted(question.actions))
        raise InvalidDecisionError(
            f"Request {stored.id} ({stored.kind}, {stored.tool}) takes {allowed}; "
            f"{decision.action!r} is not one of them. {question.meaning}".rstrip(),
            fix=f"Decide with one of: {allowed}.",
        )
    stored.check_approver(decision.by)
    if stored.expired():
        return Decision.reject(
            f"{EXPIRED} at {stored.expires_at}; a late decision counts as a rejection "
            "(denied by default)",
            by=decision.by,
        )
    return question.review(decision, stored) if question.review is not None else decision


def _event(stored: ApprovalRequest, question: Question) -> dict[str, Any]:
    return {
        **question.tags,
        "agent": stored.agent,
        "name": stored.tool,
        "request_id": stored.id,
        "kind": stored.kind,
    }


_WANTED = {
    "approval": "a human's approval",
    "escalation": "a human's decision",
    "in_doubt": "a human to say whether an interrupted call took effect",
}


def ask(config: RunnableConfig, question: Question) -> Decision:
    """Ask a human (or recall what one decided) and return the decision that binds.

    Raises:
        langgraph.errors.GraphInterrupt: While no decision is at hand (the run pauses).
        HumanUnavailableError: The run has no checkpointer, so it could never resume
            with a decision; no request is made.
    """
    if (config.get("configurable") or {}).get(CONFIG_KEY_CHECKPOINTER) is None:
        wanted = question.request
        raise HumanUnavailableError(
            f"{wanted.agent!r} needs {_WANTED.get(wanted.kind, 'a decision')} for "
            f"{wanted.tool!r} ({wanted.reason or 'the policy asks for one'}), but this run "
            "cannot pause for one: it has no checkpointer, so it could never be resumed with a "
            "decision. "
            "Nothing ran and no request was made.",
            fix="Compile the graph with a checkpointer and run it on a thread, e.g. "
            ".compile(checkpointer=sqlite_saver('runs.sqlite')) (from podium.checkpoints) and "
            "invoke(..., {'configurable': {'thread_id': ...}}); on LangGraph Server, run on a "
            "thread, not statelessly (its /mcp endpoint runs statelessly).",
        )
    at = where(config)
    ledger = at.ledger
    record, created = ledger.open_request(
        at.thread, question.key, question.request.id, question.request.to_json(), lease=at.lease
    )
    stored = ApprovalRequest.from_json(record.request)
    if created:
        emit(
            "approval_requested",
            {
                **_event(stored, question),
                "reason": stored.reason,
                "args": stored.args,
                "approvers": list(stored.approvers) if stored.approvers is not None else None,
            },
            config,
        )
    recorded = Decision.parse(record.decision) if record.decision is not None else None
    if recorded is not None and recorded.action not in _CONTINUES:
        return recorded  # nothing follows a rejection or an answer in this task
    if recorded is not None:
        stored = replace(
            stored,
            note=f"Already decided ({recorded.action} by {recorded.by}); that decision stands.",
        )
    shown = stored
    while True:
        value = interrupt(shown.to_json())
        try:
            decision = _review(question, stored, value)
        except ApprovalError as exc:
            refused = _refuse(value, exc)
            shown = replace(
                stored,
                note=f"A decision for this request was refused: {refused['error']}",
                refused=refused,
            )
            if recorded is None:
                ledger.show_request(at.thread, question.key, shown.to_json())
                emit("approval_refused", {**_event(stored, question), **refused}, config)
            continue
        break
    if recorded is not None:
        return recorded  # the position is kept; the ledger's decision binds
    bound = question.bind(decision) if question.bind is not None else None
    if not ledger.record_decision(at.thread, question.key, decision.to_json(), bound):
        again = ledger.get_approval(at.thread, question.key)
        if again is not None and again.decision is not None:
            return Decision.parse(again.decision)  # a concurrent decider won
    details: dict[str, Any] = {
        **_event(stored, question),
        "action": decision.action,
        "by": decision.by,
        "waited_seconds": (datetime.now(UTC) - stored.created_at).total_seconds(),
    }
    if decision.action == "edit":
        details["args"] = stored.args
        details["edited_args"] = decision.args
    if decision.action == "reject":
        details["reason"] = decision.reason
    emit("approval_decided", details, config)
    return decision


def bind_args(original: dict[str, Any]) -> Callable[[Decision], str | None]:
    """A :attr:`Question.bind` for a call: the hash of what the decision lets run."""

    def bound(decision: Decision) -> str | None:
        if decision.action == "approve":
            return args_hash(original)
        if decision.action == "edit":
            return args_hash(decision.args or {})
        return None

    return bound
