"""sqlite_saver / async_sqlite_saver: settings, many processes, integrity checks."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import pytest
from langchain_core.messages import AIMessage
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from podium import Agent, CorruptDatabaseError, runs
from podium.agents._budget import Usage, add_usage
from podium.checkpoints import Messages, async_sqlite_saver, check_database_file, sqlite_saver
from podium.errors import ConfigurationError
from podium.graphs import create_agent_graph
from podium.testing import ScriptedChatModel
from podium.tools import Decision, Policy, Rule, tool

WORKER = Path(__file__).with_name("worker.py")


@tool(risk="high")
def charge(order_id: str, amount: float) -> str:
    """Charge a customer's card."""
    return f"charged {amount} to {order_id}"


def gated_app(saver: Any, replies: list[Any]) -> Any:
    agent = Agent(name="billing", model=ScriptedChatModel(replies), tools=[charge])
    policy = Policy(rules=[Rule(tool="charge", action="approve")])
    return create_agent_graph(agent, policy=policy).compile(checkpointer=saver)


CHARGE = AIMessage(
    "", tool_calls=[{"name": "charge", "args": {"order_id": "A-1", "amount": 250}, "id": "c1"}]
)
CFG: Any = {"configurable": {"thread_id": "t1"}}


# -- settings ----------------------------------------------------------------------
def test_pragmas_and_ledger_in_the_same_file(tmp_path: Path) -> None:
    with sqlite_saver(tmp_path / "runs.sqlite", synchronous="FULL", busy_timeout=5) as saver:
        conn = saver.conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
        assert saver.podium_ledger.path == str(tmp_path / "runs.sqlite")
    tables = {
        r[0]
        for r in sqlite3.connect(tmp_path / "runs.sqlite").execute(
            "SELECT name FROM sqlite_master WHERE type='table'"
        )
    }
    assert {"checkpoints", "writes", "podium_tool_calls", "podium_approvals"} <= tables


def test_invalid_synchronous_level(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="synchronous='SOMETIMES'"):
        sqlite_saver(tmp_path / "x.sqlite", synchronous="SOMETIMES")  # type: ignore[arg-type]


def test_a_new_file_is_created_whole(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "runs.sqlite"
    sqlite_saver(path).close()
    assert path.read_bytes()[:16] == b"SQLite format 3\x00"
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".new")] == []


# -- async -------------------------------------------------------------------------
async def test_async_saver_pauses_and_another_saver_resumes(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    async with async_sqlite_saver(path) as saver:
        conn = saver.conn
        assert (await (await conn.execute("PRAGMA journal_mode")).fetchone()) == ("wal",)
        app = gated_app(saver, [CHARGE])
        out = await app.ainvoke({"messages": [("user", "charge A-1")]}, CFG)
        assert "__interrupt__" in out
    # a new (sync) saver on the same file sees the pause and finishes the run
    with sqlite_saver(path) as sync_saver:
        app = gated_app(sync_saver, ["Charged."])
        [request] = runs.pending(app, CFG)
        done = runs.decide(app, CFG, {request.id: Decision.approve(by="ops")})
        assert done["messages"][-1].content == "Charged."
        assert sync_saver.podium_ledger.count_calls("t1") == 1


async def test_async_saver_can_be_awaited_and_closed(tmp_path: Path) -> None:
    saver = await async_sqlite_saver(tmp_path / "runs.sqlite")
    try:
        app = gated_app(saver, ["hi"])
        out = await app.ainvoke({"messages": [("user", "hello")]}, CFG)
        assert out["messages"][-1].content == "hi"
    finally:
        await saver.aclose()
    with pytest.raises(CorruptDatabaseError):
        await async_sqlite_saver(_zero_length(tmp_path))


async def test_async_saver_with_concurrent_threads_and_ledger_writes(tmp_path: Path) -> None:
    """Ledger writes (sync) and checkpoint writes (aiosqlite) interleave without locking."""
    import asyncio

    @tool
    def note(text: str) -> str:
        """Write a note."""
        return f"noted {text}"

    async with async_sqlite_saver(tmp_path / "runs.sqlite", busy_timeout=5) as saver:

        async def run(i: int) -> int:
            replies: list[Any] = []
            for turn in range(3):
                replies += [_note_call(f"{i}-{turn}", f"n{turn}"), "ok"]
            agent = Agent(name="clerk", model=ScriptedChatModel(replies), tools=[note])
            app = create_agent_graph(agent).compile(checkpointer=saver)
            for turn in range(3):
                await app.ainvoke(
                    {"messages": [("user", f"turn {turn}")]}, {"configurable": {"thread_id": i}}
                )
            return len(
                (await app.aget_state({"configurable": {"thread_id": i}})).values["messages"]
            )

        counts = await asyncio.gather(*(run(i) for i in range(6)))
        assert counts == [12] * 6  # 3 turns x (user, call, tool result, answer)
        assert saver.podium_ledger.count_calls() == 18


def _note_call(text: str, id_: str) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": "note", "args": {"text": text}, "id": id_}])


# -- many processes ----------------------------------------------------------------
def test_eight_processes_share_one_file_without_lock_errors(tmp_path: Path) -> None:
    """8 processes x 4 turns (each: 2 checkpointed model steps + a ledgered tool call),
    all starting at the same instant on a file that does not exist yet."""
    path = tmp_path / "shared.sqlite"
    start_at = time.time() + 4.0  # after every worker has imported podium
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                "sqlite",
                str(path),
                f"w{i}",
                "chat",
                "--turns",
                "4",
                "--start-at",
                str(start_at),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=240)
        assert proc.returncode == 0, stderr
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    errors = [e for r in results for e in r["errors"]]
    assert errors == []  # in particular, no "database is locked"
    assert sum(r["ok"] for r in results) == 8 * 4
    with sqlite_saver(path) as saver:
        assert saver.podium_ledger.count_calls() == 8 * 4
        threads = {r[0] for r in saver.conn.execute("SELECT DISTINCT thread_id FROM checkpoints")}
        assert threads == {f"w{i}" for i in range(8)}


def test_threads_of_one_process_share_a_saver(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with sqlite_saver(tmp_path / "runs.sqlite") as saver:

        def run(i: int) -> str:
            app = gated_app(saver, [f"answer {i}"])
            out = app.invoke({"messages": [("user", "hi")]}, {"configurable": {"thread_id": i}})
            return str(out["messages"][-1].content)

        with ThreadPoolExecutor(8) as pool:
            assert sorted(pool.map(run, range(16))) == sorted(f"answer {i}" for i in range(16))


# -- integrity ---------------------------------------------------------------------
def _zero_length(tmp: Path) -> Path:
    path = tmp / "empty.sqlite"
    path.write_bytes(b"")
    return path


def _made(tmp: Path, turns: int = 3) -> Path:
    path = tmp / "runs.sqlite"
    with sqlite_saver(path) as saver:
        app = gated_app(saver, [f"a{i}" for i in range(turns)])
        for i in range(turns):
            app.invoke({"messages": [("user", "x" * 3000 + str(i))]}, CFG)
        saver.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def test_zero_length_file_is_refused(tmp_path: Path) -> None:
    path = _zero_length(tmp_path)
    with pytest.raises(CorruptDatabaseError) as info:
        sqlite_saver(path)
    message = str(info.value)
    assert str(path) in message
    assert "empty (0 bytes)" in message
    assert "Restore it from a backup, or delete the file" in message
    assert path.read_bytes() == b""  # untouched


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.sqlite"
    path.write_text("these are my notes, not a database\n" * 10)
    with pytest.raises(CorruptDatabaseError, match="is not a SQLite database") as info:
        sqlite_saver(path)
    assert str(path) in str(info.value)
    assert "Fix:" in str(info.value)


def test_a_truncated_file_is_refused(tmp_path: Path) -> None:
    path = _made(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptDatabaseError) as info:
        sqlite_saver(path)
    assert str(path) in str(info.value)
    assert "backup" in str(info.value)


def test_corrupt_pages_are_refused(tmp_path: Path) -> None:
    path = _made(tmp_path, turns=4)
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    for offset in range(page, len(data), page):  # garble every page after the first
        data[offset + 8 : offset + 40] = b"\xa5" * 32
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptDatabaseError) as info:
        sqlite_saver(path)
    assert str(path) in str(info.value)
    assert "integrity check" in str(info.value) or "cannot be read" in str(info.value)


def test_another_applications_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "crm.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    with pytest.raises(CorruptDatabaseError, match="another application's database") as info:
        sqlite_saver(path)
    assert "customers" in str(info.value)
    assert "separate file" in str(info.value)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CorruptDatabaseError, match="is a directory"):
        sqlite_saver(tmp_path)


def test_quick_check_can_be_skipped_but_header_checks_cannot(tmp_path: Path) -> None:
    path = _made(tmp_path)
    check_database_file(path)  # a healthy file passes
    sqlite_saver(path, integrity_check=False).close()
    with pytest.raises(CorruptDatabaseError):
        sqlite_saver(_zero_length(tmp_path), integrity_check=False)


# -- compact checkpoints -------------------------------------------------------------
def _chat_app(saver: Any, replies: int, description: str = "") -> Any:
    agent = Agent(
        name="chat",
        description=description,
        model=ScriptedChatModel([f"reply {i}" for i in range(replies)]),
        max_steps=1,
    )
    return create_agent_graph(agent).compile(checkpointer=saver)


def test_checkpoints_use_short_versions_and_carry_no_run_config(tmp_path: Path) -> None:
    with sqlite_saver(tmp_path / "c.sqlite") as saver:
        app = _chat_app(saver, 2, description="Chats about the weather, at some length.")
        for turn in range(2):
            app.invoke({"messages": [("user", f"turn {turn}")]}, CFG)
        tuples = list(saver.list(CFG))
        versions = [v for t in tuples for v in t.checkpoint["channel_versions"].values()]
        assert versions
        assert all(isinstance(v, str) and len(v) == 10 and v[0] == "+" for v in versions)
        assert not [k for t in tuples for k in t.metadata if "description" in k]
        state = app.get_state(CFG)
        assert [m.content for m in state.values["messages"]] == [
            "turn 0",
            "reply 0",
            "turn 1",
            "reply 1",
        ]
        assert state.values["usage"]["total"]["model_calls"] == 2


def test_a_thread_a_stock_saver_started_keeps_string_versions(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    with sqlite_saver(path):  # creates the file with podium's tables
        pass
    with SqliteSaver.from_conn_string(str(path)) as stock:
        _chat_app(stock, 1).invoke({"messages": [("user", "first")]}, CFG)
    with sqlite_saver(path) as saver:
        app = _chat_app(saver, 1)
        app.invoke({"messages": [("user", "second")]}, CFG)
        head = saver.get_tuple(CFG)
        assert head is not None
        # the stock form ("<32 digits>.<random>"), which sorts above podium's
        versions = head.checkpoint["channel_versions"].values()
        assert all(isinstance(v, str) and not v.startswith("+") for v in versions)
        contents = [m.content for m in app.get_state(CFG).values["messages"]]
        assert contents == ["first", "reply 0", "second", "reply 0"]


class Before(TypedDict):
    """A podium graph's state as stored before ``usage`` became a delta channel."""

    messages: Messages
    usage: Annotated[Usage, add_usage]


def test_usage_stored_whole_by_an_earlier_podium_still_loads(tmp_path: Path) -> None:
    spent = Usage(total={"input_tokens": 5, "output_tokens": 1, "cost": 0.0, "model_calls": 1})
    old = StateGraph(Before)
    old.add_node("model", lambda s: {"messages": [AIMessage("old reply")], "usage": spent})
    old.add_edge(START, "model")
    old.add_edge("model", END)
    with sqlite_saver(tmp_path / "c.sqlite") as saver:
        old.compile(checkpointer=saver).invoke({"messages": [("user", "hi")]}, CFG)
    with sqlite_saver(tmp_path / "c.sqlite") as saver:
        app = _chat_app(saver, 1)
        assert app.get_state(CFG).values["usage"]["total"]["input_tokens"] == 5
        app.invoke({"messages": [("user", "again")]}, CFG)
        usage = app.get_state(CFG).values["usage"]["total"]
        assert usage["model_calls"] == 2
        assert usage["input_tokens"] > 5


async def test_a_long_async_chat_rebuilds_across_a_snapshot(tmp_path: Path) -> None:
    from podium.checkpoints._messages import SNAPSHOT_EVERY

    turns = SNAPSHOT_EVERY // 2 + 10  # two updates a turn: past the first snapshot
    path = tmp_path / "c.sqlite"
    async with async_sqlite_saver(path) as saver:
        app = _chat_app(saver, turns)
        for turn in range(turns):
            await app.ainvoke({"messages": [("user", f"turn {turn}")]}, CFG)
        state = await app.aget_state(CFG)
        head = await saver.aget_tuple(CFG)
        assert head is not None
        assert all(v.startswith("+") for v in head.checkpoint["channel_versions"].values())
    expected = [c for t in range(turns) for c in (f"turn {t}", f"reply {t}")]
    assert [m.content for m in state.values["messages"]] == expected
    assert state.values["usage"]["total"]["model_calls"] == turns
    with sqlite_saver(path) as saver:  # the same thread through the synchronous saver
        again = _chat_app(saver, 0).get_state(CFG).values
        assert again["messages"] == state.values["messages"]
        assert again["usage"] == state.values["usage"]
