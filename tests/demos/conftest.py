"""Fixtures for the demo tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from demo_helpers import OpenDemo, Process
from langchain_core.language_models import BaseChatModel

from podium.demos import DEMOS


@pytest.fixture
def open_demo(tmp_path: Path) -> Iterator[OpenDemo]:
    """``open_demo(name, model)``: a new "process" on the test's demo home."""
    opened: list[Process] = []

    def open_(name: str, model: BaseChatModel | str) -> Process:
        process = Process(DEMOS[name], tmp_path / "home", model)
        opened.append(process)
        return process

    yield open_
    for process in opened:
        process.close()
