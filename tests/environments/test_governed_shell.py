"""The shell is governed like any tool: grants, policy over command lines, approvals
with edits, the exactly-once ledger, run events -- and secrets never stored.

Every run is the README's plain ``invoke`` on a real SQLite file, with a real sandbox.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from podium import Agent, runs
from podium.checkpoints import sqlite_saver
from podium.cli import main
from podium.environments import Secret, Workspace, command_uses, file_tools, shell_tool
from podium.graphs import create_agent_graph, create_manager_graph
from podium.testing import ScriptedChatModel
from podium.tools import Decision, Policy, Rule

pytestmark = pytest.mark.sandbox

CFG = {"configurable": {"thread_id": "gov-1"}}


def call(command: str, id_: str = "c1") -> AIMessage:
    return AIMessage("", tool_calls=[{"name": "shell", "args": {"command": command}, "id": id_}])


def tool_results(state: dict[str, Any]) -> list[str]:
    return [str(m.content) for m in state["messages"] if m.type == "tool"]


def test_an_agent_without_the_shell_cannot_run_commands(
    sandbox: str, ws: Workspace, tmp_path: Path
) -> None:
    shell = shell_tool(ws)
    reader = Agent(
        name="reader", model=ScriptedChatModel([call("touch pwned"), "ok"]), tools=file_tools(ws)
    )
    runner = Agent(name="runner", model=ScriptedChatModel(["idle"]), tools=[shell])
    boss = Agent(
        name="boss",
        model=ScriptedChatModel(
            [
                AIMessage("", tool_calls=[{"name": "reader", "args": {"task": "x"}, "id": "d1"}]),
                "done",
            ]
        ),
    )
    app = create_manager_graph(boss, [reader, runner]).compile(
        checkpointer=sqlite_saver(tmp_path / "runs.sqlite")
    )
    app.invoke({"messages": [("user", "go")]}, CFG)
    assert not (ws.directory("gov-1") / "pwned").exists()
    refusals = [e for e in runs.events(app, CFG) if e["kind"] == "refusal"]
    assert [(e["agent"], e["name"], e["data"]["code"]) for e in refusals] == [
        ("reader", "shell", "tool_not_granted")
    ]


def test_rm_waits_for_a_human_who_edits_the_command(
    sandbox: str, ws: Workspace, tmp_path: Path
) -> None:
    ws.ensure(ws.directory("gov-1"))
    (ws.directory("gov-1") / "keep.csv").write_text("a\n")
    (ws.directory("gov-1") / "tmp.log").write_text("x\n")
    policy = Policy(
        rules=[
            Rule(tool="shell", action="approve", when=command_uses("rm"), reason="deletes files"),
            Rule(
                tool="shell",
                action="deny",
                when=command_uses("curl", "wget"),
                reason="no network here",
            ),
        ]
    )
    model = ScriptedChatModel(
        [
            call("curl -s https://example.com", "c0"),
            call("ls && /bin/rm -f *", "c1"),
            "cleaned",
        ]
    )
    app = create_agent_graph(
        Agent(name="ops", model=model, tools=[shell_tool(ws)]), policy=policy
    ).compile(checkpointer=sqlite_saver(tmp_path / "runs.sqlite"))
    app.invoke({"messages": [("user", "clean up")]}, CFG)
    [request] = runs.pending(app, CFG)
    assert request.args == {"command": "ls && /bin/rm -f *"}
    assert request.reason == "deletes files"
    assert request.risk == "high"
    assert (ws.directory("gov-1") / "keep.csv").exists()  # nothing ran before the decision
    out = runs.decide(
        app, CFG, {request.id: Decision.edit({"command": "rm -f tmp.log"}, by="alice")}
    )
    results = tool_results(out)
    assert "policy refused" in results[0]
    assert "no network here" in results[0]
    assert results[1].startswith("exit code 0")
    assert (ws.directory("gov-1") / "keep.csv").exists()
    assert not (ws.directory("gov-1") / "tmp.log").exists()
    # the stored conversation shows the command that ran
    [ran] = [m for m in out["messages"] if m.type == "ai" and m.tool_calls][-1:]
    assert ran.tool_calls[0]["args"] == {"command": "rm -f tmp.log"}
    events = runs.events(app, CFG)
    [decided] = [e for e in events if e["kind"] == "approval_decided"]
    assert decided["data"]["edited_args"] == {"command": "rm -f tmp.log"}
    [command] = [e for e in events if e["kind"] == "command"]
    assert command["data"]["exit_code"] == 0
    assert command["data"]["sandbox"] == sandbox
    assert command["data"]["bytes_out"] == 0
    assert command["ended_at"] >= command["started_at"]


def test_a_command_runs_once_and_a_replay_returns_its_recorded_result(
    sandbox: str, ws: Workspace, tmp_path: Path
) -> None:
    db = tmp_path / "runs.sqlite"
    model = ScriptedChatModel([call("echo ran >> count.txt; wc -l < count.txt"), "done", "done"])
    app = create_agent_graph(Agent(name="ops", model=model, tools=[shell_tool(ws)])).compile(
        checkpointer=sqlite_saver(db)
    )
    out = app.invoke({"messages": [("user", "go")]}, CFG)
    assert tool_results(out)[0].endswith("1\n")
    # replay the tool step from the checkpoint before it: the ledger answers, nothing runs
    history = list(app.get_state_history(CFG))
    before = next(s for s in history if s.next == ("tools",))
    replay = app.invoke(None, before.config)
    assert tool_results(replay)[0].endswith("1\n")
    assert (ws.directory("gov-1") / "count.txt").read_text() == "ran\n"
    with sqlite3.connect(db) as conn:
        [(status, result)] = conn.execute("SELECT status, result FROM podium_tool_calls").fetchall()
    assert status == "done"
    assert "exit code 0" in result


def test_a_secrets_value_is_nowhere_in_the_database_or_the_trace(
    sandbox: str,
    ws: Workspace,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    value = "sk-podium-7f3c9a1e5b2d4c68"
    monkeypatch.setenv("DEPLOY_TOKEN", value)
    shell = shell_tool(ws, secrets=[Secret("API_TOKEN", env="DEPLOY_TOKEN")])
    command = (
        'echo "token=$API_TOKEN"; printenv API_TOKEN > token.txt; echo "$API_TOKEN" >&2; exit 3'
    )
    policy = Policy(rules=[Rule(tool="shell", action="approve")])
    model = ScriptedChatModel([call(command), "done"])
    db = tmp_path / "runs.sqlite"
    app = create_agent_graph(Agent(name="ops", model=model, tools=[shell]), policy=policy).compile(
        checkpointer=sqlite_saver(db)
    )
    app.invoke({"messages": [("user", "deploy")]}, CFG)
    [request] = runs.pending(app, CFG)
    out = runs.decide(app, CFG, {request.id: Decision.approve(by="alice")})
    result = tool_results(out)[0]
    assert result.startswith("exit code 3")
    assert "token=[redacted]" in result
    assert value not in result
    # the command really had it
    assert (ws.directory("gov-1") / "token.txt").read_text().strip() == value
    assert main(["trace", "gov-1", "--db", str(db)]) == 0
    assert main(["trace", "gov-1", "--db", str(db), "--json"]) == 0
    printed = capsys.readouterr().out
    assert "exit 3, " in printed  # the command's row in the timeline
    assert value not in printed
    app.checkpointer.close()  # type: ignore[union-attr]
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("runs.sqlite*"))
    assert b"podium_tool_calls" in stored
    assert value.encode() not in stored


def test_a_password_under_any_key_is_scrubbed_from_the_ledger_and_events(
    sandbox: str, ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redaction by value: a registered secret under ``note`` (no secret-looking key)."""
    value = "hunter2-but-longer-9d1e"
    monkeypatch.setenv("DB_PASSWORD", value)
    Secret("DB_PASSWORD")  # registered (readable when built)
    command = f"echo note: {value}"
    model = ScriptedChatModel([call(command), "done"])
    db = tmp_path / "runs.sqlite"
    policy = Policy(rules=[Rule(tool="shell", action="approve")])
    app = create_agent_graph(
        Agent(name="ops", model=model, tools=[shell_tool(ws)]), policy=policy
    ).compile(checkpointer=sqlite_saver(db))
    app.invoke({"messages": [("user", "go")]}, CFG)
    [request] = runs.pending(app, CFG)
    runs.decide(app, CFG, {request.id: Decision.approve(by="alice")})
    runs.events(app, CFG)  # flushed
    with sqlite3.connect(db) as conn:
        for table in ("podium_events", "podium_approvals", "podium_tool_calls"):
            text = "".join(str(r) for r in conn.execute(f"SELECT * FROM {table}"))
            assert text, table
            assert value not in text, table
            if table != "podium_events":
                assert "[redacted]" in text
