"""The scale-out load test, short: workers killed while they serve 50 threads.

The CI version of ``benchmarks/bench_scaleout.py`` (rows 11a-11f): worker processes
serve 50 two-turn conversations with gated and ungated side-effecting tools, a
decider process approves, and a worker is SIGKILLed every few tenths of a second and
replaced
-- on one SQLite file and on one PostgreSQL database. Nothing may be lost,
duplicated or left stuck. The long version (2, 4 and 8 workers, 80 eight-turn
threads, and the same load on stock LangGraph) runs only in the benchmarks.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._scaleout import Load, Outcome, run_load  # noqa: E402

KILL_EVERY = (0.2, 0.5)
"""Seconds between two kills: several while the 100 turns run (a few seconds)."""


def check(outcome: Outcome) -> None:
    assert outcome.acked == outcome.turns == 100
    assert outcome.kills >= 2  # workers really died mid-load
    assert outcome.busy > 0  # two turns really met on one thread
    assert outcome.approvals >= 30  # a third of the turns were gated
    assert outcome.lost_turns == 0
    assert outcome.duplicated_effects == 0
    assert outcome.lost_approvals == 0
    assert outcome.stuck_threads == 0


def test_workers_killed_under_load_on_one_sqlite_file(tmp_path: Path) -> None:
    load = Load("podium", str(tmp_path / "runs.sqlite"), 3, 50, 2, tmp_path, KILL_EVERY)
    check(run_load(load))


@pytest.mark.postgres
def test_workers_killed_under_load_on_postgres(tmp_path: Path, postgres_server: Any) -> None:
    url = postgres_server.create_database()
    try:
        check(run_load(Load("podium", url, 3, 50, 2, tmp_path, KILL_EVERY)))
    finally:
        postgres_server.drop_database(url)
