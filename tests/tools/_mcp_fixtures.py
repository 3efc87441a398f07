"""Real MCP servers for the tests: the PyPI and npm servers, and the FastMCP test server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, ToolMessage

from podium.tools import MCPServer

HERE = Path(__file__).resolve().parent
TEST_SERVER = HERE / "mcp_server.py"
FILESYSTEM_PACKAGE = "@modelcontextprotocol/server-filesystem@2026.8.31"
"""The reference filesystem server, pinned; the test set-up fetches it with npm."""


def call(name: str, args: dict[str, Any], id_: str) -> AIMessage:
    """A model reply that calls one tool."""
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": id_, "type": "tool_call"}])


def results(messages: list[Any]) -> dict[str, ToolMessage]:
    """Tool messages by call id."""
    return {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, timeout=30
    )
    return done.stdout


def make_repo(path: Path) -> Path:
    """A throwaway git repository with one commit and one staged change."""
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "test@example.com")
    git(path, "config", "user.name", "podium test")
    (path / "README.md").write_text("hello\n")
    git(path, "add", "README.md")
    git(path, "commit", "-q", "-m", "first")
    (path / "notes.txt").write_text("a note\n")
    git(path, "add", "notes.txt")
    return path


def commits(repo: Path) -> list[str]:
    return git(repo, "log", "--format=%s").split("\n")[:-1]


def git_server(repo: Path, **options: Any) -> MCPServer:
    """mcp-server-git (PyPI) over stdio, confined to ``repo``."""
    return MCPServer(
        "repo",
        command=sys.executable,
        args=["-m", "mcp_server_git", "--repository", str(repo)],
        **options,
    )


def time_server(**options: Any) -> MCPServer:
    """mcp-server-time (PyPI) over stdio."""
    return MCPServer(
        options.pop("name", "clock"),
        command=sys.executable,
        args=["-m", "mcp_server_time", "--local-timezone", "UTC"],
        **options,
    )


class HttpServer:
    """The FastMCP test server in a subprocess on a loopback port."""

    def __init__(self, tmp: Path, transport: str = "streamable-http") -> None:
        self.port = free_port()
        self.transport = transport
        self.notes = tmp / f"notes-{self.port}.txt"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        path = "/sse" if self.transport == "sse" else "/mcp"
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> HttpServer:
        self.proc = subprocess.Popen(
            [sys.executable, str(TEST_SERVER), self.transport, str(self.port), str(self.notes)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("the MCP test server exited") from None
                time.sleep(0.05)
        raise RuntimeError("the MCP test server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def noted(self) -> list[str]:
        return self.notes.read_text().splitlines() if self.notes.exists() else []

    def server(self, name: str = "web", **options: Any) -> MCPServer:
        transport = "sse" if self.transport == "sse" else "streamable_http"
        return MCPServer(name, url=self.url, transport=transport, **options)


def npx_filesystem(root: Path) -> MCPServer:
    """The reference filesystem server from npm, fetched once by the test set-up.

    Skips when Node.js (``npx``) is missing; a failed fetch from the npm registry fails.
    """
    npx = shutil.which("npx")
    if npx is None:
        pytest.skip("Node.js (npx) is not installed; the npm filesystem server needs it")
    warm = subprocess.run(  # fetch the package into npx's cache (seconds, once)
        [npx, "-y", "-p", FILESYSTEM_PACKAGE, "--", "node", "-e", ""],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "npm_config_update_notifier": "false"},
    )
    assert warm.returncode == 0, f"npm could not fetch {FILESYSTEM_PACKAGE}: {warm.stderr}"
    return MCPServer("fs", command=npx, args=["-y", FILESYSTEM_PACKAGE, str(root)])
