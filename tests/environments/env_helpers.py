"""Helpers shared by the environments tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def cfg(thread: str = "t1", agent: str | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {"configurable": {"thread_id": thread}}
    if agent:
        config["metadata"] = {"podium_agent": agent}
    return config


def processes_with(marker: str) -> list[int]:
    """Pids of live processes whose command line contains ``marker`` as one argument."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            args = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker.encode() in args:
            found.append(int(entry))
    return found
