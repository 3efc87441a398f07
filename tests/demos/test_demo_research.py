"""The research brief (pipeline + parallel): typed facts, validation, a gated report."""

from __future__ import annotations

import json

import pytest
from demo_helpers import ByAgent, OpenDemo, call, calls

from podium import ReworkLimitError
from podium.demos import DEMOS
from podium.demos._research import Brief, check_facts, read_corpus
from podium.tools import Decision

GOOD = {
    "heat_pumps": ["Northvale counted 412 air-source heat pumps in homes at the end of 2025."],
    "district_heating": ["The network is 18 kilometres long and serves 1,250 homes."],
    "solar_thermal": ["A typical system costs 5,200 euros installed."],
}


def _researchers() -> dict[str, list[object]]:
    return {
        doc: [
            calls(call("read_document", {"doc_id": doc}, f"r-{doc}")),
            json.dumps({"facts": GOOD[doc]}),
        ]
        for doc in GOOD
    }


def _phase_one(*extractions: dict[str, list[str]]) -> ByAgent:
    return ByAgent.of(
        {**_researchers(), "extractor": [json.dumps(e) for e in extractions]}  # type: ignore[dict-item]
    )


def test_report_is_written_once_after_approval_in_a_new_process(open_demo: OpenDemo) -> None:
    first = open_demo("research", _phase_one(GOOD))
    out = first.start()
    assert "__interrupt__" in out
    (request,) = first.pending()
    assert (request.agent, request.tool) == ("research_brief", "write_report")
    assert request.args == GOOD  # the human approves exactly the validated facts
    assert DEMOS["research"].effects(first.home) == {"reports": []}
    assert not (first.home / "reports" / "brief.md").exists()
    notes = out["stage_outputs"]["research"]
    assert notes.startswith("## heat_pumps\n")
    first.close()

    second = open_demo("research", ByAgent.of({}))  # the gated stage needs no model
    final = second.decide(request, Decision.approve(by="editor"))
    report = second.home / "reports" / "brief.md"
    assert final["messages"][-1].content == f"Report written to {report} with 3 facts."
    body = report.read_text()
    assert "## District heating\n- The network is 18 kilometres long" in body
    (row,) = DEMOS["research"].effects(second.home)["reports"]
    assert (row["path"], row["facts"], row["body"]) == (str(report), 3, body)

    again = open_demo("research", ByAgent.of({}))
    again.app.invoke(None, {"configurable": {"thread_id": "demo-1"}})
    assert len(DEMOS["research"].effects(again.home)["reports"]) == 1


def test_rejected_report_is_not_written(open_demo: OpenDemo) -> None:
    first = open_demo("research", _phase_one(GOOD))
    first.start()
    (request,) = first.pending()
    first.close()
    second = open_demo("research", ByAgent.of({}))
    final = second.decide(request, Decision.reject("not for the council yet", by="editor"))
    assert "not for the council yet" in final["messages"][-1].content
    assert DEMOS["research"].effects(second.home) == {"reports": []}
    assert not (second.home / "reports" / "brief.md").exists()


def test_unsupported_facts_are_sent_back_then_dropped(open_demo: OpenDemo) -> None:
    wrong = {
        "heat_pumps": ["Northvale counted 999 heat pumps in homes at the end of 2025."],
        "district_heating": [],
        "solar_thermal": ["The pumps delivered 3.1 units of heat for each unit."],
    }
    partly = {**GOOD, "solar_thermal": ["Solar collectors power every car in Northvale."]}
    process = open_demo("research", _phase_one(wrong, partly))
    out = process.start()
    log = [(r["stage"], r["status"]) for r in out["stage_log"]]
    assert log == [
        ("research", "done"),
        ("extract", "done"),
        ("validate", "rework"),
        ("extract", "done"),
        ("validate", "done"),
    ]
    feedback = out["stage_log"][2]["detail"]["feedback"]
    assert "999 is not in heat_pumps" in feedback
    assert "3.1 is not in solar_thermal" in feedback
    (request,) = process.pending()
    assert request.args == {**GOOD, "solar_thermal": []}  # the unsupported claim is dropped


def test_rework_is_bounded(open_demo: OpenDemo) -> None:
    empty = {"heat_pumps": [], "district_heating": [], "solar_thermal": []}
    process = open_demo("research", _phase_one(empty, empty, empty))
    with pytest.raises(ReworkLimitError, match="max_rework=2"):
        process.start()


def test_the_corpus_ships_with_the_package_and_checks_facts() -> None:
    corpus = read_corpus()
    assert set(corpus) == {"heat_pumps", "district_heating", "solar_thermal"}
    kept, problems = check_facts(Brief.model_validate(GOOD))
    assert kept == Brief.model_validate(GOOD)
    assert problems == []
