"""The model step: one model call under the agent's limits, budgets and failure policy.

Order of one step: the turn's limits (``max_steps``) → the middleware's
``before_model`` hooks (:mod:`podium.agents._middleware`; one may end the turn) → the
instructions (text, or a function of the state and config) and the context policy
(:mod:`podium.agents._context`: what the call is sent; a summary call if one is due) →
the budgets in scope (stop, ask a human, or raise when one ran out) → the model call,
attempted by the :class:`~podium.FailurePolicy` ladder (retries, fallbacks; a budget
check before each attempt; each attempt through the middleware's ``wrap_model_call``
chain) → the reply, with its usage recorded in the state's ``usage`` key → the
``after_model`` hooks.
When every attempt failed, the step hands off to the alternate agent, records an
escalation for the ``escalate`` step, or raises.

The attempt loop is written once, as a generator that yields what it needs (a
pause, a model call, a human, the middleware's hooks, a summary:
:mod:`podium.agents._step_needs`) to a sync or an async driver. How one call is
made (models, instructions, context, tools, the ``wrap_model_call`` chain) is
:mod:`podium.agents._calling`'s.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import invalid_tool_call
from langchain_core.runnables import RunnableConfig

from podium.agents._budget import Usage, add_usage, report_usage
from podium.agents._calling import ModelCalls, Update
from podium.agents._escalate import Escalation, stop_message
from podium.agents._failure import Attempt, Attempts, model_label
from podium.agents._meter import Meter
from podium.agents._middleware import Hooks
from podium.agents._models import check_model_spec, is_local_model
from podium.agents._spec import Agent
from podium.agents._step_needs import After, Ask, Before, Call, Failed, Need, Pause
from podium.errors import (
    BudgetExceededError,
    InvalidModelOutputError,
    MaxStepsExceededError,
    ModelFailedError,
    ModelUnavailableError,
    UnknownThreadError,
)
from podium.observe import emit
from podium.tools._approvals import Decision
from podium.tools._policy import Policy

__all__ = ["ModelStep", "steps_this_turn"]


def steps_this_turn(messages: Sequence[AnyMessage], agent: str | None = None) -> int:
    """Model calls since the last human message (only ``agent``'s, when given)."""
    steps = 0
    for m in reversed(messages):
        if isinstance(m, HumanMessage):
            break
        if isinstance(m, AIMessage) and (agent is None or m.name == agent):
            steps += 1
    return steps


def _invalid_streak(messages: Sequence[AnyMessage], agent: str) -> int:
    """How many of ``agent``'s latest replies this turn in a row had unparseable calls."""
    streak = 0
    for m in reversed(messages):
        if isinstance(m, HumanMessage):
            break
        if isinstance(m, AIMessage) and m.name == agent:
            if not m.invalid_tool_calls:
                break
            streak += 1
    return streak


def _usage_of(exc: openai.LengthFinishReasonError) -> UsageMetadata | None:
    usage = getattr(exc.completion, "usage", None)
    if usage is None:
        return None
    return UsageMetadata(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
    )


@dataclass
class _Run:
    """One execution of the model step."""

    state: Mapping[str, Any]
    config: RunnableConfig
    meter: Meter
    plan: Attempts
    delta: Usage = field(default_factory=Usage)
    asked: int = 0


class ModelStep(ModelCalls):
    """The ``model`` node: one model call, under limits, budgets and the failure policy.

    Args:
        agent: The agent (its model, fallbacks, budget and policy).
        alternate_tool: The tool that hands the conversation to the policy's
            ``alternate`` (a handoff graph's ``transfer_to_<name>``), if routable.
        policy: The agent's graph's own policy: its approvers and approval timeout
            (with those of the enclosing graphs) govern budget escalations.
    """

    def __init__(
        self,
        agent: Agent,
        *,
        alternate_tool: str | None = None,
        policy: Policy | None = None,
    ) -> None:
        self.agent = agent
        self.governed_by = policy
        self.policy = agent.failure
        self.alternate_tool = alternate_tool
        self.specs: list[str | BaseChatModel] = [
            agent.model,
            *(self.policy.fallbacks if self.policy else ()),
        ]
        for spec in self.specs[1:]:
            check_model_spec(spec)
        self.labels = [model_label(s) for s in self.specs]
        self._models: list[BaseChatModel | None] = [None] * len(self.specs)
        self._lock = threading.Lock()
        self.hooks = Hooks(agent.name, agent.middleware) if agent.middleware else None
        self._summarizer: BaseChatModel | None = None

    @property
    def escalates(self) -> bool:
        """Whether failures go to a human (the loop needs an ``escalate`` step)."""
        return self.policy is not None and self.policy.escalate and self.alternate_tool is None

    # -- preparing a call ------------------------------------------------------------
    def _check_turn(self, state: Mapping[str, Any]) -> list[AnyMessage]:
        messages: list[AnyMessage] = list(state.get("messages") or [])
        if not messages:
            raise UnknownThreadError(
                f"Agent {self.agent.name!r} has no messages to answer. If this was a resume "
                "(Command(resume=...) or invoke(None)), the thread has no saved state.",
                fix='Start a run with {"messages": [("user", "...")]}, or check the thread_id '
                "and that the graph uses the same checkpointer (database file).",
            )
        used = steps_this_turn(messages, self.agent.name)
        if used >= self.agent.max_steps:
            raise MaxStepsExceededError(
                f"Agent {self.agent.name!r} made {used} model calls this turn without a final "
                f"answer (max_steps={self.agent.max_steps}).",
                fix="Raise Agent(max_steps=...), give clearer instructions, or check the tool "
                "results the model keeps reacting to.",
            )
        return messages

    # -- the attempt loop ------------------------------------------------------------
    def _steps(
        self, state: Mapping[str, Any], config: RunnableConfig
    ) -> Generator[Need, object, Update]:
        self._check_turn(state)
        run = _Run(
            state,
            config,
            Meter(self.agent.name, self.agent.budget, config, state.get("usage")),
            Attempts(self.policy, self.labels, self.agent.name, config),
        )
        view: Mapping[str, Any] = state
        early: Update = {}
        if self.hooks is not None and self.hooks.before:
            before = yield Before(state)
            view, early, ended = cast(tuple[dict[str, Any], Update, bool], before)
            if ended:  # a before_model hook ended the turn (a call limit)
                return self._update(run, early)
        prompt = yield from self._prompt(view, config, early)
        attempt: Attempt | None = run.plan.first()
        timeout = self.policy.model_timeout if self.policy else None
        while attempt is not None:
            if attempt.delay:
                yield Pause(attempt.delay)
            stopped = yield from self._settle_budget(run)
            if stopped is not None:
                return stopped
            started = time.time()
            outcome = yield Call(attempt.model, prompt, self._tagged(config), timeout)
            label = self.labels[attempt.model]
            if isinstance(outcome, Failed):
                used = run.meter.record(None, started_at=started)
                report_usage(config, used)
                run.delta = add_usage(run.delta, used)
                if self.policy is None:
                    if isinstance(outcome.error, openai.APIConnectionError):
                        raise self._unavailable(outcome.error) from outcome.error
                    raise outcome.error
                attempt = run.plan.failed(attempt, outcome.error)
                continue
            reply = outcome
            if isinstance(reply, openai.LengthFinishReasonError):
                reply = self._cut_off(reply)
            message = reply if isinstance(reply, AIMessage) else None
            free = is_local_model(self.model(attempt.model))
            used = run.meter.record(message, started_at=started, model=label, free=free)
            report_usage(config, used)
            run.delta = add_usage(run.delta, used)
            run.meter.refuse_unpriced()  # a cost budget never counts a call as free
            update = _with_early(self._finish(run, reply), early)
            if self.hooks is not None and self.hooks.after:
                after = yield After(view, update)
                update = cast(Update, after)
            return update
        return self._give_up(run)

    def _settle_budget(self, run: _Run) -> Generator[Need, object, Update | None]:
        """Before a call: ``None`` to go ahead, or the update that ends the step."""
        while (spent := run.meter.exhausted(run.delta)) is not None:
            action = spent.budget.on_exhausted
            event = {"agent": self.agent.name, "name": spent.label, "action": action}
            emit("budget", {**event, "exceeded": spent.exceeded}, run.config)
            if action == "raise":
                raise BudgetExceededError(
                    f"Agent {self.agent.name!r} may not call its model: {spent.describe()}.",
                    fix="Raise the limit, or use on_exhausted='stop' or 'escalate'.",
                )
            decision = None
            if action == "escalate":
                asked = Ask(run.config, self.agent.name, spent, run.asked, self.governed_by)
                answer = yield asked
                decision, extra = cast(tuple[Decision, dict[str, float] | None], answer)
                run.asked += 1
                if extra is not None:
                    run.delta = add_usage(run.delta, Usage(extended={spent.label: extra}))
                    continue
            details: dict[str, Any] = {
                "podium_budget": {"scope": spent.label, "exceeded": spent.exceeded}
            }
            if decision is not None and decision.action == "respond":
                text = decision.message
                details["responded_by"] = decision.by
            else:
                text = f"Stopped before calling the model: {spent.describe()} is used up."
                if decision is not None:
                    text += f" {decision.by} chose to stop: {decision.reason or 'no reason given'}."
            stop = stop_message(self.agent.name, text, "budget", details)
            return self._update(run, {"messages": [stop]})
        return None

    def _update(self, run: _Run, update: Update) -> Update:
        if run.delta:
            update["usage"] = run.delta
        if run.state.get("escalation") and "escalation" not in update:
            update["escalation"] = None
        return update

    def _finish(self, run: _Run, reply: Any) -> Update:
        if not isinstance(reply, AIMessage):
            reply = AIMessage(content=str(getattr(reply, "content", reply)))
        messages = run.state.get("messages") or []
        if reply.id is None or any(m.id == reply.id for m in messages):
            # a reply must never replace an earlier message (add_messages merges by id)
            reply = reply.model_copy(update={"id": f"{reply.id or 'ai'}-{uuid.uuid4().hex[:12]}"})
        calls = [
            {**c, "id": c.get("id") or f"call_{reply.id or 'x'}_{i}"}
            for i, c in enumerate(reply.tool_calls)
        ]
        reply = reply.model_copy(update={"name": self.agent.name, "tool_calls": calls})
        bound = self.policy.max_invalid_replies if self.policy else None
        if reply.invalid_tool_calls and bound is not None:
            streak = _invalid_streak(messages, self.agent.name) + 1
            if streak >= bound:
                error = (
                    f"{streak} replies in a row had tool calls that could not be parsed; last: "
                    f"{reply.invalid_tool_calls[0].get('error') or 'malformed'}"
                )
                if not self.escalates:
                    raise InvalidModelOutputError(
                        f"Agent {self.agent.name!r}: {error}.",
                        fix="Use a stronger model or tool_calling='json', or raise "
                        "FailurePolicy(max_invalid_replies=...).",
                    )
                return self._escalate(run, error)
        return self._update(run, {"messages": [reply]})

    def _escalate(self, run: _Run, error: str | None = None) -> Update:
        """Record the failure for the ``escalate`` step (a rung of the failure ladder)."""
        escalation = self._escalation(run, error)
        emit(
            "escalation",
            {
                "agent": self.agent.name,
                "name": "model",
                "error": escalation["error"],
                "attempts": escalation["attempts"],
                "models": escalation["models"],
            },
            run.config,
        )
        return self._update(run, {"escalation": escalation})

    def _escalation(self, run: _Run, error: str | None = None) -> Escalation:
        errors = run.plan.errors
        return Escalation(
            kind="failure" if error is None else "invalid_output",
            error=error or (errors[-1]["error"] if errors else "unknown error"),
            attempts=max(len(errors), 1),
            models=list(dict.fromkeys(e["model"] for e in errors)) or self.labels[:1],
            errors=errors,
        )

    def _give_up(self, run: _Run) -> Update:
        """Every attempt failed: hand off, record an escalation, or raise."""
        summary = run.plan.summary()
        last = run.plan.exceptions[-1] if run.plan.exceptions else None
        if self.alternate_tool is not None:
            target = self.alternate_tool
            alternate = self.policy.alternate if self.policy else None
            event = {"agent": self.agent.name, "name": alternate, "alternate": True}
            emit("fallback", {**event, "error": str(last)}, run.config)
            call = {
                "name": target,
                "args": {"reason": f"{self.agent.name}'s model failed: {last}"[:300]},
                "id": f"call_alt_{uuid.uuid4().hex[:12]}",
                "type": "tool_call",
            }
            handoff = AIMessage(
                content="",
                tool_calls=[call],
                name=self.agent.name,
                id=f"podium-alternate-{uuid.uuid4().hex[:12]}",
                response_metadata={"podium_failure": run.plan.errors},
            )
            return self._update(run, {"messages": [handoff]})
        if self.escalates:
            return self._escalate(run)
        tried = ", ".join(dict.fromkeys(self.labels))
        if run.plan.all_transient:
            raise ModelUnavailableError(
                f"Agent {self.agent.name!r}: every model ({tried}) failed with transient "
                f"errors; the run stopped before this model call and its state is saved.\n"
                f"{summary}",
                fix="Check the model servers, then resume with invoke(None, config).",
            ) from last
        raise ModelFailedError(
            f"Agent {self.agent.name!r}: its model call failed ({tried}).\n{summary}",
            fix="Check the error above; transient errors are retried, others are not.",
        ) from last

    def _unavailable(self, exc: openai.APIConnectionError) -> ModelUnavailableError:
        where = str(exc.request.url) if exc.request is not None else "its server"
        return ModelUnavailableError(
            f"Agent {self.agent.name!r} could not reach its model at {where}: {exc}. The run "
            "stopped before this model call; its state is saved.",
            fix="Start (or restart) the model server, then resume the thread with "
            "invoke(None, config). For model='local', the embedded server restarts on the "
            "next call. Agent(failure=FailurePolicy(...)) retries, falls back or escalates.",
        )

    def _cut_off(self, exc: openai.LengthFinishReasonError) -> AIMessage:
        """A JSON reply cut off at ``max_tokens``: an invalid call the model can retry."""
        return AIMessage(
            content="",
            invalid_tool_calls=[
                invalid_tool_call(
                    name=None,
                    args=None,
                    id=f"cut_{uuid.uuid4().hex[:12]}",
                    error=f"the reply was cut off at max_tokens={self.agent.max_tokens} "
                    "before the JSON was complete; reply with a shorter choice",
                )
            ],
            usage_metadata=_usage_of(exc),
        )

    def invoke(self, state: Mapping[str, Any], config: RunnableConfig) -> Update:
        """Run the step synchronously."""
        steps, value = self._steps(state, config), None
        while True:
            try:
                need = steps.send(value)
            except StopIteration as done:
                return cast(Update, done.value)
            value = need.run(self)

    async def ainvoke(self, state: Mapping[str, Any], config: RunnableConfig) -> Update:
        """Run the step asynchronously.

        A budget question uses the synchronous ledger: it runs in a worker thread,
        never on the event loop.
        """
        steps, value = self._steps(state, config), None
        while True:
            try:
                need = steps.send(value)
            except StopIteration as done:
                return cast(Update, done.value)
            value = await need.arun(self)


def _with_early(update: Update, early: Update) -> Update:
    """The step's update with what the ``before_model`` hooks and the context policy wrote."""
    if not early:
        return update
    merged = {**early, **{k: v for k, v in update.items() if k != "messages"}}
    merged["messages"] = [*(early.get("messages") or []), *(update.get("messages") or [])]
    return merged
