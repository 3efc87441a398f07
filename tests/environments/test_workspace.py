"""Workspaces: per thread, shared or private, sub-directories, deletion; bad config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from env_helpers import cfg
from langchain_core.messages import AIMessage

from podium import Agent
from podium.checkpoints import sqlite_saver
from podium.environments import Limits, Secret, Workspace, command_uses, file_tools, shell_tool
from podium.environments._commands import command_programs
from podium.errors import ConfigurationError
from podium.graphs import create_manager_graph
from podium.testing import ScriptedChatModel


def tools_of(ws: Workspace) -> dict[str, Any]:
    return {t.name: t for t in file_tools(ws)}


def test_a_workspace_is_created_on_first_use_and_kept(ws: Workspace) -> None:
    assert not ws.base.exists()
    tools = tools_of(ws)
    assert tools["write_file"].invoke({"path": "a/b.txt", "content": "x"}, cfg("t1")) == (
        "Wrote 1 bytes to a/b.txt."
    )
    assert (ws.base / "t1" / "a" / "b.txt").read_text() == "x"
    # another Workspace object on the same root (another process) finds it
    again = tools_of(Workspace(ws.base))
    assert again["read_file"].invoke({"path": "a/b.txt"}, cfg("t1")) == "x"
    assert again["read_file"].invoke({"path": "a/b.txt"}, cfg("t2")).startswith("Error: no such")
    assert ws.delete("t1")
    assert not (ws.base / "t1").exists()
    assert not ws.delete("t1")


def test_thread_ids_become_safe_directory_names(ws: Workspace) -> None:
    for thread in ("../../etc", "a/b", ".", "x" * 300, "ü"):
        path = ws.directory(thread)
        assert path.parent == ws.base
        assert path.name not in (".", "..")
        assert "/" not in path.name


def test_private_workspaces_are_per_agent_and_subdirectories_confine(ws: Workspace) -> None:
    private = Workspace(ws.base, private=True)
    tools = tools_of(private)
    tools["write_file"].invoke({"path": "n.txt", "content": "alice's"}, cfg("t", "alice"))
    assert tools["read_file"].invoke({"path": "n.txt"}, cfg("t", "bob")).startswith("Error")
    assert tools["read_file"].invoke({"path": "n.txt"}, cfg("t", "alice")) == "alice's"
    team, research = tools_of(ws), tools_of(ws.sub("research"))
    research["write_file"].invoke({"path": "notes.md", "content": "found"}, cfg("t"))
    assert team["read_file"].invoke({"path": "research/notes.md"}, cfg("t")) == "found"
    team["write_file"].invoke({"path": "plan.md", "content": "boss only"}, cfg("t"))
    assert research["read_file"].invoke({"path": "../plan.md"}, cfg("t")).startswith("Error")
    assert "plan.md" not in research["list_files"].invoke({}, cfg("t"))


def test_a_managers_specialist_works_in_its_sub_directory(ws: Workspace, tmp_path: Path) -> None:
    write = {"name": "write_file", "args": {"path": "facts.md", "content": "42"}, "id": "w1"}
    researcher = Agent(
        name="research",
        model=ScriptedChatModel([AIMessage("", tool_calls=[write]), "wrote facts.md"]),
        tools=file_tools(ws.sub("research")),
    )
    read = {"name": "read_file", "args": {"path": "research/facts.md"}, "id": "r1"}
    delegate = {"name": "research", "args": {"task": "find facts"}, "id": "d1"}
    boss = Agent(
        name="lead",
        model=ScriptedChatModel(
            [AIMessage("", tool_calls=[delegate]), AIMessage("", tool_calls=[read]), "42"]
        ),
        tools=[t for t in file_tools(ws) if t.name == "read_file"],
    )
    app = create_manager_graph(boss, [researcher]).compile(
        checkpointer=sqlite_saver(tmp_path / "runs.sqlite")
    )
    out = app.invoke({"messages": [("user", "go")]}, {"configurable": {"thread_id": "team"}})
    assert [m.content for m in out["messages"] if m.type == "tool"][-1] == "42"
    assert (ws.directory("team") / "research" / "facts.md").read_text() == "42"


def test_file_size_caps(ws: Workspace) -> None:
    small = tools_of(Workspace(ws.base, max_file_bytes=10))
    assert "more than the 10" in small["write_file"].invoke(
        {"path": "big.txt", "content": "x" * 11}, cfg()
    )
    (ws.ensure(ws.directory("t1")) / "big.txt").write_text("y" * 20)
    assert "more than the 10" in small["read_file"].invoke({"path": "big.txt"}, cfg())


def test_search_and_edit(ws: Workspace) -> None:
    tools = tools_of(ws)
    tools["write_file"].invoke({"path": "d/a.csv", "content": "id,total\nA,10\nB,20\n"}, cfg())
    assert tools["search_files"].invoke({"pattern": "b,2"}, cfg()) == "d/a.csv:3: B,20"
    assert tools["edit_file"].invoke({"path": "d/a.csv", "old": "B,20", "new": "B,25"}, cfg()) == (
        "Edited d/a.csv."
    )
    assert "occurs 0 times" not in tools["edit_file"].invoke(
        {"path": "d/a.csv", "old": "C", "new": "D"}, cfg()
    )
    assert tools["read_file"].invoke({"path": "d/a.csv"}, cfg()).endswith("B,25\n")


@pytest.mark.parametrize(
    ("command", "programs"),
    [
        ("cat a.csv | sort && /bin/rm -f a.csv", {"cat", "sort", "rm"}),
        ("FOO=1 sudo -n rm x", {"sudo", "rm"}),  # sudo's flags are not programs
        ("echo $(rm x) `curl y`", {"echo", "rm", "curl"}),
        ("sh -c 'wget z; ls'", {"sh", "wget", "ls"}),
        ("find . -name '*.tmp' -exec rm {} ;", {"find", "rm"}),
        ("format disk; echo rm", {"format", "echo"}),
        ('eval "$X"', {"eval", "<opaque>"}),
        ("echo 'unbalanced", {"<opaque>"}),
    ],
)
def test_command_programs(command: str, programs: set[str]) -> None:
    assert programs <= command_programs(command)
    if command.startswith("format"):
        assert "rm" not in command_programs(command)


def test_command_uses_fails_closed() -> None:
    uses = command_uses("rm")
    assert uses({"command": "rm -rf /tmp/x"})
    assert not uses({"command": "ls -la"})
    assert uses({"command": 'eval "r""m x"'})  # cannot see through: counts as using it
    with pytest.raises(ConfigurationError):
        command_uses()


def test_bad_configuration_is_refused_at_build_time(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MISSING_TOKEN", raising=False)
    with pytest.raises(ConfigurationError, match="not 'none', 'loopback'"):
        shell_tool(ws, network="internet", sandbox="none")
    with pytest.raises(ConfigurationError, match="not a host name"):
        shell_tool(ws, network=["exa mple.com"], sandbox="none")
    with pytest.raises(ConfigurationError, match=r"\$MISSING_TOKEN\) is not set"):
        shell_tool(ws, secrets=[Secret("MISSING_TOKEN")], sandbox="none")
    with pytest.raises(ConfigurationError, match="sandbox='docker'"):
        shell_tool(ws, sandbox="docker")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="finite number above 0"):
        Limits(timeout=float("nan"))
    with pytest.raises(ConfigurationError, match="plain name"):
        ws.sub("../up")
