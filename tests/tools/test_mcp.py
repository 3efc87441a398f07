"""MCP servers as governed tools, against real servers nobody on this project wrote.

mcp-server-time and mcp-server-git (PyPI) over stdio, the reference filesystem server
(npm, through npx), and the SDK's FastMCP serving a test server over streamable HTTP
and SSE on a loopback port. Every call goes through the one governed executor.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _mcp_fixtures import (
    HttpServer,
    call,
    commits,
    git_server,
    make_repo,
    npx_filesystem,
    results,
    time_server,
)
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver

from podium import Agent, ConfigurationError, ToolUnavailableError, runs
from podium.agents import is_transient
from podium.graphs import create_agent_graph, create_handoff_graph
from podium.testing import ScriptedChatModel
from podium.tools import Decision, MCPServer, Policy, Rule, ToolTraits, mcp_tools, traits_of
from podium.tools import _mcp_sessions as sessions
from podium.tools._mcp_adapter import endpoint_of


@pytest.fixture(scope="module", autouse=True)
def _close_sessions() -> Iterator[None]:
    yield
    sessions.close_all()  # stdio servers exit; nothing leaks into other modules


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    server = HttpServer(tmp_path_factory.mktemp("mcp-http")).start()
    yield server
    server.stop()


def agent_app(tools: list[Any], script: list[Any], **options: Any) -> Any:
    agent = Agent(name="worker", model=ScriptedChatModel(script), tools=tools)
    return create_agent_graph(agent, **options)


# -- stdio: mcp-server-time ----------------------------------------------------------------
def test_time_server_tools_are_named_and_traited_from_their_annotations() -> None:
    tools = {t.name: t for t in mcp_tools(time_server())}
    assert set(tools) == {"clock_get_current_time", "clock_convert_time"}
    # the server annotates both readOnlyHint=True, idempotentHint=True
    assert traits_of(tools["clock_get_current_time"]) == ToolTraits("low", True, True)
    assert tools["clock_convert_time"].metadata is not None
    assert tools["clock_convert_time"].metadata["mcp"] == {
        "server": "clock",
        "tool": "convert_time",
    }


def test_time_server_call_through_an_agent_sync_and_async_reuses_one_session() -> None:
    server = time_server(name="clock2")
    tools = mcp_tools(server)
    ask = call("clock2_get_current_time", {"timezone": "Asia/Tokyo"}, "t1")
    out = (
        agent_app(tools, [ask, "It is late in Tokyo."])
        .compile()
        .invoke({"messages": [("user", "time in Tokyo?")]})
    )
    answer = results(out["messages"])["t1"]
    assert answer.status == "success"
    assert '"timezone": "Asia/Tokyo"' in answer.content
    convert = call(
        "clock2_convert_time",
        {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"},
        "t2",
    )
    app = agent_app(tools, [convert, "21:00 in Tokyo."]).compile()
    out = asyncio.run(app.ainvoke({"messages": [("user", "noon UTC in Tokyo?")]}))
    assert "T21:00:00+09:00" in results(out["messages"])["t2"].content
    # one session (one server process) served the listing and both calls
    assert sessions.link(endpoint_of(server)).opened == 1


def test_arguments_are_checked_against_the_servers_schema_before_the_call() -> None:
    tools = mcp_tools(time_server())
    bad = AIMessage(
        "",
        tool_calls=[
            {"name": "clock_get_current_time", "args": {"timezone": "UTC", "tz": 1}, "id": "x1"},
            {"name": "clock_get_current_time", "args": {}, "id": "x2"},
            {"name": "clock_get_current_time", "args": {"timezone": 7}, "id": "x3"},
            {"name": "clock_get_current_time", "args": {"timezone": "Nowhere/X"}, "id": "x4"},
        ],
    )
    out = agent_app(tools, [bad, "sorry"]).compile().invoke({"messages": [("user", "t?")]})
    found = results(out["messages"])
    assert found["x1"].artifact == {"error": "unexpected_arguments", "executed": False}
    assert found["x2"].artifact == {"error": "malformed_arguments", "executed": False}
    assert "'timezone' is a required property" in found["x2"].content
    assert found["x3"].artifact == {"error": "malformed_arguments", "executed": False}
    assert "timezone: 7 is not of type 'string'" in found["x3"].content
    # valid for the schema, refused by the server: an error tool message, the run goes on
    assert found["x4"].status == "error"
    assert "MCP server 'clock' reported an error from 'get_current_time'" in found["x4"].content
    assert "Invalid timezone" in found["x4"].content
    assert out["messages"][-1].content == "sorry"


def test_a_killed_stdio_server_is_restarted_on_the_next_call(tmp_path: Path) -> None:
    server = MCPServer(
        "local",
        command=sys.executable,
        args=[str(Path(__file__).with_name("mcp_server.py")), "stdio", "0", str(tmp_path / "n")],
    )
    tools = {t.name: t for t in mcp_tools(server)}
    first = int(tools["local_pid"].invoke({}))
    os.kill(first, signal.SIGKILL)
    time.sleep(0.2)
    second = int(tools["local_pid"].invoke({}))  # read-only: reconnects and runs
    assert second != first
    assert sessions.link(endpoint_of(server)).opened == 2
    os.kill(second, signal.SIGKILL)
    time.sleep(0.2)
    assert "local_pid" in {t.name for t in mcp_tools(server)}  # listing reconnects too
    assert sessions.link(endpoint_of(server)).opened == 3


def test_a_server_killed_during_a_side_effecting_call_leaves_it_in_doubt(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    server = MCPServer(
        "local",
        command=sys.executable,
        args=[str(Path(__file__).with_name("mcp_server.py")), "stdio", "0", str(notes)],
    )
    tools = {t.name: t for t in mcp_tools(server)}
    pid = int(tools["local_pid"].invoke({}))
    script = [call("local_slow_note", {"text": "late", "seconds": 2}, "n1"), "Noted."]
    app = agent_app([tools["local_slow_note"]], script).compile(checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "doubt"}}
    killer = threading.Timer(0.5, os.kill, (pid, signal.SIGKILL))
    killer.start()
    with pytest.raises(ToolUnavailableError) as stopped:
        app.invoke({"messages": [("user", "note it")]}, cfg)
    assert stopped.value.reached
    assert "dropped the connection while a call was running" in str(stopped.value)
    assert "may or may not have taken effect" in str(stopped.value)
    # resumed: the server restarts, and a human says whether the dropped call took effect
    app.invoke(None, cfg)
    [request] = runs.pending(app, cfg)
    assert (request.kind, request.tool) == ("in_doubt", "local_slow_note")
    assert not notes.exists()
    out = runs.decide(app, cfg, {request.id: Decision.approve(by="ops")})  # run it again
    assert out["messages"][-1].content == "Noted."
    assert notes.read_text() == "late\n"


def test_sessions_close_when_the_process_exits(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from podium.tools import MCPServer, mcp_tools\n"
        f"s = MCPServer('local', command=sys.executable, args=[{str(Path(__file__).with_name('mcp_server.py'))!r}, 'stdio', '0', {str(tmp_path / 'n')!r}])\n"  # noqa: E501
        "tools = {t.name: t for t in mcp_tools(s)}\n"
        "print(tools['local_pid'].invoke({}), flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    pid = int(done.stdout.strip())
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists(), "the stdio server outlived its client"


# -- stdio: mcp-server-git -----------------------------------------------------------------
def test_git_server_traits_and_a_gated_commit_runs_once_after_approval(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    tools = {t.name: t for t in mcp_tools(git_server(repo))}
    assert traits_of(tools["repo_git_status"]).read_only
    assert traits_of(tools["repo_git_commit"]) == ToolTraits("medium", False, False)
    assert traits_of(tools["repo_git_reset"]).risk == "high"  # destructiveHint
    policy = Policy(rules=[Rule(tool="repo_git_commit", action="approve", reason="commits")])
    script = [
        call("repo_git_status", {"repo_path": str(repo)}, "s1"),
        call("repo_git_commit", {"repo_path": str(repo), "message": "Add notes"}, "c1"),
        "Committed.",
    ]
    granted = [tools["repo_git_status"], tools["repo_git_commit"]]
    app = agent_app(granted, script, policy=policy).compile(checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "git-1"}}
    out = app.invoke({"messages": [("user", "commit the notes")]}, cfg)
    assert "notes.txt" in results(out["messages"])["s1"].content
    [request] = runs.pending(app, cfg)
    assert (request.tool, request.args["message"], request.risk) == (
        "repo_git_commit",
        "Add notes",
        "medium",
    )
    assert commits(repo) == ["first"]  # waiting: nothing committed
    out = runs.decide(app, cfg, {request.id: Decision.approve(by="lead")})
    assert out["messages"][-1].content == "Committed."
    assert "Changes committed successfully" in results(out["messages"])["c1"].content
    assert commits(repo) == ["Add notes", "first"]
    runs.resume(app, cfg)  # resuming a finished thread acts on nothing
    assert commits(repo) == ["Add notes", "first"]


def test_an_ungranted_mcp_tool_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    tools = {t.name: t for t in mcp_tools(git_server(repo, include=["git_status", "git_commit"]))}
    assert set(tools) == {"repo_git_status", "repo_git_commit"}
    reader = Agent(
        name="reader",
        model=ScriptedChatModel(
            [call("repo_git_commit", {"repo_path": str(repo), "message": "sneaky"}, "c1"), "no"]
        ),
        tools=[tools["repo_git_status"]],
    )
    committer = Agent(
        name="committer", model=ScriptedChatModel([]), tools=[tools["repo_git_commit"]]
    )
    out = (
        create_handoff_graph([reader, committer], default_agent="reader")
        .compile()
        .invoke({"messages": [("user", "commit")]})
    )
    refusal = results(out["messages"])["c1"]
    assert refusal.artifact == {"error": "tool_not_granted", "executed": False}
    assert "agent 'reader' is not allowed to call tool 'repo_git_commit'" in refusal.content
    assert commits(repo) == ["first"]


def test_rules_name_mcp_tools_and_a_typo_is_a_build_error(tmp_path: Path) -> None:
    tools = mcp_tools(git_server(make_repo(tmp_path / "repo")))
    worker = Agent(name="w", model=ScriptedChatModel([]), tools=tools)
    create_agent_graph(worker, policy=Policy(rules=[Rule(tool="repo_git_reset", action="deny")]))
    with pytest.raises(ConfigurationError, match="'repo_git_rest'"):
        create_agent_graph(worker, policy=Policy(rules=[Rule(tool="repo_git_rest", action="deny")]))


def test_traits_overrides_and_untrusted_hints(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    tools = {
        t.name: t
        for t in mcp_tools(
            git_server(
                repo,
                traits={
                    "git_log": {"risk": "high"},
                    "git_commit": ToolTraits(risk="low", idempotent=True),
                },
            )
        )
    }
    assert traits_of(tools["repo_git_log"]) == ToolTraits("high", True, True)
    assert traits_of(tools["repo_git_commit"]) == ToolTraits("low", True, False)
    untrusted = {t.name: t for t in mcp_tools(git_server(repo, trust_hints=False, prefix="git2"))}
    assert traits_of(untrusted["git2_git_status"]) == ToolTraits("high", False, False)


def test_an_agent_takes_a_server_in_its_tools(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    worker = Agent(
        name="w",
        model=ScriptedChatModel([call("repo_git_log", {"repo_path": str(repo)}, "l1"), "ok"]),
        tools=[git_server(repo, include=["git_log"])],
    )
    assert worker.tool_names == ("repo_git_log",)
    out = create_agent_graph(worker).compile().invoke({"messages": [("user", "log")]})
    assert "first" in results(out["messages"])["l1"].content


# -- npm: the reference filesystem server ------------------------------------------------------
def test_filesystem_server_from_npm(tmp_path: Path) -> None:
    root = tmp_path / "files"
    root.mkdir()
    (root / "plan.txt").write_text("ship on friday\n")
    tools = {t.name: t for t in mcp_tools(npx_filesystem(root))}
    assert traits_of(tools["fs_read_text_file"]).read_only
    assert not traits_of(tools["fs_write_file"]).read_only
    policy = Policy(rules=[Rule(tool="fs_write_file", action="approve")])
    script = [
        call("fs_read_text_file", {"path": str(root / "plan.txt")}, "r1"),
        call("fs_read_text_file", {"path": "/etc/hostname"}, "r2"),
        call("fs_write_file", {"path": str(root / "done.txt"), "content": "shipped"}, "w1"),
        "Done.",
    ]
    granted = [tools["fs_read_text_file"], tools["fs_write_file"]]
    app = agent_app(granted, script, policy=policy).compile(checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "fs"}}
    out = app.invoke({"messages": [("user", "read the plan, then note it is shipped")]}, cfg)
    found = results(out["messages"])
    assert found["r1"].content == "ship on friday\n"
    assert found["r2"].status == "error"  # outside the allowed root: the server refuses
    assert "Access denied" in found["r2"].content
    [request] = runs.pending(app, cfg)
    assert not (root / "done.txt").exists()
    runs.decide(app, cfg, {request.id: Decision.approve(by="lead")})
    assert (root / "done.txt").read_text() == "shipped"


# -- streamable HTTP and SSE: the SDK's FastMCP on a loopback port ------------------------------
def test_http_results_text_structured_images_links_and_errors(web: HttpServer) -> None:
    tools = {t.name: t for t in mcp_tools(web.server())}
    assert "web_files_read" in tools  # "files.read": a dot is not allowed in model APIs
    script = [
        AIMessage(
            "",
            tool_calls=[
                {"name": "web_echo", "args": {"text": "hi", "times": 2}, "id": "e1"},
                {"name": "web_weather", "args": {"city": "Oslo"}, "id": "w1"},
                {"name": "web_picture", "args": {"caption": "a red dot"}, "id": "p1"},
                {"name": "web_report_link", "args": {}, "id": "l1"},
                {"name": "web_fail", "args": {"reason": "no"}, "id": "f1"},
                {"name": "web_files_read", "args": {"path": "a.txt"}, "id": "d1"},
            ],
        ),
        "ok",
    ]
    out = agent_app(list(tools.values()), script).compile().invoke({"messages": [("user", "go")]})
    found = results(out["messages"])
    assert found["e1"].content == "hi hi"
    assert found["w1"].artifact == {"structured_content": {"city": "Oslo", "celsius": 21.5}}
    assert '"celsius": 21.5' in found["w1"].content
    picture = found["p1"].content
    assert isinstance(picture, list)
    assert [b["type"] for b in picture] == ["text", "image"]
    assert picture[0]["text"] == "a red dot"
    assert (picture[1]["mime_type"], picture[1]["base64"][:8]) == ("image/png", "iVBORw0K")
    assert found["l1"].content == (
        "Resource link: report <file:///srv/report.txt> (text/plain): the weekly report"
    )
    assert found["f1"].status == "error"
    assert "cannot do that: no" in found["f1"].content
    assert found["d1"].content == "contents of a.txt"


def test_sse_transport(tmp_path: Path) -> None:
    server = HttpServer(tmp_path, transport="sse").start()
    try:
        tools = {t.name: t for t in mcp_tools(server.server("old"))}
        assert tools["old_echo"].invoke({"text": "over sse"}) == "over sse"
    finally:
        server.stop()


def test_a_slow_call_times_out_and_a_side_effecting_one_stays_in_doubt(web: HttpServer) -> None:
    tools = mcp_tools(web.server("quick", timeout=0.5, include=["slow", "slow_note"]))
    script = [
        AIMessage(
            "",
            tool_calls=[
                {"name": "quick_slow", "args": {"seconds": 8}, "id": "s1"},
                {"name": "quick_slow_note", "args": {"text": "late", "seconds": 8}, "id": "s2"},
            ],
        ),
        "gave up",
    ]
    app = agent_app(tools, script).compile(checkpointer=InMemorySaver())
    started = time.monotonic()
    out = app.invoke({"messages": [("user", "wait")]}, {"configurable": {"thread_id": "slow"}})
    assert time.monotonic() - started < 5  # the calls take 8 s: not waited for
    found = results(out["messages"])
    assert found["s1"].artifact == {"error": "tool_timeout", "executed": True}
    assert "did not finish within 0.5s" in found["s1"].content
    assert found["s2"].artifact == {"error": "tool_timeout", "executed": True, "in_doubt": True}
    assert "until a human settles this call" in found["s2"].content


def test_a_server_that_dies_mid_run_stops_it_clearly_and_it_resumes_once_back(
    tmp_path: Path,
) -> None:
    web = HttpServer(tmp_path).start()
    tools = mcp_tools(web.server("notes", include=["note"]))
    script = [
        call("notes_note", {"text": "one"}, "n1"),
        call("notes_note", {"text": "two"}, "n2"),
        "Both noted.",
    ]
    app = agent_app(tools, script).compile(checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "dies"}}
    original = ScriptedChatModel.invoke
    calls = []

    def kill_after_first(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:  # the model saw the first note; the server goes down now
            web.stop()
        return original(self, *args, **kwargs)

    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(ScriptedChatModel, "invoke", kill_after_first)
            with pytest.raises(ToolUnavailableError) as stopped:
                app.invoke({"messages": [("user", "note one and two")]}, cfg)
        error = stopped.value
        assert "MCP server 'notes'" in str(error)
        assert "cannot be reached" in str(error)
        assert "resume the run with app.invoke(None, config)" in str(error)
        assert error.server == "notes"
        assert not error.reached
        assert is_transient(error)
        assert web.noted() == ["one"]
        assert app.get_state(cfg).next == ("tools",)
        web.start()  # back, on the same port
        out = app.invoke(None, cfg)
        assert out["messages"][-1].content == "Both noted."
        assert web.noted() == ["one", "two"]  # each exactly once
    finally:
        web.stop()


def test_an_approval_given_while_the_server_is_down_stands_when_it_is_back(
    tmp_path: Path,
) -> None:
    web = HttpServer(tmp_path).start()
    try:
        tools = mcp_tools(web.server("gated", include=["note"]))
        policy = Policy(rules=[Rule(tool="gated_note", action="approve")])
        script = [call("gated_note", {"text": "ship it"}, "n1"), "Noted."]
        app = agent_app(tools, script, policy=policy).compile(checkpointer=InMemorySaver())
        cfg = {"configurable": {"thread_id": "outage"}}
        app.invoke({"messages": [("user", "note: ship it")]}, cfg)
        [request] = runs.pending(app, cfg)
        web.stop()
        with pytest.raises(ToolUnavailableError, match="MCP server 'gated'"):
            runs.decide(app, cfg, {request.id: Decision.approve(by="lead")})
        assert web.noted() == []
        web.start()
        out = app.invoke(None, cfg)  # the approval stands: no second request
        assert out["messages"][-1].content == "Noted."
        assert runs.pending(app, cfg) == []
        assert web.noted() == ["ship it"]
    finally:
        web.stop()


# -- build-time errors -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "git"}, "exactly one of command="),
        ({"name": "git", "command": "x", "url": "http://h/mcp"}, "exactly one of command="),
        ({"name": "9git", "command": "x"}, "must start with a letter"),
        ({"name": "git", "url": "ftp://h"}, "not an http:// or https:// URL"),
        ({"name": "git", "command": "x", "transport": "sse"}, "does not fit command="),
        ({"name": "git", "command": "x", "args": "--repo"}, "args must be a list of strings"),
        ({"name": "git", "command": "x", "timeout": 0}, "timeout=0 must be a number"),
        ({"name": "git", "command": "x", "prefix": "a.b"}, "prefix='a.b' may contain only"),
        (
            {"name": "git", "command": "x", "traits": {"t": {"colour": "red"}}},
            "is not a ToolTraits",
        ),
    ],
)
def test_invalid_server_settings_are_configuration_errors(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        MCPServer(**kwargs)


def test_name_clashes_and_unknown_tool_names_are_build_errors(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    with pytest.raises(ConfigurationError, match="two servers are named 'repo'"):
        mcp_tools(git_server(repo), git_server(repo))
    one = git_server(repo, prefix="", include=["git_log"])
    other = MCPServer(
        "other", command=sys.executable, args=list(one.args), prefix="", include=["git_log"]
    )
    with pytest.raises(ConfigurationError, match="'git_log' is tool 'git_log' of server 'other'"):
        mcp_tools(one, other)
    with pytest.raises(ConfigurationError, match=r"include names tool\(s\) \['git_lgo'\]"):
        mcp_tools(git_server(repo, include=["git_lgo"]))
    with pytest.raises(ConfigurationError, match=r"traits names tool\(s\) \['commit'\]"):
        mcp_tools(git_server(repo, traits={"commit": {"risk": "high"}}))
    with pytest.raises(ConfigurationError, match=r"traits\['git_log'\]=\{'risk': 'extreme'\}"):
        mcp_tools(git_server(repo, traits={"git_log": {"risk": "extreme"}}))
    with pytest.raises(ConfigurationError, match="takes MCPServer objects"):
        mcp_tools({"transport": "stdio", "command": "x"})  # type: ignore[arg-type]


def test_a_server_that_cannot_start_or_be_reached() -> None:
    with pytest.raises(ConfigurationError, match="cannot run '/no/such/server'"):
        mcp_tools(MCPServer("ghost", command="/no/such/server"))
    port = HttpServer(Path("/tmp")).port  # a free port nobody listens on
    with pytest.raises(ToolUnavailableError, match=r"MCP server 'down'.*cannot be reached"):
        mcp_tools(MCPServer("down", url=f"http://127.0.0.1:{port}/mcp", connect_timeout=5))
