"""A demo graph on LangGraph Server (`langgraph dev`), driven by the official SDK.

run → interrupt (the ApprovalRequest is in the thread state) → resume with a Decision
through ``Command(resume=...)`` → completion, with the refund made exactly once and
the approval recorded in the ledger named by ``PODIUM_LEDGER``.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from podium.demos import DEMOS

ROOT = Path(__file__).resolve().parents[2]
REQUEST = "Order A-1002 arrived broken. Please refund the 250 dollars."


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ok(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"langgraph dev exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/ok", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"langgraph dev did not answer /ok in {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[dict[str, Any]]:
    config = tmp_path / "langgraph.json"
    config.write_text(
        json.dumps(
            {
                "dependencies": [str(ROOT)],
                "graphs": {"support": str(ROOT / "tests/deploy/served_support.py") + ":graph"},
                "env": {},
            }
        )
    )
    port = _free_port()
    log = tmp_path / "server.log"
    env = {
        **os.environ,
        "PODIUM_HOME": str(tmp_path / "home"),
        "PODIUM_LEDGER": str(tmp_path / "ledger.sqlite"),
        "PYTHONPATH": str(ROOT / "tests/demos"),
        "LANGSMITH_TRACING": "false",
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    }
    exe = Path(sys.executable).with_name("langgraph")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(exe),
                "dev",
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-browser",
                "--no-reload",
            ],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ok(url, proc, log)
        yield {
            "url": url,
            "home": tmp_path / "home",
            "ledger": tmp_path / "ledger.sqlite",
            "log": log,
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_run_interrupt_resume_with_the_sdk(server: dict[str, Any]) -> None:
    from langgraph_sdk import get_sync_client

    with get_sync_client(url=server["url"]) as client:
        drive_the_support_desk(client, server)


def drive_the_support_desk(client: Any, server: dict[str, Any]) -> None:
    thread = client.threads.create()["thread_id"]
    client.runs.wait(thread, "support", input={"messages": [{"role": "user", "content": REQUEST}]})
    state = client.threads.get_state(thread)
    [pending] = state["interrupts"]
    request = pending["value"]
    assert request["type"] == "podium.approval_request"
    assert (request["agent"], request["tool"]) == ("billing", "issue_refund")
    assert request["args"] == {"order_id": "A-1002", "amount": 250}
    assert DEMOS["support"].effects(server["home"])["refunds"] == []

    decision = {"action": "approve", "by": "finance-lead"}
    final = client.runs.wait(thread, "support", command={"resume": {pending["id"]: decision}})
    assert isinstance(final, dict)
    assert final["messages"][-1]["content"] == "I refunded 250 dollars on A-1002 and emailed you."
    refunds = DEMOS["support"].effects(server["home"])["refunds"]
    assert [(r["order_id"], r["amount"]) for r in refunds] == [("A-1002", 250)]
    assert client.threads.get_state(thread)["interrupts"] == []

    # a replayed resume with the same (now stale) interrupt id changes nothing
    client.runs.wait(thread, "support", command={"resume": {pending["id"]: decision}})
    assert len(DEMOS["support"].effects(server["home"])["refunds"]) == 1
    with sqlite3.connect(server["ledger"]) as db:
        rows = db.execute("SELECT status, decided_by FROM podium_approvals").fetchall()
    assert rows == [("decided", "finance-lead")]
