"""12. An MCP tool call through podium against the same call on a bare ``mcp`` session.

The server is mcp-server-time (PyPI) over stdio; the call is its read-only
``get_current_time``. Both sides keep one session open for the whole run (podium's
process-wide session from :func:`podium.tools.mcp_tools`; the baseline a plain
``ClientSession`` opened once), each talking to its own server process.

* 12a: podium's governed call as an agent's ``invoke`` runs it --
  ``GovernedExecutor.run`` from a plain thread: grant, JSON-schema check, policy, run
  events, langchain's tool machinery, the hop to podium's MCP loop and back -- against
  ``await session.call_tool(...)`` in the loop that owns the bare session.
* 12b: the same from a caller's event loop (``GovernedExecutor.arun``, what
  ``ainvoke`` runs).
* 12c: 12a against what a LangGraph user runs without podium: langchain-mcp-adapters'
  tool loaded on the bare session (``load_mcp_tools(session)``), ``ainvoke``-d in the
  session's loop -- the share of 12a's overhead that is langchain's tool layer.
* 12e: that langchain-mcp-adapters tool against the bare session it runs on: what the
  langchain tool layer alone costs, with no podium, no governance and no thread hop. It is
  the floor under 12a for any MCP tool that is a langchain tool (as the issue asks: built
  on langchain-mcp-adapters): when 12e is above 12a's target, so is 12a.

A sample is ``calls`` calls in a row; reported per call.

* 12d: the same governed call (12a) to mcp-server-time running in podium's bubblewrap
  sandbox (``MCPServer(sandbox=Sandbox())``: network ``"none"``, prlimit limits, as
  ``nobody`` when root) against the unsandboxed server, same run. Its note gives the
  servers' start-up (``mcp_tools``: start the process, initialise, list the tools)
  sandboxed and not. Skipped (a note) where bubblewrap cannot run.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any

from langchain_mcp_adapters.sessions import create_session
from langchain_mcp_adapters.tools import load_mcp_tools
from mcp import ClientSession

from benchmarks._harness import Row, fmt_stats, interleave, ratio_row
from podium.tools import GovernedExecutor, MCPServer, mcp_tools
from podium.tools import _mcp_sessions as sessions

ARGS = {"timezone": "Europe/Oslo"}


def _server() -> MCPServer:
    return MCPServer(
        "clock",
        command=sys.executable,
        args=["-m", "mcp_server_time", "--local-timezone", "UTC"],
    )


def run(quick: bool) -> list[Row]:
    calls, repeats = (5, 2) if quick else (100, 15)
    server = _server()
    [tool] = [t for t in mcp_tools(server) if t.name == "clock_get_current_time"]
    executor = GovernedExecutor("bench", [tool])
    request: Any = {"name": tool.name, "args": ARGS, "id": "b1", "message": "m1"}
    assert '"timezone": "Europe/Oslo"' in executor.run(request, None).text

    loop = asyncio.new_event_loop()
    opened: asyncio.Future[ClientSession] = loop.create_future()
    done = asyncio.Event()

    async def own() -> None:  # an MCP session is entered and left by one task
        async with create_session(server.connection()) as bare:
            await bare.initialize()
            opened.set_result(bare)
            await done.wait()

    owner = loop.create_task(own())
    session = loop.run_until_complete(opened)

    async def bare_burst() -> float:
        start = time.perf_counter()
        for _ in range(calls):
            await session.call_tool("get_current_time", ARGS)
        return (time.perf_counter() - start) / calls

    adapted = {t.name: t for t in loop.run_until_complete(load_mcp_tools(session))}
    plain = adapted["get_current_time"]
    tool_call = {"type": "tool_call", "name": plain.name, "args": ARGS, "id": "b1"}

    async def adapters_burst() -> float:
        start = time.perf_counter()
        for _ in range(calls):
            await plain.ainvoke(tool_call)
        return (time.perf_counter() - start) / calls

    async def podium_burst() -> float:
        start = time.perf_counter()
        for _ in range(calls):
            await executor.arun(request, None)
        return (time.perf_counter() - start) / calls

    def podium_sync() -> float:
        start = time.perf_counter()
        for _ in range(calls):
            executor.run(request, None)
        return (time.perf_counter() - start) / calls

    def in_loop(burst: Callable[[], Any]) -> Callable[[], float]:
        return lambda: float(loop.run_until_complete(burst()))

    try:
        stats = interleave(
            {
                "podium": podium_sync,
                "podium_async": in_loop(podium_burst),
                "bare": in_loop(bare_burst),
                "adapters": in_loop(adapters_burst),
            },
            repeats=repeats,
        )
    finally:
        done.set()
        loop.run_until_complete(owner)
        loop.close()
        sessions.close_all()
    note = (
        f"mcp-server-time `get_current_time` over stdio, one session each for the whole run; "
        f"{calls} calls a sample, {repeats} samples"
    )
    return [
        ratio_row(
            "12a",
            "Read-only MCP tool call: podium's governed call (`GovernedExecutor.run`, as "
            "`invoke` runs it) vs the same `call_tool` on a bare `mcp` session",
            stats["podium"],
            stats["bare"],
            target=1.2,
            note=note,
        ),
        ratio_row(
            "12b",
            "Read-only MCP tool call from an event loop (`GovernedExecutor.arun`, as "
            "`ainvoke` runs it) vs the bare session",
            stats["podium_async"],
            stats["bare"],
            target=None,
            note=note,
        ),
        ratio_row(
            "12c",
            "Read-only MCP tool call: podium's governed call (12a) vs a langchain-mcp-adapters "
            "tool on a bare session (`load_mcp_tools(session)`, `ainvoke`)",
            stats["podium"],
            stats["adapters"],
            target=None,
            note=note,
        ),
        ratio_row(
            "12e",
            "Read-only MCP tool call without podium: a langchain-mcp-adapters tool on a bare "
            "session (`ainvoke`, 12c's baseline) vs `call_tool` on that session (12a's "
            "baseline) -- langchain's tool layer alone",
            stats["adapters"],
            stats["bare"],
            target=None,
            note=note,
        ),
        *_sandboxed(quick),
    ]


def _sandboxed(quick: bool) -> list[Row]:
    from podium.environments import Sandbox
    from podium.errors import SandboxUnavailableError
    from podium.tools._mcp_adapter import endpoint_of

    calls, repeats = (5, 2) if quick else (100, 15)
    starts = 2 if quick else 10
    title = (
        "Read-only MCP tool call to a sandboxed stdio server (`MCPServer(sandbox=Sandbox())`) "
        "vs the same governed call to the unsandboxed server"
    )
    plain = _server()
    boxed = MCPServer("sclock", command=plain.command, args=plain.args, sandbox=Sandbox())
    try:
        tools = {s.name: mcp_tools(s) for s in (plain, boxed)}
    except SandboxUnavailableError as exc:
        return [Row("12d", title, "—", "—", None, "—", None, f"not measured: {exc.message}")]
    try:
        runners = {}
        for name, found in tools.items():
            [tool] = [t for t in found if t.name.endswith("_get_current_time")]
            executor = GovernedExecutor("bench", [tool])
            request: Any = {"name": tool.name, "args": ARGS, "id": "b1", "message": "m1"}
            assert '"timezone": "Europe/Oslo"' in executor.run(request, None).text

            def burst(executor: GovernedExecutor = executor, request: Any = request) -> float:
                start = time.perf_counter()
                for _ in range(calls):
                    executor.run(request, None)
                return (time.perf_counter() - start) / calls

            runners[name] = burst
        stats = interleave(runners, repeats=repeats)

        def start_up(server: MCPServer) -> Callable[[], float]:
            def once() -> float:
                sessions.run(sessions.link(endpoint_of(server)).close())  # the server exits
                begin = time.perf_counter()
                mcp_tools(server)
                return time.perf_counter() - begin

            return once

        started = interleave(
            {"sandboxed": start_up(boxed), "plain": start_up(plain)}, repeats=starts
        )
    finally:
        sessions.close_all()
    note = (
        f"mcp-server-time `get_current_time`, one session each; {calls} calls a sample, "
        f"{repeats} samples. Server start-up (`mcp_tools`: start, initialise, list; "
        f"{starts} samples): sandboxed {fmt_stats(started['sandboxed'])}, unsandboxed "
        f"{fmt_stats(started['plain'])}"
    )
    return [
        ratio_row("12d", title, stats["sclock"], stats["clock"], target=1.1, note=note),
    ]
