"""The data-desk demo: a CSV in the thread's workspace, a shell command over it, a human.

``data_desk`` has two tools: ``export_orders`` writes ``orders.csv`` into the
thread's workspace (a :class:`~podium.environments.Workspace` under the demo's home)
and names the command that totals it; ``shell`` runs that command in a bubblewrap
sandbox (no network, 20 s, 4,000 bytes of output). Every command waits for a human
(a :class:`~podium.Policy` rule), who may edit it. The command writes ``total.txt``;
that file is the demo's side effect.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig

from podium.agents import Agent
from podium.environments import Limits, Workspace, shell_tool
from podium.environments._files import _write
from podium.graphs import create_agent_graph
from podium.tools import GovernedGraph, Policy, Rule, tool

__all__ = ["DEFAULT_REQUEST", "build_data_desk", "data_effects", "reset_data"]

DEFAULT_REQUEST = "Export the orders and total their amounts."

ORDERS = (
    ("A-1001", "Ada Lovelace", 120),
    ("A-1002", "Alan Turing", 250),
    ("A-1003", "Grace Hopper", 80),
    ("A-1004", "Edsger Dijkstra", 45),
)
COMMAND = "awk -F, 'NR>1 {s+=$3} END {print \"total\", s}' orders.csv | tee total.txt"
INSTRUCTIONS = (
    "You are a data desk. Export the orders to orders.csv, then run the shell command "
    "the export names to total the amounts, then answer with the total."
)


def _workspace(home: Path) -> Workspace:
    return Workspace(home / "workspaces")


def build_data_desk(home: Path, model: str | BaseChatModel) -> GovernedGraph[Any, Any, Any, Any]:
    """The data desk over ``home/workspaces`` (created on first use).

    Raises:
        SandboxUnavailableError: bubblewrap cannot start here (the shell never runs
            unsandboxed).
    """
    ws = _workspace(home)

    @tool(risk="low", idempotent=True)
    def export_orders(config: RunnableConfig) -> str:
        """Export every order to orders.csv in the workspace."""
        lines = ["id,customer,amount", *(f"{i},{c},{a}" for i, c, a in ORDERS)]
        _write(ws.ensure(ws.for_call(config)), "orders.csv", ("\n".join(lines) + "\n").encode())
        return (
            f"Wrote orders.csv ({len(ORDERS)} orders; columns id,customer,amount). "
            f"Next step: shell with the command {COMMAND}"
        )

    shell = shell_tool(ws, limits=Limits(timeout=20, output=4000))
    agent = Agent(
        name="data_desk",
        description="Exports orders to a CSV file and totals them with a shell command.",
        instructions=INSTRUCTIONS,
        model=model,
        tools=[export_orders, shell],
        max_steps=6,
    )
    policy = Policy(
        rules=[Rule(tool="shell", action="approve", reason="every shell command needs a human")]
    )
    return create_agent_graph(agent, policy=policy)


def data_effects(home: Path) -> dict[str, list[dict[str, Any]]]:
    """``{"totals": [...]}``: the ``total.txt`` each thread's command wrote."""
    root = _workspace(home).base
    rows = [
        {"thread": path.parent.name, "content": path.read_text().strip()}
        for path in sorted(root.glob("*/total.txt"))
    ]
    return {"totals": rows}


def reset_data(home: Path) -> None:
    """Delete every thread's workspace."""
    shutil.rmtree(_workspace(home).base, ignore_errors=True)
