"""In-doubt requests keep their governance: approvers, the policy, edit tiers.

Process A starts a 150 charge under the tiered policy (deny over 5,000; over 1,000
only ``cfo``; over 100 ``finance-lead`` or ``cfo``); ``finance-lead`` approves and A
is SIGKILLed inside the tool, right after the side effect. Process B (the test
process) resumes and finds the call in doubt. Every decision on the in-doubt
request is checked against the same tiers as the call itself, and every assertion
counts real side effects (rows in a separate SQLite file).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import charge_app
import pytest
from charge_app import Campaign, config, effects, tool_messages
from langchain_core.messages import AIMessage

from podium import ApproverNotAllowedError, Decision, InvalidDecisionError, runs
from podium.tools._decisions import current_ledger

THREAD, ORDER = "in-doubt", "A-1"
CFG = config(THREAD)
FINANCE = Decision.approve(by="finance-lead")


def crash_inside(campaign: Campaign) -> None:
    """A pauses at 150, finance-lead approves, A dies inside the tool after the effect."""
    request = campaign.pause(THREAD, ORDER, 150)
    assert request.approvers == ("finance-lead", "cfo")
    round_ = {"thread": THREAD, "action": "decide", "decision": FINANCE.to_json(), "crash": True}
    campaign.workers([{"me": "a", "rounds": [round_]}], killed=True)
    assert effects(campaign.effects) == [(ORDER, 150.0)]


def in_doubt_flow(campaign: Campaign, ending: str) -> None:
    crash_inside(campaign)
    app = campaign.app(["done"])
    out = runs.resume(app, CFG)  # process B
    assert "__interrupt__" in out
    [doubt] = runs.pending(app, CFG)
    assert doubt.kind == "in_doubt"
    assert "may or may not have taken effect" in doubt.reason
    assert doubt.approvers == ("finance-lead", "cfo")  # the call's own tier
    assert doubt.args == {"order_id": ORDER, "amount": 150.0}
    assert effects(campaign.effects) == [(ORDER, 150.0)]

    # someone outside the tier: refused before anything is sent to the run
    with pytest.raises(ApproverNotAllowedError, match="'mallory' may not decide"):
        runs.decide(app, CFG, {doubt.id: Decision.approve(by="mallory")})
    assert [r.id for r in runs.pending(app, CFG)] == [doubt.id]
    assert effects(campaign.effects) == [(ORDER, 150.0)]

    # an edit the policy denies: refused, the request stays pending with a note
    with pytest.raises(InvalidDecisionError, match="not allowed by the policy"):
        runs.decide(app, CFG, {doubt.id: Decision.edit({"amount": 10_000}, by="finance-lead")})
    [again] = runs.pending(app, CFG)
    assert again.id == doubt.id
    assert "over 5,000" in again.note
    assert effects(campaign.effects) == [(ORDER, 150.0)]

    # an edit into the CFO's tier: a new request that only the CFO may decide
    out = runs.decide(app, CFG, {doubt.id: Decision.edit({"amount": 2_000}, by="finance-lead")})
    assert "__interrupt__" in out
    [cfo] = runs.pending(app, CFG)
    assert cfo.id != doubt.id
    assert cfo.approvers == ("cfo",)
    assert cfo.args == {"order_id": ORDER, "amount": 2000.0}
    assert effects(campaign.effects) == [(ORDER, 150.0)]
    with pytest.raises(ApproverNotAllowedError, match="'finance-lead' may not decide"):
        runs.decide(app, CFG, {cfo.id: FINANCE})
    assert [r.id for r in runs.pending(app, CFG)] == [cfo.id]
    assert effects(campaign.effects) == [(ORDER, 150.0)]

    if ending == "respond":  # the CFO checked: the first charge went through
        out = runs.decide(app, CFG, {cfo.id: Decision.respond("charged 150 to A-1", by="cfo")})
        expected, result = [(ORDER, 150.0)], "charged 150 to A-1"
    elif ending == "approve":  # the CFO says: run it again, with the edited amount
        out = runs.decide(app, CFG, {cfo.id: Decision.approve(by="cfo")})
        expected, result = [(ORDER, 150.0), (ORDER, 2000.0)], "charged 2000.0 to A-1"
    else:
        out = runs.decide(app, CFG, {cfo.id: Decision.reject("leave it", by="cfo")})
        expected, result = [(ORDER, 150.0)], "a human (cfo) rejected this call"
    assert "__interrupt__" not in out
    assert out["messages"][-1].content == "done"
    [message] = tool_messages(out)
    assert result in message["content"]
    assert effects(campaign.effects) == expected

    ledger = current_ledger(app.config)
    kinds = [(r.request["kind"], r.status) for r in ledger.approvals(THREAD)]
    assert [k for k in kinds if k[1] == "pending"] == []
    assert len(kinds) == 3  # the approval, the in-doubt question, the CFO's request
    assert THREAD not in ledger.pending_approvals()
    if ending == "approve":  # history shows the call that ran (the edited one)
        [asked] = [m for m in out["messages"] if isinstance(m, AIMessage) and m.tool_calls]
        assert asked.tool_calls[0]["args"] == {"order_id": ORDER, "amount": 2000.0}
    assert runs.pending(app, CFG) == []
    runs.resume(app, CFG)  # nothing left: nothing runs, nothing asks
    assert effects(campaign.effects) == expected
    assert runs.pending(app, CFG) == []


@pytest.fixture
def sqlite_campaign(tmp_path: Path) -> Any:
    campaign = Campaign(str(tmp_path / "runs.sqlite"), tmp_path, policy="tiers")
    yield campaign
    campaign.close()


@pytest.mark.parametrize("ending", ["respond", "approve", "reject"])
def test_in_doubt_request_keeps_the_tiers(sqlite_campaign: Campaign, ending: str) -> None:
    in_doubt_flow(sqlite_campaign, ending)


@pytest.mark.postgres
def test_in_doubt_request_keeps_the_tiers_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    campaign = Campaign(postgres_url, tmp_path, policy="tiers")
    try:
        in_doubt_flow(campaign, "approve")
    finally:
        campaign.close()


def test_edited_in_doubt_request_still_says_in_doubt(sqlite_campaign: Campaign) -> None:
    crash_inside(sqlite_campaign)
    app = sqlite_campaign.app(["done"])
    runs.resume(app, CFG)
    [doubt] = runs.pending(app, CFG)
    runs.decide(app, CFG, {doubt.id: Decision.edit({"amount": 2_000}, by="finance-lead")})
    [cfo] = runs.pending(app, CFG)
    assert cfo.approvers == ("cfo",)
    assert effects(sqlite_campaign.effects) == [(ORDER, 150.0)]
    # approving this runs the charge again, after one that may have gone through
    assert cfo.kind == "in_doubt"
    assert "may or may not have taken effect" in cfo.reason


def test_dead_but_unreaped_worker_is_not_alive(
    sqlite_campaign: Campaign, monkeypatch: pytest.MonkeyPatch
) -> None:
    from podium.tools import _executor

    monkeypatch.setattr(_executor, "WAIT_SECONDS", 2.0)  # how long a resume waits for a runner
    campaign = sqlite_campaign
    campaign.pause(THREAD, ORDER, 150)
    round_ = {"thread": THREAD, "action": "decide", "decision": FINANCE.to_json(), "crash": True}
    spec = campaign.tmp / "zombie.json"
    spec.write_text(
        json.dumps(
            {
                "db": campaign.db,
                "effects": str(campaign.effects),
                "policy": "tiers",
                "me": "a",
                "rounds": [round_],
            }
        )
    )
    worker = subprocess.Popen(
        [sys.executable, charge_app.__file__, str(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert worker.stdout is not None
        worker.stdout.read()  # EOF: the worker was SIGKILLed inside the tool; not reaped yet
        assert effects(campaign.effects) == [(ORDER, 150.0)]
        app = campaign.app(["done"])
        out = runs.resume(app, CFG)
        assert "__interrupt__" in out
        [doubt] = runs.pending(app, CFG)
        assert doubt.kind == "in_doubt"
        assert effects(campaign.effects) == [(ORDER, 150.0)]
    finally:
        worker.wait()
        assert worker.returncode == -signal.SIGKILL
        if worker.stdout is not None:
            worker.stdout.close()
