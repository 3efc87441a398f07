"""A governed shell agent that a test runs in subprocesses and kills with SIGKILL.

Usage: python shell_crash_app.py DB WORKSPACES ACTION [--decision JSON]

ACTION: start (the model asks for a command that appends a line to runs.txt, touches
``started`` and sleeps) | resume | decide (the one pending request). Prints one JSON
line: the pending requests and the messages.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage

from podium import Agent, runs
from podium.checkpoints import sqlite_saver
from podium.environments import Workspace, shell_tool
from podium.graphs import create_agent_graph
from podium.testing import ScriptedChatModel
from podium.tools import Decision

CFG = {"configurable": {"thread_id": "crash-shell"}}
COMMAND = "echo run >> runs.txt; touch started; sleep 1077; echo finished"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("db")
    p.add_argument("workspaces")
    p.add_argument("action")
    p.add_argument("--decision", default="")
    a = p.parse_args()
    first = AIMessage("", tool_calls=[{"name": "shell", "args": {"command": COMMAND}, "id": "c1"}])
    model = ScriptedChatModel([first, "done"] if a.action == "start" else ["done"])
    agent = Agent(name="ops", model=model, tools=[shell_tool(Workspace(a.workspaces))])
    app = create_agent_graph(agent).compile(checkpointer=sqlite_saver(Path(a.db)))
    out: dict[str, Any] = {}
    if a.action == "start":
        out = app.invoke({"messages": [("user", "run it")]}, CFG)
    elif a.action == "resume":
        out = runs.resume(app, CFG)
    elif a.action == "decide":
        [request] = runs.pending(app, CFG)
        out = runs.decide(app, CFG, {request.id: Decision.parse(json.loads(a.decision))})
    pending = [r.to_json() for r in runs.pending(app, CFG)]
    messages = [{"type": m.type, "content": m.content} for m in out.get("messages", [])]
    print(json.dumps({"pending": pending, "messages": messages}))


if __name__ == "__main__":
    main()
