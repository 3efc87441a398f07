"""LangSmith tracing by its usual environment variables, against a local endpoint."""

from __future__ import annotations

import gzip
import http.server
import json
import re
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from langchain_core.messages import AIMessage
from langchain_core.tracers.langchain import wait_for_all_tracers

from podium import Agent
from podium.graphs import create_manager_graph
from podium.testing import ScriptedChatModel


class Collector(http.server.BaseHTTPRequestHandler):
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        type(self).bodies.append(self.path.encode() + b"\n" + body)
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"batch_ingest_config": {}}).encode())

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def endpoint() -> Iterator[str]:
    Collector.bodies = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


_PART = re.compile(
    rb'name="(?:post|patch)\.([0-9a-f-]+)"\r?\nContent-Type: application/json\r?\n'
    rb"Content-Length: (\d+)\r?\n\r?\n"
)


def parse_runs(bodies: list[bytes]) -> list[dict[str, Any]]:
    """The run records (not their inputs/outputs parts) of multipart ingest requests."""
    runs: dict[str, dict[str, Any]] = {}
    for body in bodies:
        for match in _PART.finditer(body):
            start = match.end()
            record = json.loads(body[start : start + int(match.group(2))])
            runs.setdefault(record["id"], {}).update(record)
    return [r for r in runs.values() if "name" in r]


def run_manager() -> None:
    boss = Agent(
        name="boss",
        model=ScriptedChatModel(
            [
                AIMessage(
                    "", tool_calls=[{"name": "billing", "args": {"task": "check A"}, "id": "d"}]
                ),
                "Done.",
            ]
        ),
    )
    billing = Agent(name="billing", description="Billing", model=ScriptedChatModel(["A is paid."]))
    create_manager_graph(boss, [billing]).compile().invoke({"messages": [("user", "check A")]})


TRACING_VARS = (
    "LANGSMITH_TRACING",
    "LANGSMITH_TRACING_V2",
    "LANGCHAIN_TRACING",
    "LANGCHAIN_TRACING_V2",
)


def _tracing(monkeypatch: pytest.MonkeyPatch, on: bool) -> None:
    for var in TRACING_VARS:
        monkeypatch.setenv(var, "true" if on else "false")


def _reset_langsmith_caches() -> None:
    """Forget cached settings and the cached client, so a test can point them elsewhere."""
    import langsmith.run_trees as run_trees
    import langsmith.utils as ls_utils

    ls_utils.get_env_var.cache_clear()
    client = run_trees._CLIENT
    if client is not None:
        client.flush()
        client.session.close()
    run_trees._CLIENT = None


def test_run_tree_arrives_with_agent_names(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _tracing(monkeypatch, True)
    monkeypatch.setenv("LANGSMITH_ENDPOINT", endpoint)
    monkeypatch.setenv("LANGSMITH_API_KEY", "lsv2-test")
    monkeypatch.setenv("LANGSMITH_PROJECT", "podium-test")
    _reset_langsmith_caches()
    try:
        run_manager()
        wait_for_all_tracers()
    finally:
        _tracing(monkeypatch, False)
        _reset_langsmith_caches()
    runs = parse_runs(Collector.bodies)
    assert runs, "no trace reached the local endpoint"
    by_id = {r["id"]: r for r in runs}

    def ancestors(run: dict[str, Any]) -> list[str]:
        names = []
        while run.get("parent_run_id") in by_id:
            run = by_id[run["parent_run_id"]]
            names.append(run["name"])
        return names

    [root] = [r for r in runs if not r.get("parent_run_id")]
    assert root["name"] == "boss"  # the compiled graph runs under the manager's name
    [delegation] = [r for r in runs if r["name"] == "billing" and r["run_type"] == "tool"]
    assert "boss" in ancestors(delegation)
    inner_llm = [r for r in runs if r["run_type"] == "llm" and delegation["name"] in ancestors(r)]
    assert inner_llm, "the specialist's model call is nested under its delegation"
    assert {r["run_type"] for r in runs} >= {"chain", "llm", "tool"}


def test_nothing_is_sent_when_tracing_is_off(
    endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tracing(monkeypatch, False)
    monkeypatch.setenv("LANGSMITH_ENDPOINT", endpoint)
    monkeypatch.setenv("LANGSMITH_API_KEY", "lsv2-test")
    _reset_langsmith_caches()
    run_manager()
    wait_for_all_tracers()
    assert Collector.bodies == []
