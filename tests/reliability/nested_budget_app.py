"""A pipeline named "team" whose stage is an agent graph also named "team", each with a budget.

Imported by tests/reliability/test_budget.py, and run as a script to resume the same thread
in a new process: ``python nested_budget_app.py DB REQUEST_ID`` approves the pending request,
lets the run finish and prints the outcome as JSON.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from langchain_core.messages import AIMessage

from podium import Agent, Budget, runs
from podium.checkpoints import sqlite_saver
from podium.graphs import Stage, create_agent_graph, create_pipeline_graph
from podium.testing import ScriptedChatModel
from podium.tools import Decision, Policy, Rule, tool

INNER = Budget(model_calls=2, on_exhausted="escalate")
OUTER = Budget(model_calls=10, on_exhausted="escalate")
CONFIG: Any = {"configurable": {"thread_id": "nested"}}


@tool(read_only=True)
def lookup(q: str) -> str:
    """Look something up."""
    return f"found {q}"


@tool(risk="high")
def charge(order_id: str) -> str:
    """Charge an order."""
    return f"charged {order_id}"


def call(name: str, args: dict[str, Any], id_: str) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": id_}])


FIRST_PROCESS = [
    call("lookup", {"q": "a"}, "c1"),
    call("lookup", {"q": "b"}, "c2"),
    call("charge", {"order_id": "A-1"}, "c3"),
]
SECOND_PROCESS = ["Charged A-1."]


def build(replies: list[Any]) -> Any:
    """The uncompiled graph; ``replies`` is what the stage's model says in this process."""
    team = Agent(name="team", model=ScriptedChatModel(replies), tools=[lookup, charge])
    policy = Policy(rules=[Rule(tool="charge", action="approve")])
    inner = create_agent_graph(team, budget=INNER, policy=policy)
    return create_pipeline_graph([Stage("work", inner)], name="team", budget=OUTER)


if __name__ == "__main__":
    path, request_id = sys.argv[1], sys.argv[2]
    with sqlite_saver(path) as saver:
        app = build(SECOND_PROCESS).compile(checkpointer=saver)
        out = runs.decide(app, CONFIG, {request_id: Decision.approve(by="ops")})
        pending = [r.to_json() for r in runs.pending(app, CONFIG)]
        print(
            json.dumps(
                {
                    "stage_outputs": out.get("stage_outputs"),
                    "usage": out.get("usage"),
                    "pending": pending,
                }
            )
        )
