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

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.pregel import Pregel
from langgraph.types import Command, StateSnapshot

from podium.checkpoints._threads import source_of
from podium.errors import (
    AlreadyDecidedError,
    ConfigurationError,
    InvalidDecisionError,
    UnknownRequestError,
    UnknownThreadError,
)
from podium.tools import ApprovalRequest, Decision
from podium.tools._app import open_requests
from podium.tools._decisions import EXPIRED, LEDGER_KEY, current_ledger
from podium.tools._graph import event_store_for, ledger_for, run_ledger_for

__all__ = [
    "RunInfo",
    "check_decisions",
    "decide",
    "events",
    "inspect",
    "pending",
    "record_source",
    "resume",
    "resume_command",
]


def _thread(config: RunnableConfig) -> str:
    thread = (config.get("configurable") or {}).get("thread_id")
    if not thread:
        raise ConfigurationError(
            "The config has no thread_id; runs are addressed by thread.",
            fix='Pass config={"configurable": {"thread_id": "..."}}.',
        )
    return str(thread)


def _bound(app: Pregel[Any, Any, Any, Any]) -> Pregel[Any, Any, Any, Any]:
    """``app`` with its checkpointer's ledger bound, as at run time.

    A podium graph carries its ledger; a plain LangChain ``create_agent`` graph whose
    tool calls :class:`podium.middleware.Governed` governs finds it from its
    checkpointer when it runs, so the helpers here find it the same way.
    """
    conf = (app.config or {}).get("configurable") or {}
    if LEDGER_KEY in conf or app.checkpointer in (None, True, False):
        return app
    return app.with_config(configurable={LEDGER_KEY: ledger_for(app.checkpointer)})


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


def pending(app: Pregel[Any, Any, Any, Any], config: RunnableConfig) -> list[ApprovalRequest]:
    """The approval requests the thread is waiting for, oldest first.

    A request the ledger already holds a decision for (asked again after a crash) is
    not listed: :func:`resume` and :func:`decide` answer it with that decision.

    Raises:
        UnknownThreadError: If the thread has no saved state.
    """
    app = _bound(app)
    still_open, _ = open_requests(app, config, _snapshot(app, config))
    return [request for request, _ in still_open.values()]


def _not_pending(
    app: Pregel[Any, Any, Any, Any], thread: str, request_id: str, open_ids: list[str]
) -> UnknownRequestError:
    record = current_ledger(app.config).find_request(thread, request_id)
    if record is not None and record.decision is not None:
        done = Decision.parse(record.decision)
        return AlreadyDecidedError(
            f"Request {request_id!r} on thread {thread!r} was already decided "
            f"({done.action} by {done.by}); a decision is final.",
            fix="Nothing to do; run `podium inspect` to see the thread's state.",
            recorded=record.decision,
        )
    listing = ", ".join(open_ids) or "none"
    return UnknownRequestError(
        f"Request {request_id!r} is not pending on thread {thread!r} (unknown, stale, or "
        f"for another thread). Pending requests: {listing}.",
        fix="List them with runs.pending(app, config) or `podium pending THREAD`.",
    )


def resume_command(
    app: Pregel[Any, Any, Any, Any],
    config: RunnableConfig,
    decisions: Mapping[str, Decision | Mapping[str, Any]],
) -> Command[Any]:
    """Validate decisions for pending requests; return the ``Command`` that resumes.

    Use it to resume with your own streaming (``app.stream(command, config)``);
    :func:`decide` is this plus ``app.invoke``. Nothing is changed here.

    Raises:
        UnknownThreadError: The thread has no saved state.
        UnknownRequestError: A request id is unknown, stale, already decided, or
            belongs to another thread.
        InvalidDecisionError: A decision is malformed.
        ApproverNotAllowedError: The approver may not decide that request.
    """
    app = _bound(app)
    thread = _thread(config)
    if not isinstance(decisions, Mapping) or not decisions:
        raise UnknownRequestError(
            "decide() needs a mapping {request_id: decision} with at least one entry.",
            fix="Call runs.pending(app, config) to get the request ids.",
        )
    still_open, resume = open_requests(app, config, _snapshot(app, config))
    for request_id, raw in decisions.items():
        if request_id not in still_open:
            raise _not_pending(app, thread, request_id, list(still_open))
        request, interrupt_id = still_open[request_id]
        decision = Decision.parse(dict(raw) if isinstance(raw, Mapping) else raw)
        request.check_approver(decision.by)
        resume[interrupt_id] = decision.to_json()
    return Command(resume=resume)


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
        UnknownRequestError: A request id is unknown, stale, or belongs to another
            thread (:class:`~podium.errors.AlreadyDecidedError` when it was decided).
        InvalidDecisionError: A decision is malformed, or the run refused it (an edit
            the tool's schema or the policy does not allow); the request stays pending
            and nothing ran for it.
        AlreadyDecidedError: Another decider's decision for the same request was
            recorded first (a race); the run acted on that one, once.
        ApproverNotAllowedError: The approver may not decide that request.
    """
    sent = {
        rid: Decision.parse(dict(d) if isinstance(d, Mapping) else d)
        for rid, d in decisions.items()
    }
    result: dict[str, Any] = app.invoke(resume_command(app, config, decisions), config)
    check_decisions(app, config, sent, result)
    return result


def _same(recorded: Decision, sent: Decision) -> bool:
    """Whether the recorded decision is the one sent (edits are stored merged)."""
    if (recorded.action, recorded.by) != (sent.action, sent.by):
        return recorded.by == sent.by and recorded.reason.startswith(EXPIRED)
    if sent.action == "edit":  # stored validated: "2000" may be 2000.0 now
        return set(sent.args or {}) <= set(recorded.args or {})
    return True


def check_decisions(
    app: Pregel[Any, Any, Any, Any],
    config: RunnableConfig,
    sent: Mapping[str, Decision],
    result: Any = None,
) -> None:
    """After a resume, raise unless every decision sent is the one that binds.

    A decision the run refused (an edit the tool's schema or the policy does not
    allow, an action the request does not take) left its request pending, with the
    reason in ``note``; a decision that lost a race with another decider was not
    applied (the first recorded decision binds, and the run acted on it).

    Raises:
        InvalidDecisionError: A decision was refused; nothing ran for it.
        AlreadyDecidedError: Another decision for the same request was recorded
            first; ``.recorded`` is that decision and ``.result`` the run's output.
    """
    app = _bound(app)
    thread = _thread(config)
    ledger = current_ledger(app.config)
    refused: list[str] = []
    for request_id, decision in sent.items():
        record = ledger.find_request(thread, request_id)
        if record is None:
            continue
        if record.decision is None:
            reason = _refusal(app, config, request_id, decision)
            if reason is not None:
                refused.append(f"{request_id}: {reason.rstrip('.')}")
            continue
        recorded = Decision.parse(record.decision)
        if not _same(recorded, decision):
            raise AlreadyDecidedError(
                f"Request {request_id!r} on thread {thread!r} was decided by "
                f"{recorded.by} ({recorded.action}) at the same moment; the first decision "
                f"recorded binds, so your {decision.action} by {decision.by} was not applied. "
                "Nothing ran twice; the run went on with the recorded decision.",
                fix="Nothing to do; run `podium inspect` to see what happened.",
                recorded=record.decision,
                result=result,
            )
    if refused:
        raise InvalidDecisionError(
            "The run refused the decision(s) " + "; ".join(refused) + ". Nothing ran for "
            "them; the request(s) are still pending.",
            fix="Decide again (runs.pending shows each request's note).",
        )


def _canonical(value: Any) -> str:
    """JSON text for comparing decisions (so NaN equals NaN)."""
    return json.dumps(value, sort_keys=True, default=str)


def _refusal(
    app: Pregel[Any, Any, Any, Any], config: RunnableConfig, request_id: str, sent: Decision
) -> str | None:
    """Why the run refused ``sent`` for a request that is still pending, if it did."""
    for item in app.get_state(config).interrupts:
        if not ApprovalRequest.is_request(item.value):
            continue
        request = ApprovalRequest.from_json(item.value)
        refused = request.refused or {}
        if request.id == request_id and _canonical(refused.get("decision")) == _canonical(
            sent.to_json()
        ):
            return str(refused.get("error") or "refused")
    return None


def resume(app: Pregel[Any, Any, Any, Any], config: RunnableConfig) -> dict[str, Any]:
    """Continue a thread from its last checkpoint (after a crash or a stopped model).

    Requests asked again after a crash although the ledger holds their decision are
    answered with it.

    Raises:
        UnknownThreadError: If the thread has no saved state.
    """
    app = _bound(app)
    _, replay = open_requests(app, config, _snapshot(app, config))
    result: dict[str, Any] = app.invoke(Command(resume=replay) if replay else None, config)
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
    app = _bound(app)
    snapshot = _snapshot(app, config)
    step = (snapshot.metadata or {}).get("step")
    return RunInfo(
        thread_id=_thread(config),
        next=tuple(snapshot.next),
        pending=[r for r, _ in open_requests(app, config, snapshot)[0].values()],
        values=dict(snapshot.values) if isinstance(snapshot.values, dict) else {},
        step=step if isinstance(step, int) else None,
    )


def events(
    app: Pregel[Any, Any, Any, Any],
    config: RunnableConfig | None = None,
    *,
    kinds: Sequence[str] | None = None,
    since: float | None = None,
) -> list[dict[str, Any]]:
    """The run ledger's events for the config's thread (every thread without one).

    Waits for the ledger's background writer first, so the events of a run that just
    returned are included. Feed them to :func:`podium.observe.render_trace`,
    :func:`~podium.observe.plot_timeline` or :func:`~podium.observe.cost_report`.

    Args:
        app: The compiled graph (its checkpointer locates the run ledger).
        config: A config with ``thread_id``; ``None`` returns every thread's events.
        kinds: Only these event kinds (``"model"``, ``"tool"``, ``"approval_requested"``...).
        since: Only events that started at or after this time (epoch seconds).

    Returns:
        Events as dicts (thread, agent, kind, name, start/end, tokens, cost, status,
        data), oldest first.

    Raises:
        ConfigurationError: The graph has no checkpointer, or the run ledger is off
            (``PODIUM_RUN_LEDGER=off``).
    """
    thread = _thread(config) if config is not None else None
    handler = run_ledger_for(app.checkpointer)
    if handler is not None:
        handler.flush()
    store = event_store_for(app.checkpointer)
    if store is None:
        raise ConfigurationError(
            "This graph records no run events: it was compiled without a checkpointer, or "
            "the run ledger is off (PODIUM_RUN_LEDGER=off).",
            fix="Compile with a checkpointer, e.g. .compile(checkpointer=sqlite_saver(path)), "
            "and unset PODIUM_RUN_LEDGER (or point it at a file).",
        )
    return store.events(thread, kinds=kinds, since=since)


def record_source(app: Pregel[Any, Any, Any, Any], config: RunnableConfig, source: str) -> None:
    """Record how to rebuild the thread's graph, so the CLI can decide and resume it.

    ``podium approve|reject|respond|resume`` must run the graph; for a thread started
    from Python they need ``--graph`` -- unless the thread records its source::

        runs.record_source(app, config, "myapp.desk:build")

    Args:
        app: The compiled graph.
        config: A config with the thread's ``thread_id``.
        source: ``package.module:attribute`` naming the uncompiled graph, or a
            function returning it.

    Raises:
        ConfigurationError: If ``source`` does not look like ``module:attribute``.
    """
    app = _bound(app)
    module, _, attr = source.partition(":")
    if not module or not attr:
        raise ConfigurationError(
            f"source {source!r} must look like 'package.module:attribute'.",
            fix="Name the uncompiled graph, or a function that returns it.",
        )
    current_ledger(app.config).record_source(_thread(config), source, source_path=source_of(source))
