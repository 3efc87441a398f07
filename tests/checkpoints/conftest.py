"""Fixtures for the persistence tests: podium's own durable savers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from podium.checkpoints import postgres_saver, sqlite_saver


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def durable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Any]]:
    """Opens podium savers on one SQLite file or one Postgres database (per test)."""
    opened: list[Any] = []
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else ""

    def make() -> Any:
        saver = postgres_saver(url, pool_size=3) if url else sqlite_saver(tmp_path / "r.sqlite")
        opened.append(saver)
        return saver

    yield make
    for saver in opened:
        saver.close()
