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

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage, AnyMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END
from typing_extensions import TypedDict

from podium.agents._meter import Exhaustion, extension
from podium.errors import InvalidDecisionError, ModelFailedError
from podium.tools._approvals import ApprovalRequest, Decision, DecisionAction
from podium.tools._decisions import Question, ask, governance, make_request, where
from podium.tools._policy import Policy

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


def _question(
    config: RunnableConfig,
    what: str,
    policy: Policy | None,
    review: Callable[[Decision, ApprovalRequest], Decision],
    actions: frozenset[DecisionAction],
    meaning: str = "",
    **fields: Any,
) -> Question:
    """A question about this task (``what``), governed by the policies in force."""
    at = where(config)
    rules = governance(config, policy)
    key = f"{at.namespace}|escalation:{what}"  # per task: a fork asks anew
    request = make_request(
        at,
        key,
        kind="escalation",
        approvers=rules.approvers,
        timeout=rules.approval_timeout,
        **fields,
    )
    return Question(key, request, review=review, actions=actions, meaning=meaning)


def ask_budget(
    config: RunnableConfig,
    agent: str,
    exhausted: Exhaustion,
    index: int,
    policy: Policy | None = None,
) -> tuple[Decision, dict[str, float] | None]:
    """Ask a human about an exhausted budget, from inside the model step.

    Args:
        config: The model node's config.
        agent: The agent about to call its model.
        exhausted: The budget that ran out.
        index: How many budget questions this step asked before (keeps them distinct).
        policy: The agent's graph's own policy (its approvers and timeout apply, with
            those of the enclosing graphs).

    Returns:
        The decision, and for approve/edit the extension to record.
    """

    def review(decision: Decision, request: ApprovalRequest) -> Decision:
        if decision.action == "edit":
            try:
                extension(exhausted, decision.args or {})
            except ValueError as exc:
                raise InvalidDecisionError(
                    f"The edited budget was refused: {exc}.",
                    fix='Edit with new limits, e.g. {"output_tokens": 9000}.',
                ) from exc
        return decision

    decision = ask(
        config,
        _question(
            config,
            f"budget:{index}",
            policy,
            review,
            frozenset({"approve", "edit", "reject", "respond"}),
            agent=agent,
            tool="budget",
            args={
                "scope": exhausted.label,
                "exceeded": exhausted.exceeded,
                "limits": exhausted.limits,
            },
            reason=f"{exhausted.describe()} is used up. Approve for one more allowance, edit "
            "with new limits (args: {limit: value}), reject to stop, or respond with the "
            "answer.",
        ),
    )
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

    def __init__(self, agent: str, policy: Policy | None = None) -> None:
        self.agent = agent
        self.policy = policy

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

        def review(decision: Decision, request: ApprovalRequest) -> Decision:
            return decision

        question = _question(
            config,
            "model",
            self.policy,
            review,
            frozenset({"approve", "reject", "respond"}),
            "A model-failure escalation takes approve (try again), respond (the agent's "
            "answer) or reject (stop); edit has nothing to change.",
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
        )
        decision = ask(config, question)
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
