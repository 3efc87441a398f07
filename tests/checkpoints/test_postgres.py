"""postgres_saver / async_postgres_saver and the Postgres ledger: workers share threads."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.postgres import PostgresSaver

import _postgres
from podium import Agent, PersistenceError, runs
from podium.checkpoints import PostgresLedger, async_postgres_saver, postgres_saver
from podium.errors import ConfigurationError
from podium.graphs import create_agent_graph
from podium.testing import ScriptedChatModel
from podium.tools import Decision, Policy, Rule, ledger_for, tool

pytestmark = pytest.mark.postgres
WORKER = Path(__file__).with_name("worker.py")


@tool(risk="high")
def charge(order_id: str, amount: float) -> str:
    """Charge a customer's card."""
    return f"charged {amount} to {order_id}"


CHARGE = AIMessage(
    "", tool_calls=[{"name": "charge", "args": {"order_id": "A-1", "amount": 250}, "id": "c1"}]
)
CFG: Any = {"configurable": {"thread_id": "t1"}}


def gated(saver: Any, replies: list[Any]) -> Any:
    agent = Agent(name="billing", model=ScriptedChatModel(replies), tools=[charge])
    policy = Policy(rules=[Rule(tool="charge", action="approve")])
    return create_agent_graph(agent, policy=policy).compile(checkpointer=saver)


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        return {r[0] for r in rows}


def test_saver_and_ledger_share_one_database(postgres_server: _postgres.Server) -> None:
    url = postgres_server.create_database(empty=True)
    with postgres_saver(url) as saver:
        assert isinstance(saver.podium_ledger, PostgresLedger)
        app = gated(saver, [CHARGE, "Charged."])
        app.invoke({"messages": [("user", "charge")]}, CFG)
        [request] = runs.pending(app, CFG)
        runs.decide(app, CFG, {request.id: Decision.approve(by="ops")})
        assert saver.podium_ledger.count_calls("t1") == 1
        [approval] = saver.podium_ledger.approvals("t1")
        assert approval.status == "decided"
    found = tables(url)
    assert {"checkpoints", "checkpoint_blobs", "checkpoint_writes"} <= found
    assert {"podium_tool_calls", "podium_approvals"} <= found
    postgres_server.drop_database(url)


def test_unreachable_server_names_the_url_without_the_password() -> None:
    started = time.perf_counter()
    with pytest.raises(PersistenceError) as info:
        postgres_saver("postgresql://bob:s3cret@127.0.0.1:9/podium", connect_timeout=1)
    message = str(info.value)
    assert "Cannot connect to PostgreSQL" in message
    assert "127.0.0.1" in message
    assert "s3cret" not in message
    assert "Fix:" in message
    assert time.perf_counter() - started < 30
    with pytest.raises(ConfigurationError, match="pool_size=1"):
        postgres_saver("postgresql:///x", pool_size=1)


async def test_async_saver_pauses_and_a_sync_saver_resumes(postgres_url: str) -> None:
    async with async_postgres_saver(postgres_url, pool_size=3) as saver:
        app = gated(saver, [CHARGE])
        out = await app.ainvoke({"messages": [("user", "charge A-1")]}, CFG)
        assert "__interrupt__" in out
        assert len(saver.podium_ledger.approvals("t1")) == 1
    with postgres_saver(postgres_url, pool_size=3) as sync_saver:
        app = gated(sync_saver, ["Charged."])
        [request] = runs.pending(app, CFG)
        done = runs.decide(app, CFG, {request.id: Decision.approve(by="ops")})
        assert done["messages"][-1].content == "Charged."


def _worker(url: str, thread: str, action: str, *extra: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(WORKER), "postgres", url, thread, action, *extra],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_two_worker_processes_alternate_on_one_thread(postgres_url: str) -> None:
    """Worker A pauses at an approval; worker B approves and finishes; then turns alternate."""
    paused = _worker(postgres_url, "shared", "start")
    [request] = paused["pending"]
    assert request["tool"] == "charge"
    approve = json.dumps({"action": "approve", "by": "ops"})
    finished = _worker(postgres_url, "shared", "decide", "--decision", approve)
    assert finished["pid"] != paused["pid"]
    assert finished["pending"] == []
    tool_results = [m["content"] for m in finished["messages"] if m["type"] == "tool"]
    assert len(tool_results) == 1
    assert f"by worker {finished['pid']}" in tool_results[0]  # ran once, on worker B
    turn = _worker(postgres_url, "shared", "turn")  # and one more turn on a third process
    assert turn["errors"] == []
    with postgres_saver(postgres_url, pool_size=2) as saver:
        messages = gated(saver, []).get_state({"configurable": {"thread_id": "shared"}})
        contents = [m.content for m in messages.values["messages"]]
        assert contents[0] == "charge A-1 250"
        assert contents.count("ok") == 1
        assert saver.podium_ledger.count_calls("shared") == 2  # the charge and one note
    assert len({paused["pid"], finished["pid"], turn["pid"]}) == 3


def test_workers_start_at_once_on_a_fresh_database(postgres_server: _postgres.Server) -> None:
    """Schema set-up runs under an advisory lock: concurrent first starts don't collide."""
    url = postgres_server.create_database(empty=True)
    start_at = str(time.time() + 4.0)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                "postgres",
                url,
                f"w{i}",
                "chat",
                "--turns",
                "3",
                "--start-at",
                start_at,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=240)
        assert proc.returncode == 0, stderr
        result = json.loads(stdout.strip().splitlines()[-1])
        assert result["errors"] == []
        assert result["ok"] == 3
    postgres_server.drop_database(url)


def test_ledger_location_for_served_graphs_and_stock_savers(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from podium.tools import _graph

    monkeypatch.setenv("PODIUM_LEDGER", postgres_url)
    served = ledger_for(InMemorySaver())
    try:
        assert isinstance(served, PostgresLedger)
        assert ledger_for(InMemorySaver()) is served  # one ledger per location
        monkeypatch.delenv("PODIUM_LEDGER")
        with PostgresSaver.from_conn_string(postgres_url) as stock:
            ledger = ledger_for(stock)
            assert isinstance(ledger, PostgresLedger)
            assert ledger.claim_call("t", "k", "charge", "h", "test-owner").won
            assert served.count_calls("t") == 1  # the same database
    finally:
        _graph._BY_LOCATION.pop(postgres_url).close()


def test_a_frozen_writers_transaction_is_ended_by_the_server(
    postgres_server: _postgres.Server,
) -> None:
    """podium's sessions carry idle_in_transaction_session_timeout, keeping the URL's own
    options: a worker frozen mid-transaction cannot hold its row locks for ever."""
    url = postgres_server.create_database(empty=True)
    with (
        postgres_saver(url + "&options=-c%20statement_timeout%3D90000") as saver,
        saver.conn.connection() as conn,
    ):
        rows = conn.execute(
            "SELECT current_setting('idle_in_transaction_session_timeout') AS idle, "
            "current_setting('statement_timeout') AS statement"
        ).fetchone()
    assert rows is not None
    assert (rows["idle"], rows["statement"]) == ("10s", "90s"), rows
    postgres_server.drop_database(url)
