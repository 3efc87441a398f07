"""Start, inspect and resume runs: the helpers behind the CLI and the notebooks.

``pending`` lists what a thread waits for; ``decide`` validates decisions strictly
and resumes. Every check happens before anything is sent to the graph, so an
unknown thread, an unknown or stale request id, or a malformed decision raises a
clear :class:`~podium.errors.ApprovalError` and changes nothing.

Example:
    >>> from podium import runs  # doctest: +SKIP
    >>> for request in runs.pending(app, config):  # doctest: +SKIP
    ...     print(request.id, request.tool, request.args)
    >>> runs.decide(app, config, {request.id: Decision.approve(by="alice")})  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.pregel import Pregel
from langgraph.types import Command, StateSnapshot

from podium.errors import ConfigurationError, UnknownRequestError, UnknownThreadError
from podium.tools import ApprovalRequest, Decision
from podium.tools._executor import current_ledger

__all__ = ["RunInfo", "decide", "inspect", "pending", "resume"]


def _thread(config: RunnableConfig) -> str:
    thread = (config.get("configurable") or {}).get("thread_id")
    if not thread:
        raise ConfigurationError(
            "The config has no thread_id; runs are addressed by thread.",
            fix='Pass config={"configurable": {"thread_id": "..."}}.',
        )
    return str(thread)


def _snapshot(app: Pregel[Any, Any, Any, Any], config: RunnableConfig) -> StateSnapshot:
    thread = _thread(config)
    if app.checkpointer is None or app.checkpointer is True or app.checkpointer is False:
        raise ConfigurationError(
            "This graph was compiled without a checkpointer, so its runs cannot pause or resume.",
            fix="Compile with a checkpointer, e.g. .compile(checkpointer=sqlite_saver(path)).",
        )
    snapshot = app.get_state(config)
    if snapshot.created_at is None:
        raise UnknownThreadError(
            f"Thread {thread!r} has no saved state: it never ran on this checkpointer, or "
            "it was deleted.",
            fix="Check the thread id and that the graph uses the same database file.",
        )
    return snapshot


def _requests(snapshot: StateSnapshot) -> dict[str, tuple[ApprovalRequest, str]]:
    found: dict[str, tuple[ApprovalRequest, str]] = {}
    for item in snapshot.interrupts:
        if ApprovalRequest.is_request(item.value):
            request = ApprovalRequest.from_json(item.value)
            found[request.id] = (request, item.id)
    return found


def pending(app: Pregel[Any, Any, Any, Any], config: RunnableConfig) -> list[ApprovalRequest]:
    """The approval requests the thread is waiting for, oldest first.

    Raises:
        UnknownThreadError: If the thread has no saved state.
    """
    return [request for request, _ in _requests(_snapshot(app, config)).values()]


def _not_pending(
    app: Pregel[Any, Any, Any, Any], thread: str, request_id: str, open_ids: list[str]
) -> UnknownRequestError:
    for record in current_ledger(app.config).approvals(thread):
        if record.request.get("id") == request_id and record.decision is not None:
            done = Decision.parse(record.decision)
            return UnknownRequestError(
                f"Request {request_id!r} on thread {thread!r} was already decided "
                f"({done.action} by {done.by}); a decision is final.",
                fix="Nothing to do; run `podium inspect` to see the thread's state.",
            )
    listing = ", ".join(open_ids) or "none"
    return UnknownRequestError(
        f"Request {request_id!r} is not pending on thread {thread!r} (unknown, stale, or "
        f"for another thread). Pending requests: {listing}.",
        fix="List them with runs.pending(app, config) or `podium pending THREAD`.",
    )


def decide(
    app: Pregel[Any, Any, Any, Any],
    config: RunnableConfig,
    decisions: Mapping[str, Decision | Mapping[str, Any]],
) -> dict[str, Any]:
    """Validate decisions for pending requests, then resume the run with them.

    Requests left out stay pending (the run interrupts again for them).

    Args:
        app: The compiled graph.
        config: Its config with ``thread_id``.
        decisions: ``{request_id: Decision or its JSON form}``.

    Returns:
        The graph's output: the final state, or the state with ``__interrupt__``
        when the run waits again.

    Raises:
        UnknownThreadError: The thread has no saved state.
        UnknownRequestError: A request id is unknown, stale, already decided, or
            belongs to another thread.
        InvalidDecisionError: A decision is malformed.
        ApproverNotAllowedError: The approver may not decide that request.
    """
    thread = _thread(config)
    if not isinstance(decisions, Mapping) or not decisions:
        raise UnknownRequestError(
            "decide() needs a mapping {request_id: decision} with at least one entry.",
            fix="Call runs.pending(app, config) to get the request ids.",
        )
    open_requests = _requests(_snapshot(app, config))
    resume: dict[str, Any] = {}
    for request_id, raw in decisions.items():
        if request_id not in open_requests:
            raise _not_pending(app, thread, request_id, list(open_requests))
        request, interrupt_id = open_requests[request_id]
        decision = Decision.parse(dict(raw) if isinstance(raw, Mapping) else raw)
        request.check_approver(decision.by)
        resume[interrupt_id] = decision.to_json()
    result: dict[str, Any] = app.invoke(Command(resume=resume), config)
    return result


def resume(app: Pregel[Any, Any, Any, Any], config: RunnableConfig) -> dict[str, Any]:
    """Continue a thread from its last checkpoint (after a crash or a stopped model).

    Raises:
        UnknownThreadError: If the thread has no saved state.
    """
    _snapshot(app, config)
    result: dict[str, Any] = app.invoke(None, config)
    return result


@dataclass(frozen=True)
class RunInfo:
    """What a thread looks like now."""

    thread_id: str
    """The thread."""
    next: tuple[str, ...]
    """Nodes that run when the thread resumes (empty: finished)."""
    pending: list[ApprovalRequest]
    """Requests waiting for a human."""
    values: dict[str, Any]
    """The current state values."""
    step: int | None
    """The step counter of the latest checkpoint."""


def inspect(app: Pregel[Any, Any, Any, Any], config: RunnableConfig) -> RunInfo:
    """Describe a thread: its state, the next step, and pending requests.

    Raises:
        UnknownThreadError: If the thread has no saved state.
    """
    snapshot = _snapshot(app, config)
    step = (snapshot.metadata or {}).get("step")
    return RunInfo(
        thread_id=_thread(config),
        next=tuple(snapshot.next),
        pending=[r for r, _ in _requests(snapshot).values()],
        values=dict(snapshot.values) if isinstance(snapshot.values, dict) else {},
        step=step if isinstance(step, int) else None,
    )
