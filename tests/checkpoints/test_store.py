"""Long-term memory: stores on SQLite and Postgres, and the remember / recall tools."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

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


def remember_then_recall(store: Any, user_id: str, fact: str, thread: str) -> tuple[str, str]:
    """``user_id`` remembers ``fact`` in one thread and recalls in another: both results."""
    conf: Any = {"configurable": {"thread_id": f"{thread}-w", "user_id": user_id}}
    app = assistant([call("remember", {"key": "fact", "value": fact}), "ok"], None, store)
    wrote = tool_results(app.invoke({"messages": [("user", "remember")]}, conf))[0].content
    conf = {"configurable": {"thread_id": f"{thread}-r", "user_id": user_id}}
    app = assistant([call("recall", {"query": "fact"}, "m2"), "ok"], None, store)
    read = tool_results(app.invoke({"messages": [("user", "recall")]}, conf))[0].content
    return str(wrote), str(read)


def recall_as(store: Any, user_id: str, query: str = "fact") -> str:
    conf: Any = {"configurable": {"thread_id": f"r-{user_id}", "user_id": user_id}}
    app = assistant([call("recall", {"query": query}, "m3"), "ok"], None, store)
    return str(tool_results(app.invoke({"messages": [("user", "recall")]}, conf))[0].content)


USER_IDS = ["alan@example.com", "a.b", "a%2Eb", "a%252Eb", "a%b", "a\x00b", "..", "%", "*"]


def check_any_user_id(open_store: Callable[[], Any]) -> None:
    # LangGraph's Store refuses periods in namespace labels; podium percent-encodes the
    # filled-in values (% -> %25, . -> %2E, NUL -> %00), so every string is a user id and
    # ids that differ only in those characters keep separate memories.
    with open_store() as store:
        for n, user_id in enumerate(USER_IDS):
            wrote, read = remember_then_recall(store, user_id, f"fact of user {n}", f"t{n}")
            assert wrote == "Remembered 'fact'."
            assert read == f"fact: fact of user {n}"
        namespaces = set(store.list_namespaces(prefix=("users",)))
    assert len(namespaces) == len(USER_IDS)  # one namespace per id, none shared
    assert ("users", "alan@example%2Ecom") in namespaces
    assert ("users", "a%2Eb") in namespaces  # the id "a.b"
    assert ("users", "a%252Eb") in namespaces  # the id "a%2Eb"
    assert {unquote(ns[1]) for ns in namespaces} == set(USER_IDS)  # reversible
    with open_store() as store:  # in a new process, each id still finds only its own
        for n, user_id in enumerate(USER_IDS):
            assert recall_as(store, user_id) == f"fact: fact of user {n}"


def test_any_user_id_works_and_never_collides(tmp_path: Path) -> None:
    check_any_user_id(lambda: sqlite_store(tmp_path / "memory.sqlite"))


@pytest.mark.postgres
def test_any_user_id_works_and_never_collides_on_postgres(postgres_url: str) -> None:
    check_any_user_id(lambda: postgres_store(postgres_url))


def test_ids_without_special_characters_keep_their_existing_namespace(tmp_path: Path) -> None:
    path = tmp_path / "memory.sqlite"
    with sqlite_store(path) as store:  # written before values were encoded
        store.put(("users", "u-42"), "pet", {"value": "a cat named Miso"})
        store.put(("users", "alan@example"), "tea", {"value": "green"})
    with sqlite_store(path) as store:
        assert recall_as(store, "u-42", "pet") == "pet: a cat named Miso"
        assert recall_as(store, "alan@example", "tea") == "tea: green"
        assert recall_as(store, "alan@example.com", "tea") == "No matching memories."
        _, read = remember_then_recall(store, "u-42", "likes tea", "u42")
        assert read == "fact: likes tea"
        assert store.get(("users", "u-42"), "fact") is not None


def test_an_empty_user_id_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    with sqlite_store(tmp_path / "m.sqlite") as store:
        app = assistant([call("remember", {"key": "k", "value": "v"}), "ok"], None, store)
        out = app.invoke({"messages": [("user", "hi")]}, {"configurable": {"user_id": ""}})
        [result] = tool_results(out)
        assert result.status == "error"
        assert "empty string" in result.content
        assert list(store.list_namespaces()) == []


def test_a_value_naming_the_reserved_root_label_is_encoded(tmp_path: Path) -> None:
    [remember, recall] = memory_tools(("{tenant}", "{user_id}"))
    with sqlite_store(tmp_path / "m.sqlite") as store:
        agent = Agent(
            name="a",
            model=ScriptedChatModel(
                [
                    call("remember", {"key": "k", "value": "v"}),
                    call("recall", {"query": "k"}, "m2"),
                    "ok",
                ]
            ),
            tools=[remember, recall],
        )
        conf: Any = {"configurable": {"tenant": "langgraph", "user_id": "u.1"}}
        app = create_agent_graph(agent).compile(store=store)
        out = app.invoke({"messages": [("user", "hi")]}, conf)
        assert [m.content for m in tool_results(out)] == ["Remembered 'k'.", "k: v"]
        [namespace] = store.list_namespaces()
        assert namespace == ("%6C%61%6E%67%67%72%61%70%68", "u%2E1")
        assert tuple(unquote(label) for label in namespace) == ("langgraph", "u.1")


@pytest.mark.parametrize(
    "namespace",
    [
        (),
        ("users", ""),
        ("users", "{user_id!r}"),
        ("users", "{0}"),
        ("users", "{unclosed"),
        ("users.v2", "{user_id}"),
        ("users", "{user_id}.{org}"),
        ("langgraph", "{user_id}"),
    ],
)
def test_bad_namespaces_are_refused_at_build_time(namespace: tuple[str, ...]) -> None:
    with pytest.raises(ConfigurationError):
        memory_tools(namespace)
