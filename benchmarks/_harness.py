# ruff: noqa: RUF001, RUF002
"""The timing loop, the result rows, and the report's formatting.

A sample is one call of a case function, which does its own (untimed) set-up and
returns the measured quantity. Cases compared in one row are *interleaved*: each
round runs every case once, in an order that rotates, so a burst of load on the
shared machine hits podium and the baseline alike. Reported: median and IQR.
"""

from __future__ import annotations

import gc
import os
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

Case = Callable[[], float]


@dataclass(frozen=True)
class Stats:
    """Median and interquartile range of a set of samples."""

    median: float
    q1: float
    q3: float
    n: int

    @classmethod
    def of(cls, samples: list[float]) -> Stats:
        if len(samples) == 1:
            return cls(samples[0], samples[0], samples[0], 1)
        q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
        return cls(statistics.median(samples), q1, q3, len(samples))


def interleave(cases: Mapping[str, Case], *, repeats: int, warmup: int = 1) -> dict[str, Stats]:
    """Run every case ``warmup + repeats`` times, interleaved; stats of the timed ones."""
    names = list(cases)
    samples: dict[str, list[float]] = {n: [] for n in names}
    # what exists now (earlier groups' objects, in a full run gigabytes) is frozen out of
    # the collector, so the collection before each sample scans only what the cases made
    gc.collect()
    gc.freeze()
    try:
        for r in range(warmup + repeats):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                gc.collect()
                value = cases[name]()
                if r >= warmup:
                    samples[name].append(value)
    finally:
        gc.unfreeze()
    return {n: Stats.of(s) for n, s in samples.items()}


@dataclass
class Row:
    """One line of the report: podium against a baseline measured in the same run."""

    id: str
    title: str
    podium: str
    baseline: str
    ratio: float | None
    target: str
    ok: bool | None
    note: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        if self.ok is None:
            return "info"
        return "ok" if self.ok else "MISS"


def fmt_time(seconds: float) -> str:
    """Seconds in the unit that reads best."""
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.0f} µs"


def fmt_stats(s: Stats, unit: Callable[[float], str] = fmt_time) -> str:
    """``median (IQR q1–q3)``."""
    if s.n == 1 or s.q1 == s.q3:
        return unit(s.median)
    return f"{unit(s.median)} ({unit(s.q1)}–{unit(s.q3)})"


def ratio_row(
    id: str,
    title: str,
    podium: Stats,
    baseline: Stats,
    *,
    target: float | None,
    target_text: str | None = None,
    unit: Callable[[float], str] = fmt_time,
    note: str = "",
) -> Row:
    """A row whose verdict is ``podium / baseline <= target``."""
    ratio = podium.median / baseline.median if baseline.median else float("inf")
    ok = None if target is None else ratio <= target
    text = target_text or (f"≤ {target:g}×" if target is not None else "—")
    return Row(id, title, fmt_stats(podium, unit), fmt_stats(baseline, unit), ratio, text, ok, note)


def miss_by(row: Row, target: float) -> str:
    """How far a ratio is past its target, in words."""
    if row.ratio is None or row.ratio <= target:
        return ""
    return f"misses by {(row.ratio / target - 1) * 100:.0f}%"


def loadavg() -> tuple[float, float, float]:
    """``os.getloadavg()``, or zeros where it does not exist."""
    try:
        return os.getloadavg()
    except OSError:  # pragma: no cover - not on this platform
        return (0.0, 0.0, 0.0)
