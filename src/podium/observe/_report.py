"""Reading the run ledger: trace timelines, per-agent subtotals, cost reports, plots.

The trace shows every event kind (:attr:`podium.observe.RunEvent.kind`) as a row with
a short, kind-specific detail; spans (model and tool calls, pipeline stages, parallel
branches) also get a bar on a small run-wide time axis, and a rework an arrow back to
where the stage it re-runs started. A stage's ``stage_started`` row is folded into its
``stage_finished`` row (one span), unless the stage never finished (the process died).
"""

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
    data: Mapping[str, Any] = field(default_factory=dict)
    """The event's kind-specific data, as stored."""


_SPANS = ("model", "tool", "stage_finished", "branch")
"""Kinds drawn as bars (they have a duration)."""


def _listing(failed: object) -> str:
    if not isinstance(failed, Mapping) or not failed:
        return ""
    return "; ".join(f"{name} ({error})" for name, error in failed.items())


def _stage(data: Mapping[str, Any]) -> str:
    outcome = data.get("outcome")
    parts = [str(outcome)]
    if outcome == "done" and int(data.get("attempts") or 1) > 1:
        parts = [f"done after {data['attempts']} attempts"]
    elif outcome == "done" and data.get("replayed"):
        parts = ["done (its recorded result)"]
    elif outcome == "rework":
        parts = [f"sent back to {data.get('to')}"]
    elif outcome == "skipped":
        parts = [f"skipped: {data.get('action')} by {data.get('by')}: {data.get('reason') or '-'}"]
    elif outcome == "interrupted":
        parts = [str(data.get("interrupted") or "waiting for a human")]
    elif outcome == "error":
        parts = [f"error: {data.get('error')}"]
    if data.get("round"):
        parts.append(f"round {data['round']}")
    return ", ".join(parts)


def _join(data: Mapping[str, Any]) -> str:
    result = data.get("result") or {}
    parts: list[str] = []
    votes = result.get("votes")
    if isinstance(votes, Mapping):
        tally = ", ".join(f"{ballot!r}: {len(names)}" for ballot, names in votes.items())
        parts.append(f"votes {tally}")
        parts.append("tie" if result.get("tie") else f"winner {result.get('winner')!r}")
    elif "scores" in result:
        parts.append(f"winner {result.get('winner')}")
    elif result.get("agent"):
        parts.append(f"written by {result['agent']}")
    else:
        parts.append(f"from {', '.join(data.get('succeeded') or [])}")
    failed = _listing(data.get("failed"))
    if failed:
        parts.append(f"failed: {failed}")
    return "; ".join(parts)


def _quorum(data: Mapping[str, Any]) -> str:
    succeeded = data.get("succeeded") or []
    text = f"{len(succeeded)} of {data.get('ran')} succeeded, {data.get('required')} required: " + (
        "met" if data.get("met") else "NOT met"
    )
    if data.get("retried"):
        text += f" (re-ran {', '.join(data['retried'])})"
    failed = _listing(data.get("failed"))
    return f"{text}; failed: {failed}" if failed else text


def _special(kind: str, data: Mapping[str, Any]) -> str | None:
    """The detail of pipeline and parallel events (``None``: use the generic one)."""
    if kind == "stage_finished":
        return _stage(data)
    if kind == "stage_started":
        feedback = f", feedback: {data['feedback']}" if data.get("feedback") else ""
        return f"round {data.get('round') or 0}{feedback}"
    if kind == "rework":
        return f"round {data.get('round')}: {data.get('feedback') or '-'}"
    if kind == "branch":
        return str(data.get("error") or "")
    if kind == "quorum":
        return _quorum(data)
    if kind == "join":
        return _join(data)
    if kind == "command":
        ended = "timed out" if data.get("timed_out") else f"exit {data.get('exit_code')}"
        cut = ", truncated" if data.get("truncated") else ""
        refused = f", {data['refused']} refused" if data.get("refused") else ""
        out = f"{data.get('bytes_out')} bytes out{cut}"
        return f"{ended}, {out}, network {data.get('network')}{refused}"
    if kind == "network_refused":
        return f"{data.get('host')}:{data.get('port')} (network {data.get('network')})"
    return None


def _detail(event: Event) -> str:
    data = event.get("data") or {}
    special = _special(str(event.get("kind")), data)
    if special is not None:
        return special[:160]
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
    if data.get("stage"):  # a pipeline's action gate
        parts.insert(0, f"gate before stage {data['stage']}")
    return ", ".join(parts)[:120]


def _folded(events: Iterable[Event]) -> list[Event]:
    """The events without ``stage_started`` rows whose stage finished (same node run)."""
    items = list(events)
    finished = {(e.get("run_id"), e.get("name")) for e in items if e["kind"] == "stage_finished"}
    return [
        e
        for e in items
        if e["kind"] != "stage_started" or (e.get("run_id"), e.get("name")) not in finished
    ]


def timeline(events: Iterable[Event]) -> list[TimelineRow]:
    """Turn stored events into timeline rows, ordered by start time.

    A stage's ``stage_started`` event is left out when its ``stage_finished`` span is
    there (the span starts at the same moment).
    """
    items = sorted(_folded(events), key=lambda e: e["started_at"])
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
            data=e.get("data") or {},
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


BAR_WIDTH = 16
"""Characters of the trace's time axis (the whole run)."""


def _bars(rows: Sequence[TimelineRow], width: int = BAR_WIDTH) -> list[str]:
    """Each row's place on a run-wide time axis of ``width`` characters, as text.

    Spans are bars (``#`` a pipeline stage, ``~`` a parallel branch, ``=`` a model or
    tool call; ``x`` a failed one, ``.`` one interrupted to ask a human); a rework is
    an arrow ``<--`` back to where the stage it re-runs last started; other events
    are a ``|`` at their moment.
    """
    total = max((r.offset + r.duration for r in rows), default=0.0) or 1.0

    def at(seconds: float) -> int:
        return min(width - 1, int(seconds / total * width))

    started: dict[tuple[str, str], float] = {}
    shown = []
    for row in rows:
        cells = [" "] * width
        here = at(row.offset)
        if row.kind in _SPANS:
            mark = {"stage_finished": "#", "branch": "~"}.get(row.kind, "=")
            mark = {"error": "x", "interrupted": "."}.get(row.status, mark)
            for i in range(here, at(row.offset + row.duration) + 1):
                cells[i] = mark
            if row.kind == "stage_finished":
                started[(row.agent, row.name)] = row.offset
        elif row.kind == "rework":
            back = started.get((row.agent, str(row.data.get("to"))))
            first = at(back) if back is not None else here
            for i in range(first, here + 1):
                cells[i] = "-"
            cells[first] = "<"
        else:
            cells[here] = "|"
        shown.append("".join(cells).rstrip())
    return shown


def render_trace(events: Sequence[Event], console: Console | None = None, title: str = "") -> None:
    """Print a run's timeline and per-agent subtotals as tables.

    One row per event (see :func:`timeline`), with a bar on the run's time axis
    : pipeline stages, their reworks and action-gate approvals,
    parallel branches with their quorum and join, handoffs, delegations, approvals
    and every model and tool call, each with a kind-specific detail.
    """
    console = console or Console()
    table = Table(title=title or None, show_lines=False)
    for col, justify in (
        ("t+s", "right"),
        ("dur", "right"),
        ("timeline", "left"),
        ("agent", "left"),
        ("event", "left"),
        ("name", "left"),
        ("status", "left"),
        ("tok in", "right"),
        ("tok out", "right"),
        ("detail", "left"),
    ):
        table.add_column(
            col,
            justify=justify,  # type: ignore[arg-type]
            no_wrap=col in ("t+s", "dur", "timeline", "status", "tok in", "tok out"),
        )
    rows = timeline(events)
    for row, bar in zip(rows, _bars(rows), strict=True):
        table.add_row(
            f"{row.offset:.2f}",
            f"{row.duration:.2f}" if row.duration else "",
            bar,
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


_COLORS = {
    "model": "tab:blue",
    "tool": "tab:green",
    "stage_finished": "tab:purple",
    "branch": "tab:cyan",
}
_BAR_LABELS = {
    "model": "model call",
    "tool": "tool call",
    "stage_finished": "pipeline stage",
    "branch": "parallel branch",
}
_DECISION = ("o", "tab:orange", "handoff, delegation, retry, budget ...")
_MARKERS = {
    "approval_requested": ("v", "tab:orange", "approval"),
    "approval_decided": ("v", "tab:orange", "approval"),
    **dict.fromkeys(
        ("handoff", "delegation", "escalation", "retry", "fallback", "budget"), _DECISION
    ),
    "rework": ("<", "tab:brown", "rework"),
    "quorum": ("s", "tab:gray", "quorum, join"),
    "join": ("s", "tab:gray", "quorum, join"),
}


def plot_timeline(events: Sequence[Event], ax: Any = None) -> Any:
    """Draw a Gantt chart of a run: one lane per agent (and per pipeline or parallel graph).

    Bars are model and tool calls, pipeline stages and parallel branches, red when
    they failed; markers are approvals, handoffs, delegations, reworks, quorum and
    join checks and other decisions. The legend lists what the chart shows, failed
    calls included. Needs matplotlib (the ``plot`` extra), imported only here.

    Returns:
        The matplotlib ``Axes``.
    """
    import matplotlib.pyplot as plt  # optional dependency: imported on use
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    rows = timeline(events)
    lanes = sorted({r.agent for r in rows})
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 0.6 * len(lanes) + 1.5))
    legend: dict[str, Any] = {}
    for row in rows:
        y = lanes.index(row.agent)
        if row.kind in _COLORS:
            failed = row.status == "error"
            color = "tab:red" if failed else _COLORS[row.kind]
            ax.barh(y, max(row.duration, 0.01), left=row.offset, height=0.5, color=color)
            label = "error" if failed else _BAR_LABELS[row.kind]
            legend.setdefault(label, Patch(color=color, label=label))
        elif row.kind in _MARKERS:
            marker, color, label = _MARKERS[row.kind]
            ax.plot(row.offset, y, marker=marker, color=color)
            legend.setdefault(
                label, Line2D([], [], marker=marker, color=color, linestyle="", label=label)
            )
    ax.set_yticks(range(len(lanes)), lanes)
    ax.set_xlabel("seconds since the run started")
    ax.set_title("run timeline")
    order = [*_BAR_LABELS.values(), "error"]
    handles = sorted(
        legend.values(),
        key=lambda h: order.index(h.get_label()) if h.get_label() in order else len(order),
    )
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
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
