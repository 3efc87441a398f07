"""What this process is running now: tool calls and thread leases, and their heartbeats.

A ``started`` row in the ledger means one of three things: this process is running
the call; another live process is; or the process that started it died mid-call
(the call is *in doubt*). :func:`~podium.checkpoints._owners.owner_alive` tells
them apart from the row's owner; this module keeps the first kind (a process-local
registry), refreshes the rows' heartbeats for processes on other hosts, and lets a
caller wait for a call that someone else is running.

The same registry and heartbeat thread keep the **thread leases** this process's
runs hold (:func:`hold` / :func:`let_go`, see :mod:`podium.checkpoints._leases`):
each is renewed every third of its lifetime, so it expires only when the process
is dead or stops running (paused) for longer than the lease lasts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from podium.checkpoints._leases import Lease
from podium.checkpoints._ledger import CallRecord, ToolLedger
from podium.checkpoints._owners import HEARTBEAT_SECONDS, owner_alive, process_owner
from podium.errors import CallInProgressError

__all__ = [
    "Rerun",
    "Started",
    "alive",
    "begin",
    "end",
    "hold",
    "holding",
    "let_go",
    "running_here",
    "start_once",
    "wait_for",
]

_Key = tuple[str, str, str]
_lock = threading.Lock()
_calls: dict[_Key, tuple[ToolLedger, str, int]] = {}
_leases: dict[tuple[str, str, int], tuple[ToolLedger, Lease, float]] = {}
"""Leases held here: (location, thread, generation) -> (ledger, lease, next renewal)."""
_wake = threading.Event()
_beating: threading.Thread | None = None


def _key(ledger: ToolLedger, thread: str, call_key: str) -> _Key:
    # by location: two ledger objects of this process on one database see the same calls
    return (ledger.location, thread, call_key)


def _pause() -> float:
    with _lock:
        due = [when for _, _, when in _leases.values()]
    return max(0.01, min([HEARTBEAT_SECONDS, *(when - time.time() for when in due)]))


_next_beat = 0.0
"""When the heartbeat thread wakes up next (it is woken earlier only for a lease due before)."""


def _beat() -> None:
    global _next_beat
    last_calls = 0.0
    while True:
        pause = _pause()
        _next_beat = time.time() + pause
        _wake.wait(pause)
        _wake.clear()
        now = time.time()
        with _lock:
            calls = list(_calls.items()) if now - last_calls >= HEARTBEAT_SECONDS else []
            leases = [(k, v) for k, v in _leases.items() if v[2] <= now]
        if calls:
            last_calls = now
        for (_, thread, call_key), (ledger, owner, _) in calls:
            try:
                ledger.heartbeat(thread, call_key, owner)
            except Exception:  # a heartbeat is best effort; liveness falls back to pids
                continue
        for key, (ledger, lease, _) in leases:
            with _lock:  # renew at a third of the lifetime; a failure retries soon
                if key in _leases:
                    _leases[key] = (ledger, lease, now + min(1.0, lease.seconds / 3))
            try:
                kept = ledger.renew_lease(lease)
            except Exception:  # the database is unreachable: try again shortly
                continue
            with _lock:
                if key in _leases:
                    if kept:
                        _leases[key] = (ledger, lease, time.time() + lease.seconds / 3)
                    else:  # taken over: its next fenced write fails; stop renewing
                        del _leases[key]


def _start_beating() -> None:
    global _beating
    if _beating is None:
        _beating = threading.Thread(target=_beat, name="podium-heartbeat", daemon=True)
        _beating.start()


def hold(ledger: ToolLedger, lease: Lease) -> None:
    """Keep ``lease`` alive (renewed by the heartbeat) until :func:`let_go`."""
    due = lease.since + lease.seconds / 3
    with _lock:
        _leases[(ledger.location, lease.thread, lease.generation)] = (ledger, lease, due)
        _start_beating()
    if due < _next_beat:  # a short lease: renew it before the thread's next wake-up
        _wake.set()


def let_go(ledger: ToolLedger, lease: Lease) -> None:
    """Stop renewing ``lease`` (its run ended)."""
    with _lock:
        _leases.pop((ledger.location, lease.thread, lease.generation), None)


def holding(ledger: ToolLedger, thread: str) -> bool:
    """Whether a run of this process holds ``thread``'s lease now."""
    with _lock:
        return any(k[0] == ledger.location and k[1] == thread for k in _leases)


def begin(ledger: ToolLedger, thread: str, call_key: str, owner: str) -> None:
    """Register a call this process is about to run (until the matching :func:`end`).

    Registrations are counted: two threads of this process that register the same
    call (one of them then loses the claim) leave it registered for the other.
    """
    key = _key(ledger, thread, call_key)
    with _lock:
        _, _, count = _calls.get(key, (ledger, owner, 0))
        _calls[key] = (ledger, owner, count + 1)
        _start_beating()


def end(ledger: ToolLedger, thread: str, call_key: str) -> None:
    """One registration of the call ended (see :func:`begin`)."""
    key = _key(ledger, thread, call_key)
    with _lock:
        found = _calls.get(key)
        if found is None:
            return
        if found[2] <= 1:
            del _calls[key]
        else:
            _calls[key] = (found[0], found[1], found[2] - 1)


def running_here(ledger: ToolLedger, thread: str, call_key: str) -> bool:
    """Whether this process is running the call now."""
    with _lock:
        return _key(ledger, thread, call_key) in _calls


def alive(ledger: ToolLedger, thread: str, call_key: str, record: CallRecord) -> bool:
    """Whether the process that started ``record``'s latest attempt may still run it."""
    return owner_alive(record.owner, record.heartbeat_at, running_here(ledger, thread, call_key))


def wait_for(ledger: ToolLedger, thread: str, call_key: str, timeout: float) -> CallRecord | None:
    """Wait until a call another process (or thread) runs is done, or its runner died.

    Returns:
        The call's latest record (``done``, or ``started`` by a process that died).

    Raises:
        CallInProgressError: If it is still running after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    pause = 0.02
    while True:
        record = ledger.get_call(thread, call_key)
        if record is None or record.status == "done":
            return record
        if not alive(ledger, thread, call_key, record):
            return record
        if time.monotonic() > deadline:
            raise CallInProgressError(
                f"Tool call {call_key!r} of thread {thread!r} ({record.tool}) is being run by "
                f"another worker ({record.owner}); it has not finished after {timeout:g} s.",
                fix="Nothing ran twice. Resume the thread again later: its result is then "
                "returned from the ledger.",
            )
        time.sleep(pause)
        pause = min(pause * 2, 0.5)


@dataclass(frozen=True)
class Started:
    """This process started the call (or took over an in-doubt one) and must run it."""

    idempotency_key: str
    """The call's idempotency key (the same on every attempt)."""


@dataclass(frozen=True)
class Rerun:
    """An in-doubt call may run again, with the arguments whose hash this is."""

    hashed: str


T = TypeVar("T")


def start_once(
    ledger: ToolLedger,
    thread: str,
    call_key: str,
    tool: str,
    hashed: str,
    *,
    idempotent: bool,
    in_doubt: Callable[[CallRecord], Rerun | T],
    wait: float = 60.0,
    args: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    absent: bool = False,
    lease: Lease | None = None,
) -> Started | CallRecord | T:
    """Start a side-effecting call exactly once.

    The caller runs a :class:`Started` call and then calls :func:`end` (the call is
    registered as running here from the moment it is claimed).

    Returns:
        :class:`Started` when this process must run the call; the ``done``
        :class:`~podium.checkpoints.CallRecord` when it already ran (replay its
        result); or what ``in_doubt`` returned for a call whose process died mid-call
        (unless that was :class:`Rerun`: then the call is taken over and started).
        A call another live process is running is waited for (up to ``wait``
        seconds, then :class:`~podium.errors.CallInProgressError`). An idempotent
        call in doubt runs again without asking, with the same idempotency key.
        ``absent=True`` says the caller has just read no row for the call (the first
        read is skipped; the claim decides). ``lease`` is the run's thread lease:
        the claim is fenced by it.

    Raises:
        LeaseLostError: If the run lost its thread (``lease``): nothing was started.
    """
    me = process_owner()
    while True:
        # ``absent``: the caller just found no row; the claim's compare-and-set settles it
        record = None if absent else ledger.get_call(thread, call_key)
        absent = False
        if record is None:
            # registered before the insert, so a thread of this process that loses the
            # claim sees the call running here, never in doubt
            begin(ledger, thread, call_key, me)
            try:
                claim = ledger.claim_call(
                    thread, call_key, tool, hashed, me, args, idempotency_key, lease=lease
                )
            except BaseException:
                end(ledger, thread, call_key)
                raise
            if claim.won:
                return Started(claim.record.idempotency_key)
            end(ledger, thread, call_key)
            record = claim.record
        if record.status == "done":
            return record
        if alive(ledger, thread, call_key, record):
            wait_for(ledger, thread, call_key, wait)
            continue
        fresh = ledger.get_call(thread, call_key)  # it may have finished since the read
        if fresh is None or fresh.status == "done" or fresh.owner != record.owner:
            continue
        if not idempotent:
            answer = in_doubt(record)
            if not isinstance(answer, Rerun):
                return answer
            hashed = answer.hashed
        begin(ledger, thread, call_key, me)
        try:
            taken = ledger.reclaim_call(thread, call_key, record.owner, me, hashed, lease=lease)
        except BaseException:
            end(ledger, thread, call_key)
            raise
        if taken:
            return Started(record.idempotency_key)
        end(ledger, thread, call_key)
