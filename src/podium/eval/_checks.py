"""Checks on what a run did: its tool trajectory, its governance, its limits.

Each is a pydantic-evals ``Evaluator`` (a dataclass; a dataset names it as
``Name``, ``Name: first_field`` or ``Name: {field: value}``) that reads the case's
:class:`~podium.eval.RunRecord` from ``ctx.attributes["run"]`` and returns a pass
or fail with the reason.

Trajectory (the tool calls models asked for, at any depth -- a manager's
specialists included -- from the streamed LangGraph messages):

* ``ToolCalled``: ``tool`` was called (with ``args`` among its arguments, by
  ``agent``, at least ``times`` times, if given).
* ``ToolNotCalled``: no call of ``tool`` (with ``args``, if given).
* ``ToolsInOrder``: ``tools`` were called in this order (others may come between).
* ``ToolsSubset``: every tool called is one of ``tools`` (handoffs and delegations,
  the patterns' own routing calls, are not counted).

Governance (from the run ledger: ``podium_events`` and ``podium_approvals``):

* ``ApprovalRequested``: a human was asked to approve ``tool`` (with ``args``).
* ``NoApprovalRequested``: no approval was asked (for ``tool``, if given).
* ``NoUnapprovedRuns``: every call of ``tools`` that ran had a human's approval
  (``approve`` or ``edit``) bound to that very call in the ledger.
* ``NoRefusal``: governance refused no call (no ``refusal`` event: a denied,
  ungranted, unknown or malformed call; a human's rejection is a decision, not a
  refusal).
* ``NoEscalation``: nothing escalated to a human (no ``escalation`` event and no
  request of kind ``escalation`` or ``in_doubt``).
* ``Status``: the case ended ``done``, ``waiting`` or ``error``.

Limits (from the ledger's model events): ``MaxTokens``, ``MaxCost`` (USD; a call
without a known price fails it), ``MaxModelCalls``. For wall time use pydantic-evals'
``MaxDuration: {seconds: 30}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic_evals.evaluators import EvaluationReason, Evaluator, EvaluatorContext

from podium.eval._run import RunRecord, ToolCall

__all__ = [
    "RUN_CHECKS",
    "ApprovalRequested",
    "MaxCost",
    "MaxModelCalls",
    "MaxTokens",
    "NoApprovalRequested",
    "NoEscalation",
    "NoRefusal",
    "NoUnapprovedRuns",
    "Status",
    "ToolCalled",
    "ToolNotCalled",
    "ToolsInOrder",
    "ToolsSubset",
]

Ctx = EvaluatorContext[Any, Any, Any]


def run_of(ctx: Ctx) -> RunRecord:
    """The case's run record (set by :func:`podium.eval.evaluate`)."""
    run = ctx.attributes.get("run")
    if not isinstance(run, RunRecord):
        raise TypeError(
            "this evaluator reads the podium run record (ctx.attributes['run']); run the "
            "dataset with podium.eval.evaluate or `podium eval`"
        )
    return run


def _matches(given: dict[str, Any], wanted: dict[str, Any] | None) -> bool:
    return not wanted or all(k in given and given[k] == v for k, v in wanted.items())


def _names(calls: list[ToolCall]) -> str:
    return ", ".join(c.tool for c in calls) or "none"


def _verdict(ok: bool, reason: str) -> EvaluationReason:
    return EvaluationReason(value=ok, reason=reason)


@dataclass(repr=False)
class ToolCalled(Evaluator[object, object, object]):
    """``tool`` was called (with ``args`` among its arguments, by ``agent``)."""

    tool: str
    """The tool's name."""
    args: dict[str, Any] | None = None
    """Arguments the call must have (others may be there too)."""
    agent: str | None = None
    """Only calls by this agent."""
    times: int = 1
    """At least this many matching calls."""

    def evaluate(self, ctx: Ctx) -> EvaluationReason:
        """Pass when enough matching calls are in the trajectory."""
        calls = run_of(ctx).trajectory
        found = [
            c
            for c in calls
            if c.tool == self.tool
            and _matches(c.args, self.args)
            and (self.agent is None or c.agent == self.agent)
        ]
        what = self.tool + (f" with {self.args}" if self.args else "")
        if len(found) >= self.times:
            return _verdict(True, f"{what} called {len(found)} time(s)")
        return _verdict(False, f"{what} called {len(found)} time(s); calls: {_names(calls)}")


@dataclass(repr=False)
class ToolNotCalled(Evaluator[object, object, object]):
    """No call of ``tool`` (with ``args`` among its arguments, if given)."""

    tool: str
    """The tool's name."""
    args: dict[str, Any] | None = None
    """Only calls with these arguments count."""

    def evaluate(self, ctx: Ctx) -> EvaluationReason:
        """Fail when a matching call is in the trajectory."""
        found = [
            c for c in run_of(ctx).trajectory if c.tool == self.tool and _matches(c.args, self.args)
        ]
        if not found:
            return _verdict(True, f"{self.tool} not called")
        return _verdict(False, f"{self.tool} called with {[c.args for c in found]}")


@dataclass(repr=False)
class ToolsInOrder(Evaluator[object, object, object]):
    """``tools`` were called in this order; other calls may come between them."""

    tools: list[str]
    """Tool names, in the order they must be called."""

    def evaluate(self, ctx: Ctx) -> EvaluationReason:
        """Pass when ``tools`` is a subsequence of the called tools."""
        calls = run_of(ctx).trajectory
        remaining = iter(c.tool for c in calls)
        ok = all(any(name == wanted for name in remaining) for wanted in self.tools)
        return _verdict(ok, f"calls: {_names(calls)}")


@dataclass(repr=False)
class ToolsSubset(Evaluator[object, object, object]):
    """Every tool called is one of ``tools`` (routing calls are not counted)."""

    tools: list[str]
    """The tools a run may call."""

    def evaluate(self, ctx: Ctx) -> EvaluationReason:
        """Fail on a call of a tool outside ``tools``."""
        calls = [c for c in run_of(ctx).trajectory if not c.routing]
        extra = sorted({c.tool for c in calls} - set(self.tools))
        if extra:
            return _verdict(False, f"called outside {self.tools}: {', '.join(extra)}")
        return _verdict(True, f"calls: {_names(calls)}")


@dataclass(repr=False)
class ApprovalRequested(Evaluator[object, object, object]):
    """A human was asked to approve a call of ``tool`` (with ``args``)."""

    tool: str | None = None
    """The gated tool (``None``: any)."""
    args: dict[str, Any] | None = None
    """Arguments the gated call must have."""

    def evaluate(self, ctx: Ctx) -> EvaluationReason:
        """Pass when the ledger has a matching ``approval_requested`` event."""
        asked = run_of(ctx).approvals_requested
        found = [
            e
            for e in asked
            if (self.tool is None or e["name"] == self.tool)
            and _matches(e["data"].get("args") or {}, self.args)
        ]
        shown = [f"{e['name']}({e['data'].get('args')})" for e in asked] or ["none"]
        return _verdict(bool(found), f"approvals requested: {', '.join(shown)}")


@dataclass(repr=False)
class NoApprovalRequested(Evaluator[object, object, object]):
    """No human was asked to approve a call (of ``tool``, if given)."""

    tool: str | None = None
    """Only requests for this tool count."""

    def evaluate(self, ctx: Ctx) -> EvaluationReason:
        """Fail on a matching ``approval_requested`` event."""
        asked = [
            e
            for e in run_of(ctx).approvals_requested
            if self.tool is None or e["name"] == self.tool
        ]
        if not asked:
            return _verdict(True, "no approval requested")
        return _verdict(False, f"approvals requested: {', '.join(e['name'] for e in asked)}")


@dataclass(repr=False)
class NoUnapprovedRuns(Evaluator[object, object, object]):
    """Nothing of ``tools`` ran without a human's approval of that very call."""

    tools: list[str] = field(default_factory=list)
    """The tools that must never run unapproved (a single name is accepted too)."""

    def __post_init__(self) -> None:
        if isinstance(self.tools, str):
            self.tools = [self.tools]

    def evaluate(self, ctx: Ctx) -> EvaluationReason:
        """Fail when a ledger ``tool`` run has no approve/edit decision for its call id."""
        run = run_of(ctx)
        approved = {
            str(r["request"].get("tool_call_id"))
            for r in run.decided("approve", "edit")
            if r["request"].get("kind", "approval") == "approval"
        }
        ran = [e for tool in self.tools for e in run.tool_runs(tool)]
        unapproved = [e for e in ran if str(e["data"].get("tool_call_id")) not in approved]
        if unapproved:
            return _verdict(
                False, f"ran without approval: {', '.join(e['name'] for e in unapproved)}"
            )
        return _verdict(True, f"{len(ran)} run(s) of {', '.join(self.tools)}, all approved")


@dataclass(repr=False)
class NoRefusal(Evaluator[object, object, object]):
    """Governance refused no call (no ``refusal`` event)."""

    def evaluate(self, ctx: Ctx) -> EvaluationReason:
        """Fail on any ``refusal`` event."""
        found = run_of(ctx).refusals
        shown = ", ".join(f"{e['name']} ({e['data'].get('code')})" for e in found)
        return _verdict(not found, f"refused: {shown}" if found else "nothing refused")


@dataclass(repr=False)
class NoEscalation(Evaluator[object, object, object]):
    """Nothing escalated to a human."""

    def evaluate(self, ctx: Ctx) -> EvaluationReason:
        """Fail on an ``escalation`` event or an escalation/in-doubt request."""
        found = run_of(ctx).escalations
        shown = ", ".join(f"{e['agent']}: {e['name']}" for e in found)
        return _verdict(not found, f"escalated: {shown}" if found else "no escalation")


@dataclass(repr=False)
class Status(Evaluator[object, object, object]):
    """The case ended ``done``, ``waiting`` (for a human) or ``error``."""

    status: str = "done"
    """The expected status."""

    def evaluate(self, ctx: Ctx) -> EvaluationReason:
        """Compare the run's status."""
        run = run_of(ctx)
        detail = f" ({run.error})" if run.error else ""
        return _verdict(run.status == self.status, f"status {run.status}{detail}")


@dataclass(repr=False)
class MaxTokens(Evaluator[object, object, object]):
    """Prompt plus generated tokens of every model call stay within ``tokens``."""

    tokens: int
    """The limit."""

    def evaluate(self, ctx: Ctx) -> EvaluationReason:
        """Compare the ledger's token sum."""
        used = run_of(ctx).tokens
        return _verdict(used <= self.tokens, f"{used} tokens (limit {self.tokens})")


@dataclass(repr=False)
class MaxCost(Evaluator[object, object, object]):
    """Model calls cost at most ``usd``; a call without a known price fails it."""

    usd: float
    """The limit in US dollars."""

    def evaluate(self, ctx: Ctx) -> EvaluationReason:
        """Compare the ledger's cost sum."""
        run = run_of(ctx)
        if run.unpriced:
            return _verdict(False, f"{run.unpriced} model call(s) have no known price")
        return _verdict(run.cost <= self.usd, f"${run.cost:.6f} (limit ${self.usd})")


@dataclass(repr=False)
class MaxModelCalls(Evaluator[object, object, object]):
    """At most ``calls`` model calls."""

    calls: int
    """The limit."""

    def evaluate(self, ctx: Ctx) -> EvaluationReason:
        """Count the ledger's model events."""
        made = run_of(ctx).model_calls
        return _verdict(made <= self.calls, f"{made} model calls (limit {self.calls})")


RUN_CHECKS: tuple[type[Evaluator[Any, Any, Any]], ...] = (
    ApprovalRequested,
    MaxCost,
    MaxModelCalls,
    MaxTokens,
    NoApprovalRequested,
    NoEscalation,
    NoRefusal,
    NoUnapprovedRuns,
    Status,
    ToolCalled,
    ToolNotCalled,
    ToolsInOrder,
    ToolsSubset,
)
"""The evaluators that read the run record."""
