# ruff: noqa: RUF001, RUF002
"""11. Scale-out under chaos: many workers, many threads, workers killed (rows 11a–11h).

Rows 11a–11f run :func:`benchmarks._scaleout.run_load` -- N worker processes
(2, 4, 8) serving M threads of multi-turn conversations with gated and ungated
side-effecting tools, a decider process giving the approvals, and a chaos process
SIGKILLing a random worker every few seconds and starting a new one -- on one SQLite
file and on one PostgreSQL database, for podium and, in the same run, for the same
load on stock LangGraph (hand-written agent, LangGraph's savers, ``interrupt()`` for
approvals, no podium). The stock run stops when podium's took 1.5× as long (plus a
drain): what it could not finish by then counts as stuck.

Rows 11g/11h are the lease's own cost: a plain ``invoke`` turn of a podium agent
with a side-effecting tool, with thread leases on (the default) against
``PODIUM_THREAD_LEASE=off`` (which registers the thread as before leases existed:
one write when the run starts, one when it ends), interleaved in one process.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import _scenarios as S
from benchmarks._harness import Row, fmt_time, interleave, ratio_row
from benchmarks._scaleout import Load, Outcome, run_load
from podium.checkpoints import postgres_saver, sqlite_saver

ROOT = Path(__file__).resolve().parent.parent
WORKERS = (2, 4, 8)
IDS = {("sqlite", 2): "11a", ("sqlite", 4): "11b", ("sqlite", 8): "11c"}
IDS |= {("postgres", 2): "11d", ("postgres", 4): "11e", ("postgres", 8): "11f"}


def _postgres() -> tuple[Any, str]:
    """A throwaway PostgreSQL server (``tests/_postgres.py``), or why there is none."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import _postgres
    finally:
        sys.path.remove(str(ROOT / "tests"))
    server, why = _postgres.start_server()
    return server, why or ""


def _figures(o: Outcome) -> str:
    p50, p95 = o.percentile(o.latency, 50), o.percentile(o.latency, 95)
    return (
        f"{o.rate:.1f} turns/s, p50 {fmt_time(p50)}, p95 {fmt_time(p95)}; lost turns "
        f"{o.lost_turns}, duplicated effects {o.duplicated_effects}, lost approvals "
        f"{o.lost_approvals}, stuck threads {o.stuck_threads}"
    )


def _row(backend: str, workers: int, podium: Outcome, stock: Outcome) -> Row:
    load = podium.load
    waits = podium.lease_waits
    lease = (
        f"lease waits: {len(waits)} turns found their thread busy ({podium.busy} refusals), "
        f"waited p50 {fmt_time(podium.percentile(waits, 50))}, "
        f"p95 {fmt_time(podium.percentile(waits, 95))}"
        if waits
        else "no turn found its thread busy"
    )
    note = (
        f"{load.threads} threads × {load.turns} turns; podium: {podium.acked}/{podium.turns} "
        f"turns acknowledged, {podium.kills} workers killed, {podium.approvals} approvals; "
        f"{lease}; errors {podium.errors}"
        + (f" (e.g. {podium.sample_error[:120]})" if podium.sample_error else "")
        + f". Stock: {stock.acked}/{stock.turns} acknowledged in {stock.seconds:.0f} s, "
        f"{stock.kills} killed, {stock.approvals} approvals, errors {stock.errors}"
        + (f" (e.g. {stock.sample_error[:120]})" if stock.sample_error else "")
    )
    return Row(
        IDS[(backend, workers)],
        f"Scale-out under chaos, {'one SQLite file' if backend == 'sqlite' else 'PostgreSQL'}, "
        f"{workers} workers + a decider, a worker SIGKILLed every "
        f"{load.kill_every[0]:g}–{load.kill_every[1]:g} s (podium vs stock LangGraph)",
        _figures(podium),
        _figures(stock),
        podium.rate / stock.rate if stock.rate else None,
        "0 lost / duplicated / lost approvals / stuck",
        podium.clean,
        note=note,
    )


def _skipped(backend: str, workers: int, why: str) -> Row:
    return Row(
        IDS[(backend, workers)],
        f"Scale-out under chaos, {backend}, {workers} workers",
        "not run",
        "not run",
        None,
        "—",
        None,
        note=why,
    )


def _loads(backend: str, db: Callable[[str], str], quick: bool, home: Path) -> list[Row]:
    threads, turns = (6, 2) if quick else (80, 8)
    rows = []
    for workers in WORKERS:
        if quick and workers != 2:
            rows.append(_skipped(backend, workers, "quick mode runs 2 workers only"))
            continue
        kill = (0.5, 1.0) if quick else (1.5, 3.0)
        folder = home / f"{backend}-{workers}"
        podium = run_load(
            Load("podium", db("podium"), workers, threads, turns, folder / "podium", kill)
        )
        limit = max(10.0, 1.5 * podium.seconds)
        stock = run_load(
            Load(
                "stock",
                db("stock"),
                workers,
                threads,
                turns,
                folder / "stock",
                kill,
                limit=limit,
                drain=5.0,
            )
        )
        rows.append(_row(backend, workers, podium, stock))
        print(f"  {rows[-1].id} podium: {_figures(podium)} | stock: {_figures(stock)}", flush=True)
    return rows


def _turn(app_of: Callable[[], Any], leases: bool, turns: int) -> Callable[[], float]:
    def sample() -> float:
        os.environ["PODIUM_THREAD_LEASE"] = "on" if leases else "off"
        app = app_of()
        configs = [{"configurable": {"thread_id": uuid.uuid4().hex}} for _ in range(turns)]
        start = time.perf_counter()
        for config in configs:
            app.invoke({"messages": [("user", S.USER)]}, config)
        return (time.perf_counter() - start) / turns

    return sample


def _lease_cost(row: str, backend: str, saver: Any, quick: bool) -> Row:
    turns, repeats = (1, 2) if quick else (5, 15)

    def app() -> Any:
        return S.podium_loop(turns, 5, read_only=False).compile(checkpointer=saver)

    saved = os.environ.get("PODIUM_THREAD_LEASE")
    try:
        stats = interleave(
            {"on": _turn(app, True, turns), "off": _turn(app, False, turns)}, repeats=repeats
        )
    finally:
        if saved is None:
            os.environ.pop("PODIUM_THREAD_LEASE", None)
        else:
            os.environ["PODIUM_THREAD_LEASE"] = saved
    return ratio_row(
        row,
        f"Lease cost, {backend}: a plain `invoke` turn of a podium agent with a side-effecting "
        "tool (11 steps), thread leases on vs `PODIUM_THREAD_LEASE=off`",
        stats["on"],
        stats["off"],
        target=None,
        note="on: a read and a compare-and-set to take the lease, the fence's check in every "
        "checkpoint, task write and tool-call start, a guarded release; off: the registry's "
        "two writes a run, as before leases",
    )


def run(quick: bool) -> list[Row]:
    home = Path(tempfile.mkdtemp(prefix="podium-bench-scaleout-"))
    rows = _loads(
        "sqlite", lambda side: str(home / f"{side}-{uuid.uuid4().hex[:6]}.sqlite"), quick, home
    )
    with sqlite_saver(home / "lease-cost.sqlite") as saver:
        cost = [_lease_cost("11g", "SQLite", saver, quick)]
    server, why = _postgres()
    if server is None:
        rows += [_skipped("postgres", n, f"no PostgreSQL: {why}") for n in WORKERS]
        cost.append(
            Row(
                "11h",
                "Lease cost, PostgreSQL",
                "not run",
                "not run",
                None,
                "—",
                None,
                note=f"no PostgreSQL: {why}",
            )
        )
        return rows + cost
    try:
        rows += _loads(
            "postgres", lambda side: server.create_database(empty=side == "stock"), quick, home
        )
        with postgres_saver(server.create_database(), pool_size=4) as saver:
            cost.append(_lease_cost("11h", "PostgreSQL", saver, quick))
    finally:
        server.stop()
    return rows + cost
