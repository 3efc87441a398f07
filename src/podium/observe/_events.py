"""Run events and the callback handler that records them off the hot path.

Model and tool calls are observed through LangChain's callback system (the same
events LangSmith sees); podium's own decisions -- policy, approvals, handoffs,
delegations, retries, escalations, budget use -- and what the patterns do --
pipeline stages and reworks, parallel branches, quorum and joins -- are dispatched
as custom events named ``podium.<kind>`` with :func:`emit` (every kind is listed
in :attr:`RunEvent.kind`). The ``agent`` column carries the agent's path in nested
graphs (:mod:`podium.observe._scope`). :class:`RunLedgerHandler` turns both into
:class:`RunEvent` rows and hands them in batches to a sink on a background thread:
a run never waits for, and never fails because of, the run ledger. Events the sink
could not take are counted in :attr:`RunLedgerHandler.dropped`.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.callbacks.manager import dispatch_custom_event
from langchain_core.messages import BaseMessage, ToolMessage
from langchain_core.outputs import LLMResult
from langchain_core.runnables import RunnableConfig
from langgraph.errors import GraphBubbleUp

from podium._scrub import has_secrets, scrub
from podium.observe._prices import Price, price_of
from podium.observe._redact import redact
from podium.observe._scope import scope_of, scoped

__all__ = ["RunEvent", "RunLedgerHandler", "Sink", "emit"]

Sink = Callable[[Sequence["RunEvent"]], None]
"""Where batches of events go (e.g. the run ledger's ``EventStore.write_events``)."""


@dataclass
class RunEvent:
    """One thing that happened in a run."""

    kind: str
    """What happened. Calls (spans): ``model``, ``tool``. Governance: ``policy`` (a
    rule's verdict on a call), ``refusal`` (a call that did not run, and why),
    ``approval_requested``, ``approval_refused`` (a decision that was not accepted),
    ``approval_decided`` (for a pipeline action gate these carry ``stage``).
    Control flow: ``handoff``, ``delegation``, ``retry``, ``fallback``,
    ``escalation``, ``budget``. Pipelines: ``stage_started`` and ``stage_finished``
    (a span: ``outcome`` done / skipped / rework, ``round``, ``attempts``),
    ``rework`` (``from`` → ``to`` stage, ``feedback``, ``round``). Parallel graphs:
    ``branch`` (a span per branch: ``outcome`` ok / error / timeout and ``error``),
    ``quorum`` (``succeeded``, ``failed`` with reasons, ``required``, ``met``) and
    ``join`` (the join kind, who succeeded and failed, and in ``result`` how the
    answer was chosen: the vote tally, winner, tie, scores). Environments: ``command``
    (a span per shell command: ``exit_code``, ``duration``, ``bytes_out``,
    ``truncated``, ``timed_out``, ``sandbox``, ``network``, ``connections``,
    ``refused``) and ``network_refused`` (``host``, ``port``, ``network``)."""
    thread_id: str
    """The thread (run) it belongs to."""
    agent: str | None = None
    """The agent it happened in, with its path in nested graphs
    (``support_desk/cashier``; see :mod:`podium.observe._scope`); for pipeline,
    parallel-join and gate events, the graph itself."""
    node: str | None = None
    """The LangGraph node."""
    name: str | None = None
    """Model name, tool name, or the subject of a podium event."""
    started_at: float = field(default_factory=time.time)
    """Epoch seconds."""
    ended_at: float | None = None
    """Epoch seconds (``None`` for instantaneous events)."""
    status: str = "ok"
    """``ok`` or ``error`` (tool calls refused by governance count as ``error``)."""
    input_tokens: int = 0
    """Prompt tokens (model calls)."""
    output_tokens: int = 0
    """Generated tokens (model calls)."""
    cost: float = 0.0
    """USD (model calls)."""
    run_id: str | None = None
    """LangChain run id."""
    parent_run_id: str | None = None
    """Parent LangChain run id."""
    data: dict[str, Any] = field(default_factory=dict)
    """Kind-specific details (finish reason, argument hash, decision, ...)."""

    def as_row(self) -> dict[str, Any]:
        """A flat dict for storage."""
        return asdict(self)


def emit(kind: str, data: Mapping[str, Any], config: RunnableConfig | None = None) -> None:
    """Record a podium event in the current run (no-op outside a run).

    Args:
        kind: The event kind (``policy``, ``handoff``, ...; see :attr:`RunEvent.kind`).
        data: JSON-serialisable details. These keys fill columns instead: ``agent``
            (a name as the emitting graph knows it; the run ledger adds the path of
            the enclosing member graphs), ``name``, ``status``, and for a span
            ``started_at`` (epoch seconds; it ends now unless ``ended_at`` is given).
        config: The node's config, when called outside the runnable context.
    """
    try:
        dispatch_custom_event(f"podium.{kind}", redact(dict(data)), config=config)
    except RuntimeError:  # not inside a runnable: nothing to attach the event to
        return


def _meta_str(meta: Mapping[str, Any] | None, key: str) -> str | None:
    value = (meta or {}).get(key)
    return str(value) if value is not None else None


def _agent(meta: Mapping[str, Any] | None, named: object) -> str | None:
    """The ``agent`` column: the named (or tagged) agent, with its path.

    A LangChain ``create_agent`` graph tags its runs with ``lc_agent_name`` (its
    ``name=``), which names the agent when podium's own tag is absent.
    """
    tagged = _meta_str(meta, "podium_agent") or _meta_str(meta, "lc_agent_name")
    name = str(named or tagged or "")
    scope = scope_of(meta)
    return scoped(scope, name) if name else scope or None


def _seconds(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


PRICES_METADATA = "podium_prices"
"""Model-call metadata: the prices the budgets in force state, ``{model: [input,
output]}`` in USD per million tokens (set by podium's model step), so the run ledger
prices a call as the budget that governs it does."""


def _stated_prices(given: Any) -> dict[str, Price]:
    """The prices in a call's :data:`PRICES_METADATA` (malformed entries are ignored)."""
    if not isinstance(given, Mapping):
        return {}
    found: dict[str, Price] = {}
    for name, pair in given.items():
        if isinstance(pair, list | tuple) and len(pair) == 2:
            with contextlib.suppress(TypeError, ValueError):
                found[str(name)] = Price(float(pair[0]), float(pair[1]))
    return found


class RunLedgerHandler(BaseCallbackHandler):
    """Collects run events and writes them in batches on a background thread.

    Args:
        sink: Receives batches; exceptions it raises count the batch as dropped.
        prices: Price overrides for the cost column.
        batch_size: Events per write at most.
        interval: Seconds between flushes when events trickle in.
        max_queue: Events held in memory at most; more are dropped and counted.
    """

    raise_error = False
    # Every method only queues (non-blocking), so it runs inline: under ``ainvoke`` a
    # non-inline sync handler costs a thread-pool hop per callback event. Chain and
    # retriever events are not recorded, so LangChain need not dispatch them.
    run_inline = True
    ignore_chain = True
    ignore_retriever = True

    def __init__(
        self,
        sink: Sink,
        *,
        prices: Mapping[str, Price] | None = None,
        batch_size: int = 200,
        interval: float = 0.2,
        max_queue: int = 20_000,
    ) -> None:
        self.sink = sink
        self.prices = prices
        self.batch_size = batch_size
        self.interval = interval
        self.dropped = 0
        self.written = 0
        self._max_queue = max_queue
        self._buffer: collections.deque[RunEvent] = collections.deque()
        self._wake = threading.Event()
        self._writing = threading.Lock()
        self._closed = False
        self._open: dict[UUID, RunEvent] = {}
        self._free: set[UUID] = set()  # open calls to the local model (free by definition)
        self._priced: dict[UUID, dict[str, Price]] = {}  # open calls' budget prices
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._drain, name="podium-run-ledger", daemon=True)
        self._thread.start()
        ref = weakref.ref(self)

        def _flush_at_exit() -> None:
            handler = ref()
            if handler is not None:
                handler.flush()

        atexit.register(_flush_at_exit)

    # -- buffer -------------------------------------------------------------------
    # Events go into a deque (``append`` is atomic and takes no lock) and the writer
    # thread wakes every ``interval`` -- or as soon as a batch is full -- to take what
    # is there. A run never wakes the writer per event: a per-event condition
    # notify plus a thread switch cost more than recording the event itself.
    def _put(self, event: RunEvent) -> None:
        if len(self._buffer) >= self._max_queue:
            self.dropped += 1
            return
        if has_secrets():  # error texts and tool details too, not only emit()'s data
            event.data = scrub(event.data)
        self._buffer.append(event)
        if len(self._buffer) >= self.batch_size:
            self._wake.set()

    def _drain(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            with self._writing:
                self._write_buffered()
            if self._closed:
                return

    def _write_buffered(self) -> None:
        while self._buffer:
            batch: list[RunEvent] = []
            while self._buffer and len(batch) < self.batch_size:
                batch.append(self._buffer.popleft())
            self._write(batch)

    def _write(self, batch: list[RunEvent]) -> None:
        try:
            self.sink(batch)
            self.written += len(batch)
        except Exception:
            self.dropped += len(batch)

    def flush(self, timeout: float = 5.0) -> None:
        """Write every queued event now (waits at most ``timeout`` for a write in flight)."""
        if not self._writing.acquire(timeout=timeout):
            return
        try:
            self._write_buffered()
        finally:
            self._writing.release()

    def close(self) -> None:
        """Write what is queued and stop the writer thread."""
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=5.0)

    # -- helpers ------------------------------------------------------------------
    def _start(
        self,
        kind: str,
        run_id: UUID,
        parent: UUID | None,
        meta: Mapping[str, Any] | None,
        name: str | None,
    ) -> None:
        event = RunEvent(
            kind=kind,
            thread_id=_meta_str(meta, "thread_id") or "",
            agent=_agent(meta, None),
            node=_meta_str(meta, "langgraph_node"),
            name=name,
            run_id=str(run_id),
            parent_run_id=str(parent) if parent else None,
        )
        with self._lock:
            self._open[run_id] = event

    def _end(self, run_id: UUID) -> RunEvent | None:
        with self._lock:
            event = self._open.pop(run_id, None)
        if event is not None:
            event.ended_at = time.time()
        return event

    # -- model calls --------------------------------------------------------------
    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Open a model event."""
        params = kwargs.get("invocation_params") or {}
        name = (
            params.get("model") or params.get("model_name") or (metadata or {}).get("ls_model_name")
        )
        self._start("model", run_id, parent_run_id, metadata, str(name) if name else None)
        stated = _stated_prices((metadata or {}).get(PRICES_METADATA))
        with self._lock:
            if (metadata or {}).get("podium_model") == "local":
                self._free.add(run_id)
            if stated:
                self._priced[run_id] = stated

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        """Close a model event with tokens, cost, whether it is priced, finish reason.

        ``data["priced"]`` is ``False`` when the model has no known price (see
        :mod:`podium.observe._prices`): its ``cost`` is 0 but not because it was free.
        """
        event = self._end(run_id)
        with self._lock:
            free = run_id in self._free
            self._free.discard(run_id)
            stated = self._priced.pop(run_id, None)
        if event is None:
            return
        generation: Any = response.generations[0][0] if response.generations else None
        message = getattr(generation, "message", None)
        usage = getattr(message, "usage_metadata", None) or {}
        meta = getattr(message, "response_metadata", None) or {}
        details = usage.get("input_token_details") or {}
        event.input_tokens = int(usage.get("input_tokens", 0))
        event.output_tokens = int(usage.get("output_tokens", 0))
        event.name = str(meta.get("model_name") or event.name or "")
        cost = price_of(
            event.name,
            event.input_tokens,
            event.output_tokens,
            {**(self.prices or {}), **stated} if stated else self.prices,
            cache_read_tokens=int(details.get("cache_read") or 0),
            cache_write_tokens=int(details.get("cache_creation") or 0),
            free=free,
        )
        event.cost = cost or 0.0
        event.data = {
            "finish_reason": meta.get("finish_reason"),
            "tool_calls": len(getattr(message, "tool_calls", None) or []),
            "priced": cost is not None,
        }
        self._put(event)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Close a model event as failed."""
        event = self._end(run_id)
        with self._lock:
            self._free.discard(run_id)
            self._priced.pop(run_id, None)
        if event is not None:
            event.status = "error"
            event.data = {"error": f"{type(error).__name__}: {error}"[:500]}
            self._put(event)

    # -- tool calls -----------------------------------------------------------------
    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Open a tool event."""
        self._start("tool", run_id, parent_run_id, metadata, (serialized or {}).get("name"))

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Close a tool event."""
        event = self._end(run_id)
        if event is not None:
            if isinstance(output, ToolMessage):
                event.status = "error" if output.status == "error" else "ok"
                event.data = {"tool_call_id": output.tool_call_id}
            self._put(event)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Close a tool event as failed (or as interrupted, when a human was asked)."""
        event = self._end(run_id)
        if event is not None:
            if isinstance(error, GraphBubbleUp):
                event.status = "interrupted"
                event.data = {"interrupted": "waiting for a human"}
            else:
                event.status = "error"
                event.data = {"error": f"{type(error).__name__}: {error}"[:500]}
            self._put(event)

    # -- podium events ----------------------------------------------------------------
    def on_custom_event(
        self,
        name: str,
        data: Any,
        *,
        run_id: UUID,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Record ``podium.<kind>`` events."""
        if not name.startswith("podium."):
            return
        details = dict(data) if isinstance(data, Mapping) else {"value": data}
        now = time.time()
        started = _seconds(details.pop("started_at", None))
        ended = _seconds(details.pop("ended_at", None))
        self._put(
            RunEvent(
                kind=name.removeprefix("podium."),
                thread_id=_meta_str(metadata, "thread_id") or "",
                agent=_agent(metadata, details.pop("agent", None)),
                node=_meta_str(metadata, "langgraph_node"),
                name=str(details.pop("name")) if "name" in details else None,
                started_at=started if started is not None else now,
                ended_at=(ended or now) if started is not None else None,
                status=str(details.pop("status", "ok")),
                run_id=str(run_id),
                data=details,
            )
        )
