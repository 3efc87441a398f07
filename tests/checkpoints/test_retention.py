"""prune / thread_sizes / delete_thread on SQLite and Postgres."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from podium import Agent, UnknownThreadError, runs
from podium.checkpoints import (
    Messages,
    delete_thread,
    prune,
    thread_sizes,
)
from podium.checkpoints._messages import SNAPSHOT_EVERY
from podium.errors import ConfigurationError
from podium.graphs import create_agent_graph
from podium.testing import ScriptedChatModel
from podium.tools import Decision, Policy, Rule, tool

Saver = Any


class Chat(TypedDict):
    messages: Messages


def chat_app(saver: Saver, with_subgraph: bool = False) -> Any:
    graph = StateGraph(Chat)
    if with_subgraph:  # a compiled child graph: its checkpoints live in "reply:<task>"
        child = StateGraph(Chat)
        child.add_node("inner", lambda s: {"messages": [AIMessage(f"r{len(s['messages'])}")]})
        child.add_edge(START, "inner")
        child.add_edge("inner", END)
        graph.add_node("reply", child.compile())
    else:
        graph.add_node("reply", lambda s: {"messages": [AIMessage(f"r{len(s['messages'])}")]})
    graph.add_edge(START, "reply")
    graph.add_edge("reply", END)
    return graph.compile(checkpointer=saver)


def chat(app: Any, thread: str, turns: int) -> None:
    for i in range(turns):
        app.invoke({"messages": [("user", f"u{i}")]}, {"configurable": {"thread_id": thread}})


def states(app: Any, thread: str) -> dict[str, list[str]]:
    cfg = {"configurable": {"thread_id": thread}}
    return {
        s.config["configurable"]["checkpoint_id"]: [m.content for m in s.values["messages"]]
        for s in app.get_state_history(cfg)
    }


def test_prune_keeps_the_newest_checkpoints_loadable(durable: Callable[[], Saver]) -> None:
    saver = durable()
    app = chat_app(saver)
    turns = SNAPSHOT_EVERY // 2 + 25  # two updates a turn: past the first snapshot
    chat(app, "t", turns)
    chat(app, "other", 5)
    before = states(app, "t")
    other_before = states(app, "other")
    size_before = next(s for s in thread_sizes(saver) if s.thread_id == "t").bytes

    result = prune(saver, "t", keep_last=5)

    after = states(app, "t")
    assert result.deleted > 0
    assert result.kept == len(after)
    assert len(after) >= 5
    newest = sorted(before, reverse=True)[:5]
    assert set(newest) <= set(after)
    for checkpoint_id, contents in after.items():  # every kept checkpoint rebuilds exactly
        assert contents == before[checkpoint_id]
    assert states(app, "other") == other_before  # other threads untouched
    assert next(s for s in thread_sizes(saver) if s.thread_id == "t").bytes < size_before
    # resume on the pruned thread, with a new saver object as another process would
    app2 = chat_app(durable())
    chat(app2, "t", 1)
    messages = app2.get_state({"configurable": {"thread_id": "t"}}).values["messages"]
    assert len(messages) == 2 * (turns + 1)
    assert messages[0].content == "u0"
    # time travel from the oldest checkpoint that prune promised to keep
    oldest = app2.get_state(
        {"configurable": {"thread_id": "t", "checkpoint_id": newest[-1], "checkpoint_ns": ""}}
    )
    fork = app2.update_state(oldest.config, {"messages": [HumanMessage("fork")]})
    assert app2.get_state(fork).values["messages"][-1].content == "fork"
    assert len(app2.get_state(fork).values["messages"]) == len(before[newest[-1]]) + 1


def test_prune_twice_and_keep_one(durable: Callable[[], Saver]) -> None:
    saver = durable()
    app = chat_app(saver)
    chat(app, "t", 60)
    expected = app.get_state({"configurable": {"thread_id": "t"}}).values["messages"]
    prune(saver, "t", keep_last=20)
    again = prune(saver, "t", keep_last=1)
    assert again.kept >= 1
    latest = app.get_state({"configurable": {"thread_id": "t"}}).values["messages"]
    assert [m.id for m in latest] == [m.id for m in expected]
    assert prune(saver, "t", keep_last=1).deleted == 0  # nothing more to delete
    assert prune(saver, "no-such-thread").deleted == 0


def test_prune_drops_finished_subgraph_calls(durable: Callable[[], Saver]) -> None:
    saver = durable()
    app = chat_app(saver, with_subgraph=True)
    turns = SNAPSHOT_EVERY // 2 + 10  # two updates a turn: past the first snapshot
    chat(app, "t", turns)
    namespaces_before = {n.ns for n in _nodes(saver, "t")}
    assert any(ns.startswith("reply:") for ns in namespaces_before)
    expected = app.get_state({"configurable": {"thread_id": "t"}}).values["messages"]
    prune(saver, "t", keep_last=2)
    namespaces_after = {n.ns for n in _nodes(saver, "t")}
    assert len(namespaces_after) < len(namespaces_before)
    latest = app.get_state({"configurable": {"thread_id": "t"}}).values["messages"]
    assert [m.content for m in latest] == [m.content for m in expected]
    chat(app, "t", 1)
    assert len(app.get_state({"configurable": {"thread_id": "t"}}).values["messages"]) == 2 * (
        turns + 1
    )


def _nodes(saver: Saver, thread: str) -> list[Any]:
    from podium.checkpoints._retention import _storage

    return _storage(saver).nodes(thread)


@tool(risk="high")
def charge(order_id: str, amount: float) -> str:
    """Charge a customer's card."""
    return f"charged {amount} to {order_id}"


def gated(saver: Saver, replies: list[Any]) -> Any:
    agent = Agent(name="billing", model=ScriptedChatModel(replies), tools=[charge])
    policy = Policy(rules=[Rule(tool="charge", action="approve")])
    return create_agent_graph(agent, policy=policy).compile(checkpointer=saver)


CHARGE = AIMessage(
    "", tool_calls=[{"name": "charge", "args": {"order_id": "A-1", "amount": 250}, "id": "c1"}]
)


def test_a_pending_approval_survives_prune(durable: Callable[[], Saver]) -> None:
    saver = durable()
    cfg: Any = {"configurable": {"thread_id": "pay"}}
    app = gated(saver, ["hello", "again", CHARGE])
    for text in ("hi", "hi again", "charge A-1"):
        app.invoke({"messages": [("user", text)]}, cfg)
    [request] = runs.pending(app, cfg)
    prune(saver, "pay", keep_last=1)
    app2 = gated(durable(), ["Charged."])
    assert [r.id for r in runs.pending(app2, cfg)] == [request.id]
    done = runs.decide(app2, cfg, {request.id: Decision.approve(by="ops")})
    assert done["messages"][-1].content == "Charged."
    assert [m.content for m in done["messages"] if m.type == "human"] == [
        "hi",
        "hi again",
        "charge A-1",
    ]


def test_thread_sizes_and_delete_thread(durable: Callable[[], Saver]) -> None:
    saver = durable()
    started = datetime.now(UTC)
    chat(chat_app(saver), "small", 2)
    chat(chat_app(saver), "big", 30)
    paused = gated(saver, [CHARGE])
    paused.invoke({"messages": [("user", "charge")]}, {"configurable": {"thread_id": "pay"}})

    sizes = {s.thread_id: s for s in thread_sizes(saver)}
    assert set(sizes) == {"small", "big", "pay"}
    assert next(s.thread_id for s in thread_sizes(saver)) == "big"  # largest first
    assert sizes["big"].bytes > sizes["small"].bytes > 0
    assert sizes["small"].checkpoints == 6
    assert sizes["small"].last_step == 4
    assert sizes["pay"].pending_approvals == 1
    assert sizes["big"].pending_approvals == 0
    updated = sizes["big"].updated_at
    assert updated is not None
    assert started - timedelta(seconds=5) <= updated
    assert updated <= datetime.now(UTC) + timedelta(seconds=5)

    ledger = saver.podium_ledger
    assert ledger.approvals("pay")
    delete_thread(saver, "pay")
    assert {s.thread_id for s in thread_sizes(saver)} == {"small", "big"}
    assert ledger.approvals("pay") == []
    assert ledger.count_calls("pay") == 0
    with pytest.raises(UnknownThreadError):
        runs.pending(gated(saver, []), {"configurable": {"thread_id": "pay"}})
    delete_thread(saver, "pay")  # deleting twice is fine


def test_stock_langgraph_sqlite_saver_is_supported(tmp_path: Path) -> None:
    path = tmp_path / "stock.sqlite"
    with SqliteSaver.from_conn_string(str(path)) as saver:
        app = chat_app(saver)
        turns = SNAPSHOT_EVERY // 2 + 10  # past the first snapshot: before it, all are needed
        chat(app, "t", turns)
        assert prune(saver, "t", keep_last=3).deleted > 0
        [size] = thread_sizes(saver)
        assert size.thread_id == "t"
        assert size.pending_approvals == 0
        assert (
            len(app.get_state({"configurable": {"thread_id": "t"}}).values["messages"]) == 2 * turns
        )
        delete_thread(saver, "t")
        assert thread_sizes(saver) == []


def test_bad_arguments() -> None:
    with pytest.raises(ConfigurationError, match="keep_last=0"):
        prune(InMemorySaver(), "t", keep_last=0)
    for call in (
        lambda: prune(InMemorySaver(), "t"),
        lambda: thread_sizes(InMemorySaver()),
        lambda: delete_thread(InMemorySaver(), "t"),
    ):
        with pytest.raises(ConfigurationError, match="SQLite and Postgres savers"):
            call()
