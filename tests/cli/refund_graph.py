"""A graph for CLI tests: one agent, a refund tool behind approval, effects counted.

The scripted model's replies depend on where the thread is, as they would for a real
model: a fresh request gets the refund call, a resumed thread gets the final answer.
``REFUND_EFFECTS`` names the SQLite file where each real refund is counted.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from langchain_core.messages import AIMessage

from podium import Agent
from podium.graphs import create_agent_graph
from podium.testing import ScriptedChatModel
from podium.tools import Policy, Rule, tool


@tool(risk="high")
def issue_refund(order_id: str, amount: float) -> str:
    """Refund an order."""
    with sqlite3.connect(os.environ["REFUND_EFFECTS"]) as db:
        db.execute("CREATE TABLE IF NOT EXISTS refunds (order_id TEXT, amount REAL)")
        db.execute("INSERT INTO refunds VALUES (?, ?)", (order_id, amount))
    return f"refunded {amount} on {order_id}"


def build() -> Any:
    stage = os.environ.get("REFUND_STAGE", "start")
    call = {"name": "issue_refund", "args": {"order_id": "A-1", "amount": 250}, "id": "c1"}
    replies: list[Any] = (
        [AIMessage("", tool_calls=[call]), "Refund done."] if stage == "start" else ["Refund done."]
    )
    agent = Agent(name="billing", model=ScriptedChatModel(replies), tools=[issue_refund])
    policy = Policy(rules=[Rule(tool="issue_refund", action="approve", reason="over 100")])
    return create_agent_graph(agent, policy=policy)
