"""The pipeline pattern: ordered stages with typed outputs, rework, and approval gates.

Graph: ``START → <stage 1> → <stage 2> → … → END``; each stage node routes with
``Command(goto=...)`` to the next stage, or back to an earlier one when it asks for
:class:`~podium.graphs.Rework`. Outputs are stored in ``stage_outputs`` as JSON
values (pydantic outputs as ``model_dump(mode="json")``), re-validated into the
stage's model whenever a later stage reads them. The last stage's output becomes the
pipeline's answer message. An action stage is preceded by an approval gate
(:mod:`podium.graphs._gate`).

Run events (the ``agent`` column is the pipeline, ``name`` the stage): every
execution of a stage emits ``stage_started`` and, however it ends, ``stage_finished``
-- a span with ``status`` ok / error / interrupted (waiting for a human) and
``outcome`` done / skipped / rework; a stage that sends work back also emits
``rework`` (``from``, ``to``, ``feedback``, ``round``). A gate's questions are
``approval_requested`` / ``approval_decided`` events with ``stage`` in their data.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.errors import GraphBubbleUp
from langgraph.graph import END, START
from langgraph.pregel import Pregel
from langgraph.types import Command, Overwrite
from pydantic import BaseModel, ValidationError

from podium.agents import Agent, Budget
from podium.agents._budget import Usage, add_usage, budget_binding, usage_of
from podium.agents._spec import validate_name
from podium.errors import (
    ConfigurationError,
    ReworkLimitError,
)
from podium.graphs._gate import ActionGate, Verdict
from podium.graphs._joins import final_answer, plain_answer
from podium.graphs._members import (
    Inventory,
    Member,
    all_tool_names,
    check_rule_names,
    describe,
    inventory_of,
    member_runnable,
    member_scope,
    run_config,
)
from podium.graphs._stage import (
    PipelineState,
    Rework,
    Stage,
    StageInput,
    StageRecord,
    check_output,
    check_stages,
    find_rework,
    invalid_output,
    parse_answer,
    problems,
    render,
    stage_prompt,
    to_json_value,
    typed,
)
from podium.observe import emit
from podium.tools import GovernedGraph, Policy

__all__ = ["create_pipeline_graph"]


def _last_human(messages: Sequence[AnyMessage]) -> AnyMessage | None:
    return next((m for m in reversed(messages) if isinstance(m, HumanMessage)), None)


@dataclass
class _Step:
    """One execution of a stage: what it sees and what it writes besides its result."""

    inp: StageInput
    stored_previous: Any
    new_turn: bool
    reworks: int
    turn: str
    edited_request: bool = False
    run_key: str = ""
    """The ledger key of a function action's run, once it started."""


class _StageNode:
    """Runs one stage: gate, run (agent with retries, or function), route onwards."""

    def __init__(
        self,
        stages: Sequence[Stage],
        index: int,
        runnable: Pregel[Any, Any, Any, Any] | None,
        graph: str | None,
        policy: Policy | None,
        max_rework: int,
    ) -> None:
        self.stage, self.index, self.runnable = stages[index], index, runnable
        run = self.stage.run
        self.function: Callable[[StageInput], Any] | None = (
            None if self.stage.is_member or not callable(run) else run
        )
        self.graph, self.max_rework, self.policy = graph, max_rework, policy
        self.label = graph or "pipeline"
        self.scope = member_scope(self.stage.run) if self.stage.is_member else None
        self.models = {s.name: s.output for s in stages}
        self.earlier = [s.name for s in stages[:index]]
        self.prev = stages[index - 1].name if index else None
        self.next: str = stages[index + 1].name if index + 1 < len(stages) else END
        self.gate = (
            ActionGate(
                self.stage.name,
                graph,
                policy,
                first=self.prev is None,
                previous_model=self.models[self.prev] if self.prev else None,
                ledgered=not self.stage.is_member,
            )
            if self.stage.action
            else None
        )

    # -- before ----------------------------------------------------------------------
    def _begin(self, state: PipelineState) -> _Step:
        messages = list(state["messages"])
        human = _last_human(messages)
        turn = str(human.id) if human is not None else ""
        pending = state.get("rework") or {}
        here = pending.get("to") == self.stage.name and pending.get("turn") == turn
        new_turn = self.index == 0 and not here
        stored = {} if new_turn else dict(state.get("stage_outputs") or {})
        outputs = {n: typed(stored[n], self.models[n]) for n in self.earlier if n in stored}
        inp = StageInput(
            request=human.text if human is not None else "",
            messages=messages,
            outputs=outputs,
            previous=outputs.get(self.prev) if self.prev else None,
            feedback=pending.get("feedback") if here else None,
        )
        reworks = 0 if new_turn else int(state.get("reworks") or 0)
        return _Step(inp, stored.get(self.prev) if self.prev else None, new_turn, reworks, turn)

    def _apply(self, step: _Step, value: Any) -> None:
        """Make an edited input what the stage acts on."""
        if self.prev is None:
            step.inp = replace(step.inp, request=str(value))
            step.edited_request = True
        else:
            outputs = {**step.inp.outputs, self.prev: value}
            step.inp = replace(step.inp, outputs=outputs, previous=value)

    def _replayed(self, stored: dict[str, Any]) -> Any:
        if "rework" in stored:
            return Rework.model_validate(stored["rework"])
        return typed(stored.get("value"), self.stage.output)

    def _gates(self, step: _Step, config: RunnableConfig) -> Command[Any] | None:
        """Pass an action stage's gates: a ``Command`` ends the step, ``None`` runs it.

        The ``Command`` is a skip (rejected or answered) or the stored result of a
        function action that already ran.
        """
        if self.gate is None:
            return None
        passage = self.gate.passage(
            config, step.inp.request, step.stored_previous, turn=step.turn, round_=step.reworks
        )
        if passage.skip is not None:
            return self._skip(step, passage.skip)
        if passage.edited:
            self._apply(step, passage.value)
        if passage.replayed is not None:
            return self._finish(step, self._replayed(passage.replayed), {"replayed": True})
        step.run_key = passage.key
        return None

    # -- after -----------------------------------------------------------------------
    @staticmethod
    def _write(step: _Step, value: Any) -> Any:
        return Overwrite(value) if step.new_turn else value

    def _route(
        self, step: _Step, goto: str, record: StageRecord, update: dict[str, Any]
    ) -> Command[Any]:
        full = {
            "stage_log": self._write(step, [record]),
            "rework": update.pop("rework", None),
            "reworks": step.reworks,
            **update,
        }
        if step.new_turn and "stage_outputs" not in full:
            full["stage_outputs"] = Overwrite({})
        return Command(goto=goto, update=full)

    def _answer(self, text: str) -> dict[str, Any]:
        if self.next != END:
            return {}
        message = AIMessage(text, name=self.graph) if self.graph else AIMessage(text)
        return {"messages": [message]}

    def _skip(self, step: _Step, verdict: Verdict) -> Command[Any]:
        record = StageRecord(
            stage=self.stage.name, status="skipped", detail={"decision": verdict.decision.to_json()}
        )
        text = (
            verdict.why
            if verdict.decision.action == "respond"
            else f"Stage {self.stage.name!r} was not run: {verdict.why}."
        )
        return self._route(step, self.next, record, self._answer(text))

    def _rework_problem(self, rework: Rework) -> str | None:
        allowed = list(self.stage.rework_to) or self.earlier
        if rework.to not in allowed:
            return (
                f"it named stage {rework.to!r}; stage {self.stage.name!r} may send work back "
                f"to: {', '.join(allowed) or '(no earlier stage)'}"
            )
        return None

    def _finish(self, step: _Step, result: Any, detail: dict[str, Any]) -> Command[Any]:
        rework = find_rework(result)
        if rework is not None:
            problem = self._rework_problem(rework)
            if problem is not None:
                raise ConfigurationError(
                    f"Stage {self.stage.name!r} asked for rework, but {problem}."
                )
            if step.reworks >= self.max_rework:
                raise ReworkLimitError(
                    f"Stage {self.stage.name!r} sent work back to {rework.to!r} again, but the "
                    f"pipeline allows max_rework={self.max_rework} per run. Last feedback: "
                    f"{rework.feedback or '-'}",
                    fix="Raise max_rework=..., or make the earlier stage meet the check.",
                )
            step.reworks += 1
            request = {**rework.model_dump(), "by": self.stage.name, "turn": step.turn}
            record = StageRecord(stage=self.stage.name, status="rework", detail=request)
            return self._route(step, rework.to, record, {"rework": request})
        value = check_output(result, self.stage.output, self.stage.name)
        record = StageRecord(stage=self.stage.name, status="done", detail=detail)
        update = {
            "stage_outputs": self._write(step, {self.stage.name: value}),
            **self._answer(render(value)),
        }
        return self._route(step, self.next, record, update)

    # -- agent / graph stages ---------------------------------------------------------
    def _accept(self, text: str) -> tuple[Any, str | None]:
        model = self.stage.output
        if model is None:
            return text, None
        try:
            value: BaseModel = parse_answer(text, model)
        except ValidationError as exc:
            return None, f"Your answer is not a valid {model.__name__} JSON object: {problems(exc)}"
        rework = find_rework(value)
        problem = self._rework_problem(rework) if rework is not None else None
        if problem is not None:
            return None, f"Your answer asks for rework, but {problem}"
        return value, None

    def _retry(self, output: Any, problem: str) -> list[AnyMessage]:
        return [
            *output.get("messages", []),
            HumanMessage(f"{problem}. Reply again with only the corrected JSON object."),
        ]

    # -- run events --------------------------------------------------------------------
    def _event(self, began: float, round_: int | None, **data: Any) -> dict[str, Any]:
        event = {"agent": self.label, "name": self.stage.name, "started_at": began, **data}
        if round_ is not None:
            event["round"] = round_
        return event

    def _started(self, config: RunnableConfig, step: _Step, began: float) -> None:
        data: dict[str, Any] = {"round": step.reworks, "action": self.stage.action}
        if step.inp.feedback:
            data["feedback"] = step.inp.feedback
        emit("stage_started", {"agent": self.label, "name": self.stage.name, **data}, config)

    def _ended(
        self, config: RunnableConfig, began: float, round_: int, command: Command[Any]
    ) -> Command[Any]:
        """Emit ``stage_finished`` (and ``rework``) for the stage's outcome."""
        update = command.update if isinstance(command.update, dict) else {}
        log = update.get("stage_log")
        records = log.value if isinstance(log, Overwrite) else log
        record: StageRecord | None = records[-1] if records else None
        if record is None:  # pragma: no cover - every route writes the stage's record
            return command
        detail = record["detail"]
        data: dict[str, Any] = {"outcome": record["status"]}
        for key in ("attempts", "replayed"):
            if key in detail:
                data[key] = detail[key]
        decision = detail.get("decision")
        if isinstance(decision, dict):  # skipped: what the human decided
            data["action"], data["by"] = decision.get("action"), decision.get("by")
            data["reason"] = decision.get("reason") or decision.get("message")
        if record["status"] == "rework":
            data["to"] = detail.get("to")
        emit("stage_finished", self._event(began, round_, **data), config)
        if record["status"] == "rework":
            rework = {
                "agent": self.label,
                "name": f"{self.stage.name} -> {detail.get('to')}",
                "from": self.stage.name,
                "to": detail.get("to"),
                "feedback": detail.get("feedback") or "",
                "round": round_ + 1,
            }
            emit("rework", rework, config)
        return command

    def _failed(
        self, config: RunnableConfig, began: float, round_: int | None, exc: Exception
    ) -> None:
        if isinstance(exc, GraphBubbleUp):  # an interrupt: a human is asked
            data: dict[str, Any] = {"status": "interrupted", "outcome": "interrupted"}
            data["interrupted"] = "waiting for a human"
        else:
            data = {"status": "error", "outcome": "error"}
            data["error"] = f"{type(exc).__name__}: {exc}"[:500]
        emit("stage_finished", self._event(began, round_, **data), config)

    # -- entry points ----------------------------------------------------------------
    def invoke(self, state: PipelineState, config: RunnableConfig) -> Command[Any]:
        began, round_ = time.time(), None
        try:
            step = self._begin(state)
            round_ = step.reworks
            self._started(config, step, began)
            command = self._invoke(state, config, step)
        except Exception as exc:
            self._failed(config, began, round_, exc)
            raise
        return self._ended(config, began, round_, command)

    async def ainvoke(self, state: PipelineState, config: RunnableConfig) -> Command[Any]:
        began, round_ = time.time(), None
        try:
            step = self._begin(state)
            round_ = step.reworks
            self._started(config, step, began)
            command = await self._ainvoke(state, config, step)
        except Exception as exc:
            self._failed(config, began, round_, exc)
            raise
        return self._ended(config, began, round_, command)

    def _invoke(self, state: PipelineState, config: RunnableConfig, step: _Step) -> Command[Any]:
        gated = self._gates(step, config)
        if gated is not None:
            return gated
        if self.function is not None:
            try:
                result = self.function(step.inp)
                if inspect.isawaitable(result):  # an async stage function under invoke()
                    close = getattr(result, "close", None)
                    if close is not None:
                        close()
                    raise ConfigurationError(
                        f"Stage {self.stage.name!r} is an async function; run the pipeline "
                        "with ainvoke/astream.",
                        fix="Call await app.ainvoke(...), or make the stage function synchronous.",
                    )
                return self._done(step, config, result, {})
            finally:
                self._release(step, config)
        runnable, tries = self._tries(state, config, step)
        try:
            request = next(tries)
            while True:
                request = tries.send(runnable.invoke(*request))
        except StopIteration as done:
            return cast(Command[Any], done.value)

    async def _ainvoke(
        self, state: PipelineState, config: RunnableConfig, step: _Step
    ) -> Command[Any]:
        # the gates use the synchronous ledger: a worker thread, never the event loop
        gated = await asyncio.to_thread(self._gates, step, config) if self.gate else None
        if gated is not None:
            return gated
        if self.function is not None:
            try:
                if inspect.iscoroutinefunction(self.function):
                    result = await self.function(step.inp)
                else:
                    result = await asyncio.to_thread(self.function, step.inp)
                return await asyncio.to_thread(self._done, step, config, result, {})
            finally:
                await asyncio.to_thread(self._release, step, config)
        runnable, tries = self._tries(state, config, step)
        try:
            request = next(tries)
            while True:
                request = tries.send(await runnable.ainvoke(*request))
        except StopIteration as done:
            return cast(Command[Any], done.value)

    def _tries(
        self, state: PipelineState, config: RunnableConfig, step: _Step
    ) -> tuple[Any, Generator[tuple[dict[str, Any], RunnableConfig], Any, Command[Any]]]:
        """The member and its attempts, retried while its answer is not valid output.

        The generator yields each attempt's input and config and is sent the
        member's output; it returns the stage's command, or raises
        :class:`~podium.errors.InvalidModelOutputError` after the last retry.
        """
        if self.runnable is None:  # pragma: no cover - a stage is a member or a function
            raise ConfigurationError(f"Stage {self.stage.name!r} has nothing to run.")

        def attempts() -> Generator[tuple[dict[str, Any], RunnableConfig], Any, Command[Any]]:
            messages = stage_prompt(self.stage, step.inp, edited_request=step.edited_request)
            text = problem = ""
            used = Usage()
            for attempt in range(1, self.stage.retries + 2):
                inner = run_config(
                    config, add_usage(state.get("usage"), used), self.policy, self.scope
                )
                output = yield {"messages": messages}, inner
                used = add_usage(used, usage_of(output))
                # a typed stage parses the answer itself, without notes a graph added
                text = final_answer(output) if self.stage.output is None else plain_answer(output)
                value, trouble = self._accept(text)
                if trouble is None:
                    return _with_usage(self._done(step, config, value, {"attempts": attempt}), used)
                problem, messages = trouble, self._retry(output, trouble)
            raise invalid_output(self.stage, text, problem)

        return self.runnable, attempts()

    def _done(
        self, step: _Step, config: RunnableConfig, result: Any, detail: dict[str, Any]
    ) -> Command[Any]:
        if self.gate is not None and step.run_key:
            rework = find_rework(result)
            stored = (
                {"rework": rework.model_dump()}
                if rework is not None and rework is result
                else {"value": to_json_value(result, self.stage.name)}
            )
            self.gate.finish(config, step.run_key, stored)
            step.run_key = ""
        return self._finish(step, result, detail)

    def _release(self, step: _Step, config: RunnableConfig) -> None:
        """A function action that raised may have acted: it stays in doubt."""
        if self.gate is not None and step.run_key:
            self.gate.finish(config, step.run_key, None)


def _with_usage(command: Command[Any], used: Usage) -> Command[Any]:
    """Add what an agent stage used to the stage's update."""
    update = dict(command.update) if isinstance(command.update, dict) else {}
    return Command(goto=command.goto, update={**update, "usage": used})


def _typed(stage: Stage) -> Member:
    """A stage's member; an Agent stage with ``output`` answers in that type.

    Setting :attr:`Agent.output <podium.Agent.output>` lets JSON tool calling
    constrain the answer by grammar, so a small model cannot get its shape wrong.
    """
    run = stage.run
    if isinstance(run, Agent) and stage.output is not None and run.output is None:
        return replace(run, output=stage.output)
    return run  # type: ignore[return-value]


def _shown(stage: Stage) -> dict[str, Any] | None:
    """What a stage's node shows in drawings (and carries as run metadata)."""
    shown: dict[str, Any] = {}
    if stage.output is not None:
        shown["output"] = stage.output.__name__
    if stage.action:
        shown["action"] = "approval first"
    return shown or None


def create_pipeline_graph(
    stages: Sequence[Stage],
    *,
    max_rework: int = 2,
    policy: Policy | None = None,
    name: str | None = None,
    description: str = "",
    budget: Budget | None = None,
) -> GovernedGraph[PipelineState, None, PipelineState, PipelineState]:
    """Run stages in order, each handing its (typed) output to the next.

    Every stage gets the conversation and the outputs of the stages before it (a
    function stage as a :class:`~podium.graphs.StageInput`; an agent or graph stage
    as a note appended to the conversation). With ``Stage(output=Model)`` an agent's
    answer must be JSON that validates as ``Model``: an invalid answer is sent back
    with the errors (``Stage.retries`` times), then the run fails with
    :class:`~podium.errors.InvalidModelOutputError`. A stage sends work back by
    returning :class:`~podium.graphs.Rework` (or a model whose ``rework`` field is
    set); the target stage and every stage after it run again, at most
    ``max_rework`` times per run. Before an ``action=True`` stage a human approves,
    edits (replacing what it acts on) or rejects (the stage is skipped and the reason
    recorded) through :func:`podium.runs.pending` / :func:`podium.runs.decide`; a
    function action's result is kept in the ledger, so a resumed step never acts twice.
    The last stage's output (JSON for models) is the pipeline's answer message; what
    happened at each stage is in ``stage_log``.

    Args:
        stages: The stages, in order; names must be unique.
        max_rework: How many times per run work may be sent back (then
            :class:`~podium.errors.ReworkLimitError`).
        policy: Applied to every tool call of every Agent stage; its ``approvers``
            and ``approval_timeout`` also govern the action gates.
        name: The graph's name as a member elsewhere (and its compiled name).
        description: What it does, for managers and handoff peers choosing it.
        budget: What the whole run may use (:class:`~podium.Budget`), every agent
            stage's calls included, checked before each model call.

    Returns:
        An uncompiled graph; compile it with ``.compile(checkpointer=...)``.

    Raises:
        ConfigurationError: No stages, duplicate names, a ``rework_to`` that does not
            name an earlier stage, or a bad ``max_rework``/``policy``.

    Example:
        >>> from pydantic import BaseModel
        >>> from podium import Agent
        >>> from podium.graphs import Stage, create_pipeline_graph
        >>> from podium.testing import ScriptedChatModel
        >>> class Facts(BaseModel):
        ...     facts: list[str]
        >>> research = Agent(name="research", model=ScriptedChatModel(['{"facts": ["a", "b"]}']))
        >>> count = Stage("count", lambda inp: f"{len(inp.previous.facts)} facts")
        >>> app = create_pipeline_graph([Stage("research", research, Facts), count]).compile()
        >>> app.invoke({"messages": [("user", "Research X")]})["messages"][-1].content
        '2 facts'
    """
    items = list(stages)
    check_stages(items, max_rework, policy)
    if name is not None:
        validate_name(name, "graph")
    members = [s.run for s in items if s.is_member]
    known = all_tool_names(members)
    graph: GovernedGraph[PipelineState, None, PipelineState, PipelineState] = GovernedGraph(
        PipelineState
    )
    graph.podium_name, graph.podium_description = name, description
    graph.podium_configurable = budget_binding("create_pipeline_graph", budget, name or "pipeline")
    for index, stage in enumerate(items):
        runnable = member_runnable(_typed(stage), known_tools=known) if stage.is_member else None
        node = _StageNode(items, index, runnable, name, policy, max_rework)
        graph.add_node(
            stage.name,
            RunnableLambda(node.invoke, afunc=node.ainvoke, name=stage.name),
            destinations=(node.next, *stage.rework_to),
            metadata=_shown(stage),
        )
    graph.add_edge(START, items[0].name)
    held = inventory_of(members) | Inventory(frozenset(), frozenset(), any(s.action for s in items))
    check_rule_names("create_pipeline_graph", policy, held)
    describe(graph, held)
    return graph
