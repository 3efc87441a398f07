"""Every demo on the real local model: it reaches its approval, then acts exactly once.

Slow (about three minutes on two busy cores): ``-m local_model`` runs them,
``-m "not local_model"`` skips them. The approval is decided in a new compiled graph
on the same checkpoint file, as a second process would.
"""

from __future__ import annotations

import time

import pytest
from demo_helpers import OpenDemo

from podium.tools import Decision

pytestmark = pytest.mark.local_model

APPROVALS = {
    "support": ("billing", "issue_refund", "refunds"),
    "research": ("research_brief", "write_report", "reports"),
    "ops": ("communications", "send_notice", "notices"),
    "data": ("data_desk", "shell", "totals"),
}


@pytest.mark.parametrize("name", list(APPROVALS))
def test_demo_reaches_its_approval_and_acts_once(
    name: str, open_demo: OpenDemo, capsys: pytest.CaptureFixture[str]
) -> None:
    agent, tool, table = APPROVALS[name]
    started = time.perf_counter()
    first = open_demo(name, "local")
    out = first.start()
    assert "__interrupt__" in out, out["messages"][-1]
    (request,) = first.pending()
    assert (request.agent, request.tool) == (agent, tool)
    assert first.demo.effects(first.home)[table] == []
    first.close()

    second = open_demo(name, "local")
    final = second.decide(request, Decision.approve(by="tester"))
    assert "__interrupt__" not in final
    assert final["messages"][-1].content
    rows = second.demo.effects(second.home)[table]
    assert len(rows) == 1
    if name == "support":
        assert request.args["order_id"] == "A-1002"
        assert request.args["amount"] > 100
        assert (rows[0]["order_id"], rows[0]["amount"]) == ("A-1002", request.args["amount"])
    elif name == "data":
        assert "orders.csv" in request.args["command"]
        assert rows[0]["content"] == "total 495"
    elif name == "ops":
        assert request.args["order_id"] == "B-2001"
        assert "2026-12-04" in rows[0]["message"]  # the tool adds the real date
    else:
        assert sum(len(claims) for claims in request.args.values()) >= 2
        assert (second.home / "reports" / "brief.md").read_text() == rows[0]["body"]
    with capsys.disabled():
        print(f"\n[{name}] {time.perf_counter() - started:.1f} s on the local model")
