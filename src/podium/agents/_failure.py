"""Failure policy: retries with backoff, fallback models, an alternate agent, a human.

When a model call fails, an agent with a :class:`FailurePolicy` works down a fixed
ladder, recording a run event (``retry``, ``fallback``, ``escalation``) at each rung:

1. **retry** the same model with exponential backoff and jitter, but only on
   *transient* errors (:func:`is_transient`: timeouts, HTTP 408/409/429/5xx,
   connection errors) and whatever ``retry_on`` adds;
2. **fall back** to the next model of ``fallbacks`` (on any error), which gets its
   own retries;
3. hand the conversation to an **alternate** agent (handoff graphs);
4. **escalate** to a human: the model step records the failure in the state and a
   separate ``escalate`` step interrupts, so resuming never re-runs the retries.

Why not LangChain's ``Runnable.with_retry``/``with_fallbacks`` or LangGraph's
``RetryPolicy``: ``with_retry`` filters by exception type only and exposes no hook
between attempts, where podium checks the budget and records the event;
``with_fallbacks`` binds every fallback the same way, while podium prepares each
model for its own tool-calling mode (native tools or JSON choice); ``RetryPolicy``
re-runs the whole node. Note also that LangGraph's default retry filter retries any
exception *except* ``ValueError``, ``TypeError`` and a few more -- so it retries an
HTTP 400 but never a parse error. podium retries only what is transient, plus
exactly what ``retry_on`` names.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import openai
from langchain_core.exceptions import ModelError as LangChainModelError
from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig

from podium.errors import ConfigurationError, ToolUnavailableError
from podium.observe import emit

__all__ = [
    "Attempt",
    "Attempts",
    "FailurePolicy",
    "call_async",
    "call_sync",
    "is_transient",
    "model_label",
]

T = TypeVar("T")

_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    TimeoutError,
    ConnectionError,
    httpx.TransportError,
    openai.APIConnectionError,  # includes APITimeoutError
    openai.RateLimitError,
    openai.InternalServerError,
    ToolUnavailableError,  # an MCP server that is down or dropped the connection
)
_TRANSIENT_STATUS = frozenset({408, 409, 429})


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same request may succeed.

    True for timeouts (``TimeoutError``, ``openai.APITimeoutError``, httpx timeouts),
    connection errors (``ConnectionError``, ``openai.APIConnectionError``,
    ``httpx.TransportError``, :class:`~podium.errors.ToolUnavailableError`), HTTP
    408, 409, 429 and 5xx (``openai.RateLimitError``,
    ``openai.InternalServerError``, ``httpx.HTTPStatusError``), and LangChain model
    errors marked ``is_retryable``. False for everything else -- notably
    validation and parsing errors, 400, 401, 403 and 404.
    """
    if isinstance(exc, _TRANSIENT_TYPES):
        return True
    status = None
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
    elif isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
    if status is not None:
        return status in _TRANSIENT_STATUS or status >= 500
    return isinstance(exc, LangChainModelError) and bool(exc.is_retryable)


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        value = headers.get("retry-after")
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True, kw_only=True)
class FailurePolicy:
    """What an agent does when its model fails: retry, fall back, hand off, escalate.

    Example:
        >>> policy = FailurePolicy(retries=3, fallbacks=["local"], model_timeout=30)
        >>> policy.escalate
        True
    """

    retries: int = 2
    """Retries per model after the first attempt, on transient errors only. Models podium
    builds from a spec (``"openai:..."``) get the OpenAI client's own retries turned
    off; a ``ChatOpenAI`` you pass keeps its ``max_retries`` (set it to 0)."""
    backoff: float = 0.5
    """Seconds before the first retry."""
    backoff_factor: float = 2.0
    """Each further retry waits this many times longer."""
    max_backoff: float = 20.0
    """The longest wait between attempts (a ``Retry-After`` header is honoured up to it)."""
    jitter: float = 0.5
    """Up to this fraction of each wait is removed at random (``1.0``: full jitter), so
    many clients that failed together do not retry together."""
    retry_on: tuple[type[BaseException], ...] | Callable[[BaseException], bool] = ()
    """More errors to retry besides the transient ones: exception types, or a
    predicate. Validation errors are *not* retried unless named here."""
    fallbacks: Sequence[str | BaseChatModel] = ()
    """Models tried in order after the agent's model failed (specs such as
    ``"openai:gpt-4.1-mini"`` or ``"local"``, or chat model objects). Each is prepared
    for its own tool-calling mode and gets its own retries."""
    alternate: str | None = None
    """An agent to hand the conversation to when every model failed. Honoured in a
    handoff graph (a ``transfer_to_<alternate>`` on the agent's behalf; the route must
    be allowed); elsewhere it is a configuration error."""
    escalate: bool = True
    """Ask a human when everything else failed (an ``escalation`` request with the
    error, attempts and models: approve = try again, respond = the message becomes the
    agent's answer, reject = stop with :class:`~podium.errors.ModelFailedError`).
    ``False``: raise at once. Needs a checkpointer, like every approval."""
    model_timeout: float | None = None
    """Seconds one model call may take; a timeout is transient (retry, fall back,
    escalate). Async calls are cancelled; a sync call's thread cannot be killed, so
    it finishes in the background and its reply is dropped."""
    tool_timeout: float | None = None
    """Seconds one tool call may take; the model then gets an error tool message.
    A sync tool's thread cannot be killed: it may still finish, and take effect,
    in the background (the message says so)."""
    max_invalid_replies: int | None = 3
    """Consecutive replies with unparseable tool calls (e.g. invalid JSON in JSON tool
    calling) allowed before escalating (or raising
    :class:`~podium.errors.InvalidModelOutputError`); each one goes back to the model
    as an error tool message first. ``None``: no bound but ``max_steps``."""

    def __post_init__(self) -> None:
        """Validate the numbers and normalise ``fallbacks`` to a tuple."""
        checks: list[tuple[str, object, bool]] = [
            ("retries", self.retries, False),
            ("backoff", self.backoff, True),
            ("backoff_factor", self.backoff_factor, True),
            ("max_backoff", self.max_backoff, True),
            ("jitter", self.jitter, True),
        ]
        for name, value, real in checks:
            kinds = (int, float) if real else (int,)
            if isinstance(value, bool) or not isinstance(value, kinds) or value < 0:
                raise ConfigurationError(
                    f"FailurePolicy({name}={value!r}): must be a non-negative "
                    f"{'number' if real else 'integer'}.",
                    fix=f"Pass e.g. FailurePolicy({name}={2 if not real else 0.5}).",
                )
        if self.jitter > 1:
            raise ConfigurationError(
                f"FailurePolicy(jitter={self.jitter!r}): a fraction from 0 to 1.",
                fix="Pass jitter=0.5 (half of each wait at random) or 1.0 (full jitter).",
            )
        for name in ("model_timeout", "tool_timeout"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
            ):
                raise ConfigurationError(
                    f"FailurePolicy({name}={value!r}): seconds (> 0) or None.",
                    fix=f"Pass e.g. {name}=30.",
                )
        bound = self.max_invalid_replies
        if bound is not None and (
            isinstance(bound, bool) or not isinstance(bound, int) or bound < 1
        ):
            raise ConfigurationError(
                f"FailurePolicy(max_invalid_replies={bound!r}): a positive integer or None.",
                fix="Pass max_invalid_replies=3.",
            )
        if not callable(self.retry_on) and not (
            isinstance(self.retry_on, tuple)
            and all(isinstance(t, type) and issubclass(t, BaseException) for t in self.retry_on)
        ):
            raise ConfigurationError(
                f"FailurePolicy(retry_on={self.retry_on!r}): a tuple of exception types or "
                "a function exception -> bool.",
                fix="Pass e.g. retry_on=(ValueError,).",
            )
        if isinstance(self.fallbacks, str | BaseChatModel):
            raise ConfigurationError(
                "FailurePolicy(fallbacks=...) takes a list of models, got a single one.",
                fix=f"Pass fallbacks=[{self.fallbacks!r}].",
            )
        object.__setattr__(self, "fallbacks", tuple(self.fallbacks))

    def retryable(self, exc: BaseException) -> bool:
        """Whether ``exc`` is retried: transient, or named by ``retry_on``."""
        if is_transient(exc):
            return True
        if callable(self.retry_on) and not isinstance(self.retry_on, tuple):
            return bool(self.retry_on(exc))
        return isinstance(exc, self.retry_on)

    def delay(self, retry: int, exc: BaseException | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        base = min(self.max_backoff, self.backoff * self.backoff_factor ** (retry - 1))
        told = _retry_after(exc) if exc is not None else None
        if told is not None:
            return min(self.max_backoff, max(base, told))
        return base * (1 - self.jitter * random.random())


def model_label(model: str | BaseChatModel) -> str:
    """A short name for a model spec or object (for events and escalations)."""
    if isinstance(model, str):
        return model
    for attr in ("model_name", "model"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(model).__name__


@dataclass(frozen=True)
class Attempt:
    """One attempt of a model step: which model, which try, after how long a wait."""

    model: int
    """Index into the agent's model chain (``0``: its own model, then fallbacks)."""
    number: int
    """1-based attempt number for that model."""
    delay: float = 0.0
    """Seconds to wait before sending it."""


@dataclass
class Attempts:
    """The retry and fallback schedule of one model step, and what went wrong.

    Args:
        policy: The agent's policy (``None``: one attempt, no fallback).
        labels: Names of the model chain, the agent's own model first.
        agent: The agent's name (for events).
        config: The node's config (for events).
    """

    policy: FailurePolicy | None
    labels: Sequence[str]
    agent: str
    config: RunnableConfig
    errors: list[dict[str, Any]] = field(default_factory=list)
    """``{"model", "attempt", "error"}`` per failed attempt."""
    exceptions: list[BaseException] = field(default_factory=list)
    """The exceptions, in order."""

    def first(self) -> Attempt:
        """The first attempt."""
        return Attempt(0, 1)

    def failed(self, attempt: Attempt, exc: BaseException) -> Attempt | None:
        """Record that ``attempt`` failed with ``exc``; the next attempt or ``None``."""
        error = f"{type(exc).__name__}: {exc}"[:500]
        self.exceptions.append(exc)
        self.errors.append(
            {"model": self.labels[attempt.model], "attempt": attempt.number, "error": error}
        )
        if self.policy is None:
            return None
        if self.policy.retryable(exc) and attempt.number <= self.policy.retries:
            wait = self.policy.delay(attempt.number, exc)
            emit(
                "retry",
                {
                    "agent": self.agent,
                    "name": self.labels[attempt.model],
                    "attempt": attempt.number + 1,
                    "delay": round(wait, 3),
                    "error": error,
                },
                self.config,
            )
            return Attempt(attempt.model, attempt.number + 1, wait)
        if attempt.model + 1 < len(self.labels):
            emit(
                "fallback",
                {
                    "agent": self.agent,
                    "name": self.labels[attempt.model + 1],
                    "from": self.labels[attempt.model],
                    "error": error,
                },
                self.config,
            )
            return Attempt(attempt.model + 1, 1)
        return None

    @property
    def all_transient(self) -> bool:
        """Whether every failure so far was transient."""
        return bool(self.exceptions) and all(is_transient(e) for e in self.exceptions)

    def summary(self) -> str:
        """The failures, one per line."""
        return "\n".join(f"- {e['model']} (try {e['attempt']}): {e['error']}" for e in self.errors)


def _timed_out(timeout: float) -> TimeoutError:
    return TimeoutError(f"the model call did not finish within {timeout:g}s")


def call_sync(fn: Callable[[], T], timeout: float | None) -> T:
    """Run ``fn``; with a timeout, in a worker thread we stop waiting for.

    Raises:
        TimeoutError: If ``fn`` did not finish within ``timeout`` seconds (its thread
            cannot be stopped and finishes in the background).
    """
    if timeout is None:
        return fn()
    pool = concurrent.futures.ThreadPoolExecutor(1, "podium-model-call")
    try:
        future = pool.submit(contextvars.copy_context().run, fn)
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            if future.done():  # finished at the last moment, or raised TimeoutError itself
                return future.result()
            raise _timed_out(timeout) from None
    finally:
        pool.shutdown(wait=False)


async def call_async(fn: Callable[[], Awaitable[T]], timeout: float | None) -> T:
    """Await ``fn()``, cancelling it after ``timeout`` seconds.

    Raises:
        TimeoutError: If it did not finish in time.
    """
    if timeout is None:
        return await fn()
    try:
        return await asyncio.wait_for(fn(), timeout)
    except TimeoutError as exc:
        if isinstance(exc.__cause__, asyncio.CancelledError):  # wait_for's own timeout
            raise _timed_out(timeout) from exc
        raise
