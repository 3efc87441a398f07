"""The approve/resume cycle through the CLI, each decision in a new process."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from podium.cli import main

HERE = Path(__file__).parent
GRAPH = "refund_graph:build"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    effects = tmp_path / "effects.sqlite"
    monkeypatch.setenv("REFUND_EFFECTS", str(effects))
    monkeypatch.setenv("PODIUM_HOME", str(tmp_path / "home"))
    monkeypatch.syspath_prepend(str(HERE))
    return {**os.environ, "PYTHONPATH": str(HERE)}


def podium(
    env: dict[str, str], *args: str, stage: str = "resume"
) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("podium")
    return subprocess.run(
        [str(exe), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "REFUND_STAGE": stage},
        check=False,
    )


def refunds() -> int:
    path = Path(os.environ["REFUND_EFFECTS"])
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM refunds").fetchone()[0])


def test_run_pause_approve_in_new_processes(env: dict[str, str]) -> None:
    started = podium(env, "run", GRAPH, "refund A-1", "--thread", "t1", "--json", stage="start")
    assert started.returncode == 0, started.stderr
    report = json.loads(started.stdout)
    assert report["status"] == "waiting"
    [request] = report["pending"]
    assert request["tool"] == "issue_refund"
    assert refunds() == 0

    listed = podium(env, "pending", "t1", "--json")
    assert [r["id"] for r in json.loads(listed.stdout)] == [request["id"]]

    done = podium(env, "approve", "t1", request["id"], "--by", "alice", "--json")
    assert done.returncode == 0, done.stderr
    final = json.loads(done.stdout)
    assert final["status"] == "done"
    assert final["answer"] == "Refund done."
    assert refunds() == 1

    again = podium(env, "approve", "t1", request["id"], "--by", "alice")
    assert again.returncode == 1
    assert "already decided (approve by alice)" in again.stderr
    assert refunds() == 1


def test_human_readable_run_prints_the_commands(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REFUND_STAGE", "start")
    assert main(["run", GRAPH, "refund A-1", "--thread", "t2"]) == 0
    out = capsys.readouterr().out
    assert "[billing] calls issue_refund" in out
    assert "waiting for a human (approval)" in out
    assert "podium approve t2 apr_" in out
    # the request shows the arguments the tool would receive (validated: amount is a float)
    assert '--edit \'{"order_id": "A-1", "amount": 250.0}\'' in out
    monkeypatch.setenv("REFUND_STAGE", "resume")
    assert main(["reject", "t2", "--reason", "duplicate", "--by", "bo"]) == 0
    out = capsys.readouterr().out
    assert "a human (bo) rejected this call" in out
    assert refunds() == 0


def test_edit_respond_inspect_threads_trace_cost(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REFUND_STAGE", "start")
    main(["run", GRAPH, "refund", "--thread", "t3"])
    capsys.readouterr()
    assert main(["inspect", "t3", "--json"]) == 0
    info: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert info["status"] == "waiting"
    assert info["source"] == GRAPH
    assert info["graph"] == "billing"
    assert [r["tool"] for r in info["pending"]] == ["issue_refund"]
    assert info["messages"][0] == {"type": "human", "content": "refund"}
    monkeypatch.setenv("REFUND_STAGE", "resume")
    assert main(["approve", "t3", "--edit", '{"order_id": "A-1", "amount": 90}', "--by", "c"]) == 0
    assert "refunded 90.0 on A-1" in capsys.readouterr().out
    assert refunds() == 1
    assert main(["threads", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["thread"] == "t3"
    assert row["bytes"] > 0
    assert row["pending_approvals"] == 0
    assert main(["trace", "t3"]) == 0
    assert "approval_decided" in capsys.readouterr().out
    assert main(["cost", "--since", "1h"]) == 0
    assert "billing" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["approve", "ghost"], "Thread 'ghost' is not in"),
        (["resume", "ghost"], "Thread 'ghost' is not in"),
        (["trace", "ghost"], "Thread 'ghost' is not in"),
        (["run", "nope_module:x", "hi"], "Cannot load --graph 'nope_module:x'"),
        (["run", "refund_graph", "hi"], "must look like 'package.module:attribute'"),
        (["cost", "--since", "yesterday"], "neither a duration"),
    ],
)
def test_clear_errors(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(argv) == 1
    assert message in capsys.readouterr().err


def test_unknown_request_and_bad_edit(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REFUND_STAGE", "start")
    main(["run", GRAPH, "refund", "--thread", "t4"])
    capsys.readouterr()
    assert main(["approve", "t4", "apr_nope"]) == 1
    assert "Request 'apr_nope' is not pending on thread 't4'" in capsys.readouterr().err
    assert main(["approve", "t4", "--edit", "{bad json"]) == 1
    assert "--edit is not valid JSON" in capsys.readouterr().err
    assert refunds() == 0


def test_a_refused_edit_exits_non_zero_and_a_partial_edit_runs(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REFUND_STAGE", "start")
    main(["run", GRAPH, "refund", "--thread", "t5"])
    capsys.readouterr()
    monkeypatch.setenv("REFUND_STAGE", "resume")
    # the schema refuses it: nothing runs, the request stays pending, the command fails
    assert main(["approve", "t5", "--edit", '{"amount": "lots"}', "--by", "c"]) == 1
    assert "The run refused the decision" in capsys.readouterr().err
    assert main(["pending", "t5", "--json"]) == 0
    [pending] = json.loads(capsys.readouterr().out)
    assert "amount: Input should be a valid number" in pending["note"]
    assert refunds() == 0
    # the hint's partial form: merged onto the requested order id
    assert main(["approve", "t5", "--edit", '{"amount": 80}', "--by", "c"]) == 0
    assert "refunded 80.0 on A-1" in capsys.readouterr().out
    assert refunds() == 1


def test_a_request_of_one_thread_cannot_be_decided_on_another(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator who names the wrong thread decides nothing, on either thread."""
    monkeypatch.setenv("REFUND_STAGE", "start")
    for thread in ("ta", "tb"):
        assert main(["run", GRAPH, "refund", "--thread", thread]) == 0
    capsys.readouterr()
    assert main(["pending", "ta", "--json"]) == 0
    [request_a] = json.loads(capsys.readouterr().out)
    monkeypatch.setenv("REFUND_STAGE", "resume")
    assert main(["approve", "tb", request_a["id"], "--by", "alice"]) == 1
    assert f"Request {request_a['id']!r} is not pending on thread 'tb'" in capsys.readouterr().err
    assert refunds() == 0
    for thread in ("ta", "tb"):  # both still wait, undecided
        assert main(["pending", thread, "--json"]) == 0
        assert len(json.loads(capsys.readouterr().out)) == 1
    assert main(["approve", "ta", request_a["id"], "--by", "alice"]) == 0
    assert refunds() == 1
