# ruff: noqa: RUF001
"""2. The durable step: what persisting one LangGraph step costs, against the floor.

Row 2c is what durable-by-default costs a user: the README's plain ``invoke`` of a
podium agent whose tool has a side effect (so podium runs it with
``durability="sync"`` and the exactly-once ledger) against a hand-written LangGraph
loop on the stock ``SqliteSaver`` with LangGraph's default ``durability="async"``,
as wall time per step, measured in the same run.

The workload is an agent loop (5 tool rounds, then an answer: 11 steps a turn)
run with ``durability="sync"``, so every step is on disk before the next starts.
The saver's ``put`` and ``put_writes`` (and, for a side-effecting tool, podium's
exactly-once ledger) are timed from the inside (wall clock, serialisation
included); a *durable step* is that time divided by the checkpoints written.

The floor is one ``INSERT`` of a 1 KB row plus ``COMMIT`` into a table keyed like
LangGraph's, on a connection with the same settings (WAL, ``synchronous=NORMAL``),
in the same directory, measured in the same run.
"""

from __future__ import annotations

import functools
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import _scenarios as S
from benchmarks._harness import Row, Stats, fmt_stats, interleave, ratio_row
from podium.checkpoints import sqlite_saver

ROUNDS = 5
FLOOR_BLOB = 1024


class Meter:
    """Wall time spent inside the wrapped methods, and how often ``put`` ran."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.checkpoints = 0
        self.transactions = 0

    def wrap(self, obj: Any, name: str, *, counts_checkpoint: bool = False) -> None:
        inner = getattr(obj, name)

        @functools.wraps(inner)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.transactions += 1
                self.checkpoints += counts_checkpoint

        setattr(obj, name, timed)


def step_case(
    build: Callable[[], Any], saver: Any, meter: Meter, turns: int
) -> Callable[[], float]:
    def sample() -> float:
        app = build().compile(checkpointer=saver)
        configs = [{"configurable": {"thread_id": uuid.uuid4().hex}} for _ in range(turns)]
        before = (meter.seconds, meter.checkpoints)
        for config in configs:
            app.invoke({"messages": [("user", S.USER)]}, config, durability="sync")
        return (meter.seconds - before[0]) / (meter.checkpoints - before[1])

    return sample


STEPS = 2 * ROUNDS + 1
"""LangGraph steps of one turn: model and tools per round, then the answer."""


def turn_case(
    build: Callable[[], Any], saver: Any, turns: int, **options: Any
) -> Callable[[], float]:
    """Wall time per step of whole turns, invoked as a user would (``options`` aside)."""

    def sample() -> float:
        app = build().compile(checkpointer=saver)
        configs = [{"configurable": {"thread_id": uuid.uuid4().hex}} for _ in range(turns)]
        start = time.perf_counter()
        for config in configs:
            app.invoke({"messages": [("user", S.USER)]}, config, **options)
        return (time.perf_counter() - start) / (turns * STEPS)

    return sample


def floor_case(path: Path, inserts: int) -> Callable[[], float]:
    db = sqlite3.connect(path, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS floor (thread_id TEXT, ns TEXT, id TEXT, value BLOB, "
        "PRIMARY KEY (thread_id, ns, id))"
    )
    db.commit()
    blob = bytes(range(256)) * (FLOOR_BLOB // 256)

    def sample() -> float:
        thread = uuid.uuid4().hex
        start = time.perf_counter()
        for i in range(inserts):
            db.execute("INSERT INTO floor VALUES (?, '', ?, ?)", (thread, str(i), blob))
            db.commit()
        return (time.perf_counter() - start) / inserts

    return sample


def run(quick: bool) -> list[Row]:
    turns, repeats = (1, 2) if quick else (4, 15)
    home = Path(tempfile.mkdtemp(prefix="podium-bench-durable-"))
    podium_saver = sqlite_saver(home / "podium.sqlite")
    ledger_saver = sqlite_saver(home / "ledger.sqlite")
    stock = S.stock_saver(home / "stock.sqlite", tuned=True)
    default_saver = sqlite_saver(home / "default.sqlite")
    async_stock = S.stock_saver(home / "async.sqlite", tuned=False)
    meters = {k: Meter() for k in ("podium", "ledger", "stock")}
    for key, saver in (("podium", podium_saver), ("ledger", ledger_saver), ("stock", stock)):
        meters[key].wrap(saver, "put", counts_checkpoint=True)
        meters[key].wrap(saver, "put_writes")
    meters["ledger"].wrap(ledger_saver.podium_ledger, "_execute")
    stats = interleave(
        {
            "podium": step_case(
                lambda: S.podium_loop(turns, ROUNDS), podium_saver, meters["podium"], turns
            ),
            "ledger": step_case(
                lambda: S.podium_loop(turns, ROUNDS, read_only=False),
                ledger_saver,
                meters["ledger"],
                turns,
            ),
            "stock": step_case(lambda: S.raw_loop(turns, ROUNDS), stock, meters["stock"], turns),
            "floor": floor_case(home / "floor.sqlite", 20 if quick else 200),
            "default": turn_case(
                lambda: S.podium_loop(turns, ROUNDS, read_only=False), default_saver, turns
            ),
            "async": turn_case(
                lambda: S.raw_loop(turns, ROUNDS), async_stock, turns, durability="async"
            ),
        },
        repeats=repeats,
    )
    per = {k: m.transactions / max(m.checkpoints, 1) for k, m in meters.items()}
    floor: Stats = stats["floor"]
    rows = [
        ratio_row(
            "2a",
            'Durable step (read-only tool loop, `durability="sync"`) vs one INSERT+COMMIT',
            stats["podium"],
            floor,
            target=2.0,
            note=f"{per['podium']:.2f} transactions per checkpoint; stock SqliteSaver: "
            f"{fmt_stats(stats['stock'])} = {stats['stock'].median / floor.median:.1f}× the floor, "
            f"{per['stock']:.2f} transactions per checkpoint",
        ),
        ratio_row(
            "2b",
            "Durable step with a side-effecting tool (exactly-once ledger) vs one INSERT+COMMIT",
            stats["ledger"],
            floor,
            target=None,
            note=f"{per['ledger']:.2f} transactions per checkpoint (checkpoint + writes + ledger)",
        ),
    ]
    rows.append(
        ratio_row(
            "2c",
            "Step wall time, the plain `invoke` of a podium agent with a side-effecting tool "
            '(durable by default: `"sync"` + ledger) vs raw LangGraph on stock `SqliteSaver`, '
            '`durability="async"`',
            stats["default"],
            stats["async"],
            target=None,
            note="what exactly-once on the default path costs per step (model and tool "
            "time included: scripted model, instant tool)",
        )
    )
    podium_saver.close()
    ledger_saver.close()
    default_saver.close()
    stock.conn.close()
    async_stock.conn.close()
    return rows
