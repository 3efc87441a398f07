"""Strict deserialisation: podium's savers rebuild only allow-listed types.

LangGraph's ``LANGGRAPH_STRICT_MSGPACK=true`` restricts checkpoint deserialisation to
``SAFE_MSGPACK_TYPES`` (plus each compiled graph's state-schema types); podium's
savers pass an explicit allow-list, so they are strict with or without it. These
tests show podium's own state round-trips with nothing blocked, and that a foreign
type is not rebuilt unless allowed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langgraph.checkpoint.serde.event_hooks import SerdeEvent, register_serde_event_listener
from langgraph.graph import END, START, StateGraph
from pydantic import BaseModel
from typing_extensions import TypedDict

from podium import Agent, runs
from podium.checkpoints import sqlite_saver
from podium.graphs import create_agent_graph
from podium.testing import ScriptedChatModel
from podium.tools import Decision, Policy, Rule, tool

WORKER = Path(__file__).with_name("worker.py")


@pytest.fixture
def serde_events() -> Iterator[list[SerdeEvent]]:
    events: list[SerdeEvent] = []
    unregister = register_serde_event_listener(events.append)
    yield events
    unregister()


@tool(risk="high")
def charge(order_id: str, amount: float) -> str:
    """Charge a customer's card."""
    return f"charged {amount} to {order_id}"


def test_podium_state_round_trips_with_nothing_blocked(
    durable: Callable[[], Any], serde_events: list[SerdeEvent]
) -> None:
    call = AIMessage(
        "", tool_calls=[{"name": "charge", "args": {"order_id": "A-1", "amount": 250}, "id": "c1"}]
    )
    policy = Policy(rules=[Rule(tool="charge", action="approve")])
    cfg: Any = {"configurable": {"thread_id": "t"}}
    agent = Agent(name="billing", model=ScriptedChatModel([call]), tools=[charge])
    app = create_agent_graph(agent, policy=policy).compile(checkpointer=durable())
    app.invoke({"messages": [("user", "charge A-1")]}, cfg)
    agent2 = Agent(name="billing", model=ScriptedChatModel(["Charged."]), tools=[charge])
    app2 = create_agent_graph(agent2, policy=policy).compile(checkpointer=durable())
    [request] = runs.pending(app2, cfg)  # the interrupt value: plain JSON
    assert request.tool == "charge"
    done = runs.decide(app2, cfg, {request.id: Decision.approve(by="ops")})
    reloaded = app2.get_state(cfg).values["messages"]
    assert all(isinstance(m, BaseMessage) for m in reloaded)
    [result] = [m for m in reloaded if isinstance(m, ToolMessage)]
    assert result.content == "charged 250.0 to A-1"
    assert [m.content for m in reloaded] == [m.content for m in done["messages"]]
    assert list(app2.get_state_history(cfg))  # every checkpoint loads
    assert serde_events == []  # nothing blocked, nothing rebuilt off the allow-list


class Order(BaseModel):
    id: str
    amount: float


class OrderState(TypedDict):
    order: Order


def order_app(saver: Any) -> Any:
    graph = StateGraph(OrderState)
    graph.add_node("noop", lambda s: {"order": s["order"]})
    graph.add_edge(START, "noop")
    graph.add_edge("noop", END)
    return graph.compile(checkpointer=saver)


def test_a_type_off_the_allow_list_is_not_rebuilt(
    tmp_path: Path, serde_events: list[SerdeEvent]
) -> None:
    cfg: Any = {"configurable": {"thread_id": "t"}}
    with sqlite_saver(tmp_path / "r.sqlite") as saver:
        order_app(saver).invoke({"order": Order(id="A-1", amount=2.5)}, cfg)
    with sqlite_saver(tmp_path / "r.sqlite") as saver:
        value = order_app(saver).get_state(cfg).values["order"]
    assert value == {"id": "A-1", "amount": 2.5}  # plain data: no import, no constructor
    blocked = {(e["module"], e["name"]) for e in serde_events if e["kind"] == "msgpack_blocked"}
    assert (__name__, "Order") in blocked
    with sqlite_saver(tmp_path / "r.sqlite", allowed_types=[Order]) as saver:
        assert order_app(saver).get_state(cfg).values["order"] == Order(id="A-1", amount=2.5)


def test_the_whole_flow_under_langgraph_strict_msgpack(tmp_path: Path) -> None:
    """Two processes with LANGGRAPH_STRICT_MSGPACK=true: pause for approval, then decide."""
    env = {**os.environ, "LANGGRAPH_STRICT_MSGPACK": "true"}
    db = str(tmp_path / "strict.sqlite")
    outputs = []
    for action, extra in (
        ("start", []),
        ("decide", ["--decision", json.dumps({"action": "approve", "by": "ops"})]),
    ):
        proc = subprocess.run(
            [sys.executable, str(WORKER), "sqlite", db, "t", action, *extra],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert "Blocked deserialization" not in proc.stderr
        assert "unregistered type" not in proc.stderr
        outputs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert [r["tool"] for r in outputs[0]["pending"]] == ["charge"]
    assert outputs[1]["pending"] == []
    assert outputs[1]["messages"][-1]["content"] == "Charged."


def _messages_of_every_kind() -> list[BaseMessage]:
    from langchain_core.messages import (
        ChatMessage,
        FunctionMessage,
        HumanMessage,
        RemoveMessage,
        SystemMessage,
    )

    return [
        SystemMessage("be brief", id="s"),
        HumanMessage("hi", id="h", name="ann"),
        HumanMessage([{"type": "text", "text": "a block"}], id="hb"),
        AIMessage(
            "calling",
            id="a",
            tool_calls=[{"name": "charge", "args": {"amount": 2}, "id": "c1"}],
            invalid_tool_calls=[
                {
                    "name": "x",
                    "args": "{bad",
                    "id": "c2",
                    "error": "bad json",
                    "type": "invalid_tool_call",
                }
            ],
            usage_metadata={"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
            response_metadata={"model_name": "m", "finish_reason": "tool_calls"},
        ),
        ToolMessage("done", tool_call_id="c1", id="t", status="error", artifact={"k": [1, 2]}),
        ChatMessage("hey", role="critic", id="c"),
        FunctionMessage("out", name="f", id="f"),
        RemoveMessage(id="gone"),
    ]


def test_fast_message_loading_equals_langgraphs(serde_events: list[SerdeEvent]) -> None:
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
    from langgraph.checkpoint.serde.types import _DeltaSnapshot

    from podium.checkpoints import podium_serde

    fast, stock = podium_serde(), JsonPlusSerializer(allowed_msgpack_modules=None)
    messages = _messages_of_every_kind()
    for value in (messages, {"nested": messages}, _DeltaSnapshot(messages)):
        stored = fast.dumps_typed(value)
        assert stored == stock.dumps_typed(value)  # writes are LangGraph's, byte for byte
        loaded, expected = fast.loads_typed(stored), stock.loads_typed(stored)
        if isinstance(value, _DeltaSnapshot):
            assert isinstance(loaded, _DeltaSnapshot)
            loaded, expected = loaded.value, expected.value
        assert loaded == expected
        assert loaded == messages or loaded == {"nested": messages}
        flat = loaded if isinstance(loaded, list) else loaded["nested"]
        reference = expected if isinstance(expected, list) else expected["nested"]
        for got, want in zip(flat, reference, strict=True):  # the same objects, field by field
            assert type(got) is type(want)
            assert got.__dict__ == want.__dict__
            assert got.model_fields_set == want.model_fields_set
            assert got.__pydantic_extra__ == want.__pydantic_extra__
    assert serde_events == []  # nothing blocked or unregistered


def test_records_with_other_fields_take_langgraphs_path() -> None:
    import ormsgpack
    from langgraph.checkpoint.serde.jsonplus import EXT_PYDANTIC_V2

    from podium.checkpoints import podium_serde

    # a record from a langchain-core whose AIMessage had fewer fields, as it would be
    fields = AIMessage("old", id="o").model_dump()
    del fields["invalid_tool_calls"]
    record = ormsgpack.packb(
        ormsgpack.Ext(
            EXT_PYDANTIC_V2,
            ormsgpack.packb(
                ("langchain_core.messages.ai", "AIMessage", fields, "model_validate_json")
            ),
        )
    )
    loaded = podium_serde().loads_typed(("msgpack", record))
    assert loaded == AIMessage("old", id="o")  # validated: the missing field has its default
    assert loaded.invalid_tool_calls == []
