"""Network policy with the real sandbox and a real loopback server the test starts.

``none``: nothing outside the sandbox (the command's own loopback only). ``loopback``:
the host's loopback services too. An allow-list: exactly its entries. Every
connection the filtering proxy refuses is a ``network_refused`` run event.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from podium import Agent, runs
from podium.checkpoints import sqlite_saver
from podium.environments import Workspace, shell_tool
from podium.graphs import create_agent_graph
from podium.testing import ScriptedChatModel

pytestmark = pytest.mark.sandbox

CONNECT = (
    "python3 -c \"import socket; s = socket.create_connection(('127.0.0.1', {port}), 3); "
    'print(s.recv(64).decode())"'
)


def run(ws: Workspace, network: Any, command: str) -> str:
    return str(
        shell_tool(ws, network=network).invoke(
            {"command": command}, {"configurable": {"thread_id": "n"}}
        )
    )


def test_none_reaches_nothing_outside_not_even_the_hosts_loopback(
    sandbox: str, ws: Workspace, greeter: int
) -> None:
    out = run(ws, "none", CONNECT.format(port=greeter))
    assert "hello-from-the-host" not in out
    assert "Connection refused" in out


def test_none_keeps_the_commands_own_loopback(sandbox: str, ws: Workspace) -> None:
    command = (
        "python3 -c \"import socket, threading; l = socket.create_server(('127.0.0.1', 0)); "
        "threading.Thread(target=lambda: l.accept()[0].sendall(b'own-loopback')).start(); "
        'print(socket.create_connection(l.getsockname()).recv(64).decode())"'
    )
    assert "own-loopback" in run(ws, "none", command)


def test_loopback_reaches_the_hosts_loopback_server(
    sandbox: str, ws: Workspace, greeter: int
) -> None:
    assert "hello-from-the-host" in run(ws, "loopback", CONNECT.format(port=greeter))


def test_an_allow_list_entry_reaches_its_server(sandbox: str, ws: Workspace, greeter: int) -> None:
    assert "hello-from-the-host" in run(ws, [f"127.0.0.1:{greeter}"], CONNECT.format(port=greeter))


def test_an_allow_list_refuses_what_it_does_not_name(
    sandbox: str, ws: Workspace, greeter: int
) -> None:
    other = [f"127.0.0.1:{greeter + 1 if greeter < 65535 else greeter - 1}"]
    out = run(ws, other, CONNECT.format(port=greeter))
    assert "hello-from-the-host" not in out
    assert f"refused connections to 127.0.0.1:{greeter}" in out


def test_refused_connections_are_run_events(
    sandbox: str, ws: Workspace, greeter: int, tmp_path: Path
) -> None:
    """Through a graph: the command event and one network_refused event per refusal."""
    shell = shell_tool(ws, network="loopback")
    command = (
        CONNECT.format(port=greeter)
        + "; curl -s -m 5 -o /dev/null -w 'proxy:%{http_connect}' https://example.com/; true"
    )
    call = {"name": "shell", "args": {"command": command}, "id": "c1"}
    model = ScriptedChatModel([AIMessage("", tool_calls=[call]), "done"])
    app = create_agent_graph(Agent(name="ops", model=model, tools=[shell])).compile(
        checkpointer=sqlite_saver(tmp_path / "runs.sqlite")
    )
    config = {"configurable": {"thread_id": "net-1"}}
    out = app.invoke({"messages": [("user", "go")]}, config)
    result = out["messages"][-2].content
    assert "hello-from-the-host" in result
    assert "proxy:403" in result
    events = runs.events(app, config)
    [command_event] = [e for e in events if e["kind"] == "command"]
    assert command_event["data"]["exit_code"] == 0
    assert command_event["data"]["network"] == "loopback"
    assert command_event["data"]["refused"] == 1
    [refused] = [e for e in events if e["kind"] == "network_refused"]
    assert (refused["data"]["host"], refused["data"]["port"]) == ("example.com", 443)
    assert refused["agent"] == "ops"
    assert refused["status"] == "error"
