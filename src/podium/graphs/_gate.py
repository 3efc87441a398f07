"""The approval gate before a pipeline's action stage, on the one decision core.

It asks the way every podium checkpoint asks (:mod:`podium.tools._decisions`): the
human sees an :class:`~podium.ApprovalRequest` (``tool`` = the stage, ``args`` = what
it will act on), answers with a :class:`~podium.Decision` (approve, edit its input,
reject, respond), validated against the approvers and deadline of every policy in
force, bound in the ledger with compare-and-set, and written to the run ledger as
``approval_requested`` / ``approval_decided`` events (with ``stage`` in their data;
``agent`` is the pipeline, with its path when nested). A stage never runs unless the
ledger holds an approval bound to exactly the input it is about to act on; a
function action's run is started exactly once (:func:`podium.tools._inflight.start_once`)
and its result kept, so a resumed, replayed or forked step never acts twice, and a
run that died inside the action is *in doubt* and asks again.

A gate's questions are keyed by the stage's node path, the user turn, the rework
round and the hash of the input -- not by task ids -- so forks and time travel find
the recorded decision and result for the same input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, ValidationError

from podium.checkpoints._ledger import CallRecord, args_hash
from podium.errors import InvalidDecisionError
from podium.graphs._stage import problems, typed
from podium.tools import _inflight
from podium.tools._approvals import ApprovalRequest, Decision, RequestKind
from podium.tools._decisions import Question, Where, ask, bind_args, governance, make_request
from podium.tools._decisions import where as where_of
from podium.tools._policy import Policy

__all__ = ["ActionGate", "Passage", "Verdict"]


@dataclass(frozen=True)
class Verdict:
    """The bound outcome of a gate: run (with which arguments) or skip (and why)."""

    decision: Decision
    """The recorded decision."""
    args: dict[str, Any] | None
    """The arguments to act on (the edited ones for ``edit``); ``None``: skip."""
    why: str = ""
    """For a skip: what the pipeline reports."""


@dataclass(frozen=True)
class Passage:
    """What an action stage's gates decided for one execution of the stage."""

    skip: Verdict | None = None
    """Set when the stage must not run (rejected, answered, or mismatched)."""
    edited: bool = False
    """Whether a human replaced the stage's input."""
    value: Any = None
    """The new input, when ``edited``."""
    replayed: dict[str, Any] | None = None
    """The stored result, when a function action already ran for this input."""
    key: str = ""
    """The ledger key of the action's run (for :meth:`ActionGate.finish`)."""


class ActionGate:
    """The gates before one action stage: approval, then in-doubt after a crash.

    Args:
        stage: The stage's name.
        graph: The pipeline's name.
        policy: The pipeline's policy (its approvers and timeout apply, with those of
            the enclosing graphs).
        first: The stage is the first (it acts on the request).
        previous_model: The output model of the stage before, to validate edits.
        ledgered: Record the action in the exactly-once ledger (function stages;
            agent and graph stages run their tools through the governed executor).
    """

    def __init__(
        self,
        stage: str,
        graph: str | None,
        policy: Policy | None,
        *,
        first: bool,
        previous_model: type[BaseModel] | None,
        ledgered: bool,
    ) -> None:
        self.stage, self.graph, self.policy = stage, graph or "pipeline", policy
        self.first, self.previous_model, self.ledgered = first, previous_model, ledgered

    def args(self, request: str, stored_previous: Any) -> dict[str, Any]:
        """What the human is shown: the request, the previous output, or ``{"input": ...}``."""
        if self.first:
            return {"request": request}
        if isinstance(stored_previous, dict):
            return dict(stored_previous)
        return {"input": stored_previous}

    def edited(self, args: dict[str, Any], stored_previous: Any) -> Any:
        """The stage's new input from edited arguments.

        Raises:
            InvalidDecisionError: If the edit does not fit (the human is asked again).
        """
        if self.first or not isinstance(stored_previous, dict):
            key = "request" if self.first else "input"
            if set(args) != {key}:
                raise InvalidDecisionError(
                    f"Edited input for stage {self.stage!r} must be {{{key!r}: ...}}."
                )
            return args[key]
        try:
            return typed(args, self.previous_model)
        except ValidationError as exc:
            model = self.previous_model.__name__ if self.previous_model else "value"
            raise InvalidDecisionError(
                f"Edited input for stage {self.stage!r} is not a valid {model}: {problems(exc)}"
            ) from exc

    def _ask(
        self,
        config: RunnableConfig,
        at: Where,
        key: str,
        kind: RequestKind,
        args: dict[str, Any],
        reason: str,
        stored_previous: Any,
    ) -> Verdict:
        rules = governance(config, self.policy)

        def review(decision: Decision, request: ApprovalRequest) -> Decision:
            if decision.action != "edit":
                return decision
            merged = {**request.args, **(decision.args or {})}
            if self.first or not isinstance(stored_previous, dict):
                merged = dict(decision.args or {})  # {"request": ...} or {"input": ...}
            self.edited(merged, stored_previous)
            return Decision.edit(merged, by=decision.by)

        request = make_request(
            at,
            key,
            agent=self.graph,
            tool=self.stage,
            args=args,
            reason=reason,
            kind=kind,
            risk="high",
            tool_call_id=f"stage:{self.stage}",
            approvers=rules.approvers,
            timeout=rules.approval_timeout,
        )
        question = Question(
            key, request, review=review, bind=bind_args(args), tags={"stage": self.stage}
        )
        decision = ask(config, question)
        if decision.action == "reject":
            return Verdict(decision, None, f"{decision.by} rejected it: {decision.reason or '-'}")
        if decision.action == "respond":
            return Verdict(decision, None, decision.message)
        return Verdict(decision, dict(decision.args or {}) if decision.action == "edit" else args)

    def passage(
        self,
        config: RunnableConfig,
        request: str,
        stored_previous: Any,
        *,
        turn: str,
        round_: int,
    ) -> Passage:
        """Ask (or recall) the decisions that let the stage act in this step.

        Args:
            config: The stage node's config.
            request: The user's request this turn.
            stored_previous: The previous stage's stored output (what the stage acts on).
            turn: The id of the user message that started the turn.
            round_: The rework round (each round's action is a new action).
        """
        at = where_of(config)
        args = self.args(request, stored_previous)
        base = f"{at.path}|stage:{self.stage}|{turn}|{round_}|{args_hash(args)[:16]}"
        if self.ledgered:  # a replay, fork or time travel of an action that ran: its result
            ran = at.ledger.get_call(at.thread, f"{base}|run")
            if ran is not None and ran.status == "done":
                return Passage(replayed=ran.result or {})
        verdict = self._ask(
            config,
            at,
            f"{base}|approval",
            "approval",
            args,
            f"stage {self.stage!r} acts on this input; approve before it runs",
            stored_previous,
        )
        if verdict.args is None:
            return Passage(skip=verdict)
        edited = verdict.decision.action == "edit"
        run_args = verdict.args
        value = self.edited(run_args, stored_previous) if edited else None
        if not self.ledgered:
            return Passage(edited=edited, value=value)
        chosen: list[tuple[bool, Any, dict[str, Any]]] = [(edited, value, run_args)]

        def in_doubt(record: CallRecord) -> _inflight.Rerun | Verdict:
            doubt = self._ask(
                config,
                at,
                f"{base}|in_doubt:{record.attempts}",
                "in_doubt",
                run_args,
                f"stage {self.stage!r} started before but did not finish; it may or may not "
                "have taken effect. Approve to run it again, or reject to skip it.",
                stored_previous,
            )
            if doubt.args is None:
                return doubt
            if doubt.decision.action == "edit":
                chosen[0] = (True, self.edited(doubt.args, stored_previous), doubt.args)
            return _inflight.Rerun(args_hash(chosen[0][2]))

        started = _inflight.start_once(
            at.ledger,
            at.thread,
            f"{base}|run",
            self.stage,
            args_hash(run_args),
            idempotent=False,
            in_doubt=in_doubt,
            lease=at.lease,
        )
        if isinstance(started, Verdict):
            return Passage(skip=started)
        edited, value, _ = chosen[0]
        if isinstance(started, CallRecord):
            return Passage(edited=edited, value=value, replayed=started.result or {})
        return Passage(edited=edited, value=value, key=f"{base}|run")

    @staticmethod
    def finish(config: RunnableConfig, key: str, result: dict[str, Any] | None) -> None:
        """Record the action's result (``None``: it raised; it stays in doubt)."""
        at = where_of(config)
        try:
            if result is not None:
                at.ledger.finish_call(at.thread, key, result)
        finally:
            _inflight.end(at.ledger, at.thread, key)
