"""Attacks through resume payloads a malicious client sends (beyond test_governance's).

An edit that tries to switch the call to another tool, and a payload of megabytes:
nothing runs, the request stays pending and decidable, and what a human is shown
stays small. Side effects are counted in the tools' bodies; a real SQLite file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from langgraph.types import Command

from agent_kinds import agent_app
from podium import AlreadyDecidedError, InvalidDecisionError, runs
from podium.checkpoints import sqlite_saver
from podium.testing import ScriptedChatModel
from podium.tools import Decision, Policy, Rule, tool

CFG: Any = {"configurable": {"thread_id": "t1"}}


@pytest.fixture
def desk(agent_kind: str, tmp_path: Path) -> Any:
    done: list[tuple[str, float]] = []

    @tool(risk="high")
    def refund(amount: float) -> str:
        """Refund an amount."""
        done.append(("refund", amount))
        return "refunded"

    @tool(risk="high")
    def wire(amount: float) -> str:
        """Wire an amount out (not gated: the attacker's target)."""
        done.append(("wire", amount))
        return "wired"

    call = {"name": "refund", "args": {"amount": 250}, "id": "c1", "type": "tool_call"}
    app = agent_app(
        agent_kind,
        name="billing",
        model=ScriptedChatModel([AIMessage("", tool_calls=[call]), "ok"]),
        tools=[refund, wire],
        policy=Policy(rules=[Rule(tool="refund", action="approve")]),
        checkpointer=sqlite_saver(tmp_path / "x.sqlite"),
    )
    app.invoke({"messages": [("user", "refund 250")]}, CFG)
    app.done = done
    return app


def interrupt_id(app: Any) -> str:
    [item] = app.get_state(CFG).interrupts
    return str(item.id)


@pytest.mark.parametrize("field", ["tool", "name"])
def test_an_edit_that_names_another_tool_runs_nothing(desk: Any, field: str) -> None:
    [request] = runs.pending(desk, CFG)
    switch = {"action": "edit", "args": {"amount": 5}, field: "wire", "by": "mallory"}
    with pytest.raises(InvalidDecisionError, match=f"unknown field.*{field}"):
        runs.decide(desk, CFG, {request.id: switch})
    out = desk.invoke(Command(resume={interrupt_id(desk): switch}), CFG)
    assert "__interrupt__" in out
    assert desk.done == []
    [still] = runs.pending(desk, CFG)
    assert still.id == request.id
    assert still.refused is not None  # the raw resume was refused, and said why
    runs.decide(desk, CFG, {request.id: Decision.approve(by="alice")})
    assert desk.done == [("refund", 250.0)]


def test_a_megabyte_payload_runs_nothing_and_what_a_human_sees_stays_small(desk: Any) -> None:
    [request] = runs.pending(desk, CFG)
    for garbage in ("x" * 2_000_000, {"action": "approve", "by": "m", "pad": "y" * 2_000_000}):
        out = desk.invoke(Command(resume={interrupt_id(desk): garbage}), CFG)
        assert "__interrupt__" in out
    assert desk.done == []
    [still] = runs.pending(desk, CFG)
    assert still.id == request.id
    assert len(json.dumps(still.to_json())) < 10_000
    runs.decide(desk, CFG, {request.id: Decision.approve(by="alice")})
    assert desk.done == [("refund", 250.0)]


def test_approving_a_rejected_request_runs_nothing(desk: Any) -> None:
    [request] = runs.pending(desk, CFG)
    iid = interrupt_id(desk)
    runs.decide(desk, CFG, {request.id: Decision.reject("no", by="alice")})
    with pytest.raises(AlreadyDecidedError, match="already decided"):
        runs.decide(desk, CFG, {request.id: Decision.approve(by="bob")})
    desk.invoke(Command(resume={iid: Decision.approve(by="bob").to_json()}), CFG)
    assert desk.done == []
