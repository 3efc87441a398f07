"""Fixtures for the environments tests: a real bubblewrap, a workspace per test."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import _bwrap  # tests/_bwrap.py: installs bubblewrap with apt-get when missing
from podium.environments import Workspace


@pytest.fixture(scope="session")
def sandbox() -> str:
    """bubblewrap's version; installed first when missing (skipped only if it cannot be)."""
    reason = _bwrap.install()
    if reason is not None:
        pytest.skip(f"bubblewrap unavailable: {reason}")
    from podium.environments._sandbox import check_sandbox

    return check_sandbox()  # installed but unable to start: a failure, not a skip


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A podium home: the database beside the workspaces, as `podium` lays them out."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def ws(home: Path) -> Workspace:
    return Workspace(home / "workspaces")


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
