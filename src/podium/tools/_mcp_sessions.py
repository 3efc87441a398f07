"""MCP client sessions: one per server per process, owned by one background event loop.

An MCP client session (the ``mcp`` SDK's ``ClientSession`` inside a stdio, SSE or
streamable-HTTP transport) lives in anyio task groups that must be entered and left
by one task -- leaving from another raises "Attempted to exit cancel scope in a
different task". podium's tools run from plain threads (``app.invoke``), from any
caller's event loop (``app.ainvoke``, Jupyter) and from LangGraph Server's loop. So
every session is opened by an *owner task* on one daemon thread's loop
(``podium-mcp``, started on first use), which keeps it open until it is closed or
dropped; calls from any thread or loop are submitted to that loop and share the
session. langchain-mcp-adapters' ``get_tools()`` opens a new session (for stdio: a
new server process) for every call; here one session serves every call of the
process, and the sessions close when the process exits (or with :func:`close_all`).
HTTP and SSE sessions are opened with langchain-mcp-adapters' ``create_session``;
stdio ones with the SDK's ``stdio_client`` directly, so the server's stderr can go
to a real file (in Jupyter ``sys.stderr`` has none, and the adapters pass the SDK's
default).

A dropped server is reconnected on the next call. What a failure means for the call
depends on when it happened:

* the session was already gone, or the server refused the connection, or (HTTP) did
  not know the session any more: the request never reached the server, so it is sent
  again once on a fresh session; if that fails too,
  :class:`~podium.errors.ToolUnavailableError` with ``reached=False``;
* the connection dropped while the call was pending: the call may have taken effect;
  a read-only or idempotent tool is sent again once on a fresh session, any other
  raises ``ToolUnavailableError(reached=True)`` (the executor keeps it in doubt);
* no answer within the call's timeout: :class:`~podium.errors.ToolTimeoutError`
  (the session stays open).

Known limit (mcp 1.30): when a streamable-HTTP server dies *during* a call, the SDK
neither reports nor retries it, so that call ends with its timeout.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import os
import sys
import threading
from collections.abc import AsyncIterator, Coroutine
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import anyio
import httpx
from langchain_mcp_adapters.sessions import Connection, create_session
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import McpError
from mcp.types import CONNECTION_CLOSED, CallToolResult
from mcp.types import Tool as MCPTool

from podium.errors import ConfigurationError, ToolTimeoutError, ToolUnavailableError

if TYPE_CHECKING:
    from podium.environments import Sandbox

__all__ = ["Endpoint", "Link", "close_all", "link", "run", "run_async"]

T = TypeVar("T")

_REQUEST_TIMEOUT = 408
"""The code the SDK gives a request that got no answer within its read timeout."""
_SESSION_TERMINATED = 32600
"""The code the SDK gives a request whose HTTP session the server no longer knows."""
_GONE = (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream)
"""A session's streams were closed before the request went out."""
_CLOSE_SECONDS = 5.0


@dataclass(frozen=True)
class Endpoint:
    """How to reach one MCP server, and how long to wait for it."""

    name: str
    """The server's name (for messages)."""
    connection: Connection
    """langchain-mcp-adapters' connection settings."""
    key: str
    """Identity: two endpoints with one key share a session."""
    connect_timeout: float
    """Seconds to start (stdio) or reach the server and initialise the session."""
    call_timeout: float
    """Seconds a call may wait for its answer."""
    sandbox: Sandbox | None = None
    """stdio: the sandbox the server runs in (part of :attr:`key`)."""


def _errlog() -> TextIO:
    """Where a stdio server's stderr goes: ours, if it is a real file.

    In Jupyter ``sys.stderr`` has no file descriptor, which a child process needs.
    """
    for stream in (sys.stderr, sys.__stderr__):
        try:
            if stream is not None:
                stream.fileno()
                return stream
        except (AttributeError, OSError, ValueError):
            continue
    devnull = open(os.devnull, "w")  # noqa: SIM115 - closed at exit
    atexit.register(devnull.close)
    return devnull


def _session(endpoint: Endpoint) -> AbstractAsyncContextManager[ClientSession]:
    """A session per langchain-mcp-adapters' settings (stdio: with a usable stderr).

    A stdio server with a sandbox starts inside it (:mod:`podium.environments._servers`):
    its network route lives as long as this session, and a server that ends before
    the session is initialised raises what its stderr says is wrong.
    """
    connection = endpoint.connection
    if connection["transport"] != "stdio":
        return create_session(connection)
    sandbox = endpoint.sandbox
    if sandbox is not None:
        return _sandboxed(endpoint, sandbox)
    params = StdioServerParameters(
        command=connection["command"],
        args=connection["args"],
        env=connection.get("env"),
        cwd=connection.get("cwd"),
    )

    @contextlib.asynccontextmanager
    async def stdio() -> AsyncIterator[ClientSession]:
        async with (
            stdio_client(params, errlog=_errlog()) as (read, write),
            ClientSession(read, write) as session,
        ):
            yield session

    return stdio()


@functools.lru_cache(maxsize=64)
def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)


@contextlib.asynccontextmanager
async def _sandboxed(endpoint: Endpoint, sandbox: Sandbox) -> AsyncIterator[ClientSession]:
    from podium.environments._servers import ServerLaunch

    connection = endpoint.connection
    if connection["transport"] != "stdio":  # MCPServer refuses it; kept for the type
        raise ConfigurationError(
            f"MCP server {endpoint.name!r}: only stdio servers run in a sandbox.",
            fix="Drop sandbox= for an HTTP server (sandbox the server process yourself).",
        )
    launch = ServerLaunch(
        sandbox,
        endpoint.name,
        connection["command"],
        connection["args"],
        connection.get("env"),
        _errlog(),
    )
    async with launch:
        params = StdioServerParameters(command=launch.argv[0], args=launch.argv[1:], env=launch.env)
        session: ClientSession | None = None
        try:
            async with stdio_client(params, errlog=launch.errlog) as (read, write):
                launch.started()
                async with ClientSession(read, write) as session:
                    yield session
        except Exception as exc:
            if session is None or session.get_server_capabilities() is None:
                # waits (off the loop) for the server's last stderr lines
                raise await asyncio.to_thread(launch.failure, exc) from None
            raise


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _describe(exc: BaseException) -> str:
    leaves = _leaves(exc)
    return "; ".join(f"{type(e).__name__}: {e}".rstrip(": ") for e in leaves[:3])


def _never_sent(exc: BaseException) -> bool:
    """Whether a transport failure happened before any request reached the server."""
    return all(isinstance(e, httpx.ConnectError | ConnectionRefusedError) for e in _leaves(exc))


class Link:
    """One server's session and the task that owns it (lives on the pool's loop)."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.session: ClientSession | None = None
        self.owner: asyncio.Task[BaseException | None] | None = None
        self._stop: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None
        self.opened = 0
        """How many sessions were opened (for tests and diagnostics)."""

    def _down(self, cause: BaseException | str, *, reached: bool) -> ToolUnavailableError:
        name = self.endpoint.name
        why = cause if isinstance(cause, str) else _describe(cause)
        where = self.endpoint.connection.get("url") or self.endpoint.connection.get("command")
        if reached:
            text = (
                f"MCP server {name!r} ({where}) dropped the connection while a call was "
                f"running ({why}); the call may or may not have taken effect."
            )
        else:
            text = f"MCP server {name!r} ({where}) cannot be reached: {why}."
        then = "; podium asks a human whether the interrupted call took effect." if reached else "."
        return ToolUnavailableError(
            text,
            fix="Start the server (or fix its command or URL), then resume the run with "
            f"app.invoke(None, config){then}",
            server=name,
            reached=reached,
        )

    async def _own(
        self, ready: asyncio.Future[ClientSession], stop: asyncio.Event
    ) -> BaseException | None:
        """Open the session, hand it over, and keep it open until told to stop."""
        try:
            async with _session(self.endpoint) as session:
                await session.initialize()
                ready.set_result(session)
                await stop.wait()
        except BaseException as exc:  # the transport failed, or the loop is closing
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(exc))
            return exc
        return None

    async def open(self) -> tuple[ClientSession, asyncio.Task[BaseException | None]]:
        """The live session, opening one if there is none.

        Raises:
            ToolUnavailableError: The server could not be started or reached.
            ConfigurationError: The stdio command does not exist or cannot run.
        """
        session, owner = self.session, self.owner
        if session is not None and owner is not None and not owner.done():
            return session, owner  # the live session: no lock on the path every call takes
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.session is not None and self.owner is not None and not self.owner.done():
                return self.session, self.owner
            await self._close()
            ready: asyncio.Future[ClientSession] = asyncio.get_running_loop().create_future()
            stop = asyncio.Event()
            owner = asyncio.create_task(self._own(ready, stop), name="podium-mcp-session")
            try:
                session = await asyncio.wait_for(
                    asyncio.shield(ready), self.endpoint.connect_timeout
                )
            except TimeoutError:
                owner.cancel()
                await asyncio.wait({owner}, timeout=_CLOSE_SECONDS)
                raise self._down(
                    f"no answer within connect_timeout={self.endpoint.connect_timeout:g}s",
                    reached=False,
                ) from None
            except Exception as exc:
                await asyncio.wait({owner}, timeout=_CLOSE_SECONDS)
                if isinstance(exc, ToolUnavailableError):
                    raise exc from None  # a sandboxed start said what is wrong
                missing = [
                    e for e in _leaves(exc) if isinstance(e, FileNotFoundError | PermissionError)
                ]
                if missing:
                    command = self.endpoint.connection.get("command")
                    raise ConfigurationError(
                        f"MCP server {self.endpoint.name!r}: cannot run {command!r}: {missing[0]}.",
                        fix="Give the full path of an executable that exists (e.g. "
                        "sys.executable for a Python server, 'npx' for an npm one).",
                    ) from None
                raise self._down(exc, reached=False) from None
            self.session, self.owner, self._stop = session, owner, stop
            self.opened += 1
            return session, owner

    async def _close(self) -> None:
        owner, stop = self.owner, self._stop
        self.session = self.owner = self._stop = None
        if stop is not None:
            stop.set()
        if owner is not None:
            await asyncio.wait({owner}, timeout=_CLOSE_SECONDS)

    async def drop(self, session: ClientSession) -> None:
        """Forget ``session`` (it failed); the next call opens a new one."""
        if self._lock is None:
            return
        async with self._lock:
            if self.session is session:
                await self._close()

    async def close(self) -> None:
        """Close the session (its stdio server exits)."""
        if self._lock is None:
            return
        async with self._lock:
            await self._close()

    async def list_tools(self) -> list[MCPTool]:
        """Every tool the server offers (all pages); a dropped session is reopened once."""
        for attempt in (1, 2):
            session, _ = await self.open()
            try:
                return await self._pages(session)
            except (McpError, *_GONE) as exc:
                if isinstance(exc, McpError) and exc.error.code != CONNECTION_CLOSED:
                    raise
                await self.drop(session)
                if attempt == 2:
                    raise self._down(exc, reached=False) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _pages(self, session: ClientSession) -> list[MCPTool]:
        found: list[MCPTool] = []
        cursor: str | None = None
        for _ in range(1000):
            page = await session.list_tools(cursor=cursor)
            found.extend(page.tools)
            if not page.nextCursor:
                return found
            cursor = page.nextCursor
        raise ConfigurationError(
            f"MCP server {self.endpoint.name!r} listed more than 1000 pages of tools.",
            fix="Check the server's tools/list pagination.",
        )

    async def call(
        self, tool: str, args: dict[str, Any], *, resend: bool, timeout: float | None = None
    ) -> CallToolResult:
        """Call ``tool`` on the live session, reconnecting once when the server dropped.

        Args:
            tool: The server's own tool name.
            args: The validated arguments.
            resend: Whether a call that may have reached the server may be sent again
                (read-only and idempotent tools).
            timeout: Seconds to wait for the answer (default: the endpoint's).

        Raises:
            ToolUnavailableError: The server is down, or dropped the call.
            ToolTimeoutError: No answer within the timeout.
            McpError: The server answered the request with an error.
        """
        seconds = self.endpoint.call_timeout if timeout is None else timeout
        wait = _seconds(seconds)
        me = asyncio.current_task()
        for attempt in (1, 2):
            session, owner = await self.open()

            def interrupt(_: object, me: Any = me) -> None:  # the transport failed
                if me is not None:
                    me.cancel()

            owner.add_done_callback(interrupt)
            try:
                return await session.call_tool(tool, args, read_timeout_seconds=wait)
            except asyncio.CancelledError:
                if me is None or not owner.done() or me.cancelling() > 1:
                    raise  # cancelled by our caller, not by the transport
                me.uncancel()
                failure: BaseException = owner.result() or RuntimeError("the session ended")
                reached = not _never_sent(failure)
            except McpError as exc:
                code = exc.error.code
                if code == _REQUEST_TIMEOUT:
                    raise ToolTimeoutError(
                        f"MCP server {self.endpoint.name!r} did not answer {tool!r} within "
                        f"{seconds:g}s.",
                        fix="Raise MCPServer(timeout=...) if the tool is slow.",
                        server=self.endpoint.name,
                        seconds=seconds,
                    ) from None
                if code not in (CONNECTION_CLOSED, _SESSION_TERMINATED):
                    raise
                failure, reached = exc, code == CONNECTION_CLOSED
            except _GONE as exc:
                failure, reached = exc, False
            finally:
                owner.remove_done_callback(interrupt)
            await self.drop(session)
            if attempt == 1 and (resend or not reached):
                continue
            raise self._down(failure, reached=reached)
        raise AssertionError("unreachable")  # pragma: no cover


class _Pool:
    """The process's MCP loop thread and its links, one per endpoint key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0
        self.links: dict[str, Link] = {}
        atexit.register(self.close)

    def loop(self) -> asyncio.AbstractEventLoop:
        found = self._loop
        if found is not None and self._pid == os.getpid():
            return found
        with self._lock:
            if self._loop is None or self._pid != os.getpid():  # first use, or a forked child
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="podium-mcp", daemon=True)
                thread.start()
                self._loop, self._thread, self._pid, self.links = loop, thread, os.getpid(), {}
            return self._loop

    def link(self, endpoint: Endpoint) -> Link:
        self.loop()
        found = self.links.get(endpoint.key)
        if found is not None:
            return found
        with self._lock:
            return self.links.setdefault(endpoint.key, Link(endpoint))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self.loop()
        if threading.current_thread() is self._thread:  # pragma: no cover - a misuse
            coro.close()
            raise RuntimeError("a blocking MCP call from the MCP loop's own thread")
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    async def run_async(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self.loop()
        if asyncio.get_running_loop() is loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    def close(self) -> None:
        """Close every session and stop the loop (at exit)."""
        with self._lock:
            loop, thread, links = self._loop, self._thread, list(self.links.values())
            mine = self._pid == os.getpid()
            self._loop, self._thread, self.links = None, None, {}
        if loop is None or not mine or thread is None or not thread.is_alive():
            return

        async def close_links() -> None:
            await asyncio.gather(*(link.close() for link in links), return_exceptions=True)

        with contextlib.suppress(Exception):  # a server that would not stop
            asyncio.run_coroutine_threadsafe(close_links(), loop).result(_CLOSE_SECONDS * 2)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_CLOSE_SECONDS)
        if not thread.is_alive():
            loop.close()


_POOL = _Pool()


def link(endpoint: Endpoint) -> Link:
    """The process's link to ``endpoint`` (shared by every tool of that server)."""
    return _POOL.link(endpoint)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the MCP loop and wait for it (from any thread but the loop's)."""
    return _POOL.run(coro)


async def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the MCP loop and await it (from any event loop)."""
    return await _POOL.run_async(coro)


def close_all() -> None:
    """Close every MCP session of this process (stdio servers exit); later calls reconnect."""
    _POOL.close()
