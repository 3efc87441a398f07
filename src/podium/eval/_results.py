"""Evaluation results: per case, per graph, side by side, against a baseline.

A case **passes** when its run did not fail (status ``done`` or ``waiting``), every
assertion holds and no evaluator failed. Per graph, :meth:`EvalResults.summary`
gives the pass rate over all case runs (cases x repeats) with a 95% Wilson score
interval -- it stays inside [0, 1] and is honest for small n, where the normal
approximation is not -- and the medians of tokens, cost, latency and model calls
per case run, and the governance counts summed from the run ledger (approvals
requested, approved, rejected, refusals, escalations, budget stops).

:meth:`EvalResults.regressions` compares the summary with a baseline (the JSON of an
earlier run): the pass rate may not drop by more than an absolute tolerance, and
median tokens, cost and latency may not rise by more than a relative one.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podium.errors import ConfigurationError

if TYPE_CHECKING:
    from rich.console import Console

    from podium.eval._run import RunRecord

__all__ = ["CaseResult", "EvalResults", "GraphSummary", "Tolerance", "wilson_interval"]

FORMAT = "podium.eval/1"
"""The ``format`` field of results JSON."""


def wilson_interval(passed: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a pass rate (95% by default).

    Example:
        >>> [round(x, 3) for x in wilson_interval(8, 10)]
        [0.49, 0.943]
    """
    if n == 0:
        return (0.0, 1.0)
    p = passed / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class CaseResult:
    """One run of one case on one graph."""

    graph: str
    """The graph's label."""
    case: str
    """The case's name."""
    run: str
    """The run's name in the report (``case [2/3]`` with ``repeat``)."""
    passed: bool
    """No failure, every assertion true, no evaluator failed."""
    status: str
    """``done``, ``waiting`` or ``error`` (see :class:`~podium.eval.RunRecord`)."""
    category: str | None = None
    """The case's ``metadata.category``, if any."""
    assertions: dict[str, dict[str, Any]] = field(default_factory=dict)
    """``{name: {"value": bool, "reason": str}}``."""
    scores: dict[str, float] = field(default_factory=dict)
    """Numeric evaluator results."""
    labels: dict[str, str] = field(default_factory=dict)
    """String evaluator results."""
    evaluator_errors: list[str] = field(default_factory=list)
    """Evaluators that raised (the case fails)."""
    details: dict[str, Any] = field(default_factory=dict)
    """The run record's JSON: answer, error, seconds, tokens, cost, model calls,
    governance counts, trajectory, approval requests, thread id."""
    record: RunRecord | None = field(default=None, repr=False, compare=False)
    """The run record itself (in memory only: messages and ledger events)."""

    def get(self, key: str, default: Any = 0) -> Any:
        """A value of :attr:`details`."""
        return self.details.get(key, default)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict (without :attr:`record`)."""
        return {
            "graph": self.graph,
            "case": self.case,
            "run": self.run,
            "passed": self.passed,
            "status": self.status,
            "category": self.category,
            "assertions": self.assertions,
            "scores": self.scores,
            "labels": self.labels,
            "evaluator_errors": self.evaluator_errors,
            **self.details,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CaseResult:
        """Read :meth:`to_json`'s output."""
        known = {
            "graph",
            "case",
            "run",
            "passed",
            "status",
            "category",
            "assertions",
            "scores",
            "labels",
            "evaluator_errors",
        }
        return cls(
            graph=str(data["graph"]),
            case=str(data["case"]),
            run=str(data.get("run", data["case"])),
            passed=bool(data["passed"]),
            status=str(data.get("status", "done")),
            category=data.get("category"),
            assertions=dict(data.get("assertions") or {}),
            scores=dict(data.get("scores") or {}),
            labels=dict(data.get("labels") or {}),
            evaluator_errors=list(data.get("evaluator_errors") or []),
            details={k: v for k, v in data.items() if k not in known},
        )


@dataclass(frozen=True)
class GraphSummary:
    """One graph's numbers over every case run."""

    graph: str
    """The graph's label."""
    runs: int
    """Case runs (cases x repeats)."""
    passed: int
    """Runs that passed."""
    pass_rate: float
    """``passed / runs``."""
    ci_low: float
    """Lower end of the 95% Wilson interval of the pass rate."""
    ci_high: float
    """Upper end of it."""
    median_tokens: float
    """Median tokens (prompt + generated) per run."""
    median_cost: float
    """Median USD per run."""
    median_seconds: float
    """Median wall time per run."""
    median_model_calls: float
    """Median model calls per run."""
    approvals_requested: int
    """Approval requests (policy gates), summed."""
    approved: int
    """Requests approved or edited."""
    rejected: int
    """Requests rejected or answered instead."""
    refusals: int
    """Calls governance refused."""
    escalations: int
    """Escalations to a human."""
    budget_stops: int
    """Budget events that stopped a run."""
    errors: int
    """Runs that ended in an exception."""
    waiting: int
    """Runs left waiting for a human."""
    by_category: dict[str, tuple[int, int]] = field(default_factory=dict)
    """``{category: (passed, runs)}``."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        data = dict(vars(self))
        data["by_category"] = {k: list(v) for k, v in self.by_category.items()}
        return data


def _median(values: Iterable[float]) -> float:
    found = list(values)
    return float(statistics.median(found)) if found else 0.0


def summarise(graph: str, cases: list[CaseResult]) -> GraphSummary:
    """The :class:`GraphSummary` of one graph's case results."""
    passed = sum(c.passed for c in cases)
    low, high = wilson_interval(passed, len(cases))
    categories: dict[str, tuple[int, int]] = {}
    for c in cases:
        if c.category:
            ok, n = categories.get(c.category, (0, 0))
            categories[c.category] = (ok + c.passed, n + 1)

    def total(key: str) -> int:
        return sum(int(c.get(key)) for c in cases)

    return GraphSummary(
        graph=graph,
        runs=len(cases),
        passed=passed,
        pass_rate=passed / len(cases) if cases else 0.0,
        ci_low=low,
        ci_high=high,
        median_tokens=_median(c.get("tokens") for c in cases),
        median_cost=_median(c.get("cost") for c in cases),
        median_seconds=_median(c.get("seconds") for c in cases),
        median_model_calls=_median(c.get("model_calls") for c in cases),
        approvals_requested=total("approvals_requested"),
        approved=total("approved"),
        rejected=total("rejected"),
        refusals=total("refusals"),
        escalations=total("escalations"),
        budget_stops=total("budget_stops"),
        errors=sum(c.status == "error" for c in cases),
        waiting=sum(c.status == "waiting" for c in cases),
        by_category=dict(sorted(categories.items())),
    )


@dataclass(frozen=True)
class Tolerance:
    """How much worse than the baseline a run may be before it is a regression."""

    pass_rate: float = 0.05
    """Largest allowed drop of the pass rate (absolute: 0.05 is five points)."""
    tokens: float = 0.10
    """Largest allowed rise of median tokens (relative: 0.10 is +10%)."""
    cost: float = 0.10
    """Largest allowed rise of median cost (relative)."""
    latency: float = 0.50
    """Largest allowed rise of median latency (relative; wall time is noisy)."""


def _rise(new: float, old: float) -> float:
    if old <= 0:
        return math.inf if new > 1e-12 else 0.0
    return new / old - 1


@dataclass
class EvalResults:
    """Everything an evaluation produced; ``podium eval --json`` prints :meth:`to_json`."""

    dataset: str
    """The dataset's name."""
    graphs: dict[str, str]
    """``{label: source}``, in the order they ran."""
    cases: list[CaseResult] = field(default_factory=list)
    """Every finished case run."""
    repeat: int = 1
    """Runs per case."""
    model: str | None = None
    """What ``default`` resolved to (``podium eval --model``), if set."""
    interrupted: bool = False
    """The evaluation was stopped (Ctrl-C) before every case ran: these are the
    finished ones."""
    out: str | None = None
    """The folder with the SQLite files (one per graph) and ``results.json``."""
    reports: dict[str, Any] = field(default_factory=dict, repr=False)
    """``{label: pydantic_evals EvaluationReport}`` (in memory only): per-case tables
    with every assertion's reason (``report.print(include_reasons=True)``)."""

    def of(self, graph: str) -> list[CaseResult]:
        """One graph's case results."""
        return [c for c in self.cases if c.graph == graph]

    def summary(self) -> list[GraphSummary]:
        """One :class:`GraphSummary` per graph with results, in order."""
        return [summarise(g, self.of(g)) for g in self.graphs if self.of(g)]

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict: the summary and every case."""
        return {
            "format": FORMAT,
            "dataset": self.dataset,
            "graphs": self.graphs,
            "repeat": self.repeat,
            "model": self.model,
            "interrupted": self.interrupted,
            "out": self.out,
            "summary": [s.to_json() for s in self.summary()],
            "cases": [c.to_json() for c in self.cases],
        }

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_json` to ``path``."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.to_json(), indent=2, default=str), encoding="utf-8")
        return target

    @classmethod
    def load(cls, source: str | Path | Mapping[str, Any]) -> EvalResults:
        """Read results JSON (a file written by :meth:`save` or ``podium eval --json``).

        Raises:
            ConfigurationError: The file is missing or is not podium results JSON.
        """
        where = "the given data"
        try:
            if isinstance(source, str | Path):
                where = str(source)
                data = json.loads(Path(source).read_text(encoding="utf-8"))
            else:
                data = source
            if data.get("format") != FORMAT:
                raise ValueError(f"its format is {data.get('format')!r}, not {FORMAT!r}")
            return cls(
                dataset=str(data["dataset"]),
                graphs=dict(data["graphs"]),
                cases=[CaseResult.from_json(c) for c in data["cases"]],
                repeat=int(data.get("repeat", 1)),
                model=data.get("model"),
                interrupted=bool(data.get("interrupted", False)),
                out=data.get("out"),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigurationError(
                f"Cannot read evaluation results from {where}: {exc}.",
                fix="Pass a file written by `podium eval --save FILE` (or its --json output).",
            ) from exc

    def regressions(self, baseline: EvalResults, tolerance: Tolerance | None = None) -> list[str]:
        """What got worse than ``baseline`` beyond ``tolerance``, graph by graph.

        Graphs are matched by label; a graph missing from either side is skipped.
        """
        tol = tolerance or Tolerance()
        before = {s.graph: s for s in baseline.summary()}
        found: list[str] = []
        for now in self.summary():
            old = before.get(now.graph)
            if old is None:
                continue
            if old.pass_rate - now.pass_rate > tol.pass_rate + 1e-9:
                found.append(
                    f"{now.graph}: pass rate {now.pass_rate:.0%} < baseline "
                    f"{old.pass_rate:.0%} (tolerance {tol.pass_rate:.0%} points)"
                )
            for what, new_value, old_value, allowed in (
                ("median tokens", now.median_tokens, old.median_tokens, tol.tokens),
                ("median cost", now.median_cost, old.median_cost, tol.cost),
                ("median latency", now.median_seconds, old.median_seconds, tol.latency),
            ):
                rise = _rise(new_value, old_value)
                if rise > allowed + 1e-9:
                    shown = "from 0" if math.isinf(rise) else f"+{rise:.0%}"
                    found.append(
                        f"{now.graph}: {what} {new_value:.6g} vs baseline {old_value:.6g} "
                        f"({shown}; tolerance +{allowed:.0%})"
                    )
        return found

    def render(self, console: Console, *, cases: bool = True) -> None:
        """Print the per-case matrix (if ``cases``) and the side-by-side summary."""
        from podium.eval._render import render_results

        render_results(self, console, cases=cases)
