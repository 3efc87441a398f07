"""Agent paths in nested graphs: an agent ``cashier`` of a graph ``support_desk`` that is
a member of an outer graph shows as ``support_desk/cashier`` in run events and in
``ApprovalRequest.agent`` (so in ``runs.pending``); top-level agents keep their names,
and request ids do not depend on the path (a thread waiting since before stays decidable).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from rich.console import Console

import podium.tools._decisions
from podium import Agent, runs
from podium.checkpoints import sqlite_saver
from podium.graphs import (
    Stage,
    StageInput,
    create_agent_graph,
    create_handoff_graph,
    create_manager_graph,
    create_parallel_graph,
    create_pipeline_graph,
)
from podium.observe import render_trace
from podium.testing import ScriptedChatModel
from podium.tools import Decision, Policy, Rule, tool

CFG = {"configurable": {"thread_id": "paths"}}


def call(name: str, args: dict[str, Any], id_: str) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": id_, "type": "tool_call"}])


def agent(name: str, *script: Any, **kw: Any) -> Agent:
    return Agent(name=name, description=f"the {name}", model=ScriptedChatModel(list(script)), **kw)


def agents_by_kind(events: list[dict[str, Any]]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for e in events:
        found.setdefault(e["kind"], set()).add(e["agent"])
    return found


@pytest.fixture
def payments() -> list[str]:
    return []


@pytest.fixture
def pay(payments: list[str]) -> Any:
    @tool(risk="high")
    def pay(order: str) -> str:
        """Pay an order."""
        payments.append(order)
        return f"paid {order}"

    return pay


def support_desk(pay: Any) -> Any:
    triage = agent("triage", call("transfer_to_cashier", {"reason": "a payment"}, "h1"))
    cashier = agent("cashier", call("pay", {"order": "A-1"}, "p1"), "Paid A-1.", tools=[pay])
    return create_handoff_graph(
        [triage, cashier], default_agent="triage", name="support_desk", description="The desk"
    )


def manager_over_desk(pay: Any) -> Any:
    boss = agent("boss", call("support_desk", {"task": "pay A-1"}, "d1"), "A-1 is paid.")
    policy = Policy(rules=[Rule(tool="pay", action="approve", reason="payments need a human")])
    return create_manager_graph(boss, [support_desk(pay)], policy=policy)


def test_a_handoff_desk_inside_a_manager_shows_its_agents_by_path(
    tmp_path: Path, pay: Any, payments: list[str]
) -> None:
    app = manager_over_desk(pay).compile(checkpointer=sqlite_saver(tmp_path / "runs.sqlite"))
    app.invoke({"messages": [("user", "Please pay A-1")]}, CFG)
    [request] = runs.pending(app, CFG)
    assert (request.agent, request.tool) == ("support_desk/cashier", "pay")
    out = runs.decide(app, CFG, {request.id: Decision.approve(by="alice")})
    assert out["messages"][-1].content == "A-1 is paid."
    assert payments == ["A-1"]

    events = runs.events(app, CFG)
    seen = agents_by_kind(events)
    assert seen["model"] == {"boss", "support_desk/triage", "support_desk/cashier"}
    assert seen["delegation"] == {"boss"}  # the manager delegates; the desk's agents act
    assert seen["handoff"] == {"support_desk/triage"}
    assert seen["approval_requested"] == seen["approval_decided"] == {"support_desk/cashier"}
    [paid] = [e for e in events if e["kind"] == "tool" and e["name"] == "pay"]
    assert paid["agent"] == "support_desk/cashier"
    policies = {e["name"]: e["agent"] for e in events if e["kind"] == "policy"}
    assert policies == {"support_desk": "boss", "pay": "support_desk/cashier"}


def test_a_manager_team_inside_a_handoff_shows_its_agents_by_path(tmp_path: Path, pay: Any) -> None:
    clerk = agent("clerk", call("pay", {"order": "B-2"}, "p1"), "paid B-2", tools=[pay])
    lead = agent("lead", call("clerk", {"task": "pay B-2"}, "d1"), "Done.")
    policy = Policy(rules=[Rule(tool="pay", action="approve")])
    team = create_manager_graph(lead, [clerk], policy=policy, name="pay_team")
    triage = agent("triage", call("transfer_to_pay_team", {"reason": "payment"}, "h1"))
    app = create_handoff_graph([triage, team], default_agent="triage").compile(
        checkpointer=sqlite_saver(tmp_path / "runs.sqlite")
    )
    app.invoke({"messages": [("user", "pay B-2")]}, CFG)
    [request] = runs.pending(app, CFG)
    assert request.agent == "pay_team/clerk"
    runs.decide(app, CFG, {request.id: Decision.approve(by="alice")})
    seen = agents_by_kind(runs.events(app, CFG))
    assert seen["model"] == {"triage", "pay_team/lead", "pay_team/clerk"}
    assert seen["delegation"] == {"pay_team/lead"}


def test_a_pipeline_two_levels_down_names_its_stages_and_gate_by_path(tmp_path: Path) -> None:
    release = create_pipeline_graph(
        [Stage("draft", lambda inp: "v1.4"), Stage("publish", publish, action=True)],
        name="release",
        description="Releases",
    )
    ops = create_handoff_graph([release], default_agent="release", name="ops", description="Ops")
    boss = agent("boss", call("ops", {"task": "release 1.4"}, "d1"), "Released.")
    app = create_manager_graph(boss, [ops]).compile(
        checkpointer=sqlite_saver(tmp_path / "runs.sqlite")
    )
    app.invoke({"messages": [("user", "release 1.4")]}, CFG)
    [request] = runs.pending(app, CFG)
    assert (request.agent, request.tool) == ("ops/release", "publish")
    runs.decide(app, CFG, {request.id: Decision.approve(by="alice")})
    events = runs.events(app, CFG)
    seen = agents_by_kind(events)
    assert seen["stage_finished"] == {"ops/release"}
    assert seen["approval_decided"] == {"ops/release"}
    console = Console(record=True, width=200)
    render_trace(events, console)
    assert "gate before stage publish" in console.export_text()


def publish(inp: StageInput) -> str:
    return f"published {inp.previous}"


def test_a_parallel_team_inside_a_manager_and_an_agent_graph_member(tmp_path: Path) -> None:
    team = create_parallel_graph(
        [agent("r1", "yes"), agent("r2", "yes")], join="vote", name="review"
    )
    helper = create_agent_graph(agent("helper", "Noted."))  # a graph named like its agent
    boss = agent(
        "boss",
        AIMessage(
            "",
            tool_calls=[
                {"name": "review", "args": {"task": "ok?"}, "id": "d1", "type": "tool_call"},
                {"name": "helper", "args": {"task": "note"}, "id": "d2", "type": "tool_call"},
            ],
        ),
        "Approved and noted.",
    )
    app = create_manager_graph(boss, [team, helper]).compile(
        checkpointer=sqlite_saver(tmp_path / "runs.sqlite")
    )
    app.invoke({"messages": [("user", "review and note")]}, CFG)
    events = runs.events(app, CFG)
    seen = agents_by_kind(events)
    assert seen["model"] == {"boss", "review/r1", "review/r2", "helper"}
    assert seen["branch"] == {"review/r1", "review/r2"}
    assert seen["quorum"] == seen["join"] == {"review"}


def test_request_ids_do_not_depend_on_the_path_and_old_waiting_threads_stay_decidable(
    tmp_path: Path, pay: Any, payments: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # a thread that started waiting before agent paths existed: its request says "cashier"
    old_app = manager_over_desk(pay).compile(checkpointer=sqlite_saver(tmp_path / "old.sqlite"))
    with monkeypatch.context() as patch:
        patch.setattr(podium.tools._decisions, "scoped", lambda scope, name: name)
        old_app.invoke({"messages": [("user", "Please pay A-1")]}, CFG)
    [old] = runs.pending(old_app, CFG)
    assert old.agent == "cashier"

    # the id hashes the thread and the question's key, never the path
    at = podium.tools._decisions.where(CFG)
    asked = [
        podium.tools._decisions.make_request(
            dataclasses.replace(at, scope=scope),
            "key",
            agent="cashier",
            tool="pay",
            args={},
            reason="",
            kind="approval",
        )
        for scope in ("", "support_desk")
    ]
    assert [r.agent for r in asked] == ["cashier", "support_desk/cashier"]
    assert asked[0].id == asked[1].id

    # the upgraded code decides the old thread: its request keeps what it showed
    out = runs.decide(old_app, CFG, {old.id: Decision.approve(by="alice")})
    assert out["messages"][-1].content == "A-1 is paid."
    assert payments == ["A-1"]
