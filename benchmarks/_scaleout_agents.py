"""What the scale-out load test runs: one conversational agent, on podium and on stock LangGraph.

Every turn of every thread is a user message whose id is the job's id. The model
(:class:`LoadModel`, deterministic from the conversation, new random message and
call ids on every reply as a real provider's) answers the *last* question: it first
calls the ungated side-effecting tool ``note``, then -- on a gated turn -- the
``refund`` tool, which needs a human's approval, then answers ``answer to <job>``.
Each tool appends a row (job, tool, pid) to a separate SQLite file, committed before
the tool returns, so the test counts exactly how often each one acted.

* **podium**: ``create_agent_graph`` with ``Policy(rules=[Rule(tool="refund",
  action="approve")])`` on ``sqlite_saver`` / ``postgres_saver``, invoked with the
  README's plain calls; approvals through ``runs.pending`` / ``runs.decide``.
* **stock**: the hand-written LangGraph agent (``MessagesState``, model node,
  ``ToolNode``, ``tools_condition``) on LangGraph's ``SqliteSaver`` (WAL, 30 s busy
  timeout) / ``PostgresSaver``; ``refund`` asks with ``interrupt()`` and the decider
  resumes with ``Command(resume=...)`` -- LangGraph's documented human-in-the-loop.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import BaseTool
from langchain_core.tools import tool as lc_tool
from langgraph.types import interrupt

from benchmarks import _scenarios as S
from podium import Agent, Policy, Rule
from podium.graphs import create_agent_graph
from podium.tools import tool as podium_tool

__all__ = [
    "LoadModel",
    "answered",
    "close_saver",
    "effects",
    "open_app",
    "open_saver",
    "prepare",
    "prepare_effects",
    "record_effect",
]

GATED = "[gated]"
"""Marks a turn whose question needs a refund (and so a human's approval)."""


class LoadModel(BaseChatModel):
    """Answers the last question: ``note``, then ``refund`` on a gated turn, then the answer."""

    delay: float = 0.005

    @property
    def _llm_type(self) -> str:
        return "load"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        time.sleep(self.delay)
        question = next(m for m in reversed(messages) if isinstance(m, HumanMessage))
        job = str(question.id)
        done = {
            m.name for m in messages[messages.index(question) + 1 :] if isinstance(m, ToolMessage)
        }
        if "note" not in done:
            reply = _call("note", {"job": job})
        elif GATED in str(question.content) and "refund" not in done:
            reply = _call("refund", {"job": job, "amount": 120})
        else:
            reply = AIMessage(f"answer to {job}", id=f"ai-{uuid.uuid4()}")
        return ChatResult(generations=[ChatGeneration(message=reply)])


def _call(name: str, args: dict[str, Any]) -> AIMessage:
    call = {"name": name, "args": args, "id": f"call-{uuid.uuid4().hex[:12]}"}
    return AIMessage("", tool_calls=[call], id=f"ai-{uuid.uuid4()}")


def answered(messages: list[BaseMessage], job: str) -> bool:
    """Whether the history holds the job's question and, after it, its answer."""
    for i, m in enumerate(messages):
        if isinstance(m, HumanMessage) and m.id == job:
            return any(
                isinstance(a, AIMessage) and a.content == f"answer to {job}" for a in messages[i:]
            )
    return False


# -- the side effects ------------------------------------------------------------------------
_EFFECTS = threading.local()


def record_effect(path: str, job: str, tool: str) -> None:
    """Append (job, tool, pid) to the effects file; committed before returning."""
    db = getattr(_EFFECTS, "db", None)  # one connection per thread (tools run in threads)
    if db is None:
        db = _EFFECTS.db = sqlite3.connect(path, timeout=60, isolation_level=None)
        db.execute("PRAGMA busy_timeout=60000")
    db.execute("INSERT INTO effects VALUES (?, ?, ?, ?)", (job, tool, os.getpid(), time.time()))


def prepare_effects(path: Path) -> None:
    """Create the effects file."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS effects (job TEXT, tool TEXT, pid INTEGER, at REAL)")


def effects(path: Path) -> list[tuple[str, str, int]]:
    """Every effect recorded: (job, tool, pid)."""
    with sqlite3.connect(path) as db:
        return [tuple(r) for r in db.execute("SELECT job, tool, pid FROM effects")]  # type: ignore[misc]


# -- the two implementations -----------------------------------------------------------------
def _podium_tools(effects_path: str) -> list[Any]:
    @podium_tool
    def note(job: str) -> str:
        """Write a note about the request (a side effect)."""
        record_effect(effects_path, job, "note")
        return f"noted {job}"

    @podium_tool(risk="high")
    def refund(job: str, amount: float) -> str:
        """Refund the customer (a side effect a human approves)."""
        record_effect(effects_path, job, "refund")
        return f"refunded {amount} for {job}"

    return [note, refund]


def _stock_tools(effects_path: str) -> list[BaseTool]:
    @lc_tool
    def note(job: str) -> str:
        """Write a note about the request (a side effect)."""
        record_effect(effects_path, job, "note")
        return f"noted {job}"

    @lc_tool
    def refund(job: str, amount: float) -> str:
        """Refund the customer (a side effect a human approves)."""
        if interrupt({"job": job, "tool": "refund", "amount": amount}) != "approve":
            return f"refund for {job} not approved"
        record_effect(effects_path, job, "refund")
        return f"refunded {amount} for {job}"

    return [note, refund]


def open_saver(side: str, db: str) -> Any:
    """The checkpointer a process of ``side`` opens on ``db`` (a file or a URL)."""
    is_url = db.startswith("postgresql://")
    if side == "podium":
        from podium.checkpoints import postgres_saver, sqlite_saver

        return (
            postgres_saver(db, pool_size=4) if is_url else sqlite_saver(db, integrity_check=False)
        )
    if is_url:
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool

        pool: Any = ConnectionPool(
            db,
            min_size=1,
            max_size=4,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
            open=True,
        )
        saver = PostgresSaver(pool)
        saver.podium_pool = pool  # type: ignore[attr-defined]
        return saver
    return S.stock_saver(Path(db), tuned=True)


def prepare(side: str, db: str) -> None:
    """Create the checkpointer's tables once, before the workers start."""
    saver = open_saver(side, db)
    try:
        if side == "stock" and db.startswith("postgresql://"):
            saver.setup()
    finally:
        close_saver(saver)


def close_saver(saver: Any) -> None:
    """Close what :func:`open_saver` opened."""
    pool = getattr(saver, "podium_pool", None)
    if pool is not None:
        pool.close()
    elif hasattr(saver, "close"):
        saver.close()
    else:
        saver.conn.close()


def open_app(side: str, saver: Any, effects_path: str) -> Any:
    """The compiled agent of ``side`` on ``saver``."""
    model = LoadModel()
    if side == "podium":
        agent = Agent(name="desk", model=model, tools=_podium_tools(effects_path))
        policy = Policy(
            rules=[Rule(tool="refund", action="approve", reason="refunds need a human")]
        )
        return create_agent_graph(agent, policy=policy).compile(checkpointer=saver)
    return S.raw_agent(model, _stock_tools(effects_path)).compile(checkpointer=saver)  # type: ignore[arg-type]
