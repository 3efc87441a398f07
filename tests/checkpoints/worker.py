"""A worker process for the multi-process persistence tests.

Usage: python worker.py KIND TARGET THREAD ACTION [--turns N] [--start-at EPOCH]
           [--gate] [--decision JSON]

KIND: sqlite (TARGET is a file) | postgres (TARGET is a URL).
ACTION:
  chat    -- run N turns; each calls the side-effecting ``note`` tool (a ledger
             row) and then answers. Counts errors instead of stopping.
  start   -- one turn whose ``charge`` call waits for approval (with --gate).
  decide  -- decide the pending request with --decision and finish the run.
  turn    -- one more plain turn on the thread (``note`` + answer).
Prints one JSON line: {"ok", "errors", "pending", "messages", "pid"}.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from langchain_core.messages import AIMessage

from podium import Agent, runs
from podium.checkpoints import postgres_saver, sqlite_saver
from podium.graphs import create_agent_graph
from podium.testing import ScriptedChatModel
from podium.tools import Decision, Policy, Rule, tool


@tool
def note(text: str) -> str:
    """Write a note (a side effect: goes through the exactly-once ledger)."""
    return f"noted {text}"


@tool(risk="high")
def charge(order_id: str, amount: float) -> str:
    """Charge a customer's card."""
    return f"charged {amount} to {order_id} by worker {os.getpid()}"


def call(name: str, args: dict[str, Any], id_: str) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": id_}])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=["sqlite", "postgres"])
    p.add_argument("target")
    p.add_argument("thread")
    p.add_argument("action", choices=["chat", "start", "decide", "turn"])
    p.add_argument("--turns", type=int, default=1)
    p.add_argument("--start-at", type=float, default=0.0)
    p.add_argument("--gate", action="store_true")
    p.add_argument("--decision", default="")
    a = p.parse_args()

    if a.start_at:  # line the workers up so their first writes collide
        time.sleep(max(0.0, a.start_at - time.time()))
    cfg: Any = {"configurable": {"thread_id": a.thread}}
    script: list[Any] = []
    if a.action in ("chat", "turn"):
        for i in range(a.turns):
            script += [call("note", {"text": f"{a.thread}-{os.getpid()}-{i}"}, f"n{i}"), "ok"]
    elif a.action == "start":
        script = [call("charge", {"order_id": "A-1", "amount": 250}, "c1"), "Charged."]
    else:
        script = ["Charged."]
    policy = Policy(rules=[Rule(tool="charge", action="approve")])
    agent = Agent(name="clerk", model=ScriptedChatModel(script), tools=[note, charge])
    errors: list[str] = []
    ok = 0
    saver: Any = sqlite_saver(a.target) if a.kind == "sqlite" else postgres_saver(a.target)
    out: dict[str, Any] = {}
    try:
        app = create_agent_graph(agent, policy=policy).compile(checkpointer=saver)
        if a.action in ("chat", "turn"):
            for i in range(a.turns):
                try:
                    out = app.invoke({"messages": [("user", f"turn {i}")]}, cfg)
                    ok += 1
                except Exception as exc:  # counted, so the test can report them all
                    errors.append(f"{type(exc).__name__}: {exc}")
        elif a.action == "start":
            out = app.invoke({"messages": [("user", "charge A-1 250")]}, cfg)
        else:
            [request] = runs.pending(app, cfg)
            out = runs.decide(app, cfg, {request.id: Decision.parse(json.loads(a.decision))})
        pending = [r.to_json() for r in runs.pending(app, cfg)]
    finally:
        saver.close()
    messages = [{"type": m.type, "content": m.content} for m in out.get("messages", [])]
    print(
        json.dumps(
            {
                "ok": ok,
                "errors": errors,
                "pending": pending,
                "messages": messages,
                "pid": os.getpid(),
            }
        )
    )


if __name__ == "__main__":
    main()
