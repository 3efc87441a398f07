"""The ops manager: parallel delegation; the customer notice waits for a human, sent once."""

from __future__ import annotations

import json

from demo_helpers import ByAgent, OpenDemo, call, calls

from podium.demos import DEMOS
from podium.demos._ops import OpsReport
from podium.tools import Decision

REPORT = OpsReport(
    stock="0 on hand, next delivery on 2026-12-04",
    invoice="180 dollars, paid",
    customer_notice="The customer was told about the delay.",
)


def _phase_one() -> ByAgent:
    return ByAgent.of(
        {
            "ops_lead": [
                calls(
                    call("inventory", {"task": "Check stock for order B-2001."}, "d1"),
                    call("billing", {"task": "Check the invoice of order B-2001."}, "d2"),
                    call("communications", {"task": "Tell B-2001 about the delay."}, "d3"),
                )
            ],
            "inventory": [
                calls(call("check_stock", {"order_id": "B-2001"}, "i1")),
                "0 on hand, next delivery on 2026-12-04.",
            ],
            "billing": [calls(call("get_invoice", {"order_id": "B-2001"}, "g1")), "180, paid."],
            "communications": [
                calls(
                    call(
                        "send_notice",
                        {"order_id": "B-2001", "message": "We are sorry for the delay."},
                        "n1",
                    )
                )
            ],
        }
    )


def test_notice_waits_for_approval_then_is_sent_once_in_a_new_process(
    open_demo: OpenDemo,
) -> None:
    first = open_demo("ops", _phase_one())
    out = first.start()
    assert "__interrupt__" in out
    (request,) = first.pending()
    assert (request.agent, request.tool) == ("communications", "send_notice")
    assert request.reason == "every customer notice is approved by a human"
    assert DEMOS["ops"].effects(first.home) == {"notices": []}
    first.model.assert_consumed()  # type: ignore[union-attr]
    first.close()

    # a new process: the finished delegations are not run again, only communications
    second_model = ByAgent.of(
        {
            "communications": ["The notice was sent."],
            "ops_lead": [REPORT.model_dump_json()],
        }
    )
    second = open_demo("ops", second_model)
    final = second.decide(request, Decision.approve(by="support-lead"))
    assert OpsReport.model_validate_json(final["messages"][-1].content) == REPORT
    (notice,) = DEMOS["ops"].effects(second.home)["notices"]
    assert notice["recipient"] == "edsger@example.com"
    assert notice["message"] == (
        "Dear Edsger Dijkstra, We are sorry for the delay. Your order B-2001 (steel widget) "
        "is expected on 2026-12-04."
    )
    second_model.assert_consumed()
    results = {m.tool_call_id: m.content for m in final["messages"] if m.type == "tool"}
    assert results["d1"] == "0 on hand, next delivery on 2026-12-04."
    assert results["d3"] == "The notice was sent."

    again = open_demo("ops", ByAgent.of({}))
    again.app.invoke(None, {"configurable": {"thread_id": "demo-1"}})
    assert len(DEMOS["ops"].effects(again.home)["notices"]) == 1


def test_rejected_notice_is_not_sent(open_demo: OpenDemo) -> None:
    first = open_demo("ops", _phase_one())
    first.start()
    (request,) = first.pending()
    first.close()
    second = open_demo(
        "ops",
        ByAgent.of(
            {
                "communications": ["The notice was not sent: a human rejected it."],
                "ops_lead": [json.dumps({**REPORT.model_dump(), "customer_notice": "Not sent."})],
            }
        ),
    )
    final = second.decide(request, Decision.reject("call the customer instead", by="lead"))
    assert json.loads(final["messages"][-1].content)["customer_notice"] == "Not sent."
    assert DEMOS["ops"].effects(second.home) == {"notices": []}
