"""The approval gate before a pipeline's action stage, bound in the tool ledger.

It follows the governed executor's contract: the human sees an
:class:`~podium.ApprovalRequest` (``tool`` = the stage, ``args`` = what it will act
on) as the interrupt value, answers with a :class:`~podium.Decision`, and the first
valid decision is recorded in the ledger against the stage task's checkpoint
namespace. A resumed or replayed step finds that record and does not ask again; a
stage never runs unless the record holds an approval bound to exactly the input it
is about to act on. ``runs.pending`` and ``runs.decide`` work unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import interrupt
from pydantic import BaseModel, ValidationError

from podium.checkpoints._ledger import ToolLedger, args_hash
from podium.errors import ApprovalError, InvalidDecisionError
from podium.graphs._stage import problems, typed
from podium.tools._approvals import ApprovalRequest, Decision, RequestKind
from podium.tools._executor import current_ledger
from podium.tools._policy import Policy

__all__ = ["ActionGate", "Passage", "StageGate", "Verdict"]


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
class _Where:
    thread: str
    namespace: str
    ledger: ToolLedger


class StageGate:
    """Asks a human before one stage acts, and records exactly-once call state.

    Args:
        stage: The stage's name (the request's ``tool``).
        graph: The pipeline's name (the request's ``agent``).
        policy: Supplies ``approvers`` and ``approval_timeout`` when given.
    """

    def __init__(self, stage: str, graph: str | None, policy: Policy | None) -> None:
        self.stage, self.graph, self.policy = stage, graph or "pipeline", policy

    @staticmethod
    def where(config: RunnableConfig) -> _Where:
        """The thread, the stage task's namespace and the ledger of the running step."""
        conf = config.get("configurable") or {}
        return _Where(
            str(conf.get("thread_id", "")),
            str(conf.get("checkpoint_ns", "")),
            current_ledger(config),
        )

    def _key(self, where: _Where, kind: str) -> str:
        return f"{where.namespace}|stage:{self.stage}|{kind}"

    def _request(
        self, where: _Where, kind: RequestKind, args: dict[str, Any], reason: str
    ) -> ApprovalRequest:
        digest = hashlib.sha256(f"{where.thread}\0{self._key(where, kind)}".encode()).hexdigest()
        now = datetime.now(UTC)
        timeout = self.policy.approval_timeout if self.policy else None
        approvers = self.policy.approvers if self.policy else None
        return ApprovalRequest(
            id=f"apr_{digest[:20]}",
            agent=self.graph,
            tool=self.stage,
            args=args,
            reason=reason,
            risk="high",
            kind=kind,
            tool_call_id=f"stage:{self.stage}",
            created_at=now,
            expires_at=now + timeout if timeout is not None else None,
            approvers=tuple(approvers) if approvers is not None else None,
        )

    @staticmethod
    def _ask(request: ApprovalRequest, check_edit: Callable[[dict[str, Any]], object]) -> Decision:
        """Interrupt until a valid decision arrives (invalid ones re-ask with a note)."""
        note = request.note
        while True:
            value = interrupt(replace(request, note=note).to_json())
            try:
                decision = Decision.parse(value)
                request.check_approver(decision.by)
                if decision.action == "edit":
                    check_edit(decision.args or {})
            except ApprovalError as exc:
                note = f"A decision for this request was refused: {exc}"
                continue
            return decision

    def decide(
        self,
        config: RunnableConfig,
        kind: RequestKind,
        args: dict[str, Any],
        reason: str,
        check_edit: Callable[[dict[str, Any]], object],
        *,
        keep_order: bool = False,
    ) -> Verdict:
        """Ask (unless the ledger already holds a decision) and return the bound verdict.

        Args:
            config: The stage node's config.
            kind: ``approval`` (before an action) or ``in_doubt`` (a restarted action).
            args: What the stage will act on.
            reason: Shown to the human.
            check_edit: Validates edited arguments; raises ``InvalidDecisionError``.
            keep_order: Interrupt even when decided, so the step's later interrupts
                keep their positions (LangGraph matches resume values by order).
        """
        where = self.where(config)
        key = self._key(where, kind)
        fresh = self._request(where, kind, args, reason)
        record = where.ledger.ensure_request(where.thread, key, fresh.id, fresh.to_json())
        stored = ApprovalRequest.from_json(record.request)
        undecided = record.status != "decided" or record.decision is None
        if undecided or keep_order:
            answer = self._ask(stored, check_edit)
            if undecided:
                if stored.expired():
                    answer = Decision.reject(
                        f"the approval request expired at {stored.expires_at}", by=answer.by
                    )
                run_args = answer.args if answer.action == "edit" else stored.args
                bound = args_hash(run_args) if answer.action in ("approve", "edit") else None
                where.ledger.record_decision(where.thread, key, answer.to_json(), bound)
                record = where.ledger.get_approval(where.thread, key) or record
        decision = Decision.parse(record.decision)  # the first decision binds
        if decision.action == "reject":
            return Verdict(decision, None, f"{decision.by} rejected it: {decision.reason or '-'}")
        if decision.action == "respond":
            return Verdict(decision, None, decision.message)
        run_args = decision.args if decision.action == "edit" else stored.args
        if record.bound_args_hash != args_hash(run_args) or (
            decision.action == "approve" and args_hash(args) != args_hash(stored.args)
        ):
            return Verdict(decision, None, "the approval on record is for different input")
        return Verdict(decision, dict(run_args or {}))

    # -- exactly-once record of a function stage's action -----------------------------
    def done_output(self, config: RunnableConfig) -> tuple[str, Any] | None:
        """Whether the stage's action ran: ``("done", result)``, or ``("started", None)``.

        ``started`` means it began but never finished (in doubt); ``None`` means it
        never started.
        """
        where = self.where(config)
        record = where.ledger.get_call(where.thread, self._key(where, "run"))
        if record is None:
            return None
        if record.status == "done" and record.result is not None:
            return "done", record.result
        return "started", None

    def start(self, config: RunnableConfig, args: dict[str, Any]) -> None:
        """Record, durably, that the action is starting."""
        where = self.where(config)
        where.ledger.start_call(where.thread, self._key(where, "run"), self.stage, args_hash(args))

    def finish(self, config: RunnableConfig, result: dict[str, Any]) -> None:
        """Record the action's result; a re-run of the step returns it instead of acting."""
        where = self.where(config)
        where.ledger.finish_call(where.thread, self._key(where, "run"), result)


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
    """The stored result, when a function action already ran in this step."""


class ActionGate(StageGate):
    """The gates before one action stage: approval, then in-doubt after a restart.

    Args:
        stage: The stage's name.
        graph: The pipeline's name.
        policy: Supplies ``approvers`` and ``approval_timeout`` when given.
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
        super().__init__(stage, graph, policy)
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

    def passage(self, config: RunnableConfig, request: str, stored_previous: Any) -> Passage:
        """Ask (or recall) the decisions that let the stage act in this step."""
        args = self.args(request, stored_previous)

        def check(edit: dict[str, Any]) -> object:
            return self.edited(edit, stored_previous)

        ran = self.done_output(config) if self.ledgered else None
        verdict = self.decide(
            config,
            "approval",
            args,
            f"stage {self.stage!r} acts on this input; approve before it runs",
            check,
            keep_order=ran is not None and ran[0] == "started",
        )
        if verdict.args is None:
            return Passage(skip=verdict)
        edited = verdict.decision.action == "edit"
        value = self.edited(verdict.args, stored_previous) if edited else None
        if ran is not None and ran[0] == "done":
            return Passage(edited=edited, value=value, replayed=ran[1])
        run_args = verdict.args
        if ran is not None:
            doubt = self.decide(
                config,
                "in_doubt",
                run_args,
                f"stage {self.stage!r} started before but did not finish; it may or may not "
                "have taken effect. Approve to run it again, or reject to skip it.",
                check,
            )
            if doubt.args is None:
                return Passage(skip=doubt)
            if doubt.decision.action == "edit":
                edited, value, run_args = True, self.edited(doubt.args, stored_previous), doubt.args
        if self.ledgered:
            self.start(config, run_args)
        return Passage(edited=edited, value=value)
