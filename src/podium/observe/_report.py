"""Reading the run ledger: trace timelines, per-agent subtotals, cost reports, plots."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = [
    "CostLine",
    "TimelineRow",
    "cost_report",
    "draw_run",
    "plot_timeline",
    "render_cost",
    "render_trace",
    "timeline",
]

Event = Mapping[str, Any]


@dataclass(frozen=True)
class TimelineRow:
    """One event on a run's timeline."""

    offset: float
    """Seconds since the first event of the run."""
    duration: float
    """Seconds (0 for instantaneous events such as policy decisions)."""
    kind: str
    """Event kind."""
    agent: str
    """Agent (``-`` when unknown)."""
    name: str
    """Model, tool, or subject."""
    status: str
    """``ok``, ``error`` or ``interrupted``."""
    input_tokens: int
    """Prompt tokens."""
    output_tokens: int
    """Generated tokens."""
    cost: float
    """USD."""
    detail: str
    """A short description of kind-specific data."""


def _detail(event: Event) -> str:
    data = event.get("data") or {}
    keys = (
        "action",
        "recheck",
        "by",
        "code",
        "reason",
        "task",
        "finish_reason",
        "waited_seconds",
        "error",
        "interrupted",
    )
    parts = [f"{k}={data[k]}" for k in keys if data.get(k) not in (None, "")]
    if data.get("priced") is False:  # a model with no known price: cost 0 is not "free"
        parts.insert(0, "unpriced")
    edited, asked = data.get("edited_args"), data.get("args")
    if isinstance(edited, dict) and isinstance(asked, dict):  # what an approver changed
        changes = [f"{k}: {asked.get(k)!r}->{v!r}" for k, v in edited.items() if asked.get(k) != v]
        parts.insert(min(2, len(parts)), "edited " + "; ".join(changes))
    return ", ".join(parts)[:100]


def timeline(events: Iterable[Event]) -> list[TimelineRow]:
    """Turn stored events into timeline rows, ordered by start time."""
    items = sorted(events, key=lambda e: e["started_at"])
    if not items:
        return []
    origin = items[0]["started_at"]
    return [
        TimelineRow(
            offset=e["started_at"] - origin,
            duration=max(0.0, (e.get("ended_at") or e["started_at"]) - e["started_at"]),
            kind=e["kind"],
            agent=e.get("agent") or "-",
            name=e.get("name") or "",
            status=e.get("status") or "ok",
            input_tokens=int(e.get("input_tokens") or 0),
            output_tokens=int(e.get("output_tokens") or 0),
            cost=float(e.get("cost") or 0.0),
            detail=_detail(e),
        )
        for e in items
    ]


@dataclass
class CostLine:
    """Usage of one agent → model or tool."""

    calls: int = 0
    """Model or tool calls."""
    input_tokens: int = 0
    """Prompt tokens."""
    output_tokens: int = 0
    """Generated tokens."""
    cost: float = 0.0
    """USD."""
    seconds: float = 0.0
    """Time spent in the calls."""
    errors: int = 0
    """Calls that failed or were refused."""
    unpriced: int = 0
    """Model calls whose model has no known price: counted in ``cost`` as 0, so the
    cost is at least what it says (``data["priced"] = False`` in their events)."""
    items: dict[str, CostLine] = field(default_factory=dict)
    """The breakdown one level down (agent → model/tool)."""

    def add(self, event: Event) -> None:
        """Count one event."""
        self.calls += 1
        self.input_tokens += int(event.get("input_tokens") or 0)
        self.output_tokens += int(event.get("output_tokens") or 0)
        self.cost += float(event.get("cost") or 0.0)
        ended = event.get("ended_at") or event["started_at"]
        self.seconds += max(0.0, ended - event["started_at"])
        self.errors += event.get("status") == "error"
        self.unpriced += (event.get("data") or {}).get("priced") is False


def cost_report(events: Iterable[Event]) -> dict[str, CostLine]:
    """Tokens, cost and time by agent → ``model:<name>`` / ``tool:<name>``.

    Calls to a model with no known price count as 0 in ``cost`` and are counted in
    ``unpriced``: a cost with unpriced calls beside it is a lower bound.
    """
    report: dict[str, CostLine] = defaultdict(CostLine)
    for e in events:
        if e["kind"] not in ("model", "tool"):
            continue
        agent = report[e.get("agent") or "-"]
        agent.add(e)
        key = f"{e['kind']}:{e.get('name') or '?'}"
        agent.items.setdefault(key, CostLine()).add(e)
    return dict(report)


def render_trace(events: Sequence[Event], console: Console | None = None, title: str = "") -> None:
    """Print a run's timeline and per-agent subtotals as tables."""
    console = console or Console()
    table = Table(title=title or None, show_lines=False)
    for col, justify in (
        ("t+s", "right"),
        ("dur", "right"),
        ("agent", "left"),
        ("event", "left"),
        ("name", "left"),
        ("status", "left"),
        ("tok in", "right"),
        ("tok out", "right"),
        ("detail", "left"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for row in timeline(events):
        table.add_row(
            f"{row.offset:.2f}",
            f"{row.duration:.2f}" if row.duration else "",
            row.agent,
            row.kind,
            row.name,
            row.status,
            str(row.input_tokens or ""),
            str(row.output_tokens or ""),
            row.detail,
        )
    console.print(table)
    render_cost(events, console, title="per agent")


def render_cost(
    events: Iterable[Event], console: Console | None = None, title: str = "cost"
) -> None:
    """Print tokens and cost by agent → model → tool.

    A cost that leaves out unpriced calls reads ``>= 0.001200`` and the ``unpriced``
    column counts them; a note under the table names the models to price.
    """
    console = console or Console()
    table = Table(title=title)
    columns = ("agent / call", "calls", "errors", "tok in", "tok out", "cost $", "unpriced")
    for col in (*columns, "seconds"):
        table.add_column(col, justify="left" if col == "agent / call" else "right")

    def cells(label: str, line: CostLine) -> list[str]:
        cost = f"{'>= ' if line.unpriced else ''}{line.cost:.6f}"
        return [
            label,
            str(line.calls),
            str(line.errors),
            str(line.input_tokens),
            str(line.output_tokens),
            cost,
            str(line.unpriced or ""),
            f"{line.seconds:.2f}",
        ]

    total = CostLine()
    unpriced: set[str] = set()
    for agent, line in sorted(cost_report(events).items()):
        table.add_row(*cells(agent, line))
        for key, item in sorted(line.items.items()):
            table.add_row(*cells(f"  {key}", item))
            if item.unpriced:
                unpriced.add(key.removeprefix("model:"))
        attrs = ("calls", "errors", "input_tokens", "output_tokens", "cost", "unpriced", "seconds")
        for attr in attrs:
            setattr(total, attr, getattr(total, attr) + getattr(line, attr))
    table.add_row(*cells("total", total))
    console.print(table)
    if unpriced:
        console.print(
            f"unpriced: {total.unpriced} model call(s) to {', '.join(sorted(unpriced))} have no "
            "known price and count as $0 above; give their prices with prices={name: Price(...)}.",
            markup=False,
        )


def plot_timeline(events: Sequence[Event], ax: Any = None) -> Any:
    """Draw a Gantt chart of a run: one lane per agent.

    Bars are model and tool calls; markers are approvals, handoffs, delegations and
    other decisions. Needs matplotlib (the ``plot`` extra), imported only here.

    Returns:
        The matplotlib ``Axes``.
    """
    import matplotlib.pyplot as plt  # optional dependency: imported on use

    rows = timeline(events)
    lanes = sorted({r.agent for r in rows})
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 0.6 * len(lanes) + 1.5))
    colors = {"model": "tab:blue", "tool": "tab:green"}
    for row in rows:
        y = lanes.index(row.agent)
        if row.kind in colors:
            ax.barh(
                y,
                max(row.duration, 0.01),
                left=row.offset,
                height=0.5,
                color="tab:red" if row.status == "error" else colors[row.kind],
            )
        elif row.kind in (
            "approval_requested",
            "approval_decided",
            "handoff",
            "delegation",
            "escalation",
            "retry",
            "fallback",
            "budget",
        ):
            ax.plot(
                row.offset, y, marker="v" if "approval" in row.kind else "o", color="tab:orange"
            )
    ax.set_yticks(range(len(lanes)), lanes)
    ax.set_xlabel("seconds since the run started")
    ax.set_title("run timeline (blue: model, green: tool, orange: decisions)")
    return ax


def draw_run(app: Any, config: Any) -> str:
    """The graph's mermaid drawing with the nodes this thread actually ran highlighted.

    The path comes from the thread's checkpoint history (every node that was ever
    scheduled to run next); paste the text into any mermaid renderer.

    Args:
        app: The compiled graph.
        config: The thread's config (``{"configurable": {"thread_id": ...}}``).
    """
    visited = {name for snapshot in app.get_state_history(config) for name in snapshot.next}
    drawing: str = app.get_graph().draw_mermaid()
    known = [n for n in app.get_graph().nodes if n in visited]
    if not known:
        return drawing
    return (
        drawing.rstrip()
        + "\n\tclassDef taken fill:#fde68a,stroke:#b45309,stroke-width:2px;\n"
        + f"\tclass {','.join(known)} taken;\n"
    )
