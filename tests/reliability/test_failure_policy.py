"""FailurePolicy: retry with backoff, fallbacks, alternate agent, escalation, timeouts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.messages.tool import invalid_tool_call
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from reliability_doubles import (
    FlakyChatModel,
    bad_request,
    rate_limited,
    server_error,
    timed_out,
    unreachable,
)

from podium import (
    Agent,
    ConfigurationError,
    FailurePolicy,
    InvalidDecisionError,
    InvalidModelOutputError,
    ModelFailedError,
    ModelUnavailableError,
    runs,
)
from podium.agents import is_transient
from podium.graphs import (
    create_agent_graph,
    create_handoff_graph,
    create_manager_graph,
    create_parallel_graph,
)
from podium.testing import ScriptedChatModel
from podium.tools import Decision, tool

FAST = {"backoff": 0.0, "jitter": 0.0}


class Events(BaseCallbackHandler):
    """Collects podium run events (``podium.<kind>`` custom events)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if name.startswith("podium."):
            self.seen.append((name.removeprefix("podium."), dict(data)))

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [d for k, d in self.seen if k == kind]


def config(thread: str = "t", events: Events | None = None) -> dict[str, Any]:
    cfg: dict[str, Any] = {"configurable": {"thread_id": thread}}
    if events is not None:
        cfg["callbacks"] = [events]
    return cfg


def app_for(agent: Agent, saver: BaseCheckpointSaver[Any] | None = None) -> Any:
    return create_agent_graph(agent).compile(checkpointer=saver or InMemorySaver())


# -- classification and backoff ------------------------------------------------------
@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (rate_limited(), True),
        (server_error(503), True),
        (timed_out(), True),
        (unreachable(), True),
        (TimeoutError("slow"), True),
        (ConnectionResetError("reset"), True),
        (bad_request(), False),
        (ValueError("not json"), False),
        (KeyError("x"), False),
    ],
)
def test_transient_errors_are_classified(exc: BaseException, transient: bool) -> None:
    assert is_transient(exc) is transient


def test_backoff_is_exponential_capped_and_jittered() -> None:
    policy = FailurePolicy(backoff=1.0, backoff_factor=2.0, max_backoff=5.0, jitter=0.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]
    jittery = FailurePolicy(backoff=1.0, jitter=0.5)
    delays = {jittery.delay(1) for _ in range(50)}
    assert all(0.5 <= d <= 1.0 for d in delays)
    assert len(delays) > 1
    # a Retry-After header is honoured, up to max_backoff
    assert policy.delay(1, rate_limited(retry_after="3")) == 3.0
    assert policy.delay(1, rate_limited(retry_after="60")) == 5.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"retries": -1}, "retries"),
        ({"jitter": 2}, "jitter"),
        ({"model_timeout": 0}, "model_timeout"),
        ({"max_invalid_replies": 0}, "max_invalid_replies"),
        ({"retry_on": "ValueError"}, "retry_on"),
        ({"fallbacks": "local"}, "list of models"),
    ],
)
def test_policy_validates_its_fields(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        FailurePolicy(**kwargs)


# -- retries ---------------------------------------------------------------------------
def test_transient_errors_are_retried_with_backoff() -> None:
    model = FlakyChatModel(["done"], {0: rate_limited(), 1: server_error()})
    events = Events()
    agent = Agent(name="a", model=model, failure=FailurePolicy(backoff=0.05, jitter=0.0))
    out = app_for(agent).invoke({"messages": [("user", "hi")]}, config(events=events))
    assert out["messages"][-1].content == "done"
    assert model.count == 3
    gaps = [b - a for a, b in zip(model.times, model.times[1:], strict=False)]
    assert gaps[0] >= 0.05
    assert gaps[1] >= 0.1
    assert [e["attempt"] for e in events.kinds("retry")] == [2, 3]
    assert out["usage"]["total"]["model_calls"] == 3  # failed attempts count as calls


def test_validation_errors_are_not_retried_unless_asked() -> None:
    model = FlakyChatModel(["done"], {0: ValueError("bad output")})
    agent = Agent(name="a", model=model, failure=FailurePolicy(escalate=False, **FAST))
    with pytest.raises(ModelFailedError, match="bad output"):
        app_for(agent).invoke({"messages": [("user", "hi")]}, config())
    assert model.count == 1

    model = FlakyChatModel(["done"], {0: ValueError("bad output")})
    policy = FailurePolicy(retry_on=(ValueError,), escalate=False, **FAST)
    out = app_for(Agent(name="a", model=model, failure=policy)).invoke(
        {"messages": [("user", "hi")]}, config()
    )
    assert out["messages"][-1].content == "done"
    assert model.count == 2

    model = FlakyChatModel(["done"], {0: ValueError("bad output")})
    policy = FailurePolicy(retry_on=lambda e: "bad" in str(e), escalate=False, **FAST)
    out = app_for(Agent(name="a", model=model, failure=policy)).invoke(
        {"messages": [("user", "hi")]}, config()
    )
    assert out["messages"][-1].content == "done"


def test_exhausted_transient_retries_raise_model_unavailable_with_every_attempt() -> None:
    model = FlakyChatModel([], {"*": unreachable()})
    agent = Agent(name="a", model=model, failure=FailurePolicy(retries=2, escalate=False, **FAST))
    with pytest.raises(ModelUnavailableError, match=r"(?s)transient.*try 1.*try 2.*try 3"):
        app_for(agent).invoke({"messages": [("user", "hi")]}, config())
    assert model.count == 3


def test_without_a_policy_nothing_is_retried() -> None:
    model = FlakyChatModel(["x"], {0: rate_limited()})
    with pytest.raises(Exception, match="rate limited"):
        app_for(Agent(name="a", model=model)).invoke({"messages": [("user", "hi")]}, config())
    assert model.count == 1


# -- fallbacks -------------------------------------------------------------------------
def test_fallback_chain_after_retries() -> None:
    primary = FlakyChatModel([], {"*": server_error()})
    second = FlakyChatModel([], {"*": bad_request()})  # not transient: no retry, next model
    third = ScriptedChatModel(["from the third model"])
    events = Events()
    policy = FailurePolicy(retries=1, fallbacks=[second, third], **FAST)
    out = app_for(Agent(name="a", model=primary, failure=policy)).invoke(
        {"messages": [("user", "hi")]}, config(events=events)
    )
    assert out["messages"][-1].content == "from the third model"
    assert (primary.count, second.count) == (2, 1)
    assert [e["name"] for e in events.kinds("fallback")] == ["FlakyChatModel", "ScriptedChatModel"]


def test_fallback_specs_are_checked_at_build_time() -> None:
    policy = FailurePolicy(fallbacks=["openai:gpt-4.1-mini"])
    agent = Agent(name="a", model=ScriptedChatModel([]), failure=policy)
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        create_agent_graph(agent)


# -- escalation ------------------------------------------------------------------------
def failing_agent(**policy: Any) -> tuple[Agent, FlakyChatModel]:
    model = FlakyChatModel(["recovered"], {0: unreachable(), 1: unreachable()})
    return Agent(name="a", model=model, failure=FailurePolicy(retries=1, **FAST, **policy)), model


def test_escalation_is_a_pending_request_and_approve_retries(
    checkpointer: BaseCheckpointSaver[Any],
) -> None:
    agent, model = failing_agent()
    app = app_for(agent, checkpointer)
    cfg = config()
    paused = app.invoke({"messages": [("user", "hi")]}, cfg)
    assert "__interrupt__" in paused
    [request] = runs.pending(app, cfg)
    assert (request.kind, request.tool, request.agent) == ("escalation", "model", "a")
    assert request.args["attempts"] == 2
    assert request.args["models"] == ["FlakyChatModel"]
    assert "APIConnectionError" in request.args["error"]
    assert app.get_state(cfg).next == ("escalate",)  # the retries are behind us
    calls = model.count
    out = runs.decide(app, cfg, {request.id: Decision.approve(by="ops")})
    assert out["messages"][-1].content == "recovered"
    assert model.count == calls + 1  # resuming went straight to the decision
    assert not runs.pending(app, cfg)


def test_escalation_respond_becomes_the_answer() -> None:
    agent, model = failing_agent()
    app, cfg = app_for(agent), config()
    app.invoke({"messages": [("user", "hi")]}, cfg)
    [request] = runs.pending(app, cfg)
    out = runs.decide(app, cfg, {request.id: {"action": "respond", "message": "Sorry!", "by": "o"}})
    last = out["messages"][-1]
    assert (last.content, last.name) == ("Sorry!", "a")
    assert last.response_metadata["podium_stop"] == "escalation"
    assert model.count == 2


def test_escalation_reject_stops_with_a_clear_error() -> None:
    agent, _ = failing_agent()
    app, cfg = app_for(agent), config()
    app.invoke({"messages": [("user", "hi")]}, cfg)
    [request] = runs.pending(app, cfg)
    with pytest.raises(ModelFailedError, match="ops aborted the run: provider down"):
        runs.decide(app, cfg, {request.id: Decision.reject("provider down", by="ops")})


def test_escalation_edit_is_refused_and_asked_again() -> None:
    agent, _ = failing_agent()
    app, cfg = app_for(agent), config()
    app.invoke({"messages": [("user", "hi")]}, cfg)
    [request] = runs.pending(app, cfg)
    with pytest.raises(InvalidDecisionError, match="edit has nothing to change"):
        runs.decide(app, cfg, {request.id: Decision.edit({"x": 1}, by="ops")})
    [again] = runs.pending(app, cfg)
    assert again.id == request.id
    assert "edit has nothing to change" in again.note


async def test_escalation_works_under_ainvoke() -> None:
    agent, _ = failing_agent()
    app, cfg = app_for(agent), config()
    paused = await app.ainvoke({"messages": [("user", "hi")]}, cfg)
    [interrupt] = paused["__interrupt__"]
    from langgraph.types import Command

    out = await app.ainvoke(Command(resume={interrupt.id: {"action": "approve", "by": "o"}}), cfg)
    assert out["messages"][-1].content == "recovered"


# -- invalid structured replies ----------------------------------------------------------
def bad_json(n: int) -> AIMessage:
    return AIMessage(
        "", invalid_tool_calls=[invalid_tool_call(name=None, args="{", id=f"bad{n}", error="json")]
    )


def test_consecutive_invalid_replies_escalate_after_the_bound() -> None:
    model = ScriptedChatModel([bad_json(1), bad_json(2), "ok at last"])
    policy = FailurePolicy(max_invalid_replies=2)
    app, cfg = app_for(Agent(name="a", model=model, failure=policy)), config()
    app.invoke({"messages": [("user", "hi")]}, cfg)
    [request] = runs.pending(app, cfg)
    assert request.args["kind"] == "invalid_output"
    assert "2 replies in a row" in request.args["error"]
    # the first invalid reply went back to the model as an error tool message (a repair try)
    repairs = [m for m in app.get_state(cfg).values["messages"] if isinstance(m, ToolMessage)]
    assert len(repairs) == 1
    assert repairs[0].status == "error"
    out = runs.decide(app, cfg, {request.id: Decision.approve(by="ops")})
    assert out["messages"][-1].content == "ok at last"


def test_invalid_replies_without_escalation_raise() -> None:
    model = ScriptedChatModel([bad_json(1)])
    policy = FailurePolicy(max_invalid_replies=1, escalate=False)
    with pytest.raises(InvalidModelOutputError, match="1 replies in a row"):
        app_for(Agent(name="a", model=model, failure=policy)).invoke(
            {"messages": [("user", "hi")]}, config()
        )


# -- timeouts --------------------------------------------------------------------------
def test_model_timeout_is_transient_then_falls_back() -> None:
    slow = FlakyChatModel(["too late"], delay=6.0)
    policy = FailurePolicy(
        retries=0, model_timeout=0.1, fallbacks=[ScriptedChatModel(["fast"])], **FAST
    )
    start = time.monotonic()
    out = app_for(Agent(name="a", model=slow, failure=policy)).invoke(
        {"messages": [("user", "hi")]}, config()
    )
    assert out["messages"][-1].content == "fast"
    assert time.monotonic() - start < 4  # did not wait for the 6 s call


async def test_async_model_timeout_cancels_the_call() -> None:
    class Slow(FlakyChatModel):
        async def _agenerate(self, *args: Any, **kwargs: Any) -> Any:
            if self.count == 0:
                self._count += 1
                await asyncio.sleep(5)
            return self._generate(*args, **kwargs)

    model = Slow(["in time"])
    policy = FailurePolicy(retries=1, model_timeout=0.1, escalate=False, **FAST)
    start = time.monotonic()
    out = await app_for(Agent(name="a", model=model, failure=policy)).ainvoke(
        {"messages": [("user", "hi")]}, config()
    )
    assert out["messages"][-1].content == "in time"
    assert time.monotonic() - start < 4  # the 5 s call was cancelled


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_tool_timeout_becomes_an_error_tool_message(mode: str) -> None:
    @tool(read_only=True)
    def slow_lookup(q: str) -> str:
        """Look something up slowly."""
        time.sleep(6.0)
        return "late"

    @tool(read_only=True)
    async def aslow_lookup(q: str) -> str:
        """Look something up slowly."""
        await asyncio.sleep(5)
        return "late"

    chosen = slow_lookup if mode == "sync" else aslow_lookup
    call = {"name": chosen.name, "args": {"q": "x"}, "id": "c1"}
    model = ScriptedChatModel([AIMessage("", tool_calls=[call]), "gave up"])
    agent = Agent(name="a", model=model, tools=[chosen], failure=FailurePolicy(tool_timeout=0.1))
    app = app_for(agent)
    start = time.monotonic()
    if mode == "sync":
        out = app.invoke({"messages": [("user", "hi")]}, config())
    else:
        out = await app.ainvoke({"messages": [("user", "hi")]}, config())
    result = next(m for m in out["messages"] if isinstance(m, ToolMessage))
    assert result.status == "error"
    assert "did not finish within 0.1s" in result.content
    assert result.artifact == {"error": "tool_timeout", "executed": True}
    assert time.monotonic() - start < 4  # did not wait for the slow tool (5-6 s)
    assert out["messages"][-1].content == "gave up"


# -- alternate agent ---------------------------------------------------------------------
def test_handoff_alternate_takes_over_when_the_models_fail() -> None:
    down = FlakyChatModel([], {"*": server_error()})
    policy = FailurePolicy(retries=1, alternate="backup", **FAST)
    primary = Agent(name="primary", model=down, failure=policy)
    backup = Agent(name="backup", model=ScriptedChatModel(["backup answers"]))
    app = create_handoff_graph([primary, backup], default_agent="primary").compile(
        checkpointer=InMemorySaver()
    )
    out = app.invoke({"messages": [("user", "hi")]}, config())
    assert out["messages"][-1].content == "backup answers"
    assert out["active_agent"] == "backup"
    handoff = next(m for m in out["messages"] if isinstance(m, AIMessage) and m.tool_calls)
    assert handoff.tool_calls[0]["name"] == "transfer_to_backup"
    assert "model failed" in handoff.tool_calls[0]["args"]["reason"]


@pytest.mark.parametrize(
    "build",
    [
        lambda a: create_agent_graph(a),
        lambda a: create_manager_graph(Agent(name="m", model=ScriptedChatModel([])), [a]),
        lambda a: create_parallel_graph([a]),
        lambda a: create_handoff_graph(
            [a, Agent(name="b", model=ScriptedChatModel([]))],
            default_agent="a",
            routes={"a": []},
        ),
    ],
    ids=["single", "manager", "parallel", "handoff_without_route"],
)
def test_alternate_without_a_route_is_a_configuration_error(build: Callable[[Agent], Any]) -> None:
    agent = Agent(name="a", model=ScriptedChatModel([]), failure=FailurePolicy(alternate="b"))
    with pytest.raises(ConfigurationError, match="alternate='b'"):
        build(agent)
