"""Edits are governed: an edited call is a new call for the schema and every policy.

The policy is the tiered one (deny over 5,000; over 1,000 only ``cfo``; over 100
``finance-lead`` or ``cfo``) behind a rule that denies order ids not starting with
``A-``. A run asks to charge 150 on ``A-1``; each test edits that request through
``runs.decide`` (or a raw ``Command``) and counts the charges that really happened.
Every test runs on every checkpointer (memory, SQLite, Postgres), for both agent kinds
(podium's agent graph, and LangChain's ``create_agent`` with ``podium.middleware.Governed``;
tests/agent_kinds.py).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from charge_app import TIERS, Campaign, charge_call, config, effects
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Command

from agent_kinds import agent_app
from podium import (
    ApprovalRequest,
    ApproverNotAllowedError,
    Decision,
    InvalidDecisionError,
    Policy,
    Rule,
    runs,
)
from podium.testing import ScriptedChatModel
from podium.tools import tool
from podium.tools._decisions import current_ledger

POLICY = Policy(
    rules=[
        Rule(
            tool="charge",
            action="deny",
            when=lambda a: not str(a["order_id"]).startswith("A-"),
            reason="only A- orders may be charged",
        ),
        *TIERS.rules,
    ]
)
CFG: Any = {"configurable": {"thread_id": "edits"}}
ORIGINAL = {"order_id": "A-1", "amount": 150.0}


class Billing:
    """The app, and the charges that really happened."""

    def __init__(
        self,
        kind: str,
        checkpointer: BaseCheckpointSaver[Any],
        first: AIMessage | None = None,
        more: tuple[str, ...] = (),
    ) -> None:
        self.charges: list[tuple[str, float]] = []

        @tool(risk="high")
        def charge(order_id: str, amount: float) -> str:
            """Charge a customer's card."""
            self.charges.append((order_id, amount))
            return f"charged {amount} to {order_id}"

        self.model = ScriptedChatModel([first or charge_call(150), "done", *more])
        self.app = agent_app(
            kind,
            name="billing",
            model=self.model,
            tools=[charge],
            policy=POLICY,
            checkpointer=checkpointer,
        )

    def start(self) -> ApprovalRequest:
        out = self.app.invoke({"messages": [("user", "charge A-1 150")]}, CFG)
        assert "__interrupt__" in out
        [request] = runs.pending(self.app, CFG)
        assert request.args == ORIGINAL
        assert request.approvers == ("finance-lead", "cfo")
        return request

    def decide(self, request: ApprovalRequest, decision: Decision) -> dict[str, Any]:
        out: dict[str, Any] = runs.decide(self.app, CFG, {request.id: decision})
        return out

    def still_pending(self, request: ApprovalRequest, note: str) -> ApprovalRequest:
        """The same request is pending, with a note saying why a decision was refused."""
        [again] = runs.pending(self.app, CFG)
        assert again.id == request.id
        assert note in again.note
        assert again.refused is not None
        return again

    def ran(self, args: dict[str, Any], *, by: str) -> None:
        """The call ran once with ``args``; history and events show the edit."""
        assert self.charges == [(args["order_id"], args["amount"])]
        messages = self.app.get_state(CFG).values["messages"]
        [asked] = [m for m in messages if isinstance(m, AIMessage) and m.tool_calls]
        [result] = [m for m in messages if isinstance(m, ToolMessage)]
        assert messages.index(result) == messages.index(asked) + 1
        assert asked.tool_calls[0]["args"] == args  # the call that ran, next to its result
        assert result.tool_call_id == asked.tool_calls[0]["id"]
        assert result.content == f"charged {args['amount']} to {args['order_id']}"
        assert result.artifact["podium_edit"] == {"args": args, "from": ORIGINAL, "by": by}
        seen = self.model.last_call.messages  # the model's next turn saw the call that ran
        [shown] = [m for m in seen if isinstance(m, AIMessage) and m.tool_calls]
        assert shown.tool_calls[0]["args"] == args
        decided = runs.events(self.app, CFG, kinds=["approval_decided"])
        edits = [e["data"] for e in decided if e["data"]["action"] == "edit"]
        assert edits, decided
        assert edits[0]["args"] == ORIGINAL  # what the model asked for
        assert edits[-1]["by"] == by  # the last edit is what ran
        assert edits[-1]["edited_args"] == args
        self.settled()

    def settled(self) -> None:
        """Nothing pending anywhere; resuming again changes nothing."""
        assert runs.pending(self.app, CFG) == []
        assert "edits" not in current_ledger(self.app.config).pending_approvals()
        before = list(self.charges)
        runs.resume(self.app, CFG)
        assert self.charges == before


@pytest.fixture
def billing(agent_kind: str, checkpointer: BaseCheckpointSaver[Any]) -> Billing:
    return Billing(agent_kind, checkpointer)


def test_edit_to_a_denied_amount_is_refused(billing: Billing) -> None:
    request = billing.start()
    with pytest.raises(InvalidDecisionError, match="not allowed by the policy: over 5,000"):
        billing.decide(request, Decision.edit({"amount": 10_000}, by="finance-lead"))
    billing.still_pending(request, "over 5,000")
    assert billing.charges == []
    # the request is still answerable as it stands
    out = billing.decide(request, Decision.approve(by="finance-lead"))
    assert out["messages"][-1].content == "done"
    assert billing.charges == [("A-1", 150.0)]
    billing.settled()


def test_edit_to_a_higher_tier_waits_for_that_tier(billing: Billing) -> None:
    request = billing.start()
    out = billing.decide(request, Decision.edit({"amount": 2_000}, by="finance-lead"))
    assert "__interrupt__" in out
    [cfo] = runs.pending(billing.app, CFG)
    assert cfo.id != request.id
    assert cfo.approvers == ("cfo",)
    assert cfo.args == {"order_id": "A-1", "amount": 2000.0}
    assert billing.charges == []
    # the editor cannot clear their own edit, nor edit it back down
    with pytest.raises(ApproverNotAllowedError, match="'finance-lead' may not decide"):
        billing.decide(cfo, Decision.approve(by="finance-lead"))
    with pytest.raises(ApproverNotAllowedError):
        billing.decide(cfo, Decision.edit({"amount": 150}, by="finance-lead"))
    assert [r.id for r in runs.pending(billing.app, CFG)] == [cfo.id]
    assert billing.charges == []
    out = billing.decide(cfo, Decision.approve(by="cfo"))
    assert out["messages"][-1].content == "done"
    billing.ran({"order_id": "A-1", "amount": 2000.0}, by="finance-lead")


def test_edit_with_a_numeric_string_is_gated_by_its_value(billing: Billing) -> None:
    """``"2000"`` is coerced to 2000.0 by the schema; the policy sees that number."""
    request = billing.start()
    [item] = billing.app.get_state(CFG).interrupts
    edit = Decision.edit({"amount": "2000"}, by="finance-lead").to_json()
    out = billing.app.invoke(Command(resume={item.id: edit}), CFG)
    assert "__interrupt__" in out
    [cfo] = runs.pending(billing.app, CFG)
    assert cfo.id != request.id
    assert cfo.approvers == ("cfo",)
    assert cfo.args == {"order_id": "A-1", "amount": 2000.0}
    assert billing.charges == []


def test_decide_accepts_its_own_coerced_edit(billing: Billing) -> None:
    request = billing.start()
    out = billing.decide(request, Decision.edit({"amount": "2000"}, by="finance-lead"))
    assert "__interrupt__" in out
    [cfo] = runs.pending(billing.app, CFG)
    assert cfo.approvers == ("cfo",)
    assert billing.charges == []


def test_edit_to_another_order(billing: Billing) -> None:
    request = billing.start()
    with pytest.raises(InvalidDecisionError, match="only A- orders may be charged"):
        billing.decide(request, Decision.edit({"order_id": "B-7"}, by="finance-lead"))
    billing.still_pending(request, "only A- orders")
    assert billing.charges == []
    out = billing.decide(request, Decision.edit({"order_id": "A-9"}, by="finance-lead"))
    assert "__interrupt__" not in out
    billing.ran({"order_id": "A-9", "amount": 150.0}, by="finance-lead")


def test_partial_edit_merges_and_runs_without_another_question(billing: Billing) -> None:
    request = billing.start()
    out = billing.decide(request, Decision.edit({"amount": 80}, by="finance-lead"))
    assert "__interrupt__" not in out
    assert out["messages"][-1].content == "done"
    billing.ran({"order_id": "A-1", "amount": 80.0}, by="finance-lead")


def test_outsider_cannot_edit_down_to_an_ungated_amount(billing: Billing) -> None:
    """80 needs no approval, but the request is the tier's: mallory may not answer it."""
    request = billing.start()
    with pytest.raises(ApproverNotAllowedError, match="'mallory' may not decide"):
        billing.decide(request, Decision.edit({"amount": 80}, by="mallory"))
    assert [r.id for r in runs.pending(billing.app, CFG)] == [request.id]
    assert billing.charges == []


@pytest.mark.parametrize(
    ("args", "why"),
    [
        ({"amount": "lots"}, "amount: Input should be a valid number"),
        ({"bogus": 1}, "does not take argument(s) 'bogus'"),
        ({"amount": None}, "amount: Input should be a valid number"),
        ({"amount": math.inf}, "not a finite number"),
        ({"amount": math.nan}, "not a finite number"),
    ],
    ids=["not-a-number", "unknown-argument", "null", "infinity", "nan"],
)
def test_schema_invalid_edit_is_refused(billing: Billing, args: dict[str, Any], why: str) -> None:
    request = billing.start()
    with pytest.raises(InvalidDecisionError, match="edited arguments were refused") as caught:
        billing.decide(request, Decision.edit(args, by="finance-lead"))
    assert why in str(caught.value)
    billing.still_pending(request, why)
    assert billing.charges == []
    out = billing.decide(request, Decision.approve(by="finance-lead"))
    assert out["messages"][-1].content == "done"
    assert billing.charges == [("A-1", 150.0)]


def test_nan_edit_sent_as_json_through_a_raw_resume_re_asks(billing: Billing) -> None:
    request = billing.start()
    [item] = billing.app.get_state(CFG).interrupts
    nan_edit = {"action": "edit", "args": {"amount": math.nan}, "by": "finance-lead"}
    out = billing.app.invoke(Command(resume={item.id: nan_edit}), CFG)
    assert "__interrupt__" in out
    again = billing.still_pending(request, "not a finite number")
    assert billing.charges == []
    out = billing.decide(again, Decision.approve(by="cfo"))
    assert billing.charges == [("A-1", 150.0)]


def test_raw_resume_with_a_refused_edit_re_asks(billing: Billing) -> None:
    request = billing.start()
    [item] = billing.app.get_state(CFG).interrupts
    denied = Decision.edit({"amount": 10_000}, by="finance-lead").to_json()
    out = billing.app.invoke(Command(resume={item.id: denied}), CFG)  # no exception
    assert "__interrupt__" in out
    [shown] = out["__interrupt__"]
    assert shown.value["id"] == request.id
    assert "over 5,000" in shown.value["note"]
    billing.still_pending(request, "over 5,000")
    assert billing.charges == []


def test_editor_in_the_needed_tier_runs_directly(billing: Billing) -> None:
    request = billing.start()
    out = billing.decide(request, Decision.edit({"amount": 2_000}, by="cfo"))
    assert "__interrupt__" not in out
    assert out["messages"][-1].content == "done"
    billing.ran({"order_id": "A-1", "amount": 2000.0}, by="cfo")


def test_tier_can_edit_the_edit_within_the_policy(billing: Billing) -> None:
    request = billing.start()
    billing.decide(request, Decision.edit({"amount": 2_000}, by="finance-lead"))
    [cfo] = runs.pending(billing.app, CFG)
    with pytest.raises(InvalidDecisionError, match="over 5,000"):
        billing.decide(cfo, Decision.edit({"amount": 6_000}, by="cfo"))
    billing.still_pending(cfo, "over 5,000")
    assert billing.charges == []
    out = billing.decide(cfo, Decision.edit({"amount": 900}, by="cfo"))
    assert "__interrupt__" not in out
    billing.ran({"order_id": "A-1", "amount": 900.0}, by="cfo")


def test_tier_rejects_the_edit(billing: Billing) -> None:
    request = billing.start()
    billing.decide(request, Decision.edit({"amount": 2_000}, by="finance-lead"))
    [cfo] = runs.pending(billing.app, CFG)
    out = billing.decide(cfo, Decision.reject("too much", by="cfo"))
    [result] = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert "a human (cfo) rejected this call" in result.content
    assert billing.charges == []
    billing.settled()


def test_edit_of_one_parallel_call_rewrites_only_that_call(
    agent_kind: str, checkpointer: BaseCheckpointSaver[Any]
) -> None:
    both = AIMessage(
        "",
        tool_calls=[
            {"name": "charge", "args": {"order_id": "A-1", "amount": 150}, "id": "c1"},
            {"name": "charge", "args": {"order_id": "A-2", "amount": 200}, "id": "c2"},
        ],
    )
    billing = Billing(agent_kind, checkpointer, both)
    billing.app.invoke({"messages": [("user", "charge both")]}, CFG)
    first, second = sorted(runs.pending(billing.app, CFG), key=lambda r: r.tool_call_id)
    runs.decide(
        billing.app,
        CFG,
        {
            first.id: Decision.approve(by="finance-lead"),
            second.id: Decision.edit({"amount": 80}, by="cfo"),
        },
    )
    assert sorted(billing.charges) == [("A-1", 150.0), ("A-2", 80.0)]
    messages = billing.app.get_state(CFG).values["messages"]
    [asked] = [m for m in messages if isinstance(m, AIMessage) and m.tool_calls]
    assert [c["args"] for c in asked.tool_calls] == [
        {"order_id": "A-1", "amount": 150},
        {"order_id": "A-2", "amount": 80.0},
    ]
    results = {m.tool_call_id: m.content for m in messages if isinstance(m, ToolMessage)}
    assert results == {"c1": "charged 150.0 to A-1", "c2": "charged 80.0 to A-2"}
    billing.settled()
    assert len(billing.charges) == 2


def test_rewritten_history_survives_a_new_saver(
    agent_kind: str, make_saver: Any, checkpointer: BaseCheckpointSaver[Any]
) -> None:
    """A new saver on the same storage (as a new process opens it) rebuilds the
    history from its deltas: the edited call is still what it shows."""
    billing = Billing(agent_kind, checkpointer)
    request = billing.start()
    billing.decide(request, Decision.edit({"amount": 80}, by="finance-lead"))
    reopened = Billing(agent_kind, make_saver())
    messages = reopened.app.get_state(CFG).values["messages"]
    [asked] = [m for m in messages if isinstance(m, AIMessage) and m.tool_calls]
    assert asked.tool_calls[0]["args"] == {"order_id": "A-1", "amount": 80.0}
    assert reopened.charges == []
    runs.resume(reopened.app, CFG)
    assert reopened.charges == []
    assert billing.charges == [("A-1", 80.0)]


# -- a replayed edited call ------------------------------------------------------------------


def test_fork_before_the_edit_shows_the_call_that_ran(
    agent_kind: str, checkpointer: BaseCheckpointSaver[Any]
) -> None:
    billing = Billing(agent_kind, checkpointer, more=("done again",))
    request = billing.start()
    billing.decide(request, Decision.edit({"amount": 80}, by="finance-lead"))
    assert billing.charges == [("A-1", 80.0)]
    paused = next(s for s in billing.app.get_state_history(CFG) if s.interrupts)
    # time travel: resume the paused checkpoint again (the ledger's decision binds)
    approve = Decision.approve(by="finance-lead").to_json()
    out = billing.app.invoke(Command(resume={paused.interrupts[0].id: approve}), paused.config)
    assert billing.charges == [("A-1", 80.0)]  # replayed, not run again
    [asked] = [m for m in out["messages"] if isinstance(m, AIMessage) and m.tool_calls]
    [result] = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert result.content == "charged 80.0 to A-1"
    assert asked.tool_calls[0]["args"] == {"order_id": "A-1", "amount": 80.0}


def test_crash_after_an_edited_call_resumes_with_the_call_that_ran(
    agent_kind: str, tmp_path: Path
) -> None:
    """The worker edits to 80, the call runs and is recorded done, and the worker is
    SIGKILLed before LangGraph saved the step; this process resumes."""
    campaign = Campaign(str(tmp_path / "runs.sqlite"), tmp_path, policy="tiers", kind=agent_kind)
    try:
        campaign.pause("crash", "A-1", 150)
        edit = Decision.edit({"amount": 80}, by="finance-lead").to_json()
        round_ = {"thread": "crash", "action": "decide", "decision": edit, "die_after_finish": True}
        campaign.workers([{"me": "a", "rounds": [round_]}], killed=True)
        assert effects(campaign.effects) == [("A-1", 80.0)]
        app = campaign.app(["done"])
        out = runs.resume(app, config("crash"))
        assert effects(campaign.effects) == [("A-1", 80.0)]  # replayed, not run again
        assert out["messages"][-1].content == "done"
        [asked] = [m for m in out["messages"] if isinstance(m, AIMessage) and m.tool_calls]
        [result] = [m for m in out["messages"] if isinstance(m, ToolMessage)]
        assert result.content == "charged 80.0 to A-1"
        assert asked.tool_calls[0]["args"] == {"order_id": "A-1", "amount": 80.0}
    finally:
        campaign.close()
