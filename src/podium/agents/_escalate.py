"""Escalation to a human: failed models and exhausted budgets, on the approval contract.

An escalation is an :class:`~podium.ApprovalRequest` of kind ``escalation`` -- tool
``model`` for a model that kept failing, tool ``budget`` for a budget that ran out
-- so ``runs.pending`` lists it and ``runs.decide`` answers it with a
:class:`~podium.Decision`, like any approval. The first valid decision is recorded
in the tool ledger (an audit trail, and it binds if the step runs again).

* **Model failures** are a graph step of their own: the model step records the
  failure in the state's ``escalation`` key and the loop routes to an ``escalate``
  node that interrupts. Resuming therefore goes straight to the human's decision,
  without re-running the retries. approve = try again (the whole ladder);
  respond = the message becomes the agent's answer; reject = stop with
  :class:`~podium.errors.ModelFailedError`.
* **Budgets** are checked before any model call, so the model step itself asks
  (nothing ran before the question): approve = one more allowance, edit = new
  limits, reject = stop cleanly, respond = stop with the human's message as answer.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal, TypedDict

from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END
from langgraph.types import interrupt

from podium.agents._meter import Exhaustion, extension
from podium.errors import ApprovalError, InvalidDecisionError, ModelFailedError
from podium.observe import emit
from podium.tools._approvals import ApprovalRequest, Decision
from podium.tools._executor import current_ledger

__all__ = [
    "ESCALATE_NODE",
    "EscalateStep",
    "Escalation",
    "after_escalate",
    "ask_budget",
    "stop_message",
]

ESCALATE_NODE = "escalate"
"""The name of the escalation step in agent loops and manager graphs."""


class Escalation(TypedDict):
    """A model failure waiting for a human (the state's ``escalation`` value)."""

    kind: Literal["failure", "invalid_output"]
    """``failure``: every attempt failed; ``invalid_output``: too many invalid replies."""
    error: str
    """The last error, in one line."""
    attempts: int
    """How many attempts were made."""
    models: list[str]
    """The models tried, in order."""
    errors: list[dict[str, Any]]
    """Every failed attempt: ``{"model", "attempt", "error"}``."""


def stop_message(agent: str, text: str, stop: str, details: dict[str, Any]) -> AIMessage:
    """A final answer podium writes on the agent's behalf.

    Its ``response_metadata["podium_stop"]`` says why (``budget`` or ``escalation``).
    """
    return AIMessage(
        content=text,
        name=agent,
        id=f"podium-{stop}-{uuid.uuid4().hex[:12]}",
        response_metadata={"podium_stop": stop, **details},
    )


def _ask(
    config: RunnableConfig, request: ApprovalRequest, check: Callable[[Decision], None]
) -> Decision:
    """Interrupt until a valid decision arrives; the first recorded one binds."""
    conf = config.get("configurable") or {}
    thread = str(conf.get("thread_id", ""))
    key = f"{conf.get('checkpoint_ns', '')}|{request.id}"
    ledger = current_ledger(config)
    record = ledger.ensure_request(thread, key, request.id, request.to_json())
    stored = ApprovalRequest.from_json(record.request)
    if record.status == "decided" and record.decision is not None:
        done = Decision.parse(record.decision)  # asked again after a restart
        stored = replace(
            stored,
            note=f"Already decided ({done.action} by {done.by}); that decision stands.",
        )
    if record.status == "pending":
        emit(
            "escalation",
            {"agent": stored.agent, "name": stored.tool, "request_id": stored.id, **stored.args},
            config,
        )
    note = stored.note
    while True:  # interrupt even when decided, so later interrupts keep their positions
        value = interrupt(replace(stored, note=note).to_json())
        try:
            decision = Decision.parse(value)
            stored.check_approver(decision.by)
            check(decision)
        except ApprovalError as exc:
            note = f"A decision for this request was refused: {exc}"
            continue
        break
    if record.status == "decided" and record.decision is not None:
        return Decision.parse(record.decision)
    ledger.record_decision(thread, key, decision.to_json(), None)
    emit(
        "approval_decided",
        {
            "agent": stored.agent,
            "name": stored.tool,
            "request_id": stored.id,
            "kind": "escalation",
            "action": decision.action,
            "by": decision.by,
        },
        config,
    )
    return decision


def _request_id(config: RunnableConfig, what: str) -> str:
    conf = config.get("configurable") or {}
    seed = f"{conf.get('thread_id', '')}\0{conf.get('checkpoint_ns', '')}\0{what}"
    return f"esc_{hashlib.sha256(seed.encode()).hexdigest()[:20]}"


def ask_budget(
    config: RunnableConfig, agent: str, exhausted: Exhaustion, index: int
) -> tuple[Decision, dict[str, float] | None]:
    """Ask a human about an exhausted budget, from inside the model step.

    Args:
        config: The model node's config.
        agent: The agent about to call its model.
        exhausted: The budget that ran out.
        index: How many budget questions this step asked before (keeps ids distinct).

    Returns:
        The decision, and for approve/edit the extension to record.
    """
    request = ApprovalRequest(
        id=_request_id(config, f"budget:{index}"),
        agent=agent,
        tool="budget",
        args={"scope": exhausted.label, "exceeded": exhausted.exceeded, "limits": exhausted.limits},
        reason=f"{exhausted.describe()} is used up. Approve for one more allowance, edit with "
        "new limits (args: {limit: value}), reject to stop, or respond with the answer.",
        kind="escalation",
    )

    def check(decision: Decision) -> None:
        if decision.action == "edit":
            try:
                extension(exhausted, decision.args or {})
            except ValueError as exc:
                raise InvalidDecisionError(f"The edited budget was refused: {exc}.") from exc

    decision = _ask(config, request, check)
    if decision.action == "approve":
        return decision, extension(exhausted, None)
    if decision.action == "edit":
        return decision, extension(exhausted, decision.args or {})
    return decision, None


class EscalateStep:
    """The ``escalate`` node: ask a human what to do about a failing model.

    Args:
        agent: The agent's name.
    """

    def __init__(self, agent: str) -> None:
        self.agent = agent

    def invoke(self, state: Mapping[str, Any], config: RunnableConfig) -> dict[str, Any]:
        """Interrupt with the recorded failure; apply the decision."""
        failure: Escalation | None = state.get("escalation")
        if not failure:
            return {}
        what = (
            "kept replying with tool calls that could not be parsed"
            if failure["kind"] == "invalid_output"
            else "failed after every retry and fallback"
        )
        request = ApprovalRequest(
            id=_request_id(config, "model"),
            agent=self.agent,
            tool="model",
            args={
                "error": failure["error"],
                "attempts": failure["attempts"],
                "models": failure["models"],
                "kind": failure["kind"],
            },
            reason=f"The model of agent {self.agent!r} {what} ({failure['error']}). Approve "
            "to try again, respond with the answer it should give, or reject to stop the run.",
            kind="escalation",
        )

        def check(decision: Decision) -> None:
            if decision.action == "edit":
                raise InvalidDecisionError(
                    "A model-failure escalation takes approve (try again), respond (the "
                    "agent's answer) or reject (stop); edit has nothing to change."
                )

        decision = _ask(config, request, check)
        if decision.action == "approve":
            return {"escalation": None}
        if decision.action == "respond":
            answer = stop_message(
                self.agent, decision.message, "escalation", {"responded_by": decision.by}
            )
            return {"escalation": None, "messages": [answer]}
        raise ModelFailedError(
            f"The model of agent {self.agent!r} {what}; {decision.by} aborted the run: "
            f"{decision.reason or 'no reason given'}. Last error: {failure['error']}.",
            fix="Fix the model or its server, then send a new message; the conversation "
            "so far is saved.",
        )


def after_escalate(model_node: str) -> Callable[[Mapping[str, Any]], str]:
    """The route after ``escalate``: back to ``model_node``, or the end once answered."""

    def route(state: Mapping[str, Any]) -> str:
        messages: Sequence[AnyMessage] = state.get("messages") or []
        last = messages[-1] if messages else None
        if isinstance(last, AIMessage) and last.response_metadata.get("podium_stop"):
            return END
        return model_node

    return route
