"""A parallel graph's ``join`` node (see :mod:`podium.graphs._parallel`).

It checks the quorum over the branches' outcomes (``quorum`` run event), re-runs
failed branches when asked, and combines the answers with the join function
(``join`` run event), noting which branches failed and why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, NoReturn

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.pregel import Pregel

from podium.agents._budget import (
    Usage,
    add_usage,
    usage_of,
)
from podium.checkpoints._owners import process_owner
from podium.errors import ConfigurationError, QuorumNotMetError
from podium.graphs._joins import JoinFunction, final_answer
from podium.graphs._members import run_config
from podium.graphs._parallel_branch import BranchNode, BranchResult, ParallelState
from podium.observe import emit
from podium.tools import Policy
from podium.tools._decisions import Where, where

__all__ = ["JoinNode"]


class _Tally(NamedTuple):
    """Who of the branches that ran succeeded, who failed (and why), how many must succeed."""

    succeeded: list[str]
    failed: dict[str, str]
    required: int

    @property
    def met(self) -> bool:
        return len(self.succeeded) >= self.required


class JoinNode:
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
        branches: Mapping[str, BranchNode],
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
