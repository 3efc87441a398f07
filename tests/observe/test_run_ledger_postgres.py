"""The run ledger on PostgreSQL: events in ``podium_events`` of the saver's database.

A podium Postgres saver's runs, an async saver's, and a ``PODIUM_RUN_LEDGER`` URL
are read back through :func:`podium.runs.events` and, from another connection, by a
fresh store -- the events are in the database, not in this process.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from podium import Agent, runs
from podium.checkpoints import async_postgres_saver, postgres_saver, sqlite_saver
from podium.checkpoints._pg import PostgresEventStore, PostgresLedger
from podium.graphs import create_agent_graph
from podium.testing import ScriptedChatModel
from podium.tools import Decision, Policy, Rule, tool

pytestmark = pytest.mark.postgres

CFG: Any = {"configurable": {"thread_id": "pg-obs"}}
CALL = {"name": "refund", "args": {"order": "A-1", "amount": 5}, "id": "c1", "type": "tool_call"}


@tool(risk="high")
def refund(order: str, amount: float) -> str:
    """Refund an order."""
    return f"refunded {amount} on {order}"


def app_on(saver: Any) -> Any:
    agent = Agent(
        name="billing",
        model=ScriptedChatModel([AIMessage("", tool_calls=[CALL]), "Done."]),
        tools=[refund],
    )
    policy = Policy(rules=[Rule(tool="refund", action="approve")])
    return create_agent_graph(agent, policy=policy).compile(checkpointer=saver)


def stored(url: str, thread: str = "pg-obs") -> list[dict[str, Any]]:
    """The thread's events, read on a connection of their own."""
    ledger = PostgresLedger(url)
    try:
        return PostgresEventStore(ledger).events(thread)
    finally:
        ledger.close()


@pytest.fixture
def url(postgres_url: str) -> Iterator[str]:
    yield postgres_url
    from podium.tools import _graph

    found = _graph._BY_LOCATION.pop(postgres_url, None)  # the events' pool, per URL
    if found is not None:
        found.close()


def test_a_postgres_savers_run_is_recorded_in_its_database(url: str) -> None:
    before = time.time()
    with postgres_saver(url, pool_size=2) as saver:
        app = app_on(saver)
        app.invoke({"messages": [("user", "refund A-1")]}, CFG)
        [request] = runs.pending(app, CFG)
        runs.decide(app, CFG, {request.id: Decision.approve(by="ops")})
        seen = runs.events(app, CFG)
    kinds = [e["kind"] for e in seen]
    assert kinds.count("model") == 2
    assert {"approval_requested", "approval_decided", "tool"} <= set(kinds)
    model = next(e for e in seen if e["kind"] == "model")
    assert model["input_tokens"] > 0
    assert model["agent"] == "billing"
    # epoch seconds keep sub-second precision (PostgreSQL's REAL would round to ~2 min)
    assert before <= model["started_at"] <= model["ended_at"] <= time.time()
    assert stored(url) == seen
    assert runs.events(app, CFG, kinds=["approval_decided"])[0]["data"]["by"] == "ops"

    with postgres_saver(url, pool_size=2) as saver:
        saver.delete_thread("pg-obs")
    assert stored(url) == []


async def test_an_async_postgres_savers_run_is_recorded(url: str) -> None:
    async with async_postgres_saver(url, pool_size=2) as saver:
        app = app_on(saver)
        await app.ainvoke({"messages": [("user", "refund A-1")]}, CFG)
        seen = runs.events(app, CFG)
    assert [e["kind"] for e in seen if e["kind"] in ("model", "approval_requested")] == [
        "model",
        "approval_requested",
    ]
    assert stored(url) == seen


def test_podium_run_ledger_may_name_a_database(
    url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PODIUM_RUN_LEDGER", url)
    with sqlite_saver(tmp_path / "runs.sqlite") as saver:
        app = app_on(saver)
        app.invoke({"messages": [("user", "refund A-1")]}, CFG)
        seen = runs.events(app, CFG)
    assert "approval_requested" in {e["kind"] for e in seen}
    assert stored(url) == seen


def test_podium_run_ledger_wins_over_a_postgres_podium_ledger(
    url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from podium.checkpoints._events import SQLiteEventStore
    from podium.tools._graph import event_store_for

    monkeypatch.setenv("PODIUM_LEDGER", url)
    monkeypatch.setenv("PODIUM_RUN_LEDGER", str(tmp_path / "events.sqlite"))
    store = event_store_for(None)
    assert isinstance(store, SQLiteEventStore)
    assert store.path == str(tmp_path / "events.sqlite")
    monkeypatch.delenv("PODIUM_RUN_LEDGER")
    assert isinstance(event_store_for(None), PostgresEventStore)
