"""Who runs a call: a process's identity in the ledger, and whether it still lives.

A ``started`` row names its ``owner`` -- ``host|pid|start time|nonce`` -- so another
process can tell a call someone is running from one whose process died mid-call
(*in doubt*). On the same host the kernel answers (the pid runs, with the same start
time, and is not a zombie); across hosts a heartbeat does (fresh within
:data:`STALE_SECONDS`).
"""

from __future__ import annotations

import os
import socket
import time
import uuid

__all__ = ["HEARTBEAT_SECONDS", "STALE_SECONDS", "owner_alive", "process_owner"]

HEARTBEAT_SECONDS = 2.0
"""How often a process refreshes the heartbeat of the calls it is running."""
STALE_SECONDS = 15.0
"""A ``started`` call of another host whose heartbeat is older than this is in doubt."""


def _process_start(pid: int) -> str:
    """The kernel's start time of ``pid`` if it runs (tells it from a reused pid).

    ``""`` when there is no such process, or it has exited and waits to be reaped
    (a zombie keeps its start time but runs nothing).
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        if fields[0] in ("Z", "X"):  # field 3, the state: a zombie or dead
            return ""
        return fields[19]  # field 22 (starttime)
    except (OSError, IndexError):
        return ""


_HOST = socket.gethostname()
_NONCE = uuid.uuid4().hex[:12]


def process_owner() -> str:
    """This process as a ledger ``owner``: ``host|pid|start time|nonce``.

    Computed per call, so a forked child process gets its own identity.
    """
    pid = os.getpid()
    return f"{_HOST}|{pid}|{_process_start(pid)}|{_NONCE if pid == _PID else 'fork'}"


_PID = os.getpid()


def owner_alive(owner: str | None, heartbeat_at: float | None, running_here: bool) -> bool:
    """Whether the process that started a call may still be running it.

    Args:
        owner: The row's ``owner`` (``None`` for rows written before owners existed).
        heartbeat_at: The row's last heartbeat (epoch seconds).
        running_here: Whether this process is running the call right now.

    A call of this process is alive only while this process runs it; a call of
    another process on this host is alive while that process lives (same pid and
    start time); a call of another host is alive while its heartbeat is fresh.
    """
    if not owner:
        return False
    host, _, rest = owner.partition("|")
    pid_text, _, rest = rest.partition("|")
    started, _, _ = rest.partition("|")
    if owner == process_owner():
        return running_here
    if host == _HOST and pid_text.isdigit() and started:  # this host: ask the kernel
        pid = int(pid_text)
        return pid != os.getpid() and _process_start(pid) == started
    return heartbeat_at is not None and time.time() - heartbeat_at < STALE_SECONDS
