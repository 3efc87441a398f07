"""What the model step's attempt loop asks its driver for, and how each is done.

:class:`~podium.agents._step.ModelStep` writes its attempt loop once, as a generator
that yields a :data:`Need` -- a pause, a model call, a human's say on a budget, the
middleware's hooks, a summary call -- and gets back the outcome. Each need knows how
to be done synchronously (``run``) and asynchronously (``arun``), side by side here,
so the sync and async drivers are the same few lines.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AnyMessage
from langchain_core.runnables import RunnableConfig
from langgraph.errors import GraphBubbleUp

from podium.agents._escalate import ask_budget
from podium.agents._failure import call_async, call_sync
from podium.agents._meter import Exhaustion
from podium.tools._policy import Policy

if TYPE_CHECKING:
    from podium.agents._calling import ModelCalls

__all__ = ["After", "Ask", "Before", "Call", "Failed", "Need", "Pause", "Prompt", "Summarize"]


@dataclass
class Failed:
    """An attempt (or a summary call) that raised ``error``."""

    error: Exception


@dataclass
class Prompt:
    """What one model call is sent (after the middleware's and the context policy's say)."""

    messages: list[AnyMessage]
    system: str
    state: Mapping[str, Any]
    """The state the ``before_model`` hooks left (what wrappers see)."""


@dataclass
class Call:
    """What the attempt loop asks its driver to run: one attempt with model ``index``."""

    index: int
    prompt: Prompt
    config: RunnableConfig
    timeout: float | None

    def run(self, step: ModelCalls) -> object:
        """The reply; a cut-off JSON reply's error; or :class:`Failed`."""
        try:
            return call_sync(lambda: step.invoke_model(self), self.timeout)
        except GraphBubbleUp:
            raise
        except Exception as exc:
            return _outcome(exc)

    async def arun(self, step: ModelCalls) -> object:
        """:meth:`run`, awaited."""
        try:
            return await call_async(lambda: step.ainvoke_model(self), self.timeout)
        except GraphBubbleUp:
            raise
        except Exception as exc:
            return _outcome(exc)


@dataclass
class Before:
    """The ``before_model`` hooks to run on ``state``."""

    state: Mapping[str, Any]

    def run(self, step: ModelCalls) -> object:
        """``(state, update, ended)`` from the hooks."""
        return step.middleware().run_before(self.state)

    async def arun(self, step: ModelCalls) -> object:
        """:meth:`run`, awaited."""
        return await step.middleware().arun_before(self.state)


@dataclass
class After:
    """The ``after_model`` hooks to run on ``state`` with the step's ``update``."""

    state: Mapping[str, Any]
    update: dict[str, Any]

    def run(self, step: ModelCalls) -> object:
        """The update as the hooks leave it."""
        return step.middleware().run_after(self.state, self.update)

    async def arun(self, step: ModelCalls) -> object:
        """:meth:`run`, awaited."""
        return await step.middleware().arun_after(self.state, self.update)


@dataclass
class Summarize:
    """A summary call of the context policy."""

    model: BaseChatModel
    prompt: list[Any]
    config: RunnableConfig

    def run(self, step: ModelCalls) -> object:
        """The summary reply, or :class:`Failed` (the policy then trims: nothing is lost)."""
        try:
            return self.model.invoke(self.prompt, self.config)
        except GraphBubbleUp:
            raise
        except Exception as exc:
            return Failed(exc)

    async def arun(self, step: ModelCalls) -> object:
        """:meth:`run`, awaited."""
        try:
            return await self.model.ainvoke(self.prompt, self.config)
        except GraphBubbleUp:
            raise
        except Exception as exc:
            return Failed(exc)


@dataclass
class Ask:
    """An exhausted budget to ask a human about (through the synchronous ledger)."""

    config: RunnableConfig
    agent: str
    exhausted: Exhaustion
    index: int
    policy: Policy | None

    def run(self, step: ModelCalls) -> object:
        """The human's decision, and the budget extension it grants (if any)."""
        return ask_budget(self.config, self.agent, self.exhausted, self.index, self.policy)

    async def arun(self, step: ModelCalls) -> object:
        """:meth:`run` in a worker thread (the ledger is synchronous), off the event loop."""
        return await asyncio.to_thread(self.run, step)


@dataclass
class Pause:
    """A delay before the next attempt (the failure policy's backoff)."""

    seconds: float

    def run(self, step: ModelCalls) -> object:
        """Sleep."""
        time.sleep(self.seconds)
        return None

    async def arun(self, step: ModelCalls) -> object:
        """Sleep without blocking the event loop."""
        await asyncio.sleep(self.seconds)
        return None


Need = Pause | Call | Ask | Before | After | Summarize
"""What the attempt loop asks its driver for: a pause, a model call, a human, the
middleware's hooks, a summary."""


def _outcome(exc: Exception) -> object:
    """A failed attempt's outcome: a cut-off JSON reply as is, else :class:`Failed`.

    The step turns a cut-off reply into an invalid call the model can retry.
    """
    return exc if isinstance(exc, openai.LengthFinishReasonError) else Failed(exc)
