"""The delta-stored ``messages`` channel: O(n) storage, resume, history, time travel."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, RemoveMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import REMOVE_ALL_MESSAGES, add_messages
from typing_extensions import TypedDict

from podium import Agent
from podium.checkpoints import Messages, merge_messages, sqlite_saver
from podium.graphs import create_agent_graph
from podium.testing import ScriptedChatModel

MESSAGE = 500  # characters per message, as in the measurement


class Chat(TypedDict):
    messages: Messages


def chat_app(checkpointer: Any) -> Any:
    """One node that answers every user message with a 500-character reply."""
    graph = StateGraph(Chat)
    graph.add_node("reply", lambda state: {"messages": [AIMessage("b" * MESSAGE)]})
    graph.add_edge(START, "reply")
    graph.add_edge("reply", END)
    return graph.compile(checkpointer=checkpointer)


def chat(app: Any, thread: str, turns: int, start: int = 0) -> None:
    cfg = {"configurable": {"thread_id": thread}}
    for i in range(start, start + turns):
        text = f"{i:05d}" + "a" * (MESSAGE - 5)
        app.invoke({"messages": [("user", text)]}, cfg)


def stored_bytes(path: Path) -> int:
    with sqlite3.connect(path) as db:
        (n,) = db.execute(
            "SELECT (SELECT SUM(length(checkpoint) + length(metadata)) FROM checkpoints)"
            " + (SELECT SUM(length(value)) FROM writes)"
        ).fetchone()
    return int(n)


def test_storage_grows_about_linearly(tmp_path: Path) -> None:
    """200 turns of two 500-char messages: stock add_messages stores ~84 MB (~420x the
    raw text); the delta channel stores a small multiple, and doubling the turns
    roughly doubles the bytes instead of quadrupling them."""
    sizes = {}
    for turns in (100, 200):
        path = tmp_path / f"chat{turns}.sqlite"
        with sqlite_saver(path) as saver:
            chat(chat_app(saver), "t", turns)
        sizes[turns] = stored_bytes(path)
    raw = 200 * 2 * MESSAGE
    assert sizes[200] / raw < 10
    assert sizes[200] / sizes[100] < 3  # quadratic storage would be ~4


def test_messages_survive_reopening_and_resume_is_fast(tmp_path: Path) -> None:
    path = tmp_path / "chat.sqlite"
    with sqlite_saver(path) as saver:
        chat(chat_app(saver), "t", 500)  # 1,000 messages
    cfg: Any = {"configurable": {"thread_id": "t"}}
    with sqlite_saver(path) as saver:  # as a new process would
        app = chat_app(saver)
        started = time.perf_counter()
        state = app.get_state(cfg)
        elapsed = time.perf_counter() - started
        messages = state.values["messages"]
        assert len(messages) == 1000
        assert [m.content[:5] for m in messages[::2]] == [f"{i:05d}" for i in range(500)]
        assert len({m.id for m in messages}) == 1000
        assert elapsed < 2.0  # measured ~20-40 ms; generous for a busy machine
        chat(app, "t", 1, start=500)
        assert len(app.get_state(cfg).values["messages"]) == 1002


def test_history_and_forking_on_every_checkpointer(
    make_saver: Callable[[], BaseCheckpointSaver[Any]],
) -> None:
    app = chat_app(make_saver())
    chat(app, "t", 130)  # past a snapshot (every 100 updates)
    cfg: Any = {"configurable": {"thread_id": "t"}}
    history = list(app.get_state_history(cfg))
    assert len(history[0].values["messages"]) == 260
    by_length = {len(h.values["messages"]): h for h in history if h.next == ()}
    assert sorted(by_length)[:3] == [2, 4, 6]
    for length, snapshot in by_length.items():  # every past state rebuilds exactly
        contents = [m.content[:5] for m in snapshot.values["messages"][::2]]
        assert contents == [f"{i:05d}" for i in range(length // 2)]
    # time travel: fork from turn 60 with an edited state, then continue the fork
    past = by_length[120]
    forked = app.update_state(past.config, {"messages": [HumanMessage("fork!")]})
    fork_state = app.get_state(forked)
    fork_messages = fork_state.values["messages"]
    assert len(fork_messages) == 121
    assert fork_messages[-1].content == "fork!"
    assert fork_state.next == ()  # the edit is the fork's head; nothing left to run
    app.invoke({"messages": [("user", "on the fork")]}, forked)
    head = app.get_state(cfg).values["messages"]
    assert len(head) == 123
    assert head[120].content == "fork!"
    assert head[121].content == "on the fork"
    # a new saver object on the same storage sees the same fork
    again = chat_app(make_saver()).get_state(cfg).values["messages"]
    assert [m.id for m in again] == [m.id for m in head]


def test_agent_graph_resumes_with_a_new_saver(
    make_saver: Callable[[], BaseCheckpointSaver[Any]],
) -> None:
    agent = Agent(name="a", model=ScriptedChatModel([f"reply {i}" for i in range(3)]))
    app = create_agent_graph(agent).compile(checkpointer=make_saver())
    cfg: Any = {"configurable": {"thread_id": "t"}}
    for i in range(2):
        app.invoke({"messages": [("user", f"q{i}")]}, cfg)
    agent2 = Agent(name="a", model=ScriptedChatModel(["reply 2"]))
    app2 = create_agent_graph(agent2).compile(checkpointer=make_saver())
    out = app2.invoke({"messages": [("user", "q2")]}, cfg)
    assert [m.content for m in out["messages"]] == [
        "q0",
        "reply 0",
        "q1",
        "reply 1",
        "q2",
        "reply 2",
    ]


# -- the reducer ---------------------------------------------------------------------
def _reference(current: list[Any], writes: list[Any]) -> list[Any]:
    from podium.checkpoints._messages import _with_ids

    merged = list(current)
    for write in writes:
        merged = add_messages(merged, _with_ids(len(merged), write))  # type: ignore[arg-type]
    return merged


@pytest.mark.parametrize("seed", range(40))
def test_merge_messages_matches_add_messages_and_is_batching_invariant(seed: int) -> None:
    import random

    rng = random.Random(seed)
    writes: list[Any] = []
    ids: list[str] = []
    for k in range(rng.randint(1, 10)):
        r = rng.random()
        if r < 0.45:
            writes.append([("user", f"hi {rng.randint(0, 2)}")])
        elif r < 0.6 and ids:
            writes.append([AIMessage("edited", id=rng.choice(ids))])
        elif r < 0.7 and ids:
            gone = rng.choice(ids)
            ids.remove(gone)
            writes.append([RemoveMessage(id=gone)])
        elif r < 0.75:
            writes.append([RemoveMessage(id=REMOVE_ALL_MESSAGES), HumanMessage("x", id="x")])
            ids = ["x"]
        else:
            writes.append([AIMessage(f"a{k}", id=f"id{k}")])
            ids.append(f"id{k}")

    def shape(messages: list[Any]) -> list[tuple[str, Any]]:
        return [(m.id, m.content) for m in messages]

    expected = shape(_reference([], writes))
    assert shape(merge_messages([], writes)) == expected
    cut = rng.randint(0, len(writes))
    assert shape(merge_messages(merge_messages([], writes[:cut]), writes[cut:])) == expected


def test_removing_an_unknown_id_fails_like_add_messages() -> None:
    with pytest.raises(ValueError, match="doesn't exist"):
        merge_messages([], [[RemoveMessage(id="nope")]])


def test_a_bare_tuple_write_is_one_message_as_in_add_messages() -> None:
    [message] = merge_messages([], [("user", "hello")])
    assert (message.type, message.content) == ("human", "hello")
    assert message.id is not None


def test_merging_never_mutates_the_callers_message() -> None:
    given = HumanMessage("no id yet")
    [stored] = merge_messages([], [[given]])
    assert given.id is None
    assert stored.id is not None
    assert merge_messages([], [[HumanMessage("no id yet")]])[0].id == stored.id  # deterministic
