"""Terminal tables for evaluation results (rich), and the comparison plot (matplotlib)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table

if TYPE_CHECKING:
    from rich.console import Console

    from podium.eval._results import EvalResults

__all__ = ["plot_comparison", "render_results"]


def _cell(results: EvalResults, graph: str, case: str) -> str:
    runs = [c for c in results.of(graph) if c.case == case]
    if not runs:
        return "-"
    marks = "".join("✔" if c.passed else "✘" for c in runs)
    tokens = sorted(int(c.get("tokens")) for c in runs)[len(runs) // 2]
    flags = ""
    if any(c.status == "error" for c in runs):
        flags = " error"
    elif any(c.status == "waiting" for c in runs):
        flags = " waiting"
    return f"{marks} {tokens:,} tok{flags}"


def _failed_checks(results: EvalResults, case: str) -> str:
    names = sorted(
        {
            f"{c.graph}: {name}"
            for c in results.cases
            if c.case == case
            for name, a in c.assertions.items()
            if not a.get("value")
        }
    )
    return "; ".join(names)


def render_results(results: EvalResults, console: Console, *, cases: bool = True) -> None:
    """Print the per-case matrix and the summary table."""
    graphs = [g for g in results.graphs if results.of(g)]
    if cases:
        matrix = Table(title=f"{results.dataset}: cases", title_justify="left")
        matrix.add_column("case")
        for graph in graphs:
            matrix.add_column(graph)
        matrix.add_column("failed checks", overflow="fold")
        names = list(dict.fromkeys(c.case for c in results.cases))
        for name in names:
            row = [_cell(results, g, name) for g in graphs]
            matrix.add_row(name, *row, _failed_checks(results, name))
        console.print(matrix)
    table = Table(
        title=f"{results.dataset}: {len(graphs)} graph(s), repeat {results.repeat}"
        + (" -- INTERRUPTED, finished cases only" if results.interrupted else ""),
        title_justify="left",
    )
    for column in ("graph", "pass rate", "95% CI", "runs", "median tokens", "median cost $",
                   "median s", "model calls", "approvals", "approved", "rejected",
                   "refusals", "escalations", "errors"):  # fmt: skip
        table.add_column(column, justify="left" if column == "graph" else "right")
    for s in results.summary():
        table.add_row(
            s.graph,
            f"{s.pass_rate:.0%}",
            f"{s.ci_low:.0%}-{s.ci_high:.0%}",
            str(s.runs),
            f"{s.median_tokens:,.0f}",
            f"{s.median_cost:.5f}",
            f"{s.median_seconds:.2f}",
            f"{s.median_model_calls:g}",
            str(s.approvals_requested),
            str(s.approved),
            str(s.rejected),
            str(s.refusals),
            str(s.escalations),
            str(s.errors),
        )
    console.print(table)
    categories = sorted({k for s in results.summary() for k in s.by_category})
    if categories:
        by = Table(title="pass rate by category", title_justify="left")
        by.add_column("category")
        for graph in graphs:
            by.add_column(graph, justify="right")
        summaries = {s.graph: s for s in results.summary()}
        for category in categories:
            cells = []
            for graph in graphs:
                ok, n = summaries[graph].by_category.get(category, (0, 0))
                cells.append(f"{ok}/{n}" if n else "-")
            by.add_row(category, *cells)
        console.print(by)


def plot_comparison(results: EvalResults, *, title: str | None = None) -> Any:
    """Draw the comparison, one bar per graph (needs the ``plot`` extra).

    Four panels: the pass rate with its 95% interval, median tokens and latency per
    case, and the governance counts (approvals, refusals, escalations).

    Returns:
        The matplotlib ``Figure``.
    """
    import matplotlib.pyplot as plt

    summaries = results.summary()
    names = [s.graph for s in summaries]
    x = list(range(len(names)))
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
    rate, tokens, seconds, governance = axes
    rates = [s.pass_rate for s in summaries]
    errors = [
        [max(0.0, s.pass_rate - s.ci_low) for s in summaries],
        [max(0.0, s.ci_high - s.pass_rate) for s in summaries],
    ]
    rate.bar(x, rates, yerr=errors, capsize=4, color="tab:green")
    rate.set_ylim(0, 1.05)
    rate.set_title("pass rate (95% CI)")
    tokens.bar(x, [s.median_tokens for s in summaries], color="tab:blue")
    tokens.set_title("median tokens per case")
    seconds.bar(x, [s.median_seconds for s in summaries], color="tab:orange")
    seconds.set_title("median seconds per case")
    width = 0.25
    for offset, (label, key) in enumerate(
        (
            ("approvals", "approvals_requested"),
            ("refusals", "refusals"),
            ("escalations", "escalations"),
        )
    ):
        governance.bar(
            [i + (offset - 1) * width for i in x],
            [getattr(s, key) for s in summaries],
            width,
            label=label,
        )
    governance.set_title("governance (total)")
    governance.legend(fontsize="small")
    for ax in axes:
        ax.set_xticks(x, names, rotation=15)
    fig.suptitle(title or f"{results.dataset}: {len(names)} graphs, repeat {results.repeat}")
    fig.tight_layout()
    return fig
