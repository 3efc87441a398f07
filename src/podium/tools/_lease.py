"""Taking a thread for a run: one run per thread at a time, and what a second run does.

Every top-level run of a podium graph on a checkpointer takes its thread's lease
before it reads the thread's state, and releases it when it ends (see
:mod:`podium.checkpoints._leases` for the lease itself and fencing). A run that
finds the thread held follows its **multitask strategy**, named as LangGraph
Server names its own, chosen per run in ``configurable``:

* ``"reject"`` (the default) -- raise :class:`~podium.errors.ThreadBusyError` at
  once, naming the process that holds the thread and since when; nothing changed.
* ``"enqueue"`` -- wait until the thread is free, up to
  ``configurable["podium_multitask_timeout"]`` seconds (default 60), then take it;
  past that, :class:`~podium.errors.ThreadBusyError` (with how long it waited).
  Waiters poll; the order in which several waiters get the thread is not defined.

LangGraph Server's ``"interrupt"`` and ``"rollback"`` stop the running run, which
podium cannot do to another process's run: they are refused here, and work as the
server's own strategies (see :data:`SERVED_STRATEGY`).

``PODIUM_THREAD_LEASE=off`` turns leases off (for a deployment where something
else already runs one run per thread, such as LangGraph Server on its own
database): runs still register their threads, but a second run is not refused
and writes are not fenced. The exactly-once ledger's compare-and-set still keeps
each decision single and each side effect once.

A thread is free when no run holds it, when its holder's process is dead (on the
same host the kernel says so: the thread is taken at once), or when its holder's
lease expired (no heartbeat for ``PODIUM_LEASE_SECONDS``, default 30: a process on
another host that died, or one that is paused). A run that takes the thread from a
holder that is gone knows the thread's last run did not end (:attr:`Taken.recovers`).
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal, cast

from podium.checkpoints._leases import Lease, lease_seconds
from podium.checkpoints._ledger import ToolLedger
from podium.checkpoints._owners import owner_alive, process_owner
from podium.checkpoints._threads import ThreadRecord, ThreadStatus
from podium.errors import ConfigurationError, ThreadBusyError
from podium.tools import _inflight

__all__ = [
    "LEASES_ENV",
    "MULTITASK_KEY",
    "MULTITASK_TIMEOUT_KEY",
    "SERVED_STRATEGY",
    "Claimant",
    "Multitask",
    "Taken",
    "busy",
    "leases_on",
    "multitask",
    "release",
]

LEASES_ENV = "PODIUM_THREAD_LEASE"
"""Environment variable: ``off`` turns thread leases off (see the module docs)."""
MULTITASK_KEY = "podium_multitask"
"""``configurable`` key: what a run does when its thread is busy (``reject`` | ``enqueue``)."""
MULTITASK_TIMEOUT_KEY = "podium_multitask_timeout"
"""``configurable`` key: how long ``enqueue`` waits for the thread, in seconds."""
ENQUEUE_TIMEOUT = 60.0
"""The default of :data:`MULTITASK_TIMEOUT_KEY`."""
SERVED_STRATEGY = "enqueue"
"""The default strategy of a run that LangGraph Server started.

The server already runs one run per thread and applies its own multitask strategy
(``reject``, ``enqueue``, ``interrupt``, ``rollback``) before it starts a run (after
an interrupted run has ended and released its lease). A run it starts may still
find the thread held by a process outside the server (a worker or the CLI sharing
``PODIUM_LEDGER``), so it waits for it instead of failing."""

Strategy = Literal["reject", "enqueue"]
_SERVER_ONLY = ("interrupt", "rollback")


@dataclass(frozen=True)
class Multitask:
    """A run's multitask strategy (see the module docs)."""

    strategy: Strategy
    """``reject`` or ``enqueue``."""
    timeout: float
    """How long ``enqueue`` waits (seconds)."""


def leases_on() -> bool:
    """Whether runs take thread leases (``PODIUM_THREAD_LEASE`` is not ``off``).

    Raises:
        ConfigurationError: For a value other than ``on`` / ``off``.
    """
    raw = os.environ.get(LEASES_ENV, "on").strip().lower()
    if raw in ("on", "1", "true", "yes", ""):
        return True
    if raw in ("off", "0", "false", "no"):
        return False
    raise ConfigurationError(
        f"{LEASES_ENV}={raw!r} is neither 'on' nor 'off'.",
        fix="Leave it unset (one run per thread, the default), or set it to 'off' where "
        "something else already runs one run per thread.",
    )


def multitask(conf: Mapping[str, Any], served: bool) -> Multitask:
    """The strategy a run's ``configurable`` asks for (``served``: LangGraph Server's run).

    Raises:
        ConfigurationError: For an unknown strategy or a timeout that is not a
            non-negative number.
    """
    given = conf.get(MULTITASK_KEY)
    strategy = given if given is not None else (SERVED_STRATEGY if served else "reject")
    if strategy not in ("reject", "enqueue"):
        server = (
            f" {strategy!r} stops the run in progress, which podium cannot do to another "
            "process's run; it is one of LangGraph Server's own strategies "
            "(runs.create(..., multitask_strategy=...)), which compose with podium's lease."
            if strategy in _SERVER_ONLY
            else ""
        )
        raise ConfigurationError(
            f"configurable {MULTITASK_KEY!r} is {strategy!r}; podium's runs know 'reject' "
            f"(the default: a busy thread raises ThreadBusyError) and 'enqueue' (wait for "
            f"it).{server}",
            fix=f"Pass {MULTITASK_KEY!r}: 'reject' or 'enqueue' (with "
            f"{MULTITASK_TIMEOUT_KEY!r}: seconds to wait, default {ENQUEUE_TIMEOUT:g}).",
        )
    raw = conf.get(MULTITASK_TIMEOUT_KEY, ENQUEUE_TIMEOUT)
    timeout = raw if isinstance(raw, int | float) and not isinstance(raw, bool) else math.nan
    if not timeout >= 0:
        raise ConfigurationError(
            f"configurable {MULTITASK_TIMEOUT_KEY!r} is {raw!r}, not a number of seconds.",
            fix=f"Pass how long 'enqueue' waits for a busy thread, e.g. "
            f"{MULTITASK_TIMEOUT_KEY!r}: 30 (default {ENQUEUE_TIMEOUT:g}).",
        )
    return Multitask("enqueue" if strategy == "enqueue" else "reject", float(timeout))


@dataclass(frozen=True)
class Taken:
    """A lease this run took."""

    lease: Lease
    """The lease (the run carries it in ``configurable``; its writes are fenced by it)."""
    recovers: bool
    """It was taken from a holder that is gone: the thread's last run never ended."""
    waited: float
    """Seconds spent waiting for the thread (``enqueue``)."""
    leased: bool = True
    """``False``: leases are off; the run only registered (nothing is fenced)."""


class Claimant:
    """One run trying to take its thread (``take`` / ``atake``), then letting it go."""

    def __init__(
        self,
        ledger: ToolLedger,
        thread: str,
        how: Multitask,
        *,
        graph: str | None = None,
        description: str | None = None,
        request: str | None = None,
    ) -> None:
        self.ledger = ledger
        self.thread = thread
        self.how = how
        self.graph = graph
        self.description = description
        self.request = request
        self.seconds = lease_seconds()
        self.leased = leases_on()

    def attempt(self) -> Taken | ThreadRecord:
        """One try: the lease, or the row of the run that holds the thread."""
        if not self.leased:  # registered only: never refused, never fenced
            lease = self.ledger.take_lease(
                self.thread,
                owner=process_owner(),
                seconds=self.seconds,
                seen=None,
                location=self.ledger.location,
                graph=self.graph,
                description=self.description,
                request=self.request,
                force=True,
            )
            _inflight.hold(self.ledger, cast(Lease, lease))  # the row stays fresh while it runs
            return Taken(cast(Lease, lease), False, 0.0, leased=False)
        while True:
            seen = self.ledger.thread(self.thread)
            if seen is not None and not self._free(seen):
                return seen
            lease = self.ledger.take_lease(
                self.thread,
                owner=process_owner(),
                seconds=self.seconds,
                seen=seen,
                location=self.ledger.location,
                graph=self.graph,
                description=self.description,
                request=self.request,
            )
            if lease is not None:
                _inflight.hold(self.ledger, lease)
                # taken from a holder that is gone (dead, or its lease expired)?
                return Taken(lease, seen is not None and bool(seen.owner), 0.0)
            # another run changed the row between the read and the take: read it again

    def _free(self, seen: ThreadRecord) -> bool:
        if not seen.owner:
            return True
        if seen.expired:
            return True
        # this host's kernel knows whether its processes live; a run of this process
        # holds it only while registered here
        return not owner_alive(seen.owner, time.time(), _inflight.holding(self.ledger, self.thread))

    def take(self) -> Taken:
        """Take the thread, waiting under ``enqueue`` (blocks this thread).

        Raises:
            ThreadBusyError: If the thread is held (``reject``), or still held after
                the timeout (``enqueue``).
        """
        started = time.monotonic()
        pause = 0.01
        while True:
            got = self.attempt()
            if isinstance(got, Taken):
                return replace(got, waited=time.monotonic() - started)
            self._check(got, started)
            time.sleep(pause)
            pause = min(pause * 2, 0.25)

    async def atake(self) -> Taken:
        """:meth:`take` for an event loop: each try runs in a worker thread."""
        started = time.monotonic()
        pause = 0.01
        while True:
            attempt = asyncio.ensure_future(asyncio.to_thread(self.attempt))
            try:
                got = await asyncio.shield(attempt)
            except asyncio.CancelledError:  # a lease taken meanwhile must not stay held
                attempt.add_done_callback(self._drop)
                raise
            if isinstance(got, Taken):
                return replace(got, waited=time.monotonic() - started)
            self._check(got, started)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.25)

    def _drop(self, attempt: asyncio.Future[Taken | ThreadRecord]) -> None:
        if not attempt.cancelled() and attempt.exception() is None:
            got = attempt.result()
            if isinstance(got, Taken):
                release(self.ledger, got, "stopped", counted=False)

    def _check(self, holder: ThreadRecord, started: float) -> None:
        waited = time.monotonic() - started
        if self.how.strategy == "enqueue" and waited < self.how.timeout:
            return
        raise busy(holder, waited, self.how)


def release(
    ledger: ToolLedger,
    taken: Taken,
    status: ThreadStatus,
    error: str | None = None,
    *,
    counted: bool = True,
) -> bool:
    """End the run's hold on its thread (see ``ThreadRegistry.release_lease``)."""
    _inflight.let_go(ledger, taken.lease)
    return ledger.release_lease(taken.lease, status, error, counted=counted, force=not taken.leased)


def _when(epoch: float | None) -> str:
    if not epoch:
        return "an unknown time"
    return datetime.fromtimestamp(epoch).isoformat(sep=" ", timespec="seconds")


def busy(holder: ThreadRecord, waited: float, how: Multitask) -> ThreadBusyError:
    """The error for a run refused because ``holder`` holds the thread."""
    since = holder.leased_at
    ago = f", {time.time() - since:.1f} s ago" if since else ""
    waiting = (
        f"This run waited {waited:.1f} s for it ('enqueue', up to {how.timeout:g} s) and gave up"
        if how.strategy == "enqueue"
        else "podium runs one run per thread at a time, so this run was refused ('reject')"
    )
    fix = (
        f"Retry when that run has ended, or raise {MULTITASK_TIMEOUT_KEY!r}."
        if how.strategy == "enqueue"
        else f"Retry when that run has ended, or pass configurable {MULTITASK_KEY!r}: "
        f"'enqueue' to wait for it (up to {MULTITASK_TIMEOUT_KEY!r} seconds, default "
        f"{ENQUEUE_TIMEOUT:g})."
    )
    return ThreadBusyError(
        f"Thread {holder.thread_id!r} is busy: a run of process {holder.owner} holds it since "
        f"{_when(since)}{ago} (its lease runs to {_when(holder.lease_until)} unless renewed). "
        f"{waiting}; nothing changed.",
        fix=fix,
        thread=holder.thread_id,
        holder=holder.owner,
        since=since,
        waited=waited,
    )
