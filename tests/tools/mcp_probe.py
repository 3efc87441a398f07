"""A probe MCP server (stdio, FastMCP) for the sandbox tests: it reports what it can do.

Every tool answers with what happened (``ok: ...`` or ``error: ...``) instead of
raising, so a test reads the sandbox's verdict from the tool result. The tests copy
this file into a directory they mount, and run it inside the sandbox under test.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
from pathlib import Path

from mcp.server.fastmcp import FastMCP
from mcp.types import ToolAnnotations

logging.getLogger("mcp").setLevel(logging.WARNING)
mcp = FastMCP("podium-probe", log_level="WARNING")
READ_ONLY = ToolAnnotations(readOnlyHint=True)
WRITES = ToolAnnotations(readOnlyHint=False, destructiveHint=False)


@mcp.tool(annotations=READ_ONLY)
def read(path: str) -> str:
    """Read a file."""
    try:
        return "ok: " + Path(path).read_text()
    except OSError as exc:
        return f"error: {type(exc).__name__}: {exc.strerror}"


@mcp.tool(annotations=WRITES)
def write(path: str, text: str) -> str:
    """Write a file."""
    try:
        Path(path).write_text(text)
        return f"ok: wrote {path}"
    except OSError as exc:
        return f"error: {type(exc).__name__}: {exc.strerror}"


@mcp.tool(annotations=WRITES)
def note(text: str) -> str:
    """Append a line to /workspace/notes.txt."""
    with open("/workspace/notes.txt", "a") as f:
        f.write(text + "\n")
    return f"noted: {text}"


@mcp.tool(annotations=READ_ONLY)
def connect(port: int) -> str:
    """Connect to 127.0.0.1:PORT and return what the server says first."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as conn:
            return "ok: " + conn.recv(64).decode()
    except OSError as exc:
        return f"error: {type(exc).__name__}: {exc}"


@mcp.tool(annotations=READ_ONLY)
def env(name: str) -> str:
    """An environment variable's value."""
    return f"{name}={os.environ.get(name, '<unset>')}"


@mcp.tool(annotations=WRITES)
def linger(seconds: str) -> str:
    """Start a detached ``sleep SECONDS`` (its own session, no stdin) and return."""
    subprocess.Popen(
        ["sleep", seconds],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return f"ok: sleeping {seconds}"


@mcp.tool(annotations=READ_ONLY)
def whoami() -> str:
    """The uid, pid, working directory and hostname."""
    return f"uid={os.getuid()} pid={os.getpid()} cwd={os.getcwd()} host={socket.gethostname()}"


if __name__ == "__main__":
    mcp.run("stdio")
