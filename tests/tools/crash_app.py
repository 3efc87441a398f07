"""A small governed app that a test runs in subprocesses and kills with SIGKILL.

Usage: python crash_app.py DB EFFECTS ACTION [--crash POINT] [--idempotent] [--gate]
           [--decision JSON] [--durability MODE] [--fresh-ids] [--slow-saver SECONDS]
           [--big] [--kind podium|create_agent]

DB: a SQLite path, or a postgresql:// URL (workers of a scale-out deployment).
ACTION: start | resume | retry (resume, or send the request again if nothing was
saved) | decide | pending. POINT: inside (after the side effect, inside
the tool) | after_done (after the ledger recorded the result, before LangGraph saved
the step) | at_approval (right after the run paused for approval). The side effect is
a row in a separate SQLite file (EFFECTS), committed before any crash. Prints one
JSON line describing the outcome.

The run uses the README's plain call (``app.invoke(input, config)``, no durability
argument) unless ``--durability`` opts out. ``--fresh-ids`` makes the model behave
like a real provider: every reply gets a new random message id and call id, so a
model asked again issues a *new* call. ``--slow-saver`` makes each checkpoint write
take that long (to widen the window of ``durability="async"``); ``--big`` sends a
2 MB document with the request. ``--kind`` builds the agent as podium's agent graph
(default) or as LangChain's ``create_agent`` with ``podium.middleware.Governed``
(tests/agent_kinds.py).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: agent_kinds

from agent_kinds import agent_app
from podium import runs
from podium.checkpoints import PostgresLedger, SQLiteLedger, postgres_saver, sqlite_saver
from podium.testing import ScriptedChatModel
from podium.tools import Decision, Policy, Rule, idempotency_key, tool

CFG = {"configurable": {"thread_id": "crash-thread"}}


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class KillingPostgresLedger(PostgresLedger):
    def finish_call(self, thread_id: str, call_key: str, result: dict[str, Any]) -> None:
        super().finish_call(thread_id, call_key, result)
        die()


class KillingLedger(SQLiteLedger):
    def finish_call(self, thread_id: str, call_key: str, result: dict[str, Any]) -> None:
        super().finish_call(thread_id, call_key, result)
        die()


class FreshModel(BaseChatModel):
    """Calls charge until the conversation holds its result, then answers; every reply
    has new random ids, as a real provider's do."""

    @property
    def _llm_type(self) -> str:
        return "fresh"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        if any(isinstance(m, ToolMessage) for m in messages):
            reply = AIMessage("Charged.", id=f"ai-{uuid.uuid4()}")
        else:
            call = {"name": "charge", "args": {"order_id": "A-1", "amount": 250}}
            reply = AIMessage("", tool_calls=[{**call, "id": f"call-{uuid.uuid4()}"}])
            reply.id = f"ai-{uuid.uuid4()}"
        return ChatResult(generations=[ChatGeneration(message=reply)])


def slowed(saver: Any, seconds: float) -> Any:
    """Make every checkpoint write of ``saver`` take ``seconds`` longer."""
    put = saver.put

    def slow_put(*args: Any, **kwargs: Any) -> Any:
        time.sleep(seconds)
        return put(*args, **kwargs)

    saver.put = slow_put
    return saver


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("db")
    p.add_argument("effects")
    p.add_argument("action")
    p.add_argument("--crash", default="")
    p.add_argument("--idempotent", action="store_true")
    p.add_argument("--gate", action="store_true")
    p.add_argument("--decision", default="")
    p.add_argument("--durability", default=None)
    p.add_argument("--fresh-ids", action="store_true")
    p.add_argument("--slow-saver", type=float, default=0.0)
    p.add_argument("--big", action="store_true")
    p.add_argument("--kind", default="podium")
    a = p.parse_args()

    effects = sqlite3.connect(a.effects, isolation_level=None, check_same_thread=False)
    effects.execute("CREATE TABLE IF NOT EXISTS effects (key TEXT UNIQUE, order_id TEXT)")
    effects.execute("CREATE TABLE IF NOT EXISTS attempts (key TEXT)")

    @tool(risk="high", idempotent=a.idempotent)
    def charge(order_id: str, amount: float) -> str:
        """Charge a customer's card."""
        key = idempotency_key() or "none"
        effects.execute("INSERT INTO attempts VALUES (?)", (key,))
        if a.idempotent:
            effects.execute("INSERT OR IGNORE INTO effects VALUES (?, ?)", (key, order_id))
        else:
            effects.execute("INSERT INTO effects VALUES (NULL, ?)", (order_id,))
        if a.crash == "inside":
            die()
        return f"charged {amount} to {order_id}"

    first = AIMessage(
        "", tool_calls=[{"name": "charge", "args": {"order_id": "A-1", "amount": 250}, "id": "c1"}]
    )
    script: list[Any] = [first, "Charged."] if a.action == "start" else ["Charged."]
    model: Any = FreshModel() if a.fresh_ids else ScriptedChatModel(script)
    policy = Policy(rules=[Rule(tool="charge", action="approve")]) if a.gate else None
    postgres = a.db.startswith("postgresql://")  # a worker of a scale-out deployment
    saver: Any = postgres_saver(a.db) if postgres else sqlite_saver(Path(a.db))
    if a.slow_saver:
        saver = slowed(saver, a.slow_saver)
    if a.crash == "after_done":
        saver.podium_ledger = KillingPostgresLedger(a.db) if postgres else KillingLedger(Path(a.db))
    app = agent_app(
        a.kind, name="billing", model=model, tools=[charge], policy=policy, checkpointer=saver
    )

    out: dict[str, Any] = {}
    if a.action == "start":
        request = "charge A-1 250" + ("\n\n" + "attached document. " * 110_000 if a.big else "")
        options = {"durability": a.durability} if a.durability else {}
        out = app.invoke({"messages": [("user", request)]}, CFG, **options)
    elif a.action == "resume":
        out = runs.resume(app, CFG)
    elif a.action == "retry":  # what a user does after a crash: resume, or ask again
        if app.get_state(CFG).created_at is not None:
            out = runs.resume(app, CFG)
        else:
            out = app.invoke({"messages": [("user", "charge A-1 250")]}, CFG)
    elif a.action == "decide":
        [request] = runs.pending(app, CFG)
        out = runs.decide(app, CFG, {request.id: Decision.parse(json.loads(a.decision))})
    pending = [r.to_json() for r in runs.pending(app, CFG)]
    if a.crash == "at_approval" and pending:
        print(json.dumps({"pending": pending}))
        die()
    messages = [
        {"type": m.type, "content": m.content, "tool_calls": getattr(m, "tool_calls", [])}
        for m in out.get("messages", [])
    ]
    print(json.dumps({"pending": pending, "messages": messages}))


if __name__ == "__main__":
    main()
