"""Model faults against a real HTTP server: a tiny OpenAI-compatible server on 127.0.0.1.

Nothing in podium or langchain-openai is replaced: ``resolve_model("openai:...")``
builds its ``ChatOpenAI`` from ``OPENAI_BASE_URL``, which points at a
``http.server`` started by the test. The test stops the server mid-run (connection
refused), makes it answer 503, or makes it reply with invalid JSON.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.base import BaseCheckpointSaver
from pydantic import SecretStr

from podium import Agent, FailurePolicy, ModelUnavailableError, runs
from podium.graphs import create_agent_graph
from podium.models import resolve_model
from podium.tools import Decision, tool

Reply = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]


def completion(
    content: str | None = None, calls: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if calls:
        message["tool_calls"] = [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c["args"])},
            }
            for c in calls
        ]
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": "fake-model",
        "choices": [
            {"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }


class FakeOpenAI:
    """An OpenAI-compatible ``/v1/chat/completions`` endpoint that replays ``replies``.

    A reply is a JSON body (status 200), or a function of the request body returning
    ``(status, body)``. ``stop()`` closes the listening socket (clients then get
    *connection refused*); ``start()`` listens again on the same port.
    """

    def __init__(self, replies: list[dict[str, Any] | Reply]) -> None:
        self.replies = list(replies)
        self.requests: list[dict[str, Any]] = []
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAI:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                reply = fake.replies.pop(0) if fake.replies else {"error": "script used up"}
                status, payload = reply(body) if callable(reply) else (200, reply)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def servers() -> Iterator[list[FakeOpenAI]]:
    started: list[FakeOpenAI] = []
    yield started
    for server in started:
        server.stop()


def serve(servers: list[FakeOpenAI], *replies: dict[str, Any] | Reply) -> FakeOpenAI:
    server = FakeOpenAI(list(replies)).start()
    servers.append(server)
    return server


def cfg() -> dict[str, Any]:
    return {"configurable": {"thread_id": "faults"}}


def point_at(monkeypatch: pytest.MonkeyPatch, server: FakeOpenAI) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


LOOKUP = {"name": "lookup", "args": {"q": "order 7"}, "id": "call_1"}


def killing_lookup(server: FakeOpenAI, restart_after: float | None = None) -> Any:
    """A tool whose call takes the model server down (it dies mid-run).

    With ``restart_after``, an operator brings it back that many seconds later.
    """

    @tool(read_only=True)
    def lookup(q: str) -> str:
        """Look an order up."""
        server.stop()
        if restart_after is not None:
            threading.Timer(restart_after, server.start).start()
        return f"{q}: shipped"

    return lookup


def test_server_killed_mid_run_then_retried_after_restart(
    monkeypatch: pytest.MonkeyPatch, servers: list[FakeOpenAI]
) -> None:
    server = serve(servers, completion(calls=[LOOKUP]), completion("It shipped."))
    point_at(monkeypatch, server)
    policy = FailurePolicy(retries=6, backoff=0.1, backoff_factor=1.5, jitter=0.0)
    lookup = killing_lookup(server, restart_after=0.3)
    agent = Agent(name="a", model="openai:fake", tools=[lookup], failure=policy)
    app = create_agent_graph(agent).compile()
    out = app.invoke({"messages": [("user", "where is order 7?")]}, cfg())
    assert out["messages"][-1].content == "It shipped."
    assert out["usage"]["total"]["model_calls"] >= 3  # some attempts were refused
    assert len(server.requests) == 2


def test_server_answering_503_is_retried(
    monkeypatch: pytest.MonkeyPatch, servers: list[FakeOpenAI]
) -> None:
    busy: Reply = lambda body: (503, {"error": {"message": "overloaded"}})  # noqa: E731
    server = serve(servers, busy, busy, completion("fine"))
    point_at(monkeypatch, server)
    policy = FailurePolicy(retries=2, backoff=0.01)
    app = create_agent_graph(Agent(name="a", model="openai:fake", failure=policy)).compile()
    assert app.invoke({"messages": [("user", "hi")]}, cfg())["messages"][-1].content == "fine"
    assert len(server.requests) == 3


def test_server_killed_mid_run_falls_back_to_another_server(
    monkeypatch: pytest.MonkeyPatch, servers: list[FakeOpenAI]
) -> None:
    primary = serve(servers, completion(calls=[LOOKUP]))
    backup = serve(servers, completion("Shipped (backup)."))
    point_at(monkeypatch, primary)
    fallback = ChatOpenAI(
        model="backup", base_url=backup.url, api_key=SecretStr("sk-test"), max_retries=0
    )
    policy = FailurePolicy(retries=1, backoff=0.01, fallbacks=[fallback])
    agent = Agent(name="a", model="openai:fake", tools=[killing_lookup(primary)], failure=policy)
    out = create_agent_graph(agent).compile().invoke({"messages": [("user", "order 7?")]}, cfg())
    assert out["messages"][-1].content == "Shipped (backup)."
    assert len(backup.requests) == 1
    # the fallback saw the whole conversation, tool result included
    assert any(m.get("role") == "tool" for m in backup.requests[0]["messages"])


def test_server_killed_mid_run_escalates_and_resumes(
    monkeypatch: pytest.MonkeyPatch,
    servers: list[FakeOpenAI],
    checkpointer: BaseCheckpointSaver[Any],
) -> None:
    server = serve(servers, completion(calls=[LOOKUP]), completion("It shipped."))
    point_at(monkeypatch, server)
    policy = FailurePolicy(retries=1, backoff=0.01)
    agent = Agent(name="a", model="openai:fake", tools=[killing_lookup(server)], failure=policy)
    app = create_agent_graph(agent).compile(checkpointer=checkpointer)
    paused = app.invoke({"messages": [("user", "order 7?")]}, cfg())
    assert "__interrupt__" in paused
    [request] = runs.pending(app, cfg())
    assert request.tool == "model"
    assert request.args["attempts"] == 2
    assert "Connection error" in request.args["error"]
    assert request.args["models"] == ["openai:fake"]
    server.start()  # fixed; a human says "try again"
    out = runs.decide(app, cfg(), {request.id: Decision.approve(by="ops")})
    assert out["messages"][-1].content == "It shipped."
    kinds = [type(m).__name__ for m in out["messages"]]
    assert kinds == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]


def test_server_down_without_policy_is_a_clear_error_and_the_run_resumes(
    monkeypatch: pytest.MonkeyPatch,
    servers: list[FakeOpenAI],
    checkpointer: BaseCheckpointSaver[Any],
) -> None:
    server = serve(servers, completion(calls=[LOOKUP]), completion("It shipped."))
    point_at(monkeypatch, server)
    model = resolve_model("openai:fake").model_copy(update={"max_retries": 0})
    agent = Agent(name="a", model=model, tools=[killing_lookup(server)])
    app = create_agent_graph(agent).compile(checkpointer=checkpointer)
    with pytest.raises(ModelUnavailableError, match="could not reach its model"):
        app.invoke({"messages": [("user", "order 7?")]}, cfg())
    assert app.get_state(cfg()).next == ("model",)
    server.start()
    out = runs.resume(app, cfg())
    assert out["messages"][-1].content == "It shipped."


def test_invalid_json_replies_are_repaired_then_escalated(
    monkeypatch: pytest.MonkeyPatch,
    servers: list[FakeOpenAI],
) -> None:
    answer = json.dumps({"tool": "final_answer", "args": {"answer": "ok"}})
    server = serve(servers, completion("{not json"), completion('{"tool": 5}'), completion(answer))
    point_at(monkeypatch, server)
    policy = FailurePolicy(max_invalid_replies=2)
    agent = Agent(name="a", model="openai:fake", tool_calling="json", failure=policy)
    from langgraph.checkpoint.memory import InMemorySaver

    app = create_agent_graph(agent).compile(checkpointer=InMemorySaver())
    app.invoke({"messages": [("user", "hi")]}, cfg())
    [request] = runs.pending(app, cfg())
    assert request.args["kind"] == "invalid_output"
    # the first invalid reply was sent back as an error tool message (a repair retry)
    second = server.requests[1]["messages"]
    assert "not valid JSON" in json.dumps(second)
    state = app.get_state(cfg()).values["messages"]
    assert sum(isinstance(m, ToolMessage) and m.status == "error" for m in state) == 1
    out = runs.decide(app, cfg(), {request.id: Decision.approve(by="ops")})
    assert out["messages"][-1].content == "ok"
    assert len(server.requests) == 3
