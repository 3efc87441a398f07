"""Every human checkpoint asks the same way: approvers, deadlines, events, ids, errors.

Tool approvals, model-failure escalations, budget escalations and pipeline action
gates go through one decision core, so each honours the policy's ``approvers`` and
``approval_timeout``, writes ``approval_requested`` / ``approval_decided`` run events,
and has an ``apr_`` request id.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatResult

import podium
from podium import (
    Agent,
    ApproverNotAllowedError,
    Budget,
    Decision,
    FailurePolicy,
    InvalidDecisionError,
    Policy,
    Rule,
    runs,
)
from podium.checkpoints import sqlite_saver
from podium.graphs import Stage, create_agent_graph, create_pipeline_graph
from podium.observe import timeline
from podium.testing import ScriptedChatModel
from podium.tools import tool

CFG = {"configurable": {"thread_id": "t"}}
OPS = Policy(approvers=["ops"], approval_timeout=timedelta(hours=1))
LATE = Policy(approvers=["ops"], approval_timeout=timedelta(seconds=-1))


def call(name: str, args: dict[str, Any], id_: str) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": id_, "type": "tool_call"}])


@tool(read_only=True)
def lookup(q: str) -> str:
    """Look something up."""
    return f"found {q}"


def budget_app(policy: Policy, saver: Any) -> Any:
    model = ScriptedChatModel([call("lookup", {"q": str(i)}, f"c{i}") for i in range(4)] + ["ok"])
    agent = Agent(name="a", model=model, tools=[lookup])
    budget = Budget(model_calls=2, on_exhausted="escalate")
    return create_agent_graph(agent, budget=budget, policy=policy).compile(checkpointer=saver)


class Broken(BaseChatModel):
    """A model whose every call fails (not a transient error: no retries)."""

    @property
    def _llm_type(self) -> str:
        return "broken"

    def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
        raise ValueError("the model is broken")


def model_app(policy: Policy, saver: Any) -> Any:
    agent = Agent(name="a", model=Broken(), failure=FailurePolicy(retries=0))
    return create_agent_graph(agent, policy=policy).compile(checkpointer=saver)


def gate_app(policy: Policy, saver: Any, acted: list[str]) -> Any:
    def ship(inp: Any) -> str:
        acted.append(inp.request)
        return "shipped"

    return create_pipeline_graph([Stage("ship", ship, action=True)], policy=policy).compile(
        checkpointer=saver
    )


def paused(kind: str, policy: Policy, path: Path) -> tuple[Any, list[str]]:
    acted: list[str] = []
    saver = sqlite_saver(path / f"{kind}.sqlite")
    app = {
        "budget": lambda: budget_app(policy, saver),
        "model": lambda: model_app(policy, saver),
        "gate": lambda: gate_app(policy, saver, acted),
    }[kind]()
    app.invoke({"messages": [("user", "go")]}, CFG)
    return app, acted


@pytest.mark.parametrize("kind", ["budget", "model", "gate"])
def test_every_kind_of_request_honours_the_policys_approvers(kind: str, tmp_path: Path) -> None:
    app, acted = paused(kind, OPS, tmp_path)
    [request] = runs.pending(app, CFG)
    assert request.id.startswith("apr_")
    assert request.approvers == ("ops",)
    assert request.expires_at is not None
    with pytest.raises(ApproverNotAllowedError, match="allowed approvers: ops"):
        runs.decide(app, CFG, {request.id: Decision.approve(by="mallory")})
    runs.decide(app, CFG, {request.id: Decision.approve(by="ops")})
    assert acted == (["go"] if kind == "gate" else [])
    # (a budget or a broken model may run out again afterwards: a new request follows)
    events = runs.events(app, CFG, kinds=["approval_requested", "approval_decided"])[:2]
    assert [e["kind"] for e in events] == ["approval_requested", "approval_decided"]
    assert {e["data"]["request_id"] for e in events} == {request.id}
    assert events[0]["data"]["approvers"] == ["ops"]
    assert events[1]["data"]["by"] == "ops"


@pytest.mark.parametrize("kind", ["budget", "model", "gate"])
def test_every_kind_of_request_expires_into_a_rejection(kind: str, tmp_path: Path) -> None:
    app, acted = paused(kind, LATE, tmp_path)
    [request] = runs.pending(app, CFG)
    if kind == "model":  # a rejected model escalation stops the run
        with pytest.raises(podium.ModelFailedError, match="request expired"):
            runs.decide(app, CFG, {request.id: Decision.approve(by="ops")})
    else:
        out = runs.decide(app, CFG, {request.id: Decision.approve(by="ops")})
        assert "request expired" in out["messages"][-1].content
    assert acted == []
    [decided] = runs.events(app, CFG, kinds=["approval_decided"])
    assert decided["data"]["action"] == "reject"


def test_an_edit_shows_in_the_trace_as_what_changed(tmp_path: Path) -> None:
    refunds: list[float] = []

    @tool(risk="high")
    def issue_refund(order_id: str, amount: float) -> str:
        """Refund an order."""
        refunds.append(amount)
        return f"refunded {amount:g}"

    model = ScriptedChatModel([call("issue_refund", {"order_id": "A-1", "amount": 150}, "r"), "ok"])
    policy = Policy(rules=[Rule(tool="issue_refund", action="approve")])
    app = create_agent_graph(
        Agent(name="billing", model=model, tools=[issue_refund]), policy=policy
    ).compile(checkpointer=sqlite_saver(tmp_path / "t.sqlite"))
    app.invoke({"messages": [("user", "refund")]}, CFG)
    [request] = runs.pending(app, CFG)
    runs.decide(app, CFG, {request.id: Decision.edit({"amount": 80}, by="alice")})
    assert refunds == [80.0]
    [decided] = timeline(runs.events(app, CFG, kinds=["approval_decided"]))
    assert decided.detail.startswith("action=edit, by=alice, edited amount: 150.0->80.0")


def test_a_malformed_edit_through_runs_decide_raises_and_changes_nothing(
    tmp_path: Path,
) -> None:
    app, acted = paused("gate", OPS, tmp_path)
    [request] = runs.pending(app, CFG)
    history = len(list(app.get_state_history(CFG)))
    with pytest.raises(InvalidDecisionError, match="must be"):
        runs.decide(app, CFG, {request.id: Decision.edit({"bogus": 1}, by="ops")})
    assert len(list(app.get_state_history(CFG))) == history
    [again] = runs.pending(app, CFG)
    assert again.id == request.id
    assert again.refused is not None
    assert acted == []


def test_the_design_contracts_top_level_imports() -> None:
    from podium import ApprovalRequest
    from podium import Decision as TopDecision
    from podium import Policy as TopPolicy
    from podium import Rule as TopRule
    from podium.tools import ApprovalRequest as ToolsApprovalRequest
    from podium.tools import Decision as ToolsDecision
    from podium.tools import Policy as ToolsPolicy
    from podium.tools import Rule as ToolsRule

    assert (ApprovalRequest, TopDecision, TopPolicy, TopRule) == (
        ToolsApprovalRequest,
        ToolsDecision,
        ToolsPolicy,
        ToolsRule,
    )
