from __future__ import annotations

import asyncio
import os
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

REFUSED = "podium tests must not use the network: tried to connect to"


@pytest.fixture
def loopback_server() -> Iterator[int]:
    """A TCP echo-once server on 127.0.0.1; yields its port."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(conn.recv(64))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield port
    thread.join(timeout=5)
    server.close()


def test_create_connection_to_a_remote_host_fails_with_a_clear_message() -> None:
    with pytest.raises(RuntimeError) as info:
        socket.create_connection(("api.openai.com", 443), timeout=1)

    message = str(info.value)
    assert f"{REFUSED} api.openai.com:443" in message
    assert "ScriptedChatModel" in message


@pytest.mark.parametrize(
    ("family", "address", "shown"),
    [
        (socket.AF_INET, ("93.184.215.14", 80), "93.184.215.14:80"),
        (socket.AF_INET6, ("2606:4700::1111", 443, 0, 0), "[2606:4700::1111]:443"),
    ],
)
def test_raw_connect_to_a_remote_address_fails(
    family: int, address: tuple[object, ...], shown: str
) -> None:
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError:
        pytest.skip("address family not available")
    with sock, pytest.raises(RuntimeError, match=re.escape(f"{REFUSED} {shown}")):
        sock.connect(address)
    with socket.socket(family, socket.SOCK_STREAM) as sock2, pytest.raises(RuntimeError):
        sock2.connect_ex(address)


def test_name_lookup_of_a_remote_host_fails() -> None:
    with pytest.raises(RuntimeError, match=f"{REFUSED} example.com:443"):
        socket.getaddrinfo("example.com", 443)


async def test_asyncio_connection_to_a_remote_host_fails() -> None:
    with pytest.raises(RuntimeError, match=f"{REFUSED} api.openai.com:443"):
        await asyncio.open_connection("api.openai.com", 443)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_loopback_connection_to_a_local_server_succeeds(loopback_server: int, host: str) -> None:
    with socket.create_connection((host, loopback_server), timeout=5) as conn:
        conn.sendall(b"ping")
        assert conn.recv(64) == b"ping"


async def test_asyncio_loopback_connection_succeeds(loopback_server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", loopback_server)
    writer.write(b"pong")
    await writer.drain()
    assert await reader.read(64) == b"pong"
    writer.close()
    await writer.wait_closed()


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets")
def test_unix_socket_connection_succeeds(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(path)
            conn, _ = server.accept()
            with conn:
                client.sendall(b"unix")
                assert conn.recv(64) == b"unix"


def test_environment_is_hermetic() -> None:
    assert os.environ["LANGSMITH_TRACING"] == "false"
    assert os.environ["LANGCHAIN_TRACING_V2"] == "false"
    assert "OPENAI_API_KEY" not in os.environ
