"""A gated MCP call (a git commit through mcp-server-git) across SIGKILL and resume.

The commit is the side effect: the throwaway repository's ``git log`` tells exactly how
often the MCP server really committed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _mcp_fixtures import commits, make_repo

from _procs import run_app

APP = Path(__file__).with_name("mcp_crash_app.py")
APPROVE = '{"action": "approve", "by": "lead"}'


class Crash:
    def __init__(self, tmp: Path) -> None:
        self.db = tmp / "runs.sqlite"
        self.repo = make_repo(tmp / "repo")

    def run(self, action: str, *flags: str, expect_kill: bool = False) -> dict[str, Any]:
        return run_app(APP, str(self.db), str(self.repo), action, *flags, expect_kill=expect_kill)


@pytest.fixture
def crash(tmp_path: Path) -> Crash:
    return Crash(tmp_path)


def test_killed_while_waiting_for_approval_then_commits_once(crash: Crash) -> None:
    paused = crash.run("start", "--crash", "at_approval", expect_kill=True)
    [request] = paused["pending"]
    assert (request["tool"], request["args"]["message"]) == ("repo_git_commit", "Add notes")
    assert commits(crash.repo) == ["first"]
    done = crash.run("decide", "--decision", APPROVE)  # another process decides
    assert done["messages"][-1]["content"] == "Committed."
    assert commits(crash.repo) == ["Add notes", "first"]
    again = crash.run("resume")
    assert again["pending"] == []
    assert commits(crash.repo) == ["Add notes", "first"]


def test_killed_after_the_commit_before_the_step_was_saved_replays_it(crash: Crash) -> None:
    crash.run("start")
    crash.run("decide", "--decision", APPROVE, "--crash", "after_done", expect_kill=True)
    assert commits(crash.repo) == ["Add notes", "first"]  # the commit ran, then the kill
    resumed = crash.run("resume")
    assert resumed["messages"][-1]["content"] == "Committed."
    tool = next(m for m in resumed["messages"] if m["type"] == "tool")
    assert "Changes committed successfully" in tool["content"]  # the ledger's record
    assert commits(crash.repo) == ["Add notes", "first"]
