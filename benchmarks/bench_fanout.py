# ruff: noqa: RUF001
"""3. Fan-out: N branches that each wait 100 ms, on SQLite; wall time ÷ 100 ms.

* async: ``create_parallel_graph`` whose branches are Agents with a scripted model
  (``delay=0.1``), under ``ainvoke``, on ``async_sqlite_saver``;
* sync: branches whose model calls a sync tool that ``time.sleep(0.1)`` (podium's
  default ``@tool``: side-effecting, so it passes the exactly-once ledger), under a
  plain ``invoke`` on ``sqlite_saver`` (podium sizes LangGraph's thread pool to the
  branches; raw LangGraph is given ``max_concurrency`` = N, without which it runs
  ``min(32, CPUs + 4)`` at a time).

Baseline: the hand-written raw-LangGraph fan-out -- ``Send`` to one node per
branch, each running its compiled agent subgraph, then a join node -- on
LangGraph's ``AsyncSqliteSaver`` / ``SqliteSaver`` (WAL, NORMAL), measured in the
same run. Building and compiling the graphs is not timed.

3e: sync against async, both podium: the same 100 branches of a scripted model
with ``delay=0.1`` (``time.sleep`` under ``invoke``, ``asyncio.sleep`` under
``ainvoke``), no checkpointer, plain calls; ratio = ``invoke`` ÷ ``ainvoke``.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from statistics import median as _median
from typing import Annotated, Any

import aiosqlite
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool as lc_tool
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Send

from benchmarks import _scenarios as S
from benchmarks._harness import Row, interleave
from podium import Agent
from podium.checkpoints import async_sqlite_saver, sqlite_saver
from podium.graphs import create_parallel_graph
from podium.tools import tool as podium_tool

WAIT = 0.1


@podium_tool
def wait_podium(seconds: float) -> str:
    """Wait for an external system."""
    time.sleep(seconds)
    return "waited"


@lc_tool
def wait_raw(seconds: float) -> str:
    """Wait for an external system."""
    time.sleep(seconds)
    return "waited"


def _merge(a: dict[str, str], b: dict[str, str]) -> dict[str, str]:
    return {**a, **b}


class RawFanState(MessagesState):
    results: Annotated[dict[str, str], _merge]


def _branch_script(sync: bool, name: str) -> list[AIMessage]:
    if sync:
        return [S.reply("", [(name, {"seconds": WAIT})]), S.reply(S.ANSWER)]
    return [S.reply(S.ANSWER)]


def podium_fan(n: int, sync: bool) -> Any:
    branches = [
        Agent(
            name=f"b{i:03d}",
            instructions=S.INSTRUCTIONS,
            model=S.model(_branch_script(sync, "wait_podium"), delay=0.0 if sync else WAIT),
            tools=[wait_podium] if sync else [],
        )
        for i in range(n)
    ]
    return create_parallel_graph(branches)


def raw_fan(n: int, sync: bool) -> Any:
    graph = StateGraph(RawFanState)
    names = [f"b{i:03d}" for i in range(n)]
    for name in names:
        llm = S.model(_branch_script(sync, "wait_raw"), delay=0.0 if sync else WAIT)
        sub = S.raw_agent(llm, [wait_raw] if sync else []).compile(name=name)

        def run(
            state: RawFanState, config: RunnableConfig, sub: Any = sub, name: str = name
        ) -> Any:
            out = sub.invoke({"messages": state["messages"]}, config)
            return {"results": {name: out["messages"][-1].content}}

        async def arun(
            state: RawFanState, config: RunnableConfig, sub: Any = sub, name: str = name
        ) -> Any:
            out = await sub.ainvoke({"messages": state["messages"]}, config)
            return {"results": {name: out["messages"][-1].content}}

        graph.add_node(name, run if sync else arun)
        graph.add_edge(name, "join")

    def join(state: RawFanState) -> Any:
        text = "\n\n".join(f"## {k}\n{v}" for k, v in sorted(state["results"].items()))
        return {"messages": [AIMessage(text)]}

    graph.add_node("join", join)
    graph.add_conditional_edges(START, lambda s: [Send(n, s) for n in names], names)
    graph.add_edge("join", END)
    return graph


def run(quick: bool) -> list[Row]:
    sizes = (4, 12) if quick else (10, 100)
    repeats = 1 if quick else 7
    home = Path(tempfile.mkdtemp(prefix="podium-bench-fanout-"))
    loop = asyncio.new_event_loop()

    async def open_async() -> tuple[Any, Any]:
        podium = await async_sqlite_saver(home / "podium-async.sqlite")
        conn = await aiosqlite.connect(home / "stock-async.sqlite")
        for pragma in ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL"):
            await conn.execute(pragma)
        stock = AsyncSqliteSaver(conn)
        await stock.setup()
        return podium, stock

    podium_async, stock_async = loop.run_until_complete(open_async())
    podium_sync = sqlite_saver(home / "podium-sync.sqlite")
    stock_sync = S.stock_saver(home / "stock-sync.sqlite", tuned=True)

    cpu: dict[tuple[str, int, bool], list[float]] = {}

    def case(
        build: Callable[[int, bool], Any], n: int, sync: bool, saver: Any
    ) -> Callable[[], float]:
        spent = cpu.setdefault((build.__name__, n, sync), [])

        def sample() -> float:
            app = build(n, sync).compile(checkpointer=saver)
            config: RunnableConfig = {"configurable": {"thread_id": uuid.uuid4().hex}}
            if sync and build is raw_fan:
                config["max_concurrency"] = n  # podium's plain invoke needs none
            inputs = {"messages": [("user", S.USER)]}
            start, start_cpu = time.perf_counter(), time.process_time()
            if sync:
                out = app.invoke(inputs, config)
            else:
                out = loop.run_until_complete(app.ainvoke(inputs, config))
            elapsed = time.perf_counter() - start
            spent.append(time.process_time() - start_cpu)
            if not out["messages"][-1].content.count("## b") == n:
                raise RuntimeError(f"fan-out lost branches: {out['messages'][-1].content[:200]}")
            return elapsed / WAIT

        return sample

    rows: list[Row] = []
    letter = iter("abcd")
    for sync in (False, True):
        savers = (podium_sync, stock_sync) if sync else (podium_async, stock_async)
        for n in sizes:
            stats = interleave(
                {
                    "podium": case(podium_fan, n, sync, savers[0]),
                    "raw": case(raw_fan, n, sync, savers[1]),
                },
                repeats=repeats,
            )
            kind = (
                "sync tools sleeping 100 ms, plain `invoke`; raw: max_concurrency=N"
                if sync
                else "scripted model `delay=0.1`, `ainvoke`"
            )
            podium, raw = stats["podium"], stats["raw"]
            rows.append(
                Row(
                    f"3{next(letter)}",
                    f"Fan-out, {n} branches ({kind}), SQLite: wall ÷ 100 ms",
                    f"{podium.median:.2f}× ({podium.q1:.2f}–{podium.q3:.2f})",
                    f"{raw.median:.2f}× ({raw.q1:.2f}–{raw.q3:.2f})",
                    podium.median / raw.median,
                    "≤ 1.2× the 100 ms" if n == sizes[1] else "—",
                    podium.median <= 1.2 if n == sizes[1] and not quick else None,
                    note="ratio column: podium ÷ raw LangGraph; target: podium's wall ÷ 100 ms; "
                    f"process CPU a run: podium {_median(cpu['podium_fan', n, sync]):.2f} s, "
                    f"raw {_median(cpu['raw_fan', n, sync]):.2f} s",
                )
            )

    rows.append(sync_against_async(quick, loop))

    async def close() -> None:
        await podium_async.aclose()
        await stock_async.conn.close()

    loop.run_until_complete(close())
    loop.close()
    podium_sync.close()
    stock_sync.conn.close()
    return rows


def sync_against_async(quick: bool, loop: asyncio.AbstractEventLoop) -> Row:
    """3e: the same fan-out under a plain ``invoke`` and under ``ainvoke``."""
    n, repeats = (12, 1) if quick else (100, 7)
    cpu: dict[str, list[float]] = {"invoke": [], "ainvoke": []}

    def case(how: str) -> Callable[[], float]:
        def sample() -> float:
            app = podium_fan(n, sync=False).compile()  # scripted model, delay=0.1
            inputs = {"messages": [("user", S.USER)]}
            start, start_cpu = time.perf_counter(), time.process_time()
            if how == "invoke":
                out = app.invoke(inputs)
            else:
                out = loop.run_until_complete(app.ainvoke(inputs))
            elapsed = time.perf_counter() - start
            cpu[how].append(time.process_time() - start_cpu)
            if not out["messages"][-1].content.count("## b") == n:
                raise RuntimeError(f"fan-out lost branches: {out['messages'][-1].content[:200]}")
            return elapsed / WAIT

        return sample

    stats = interleave({"invoke": case("invoke"), "ainvoke": case("ainvoke")}, repeats=repeats)
    sync, async_ = stats["invoke"], stats["ainvoke"]
    return Row(
        "3e",
        f"Fan-out, {n} branches waiting 100 ms (scripted model `delay=0.1`), no checkpointer: "
        "plain `invoke` vs `ainvoke`, wall ÷ 100 ms",
        f"{sync.median:.2f}× ({sync.q1:.2f}–{sync.q3:.2f})",
        f"{async_.median:.2f}× ({async_.q1:.2f}–{async_.q3:.2f})",
        sync.median / async_.median,
        "≤ 1.2×",
        None if quick else sync.median / async_.median <= 1.2,
        note="ratio: `invoke` ÷ `ainvoke`, both podium; without podium's pool sizing a sync "
        "fan-out runs min(32, CPUs + 4) branches at a time; process CPU a run: invoke "
        f"{_median(cpu['invoke']):.2f} s, ainvoke {_median(cpu['ainvoke']):.2f} s",
    )
