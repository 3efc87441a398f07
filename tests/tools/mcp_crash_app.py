"""A governed agent whose commit goes through mcp-server-git; a test kills it with SIGKILL.

Usage: python mcp_crash_app.py DB REPO ACTION [--crash POINT] [--decision JSON]

ACTION: start | decide | resume. POINT: at_approval (right after the run paused for
approval) | after_done (after the ledger recorded the commit's result, before LangGraph
saved the step). The commit is gated by the policy; the repository's ``git log`` counts
how often it really ran. Prints one JSON line describing the outcome.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage

from podium import Agent, runs
from podium.checkpoints import SQLiteLedger, sqlite_saver
from podium.graphs import create_agent_graph
from podium.testing import ScriptedChatModel
from podium.tools import Decision, MCPServer, Policy, Rule, mcp_tools

CFG = {"configurable": {"thread_id": "mcp-crash"}}


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class KillingLedger(SQLiteLedger):
    def finish_call(self, thread_id: str, call_key: str, result: dict[str, Any]) -> bool:
        done = super().finish_call(thread_id, call_key, result)
        die()
        return done


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("db")
    p.add_argument("repo")
    p.add_argument("action")
    p.add_argument("--crash", default="")
    p.add_argument("--decision", default="")
    a = p.parse_args()

    git = MCPServer(
        "repo",
        command=sys.executable,
        args=["-m", "mcp_server_git", "--repository", a.repo],
        include=["git_commit"],
    )
    commit = AIMessage(
        "",
        tool_calls=[
            {
                "name": "repo_git_commit",
                "args": {"repo_path": a.repo, "message": "Add notes"},
                "id": "c1",
            }
        ],
    )
    script: list[Any] = [commit, "Committed."] if a.action == "start" else ["Committed."]
    agent = Agent(name="dev", model=ScriptedChatModel(script), tools=mcp_tools(git))
    policy = Policy(rules=[Rule(tool="repo_git_commit", action="approve")])
    saver: Any = sqlite_saver(Path(a.db))
    if a.crash == "after_done":
        saver.podium_ledger = KillingLedger(Path(a.db))
    app = create_agent_graph(agent, policy=policy).compile(checkpointer=saver)

    out: dict[str, Any] = {}
    if a.action == "start":
        out = app.invoke({"messages": [("user", "commit the notes")]}, CFG)
    elif a.action == "resume":
        out = runs.resume(app, CFG)
    elif a.action == "decide":
        [request] = runs.pending(app, CFG)
        out = runs.decide(app, CFG, {request.id: Decision.parse(json.loads(a.decision))})
    pending = [r.to_json() for r in runs.pending(app, CFG)]
    if a.crash == "at_approval" and pending:
        print(json.dumps({"pending": pending}))
        die()
    messages = [{"type": m.type, "content": m.content} for m in out.get("messages", [])]
    print(json.dumps({"pending": pending, "messages": messages}))


if __name__ == "__main__":
    main()
