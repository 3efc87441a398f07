"""A demo graph on LangGraph Server (`langgraph dev`), driven by the official clients.

* langgraph-sdk: run → interrupt (the ApprovalRequest is in the thread state) → resume
  with a Decision through ``Command(resume=...)`` → completion, with the refund made
  exactly once and the approval recorded in the ledger named by ``PODIUM_LEDGER``;
  new input on a waiting thread is refused with its error shown to the client, or,
  opted in, supersedes the pending call.
* one run per thread: the server's own ``multitask_strategy="interrupt"`` starts the
  new run once the interrupted one let go of podium's lease, and a served run waits
  while a process outside the server (sharing ``PODIUM_LEDGER``) holds the thread.
* a2a-sdk (the server's ``/a2a/{assistant_id}`` JSON-RPC endpoint): a task that waits
  for a human is ``input-required`` with the request in an artifact; a data part
  ``{"resume": <Decision JSON>}`` decides it; a text reply or a new message never
  drops it.
* ``langgraph dev`` with auto-reload, as the README starts it: podium's files sit
  outside the folder it watches, so a run neither reloads it nor fills its log.
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
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver, Client, ClientConfig, ClientFactory
from a2a.helpers import (
    get_artifact_text,
    get_data_parts,
    get_message_text,
    new_data_part,
    new_message,
    new_text_part,
)
from a2a.types import GetTaskRequest, Role, SendMessageRequest, Task, TaskState
from a2a.utils.errors import UnsupportedOperationError
from customers import FOLLOW_UP, REFUND, REFUND_BY_A2A, REFUND_SUPERSEDED
from langgraph_sdk import get_client, get_sync_client

from podium.demos import DEMOS
from podium.tools import MCPServer, mcp_tools, traits_of
from podium.tools import _mcp_sessions as sessions

ROOT = Path(__file__).resolve().parents[2]
APPROVE = {"action": "approve", "by": "finance-lead"}


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


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """``langgraph dev`` serving the support demo (and the graphs a test adds: indirect
    parametrization with ``{name: "tests/deploy/module.py"}``)."""
    extra: dict[str, str] = getattr(request, "param", {})
    config = tmp_path / "langgraph.json"
    config.write_text(
        json.dumps(
            {
                "dependencies": [str(ROOT)],
                "graphs": {
                    "support": str(ROOT / "tests/deploy/served_support.py") + ":graph",
                    **{name: str(ROOT / path) + ":graph" for name, path in extra.items()},
                },
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
        # the checkout under test, not whatever podium the venv has installed
        "PYTHONPATH": os.pathsep.join(
            str(ROOT / p) for p in ("src", "tests/demos", "tests/deploy")
        ),
        "PODIUM_EXPECT_SRC": str(ROOT / "src"),
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
        _stop(proc)


def test_run_interrupt_resume_with_the_sdk(server: dict[str, Any]) -> None:
    with get_sync_client(url=server["url"]) as client:
        drive_the_support_desk(client, server)


def drive_the_support_desk(client: Any, server: dict[str, Any]) -> None:
    thread = client.threads.create()["thread_id"]
    client.runs.wait(thread, "support", input=_says(REFUND))
    state = client.threads.get_state(thread)
    [pending] = state["interrupts"]
    request = pending["value"]
    assert request["type"] == "podium.approval_request"
    assert (request["agent"], request["tool"]) == ("billing", "issue_refund")
    assert request["args"] == {"order_id": "A-1002", "amount": 250}
    assert DEMOS["support"].effects(server["home"])["refunds"] == []
    # the operator's CLI, in another process, sees the served thread from the file alone
    [listed] = _cli(server, "pending", "--json")
    assert (listed["thread"], listed["id"]) == (thread, request["id"])
    threads = {t["thread"]: t for t in _cli(server, "threads", "--json")}
    assert threads[thread]["status"] == "waiting"

    decision = {"action": "approve", "by": "finance-lead"}
    final = client.runs.wait(thread, "support", command={"resume": {pending["id"]: decision}})
    assert isinstance(final, dict)
    assert final["messages"][-1]["content"] == "I refunded 250 dollars on A-1002 and emailed you."
    refunds = DEMOS["support"].effects(server["home"])["refunds"]
    assert [(r["order_id"], r["amount"]) for r in refunds] == [("A-1002", 250)]
    assert client.threads.get_state(thread)["interrupts"] == []
    events = _cli(server, "trace", thread, "--json")
    kinds = {e["kind"] for e in events}
    assert {"model", "tool", "approval_requested", "approval_decided"} <= kinds
    assert {e["name"] for e in events if e["kind"] == "tool"} >= {"issue_refund"}
    assert _cli(server, "threads", "--json")[0]["status"] == "done"

    # a replayed resume with the same (now stale) interrupt id changes nothing
    client.runs.wait(thread, "support", command={"resume": {pending["id"]: decision}})
    assert len(DEMOS["support"].effects(server["home"])["refunds"]) == 1
    with sqlite3.connect(server["ledger"]) as db:
        rows = db.execute("SELECT status, decided_by FROM podium_approvals").fetchall()
    assert rows == [("decided", "finance-lead")]


def _cli(server: dict[str, Any], *args: str) -> Any:
    """``podium ARGS --db LEDGER`` in a new process; its JSON output."""
    exe = Path(sys.executable).with_name("podium")
    done = subprocess.run(
        [str(exe), *args, "--db", str(server["ledger"])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _says(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def _refunds(server: dict[str, Any]) -> list[tuple[str, int]]:
    return [
        (r["order_id"], r["amount"]) for r in DEMOS["support"].effects(server["home"])["refunds"]
    ]


def _approvals(server: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any] | None]]:
    """``{request id: (status, decision)}`` from the ledger named by ``PODIUM_LEDGER``."""
    with closing(sqlite3.connect(server["ledger"])) as db:
        rows = db.execute("SELECT request_id, status, decision FROM podium_approvals").fetchall()
    return {
        rid: (status, json.loads(decision) if decision else None) for rid, status, decision in rows
    }


def test_new_input_on_a_waiting_thread_with_the_sdk(server: dict[str, Any]) -> None:
    with get_sync_client(url=server["url"]) as client:
        # refused: the run fails with podium's message, and nothing changes
        thread = client.threads.create()["thread_id"]
        client.runs.wait(thread, "support", input=_says(REFUND))
        before = client.threads.get_state(thread)
        [pending] = before["interrupts"]
        request_id = pending["value"]["id"]
        refused = (
            f"Thread {thread!r} is waiting for a human: {request_id} (billing wants "
            "issue_refund, approval). New input would leave those calls without an answer, "
            "so it was refused; nothing changed. Fix: Decide them first"
        )
        with pytest.raises(Exception) as raised:  # noqa: PT011 - the SDK raises a bare Exception
            client.runs.wait(thread, "support", input=_says(FOLLOW_UP))
        assert type(raised.value) is Exception
        assert str(raised.value).startswith(f"PendingRequestsError: {refused}")
        failed = client.runs.wait(thread, "support", input=_says(FOLLOW_UP), raise_error=False)
        assert isinstance(failed, dict)
        assert failed["__error__"]["error"] == "PendingRequestsError"
        assert failed["__error__"]["message"].startswith(refused)
        steering = {**_says(FOLLOW_UP), "active_agent": "billing"}
        failed = client.runs.wait(thread, "support", input=steering, raise_error=False)
        assert isinstance(failed, dict)
        assert failed["__error__"]["error"] == "InvalidInputError"
        assert failed["__error__"]["message"].startswith("the input sets 'active_agent'")

        after = client.threads.get_state(thread)
        assert (after["checkpoint"], after["values"]) == (before["checkpoint"], before["values"])
        assert after["interrupts"] == before["interrupts"]
        # the server marks the thread by its last run, though it still waits for a human
        assert client.threads.get(thread)["status"] == "error"
        assert _refunds(server) == []

        final = client.runs.wait(thread, "support", command={"resume": {pending["id"]: APPROVE}})
        assert isinstance(final, dict)
        assert (
            final["messages"][-1]["content"] == "I refunded 250 dollars on A-1002 and emailed you."
        )
        assert _refunds(server) == [("A-1002", 250)]

        # opted in: the new input rejects the pending call, then runs
        other = client.threads.create()["thread_id"]
        client.runs.wait(other, "support", input=_says(REFUND_SUPERSEDED))
        [superseded] = client.threads.get_state(other)["interrupts"]
        final = client.runs.wait(
            other,
            "support",
            input=_says(FOLLOW_UP),
            config={"configurable": {"podium_pending": "supersede"}},
        )
        assert isinstance(final, dict)
        messages = final["messages"]
        assert [m["content"] for m in messages[-3:]] == [
            "I did not refund A-1003.",
            FOLLOW_UP,
            "You paid 120 dollars for the wifi router on A-1003; nothing was refunded.",
        ]
        asked = [c["id"] for m in messages for c in m.get("tool_calls") or []]
        results = {m["tool_call_id"]: m["content"] for m in messages if m["type"] == "tool"}
        assert sorted(asked) == sorted(results) == ["b1", "b2", "h1"]
        assert "superseded by new input" in results["b2"]
        assert client.threads.get_state(other)["interrupts"] == []
        assert client.threads.get(other)["status"] == "idle"
    assert _refunds(server) == [("A-1002", 250)]
    assert _approvals(server) == {
        request_id: ("decided", APPROVE),
        superseded["value"]["id"]: (
            "decided",
            {"action": "reject", "by": "podium", "reason": "superseded by new input"},
        ),
    }


async def _send(
    client: Client, part: Any, *, context: str | None = None, task: str | None = None
) -> Task:
    """Send one user message over A2A; the server answers ``SendMessage`` with the task."""
    message = new_message([part], context_id=context, task_id=task, role=Role.ROLE_USER)
    [event] = [e async for e in client.send_message(SendMessageRequest(message=message))]
    return event.task


async def test_decisions_over_a2a(server: dict[str, Any]) -> None:
    async with httpx.AsyncClient(timeout=60) as http, get_client(url=server["url"]) as langgraph:
        [assistant] = await langgraph.assistants.search(graph_id="support")
        card = await A2ACardResolver(http, server["url"]).get_agent_card(
            f"/.well-known/agent-card.json?assistant_id={assistant['assistant_id']}"
        )
        # SendMessage rather than the stream: one reply, the task as it stands
        client = ClientFactory(ClientConfig(streaming=False, httpx_client=http)).create(card)

        # a refund that waits: input-required, with the ApprovalRequest in an artifact
        task = await _send(client, new_text_part(REFUND))
        assert task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
        [asked] = get_data_parts(task.artifacts[0].parts)  # {"id": interrupt id, "value": ...}
        request = asked["value"]
        assert request["type"] == "podium.approval_request"
        assert (request["agent"], request["tool"]) == ("billing", "issue_refund")
        assert request["args"] == {"order_id": "A-1002", "amount": 250}  # 250.0: protobuf

        # a text reply on the task is a resume with the text: refused, asked again
        again = await _send(
            client, new_text_part("Yes, go ahead."), context=task.context_id, task=task.id
        )
        assert (again.id, again.status.state) == (task.id, TaskState.TASK_STATE_INPUT_REQUIRED)
        [reasked] = get_data_parts(again.artifacts[0].parts)
        assert reasked["value"]["id"] == request["id"]
        assert reasked["value"]["refused"] == {
            "decision": "Yes, go ahead.",
            "error": "A decision must be a podium Decision or its JSON form, got str: "
            "'Yes, go ahead.'.",
        }
        assert _refunds(server) == []
        assert _approvals(server)[request["id"]] == ("pending", None)

        # a data part {"resume": <Decision JSON>} decides it
        done = await _send(
            client, new_data_part({"resume": APPROVE}), context=task.context_id, task=task.id
        )
        assert (done.id, done.status.state) == (task.id, TaskState.TASK_STATE_COMPLETED)
        reply = get_artifact_text(done.artifacts[0])
        assert reply == "I refunded 250 dollars on A-1002 and emailed you."
        assert _refunds(server) == [("A-1002", 250)]
        assert _approvals(server)[request["id"]] == ("decided", APPROVE)

        # a new message in a waiting context (no taskId) is new input: refused
        waiting = await _send(client, new_text_part(REFUND_BY_A2A))
        [asked] = get_data_parts(waiting.artifacts[0].parts)
        new = await _send(
            client, new_text_part("Hello? Is my refund done?"), context=waiting.context_id
        )
        assert (new.context_id, new.status.state) == (
            waiting.context_id,
            TaskState.TASK_STATE_FAILED,
        )
        assert new.id != waiting.id
        # A2A shows the error's type only
        assert get_message_text(new.status.message) == (
            "Error executing assistant: PendingRequestsError"
        )
        # the server now counts the waiting task as completed (its context's last run
        # failed) and refuses to resume it over A2A ...
        with pytest.raises(UnsupportedOperationError, match="A terminal task cannot accept"):
            await _send(
                client,
                new_data_part({"resume": APPROVE}),
                context=waiting.context_id,
                task=waiting.id,
            )
        got = await client.get_task(GetTaskRequest(id=waiting.id))
        assert got.status.state == TaskState.TASK_STATE_COMPLETED
        # ... but nothing was dropped: the request waits, and the SDK decides it
        [pending] = (await langgraph.threads.get_state(waiting.context_id))["interrupts"]
        assert pending["value"]["id"] == asked["value"]["id"]
        assert _approvals(server)[asked["value"]["id"]] == ("pending", None)
        assert _refunds(server) == [("A-1002", 250)]
        final = await langgraph.runs.wait(
            waiting.context_id, "support", command={"resume": {pending["id"]: APPROVE}}
        )
        assert isinstance(final, dict)
        assert (
            final["messages"][-1]["content"] == "I refunded 120 dollars on A-1003 and emailed you."
        )
        assert _refunds(server) == [("A-1002", 250), ("A-1003", 120)]
        await client.close()


def _status(client: Any, thread: str, run: dict[str, Any]) -> str:
    return str(client.runs.get(thread, run["run_id"])["status"])


def _texts(client: Any, thread: str) -> list[str]:
    return [m["content"] for m in client.threads.get_state(thread)["values"].get("messages", [])]


@pytest.mark.parametrize("server", [{"slow": "tests/deploy/served_slow.py"}], indirect=True)
def test_served_runs_and_podiums_lease_compose(server: dict[str, Any]) -> None:
    from podium.checkpoints import SQLiteLedger
    from podium.tools._lease import Claimant, Multitask, release

    with (
        get_sync_client(url=server["url"]) as client,
        closing(SQLiteLedger(server["ledger"])) as ledger,
    ):
        thread = client.threads.create()["thread_id"]
        first = client.runs.create(thread, "slow", input=_says("one"))
        deadline = time.monotonic() + 60
        while (ledger.thread(thread) is None or ledger.thread(thread).holder is None) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.05)
        assert ledger.thread(thread).holder is not None  # the served run holds the thread
        # the server interrupts the first run for the second; podium lets it wait for the
        # interrupted run's lease instead of refusing it
        second = client.runs.create(
            thread, "slow", input=_says("two"), multitask_strategy="interrupt"
        )
        client.runs.join(thread, second["run_id"])
        assert (_status(client, thread, first), _status(client, thread, second)) == (
            "interrupted",
            "success",
        )
        assert _texts(client, thread)[-2:] == ["two", "answer to two"]

        # a process outside the server holds the thread: the served run waits for it
        taken = Claimant(ledger, thread, Multitask("reject", 0)).take()
        try:
            third = client.runs.create(thread, "slow", input=_says("three"))
            time.sleep(3.0)
            assert _status(client, thread, third) in ("pending", "running")
            assert "three" not in _texts(client, thread)  # it has not started
        finally:
            release(ledger, taken, "done")
        client.runs.join(thread, third["run_id"])
        assert _status(client, thread, third) == "success"
        assert _texts(client, thread)[-2:] == ["three", "answer to three"]
        assert ledger.thread(thread).holder is None


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def test_langgraph_dev_does_not_reload_or_log_changes_for_podiums_files(tmp_path: Path) -> None:
    """``langgraph dev`` as the README starts it -- auto-reload on, in the project folder.

    It watches that folder (uvicorn's reloader, through watchfiles) and logs "N changes
    detected" for every write in it; podium's files -- the served demos' databases
    (default home) and the ledger the README names -- are written elsewhere, so a run
    neither reloads the server nor adds a line to its log.
    """
    project, data = tmp_path / "project", tmp_path / "data"
    project.mkdir()
    (project / "langgraph.json").write_text(
        json.dumps(
            {
                "dependencies": [str(ROOT)],
                "graphs": {"support": str(ROOT / "tests/deploy/served_support.py") + ":graph"},
                "env": {},
            }
        )
    )
    ledger = data / "podium" / "ledger.sqlite"  # the README's ~/.local/share/podium/...
    env = {
        **{k: v for k, v in os.environ.items() if k != "PODIUM_HOME"},
        "XDG_DATA_HOME": str(data),
        "PODIUM_LEDGER": str(ledger),
        "PYTHONPATH": os.pathsep.join(
            str(ROOT / p) for p in ("src", "tests/demos", "tests/deploy")
        ),
        "PODIUM_EXPECT_SRC": str(ROOT / "src"),
        "LANGSMITH_TRACING": "false",
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGGRAPH_NO_VERSION_CHECK": "true",
    }
    port, log = _free_port(), tmp_path / "server.log"  # the log outside the watched folder
    exe = Path(sys.executable).with_name("langgraph")
    command = [str(exe), "dev", "--host", "127.0.0.1", "--port", str(port), "--no-browser"]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=project, env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ok(url, proc, log)
        time.sleep(1.5)  # let the start-up writes (LangGraph's own .langgraph_api) settle
        worker = _children(proc.pid)
        before = log.read_text()
        with get_sync_client(url=url) as client:
            thread = client.threads.create()["thread_id"]
            client.runs.wait(thread, "support", input=_says(REFUND))
            [pending] = client.threads.get_state(thread)["interrupts"]
            approve = {"resume": {pending["id"]: APPROVE}}
            final = client.runs.wait(thread, "support", command=approve)
        assert isinstance(final, dict)
        assert final["messages"][-1]["content"].startswith("I refunded 250 dollars")
        time.sleep(2.0)  # the run ledger writes every 0.2 s; watchfiles batches for ~0.3 s
        during = log.read_text()[len(before) :]
        assert _children(proc.pid) == worker, "the server process was replaced"
    finally:
        _stop(proc)
    assert "Reloading" not in during
    assert [line for line in during.splitlines() if "detected" in line] == []
    # podium wrote outside the project: the demo's refund and the ledger's decision
    home = data / "podium" / "served"
    assert [(r["order_id"], r["amount"]) for r in DEMOS["support"].effects(home)["refunds"]] == [
        ("A-1002", 250)
    ]
    with closing(sqlite3.connect(ledger)) as db:
        rows = db.execute("SELECT status, decided_by FROM podium_approvals").fetchall()
    assert rows == [("decided", "finance-lead")]
    assert {p.name for p in project.iterdir()} <= {"langgraph.json", ".langgraph_api"}


def test_the_servers_mcp_endpoint_runs_a_graph_statelessly_and_an_approval_fails_closed(
    server: dict[str, Any],
) -> None:
    """LangGraph Server's ``/mcp`` serves each graph as a tool, through podium's MCP client.

    A tool call there is a stateless run (``runs.wait`` on a throwaway thread, no
    checkpointer): a call that needs a human could never be decided, so podium refuses
    to ask -- the MCP client gets the run's error as the tool's error, the gated tool
    never runs, and no request is left pending for a thread that no longer exists.
    Graphs that need people are served through threads (the SDK) or A2A instead.
    """
    try:
        [tool] = mcp_tools(MCPServer("served", url=f"{server['url']}/mcp"))
        assert tool.name == "served_support_desk"  # the assistant (graph) name
        assert traits_of(tool).risk == "medium"  # the server says: not read-only, not destructive
        text = tool.invoke(_says(REFUND))
    finally:
        sessions.close_all()
    # the server's /mcp endpoint passes on the error's name, not its message
    assert text.endswith("reported an error from 'support_desk': HumanUnavailableError"), text
    assert _refunds(server) == []
    with get_sync_client(url=server["url"]) as client:
        assert client.threads.search() == []  # the run's thread was discarded
    assert _approvals(server) == {}  # nothing pending that nobody could decide
