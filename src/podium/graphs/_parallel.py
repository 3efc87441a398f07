"""The parallel pattern: fan out to N branches, each in private state, then join.

Graph: ``START → fan_out ⇢ <branch>… → join → END``. ``fan_out`` clears the last
turn's results and sends the conversation to every branch (or to the ones
``select`` picks) with one ``Send`` each, so each branch is its own task: branches
run concurrently (asyncio tasks under ``ainvoke``; under ``invoke``, LangGraph's
thread pool, which podium sizes to the number of branches -- see
:class:`~podium.tools.GovernedApp`), and an interrupt in one branch never re-runs a
sibling on resume -- finished siblings' writes are already saved. A branch sees only
the conversation, never another branch's work; its outcome (``ok``, ``error`` or
``timeout``) lands in ``branch_results``. ``join`` checks the quorum and combines the answers.

Run events: each branch's outcome is a ``branch`` span (its ``agent`` is the branch,
as its agents' paths start), then ``quorum`` (who succeeded, who failed and why,
how many were required, whether that was met) and ``join`` (the join kind, and how
the answer was chosen: the vote tally, winner, tie, scores). When a branch failed
and the quorum was still met, the answer ends with a note saying which failed and
why (``join_result["failed"]`` and the message's ``podium_failed`` metadata hold the
same; ``podium_answer`` keeps the answer without the note).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal, NamedTuple, NoReturn, NotRequired

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.errors import GraphBubbleUp
from langgraph.graph import END, START
from langgraph.pregel import Pregel
from langgraph.types import Overwrite, Send
from typing_extensions import TypedDict

from podium.agents import Agent, Budget
from podium.agents._budget import (
    Usage,
    UsageChannel,
    UsageSink,
    add_usage,
    budget_binding,
    collect_usage,
    usage_of,
)
from podium.agents._spec import validate_name
from podium.checkpoints._messages import Messages
from podium.checkpoints._owners import process_owner
from podium.errors import ConfigurationError, QuorumNotMetError
from podium.graphs._joins import JoinFunction, final_answer, resolve_join
from podium.graphs._members import (
    Member,
    all_tool_names,
    check_members,
    check_rule_names,
    describe,
    inventory,
    inventory_of,
    member_runnable,
    member_scope,
    run_config,
)
from podium.observe import emit
from podium.tools import GovernedApp, GovernedGraph, Policy
from podium.tools._app import WIDTH_KEY
from podium.tools._decisions import Where, where

__all__ = ["BranchResult", "ParallelState", "create_parallel_graph"]

_RESERVED = ("fan_out", "join")


class BranchResult(TypedDict):
    """One branch's outcome in a parallel graph's ``branch_results``."""

    status: Literal["ok", "error", "timeout"]
    """``ok``; ``error`` (it raised); or ``timeout`` (it ran past ``branch_timeout``)."""
    may_still_act: NotRequired[bool]
    """For ``timeout``: the branch can run side effects and may still be running one
    (a sync tool's thread cannot be stopped). Its calls stay *in doubt* in the ledger
    until they finish; the same tool is not run again in the thread meanwhile."""
    answer: str
    """Its final answer (``""`` unless ``ok``)."""
    error: str
    """What went wrong (``""`` if ``ok``)."""
    seconds: float
    """How long it ran."""


def _merge_results(
    current: dict[str, BranchResult], update: dict[str, BranchResult]
) -> dict[str, BranchResult]:
    return {**current, **update}


class ParallelState(TypedDict):
    """State of a parallel graph."""

    messages: Messages
    """The conversation: the user's turns and the joined answers."""
    branch_results: NotRequired[Annotated[dict[str, BranchResult], _merge_results]]
    """This turn's outcome per branch that ran."""
    join_result: NotRequired[dict[str, Any]]
    """How this turn's answer was chosen (``join`` kind and its details)."""
    usage: NotRequired[UsageChannel]
    """What the run used, every branch's calls included."""


class _Branch:
    """A branch node: run the member on the conversation, record the outcome."""

    def __init__(
        self,
        name: str,
        runnable: Pregel[Any, Any, Any, Any],
        timeout: float | None,
        policy: Policy | None,
        effects: bool = True,
        *,
        graph: str = "parallel",
        scope: str | None = None,
    ):
        self.name = name
        self.runnable = runnable
        self.timeout = timeout
        self.policy = policy
        self.effects = effects
        self.graph, self.scope = graph, scope

    def _report(self, config: RunnableConfig, began: float, result: BranchResult | None) -> None:
        """The ``branch`` run event (``None``: interrupted, waiting for a human)."""
        outcome = result["status"] if result is not None else "interrupted"
        data: dict[str, Any] = {
            "agent": self.name,
            "name": self.graph,
            "started_at": began,
            "outcome": outcome,
            "status": outcome if outcome in ("ok", "interrupted") else "error",
        }
        if result is not None and result["error"]:
            data["error"] = result["error"]
        if result is not None and result.get("may_still_act"):
            data["may_still_act"] = True
        emit("branch", data, config)

    def invoke(self, inp: ParallelState, config: RunnableConfig) -> dict[str, Any]:
        began = time.time()
        try:
            update = self._invoke(inp, config)
        except GraphBubbleUp:
            self._report(config, began, None)
            raise
        self._report(config, began, update["branch_results"][self.name])
        return update

    async def ainvoke(self, inp: ParallelState, config: RunnableConfig) -> dict[str, Any]:
        began = time.time()
        try:
            update = await self._ainvoke(inp, config)
        except GraphBubbleUp:
            self._report(config, began, None)
            raise
        self._report(config, began, update["branch_results"][self.name])
        return update

    def _record(
        self, started: float, status: Literal["ok", "error", "timeout"], answer: str, error: str
    ) -> dict[str, Any]:
        result = BranchResult(
            status=status, answer=answer, error=error, seconds=time.monotonic() - started
        )
        return {"branch_results": {self.name: result}}

    def _ok(self, started: float, output: Any) -> dict[str, Any]:
        return {**self._record(started, "ok", final_answer(output), ""), "usage": usage_of(output)}

    def _failed(self, started: float, exc: Exception, sink: UsageSink) -> dict[str, Any]:
        # what the branch's model calls used before it failed counts (Budget, usage)
        failed = self._record(started, "error", "", f"{type(exc).__name__}: {exc}")
        return {**failed, "usage": sink.usage}

    def _timed_out(self, started: float, sink: UsageSink) -> dict[str, Any]:
        error = f"timed out after {self.timeout:g}s"
        if self.effects:
            error += "; it may still be running, and acting, in the background"
        update = self._record(started, "timeout", "", error)
        update["branch_results"][self.name]["may_still_act"] = self.effects
        return {**update, "usage": sink.usage}

    def _invoke(self, inp: ParallelState, config: RunnableConfig) -> dict[str, Any]:
        payload, started = {"messages": inp["messages"]}, time.monotonic()
        config, sink = collect_usage(run_config(config, inp.get("usage"), self.policy, self.scope))
        try:
            if self.timeout is None:
                output = self.runnable.invoke(payload, config)
            else:
                # A thread we can stop waiting for; a sync branch cannot be killed, so a
                # timed-out one finishes in the background and its result is dropped.
                pool = concurrent.futures.ThreadPoolExecutor(1, f"podium-{self.name}")
                try:
                    ctx = contextvars.copy_context()
                    future = pool.submit(ctx.run, lambda: self.runnable.invoke(payload, config))
                    done, _ = concurrent.futures.wait([future], timeout=self.timeout)
                finally:
                    pool.shutdown(wait=False)
                if not done:
                    return self._timed_out(started, sink)
                output = future.result()
        except GraphBubbleUp:
            raise
        except Exception as exc:
            return self._failed(started, exc, sink)
        return self._ok(started, output)

    async def _ainvoke(self, inp: ParallelState, config: RunnableConfig) -> dict[str, Any]:
        payload, started = {"messages": inp["messages"]}, time.monotonic()
        config, sink = collect_usage(run_config(config, inp.get("usage"), self.policy, self.scope))
        task = asyncio.ensure_future(self.runnable.ainvoke(payload, config))
        try:
            done, _ = await asyncio.wait({task}, timeout=self.timeout)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not done:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return self._timed_out(started, sink)
        try:
            output = task.result()
        except GraphBubbleUp:
            raise
        except Exception as exc:
            return self._failed(started, exc, sink)
        return self._ok(started, output)


class _Tally(NamedTuple):
    """Who of the branches that ran succeeded, who failed (and why), how many must succeed."""

    succeeded: list[str]
    failed: dict[str, str]
    required: int

    @property
    def met(self) -> bool:
        return len(self.succeeded) >= self.required


class _Join:
    """The ``join`` node: enforce the quorum, then combine the answers.

    When fewer branches succeeded than the quorum asks, it raises
    :class:`~podium.errors.QuorumNotMetError` and remembers that in the ledger; when
    the thread is resumed (``invoke(None)``, ``runs.resume``) the step runs again and
    re-runs only the failed branches before it checks the quorum anew.
    """

    def __init__(
        self,
        join: JoinFunction | Pregel[Any, Any, Any, Any],
        kind: str,
        order: Sequence[str],
        quorum: int | None,
        graph: str | None,
        policy: Policy | None,
        branches: Mapping[str, _Branch],
    ) -> None:
        self.join = join
        self.kind, self.order, self.quorum, self.graph = kind, list(order), quorum, graph
        self.policy, self.branches = policy, branches
        self.label = graph or "parallel"

    # -- the quorum --------------------------------------------------------------------
    def _ran(self, state: ParallelState, retried: Mapping[str, BranchResult]) -> dict[str, Any]:
        results = {**(state.get("branch_results") or {}), **retried}
        return {n: results[n] for n in self.order if n in results}

    def _tally(self, ran: Mapping[str, BranchResult]) -> _Tally:
        ok = [n for n, r in ran.items() if r["status"] == "ok"]
        failed = {n: r["error"] or r["status"] for n, r in ran.items() if r["status"] != "ok"}
        required = len(ran) if self.quorum is None else min(self.quorum, len(ran))
        return _Tally(ok, failed, required)

    def _shortfall(self, ran: Mapping[str, BranchResult]) -> str | None:
        tally = self._tally(ran)
        if tally.met:
            return None
        failed = ", ".join(f"{n} ({error})" for n, error in tally.failed.items())
        return (
            f"Only {len(tally.succeeded)} of {len(ran)} branches of "
            f"{self.graph or 'the parallel graph'} succeeded; {tally.required} must "
            f"(quorum={self.quorum}). Failed: {failed}."
        )

    def _report(
        self, config: RunnableConfig, ran: Mapping[str, BranchResult], retried: Sequence[str]
    ) -> None:
        """The ``quorum`` run event: who succeeded, who failed and why, whether it was met."""
        tally = self._tally(ran)
        data: dict[str, Any] = {
            "agent": self.label,
            "name": "quorum",
            "status": "ok" if tally.met else "error",
            "met": tally.met,
            "required": tally.required,
            "quorum": self.quorum,
            "succeeded": tally.succeeded,
            "failed": tally.failed,
            "ran": len(ran),
        }
        if retried:
            data["retried"] = list(retried)
        emit("quorum", data, config)

    @staticmethod
    def _marker(state: ParallelState, config: RunnableConfig) -> tuple[Where, str] | None:
        at = where(config)
        if not at.thread:
            return None
        human = next((m for m in reversed(state["messages"]) if isinstance(m, HumanMessage)), None)
        return at, f"{at.path}|quorum|{human.id if human else '-'}"

    def _failed_before(self, state: ParallelState, config: RunnableConfig) -> bool:
        marker = self._marker(state, config)
        return (
            marker is not None
            and marker[0].ledger.get_call(marker[0].thread, marker[1]) is not None
        )

    def _remember(self, state: ParallelState, config: RunnableConfig, problem: str) -> None:
        marker = self._marker(state, config)
        if marker is not None:
            at, key = marker
            at.ledger.claim_call(at.thread, key, "join", "-", process_owner(), lease=at.lease)
            at.ledger.finish_call(at.thread, key, {"content": problem, "status": "error"})

    def _retry_input(self, state: ParallelState) -> ParallelState:
        return ParallelState(messages=state["messages"], usage=state.get("usage") or Usage())

    @staticmethod
    def _merged(updates: Sequence[dict[str, Any]]) -> tuple[dict[str, BranchResult], Usage]:
        results: dict[str, BranchResult] = {}
        used = Usage()
        for update in updates:
            results.update(update["branch_results"])
            used = add_usage(used, update.get("usage"))
        return results, used

    def _raise(self, problem: str) -> NoReturn:
        raise QuorumNotMetError(
            problem,
            fix="Fix or time-box the failing branches and resume the thread (invoke(None) or "
            "runs.resume): only the failed branches run again. Or lower quorum=...; each "
            "branch's outcome is in the state's 'branch_results'.",
        )

    def _settle(self, state: ParallelState, config: RunnableConfig) -> dict[str, Any]:
        ran = self._ran(state, {})
        problem = self._shortfall(ran)
        retried: dict[str, Any] = {}
        again: list[str] = []
        if problem and self._failed_before(state, config):  # resumed: re-run the failed
            again = [n for n, r in ran.items() if r["status"] != "ok"]
            inp = self._retry_input(state)
            results, used = self._merged([self.branches[n].invoke(inp, config) for n in again])
            retried = {"branch_results": results, "usage": used}
            problem = self._shortfall(ran := self._ran(state, results))
        self._report(config, ran, again)
        if problem:
            self._remember(state, config, problem)
            self._raise(problem)
        return {"ran": ran, "update": retried}

    async def _asettle(self, state: ParallelState, config: RunnableConfig) -> dict[str, Any]:
        ran = self._ran(state, {})
        problem = self._shortfall(ran)
        retried: dict[str, Any] = {}
        again: list[str] = []
        failed_before = problem is not None and await asyncio.to_thread(
            self._failed_before, state, config
        )
        if problem and failed_before:
            again = [n for n, r in ran.items() if r["status"] != "ok"]
            inp = self._retry_input(state)
            updates = await asyncio.gather(*(self.branches[n].ainvoke(inp, config) for n in again))
            results, used = self._merged(list(updates))
            retried = {"branch_results": results, "usage": used}
            problem = self._shortfall(ran := self._ran(state, results))
        self._report(config, ran, again)
        if problem:
            await asyncio.to_thread(self._remember, state, config, problem)
            self._raise(problem)
        return {"ran": ran, "update": retried}

    # -- the answer --------------------------------------------------------------------
    def _prompt(self, state: ParallelState, ran: Mapping[str, BranchResult]) -> list[AnyMessage]:
        parts = []
        for n, r in ran.items():
            body = r["answer"].strip() if r["status"] == "ok" else f"(failed: {r['error']})"
            parts.append(f"## {n}\n{body}")
        note = (
            "Results from the parallel branches, each of which worked on the request "
            "independently:\n\n" + "\n\n".join(parts) + "\n\nWrite the final answer to the "
            "request from these results."
        )
        return [*state["messages"], HumanMessage(note)]

    @staticmethod
    def _note(ran: Mapping[str, BranchResult], tally: _Tally) -> str:
        """What the answer says about the branches that failed."""
        parts = []
        for n, error in tally.failed.items():
            if ran[n].get("may_still_act"):
                parts.append(
                    f"{n} timed out and may still be acting in the background (its calls "
                    "are in doubt until they finish)"
                )
            else:
                parts.append(f"{n} ({error[:300]})")
        return f"(Note: {len(tally.failed)} of {len(ran)} branches failed: {'; '.join(parts)}.)"

    def _finish(
        self,
        config: RunnableConfig,
        answer: str,
        details: Mapping[str, Any],
        settled: dict[str, Any],
    ) -> dict[str, Any]:
        ran: Mapping[str, BranchResult] = settled["ran"]
        tally = self._tally(ran)
        acting = [n for n, r in ran.items() if r.get("may_still_act")]
        info: dict[str, Any] = {"join": self.kind, **details}
        meta: dict[str, Any] = {}
        if acting:  # the user must know: a timed-out branch may still take effect
            info["may_still_act"] = meta["podium_may_still_act"] = acting
        if tally.failed:  # ... and which branches failed, though the quorum was met
            info["failed"] = meta["podium_failed"] = tally.failed
            meta["podium_answer"] = answer
            answer += "\n\n" + self._note(ran, tally)
        emit(
            "join",
            {
                "agent": self.label,
                "name": self.kind,
                "succeeded": tally.succeeded,
                "failed": tally.failed,
                "result": dict(details),
            },
            config,
        )
        kwargs: dict[str, Any] = {"response_metadata": meta}
        if self.graph:
            kwargs["name"] = self.graph
        update = {"messages": [AIMessage(answer, **kwargs)], "join_result": info}
        return {**settled["update"], **update}

    def _combine(
        self, config: RunnableConfig, function: JoinFunction, settled: dict[str, Any]
    ) -> dict[str, Any]:
        answers = {n: r["answer"] for n, r in settled["ran"].items() if r["status"] == "ok"}
        raw = function(answers)
        if isinstance(raw, str):
            return self._finish(config, raw, {}, settled)
        if isinstance(raw, Mapping) and isinstance(raw.get("answer"), str):
            details = {k: v for k, v in raw.items() if k != "answer"}
            return self._finish(config, raw["answer"], details, settled)
        raise ConfigurationError(
            f"The join function {self.kind!r} returned {raw!r:.80}; a join returns the final "
            "answer as a str, or a mapping with an 'answer' str (and details).",
            fix="Return a str from the join function.",
        )

    def _synthesised(
        self, config: RunnableConfig, settled: dict[str, Any], output: Any, agent: str
    ) -> dict[str, Any]:
        done = self._finish(config, final_answer(output), {"agent": agent}, settled)
        return {**done, "usage": add_usage(settled["update"].get("usage"), usage_of(output))}

    def invoke(self, state: ParallelState, config: RunnableConfig) -> dict[str, Any]:
        settled = self._settle(state, config)
        if not isinstance(self.join, Pregel):
            return self._combine(config, self.join, settled)
        inner = run_config(config, state.get("usage"), self.policy)
        output = self.join.invoke({"messages": self._prompt(state, settled["ran"])}, inner)
        return self._synthesised(config, settled, output, self.join.name)

    async def ainvoke(self, state: ParallelState, config: RunnableConfig) -> dict[str, Any]:
        settled = await self._asettle(state, config)
        if not isinstance(self.join, Pregel):
            return self._combine(config, self.join, settled)
        inner = run_config(config, state.get("usage"), self.policy)
        output = await self.join.ainvoke({"messages": self._prompt(state, settled["ran"])}, inner)
        return self._synthesised(config, settled, output, self.join.name)


class _ParallelGraph(GovernedGraph[ParallelState, None, ParallelState, ParallelState]):
    """A parallel graph; ``compile`` also applies the factory's ``max_concurrency``."""

    podium_max_concurrency: int | None = None

    def compile(self, checkpointer: Any = None, **kwargs: Any) -> GovernedApp:
        """Compile as :meth:`GovernedGraph.compile`; bind ``max_concurrency`` as config."""
        compiled = super().compile(checkpointer, **kwargs)
        if self.podium_max_concurrency is None:
            return compiled
        return compiled.with_config({"max_concurrency": self.podium_max_concurrency})


def _check_options(
    names: Sequence[str],
    quorum: int | None,
    branch_timeout: float | None,
    select: object,
    max_concurrency: int | None,
    policy: object,
) -> None:
    for reserved in _RESERVED:
        if reserved in names:
            raise ConfigurationError(
                f"A branch is named {reserved!r}, which the parallel graph uses for its "
                f"own node; reserved names: {', '.join(_RESERVED)}.",
                fix="Rename the branch.",
            )
    if quorum is not None and (
        isinstance(quorum, bool) or not isinstance(quorum, int) or not 1 <= quorum <= len(names)
    ):
        raise ConfigurationError(
            f"quorum={quorum!r} is not allowed: it is how many branches must succeed, a whole "
            f"number from 1 to the number of branches ({len(names)}).",
            fix=f"Pass quorum=1..{len(names)}, or None to require every branch that runs.",
        )
    if branch_timeout is not None and (
        isinstance(branch_timeout, bool)
        or not isinstance(branch_timeout, int | float)
        or branch_timeout <= 0
    ):
        raise ConfigurationError(
            f"branch_timeout={branch_timeout!r} is not allowed; it is seconds per branch (> 0).",
            fix="Pass e.g. branch_timeout=30, or None for no limit.",
        )
    if select is not None and not callable(select):
        raise ConfigurationError(
            f"select={select!r} is not a function; it maps the state to branch names.",
            fix="Pass select=lambda state: ['branch_a', 'branch_b'], or None for every branch.",
        )
    if max_concurrency is not None and (
        isinstance(max_concurrency, bool)
        or not isinstance(max_concurrency, int)
        or max_concurrency < 1
    ):
        raise ConfigurationError(
            f"max_concurrency={max_concurrency!r} is not allowed; it is a positive integer.",
            fix="Pass e.g. max_concurrency=4, or None for no limit.",
        )
    if policy is not None and not isinstance(policy, Policy):
        raise ConfigurationError(
            f"policy must be a podium Policy, got {type(policy).__name__}.",
            fix="Pass Policy(rules=[Rule(...)]).",
        )


def _selector(
    select: Callable[[ParallelState], Sequence[str]] | None, names: Sequence[str]
) -> Callable[[ParallelState], list[Send]]:
    def route(state: ParallelState) -> list[Send]:
        chosen = list(names) if select is None else select(state)
        if isinstance(chosen, str) or not isinstance(chosen, Sequence):
            raise ConfigurationError(
                f"select returned {chosen!r}; it must return a list of branch names.",
                fix=f"Return a list drawn from: {', '.join(names)}.",
            )
        unknown = [c for c in chosen if c not in names]
        if unknown or not chosen or len(set(chosen)) != len(chosen):
            what = f"unknown branch(es) {unknown}" if unknown else f"{list(chosen)!r}"
            raise ConfigurationError(
                f"select returned {what}; it must return one or more distinct branch names.",
                fix=f"Return a non-empty list drawn from: {', '.join(names)}.",
            )
        request = list(state["messages"])
        usage = state.get("usage") or {}
        return [Send(n, {"messages": request, "usage": usage}) for n in names if n in chosen]

    return route


def create_parallel_graph(
    branches: Sequence[Member],
    *,
    join: Literal["concat", "vote"] | JoinFunction | Agent = "concat",
    quorum: int | None = None,
    branch_timeout: float | None = None,
    select: Callable[[ParallelState], Sequence[str]] | None = None,
    max_concurrency: int | None = None,
    policy: Policy | None = None,
    name: str | None = None,
    description: str = "",
    budget: Budget | None = None,
) -> GovernedGraph[ParallelState, None, ParallelState, ParallelState]:
    """Fan the conversation out to several branches at once, then join their answers.

    Each branch (an :class:`~podium.Agent` or any pattern graph) gets the
    conversation in private state -- never another branch's work -- and runs as its
    own task, concurrently with the others. Its outcome is recorded in
    ``branch_results`` (:class:`BranchResult`); a branch that raises or outlives
    ``branch_timeout`` counts as failed, which is not fatal while ``quorum``
    branches succeed. An approval inside one branch interrupts the run; on resume
    only that branch continues.

    Args:
        branches: The branches; names must be unique (a graph needs ``name=``).
        join: How answers become the final answer: ``"concat"`` (each answer under
            a ``## <branch>`` heading, in branch order); ``"vote"`` (the plurality
            answer after normalising each with :func:`~podium.graphs.ballot` --
            JSON canonicalised, text case-folded; a tie is reported in the answer
            and ``join_result``); ``best_of(scorer)``; a function
            ``{branch: answer} -> str`` (or a mapping with ``"answer"`` and details
            for ``join_result``); or an ``Agent`` that receives every branch's
            result and writes the answer. Joins see successful branches only.
        quorum: How many branches must succeed (default: every branch that runs;
            with ``select``, at most the number selected).
        branch_timeout: Seconds a branch may run before it counts as failed.
        select: ``state -> [branch names]`` chooses the branches each turn
            (default: all).
        max_concurrency: At most this many branches run at once (LangGraph's
            ``max_concurrency`` config, bound at compile; a value passed in the
            invoke config wins). Default: no limit -- every branch runs at once,
            under ``ainvoke`` as asyncio tasks and under ``invoke`` in a thread pool
            podium sizes to the number of branches (LangGraph's default pool has
            ``min(32, CPUs + 4)`` threads).
        policy: Applied to every tool call of every Agent branch and the synthesiser.
        name: The graph's name as a member elsewhere (and its compiled name).
        description: What it does, for managers and handoff peers choosing it.
        budget: What the whole run may use (:class:`~podium.Budget`), every
            branch's calls included. Branches run at once and see each other's
            usage only after they return, so together they may overshoot it.

    Returns:
        An uncompiled graph; compile it with ``.compile(checkpointer=...)``.

    Raises:
        ConfigurationError: No branches, duplicate or reserved names, a bad
            quorum, join, timeout or concurrency; at run time, ``select`` naming
            unknown branches.
        QuorumNotMetError: At run time, when fewer than ``quorum`` branches succeed.

    Example:
        >>> from podium import Agent
        >>> from podium.graphs import create_parallel_graph
        >>> from podium.testing import ScriptedChatModel
        >>> pros = Agent(name="pros", model=ScriptedChatModel(["Cheap."]))
        >>> cons = Agent(name="cons", model=ScriptedChatModel(["Slow."]))
        >>> app = create_parallel_graph([pros, cons]).compile()
        >>> print(app.invoke({"messages": [("user", "Trains?")]})["messages"][-1].content)
        ## pros
        Cheap.
        <BLANKLINE>
        ## cons
        Slow.
    """
    members = list(branches)
    names = check_members(members, "branches")
    if name is not None:
        validate_name(name, "graph")
    _check_options(names, quorum, branch_timeout, select, max_concurrency, policy)
    known = all_tool_names([*members, join])
    join_fn, kind = resolve_join(join, policy, known)

    graph = _ParallelGraph(ParallelState)
    graph.podium_name, graph.podium_description = name, description
    graph.podium_configurable = {
        **(budget_binding("create_parallel_graph", budget, name or "parallel") or {}),
        WIDTH_KEY: len(names),  # sync runs get a thread per branch (GovernedApp)
    }
    graph.podium_max_concurrency = max_concurrency

    def fan_out(state: ParallelState) -> dict[str, Any]:
        return {"branch_results": Overwrite({}), "join_result": {}}

    graph.add_node("fan_out", fan_out, metadata={"select": "run time"} if select else None)
    graph.add_edge(START, "fan_out")
    graph.add_conditional_edges("fan_out", _selector(select, names), names)
    nodes: dict[str, _Branch] = {}
    for branch_name, member in zip(names, members, strict=True):
        node = nodes[branch_name] = _Branch(
            branch_name,
            member_runnable(member, known_tools=known),
            branch_timeout,
            policy,
            inventory(member).effects,
            graph=name or "parallel",
            scope=member_scope(member),
        )
        graph.add_node(
            branch_name,
            RunnableLambda(node.invoke, afunc=node.ainvoke, name=branch_name),
            metadata={"timeout": f"{branch_timeout:g}s"} if branch_timeout else None,
        )
        graph.add_edge(branch_name, "join")
    joiner = _Join(join_fn, kind, names, quorum, name, policy, nodes)
    shown = {"join": kind, **({"quorum": quorum} if quorum is not None else {})}
    graph.add_node(
        "join", RunnableLambda(joiner.invoke, afunc=joiner.ainvoke, name="join"), metadata=shown
    )
    graph.add_edge("join", END)
    held = inventory_of([*members, *([join] if isinstance(join, Agent) else [])])
    check_rule_names("create_parallel_graph", policy, held)
    describe(graph, held)
    return graph
