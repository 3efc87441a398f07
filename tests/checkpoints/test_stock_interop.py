"""podium's SQLite files stay LangGraph files: stock savers continue podium threads.

A thread run to an approval on podium's saver is approved and finished by the same
graph compiled with LangGraph's stock ``SqliteSaver`` (or ``AsyncSqliteSaver``) on
the same file, and the other way round; the ledger in the file keeps the side
effect to exactly once whichever saver runs the step.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.types import Command

from podium import Agent, runs
from podium.checkpoints import async_sqlite_saver, sqlite_saver
from podium.checkpoints._sqlite import PodiumSqliteSaver
from podium.graphs import create_agent_graph
from podium.testing import ScriptedChatModel
from podium.tools import Decision, Policy, Rule, tool

CHARGES: list[tuple[str, float]] = []
CFG: Any = {"configurable": {"thread_id": "t1"}}
APPROVE = Decision.approve(by="alice")


@tool(risk="high")
def charge(order_id: str, amount: float) -> str:
    """Charge a customer's card."""
    CHARGES.append((order_id, amount))
    return f"charged {amount} to {order_id}"


def _asks(order: str) -> AIMessage:
    call = {"name": "charge", "args": {"order_id": order, "amount": 250}, "id": f"c-{order}"}
    return AIMessage("", tool_calls=[call])


def _app(saver: Any, *replies: Any) -> Any:
    agent = Agent(name="billing", model=ScriptedChatModel(list(replies)), tools=[charge])
    policy = Policy(rules=[Rule(tool="charge", action="approve")])
    return create_agent_graph(agent, policy=policy).compile(checkpointer=saver)


def _stock(path: Path) -> SqliteSaver:
    return SqliteSaver(sqlite3.connect(path, check_same_thread=False))


def _versions(saver: Any) -> list[Any]:
    head = saver.get_tuple(CFG)
    assert head is not None
    seen = [v for node in head.checkpoint["versions_seen"].values() for v in node.values()]
    return [*head.checkpoint["channel_versions"].values(), *seen]


@pytest.fixture(autouse=True)
def _no_charges() -> None:
    CHARGES.clear()


@pytest.mark.parametrize(
    ("first", "then"),
    [(sqlite_saver, _stock), (_stock, sqlite_saver)],
    ids=["podium-then-stock", "stock-then-podium"],
)
def test_a_thread_waits_on_one_saver_and_finishes_on_the_other(
    tmp_path: Path, first: Callable[[Path], Any], then: Callable[[Path], Any]
) -> None:
    path = tmp_path / "runs.sqlite"
    sqlite_saver(path).close()  # the file with podium's tables, as any podium run leaves it
    saver = first(path)
    app = _app(saver, _asks("A-1"))
    app.invoke({"messages": [("user", "charge 250 on A-1")]}, CFG)
    [request] = runs.pending(app, CFG)
    assert (request.tool, request.args) == ("charge", {"order_id": "A-1", "amount": 250})
    if isinstance(saver, PodiumSqliteSaver):
        assert all(isinstance(v, str) and v.startswith("+") for v in _versions(saver))
    saver.conn.close()

    other = then(path)
    app = _app(other, "Charged 250 on A-1.", _asks("A-2"), "Charged 250 on A-2.")
    final = runs.decide(app, CFG, {request.id: APPROVE})
    assert final["messages"][-1].content == "Charged 250 on A-1."
    assert CHARGES == [("A-1", 250)]
    # the next turn, on the same saver: new versions sort after the first saver's
    app.invoke({"messages": [("user", "and 250 on A-2")]}, CFG)
    [second] = runs.pending(app, CFG)
    runs.decide(app, CFG, {second.id: APPROVE})
    assert CHARGES == [("A-1", 250), ("A-2", 250)]
    other.conn.close()

    # and back to the first saver: the whole history loads and nothing waits
    again = first(path)
    state = _app(again).get_state(CFG)
    assert [m.content for m in state.values["messages"] if m.type == "ai" and m.content] == [
        "Charged 250 on A-1.",
        "Charged 250 on A-2.",
    ]
    assert state.next == ()
    assert len({type(v) for v in _versions(again)}) == 1
    again.conn.close()


def _astock(path: Path) -> Any:
    return AsyncSqliteSaver.from_conn_string(str(path))


def _apodium(path: Path) -> Any:
    return async_sqlite_saver(path)


@pytest.mark.parametrize(
    ("first", "then"),
    [(_apodium, _astock), (_astock, _apodium)],
    ids=["podium-then-stock", "stock-then-podium"],
)
async def test_the_async_savers_continue_each_others_threads(
    tmp_path: Path, first: Callable[[Path], Any], then: Callable[[Path], Any]
) -> None:
    path = tmp_path / "runs.sqlite"
    sqlite_saver(path).close()
    async with first(path) as saver:
        app = _app(saver, _asks("A-1"))
        await app.ainvoke({"messages": [("user", "charge 250 on A-1")]}, CFG)
        [waiting] = (await app.aget_state(CFG)).interrupts

    async with then(path) as other:
        app = _app(other, "Charged 250 on A-1.")
        final = await app.ainvoke(Command(resume={waiting.id: APPROVE.to_json()}), CFG)
        assert final["messages"][-1].content == "Charged 250 on A-1."
        assert CHARGES == [("A-1", 250)]
        assert (await app.aget_state(CFG)).next == ()


def test_versions_are_short_ordered_and_hand_over_to_the_stock_form(tmp_path: Path) -> None:
    with sqlite_saver(tmp_path / "v.sqlite") as saver:
        first = saver.get_next_version(None, None)
        assert first == "+000000001"
        chain = [first]
        for _ in range(11):
            chain.append(saver.get_next_version(chain[-1], None))
        assert chain == sorted(chain)
        assert chain[-1] == "+000000012"
        # a stock saver's next version after podium's sorts above it, and podium
        # then numbers on in the stock form
        stock = SqliteSaver.get_next_version(saver, chain[-1], None)
        assert stock > chain[-1]
        assert int(stock.split(".")[0]) == 13
        after = saver.get_next_version(stock, None)
        assert after > stock
        assert int(after.split(".")[0]) == 14
        # past nine digits: the stock form, still in order
        last = saver.get_next_version("+999999998", None)
        beyond = saver.get_next_version(last, None)
        assert last == "+999999999"
        assert beyond > last
        assert int(beyond.split(".")[0]) == 10**9
        # threads written with integer versions (earlier podium builds) keep them
        assert saver.get_next_version(7, None) == 8
