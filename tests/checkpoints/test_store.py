"""Long-term memory: stores on SQLite and Postgres, and the remember / recall tools."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, ToolMessage

from podium import Agent
from podium.checkpoints import postgres_store, sqlite_saver, sqlite_store
from podium.errors import ConfigurationError
from podium.graphs import create_agent_graph
from podium.testing import ScriptedChatModel
from podium.tools import memory_tools


def call(name: str, args: dict[str, Any], id_: str = "m1") -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": id_}])


def assistant(replies: list[Any], saver: Any, store: Any) -> Any:
    agent = Agent(
        name="assistant",
        model=ScriptedChatModel(replies),
        tools=memory_tools(("users", "{user_id}")),
    )
    return create_agent_graph(agent).compile(checkpointer=saver, store=store)


def tool_results(out: dict[str, Any]) -> list[ToolMessage]:
    return [m for m in out["messages"] if isinstance(m, ToolMessage)]


def run_memory_flow(saver: Any, store: Any) -> None:
    remember = call("remember", {"key": "timezone", "value": "Europe/Paris, CET"})
    app = assistant([remember, "Noted."], saver, store)
    u1: Any = {"configurable": {"thread_id": "monday", "user_id": "u1"}}
    out = app.invoke({"messages": [("user", "I live in Paris")]}, u1)
    assert tool_results(out)[0].content == "Remembered 'timezone'."
    assert store.get(("users", "u1"), "timezone").value == {"value": "Europe/Paris, CET"}

    # a new thread for the same user recalls it; another user does not see it
    recall = call("recall", {"query": "which timezone?"}, "m2")
    app = assistant([recall, "Paris time."], saver, store)
    tuesday: Any = {"configurable": {"thread_id": "tuesday", "user_id": "u1"}}
    out = app.invoke({"messages": [("user", "what time is it?")]}, tuesday)
    assert tool_results(out)[0].content == "timezone: Europe/Paris, CET"
    app = assistant([recall, "No idea."], saver, store)
    u2: Any = {"configurable": {"thread_id": "other", "user_id": "u2"}}
    assert tool_results(app.invoke({"messages": [("user", "time?")]}, u2))[0].content == (
        "No matching memories."
    )


def test_memory_tools_on_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "app.sqlite"  # checkpoints and memories in one file
    with sqlite_saver(path) as saver, sqlite_store(path) as store:
        run_memory_flow(saver, store)
    with sqlite_store(path) as store:  # memories outlive the process
        assert store.get(("users", "u1"), "timezone") is not None
    with sqlite_saver(path) as saver:  # the saver accepts the shared file
        assert saver.podium_ledger.count_calls() == 1  # remember went through the ledger


@pytest.mark.postgres
def test_memory_tools_on_postgres(postgres_url: str) -> None:
    from podium.checkpoints import postgres_saver

    with postgres_saver(postgres_url, pool_size=3) as saver, postgres_store(postgres_url) as store:
        run_memory_flow(saver, store)


def test_recall_ranks_by_words_and_respects_the_limit(tmp_path: Path) -> None:
    with sqlite_store(tmp_path / "m.sqlite") as store:
        for key, value in [
            ("coffee", "likes espresso, no sugar"),
            ("tea", "dislikes green tea"),
            ("pet", "has a cat named Miso"),
        ]:
            store.put(("users", "u1"), key, {"value": value})
        [_, recall] = memory_tools(("users", "{user_id}"), limit=1)
        agent = Agent(
            name="a",
            model=ScriptedChatModel([call("recall", {"query": "espresso or tea?"}), "ok"]),
            tools=[recall],
        )
        app = create_agent_graph(agent).compile(store=store)
        out = app.invoke({"messages": [("user", "drinks?")]}, {"configurable": {"user_id": "u1"}})
        assert tool_results(out)[0].content == "coffee: likes espresso, no sugar"


def test_missing_user_or_store_is_reported_to_the_model(tmp_path: Path) -> None:
    remember = call("remember", {"key": "k", "value": "v"})
    with sqlite_store(tmp_path / "m.sqlite") as store:
        app = assistant([remember, "ok"], None, store)
        out = app.invoke({"messages": [("user", "hi")]}, {"configurable": {}})
        [result] = tool_results(out)
        assert result.status == "error"
        assert "needs user_id" in result.content
    app = assistant([remember, "ok"], None, None)
    out = app.invoke({"messages": [("user", "hi")]}, {"configurable": {"user_id": "u1"}})
    assert "compiled without one" in tool_results(out)[0].content


@pytest.mark.parametrize(
    "namespace",
    [(), ("users", ""), ("users", "{user_id!r}"), ("users", "{0}"), ("users", "{unclosed")],
)
def test_bad_namespaces_are_refused_at_build_time(namespace: tuple[str, ...]) -> None:
    with pytest.raises(ConfigurationError):
        memory_tools(namespace)
