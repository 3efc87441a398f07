"""The support desk (handoff): the refund waits for a human and happens exactly once."""

from __future__ import annotations

import pytest
from demo_helpers import ByAgent, OpenDemo, call, calls
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from podium import UnknownRequestError, runs
from podium.demos import DEMOS
from podium.demos._support import customer_view
from podium.tools import Decision


def _phase_one() -> ByAgent:
    return ByAgent.of(
        {
            "triage": [calls(call("transfer_to_billing", {"reason": "a refund"}, "h1"))],
            "billing": [
                calls(call("lookup_order", {"order_id": "A-1002"}, "b1")),
                calls(call("issue_refund", {"order_id": "A-1002", "amount": 250}, "b2")),
            ],
        }
    )


def test_refund_waits_for_approval_then_runs_once_in_a_new_process(open_demo: OpenDemo) -> None:
    first = open_demo("support", _phase_one())
    out = first.start()
    assert "__interrupt__" in out
    (request,) = first.pending()
    assert (request.agent, request.tool) == ("billing", "issue_refund")
    assert request.args == {"order_id": "A-1002", "amount": 250}
    assert request.reason == "refunds over 100 dollars need a human"
    assert DEMOS["support"].effects(first.home) == {"refunds": [], "outbox": []}
    first.model.assert_consumed()  # type: ignore[union-attr]
    first.close()

    second_model = ByAgent.of(
        {
            "billing": [
                calls(call("send_email", {"order_id": "A-1002", "message": "Refunded."}, "b3")),
                "I refunded 250 dollars on A-1002 and emailed you.",
            ]
        }
    )
    second = open_demo("support", second_model)  # a new process: new build, saver, graph
    final = second.decide(request, Decision.approve(by="finance-lead"))
    assert final["messages"][-1].content == "I refunded 250 dollars on A-1002 and emailed you."
    assert final["active_agent"] == "billing"
    effects = DEMOS["support"].effects(second.home)
    assert [(r["order_id"], r["amount"]) for r in effects["refunds"]] == [("A-1002", 250)]
    assert [(r["recipient"], r["body"]) for r in effects["outbox"]] == [
        ("alan@example.com", "Refunded.")
    ]
    second_model.assert_consumed()

    # resuming or deciding again changes nothing; a rebuild keeps the side effects
    assert "__interrupt__" not in runs.resume(second.app, {"configurable": {"thread_id": "demo-1"}})
    with pytest.raises(UnknownRequestError, match="already decided"):
        second.decide(request, Decision.approve(by="finance-lead"))
    DEMOS["support"].build(second.home, second_model)
    assert DEMOS["support"].effects(second.home) == effects


def test_rejected_refund_leaves_no_side_effect(open_demo: OpenDemo) -> None:
    first = open_demo("support", _phase_one())
    first.start()
    (request,) = first.pending()
    first.close()
    second = open_demo("support", ByAgent.of({"billing": ["The refund was not approved, sorry."]}))
    final = second.decide(request, Decision.reject("needs a photo of the damage", by="lead"))
    assert final["messages"][-1].content == "The refund was not approved, sorry."
    rejected = [m for m in final["messages"] if getattr(m, "tool_call_id", None) == "b2"]
    assert "needs a photo of the damage" in rejected[0].content
    assert DEMOS["support"].effects(second.home) == {"refunds": [], "outbox": []}


def test_small_refund_needs_no_approval_and_refunds_are_capped(open_demo: OpenDemo) -> None:
    model = ByAgent.of(
        {
            "triage": [calls(call("transfer_to_billing", {"reason": "refund"}, "h1"))],
            "billing": [
                calls(call("issue_refund", {"order_id": "A-1001", "amount": 40}, "b1")),
                calls(call("issue_refund", {"order_id": "A-1001", "amount": 40}, "b2")),
                "Done.",
            ],
        }
    )
    process = open_demo("support", model)
    out = process.start("Refund the 40 dollars of A-1001, the lamp is broken.")
    assert "__interrupt__" not in out
    results = {m.tool_call_id: m.content for m in out["messages"] if m.type == "tool"}
    assert results["b1"].startswith("Refunded 40 dollars on order A-1001.")
    assert results["b2"].startswith("Refused: order A-1001 was paid 40 dollars")
    refunds = DEMOS["support"].effects(process.home)["refunds"]
    assert [(r["order_id"], r["amount"]) for r in refunds] == [("A-1001", 40)]


def test_technical_questions_go_to_technical(open_demo: OpenDemo) -> None:
    model = ByAgent.of(
        {
            "triage": [calls(call("transfer_to_technical", {"reason": "broken router"}, "h1"))],
            "technical": [
                calls(call("troubleshoot", {"product": "wifi router"}, "t1")),
                "Unplug it for 30 seconds, then update the firmware.",
            ],
        }
    )
    out = open_demo("support", model).start("My wifi router keeps dropping the connection.")
    assert out["active_agent"] == "technical"
    assert out["messages"][-1].content.startswith("Unplug it")


def test_a_member_taking_over_sees_the_customer_not_the_transfer() -> None:
    transfer = AIMessage("", tool_calls=[call("transfer_to_billing", {"reason": "x"}, "h1")])
    history = [
        HumanMessage("Refund please"),
        transfer,
        ToolMessage("Transferred to billing.", tool_call_id="h1"),
        AIMessage("Done earlier."),
    ]
    assert customer_view(history) == [history[0], history[3]]
