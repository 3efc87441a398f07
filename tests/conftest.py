"""Shared pytest configuration and fixtures for podium's test suite."""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver

import _bwrap  # tests/_bwrap.py: bubblewrap for the sandboxed environments
import _postgres  # tests/_postgres.py: the throwaway PostgreSQL server
from agent_kinds import AGENT_KINDS
from podium.checkpoints import postgres_saver, sqlite_saver

# ---------------------------------------------------------------------------
# No-network guard and hermetic environment
#
# Tests must never reach the network. From pytest_configure to pytest_unconfigure
# (so collection, session fixtures and background threads are covered too), every
# connection or name lookup for a host other than loopback fails with a RuntimeError
# that says what was attempted and what to use instead. Allowed: 127.0.0.0/8, ::1,
# "localhost" (and *.localhost), the unspecified addresses 0.0.0.0 / :: (which mean
# "this host"), and Unix sockets -- the local model server, PostgreSQL, test servers.
# ---------------------------------------------------------------------------

_NETWORK_HINT = "Use podium.testing.ScriptedChatModel, or the local model on 127.0.0.1."

# Read once by langsmith (it caches environment lookups), so they are set before
# anything imports it, and again per test by `_hermetic_env`.
_TRACING_OFF = {
    "LANGSMITH_TRACING": "false",
    "LANGSMITH_TRACING_V2": "false",
    "LANGCHAIN_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
}
# Credentials and endpoints of real providers; a test that needs one sets it itself.
_UNSET = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "LANGSMITH_API_KEY", "LANGCHAIN_API_KEY")

_saved: dict[str, Any] = {}


def _is_local_host(host: object) -> bool:
    if host is None:
        return True  # getaddrinfo(None, port): a local bind address
    if isinstance(host, bytes):
        host = host.decode("idna", errors="replace")
    if not isinstance(host, str):
        return False
    name = host.strip("[]").split("%", 1)[0].rstrip(".").lower()
    if name in ("", "localhost") or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False  # a host name other than localhost: would need DNS
    return address.is_loopback or address.is_unspecified


def _refuse(host: object, port: object) -> RuntimeError:
    shown = f"[{host}]" if isinstance(host, str) and ":" in host else host
    return RuntimeError(
        f"podium tests must not use the network: tried to connect to {shown}:{port}. "
        f"{_NETWORK_HINT}"
    )


def _check_address(family: int, address: Any) -> None:
    if family == getattr(socket, "AF_UNIX", object()):
        return
    if isinstance(address, tuple) and address and not _is_local_host(address[0]):
        raise _refuse(address[0], address[1] if len(address) > 1 else "?")


def _guard_connect(real: Callable[..., Any]) -> Callable[..., Any]:
    def connect(self: socket.socket, address: Any) -> Any:
        _check_address(self.family, address)
        return real(self, address)

    return connect


def _guard_create_connection(real: Callable[..., Any]) -> Callable[..., Any]:
    def create_connection(address: tuple[Any, ...], *args: Any, **kwargs: Any) -> Any:
        if not _is_local_host(address[0]):
            raise _refuse(address[0], address[1])
        return real(address, *args, **kwargs)

    return create_connection


def _guard_getaddrinfo(real: Callable[..., Any]) -> Callable[..., Any]:
    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_local_host(host):
            raise _refuse(host, port)
        return real(host, port, *args, **kwargs)

    return getaddrinfo


def pytest_configure(config: pytest.Config) -> None:
    """Install the network guard and turn tracing off for the whole session."""
    _saved["env"] = {name: os.environ.get(name) for name in _TRACING_OFF}
    os.environ.update(_TRACING_OFF)
    _saved["socket"] = {
        "connect": socket.socket.connect,
        "connect_ex": socket.socket.connect_ex,
        "create_connection": socket.create_connection,
        "getaddrinfo": socket.getaddrinfo,
    }
    socket.socket.connect = _guard_connect(socket.socket.connect)  # type: ignore[method-assign]
    socket.socket.connect_ex = _guard_connect(socket.socket.connect_ex)  # type: ignore[method-assign]
    socket.create_connection = _guard_create_connection(socket.create_connection)
    socket.getaddrinfo = _guard_getaddrinfo(socket.getaddrinfo)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the network guard and restore the environment."""
    real = _saved.pop("socket", None)
    if real is not None:
        socket.socket.connect = real["connect"]  # type: ignore[method-assign]
        socket.socket.connect_ex = real["connect_ex"]  # type: ignore[method-assign]
        socket.create_connection = real["create_connection"]
        socket.getaddrinfo = real["getaddrinfo"]
    for name, value in _saved.pop("env", {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Per test: tracing off, no real provider credentials or endpoints."""
    for name, value in _TRACING_OFF.items():
        monkeypatch.setenv(name, value)
    for name in _UNSET:
        monkeypatch.delenv(name, raising=False)


# ---------------------------------------------------------------------------
# End of the no-network guard.
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Checkpointers: every persistence and interrupt test runs against each kind
# through these fixtures (LangGraph's own tests/conftest.py does the same).
#   checkpointer  -- a saver of the parametrized kind
#   make_saver()  -- another saver object on the *same* storage, as a new process
#                    would open it (for "finish the run with a new compiled graph")
#   postgres_url  -- an empty PostgreSQL database (podium's tables in place) per test
# The PostgreSQL server is a private throwaway cluster (tests/_postgres.py),
# installed from Debian's packages and started once per session when first needed;
# `-m "not postgres"` skips those tests.
# ---------------------------------------------------------------------------
CHECKPOINTER_KINDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[_postgres.Server]:
    server, reason = _postgres.start_server()
    if server is None:
        pytest.skip(f"PostgreSQL unavailable: {reason}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def _postgres_shared(postgres_server: _postgres.Server) -> str:
    return postgres_server.create_database()


@pytest.fixture
def postgres_url(postgres_server: _postgres.Server, _postgres_shared: str) -> str:
    postgres_server.reset(_postgres_shared)
    return _postgres_shared


@pytest.fixture(params=CHECKPOINTER_KINDS)
def checkpointer_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_saver(
    checkpointer_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[], BaseCheckpointSaver[Any]]]:
    memory = InMemorySaver()
    opened: list[Any] = []
    url = request.getfixturevalue("postgres_url") if checkpointer_kind == "postgres" else ""

    def make() -> BaseCheckpointSaver[Any]:
        if checkpointer_kind == "memory":
            return memory
        saver: Any = (
            postgres_saver(url, pool_size=4)
            if checkpointer_kind == "postgres"
            else sqlite_saver(tmp_path / "checkpoints.sqlite")
        )
        opened.append(saver)
        return cast(BaseCheckpointSaver[Any], saver)

    yield make
    for saver in opened:
        saver.close()


@pytest.fixture
def checkpointer(
    make_saver: Callable[[], BaseCheckpointSaver[Any]],
) -> BaseCheckpointSaver[Any]:
    return make_saver()


# ---------------------------------------------------------------------------
# Agent kinds: the governance suites build their agent either as podium's agent graph
# or as LangChain's create_agent with podium.middleware.Governed (tests/agent_kinds.py).
# ---------------------------------------------------------------------------
@pytest.fixture(params=AGENT_KINDS)
def agent_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# ---------------------------------------------------------------------------
# Sandboxes: tests of podium.environments (and the demo and notebook that use them) run
# real commands under real bubblewrap, installed from Debian's packages when missing.
# ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def sandbox() -> str:
    """bubblewrap's version; installed first when missing (skipped only if it cannot be)."""
    reason = _bwrap.install()
    if reason is not None:
        pytest.skip(f"bubblewrap unavailable: {reason}")
    from podium.environments._sandbox import check_sandbox

    return check_sandbox()  # installed but unable to start: a failure, not a skip


@pytest.fixture
def greeter() -> Iterator[int]:
    """A TCP server on the host's loopback that greets every client; yields its port.

    What sandboxed commands and MCP servers try to reach under each network policy.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"hello-from-the-host")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join(timeout=5)
    listener.close()
