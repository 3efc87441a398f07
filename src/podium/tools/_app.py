"""``GovernedApp``: what ``GovernedGraph.compile()`` returns.

A compiled graph whose guarantees hold on the plain calls users make. It is
LangGraph's ``CompiledStateGraph`` with these defaults for every top-level
``invoke`` / ``stream`` / ``ainvoke`` / ``astream`` (nested runs inherit from their
parent):

* **Durable by default.** A graph that can run a side effect runs with
  ``durability="sync"``: every step's checkpoint is written before the next step
  starts, so the model message that asked for a call is saved before the call acts
  and a crash never makes the model ask (and act) again. A caller that passes
  ``durability=`` explicitly gets what it asked for. LangGraph Server passes its own
  default (``"async"``) explicitly on every run; for a served graph that can act,
  podium runs ``"sync"`` instead (``"exit"`` is honoured), unless the environment sets
  ``PODIUM_SERVER_DURABILITY=async``.
* **Input cannot steer routing.** New input carries ``messages`` only; internal
  state keys (``active_agent``, ``usage``, stage cursors, ...) in the input or in a
  ``Command(update=...)``, and ``Command(goto=...)``, are refused with
  :class:`~podium.errors.InvalidInputError`.
* **Pending requests are never dropped.** New input on a thread that waits for a
  human is refused with :class:`~podium.errors.PendingRequestsError`, which names
  the requests and how to decide them -- or, with ``configurable["podium_pending"]
  = "supersede"``, each pending request is rejected ("superseded by new input"), so
  its call gets a tool result and the history stays valid, before the input runs.
* **Decided requests answer themselves.** A resume (``invoke(None)`` or
  ``Command(resume=...)``) answers every interrupt whose request the ledger already
  holds a decision for (asked again after a crash) with that decision.
* **One run per thread at a time.** A top-level run on a checkpointer takes its
  thread's lease before it reads the thread, keeps it alive with a heartbeat and
  releases it when it ends; every checkpoint, task write, tool-call start and
  request for a human it makes is fenced by the lease, so a run that lost the
  thread (paused past its lease, then woken) writes nothing
  (:class:`~podium.errors.LeaseLostError`). A run on a busy thread follows
  ``configurable["podium_multitask"]``: ``"reject"`` (the default:
  :class:`~podium.errors.ThreadBusyError` naming the holder and since when,
  nothing changed) or ``"enqueue"`` (wait up to
  ``configurable["podium_multitask_timeout"]`` seconds, default 60). Runs that
  LangGraph Server starts default to ``"enqueue"``: the server already chose, with
  its own multitask strategy, to start them. New input on a thread taken from a
  run whose process is gone (killed, or its lease expired) first finishes that run
  (a resume), then runs, so the crashed turn is neither lost nor interleaved.
  ``PODIUM_LEASE_SECONDS`` (default 30) sets how long a lease outlives its last
  heartbeat; ``PODIUM_THREAD_LEASE=off`` turns leases off. See
  :mod:`podium.tools._lease` and :mod:`podium.checkpoints._leases`.
* **Every thread is registered.** A top-level run on a checkpointer writes its
  thread's row in the ledger's ``podium_threads`` table when it starts (``running``,
  with this process as owner) and when it ends (``waiting``, ``done``, ``error``,
  ``stopped``), so ``podium threads``/``pending``/``trace`` see threads started from
  Python or by LangGraph Server, not only the CLI's (see
  :mod:`podium.checkpoints._threads`). The run's events are written to the run
  ledger before it returns, so a trace read right after shows the whole run.

* **``update_state`` is a write like a run's.** It takes the thread's lease (busy:
  :class:`~podium.errors.ThreadBusyError`, or wait under ``"enqueue"``), its checkpoint
  is fenced, and the thread keeps its status; it is refused on a thread that waits
  for a human (:class:`~podium.errors.PendingRequestsError`) and on one whose last run
  died mid-run, until that run is finished (see :meth:`GovernedApp.bulk_update_state`).

One more applies to every synchronous run, nested ones included:

* **Wide steps run at once.** LangGraph runs a synchronous step's tasks in a thread
  pool of ``max_concurrency`` workers, by default Python's ``min(32, CPUs + 4)`` (6
  on two cores), so 100 parallel branches that each wait 100 ms take ~1.7 s under
  ``invoke`` but ~0.1 s under ``ainvoke`` (asyncio tasks, no limit). A graph whose
  widest step is wider than that (``configurable[WIDTH_KEY]``: a parallel graph's
  branches) runs with ``max_concurrency`` equal to its width, so every branch gets a
  thread (the pool starts threads only as tasks arrive). ``max_concurrency`` given by
  the caller -- in the run's config, bound with ``with_config``, a factory's
  ``max_concurrency=``, or inherited from an enclosing run that set it -- is never
  raised or lowered; a width podium chose for an enclosing run is not inherited (each
  podium graph sizes its own steps). Async runs are left as they are.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, StateSnapshot

from podium._scrub import scrub_error
from podium.checkpoints._ledger import MemoryLedger
from podium.errors import InvalidInputError
from podium.observe._events import RunLedgerHandler
from podium.tools._approvals import ApprovalRequest, Decision
from podium.tools._decisions import current_ledger
from podium.tools._lease import multitask
from podium.tools._thread_runs import Registration, StateUpdate, waiting_for_human

__all__ = ["DESCRIPTION_KEY", "PENDING_KEY", "WIDTH_KEY", "GovernedApp", "open_requests"]

PENDING_KEY = "podium_pending"
"""``configurable`` key: what new input does to pending requests (``"refuse"`` or
``"supersede"``)."""
SERVED_KEY = "langgraph_request_id"
"""A ``configurable`` key LangGraph Server sets on every run it starts."""
SERVER_DURABILITY_ENV = "PODIUM_SERVER_DURABILITY"
"""Set to ``async`` to keep LangGraph Server's durability for served graphs that act."""
INPUT_KEYS = frozenset({"messages"})
"""What a caller may put in a podium graph's input."""
SUPERSEDED = "superseded by new input"
DESCRIPTION_KEY = "__podium_description"
"""The ``configurable`` key holding a compiled podium graph's description."""


def open_requests(
    app: Any, config: RunnableConfig, snapshot: StateSnapshot
) -> tuple[dict[str, tuple[ApprovalRequest, str]], dict[str, Any]]:
    """The requests still open, and resume values for those the ledger already decided.

    A process that dies after a decision was recorded in the ledger but before
    LangGraph saved the step loses the resume value (LangGraph keeps a resume map in
    memory until the task finishes), so the run asks again. The ledger's decision
    binds, so such a request is not open: it is answered with the recorded decision.
    A task that *failed* after consuming its answer saved that answer with the
    error; its old interrupt is shown again but must not be answered twice.

    Returns:
        ``{request_id: (request, interrupt_id)}`` of open requests, and
        ``{interrupt_id: decision JSON}`` for decided ones.
    """
    thread = str((config.get("configurable") or {}).get("thread_id", ""))
    ledger = current_ledger(app.config)
    bound = {
        str(r.request.get("id")): r.decision
        for r in ledger.approvals(thread)
        if r.status == "decided" and r.decision is not None
    }
    failed = {i.id for task in snapshot.tasks if task.error for i in task.interrupts}
    still_open: dict[str, tuple[ApprovalRequest, str]] = {}
    replay: dict[str, Any] = {}
    for item in snapshot.interrupts:
        if not ApprovalRequest.is_request(item.value):
            continue
        request = ApprovalRequest.from_json(item.value)
        if request.id not in bound:
            still_open[request.id] = (request, item.id)
        elif item.id not in failed:
            replay[item.id] = bound[request.id]
    return still_open, replay


WIDTH_KEY = "__podium_width"
"""``configurable`` key: the most tasks one step of the compiled graph runs at once."""
POOL_KEY = "__podium_pool"
"""``configurable`` key: the ``max_concurrency`` podium chose for a run (not a caller's)."""
DEFAULT_WORKERS = min(32, (os.cpu_count() or 1) + 4)
"""The thread pool LangGraph gets without ``max_concurrency`` (``ThreadPoolExecutor``'s)."""


def _sized(app: CompiledStateGraph[Any, Any, Any, Any], config: RunnableConfig | None) -> Any:
    """``config`` with the thread pool sized for ``app``'s widest step (module docs)."""
    given = (config or {}).get("max_concurrency")
    conf = (config or {}).get("configurable") or {}
    if given is not None and given != conf.get(POOL_KEY):
        return config  # the caller's, or an enclosing run's caller's: it stands
    own = app.config or {}
    width = (own.get("configurable") or {}).get(WIDTH_KEY)
    wanted = own.get("max_concurrency") or (
        width if isinstance(width, int) and width > DEFAULT_WORKERS else None
    )
    if wanted == given:
        return config
    return {**(config or {}), "max_concurrency": wanted, "configurable": {**conf, POOL_KEY: wanted}}


def _nested(config: RunnableConfig | None) -> bool:
    return bool(((config or {}).get("configurable") or {}).get("checkpoint_ns"))


def _check_input(value: Any) -> None:
    if isinstance(value, Command):
        if value.goto:
            raise InvalidInputError(
                "A podium graph does not take Command(goto=...) as input: routing is the "
                "graph's own (declared routes, stages, policies).",
                fix="Send new input as {'messages': [...]}, or resume with Command(resume=...).",
            )
        update = value.update
        keys = set(update) if isinstance(update, Mapping) else set()
        if update is not None and not isinstance(update, Mapping):
            keys = {str(k) for k, _ in value._update_as_tuples()}
        _check_keys(keys, "Command(update=...)")
        return
    if isinstance(value, Mapping):
        _check_keys(set(value), "the input")


def _check_keys(keys: set[str], where: str) -> None:
    internal = sorted(str(k) for k in keys - INPUT_KEYS)
    if internal:
        raise InvalidInputError(
            f"{where} sets {', '.join(map(repr, internal))}, which podium keeps internal "
            "(routing, counters, usage); a caller may only send 'messages'.",
            fix="Send {'messages': [...]}; the graph decides who acts next.",
        )


class GovernedApp(CompiledStateGraph[Any, Any, Any, Any]):
    """A compiled podium graph (see the module docs for what it adds)."""

    def _podium_prepare(
        self, value: Any, config: RunnableConfig | None, kwargs: dict[str, Any]
    ) -> None:
        """Check the input and set the durability (nothing here reads the thread)."""
        if _nested(config):
            return
        _check_input(value)
        during = kwargs.pop("checkpoint_during", None)
        conf = (config or {}).get("configurable") or {}
        if (
            kwargs.get("durability") == "async"
            and conf.get(SERVED_KEY)
            and os.environ.get(SERVER_DURABILITY_ENV) != "async"
        ):
            # LangGraph Server passes its own default ("async") explicitly on every run:
            # not a caller's choice, so a served graph that can act is made durable
            kwargs.pop("durability")
        if kwargs.get("durability") is None and self.checkpointer not in (None, False):
            if during is False:
                kwargs["durability"] = "exit"
            elif self._podium_effects():
                kwargs["durability"] = "sync"
            elif during is True:
                kwargs["durability"] = "async"

    def _podium_needs_state(self, value: Any, config: RunnableConfig | None) -> bool:
        """Whether the run's input must be checked against the thread's state."""
        conf = (config or {}).get("configurable") or {}
        if _nested(config) or self.checkpointer is None or not conf.get("thread_id"):
            return False
        if value is None or (isinstance(value, Command) and value.resume is not None):
            return True
        if not isinstance(value, Mapping):
            return False
        # new input: one indexed query in the common case where nothing waits
        return bool(current_ledger(self.config).pending_approvals_of(str(conf["thread_id"])))

    def _podium_defaults(
        self, value: Any, config: RunnableConfig | None, kwargs: dict[str, Any]
    ) -> bool:
        """Check the input and set the durability; whether the thread's state is needed."""
        self._podium_prepare(value, config, kwargs)
        return self._podium_needs_state(value, config)

    def _podium_inputs(
        self, value: Any, config: RunnableConfig, snapshot: StateSnapshot
    ) -> list[tuple[Any, RunnableConfig]]:
        """The runs to make for ``value`` given the thread's state (module docs)."""
        still_open, replay = open_requests(self, config, snapshot)
        if value is None:
            return [(Command(resume=replay) if replay else None, config)]
        if isinstance(value, Command):
            return [(_answered(value, still_open, replay), config)]
        if not still_open:
            return [(value, config)]
        conf = config.get("configurable") or {}
        if conf.get(PENDING_KEY) != "supersede":
            raise waiting_for_human(
                conf.get("thread_id"),
                still_open,
                "New input would leave those calls without an answer",
                "Decide them first (runs.decide, or `podium approve|reject|respond`), or "
                f"pass configurable {PENDING_KEY!r}: 'supersede' to reject them as superseded "
                "by the new input.",
            )
        rejected = Decision.reject(SUPERSEDED, by="podium").to_json()
        resume = {**replay, **{iid: rejected for _, iid in still_open.values()}}
        return [(Command(resume=resume), _without_run_id(config)), (value, config)]

    def _podium_open(self, thread: str) -> Mapping[str, tuple[ApprovalRequest, str]]:
        """The requests of ``thread`` still waiting for a human (by request id)."""
        latest: RunnableConfig = {"configurable": {"thread_id": thread}}
        return open_requests(self, latest, self.get_state(latest))[0]

    def _podium_effects(self) -> bool:
        conf = (self.config or {}).get("configurable") or {}
        return bool(conf.get(EFFECTS_KEY, True))

    def _podium_registry(self, config: RunnableConfig | None) -> Registration | None:
        """Where this top-level run registers its thread and takes its lease (``None``: not)."""
        conf = (config or {}).get("configurable") or {}
        thread = conf.get("thread_id")
        if _nested(config) or not thread or self.checkpointer in (None, False, True):
            return None
        ledger = current_ledger(self.config)
        if isinstance(ledger, MemoryLedger):
            return None
        own = (self.config or {}).get("configurable") or {}
        given = (self.config or {}).get("callbacks")
        ledgers = (
            [h for h in given if isinstance(h, RunLedgerHandler)] if isinstance(given, list) else []
        )
        how = multitask(conf, served=bool(conf.get(SERVED_KEY)))
        return Registration(
            ledger, str(thread), self.get_name(), own.get(DESCRIPTION_KEY), ledgers, how
        )

    def _podium_recovery(
        self, config: RunnableConfig, snapshot: StateSnapshot
    ) -> list[tuple[Any, RunnableConfig]]:
        """The resume that finishes a crashed run before new input (module docs).

        A run cut off mid-step leaves its step's tasks in the latest checkpoint: some
        still to run (``snapshot.next``), some done with their writes saved but not
        yet applied (only in ``snapshot.tasks``). LangGraph would start new input from
        that checkpoint and drop those writes (a saved question, a model's answer);
        resuming first applies them and finishes the run.
        """
        if not snapshot.tasks or snapshot.interrupts:
            return []
        found = self._podium_inputs(None, config, snapshot)
        return [(value, _without_run_id(conf)) for value, conf in found]

    def stream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Iterator[Any]:
        """LangGraph's ``stream``, with podium's defaults (module docs)."""
        config = _sized(self, config)
        registration = self._podium_registry(config)
        if registration is None or config is None:
            runs: list[tuple[Any, RunnableConfig | None]] = [(input, config)]
            if self._podium_defaults(input, config, kwargs) and config is not None:
                runs = [*self._podium_inputs(input, config, self.get_state(config))]
            for value, conf in runs:
                yield from super().stream(value, conf, **kwargs)
            return
        self._podium_prepare(input, config, kwargs)
        config = registration.take(input, config)  # busy: ThreadBusyError, nothing changed
        try:
            runs = []
            if registration.recovers and isinstance(input, Mapping):
                runs = [*self._podium_recovery(config, self.get_state(config))]
            for value, conf in runs:  # the crashed run first; then may the input run?
                for chunk in super().stream(value, conf, **kwargs):
                    registration.saw(chunk)
                    yield chunk
            runs = [(input, config)]
            if self._podium_needs_state(input, config):
                runs = [*self._podium_inputs(input, config, self.get_state(config))]
            for value, conf in runs:
                for chunk in super().stream(value, conf, **kwargs):
                    registration.saw(chunk)
                    yield chunk
        except BaseException as exc:
            registration.ended(scrub_error(exc))  # a secret a tool echoed is not stored
            raise
        registration.ended(None)

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[Any]:
        """LangGraph's ``astream``, with podium's defaults (module docs)."""
        # the ledger is synchronous: its queries run in a worker thread, never on the loop
        registration = self._podium_registry(config)
        if registration is None or config is None:
            runs: list[tuple[Any, RunnableConfig | None]] = [(input, config)]
            if await asyncio.to_thread(self._podium_defaults, input, config, kwargs) and config:
                snapshot = await self.aget_state(config)
                runs = [*await asyncio.to_thread(self._podium_inputs, input, config, snapshot)]
            for value, conf in runs:
                async for chunk in super().astream(value, conf, **kwargs):
                    yield chunk
            return
        self._podium_prepare(input, config, kwargs)
        config = await registration.atake(input, config)
        try:
            runs = []
            if registration.recovers and isinstance(input, Mapping):
                snapshot = await self.aget_state(config)
                runs = [*await asyncio.to_thread(self._podium_recovery, config, snapshot)]
            for value, conf in runs:
                async for chunk in super().astream(value, conf, **kwargs):
                    registration.saw(chunk)
                    yield chunk
            runs = [(input, config)]
            if await asyncio.to_thread(self._podium_needs_state, input, config):
                snapshot = await self.aget_state(config)
                runs = [*await asyncio.to_thread(self._podium_inputs, input, config, snapshot)]
            for value, conf in runs:
                async for chunk in super().astream(value, conf, **kwargs):
                    registration.saw(chunk)
                    yield chunk
        except BaseException as exc:
            await asyncio.shield(asyncio.to_thread(registration.ended, scrub_error(exc)))
            raise
        await asyncio.to_thread(registration.ended, None)

    # -- update_state: a write to the thread, taken like a run ----------------------------
    def bulk_update_state(self, config: RunnableConfig, supersteps: Any) -> RunnableConfig:
        """LangGraph's ``bulk_update_state`` (and so ``update_state``), taken like a run.

        A state update is a write to the thread: it takes the thread's lease first
        (a thread a run holds raises :class:`~podium.errors.ThreadBusyError`, or waits
        with ``configurable["podium_multitask"] = "enqueue"``), writes fenced by it,
        and leaves the thread's status as it was. It is refused, with nothing
        changed, on a thread that waits for a human
        (:class:`~podium.errors.PendingRequestsError`: the update would leave those
        requests without an answer -- decide them first, e.g. ``Decision.respond``
        gives a call the result a debugger meant to write) and on a thread whose
        last run's process died before it ended (resume it first). Updates inside
        a nested graph (``checkpoint_ns``) and updates by a run that holds the lease
        are LangGraph's own.
        """
        update = StateUpdate(self._podium_registry(config), config, self._podium_open)
        if update.registration is None:
            return super().bulk_update_state(config, supersteps)
        leased = update.take()
        try:
            written = super().bulk_update_state(leased, supersteps)
        except BaseException as exc:
            update.ended(exc)
            raise
        update.ended(None)
        return written

    async def abulk_update_state(self, config: RunnableConfig, supersteps: Any) -> RunnableConfig:
        """:meth:`bulk_update_state` for an event loop (``aupdate_state``)."""
        update = StateUpdate(self._podium_registry(config), config, self._podium_open)
        if update.registration is None:
            return await super().abulk_update_state(config, supersteps)
        leased = await asyncio.to_thread(update.take)
        try:
            written = await super().abulk_update_state(leased, supersteps)
        except BaseException as exc:
            await asyncio.shield(asyncio.to_thread(update.ended, exc))
            raise
        await asyncio.to_thread(update.ended, None)
        return written


def _without_run_id(config: RunnableConfig) -> RunnableConfig:
    """``config`` without its run id, for the rejections a superseding input runs first.

    LangGraph takes new input whose run id (``configurable`` / ``metadata``
    ``run_id``, which LangGraph Server sets for every run) equals the latest
    checkpoint's for a re-entry of that run -- a stream reconnecting -- and drops the
    input. So the rejections are saved without the run id, and the input, run next,
    is new input; its own steps carry the run id.
    """
    stripped: dict[str, Any] = {k: v for k, v in config.items() if k != "run_id"}
    for key in ("configurable", "metadata"):
        given: Mapping[str, Any] = stripped.get(key) or {}
        stripped[key] = {k: v for k, v in given.items() if k != "run_id"}
    return cast(RunnableConfig, stripped)


def _answered(
    value: Command[Any],
    still_open: Mapping[str, tuple[ApprovalRequest, str]],
    replay: dict[str, Any],
) -> Command[Any]:
    """A resume ``Command`` with the ledger's answers filled in."""
    if not replay or value.resume is None:
        return value
    given = value.resume
    ids = {iid for _, iid in still_open.values()} | set(replay)
    if isinstance(given, Mapping) and set(given) <= ids:
        return Command(resume={**replay, **given}, update=value.update)
    if not isinstance(given, Mapping) and len(still_open) == 1:
        [(_, iid)] = still_open.values()  # a bare value answers the one open request
        return Command(resume={**replay, iid: given}, update=value.update)
    return value


EFFECTS_KEY = "__podium_effects"
"""``configurable`` key: whether the compiled graph can run a side effect."""
