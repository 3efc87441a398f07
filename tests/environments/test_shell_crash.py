"""SIGKILL during a sandboxed command, then resume: a human is asked, nothing runs twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from env_helpers import processes_with

pytestmark = pytest.mark.sandbox

APP = Path(__file__).with_name("shell_crash_app.py")


def run(tmp: Path, action: str, *flags: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(APP), str(tmp / "runs.sqlite"), str(tmp / "ws"), action, *flags],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_killed_during_a_command_resumes_as_an_in_doubt_request(
    sandbox: str, tmp_path: Path
) -> None:
    directory = tmp_path / "ws" / "crash-shell"
    worker = subprocess.Popen(
        [sys.executable, str(APP), str(tmp_path / "runs.sqlite"), str(tmp_path / "ws"), "start"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not (directory / "started").exists():
        assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
        assert time.monotonic() < deadline, "the command never started"
        time.sleep(0.05)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    if worker.stderr is not None:
        worker.stderr.close()
    time.sleep(0.3)
    assert processes_with("1077") == []  # the sandbox died with its worker
    resumed = run(tmp_path, "resume")
    [request] = resumed["pending"]
    assert request["kind"] == "in_doubt"
    assert request["tool"] == "shell"
    assert "may or may not have taken effect" in request["reason"]
    assert (directory / "runs.txt").read_text() == "run\n"  # not run a second time
    answered = run(
        tmp_path,
        "decide",
        "--decision",
        '{"action": "respond", "message": "it was interrupted", "by": "ops"}',
    )
    assert answered["pending"] == []
    assert answered["messages"][-1]["content"] == "done"
    assert (directory / "runs.txt").read_text() == "run\n"
