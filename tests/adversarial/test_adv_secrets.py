"""Attacks on secret redaction: a tool that echoes a ``Secret``'s value in its error.

A plain Python tool (no sandbox) reads a :class:`podium.environments.Secret` and
fails with the value in its message -- as a tool failure (the model is told) and as
``ToolUnavailableError`` (the run stops and the error reaches the caller and the
thread registry). The value must be nowhere: not in the error the caller gets, the
SQLite file (checkpoints, ledger, run events, thread registry, WAL included), or what
``podium threads`` / ``trace`` / ``inspect`` print.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langchain_core.tools import tool as langchain_tool

from agent_kinds import agent_app
from podium.checkpoints import sqlite_saver
from podium.cli import main
from podium.environments import Secret
from podium.errors import ToolUnavailableError
from podium.testing import ScriptedChatModel
from podium.tools import tool

VALUE = "tok-adversarial-7f3a9c"
CFG: Any = {"configurable": {"thread_id": "t1"}}


def stored_bytes(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))


def printed(*argv: str) -> str:
    out = io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(out),
        contextlib.suppress(SystemExit),
    ):
        main(list(argv))
    return out.getvalue()


@pytest.mark.parametrize("failure", ["tool_error", "service_down"])
def test_a_secret_a_tool_echoes_in_its_error_is_stored_and_shown_nowhere(
    agent_kind: str, failure: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAY_TOKEN", VALUE)
    token = Secret("PAY_TOKEN")

    @tool(risk="high")
    def pay(amount: float) -> str:
        """Pay an amount."""
        value = token.value()
        if failure == "service_down":
            raise ToolUnavailableError(f"gateway refused token {value}", fix=f"rotate {value}")
        raise RuntimeError(f"bad token {value}")

    db = tmp_path / "runs.sqlite"
    call = {"name": "pay", "args": {"amount": 5}, "id": "c1", "type": "tool_call"}
    app = agent_app(
        agent_kind,
        name="billing",
        model=ScriptedChatModel([AIMessage("", tool_calls=[call]), "ok"]),
        tools=[pay],
        checkpointer=sqlite_saver(db),
    )
    if failure == "service_down":
        with pytest.raises(ToolUnavailableError) as caught:
            app.invoke({"messages": [("user", "pay 5")]}, CFG)
        assert VALUE not in str(caught.value)
        assert VALUE not in (caught.value.fix or "")
        assert "[redacted]" in str(caught.value)
    else:
        out = app.invoke({"messages": [("user", "pay 5")]}, CFG)
        assert "bad token [redacted]" in out["messages"][-2].content
    assert VALUE.encode() not in stored_bytes(db)
    for argv in (["threads"], ["trace", "t1"], ["inspect", "t1"], ["pending", "t1"]):
        text = printed(*argv, "--db", str(db))
        assert text, argv
        assert VALUE not in text, argv


def test_a_secret_a_tool_puts_in_its_artifact_is_not_stored(
    agent_kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``response_format="content_and_artifact"``: the artifact reaches the checkpoint
    beside the content (MCP puts structured content there), so it is scrubbed too."""
    monkeypatch.setenv("PAY_TOKEN", VALUE)
    token = Secret("PAY_TOKEN")

    @langchain_tool(response_format="content_and_artifact")  # a plain LangChain tool
    def whoami() -> tuple[str, dict[str, Any]]:
        """Show the account."""
        return "account A-1", {"account": "A-1", "session": {"token": token.value()}}

    db = tmp_path / "runs.sqlite"
    call = {"name": "whoami", "args": {}, "id": "c1", "type": "tool_call"}
    app = agent_app(
        agent_kind,
        name="billing",
        model=ScriptedChatModel([AIMessage("", tool_calls=[call]), "ok"]),
        tools=[whoami],
        checkpointer=sqlite_saver(db),
    )
    out = app.invoke({"messages": [("user", "who am I")]}, CFG)
    result = out["messages"][-2]
    assert result.artifact == {"account": "A-1", "session": {"token": "[redacted]"}}
    assert VALUE.encode() not in stored_bytes(db)
