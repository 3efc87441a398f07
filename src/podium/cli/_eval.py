"""``podium eval``: run a dataset through graphs, compare them, fail on regression.

Exit status: 0 when the evaluation ran (and no regression or ``--fail-under`` was
hit), 1 on an error (a bad dataset, a graph that does not load), 3 on a regression
against ``--baseline`` or a pass rate under ``--fail-under``, 130 when Ctrl-C
stopped it (the finished cases are printed and saved).

Everything heavy (LangGraph, pydantic-evals, the user's graphs) is imported when the
command runs, never when the parser is built.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from rich.console import Console

__all__ = ["add_parser", "cmd_eval"]

REGRESSION = 3
"""Exit status of a regression (or a pass rate under ``--fail-under``)."""
INTERRUPTED = 130
"""Exit status after Ctrl-C."""


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``eval`` to the subcommands."""
    p = sub.add_parser(
        "eval",
        parents=[common],
        help="run a dataset of cases through graphs and compare them",
        description="Run every case of DATASET on every --graph (each on a fresh thread), "
        "score answers, trajectories, governance and limits, and compare the graphs.",
    )
    p.add_argument("dataset", help="a .yaml, .json or .jsonl file of cases")
    p.add_argument(
        "--graph",
        action="append",
        required=True,
        metavar="[LABEL=]MODULE:ATTR",
        help="a graph to evaluate (repeat to compare); a function may take a folder for its data",
    )
    p.add_argument("--model", help="what agents declared with model='default' use")
    p.add_argument("--repeat", type=int, default=1, help="runs per case (default: 1)")
    p.add_argument("--concurrency", type=int, default=1, help="cases at once (default: 1)")
    p.add_argument(
        "--approvals",
        choices=("wait", "approve", "reject"),
        default="wait",
        help="answer requests no scripted decision covers (default: wait)",
    )
    p.add_argument("--out", help="folder for the SQLite files and results (default: HOME/evals/…)")
    p.add_argument("--save", help="also write the results JSON here")
    p.add_argument("--plot", help="draw the comparison into this image (needs matplotlib)")
    p.add_argument("--baseline", help="results JSON of an earlier run: exit 3 on a regression")
    p.add_argument("--tolerance-pass", type=float, default=0.05, help="allowed pass-rate drop")
    p.add_argument("--tolerance-tokens", type=float, default=0.10, help="allowed token rise")
    p.add_argument("--tolerance-cost", type=float, default=0.10, help="allowed cost rise")
    p.add_argument("--tolerance-latency", type=float, default=0.50, help="allowed latency rise")
    p.add_argument("--fail-under", type=float, help="exit 3 if a graph's pass rate is lower")
    p.add_argument("--details", action="store_true", help="per-graph case reports with reasons")


def cmd_eval(args: argparse.Namespace, console: Console) -> int:
    """Run ``podium eval``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from podium.errors import ConfigurationError
    from podium.eval import EvalResults, Tolerance, evaluate, load_dataset

    if args.model:
        os.environ["PODIUM_MODEL"] = args.model  # what model="default" resolves to
    baseline = EvalResults.load(args.baseline) if args.baseline else None
    dataset = load_dataset(args.dataset)
    home = Path(args.home or os.environ.get("PODIUM_HOME", ".podium"))
    out = (
        Path(args.out)
        if args.out
        else home / "evals" / f"{dataset.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    if args.plot:
        try:
            import matplotlib
        except ImportError as exc:
            raise ConfigurationError(
                "--plot needs matplotlib, which is not installed.",
                fix="Install podium's plot extra: pip install 'podium[plot]'.",
            ) from exc
        matplotlib.use("Agg")
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    show = not args.json and err.is_terminal
    progress = (
        Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err)
        if show
        else None
    )
    with progress or nullcontext():
        results = evaluate(
            dataset,
            args.graph,
            repeat=args.repeat,
            concurrency=args.concurrency,
            approvals=args.approvals,
            out=out,
            progress=progress,
            model=args.model,
        )
    if args.save:
        results.save(args.save)
    if args.plot:
        from podium.eval import plot_comparison

        plot_comparison(results).savefig(args.plot, dpi=120)
    problems: list[str] = []
    if baseline is not None:
        tolerance = Tolerance(
            pass_rate=args.tolerance_pass,
            tokens=args.tolerance_tokens,
            cost=args.tolerance_cost,
            latency=args.tolerance_latency,
        )
        problems += results.regressions(baseline, tolerance)
    if args.fail_under is not None:
        problems += [
            f"{s.graph}: pass rate {s.pass_rate:.0%} is under --fail-under {args.fail_under:.0%}"
            for s in results.summary()
            if s.pass_rate < args.fail_under - 1e-9
        ]
    if args.json:
        print(json.dumps({**results.to_json(), "regressions": problems}, indent=2, default=str))
    else:
        if args.details:
            for report in results.reports.values():
                report.print(include_reasons=True, console=console)
        results.render(console)
        console.print(f"results: {out / 'results.json'}", highlight=False, markup=False)
        for problem in problems:
            console.print(f"REGRESSION {problem}", highlight=False, markup=False)
    if results.interrupted:
        print("podium: interrupted; the finished cases are saved above", file=sys.stderr)
        return INTERRUPTED
    return REGRESSION if problems else 0
