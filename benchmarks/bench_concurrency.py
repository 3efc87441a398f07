# ruff: noqa: RUF001
"""6. Concurrency: P processes share one SQLite file, each running S one-call turns.

Each process opens its own saver on the file (podium: ``sqlite_saver``; stock:
``SqliteSaver`` on ``sqlite3.connect(path)``, as ``from_conn_string`` opens it),
compiles, then all start together (a ``forkserver`` imported everything once).
Reported: lock errors ("database is locked") and completed turns per second over
the whole run. Podium and stock runs alternate, ``repeats`` times each; the median
throughput is reported and the lock errors are summed.
"""

from __future__ import annotations

import multiprocessing
import statistics
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import _scenarios as S
from benchmarks._concurrency_worker import work
from benchmarks._harness import Row
from podium.checkpoints import sqlite_saver


def _round(ctx: Any, side: str, path: Path, processes: int, steps: int) -> dict[str, Any]:
    ready, results = ctx.Barrier(processes), ctx.Queue()
    procs = [
        ctx.Process(target=work, args=(side, path, steps, ready, results)) for _ in range(processes)
    ]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=900) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    start = min(r["start"] for r in outcomes)
    end = max(r["end"] for r in outcomes)
    done = sum(r["done"] for r in outcomes)
    return {
        "rate": done / (end - start),
        "locked": sum(r["locked"] for r in outcomes),
        "errors": [e for r in outcomes for e in r["errors"]],
        "done": done,
    }


def run(quick: bool) -> list[Row]:
    processes, steps, repeats = (3, 5, 1) if quick else (16, 100, 3)
    home = Path(tempfile.mkdtemp(prefix="podium-bench-concurrency-"))
    sqlite_saver(home / "podium.sqlite").close()  # created once, before the race
    S.stock_saver(home / "stock.sqlite", tuned=False).conn.close()
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["benchmarks._concurrency_worker"])
    outcomes: dict[str, list[dict[str, Any]]] = {"podium": [], "stock": []}
    for r in range(repeats):
        for side in ("podium", "stock") if r % 2 == 0 else ("stock", "podium"):
            outcomes[side].append(_round(ctx, side, home / f"{side}.sqlite", processes, steps))
    rate = {k: statistics.median(o["rate"] for o in v) for k, v in outcomes.items()}
    locked = {k: sum(o["locked"] for o in v) for k, v in outcomes.items()}
    errors = {k: sum(len(o["errors"]) for o in v) for k, v in outcomes.items()}
    sample = next((e for v in outcomes.values() for o in v for e in o["errors"]), "")
    total = processes * steps * repeats
    return [
        Row(
            "6",
            f"Concurrency: {processes} processes × {steps} turns on one SQLite file "
            f"({repeats} rounds each)",
            f"{rate['podium']:.0f} turns/s, {locked['podium']} lock errors",
            f"{rate['stock']:.0f} turns/s, {locked['stock']} lock errors",
            rate["podium"] / rate["stock"] if rate["stock"] else None,
            "0 lock errors",
            locked["podium"] == 0 and errors["podium"] == 0,
            note=f"ratio: podium ÷ stock throughput; of {total} turns a side, other errors: "
            f"podium {errors['podium']}, stock {errors['stock']}"
            + (f" (e.g. {sample})" if sample else ""),
        )
    ]
