"""Fixtures for the environments tests: a real bubblewrap, a workspace per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from podium.environments import Workspace


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A podium home: the database beside the workspaces, as `podium` lays them out."""
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def ws(home: Path) -> Workspace:
    return Workspace(home / "workspaces")
