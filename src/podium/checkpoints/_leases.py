"""Thread leases: one run per thread at a time, and fencing for a run that lost its thread.

A top-level run of a podium graph holds its thread's **lease** while it runs: the
thread's row in ``podium_threads`` (see :mod:`podium.checkpoints._threads`) names the
process that holds it (``owner``), since when (``leased_at``), until when
(``lease_until``, pushed forward by a heartbeat) and a **generation**
(``lease_gen``), which grows by one every time a run takes the thread. A run takes
the lease with compare-and-set on the generation it read, so of two runs that try at
once exactly one gets it.

A lease ends when its run ends (released), when its process is dead (on the same
host the kernel says so, and the thread can be taken at once), or when its heartbeat
stopped for longer than the lease lasts (another host, or a process that is paused:
``SIGSTOP``, a debugger, a laptop lid). Expiry compares the holder's clock (it
wrote ``lease_until``) with the taker's: hosts must agree to well within the lease
time (NTP does; the default lease is 30 s). A run that takes an expired lease increments
the generation; the paused process may wake up and carry on, so every write a run
makes -- each checkpoint, each task's writes, the start of each side-effecting tool
call, each request for a human -- is **fenced**: it carries the run's
:class:`Lease`, and the statement that writes checks, in the same transaction, that
the thread's row still has that generation and owner. A run that lost its thread
therefore writes nothing more; its write fails with
:class:`~podium.errors.LeaseLostError`.

This module holds what the savers and the ledger need for that check (the
:class:`Lease` a run carries in ``configurable[LEASE_KEY]`` and the SQL); taking,
renewing and releasing leases is the registry's (:class:`ThreadRegistry
<podium.checkpoints._threads.ThreadRegistry>`), and the strategy for a busy thread
(``reject`` / ``enqueue``) is :mod:`podium.tools._lease`'s. Standard library only.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from podium.errors import ConfigurationError, LeaseLostError

__all__ = [
    "FENCE_SQL",
    "LEASE_KEY",
    "LEASE_SECONDS",
    "LEASE_SECONDS_ENV",
    "Lease",
    "lease_lost",
    "lease_of",
    "lease_seconds",
]

LEASE_KEY = "__podium_lease"
"""The ``configurable`` key carrying the running top-level run's :class:`Lease`.

A ``__`` key: LangGraph passes it to the saver's ``put`` / ``put_writes`` and to every
nested graph and node, but does not copy it into checkpoint metadata."""

LEASE_SECONDS = 30.0
"""How long a lease lasts without a heartbeat (the default)."""
LEASE_SECONDS_ENV = "PODIUM_LEASE_SECONDS"
"""Environment variable overriding :data:`LEASE_SECONDS` (seconds, > 0)."""

FENCE_SQL = "SELECT 1 FROM podium_threads WHERE thread_id = ? AND lease_gen = ? AND owner = ?"
"""True while the run holding generation ``lease_gen`` still holds the thread."""


@dataclass(frozen=True)
class Lease:
    """A run's hold on its thread (see the module docs)."""

    thread: str
    """The thread."""
    generation: int
    """The lease's generation: the thread's row must still have it for a write."""
    owner: str
    """The process holding it (``host|pid|start time|nonce``)."""
    location: str
    """The database the lease row is in (``ToolLedger.location``): a saver fences
    its writes only when its ledger is there."""
    seconds: float
    """How long it lasts without a heartbeat."""
    since: float
    """When the run took it (epoch seconds)."""

    @property
    def params(self) -> tuple[str, int, str]:
        """The parameters of :data:`FENCE_SQL`."""
        return (self.thread, self.generation, self.owner)


def lease_seconds() -> float:
    """How long a lease lasts: ``PODIUM_LEASE_SECONDS``, else :data:`LEASE_SECONDS`.

    Raises:
        ConfigurationError: If the variable is not a positive number.
    """
    raw = os.environ.get(LEASE_SECONDS_ENV, "").strip()
    if not raw:
        return LEASE_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise ConfigurationError(
            f"{LEASE_SECONDS_ENV}={raw!r} is not a positive number of seconds.",
            fix=f"Set it to how long a thread's lease lasts without a heartbeat (default "
            f"{LEASE_SECONDS:g}); the heartbeat renews it every third of that.",
        )
    return value


def lease_of(config: Mapping[str, Any] | None, location: str) -> Lease | None:
    """The lease a write under ``config`` must be fenced with, for a store at ``location``.

    ``None`` when the run holds no lease (a graph that is not podium's, a saver used
    directly) or its lease lives in another database (``PODIUM_LEDGER`` elsewhere):
    that write is not fenced.
    """
    conf = (config or {}).get("configurable") or {}
    lease = conf.get(LEASE_KEY)
    if not isinstance(lease, Lease) or lease.location != location:
        return None
    if str(conf.get("thread_id", "")) != lease.thread:
        return None
    return lease


def _when(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch).strftime("%H:%M:%S") if epoch else "an unknown time"


def lease_lost(lease: Lease, what: str, holder: str | None, since: float | None) -> LeaseLostError:
    """The error for a fenced write refused because ``lease`` is no longer the thread's."""
    now = time.time()
    taken = (
        f"it is held by {holder} since {_when(since)}"
        if holder
        else "nobody holds it now (another run took it and ended, or it was deleted)"
    )
    return LeaseLostError(
        f"This run no longer holds thread {lease.thread!r}, so its {what} was refused and "
        f"nothing was written: its lease (generation {lease.generation}, taken at "
        f"{_when(lease.since)}, {now - lease.since:.1f} s ago) expired without a heartbeat "
        f"-- the process was paused or too busy for more than {lease.seconds:g} s -- and "
        f"another run took the thread over; {taken}.",
        fix="Nothing to repair: the thread continues in the run that took it over, and "
        "nothing this run did after losing it was saved. Send this run's input again if "
        f"the thread's history does not show it. If pauses are expected, raise "
        f"{LEASE_SECONDS_ENV} (now {lease.seconds:g}).",
    )
