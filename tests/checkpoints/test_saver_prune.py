"""LangGraph's ``saver.prune`` / ``aprune`` on podium's savers: the ledger goes with a thread.

``strategy="delete"`` removes the threads' exactly-once ledger rows (``podium_tool_calls``,
``podium_approvals``) and run events with their checkpoints, as ``delete_thread`` does;
``strategy="keep_latest"`` keeps them (the thread lives on) and keeps what loading the
latest checkpoint needs. Real SQLite files and a real PostgreSQL server; rows are counted
in the tables themselves.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from langchain_core.messages import AIMessage
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from podium import Agent, UnknownThreadError, runs
from podium.checkpoints import (
    Messages,
    async_postgres_saver,
    async_sqlite_saver,
    postgres_saver,
    sqlite_saver,
)
from podium.checkpoints._messages import SNAPSHOT_EVERY
from podium.errors import ConfigurationError
from podium.graphs import create_agent_graph
from podium.testing import ScriptedChatModel
from podium.tools import Decision, Policy, Rule, tool

LEDGER_TABLES = ("podium_tool_calls", "podium_approvals")
CHARGED: list[str] = []


@tool(risk="high")
def charge(order_id: str, amount: float) -> str:
    """Charge a customer's card."""
    CHARGED.append(order_id)
    return f"charged {amount} to {order_id}"


CHARGE = AIMessage(
    "", tool_calls=[{"name": "charge", "args": {"order_id": "A-1", "amount": 250}, "id": "c1"}]
)


def gated(saver: Any, replies: list[Any]) -> Any:
    agent = Agent(name="billing", model=ScriptedChatModel(replies), tools=[charge])
    policy = Policy(rules=[Rule(tool="charge", action="approve")])
    return create_agent_graph(agent, policy=policy).compile(checkpointer=saver)


class Chat(TypedDict):
    messages: Messages


def chat_app(saver: Any) -> Any:
    graph = StateGraph(Chat)
    graph.add_node("reply", lambda s: {"messages": [AIMessage(f"r{len(s['messages'])}")]})
    graph.add_edge(START, "reply")
    graph.add_edge("reply", END)
    return graph.compile(checkpointer=saver)


def cfg(thread: str) -> Any:
    return {"configurable": {"thread_id": thread}}


def charge_approved(saver: Any, thread: str) -> Any:
    """A thread whose gated tool was approved and ran: one row in each ledger table."""
    app = gated(saver, [CHARGE, "Charged."])
    app.invoke({"messages": [("user", "charge A-1")]}, cfg(thread))
    [request] = runs.pending(app, cfg(thread))
    out = runs.decide(app, cfg(thread), {request.id: Decision.approve(by="ops")})
    assert out["messages"][-1].content == "Charged."
    return app


@dataclass
class Database:
    """One SQLite file or one Postgres database, opened as a new process would."""

    kind: str
    target: str

    def saver(self) -> Any:
        if self.kind == "sqlite":
            return sqlite_saver(self.target)
        return postgres_saver(self.target, pool_size=3)

    def async_saver(self) -> Any:
        if self.kind == "sqlite":
            return async_sqlite_saver(self.target)
        return async_postgres_saver(self.target, pool_size=3)

    def rows(self, table: str, thread: str) -> int:
        if self.kind == "sqlite":
            with sqlite3.connect(self.target) as db:
                exists = db.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
                ).fetchone()
                if not exists:
                    return 0
                return int(
                    db.execute(
                        f"SELECT count(*) FROM {table} WHERE thread_id = ?", (thread,)
                    ).fetchone()[0]  # type: ignore[index]
                )
        with psycopg.connect(self.target) as conn:
            row = conn.execute(
                f"SELECT count(*) FROM {table} WHERE thread_id = %s", (thread,)
            ).fetchone()
            assert row is not None
            return int(row[0])

    def ledger(self, thread: str) -> dict[str, int]:
        return {table: self.rows(table, thread) for table in LEDGER_TABLES}

    def checkpoints(self, thread: str) -> int:
        return self.rows("checkpoints", thread)

    def events(self, thread: str) -> int:
        return self.rows("podium_events", thread)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        yield Database("sqlite", str(tmp_path / "runs.sqlite"))
    else:
        yield Database("postgres", request.getfixturevalue("postgres_url"))


@pytest.fixture
def threads(db: Database) -> Callable[..., dict[str, Any]]:
    """Builds the threads every test prunes: gated runs with ledger rows, and a long chat."""

    def build(*names: str, long: str | None = None) -> dict[str, Any]:
        apps: dict[str, Any] = {}
        with db.saver() as saver:
            for name in names:
                apps[name] = charge_approved(saver, name)
                runs.events(apps[name], cfg(name))  # flush the run ledger
            if long is not None:
                app = chat_app(saver)
                for i in range(SNAPSHOT_EVERY // 2 + 10):  # past the first snapshot
                    app.invoke({"messages": [("user", f"u{i}")]}, cfg(long))
        for name in names:
            assert db.ledger(name) == {"podium_tool_calls": 1, "podium_approvals": 1}
            assert db.events(name) > 0
        return apps

    return build


def messages_of(saver: Any, thread: str) -> list[str]:
    state = chat_app(saver).get_state(cfg(thread))
    return [str(m.content) for m in state.values.get("messages", [])]


def check_deleted(db: Database, thread: str) -> None:
    assert db.ledger(thread) == {"podium_tool_calls": 0, "podium_approvals": 0}
    assert db.checkpoints(thread) == 0
    assert db.events(thread) == 0


def check_untouched(db: Database, thread: str, checkpoints: int) -> None:
    assert db.ledger(thread) == {"podium_tool_calls": 1, "podium_approvals": 1}
    assert db.checkpoints(thread) == checkpoints
    assert db.events(thread) > 0


def test_prune_delete_removes_the_ledger_rows_of_the_deleted_threads(
    db: Database, threads: Callable[..., dict[str, Any]]
) -> None:
    threads("gone", "also-gone", "other")
    other = db.checkpoints("other")
    with db.saver() as saver:
        saver.prune(["gone", "also-gone"], strategy="delete")
        with pytest.raises(UnknownThreadError):
            runs.pending(gated(saver, []), cfg("gone"))
    check_deleted(db, "gone")
    check_deleted(db, "also-gone")
    check_untouched(db, "other", other)

    # the thread id is fresh again: the same tool call asks and runs anew
    CHARGED.clear()
    with db.saver() as saver:
        charge_approved(saver, "gone")
    assert CHARGED == ["A-1"]
    assert db.ledger("gone") == {"podium_tool_calls": 1, "podium_approvals": 1}


def test_prune_keep_latest_keeps_the_ledger_and_what_loading_needs(
    db: Database, threads: Callable[..., dict[str, Any]]
) -> None:
    threads("kept", long="chat")
    with db.saver() as saver:
        before = messages_of(saver, "chat")
        kept_before = gated(saver, []).get_state(cfg("kept")).values["messages"]
    chat_before, events_before = db.checkpoints("chat"), db.events("kept")

    with db.saver() as saver:
        saver.prune(["kept", "chat"])  # keep_latest is LangGraph's default strategy

    assert 0 < db.checkpoints("chat") < chat_before  # delta history: a snapshot back
    assert db.ledger("kept") == {"podium_tool_calls": 1, "podium_approvals": 1}
    assert db.events("kept") == events_before
    with db.saver() as saver:
        assert messages_of(saver, "chat") == before
        assert gated(saver, []).get_state(cfg("kept")).values["messages"] == kept_before
        chat_app(saver).invoke({"messages": [("user", "again")]}, cfg("chat"))
        assert messages_of(saver, "chat")[-2:] == ["again", f"r{len(before) + 1}"]


async def test_aprune_delete_and_keep_latest(
    db: Database, threads: Callable[..., dict[str, Any]]
) -> None:
    threads("gone", "kept", long="chat")
    chat_before = db.checkpoints("chat")
    async with db.async_saver() as saver:
        before = (await saver.aget_tuple(cfg("chat"))).checkpoint
        await saver.aprune(["gone"], strategy="delete")
        check_deleted(db, "gone")
        await saver.aprune(["kept", "chat"], strategy="keep_latest")
        assert db.ledger("kept") == {"podium_tool_calls": 1, "podium_approvals": 1}
        assert 0 < db.checkpoints("chat") < chat_before
        after = (await saver.aget_tuple(cfg("chat"))).checkpoint
        assert after["id"] == before["id"]
        assert await saver.aget_tuple(cfg("gone")) is None
    with db.saver() as saver:
        assert messages_of(saver, "chat")[-1] == f"r{2 * (SNAPSHOT_EVERY // 2 + 10) - 1}"


async def test_sync_prune_on_an_async_saver_from_another_thread(
    db: Database, threads: Callable[..., dict[str, Any]]
) -> None:
    threads("gone", "other")
    async with db.async_saver() as saver:
        with pytest.raises(asyncio.InvalidStateError):  # never block the event loop
            saver.prune(["gone"], strategy="delete")
        await asyncio.to_thread(saver.prune, ["gone"], strategy="delete")
    check_deleted(db, "gone")
    assert db.ledger("other") == {"podium_tool_calls": 1, "podium_approvals": 1}


@pytest.mark.parametrize(
    ("thread_ids", "strategy", "match"),
    [
        ("gone", "delete", "not one string"),
        (["gone"], "truncate", "not a prune strategy"),
    ],
)
async def test_bad_prune_arguments_change_nothing(
    db: Database,
    threads: Callable[..., dict[str, Any]],
    thread_ids: Any,
    strategy: str,
    match: str,
) -> None:
    threads("gone")
    with db.saver() as saver, pytest.raises(ConfigurationError, match=match):
        saver.prune(thread_ids, strategy=strategy)
    async with db.async_saver() as saver:
        with pytest.raises(ConfigurationError, match=match):
            await saver.aprune(thread_ids, strategy=strategy)
    assert db.ledger("gone") == {"podium_tool_calls": 1, "podium_approvals": 1}
    assert db.checkpoints("gone") > 0


def test_delete_thread_on_the_saver_removes_run_events_too(
    db: Database, threads: Callable[..., dict[str, Any]]
) -> None:
    threads("gone")
    with db.saver() as saver:
        saver.delete_thread("gone")
    check_deleted(db, "gone")
