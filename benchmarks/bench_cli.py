# ruff: noqa: RUF001, RUF002
"""10. CLI start-up: what an operator waits for, as whole processes.

Each sample starts a fresh Python process and waits for it to exit (start-up, imports
and the command's work included), interleaved with the yardstick
``python -c "import langgraph.graph"`` -- what any command that touched LangGraph
would pay before doing anything.

* 10a: ``podium pending --db FILE`` on a file with one thread waiting for approval
  (read with ``sqlite3``; target ≤ 0.6× the yardstick);
* 10b: ``python -c "import podium"`` (errors and version; the rest is lazy;
  target ≤ 0.75× the yardstick).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._harness import Row, fmt_time, interleave

PODIUM = str(Path(sys.executable).with_name("podium"))
WAITING = """
import sys
from langchain_core.messages import AIMessage
from podium import Agent, Policy, Rule
from podium.checkpoints import sqlite_saver
from podium.graphs import create_agent_graph
from podium.testing import ScriptedChatModel
from podium.tools import tool

@tool(risk="high")
def refund(order: str, amount: float) -> str:
    '''Refund an order.'''
    return "refunded"

call = {"name": "refund", "args": {"order": "A-1", "amount": 250}, "id": "c1"}
agent = Agent(name="cashier", model=ScriptedChatModel([AIMessage("", tool_calls=[call])]),
              tools=[refund])
graph = create_agent_graph(agent, policy=Policy(rules=[Rule(tool="refund", action="approve")]))
app = graph.compile(checkpointer=sqlite_saver(sys.argv[1]))
app.invoke({"messages": [("user", "refund A-1")]}, {"configurable": {"thread_id": "t"}})
"""


def _timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env={**os.environ, "PYTHONWARNINGS": ""})
    return time.perf_counter() - started


def run(quick: bool) -> list[Row]:
    repeats = 3 if quick else 15
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "runs.sqlite")
        subprocess.run([sys.executable, "-c", WAITING, db], check=True, capture_output=True)
        stats = interleave(
            {
                "pending": lambda: _timed([PODIUM, "pending", "--db", db]),
                "import podium": lambda: _timed([sys.executable, "-c", "import podium"]),
                "langgraph": lambda: _timed([sys.executable, "-c", "import langgraph.graph"]),
            },
            repeats=repeats,
        )
    base = stats["langgraph"]
    rows = []
    for rid, name, title, target in (
        ("10a", "pending", "CLI start: `podium pending --db FILE` (one thread waiting)", 0.6),
        ("10b", "import podium", "`python -c 'import podium'`", 0.75),
    ):
        mine = stats[name]
        ratio = mine.median / base.median
        rows.append(
            Row(
                rid,
                f"{title} vs `python -c 'import langgraph.graph'`, whole processes",
                f"{fmt_time(mine.median)} ({fmt_time(mine.q1)}–{fmt_time(mine.q3)})",
                f"{fmt_time(base.median)} ({fmt_time(base.q1)}–{fmt_time(base.q3)})",
                ratio,
                f"≤ {target}×",
                ratio <= target,
                note="Read-only commands read the SQLite file with `sqlite3` and import "
                "neither LangGraph nor the user's code; `podium/__init__` re-exports lazily."
                if rid == "10a"
                else "",
            )
        )
    return rows
