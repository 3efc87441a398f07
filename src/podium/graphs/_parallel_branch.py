"""A parallel graph's state and its branch nodes (see :mod:`podium.graphs._parallel`).

Each branch runs its member on the conversation in private state, under the
branch's timeout, and records its outcome (:class:`BranchResult`: ``ok``,
``error`` or ``timeout``) in ``branch_results``, with a ``branch`` run event.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import time
from typing import Annotated, Any, Literal, NotRequired

from langchain_core.runnables import RunnableConfig
from langgraph.errors import GraphBubbleUp
from langgraph.pregel import Pregel
from typing_extensions import TypedDict

from podium.agents._budget import (
    UsageChannel,
    UsageSink,
    collect_usage,
    usage_of,
)
from podium.checkpoints._messages import Messages
from podium.graphs._joins import final_answer
from podium.graphs._members import run_config
from podium.observe import emit
from podium.tools import Policy

__all__ = ["BranchNode", "BranchResult", "ParallelState"]


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


class BranchNode:
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
