"""Running one case on a graph: a fresh thread, scripted decisions, a record of it.

The graph runs with ``stream_mode="updates", subgraphs=True``, so every message of
every agent at every depth -- a manager's specialists work in private histories that
never reach the top-level ``messages`` -- is seen once; the tool calls in them, in
order, are the case's **trajectory**. When the run stops for approval requests, each
is answered by the case's next scripted decision (or the ``approvals`` default) and
the run resumes through :func:`podium.runs.resume_command`, exactly as a human's
decision would arrive; a request nothing answers leaves the case ``waiting``.

After the run, the **ledger** says what happened: the run events of the thread
(:func:`podium.runs.events`, table ``podium_events``: model calls with tokens and
cost, tool runs, policy verdicts, approvals, refusals, escalations, budget stops),
its approval records (``podium_approvals``: which call was approved, by whom) and its
row in the thread registry (``podium_threads``). Token, cost and governance counts
come from there, not from the messages.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.pregel import Pregel

from podium import runs
from podium.eval._dataset import Approvals, CaseInputs, ScriptedDecision
from podium.tools import ApprovalRequest, Decision
from podium.tools._decisions import current_ledger

__all__ = ["RunRecord", "ToolCall", "run_case"]

MAX_DECISION_ROUNDS = 20
"""Resumes after approval requests, at most, before a case is called an error."""


@dataclass
class ToolCall:
    """One tool call a model asked for, and what came of it."""

    tool: str
    """The tool's name (``transfer_to_<agent>`` for a handoff, the agent's name for a
    manager's delegation)."""
    args: dict[str, Any]
    """The arguments the model gave."""
    agent: str | None = None
    """The agent that asked (the AI message's ``name``)."""
    id: str = ""
    """The tool call id."""
    status: str | None = None
    """``ok`` or ``error`` from the tool's result message (``None``: no result, e.g.
    still waiting for a human)."""
    result: str | None = None
    """The start of the result the model was given."""
    routing: bool = False
    """A handoff or a delegation rather than a tool of the domain."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {
            "tool": self.tool,
            "args": self.args,
            "agent": self.agent,
            "id": self.id,
            "status": self.status,
            "result": self.result,
            "routing": self.routing,
        }


@dataclass
class RunRecord:
    """What one case did on one graph: the final answer, the trajectory, the ledger.

    Evaluators read it as ``ctx.attributes["run"]`` (the evaluation's output,
    ``ctx.output``, is :attr:`answer`).
    """

    thread_id: str
    """The case's thread in the evaluation's SQLite file (``podium trace`` it)."""
    status: str
    """``done``, ``waiting`` (an approval request nothing answered) or ``error``."""
    answer: str
    """The final answer (empty unless ``done``)."""
    error: str | None = None
    """``Type: message`` of the exception that ended the run."""
    seconds: float = 0.0
    """Wall time of the case, decisions included."""
    trajectory: list[ToolCall] = field(default_factory=list)
    """Every tool call any agent asked for, in order."""
    events: list[dict[str, Any]] = field(default_factory=list)
    """The thread's run events (``podium_events``), oldest first."""
    approvals: list[dict[str, Any]] = field(default_factory=list)
    """The thread's approval records: ``request`` (tool, args, kind, tool_call_id),
    ``status`` and ``decision``."""
    thread: dict[str, Any] | None = None
    """The thread's row in ``podium_threads``."""
    messages: list[BaseMessage] = field(default_factory=list, repr=False)
    """The top-level conversation at the end."""

    # -- from the ledger ------------------------------------------------------------
    def _kind(self, *kinds: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["kind"] in kinds]

    @property
    def input_tokens(self) -> int:
        """Prompt tokens of every model call."""
        return sum(int(e["input_tokens"] or 0) for e in self._kind("model"))

    @property
    def output_tokens(self) -> int:
        """Generated tokens of every model call."""
        return sum(int(e["output_tokens"] or 0) for e in self._kind("model"))

    @property
    def tokens(self) -> int:
        """Prompt plus generated tokens."""
        return self.input_tokens + self.output_tokens

    @property
    def cost(self) -> float:
        """USD of every priced model call."""
        return float(sum(float(e["cost"] or 0) for e in self._kind("model")))

    @property
    def unpriced(self) -> int:
        """Model calls without a known price (their cost counts as 0)."""
        return sum(1 for e in self._kind("model") if e["data"].get("priced") is False)

    @property
    def model_calls(self) -> int:
        """Model calls, failed ones included."""
        return len(self._kind("model"))

    @property
    def approvals_requested(self) -> list[dict[str, Any]]:
        """``approval_requested`` events of kind ``approval`` (a policy gate)."""
        return [
            e
            for e in self._kind("approval_requested")
            if e["data"].get("kind", "approval") == "approval"
        ]

    @property
    def refusals(self) -> list[dict[str, Any]]:
        """``refusal`` events: calls governance did not run (denied, ungranted, bad args).

        A human's rejection is a ``refusal`` event too (code ``rejected``); it counts
        as a decision (:meth:`decided`), not here.
        """
        return [e for e in self._kind("refusal") if e["data"].get("code") != "rejected"]

    @property
    def escalations(self) -> list[dict[str, Any]]:
        """Escalations to a human.

        ``escalation`` events, and requests of kind ``escalation`` or ``in_doubt``.
        """
        asked = [
            e
            for e in self._kind("approval_requested")
            if e["data"].get("kind", "approval") != "approval"
        ]
        return self._kind("escalation") + asked

    @property
    def budget_stops(self) -> list[dict[str, Any]]:
        """``budget`` events that stopped or escalated a run."""
        return [e for e in self._kind("budget") if e["status"] != "ok"]

    def decided(self, *actions: str) -> list[dict[str, Any]]:
        """Approval records decided with one of ``actions`` (all decided ones if none)."""
        return [
            r
            for r in self.approvals
            if r["decision"] is not None and (not actions or r["decision"]["action"] in actions)
        ]

    def tool_runs(self, tool: str | None = None) -> list[dict[str, Any]]:
        """``tool`` events that ran to a result (status ``ok``), of ``tool`` if given."""
        return [
            e
            for e in self._kind("tool")
            if e["status"] == "ok" and (tool is None or e["name"] == tool)
        ]

    def metrics(self) -> dict[str, float]:
        """The numbers a report shows per case."""
        return {
            "tokens": self.tokens,
            "cost": self.cost,
            "model_calls": self.model_calls,
            "approvals": len(self.approvals_requested),
            "refusals": len(self.refusals),
            "escalations": len(self.escalations),
        }

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable summary (events and messages left out).

        ``thread_status`` and ``thread_runs`` are the thread registry's view
        (``podium_threads``): how the last run ended, and how many runs (the first, then
        one per resume after approvals) the case took.
        """
        return {
            "thread_id": self.thread_id,
            "status": self.status,
            "answer": self.answer,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "tokens": self.tokens,
            "cost": self.cost,
            "unpriced_calls": self.unpriced,
            "model_calls": self.model_calls,
            "approvals_requested": len(self.approvals_requested),
            "approved": len(self.decided("approve", "edit")),
            "rejected": len(self.decided("reject", "respond")),
            "refusals": len(self.refusals),
            "escalations": len(self.escalations),
            "budget_stops": len(self.budget_stops),
            "thread_status": (self.thread or {}).get("status"),
            "thread_runs": (self.thread or {}).get("runs"),
            "trajectory": [c.to_json() for c in self.trajectory],
            "approval_requests": [
                {
                    "tool": r["request"].get("tool"),
                    "args": r["request"].get("args"),
                    "kind": r["request"].get("kind"),
                    "decision": (r["decision"] or {}).get("action"),
                }
                for r in self.approvals
            ],
        }


class _Trajectory:
    """Tool calls seen in streamed updates, each once, with their results."""

    def __init__(self) -> None:
        self.calls: dict[tuple[str, str, str], ToolCall] = {}
        self.by_id: dict[str, ToolCall] = {}
        self.agents: set[str] = set()

    def add(self, messages: Iterable[BaseMessage]) -> None:
        for message in messages:
            if isinstance(message, AIMessage):
                if message.name:
                    self.agents.add(message.name)
                for call in message.tool_calls:
                    key = (call["id"] or "", call["name"], json.dumps(call["args"], default=str))
                    if key not in self.calls:
                        found = ToolCall(
                            call["name"], dict(call["args"]), message.name, call["id"] or ""
                        )
                        self.calls[key] = found
                        self.by_id.setdefault(found.id, found)
            elif isinstance(message, ToolMessage):
                answered = self.by_id.get(message.tool_call_id)
                if answered is not None:
                    answered.status = "ok" if message.status == "success" else message.status
                    answered.result = message.text[:300]

    def finish(self) -> list[ToolCall]:
        calls = list(self.calls.values())
        for call in calls:
            call.routing = call.tool.startswith("transfer_to_") or call.tool in self.agents
        return calls


def _messages(update: Any) -> list[BaseMessage]:
    if not isinstance(update, dict):
        return []
    return [m for m in update.get("messages") or [] if isinstance(m, BaseMessage)]


def _answer_for(
    request: ApprovalRequest, scripted: list[ScriptedDecision], default: Approvals
) -> Decision | None:
    for index, candidate in enumerate(scripted):
        if candidate.tool is None or candidate.tool == request.tool:
            del scripted[index]
            return candidate.decision()
    if default == "approve":
        return Decision.approve(by="eval")
    if default == "reject":
        return Decision.reject("rejected by the evaluation (--approvals reject)", by="eval")
    return None


def run_case(
    app: Pregel[Any, Any, Any, Any],
    inputs: CaseInputs,
    thread_id: str,
    *,
    approvals: Approvals = "wait",
) -> RunRecord:
    """Run one case on a fresh thread of ``app`` (compiled with a SQLite saver).

    Args:
        app: The compiled graph.
        inputs: The case.
        thread_id: A thread id never used before in ``app``'s database.
        approvals: What answers a request no scripted decision matches (the case's
            own ``approvals`` wins).

    Returns:
        The record; an exception in the run is recorded (``status="error"``), not raised.
    """
    config: RunnableConfig = {**inputs.config}  # type: ignore[typeddict-item]
    config["configurable"] = {**(inputs.config.get("configurable") or {}), "thread_id": thread_id}
    default = inputs.approvals or approvals
    scripted = list(inputs.decisions)
    seen = _Trajectory()
    payload: Any = inputs.payload()
    status, error = "done", None
    started = time.perf_counter()
    try:
        for _ in range(MAX_DECISION_ROUNDS):
            for item in app.stream(payload, config, stream_mode="updates", subgraphs=True):
                chunk: Any = item[1] if isinstance(item, tuple) else item
                for node, update in (chunk if isinstance(chunk, dict) else {}).items():
                    if not node.startswith("__"):
                        seen.add(_messages(update))
            pending = runs.pending(app, config)
            if not pending:
                break
            decisions: dict[str, Decision] = {}
            for request in pending:
                decision = _answer_for(request, scripted, default)
                if decision is not None:
                    decisions[request.id] = decision
            if not decisions:
                status = "waiting"
                break
            payload = runs.resume_command(app, config, decisions)
        else:
            status, error = "error", f"more than {MAX_DECISION_ROUNDS} rounds of approvals"
    except Exception as exc:  # the run's failure is the case's result
        status, error = "error", f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - started
    return _record(app, config, thread_id, status, error, seconds, seen.finish())


def _record(
    app: Pregel[Any, Any, Any, Any],
    config: RunnableConfig,
    thread_id: str,
    status: str,
    error: str | None,
    seconds: float,
    trajectory: list[ToolCall],
) -> RunRecord:
    messages: list[BaseMessage] = []
    try:
        values = app.get_state(config).values
        messages = [m for m in values.get("messages") or [] if isinstance(m, BaseMessage)]
    except Exception:  # nothing was saved (the run failed before its first step)
        messages = []
    answer = ""
    if status == "done" and messages and isinstance(messages[-1], AIMessage):
        answer = messages[-1].text
    ledger = current_ledger(app.config)
    thread = ledger.thread(thread_id)
    return RunRecord(
        thread_id=thread_id,
        status=status,
        answer=answer,
        error=error,
        seconds=seconds,
        trajectory=trajectory,
        events=runs.events(app, config),
        approvals=[
            {"request": r.request, "status": r.status, "decision": r.decision}
            for r in ledger.approvals(thread_id)
        ],
        thread=thread.to_json() if thread is not None else None,
        messages=messages,
    )
