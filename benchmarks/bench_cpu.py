"""1. Per-step orchestration CPU, and 9. the run ledger's share of it.

A sample runs ``turns`` user turns, each on a fresh thread (so history, and the
scripted model's copying of it, stays the same size), and divides the process CPU
time (``time.process_time``: every thread of the process, so LangGraph's checkpoint
thread and podium's run-ledger writer count) by the number of model calls. Podium's
run-ledger writer is flushed inside the timed region, so the events a sample
caused are paid for by that sample.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks import _scenarios as S
from benchmarks._harness import Row, interleave, ratio_row
from podium.checkpoints import sqlite_saver
from podium.tools._graph import run_ledger_for


@contextlib.contextmanager
def run_ledger(enabled: bool) -> Iterator[None]:
    """Compile with the run ledger on (the default) or off (``PODIUM_RUN_LEDGER=off``)."""
    old = os.environ.pop("PODIUM_RUN_LEDGER", None)
    if not enabled:
        os.environ["PODIUM_RUN_LEDGER"] = "off"
    try:
        yield
    finally:
        os.environ.pop("PODIUM_RUN_LEDGER", None)
        if old is not None:
            os.environ["PODIUM_RUN_LEDGER"] = old


def cpu_case(
    build: Callable[[int], Any], calls: int, turns: int, saver: Any = None, *, ledger: bool = True
) -> Callable[[], float]:
    """A sample: CPU seconds per model call over ``turns`` turns."""
    flush = run_ledger_for(saver) if ledger and saver is not None else None

    def sample() -> float:
        with run_ledger(ledger):
            app = build(turns).compile(checkpointer=saver)
        inputs = {"messages": [("user", S.USER)]}
        configs = [{"configurable": {"thread_id": uuid.uuid4().hex}} for _ in range(turns)]
        start = time.process_time()
        for config in configs:
            app.invoke(inputs, config)
        if flush is not None and ledger:
            flush.flush()
        return (time.process_time() - start) / (turns * calls)

    return sample


def run(quick: bool) -> list[Row]:
    turns, repeats = (1, 1) if quick else (10, 15)
    home = Path(tempfile.mkdtemp(prefix="podium-bench-cpu-"))
    savers = {
        "podium": sqlite_saver(home / "podium.sqlite"),
        "raw": S.stock_saver(home / "raw.sqlite", tuned=True),
        "podium_noledger": sqlite_saver(home / "podium-off.sqlite"),
    }
    rows: list[Row] = []
    patterns = [
        ("manager", S.podium_manager, S.raw_manager, S.MANAGER_CALLS),
        ("handoff", S.podium_handoff, S.raw_handoff, S.HANDOFF_CALLS),
    ]
    for n, (label, podium, raw, calls) in enumerate(patterns):
        for store in ("none", "sqlite"):
            stats = interleave(
                {
                    "podium": cpu_case(
                        podium, calls, turns, savers["podium"] if store == "sqlite" else None
                    ),
                    "raw": cpu_case(
                        raw, calls, turns, savers["raw"] if store == "sqlite" else None
                    ),
                },
                repeats=repeats,
            )
            saver_text = (
                "no checkpointer"
                if store == "none"
                else "SQLite (podium `sqlite_saver` vs stock `SqliteSaver`, both WAL+NORMAL)"
            )
            rows.append(
                ratio_row(
                    f"1{'abcd'[2 * n + (store == 'sqlite')]}",
                    f"CPU per model step, {label} graph, {saver_text}",
                    stats["podium"],
                    stats["raw"],
                    target=1.10,
                    note=f"baseline: hand-written raw LangGraph {label}; {calls} model calls a "
                    f"turn, {turns} turns a sample, {repeats} samples",
                )
            )
    stats = interleave(
        {
            "on": cpu_case(S.podium_manager, S.MANAGER_CALLS, turns, savers["podium"]),
            "off": cpu_case(
                S.podium_manager, S.MANAGER_CALLS, turns, savers["podium_noledger"], ledger=False
            ),
        },
        repeats=repeats,
    )
    rows.append(
        ratio_row(
            "9",
            "Run-ledger overhead: CPU per model step, manager graph on SQLite, run ledger on",
            stats["on"],
            stats["off"],
            target=1.05,
            note="baseline: the same graph compiled with PODIUM_RUN_LEDGER=off",
        )
    )
    for saver in savers.values():
        if hasattr(saver, "podium_ledger"):
            saver.close()
        else:
            saver.conn.close()
    return rows
