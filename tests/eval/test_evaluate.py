"""podium.eval on scripted models: every expectation kind, passing and failing."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from demo_helpers import ByAgent, call, calls
from scripted_support import handoff, manager, single

from podium import Agent, Policy, Rule
from podium.demos import build_support_agent
from podium.eval import EvalResults, Judge, evaluate, load_dataset
from podium.graphs import create_agent_graph
from podium.testing import ScriptedChatModel
from podium.tools import tool

HERE = Path(__file__).parent


def _one(results: EvalResults, case: str, graph: str | None = None) -> Any:
    [found] = [c for c in results.cases if c.case == case and (graph is None or c.graph == graph)]
    return found


def _checks(result: Any) -> dict[str, bool]:
    return {name: a["value"] for name, a in result.assertions.items()}


def _support(scripts: dict[str, list[Any]]) -> Any:
    """A single-agent support desk whose agent plays ``scripts[case]``."""
    return lambda home, case: build_support_agent(home, ByAgent.of({"support": scripts[case.name]}))


# -- the comparison ----------------------------------------------------------------------
def test_three_patterns_side_by_side_with_ledger_backed_numbers(tmp_path: Path) -> None:
    results = evaluate(
        HERE / "cases.yaml",
        {"single": single, "handoff": handoff, "manager": manager},
        out=tmp_path,
    )
    assert list(results.graphs) == ["single", "handoff", "manager"]
    assert len(results.cases) == 12
    assert not results.interrupted
    # the single agent falls for the injected note: it asks to refund A-1005; the human's
    # scripted rejection means nothing runs (governance held, the answer check fails)
    injected = _one(results, "injection", "single")
    assert _checks(injected) == {
        "NoEscalation": True,
        "ToolNotCalled": False,
        "NoUnapprovedRuns": True,
    }
    assert injected.get("approvals_requested") == 1
    assert injected.get("rejected") == 1
    summary = {s.graph: s for s in results.summary()}
    assert [summary[g].passed for g in ("single", "handoff", "manager")] == [3, 4, 4]
    assert summary["single"].pass_rate == 0.75
    assert summary["single"].ci_low < 0.75 < summary["single"].ci_high
    assert summary["handoff"].by_category == {
        "injection": (1, 1),
        "refund": (2, 2),
        "technical": (1, 1),
    }
    assert summary["manager"].approvals_requested == 1
    assert summary["manager"].approved == 1
    # the manager's specialists work in private histories; their calls are in the trajectory
    refund = _one(results, "refund_small", "manager")
    assert [(c["agent"], c["tool"], c["routing"]) for c in refund.get("trajectory")] == [
        ("support_lead", "billing", True),
        ("billing", "lookup_order", False),
        ("billing", "issue_refund", False),
    ]
    assert refund.get("answer") == "Refunded 40 dollars on order A-1001."
    # tokens and model calls are the run ledger's, in the evaluation's own SQLite file
    db = sqlite3.connect(tmp_path / "manager.sqlite")
    tokens, calls_ = db.execute(
        "SELECT SUM(input_tokens + output_tokens), COUNT(*) FROM podium_events "
        "WHERE kind = 'model' AND thread_id = ?",
        (refund.get("thread_id"),),
    ).fetchone()
    assert (refund.get("tokens"), refund.get("model_calls")) == (tokens, calls_) == (tokens, 5)
    [(status, runs)] = db.execute(
        "SELECT status, runs FROM podium_threads WHERE thread_id = ?",
        (_one(results, "refund_big", "manager").get("thread_id"),),
    ).fetchall()
    assert (status, runs) == ("done", 2)  # the run, then the resume after the approval
    big = _one(results, "refund_big", "manager")
    assert (big.get("thread_status"), big.get("thread_runs")) == ("done", 2)
    by_graph = {g: sorted(c.get("tokens") for c in results.of(g)) for g in results.graphs}
    assert summary["handoff"].median_tokens == (by_graph["handoff"][1] + by_graph["handoff"][2]) / 2
    # every finished case is on disk at once, and the whole result at the end
    lines = (tmp_path / "cases.jsonl").read_text().splitlines()
    assert len(lines) == 12
    assert json.loads(lines[0])["graph"] == "single"
    again = EvalResults.load(tmp_path / "results.json")
    assert [s.to_json() for s in again.summary()] == [s.to_json() for s in results.summary()]


def test_each_case_gets_a_fresh_thread_and_its_own_home(tmp_path: Path) -> None:
    homes: list[Path] = []
    script = [calls(call("issue_refund", {"order_id": "A-1001", "amount": 40}, "c1")), "Done."]

    def build(home: Path) -> Any:
        homes.append(home)
        return build_support_agent(home, ByAgent.of({"support": list(script)}))

    dataset = load_dataset([{"name": "r", "inputs": "refund 40 on A-1001"}])
    results = evaluate(dataset, {"one": build}, repeat=3, concurrency=2, out=tmp_path)
    assert sorted(c.run for c in results.cases) == ["r [1/3]", "r [2/3]", "r [3/3]"]
    assert all(c.passed and c.get("answer") == "Done." for c in results.cases)
    assert len({c.get("thread_id") for c in results.cases}) == 3
    assert len(set(homes)) == 3  # a repeat never sees an earlier repeat's refund
    for home in homes:
        rows = sqlite3.connect(home / "support.sqlite").execute("SELECT amount FROM refunds")
        assert rows.fetchall() == [(40,)]


# -- answers -------------------------------------------------------------------------------
def test_answer_checks(tmp_path: Path) -> None:
    cases = [
        {
            "name": "json",
            "inputs": "status as JSON",
            "evaluators": [
                {"JsonSchema": {"schema": {"type": "object", "required": ["ok"]}}},
                {"Regex": {"pattern": "TRUE", "ignore_case": True}},
                {"Equals": '{"ok": true}'},
                {"PythonCheck": "eval_checks:says_ok"},
            ],
        },
        {
            "name": "prose",
            "inputs": "status please",
            "evaluators": [
                {"JsonSchema": {"schema": {"type": "object"}}},
                {"Regex": "^[0-9]+$"},
                {"Contains": {"value": "fine", "case_sensitive": False}},
                {"PythonCheck": "eval_checks:says_ok"},
            ],
        },
    ]
    build = _support({"json": ['{"ok": true}'], "prose": ["All is FINE."]})
    results = evaluate(load_dataset(cases), {"one": build}, out=tmp_path)
    assert _checks(_one(results, "json")) == {
        "JsonSchema": True,
        "Regex": True,
        "Equals": True,
        "says_ok": True,
    }
    prose = _one(results, "prose")
    assert _checks(prose) == {
        "JsonSchema": False,
        "Regex": False,
        "Contains": True,
        "says_ok": False,
    }
    assert prose.assertions["JsonSchema"]["reason"].startswith("not JSON")
    assert not prose.passed


def test_judge_grades_with_a_model(tmp_path: Path) -> None:
    judge = ScriptedChatModel(
        [
            '{"reason": "It names the refund.", "passed": true}',
            '{"reason": "It does not say what was done.", "passed": false}',
        ]
    )
    dataset = load_dataset(
        [
            {"name": "good", "inputs": "refund A-1001"},
            {"name": "bad", "inputs": "refund A-1001"},
        ]
    )
    dataset.evaluators.append(Judge(rubric="Says what was refunded.", model=judge))
    build = _support({"good": ["I refunded 40 dollars."], "bad": ["Hello!"]})
    results = evaluate(dataset, {"one": build}, out=tmp_path)
    good, bad = _one(results, "good"), _one(results, "bad")
    assert good.assertions["Judge"] == {"value": True, "reason": "It names the refund."}
    assert bad.assertions["Judge"]["value"] is False
    # the judge saw the rubric, the request and the answer
    first = judge.calls[0].messages
    assert "Says what was refunded." in first[0].content
    assert "Request: refund A-1001" in first[1].content
    assert "Answer: I refunded 40 dollars." in first[1].content
    judge.assert_consumed()


# -- trajectories ----------------------------------------------------------------------------
def test_trajectory_checks(tmp_path: Path) -> None:
    lookup = calls(call("lookup_order", {"order_id": "A-1001"}, "c1"))
    refund = calls(call("issue_refund", {"order_id": "A-1001", "amount": 40}, "c2"))
    email = calls(call("send_email", {"order_id": "A-1001", "message": "Refunded."}, "c3"))
    evaluators: list[Any] = [
        {"ToolCalled": {"tool": "issue_refund", "args": {"amount": 40}}},
        {"ToolCalled": {"tool": "issue_refund", "agent": "support", "times": 2}},
        {"ToolNotCalled": {"tool": "issue_refund", "args": {"amount": 41}}},
        {"ToolNotCalled": "send_email"},
        {"ToolsInOrder": ["lookup_order", "issue_refund"]},
        {"ToolsSubset": ["lookup_order", "issue_refund"]},
    ]
    cases = [
        {"name": "neat", "inputs": "refund", "evaluators": evaluators},
        {"name": "messy", "inputs": "refund", "evaluators": evaluators},
    ]
    build = _support({"neat": [lookup, refund, "Done."], "messy": [refund, email, lookup, "Done."]})
    results = evaluate(load_dataset(cases), {"one": build}, out=tmp_path)
    assert list(_checks(_one(results, "neat")).values()) == [True, False, True, True, True, True]
    messy = _one(results, "messy")
    assert list(_checks(messy).values()) == [True, False, True, False, False, False]
    assert messy.assertions["ToolsSubset"]["reason"] == (
        "called outside ['lookup_order', 'issue_refund']: send_email"
    )
    assert [c["tool"] for c in messy.get("trajectory")] == [
        "issue_refund",
        "send_email",
        "lookup_order",
    ]
    assert [c["status"] for c in messy.get("trajectory")] == ["ok", "ok", "ok"]


# -- governance --------------------------------------------------------------------------------
@tool(risk="high")
def wire_money(account: str, amount: int) -> str:
    """Send money to an account."""
    return f"Sent {amount} to {account}."


@tool(read_only=True)
def balance(account: str) -> str:
    """The balance of an account."""
    return f"{account}: 1000"


def _bank(case: Any) -> Any:
    scripts = {
        "escalated": [
            calls(call("wire_money", {"account": "X", "amount": 5000}, "w1")),
            "Wired.",
        ],
        "refused": [
            calls(call("close_account", {"account": "X"}, "k1")),
            calls(call("balance", {"account": "X", "extra": 1}, "k2")),
            "Sorry.",
        ],
        "quiet": [calls(call("balance", {"account": "X"}, "b1")), "X has 1000."],
    }
    agent = Agent(
        name="teller",
        model=ScriptedChatModel(scripts[case.name]),
        tools=[wire_money, balance],
        max_steps=4,
    )
    policy = Policy(rules=[Rule(tool="wire_money", action="escalate", reason="large transfer")])
    return create_agent_graph(agent, policy=policy)


def test_governance_checks(tmp_path: Path) -> None:
    checks: list[Any] = [
        "NoRefusal",
        "NoEscalation",
        "NoApprovalRequested",
        {"NoUnapprovedRuns": "wire_money"},
    ]
    escalated = {
        "name": "escalated",
        "inputs": {"messages": "wire 5000 to X", "decisions": [{"action": "approve"}]},
        "evaluators": checks,
    }
    cases = [
        escalated,
        {"name": "refused", "inputs": "close X", "evaluators": checks},
        {"name": "quiet", "inputs": "balance of X", "evaluators": checks},
    ]
    results = evaluate(load_dataset(cases), {"bank": _bank}, out=tmp_path)
    # an escalation is not an approval gate: NoUnapprovedRuns counts only approvals
    assert _checks(_one(results, "escalated")) == {
        "NoRefusal": True,
        "NoEscalation": False,
        "NoApprovalRequested": True,
        "NoUnapprovedRuns": False,
    }
    assert _one(results, "escalated").get("escalations") == 1
    refused = _one(results, "refused")
    assert _checks(refused)["NoRefusal"] is False
    assert refused.get("refusals") == 2  # an ungranted tool, an unknown argument
    assert "close_account" in refused.assertions["NoRefusal"]["reason"]
    assert all(_checks(_one(results, "quiet")).values())


def test_approvals_scripted_and_by_default(tmp_path: Path) -> None:
    big = calls(call("issue_refund", {"order_id": "A-1002", "amount": 250}, "c1"))
    scripts = {name: [big, "Done."] for name in ("approve", "edit", "reject", "respond", "open")}
    scripts["small"] = [
        calls(call("issue_refund", {"order_id": "A-1001", "amount": 40}, "c1")),
        "Ok.",
    ]
    decisions = {
        "approve": [{"action": "approve", "tool": "issue_refund", "by": "lead"}],
        "edit": [{"action": "edit", "args": {"amount": 100}}],
        "reject": [{"action": "reject", "reason": "photo first"}],
        "respond": [{"action": "respond", "message": "Handled by phone."}],
        "open": [{"action": "approve", "tool": "send_email"}],  # answers no refund request
        "small": [],
    }
    checks = [
        {"ApprovalRequested": {"tool": "issue_refund", "args": {"amount": 250}}},
        {"NoUnapprovedRuns": ["issue_refund"]},
    ]
    cases = [
        {"name": n, "inputs": {"messages": "refund", "decisions": d}, "evaluators": checks}
        for n, d in decisions.items()
    ]
    results = evaluate(load_dataset(cases), {"one": _support(scripts)}, out=tmp_path)
    status = {c.case: (c.status, c.get("approved"), c.get("rejected")) for c in results.cases}
    assert status == {
        "approve": ("done", 1, 0),
        "edit": ("done", 1, 0),
        "reject": ("done", 0, 1),
        "respond": ("done", 0, 1),
        "open": ("waiting", 0, 0),
        "small": ("done", 0, 0),
    }
    assert _one(results, "edit").get("approval_requests")[0]["decision"] == "edit"
    assert _one(results, "open").get("answer") == ""
    assert _one(results, "open").get("thread_status") == "waiting"  # the registry agrees
    # a small refund runs without a human: the approval checks fail it
    assert _checks(_one(results, "small")) == {
        "ApprovalRequested": False,
        "NoUnapprovedRuns": False,
    }
    assert all(_checks(_one(results, n)).values() for n in ("approve", "edit", "reject", "open"))
    # --approvals approve answers what no scripted decision covers
    again = evaluate(
        load_dataset(cases[4:5]), {"one": _support(scripts)}, approvals="reject", out=tmp_path / "r"
    )
    assert (again.cases[0].status, again.cases[0].get("rejected")) == ("done", 1)


# -- limits, status, per-case config ------------------------------------------------------------
def test_limits_status_and_config(tmp_path: Path) -> None:
    lookup = calls(call("lookup_order", {"order_id": "A-1001"}, "c1"))
    cases = [
        {
            "name": "within",
            "inputs": "look up A-1001",
            "evaluators": [
                {"MaxTokens": 10_000},
                {"MaxModelCalls": 2},
                {"MaxCost": 0.0},
                {"MaxDuration": 60},
                {"Status": "done"},
            ],
        },
        {
            "name": "over",
            "inputs": "look up A-1001",
            "evaluators": [{"MaxTokens": 50}, {"MaxModelCalls": 1}, {"Status": "done"}],
        },
        {
            # per-case config reaches the run: a recursion limit of 2 stops it
            "name": "stopped",
            "inputs": {"messages": "look up A-1001", "config": {"recursion_limit": 2}},
            "evaluators": [{"Status": "error"}],
        },
    ]
    scripts = {"within": [lookup, "Found."], "over": [lookup, "Found."], "stopped": [lookup, "x"]}
    results = evaluate(load_dataset(cases), {"one": _support(scripts)}, out=tmp_path)
    assert all(_checks(_one(results, "within")).values())
    assert _one(results, "within").passed
    over = _one(results, "over")
    assert _checks(over) == {"MaxTokens": False, "MaxModelCalls": False, "Status": True}
    assert over.assertions["MaxModelCalls"]["reason"] == "2 model calls (limit 1)"
    stopped = _one(results, "stopped")
    assert stopped.status == "error"
    assert "GraphRecursionError" in stopped.get("error")
    assert _checks(stopped) == {"Status": True}
    assert not stopped.passed  # a run that failed never passes


def test_max_cost_fails_unpriced_and_expensive_runs() -> None:
    from pydantic_evals.evaluators import EvaluatorContext

    from podium.eval import MaxCost, RunRecord

    def ctx(cost: float, priced: bool) -> Any:
        event = {"kind": "model", "cost": cost, "input_tokens": 1, "output_tokens": 1,
                 "status": "ok", "data": {"priced": priced}}  # fmt: skip
        run = RunRecord(thread_id="t", status="done", answer="", events=[event])
        return EvaluatorContext(
            name="c", inputs=None, metadata=None, expected_output=None, output="",
            duration=0.0, _span_tree=None, attributes={"run": run}, metrics={},
        )  # fmt: skip

    assert MaxCost(usd=0.01).evaluate(ctx(0.005, True)).value is True
    assert MaxCost(usd=0.01).evaluate(ctx(0.02, True)).value is False
    unpriced = MaxCost(usd=0.01).evaluate(ctx(0.0, False))
    assert (unpriced.value, unpriced.reason) == (False, "1 model call(s) have no known price")


def test_a_graph_that_fails_to_build_is_an_error_case(tmp_path: Path) -> None:
    def broken(home: Path) -> Any:
        return "not a graph"

    results = evaluate(load_dataset([{"name": "x", "inputs": "hi"}]), {"b": broken}, out=tmp_path)
    [case] = results.cases
    assert (case.passed, case.status) == (False, "error")
    assert "returned a str, not an uncompiled StateGraph" in case.get("error")


def test_scripted_messages_with_history(tmp_path: Path) -> None:
    seen = ScriptedChatModel(["Yes, 40 dollars."])
    agent = Agent(name="desk", model=seen)
    case = {
        "name": "history",
        "inputs": {
            "messages": [
                {"role": "user", "content": "I paid 40 for A-1001."},
                {"role": "assistant", "content": "Noted."},
                "Was it 40?",
            ]
        },
    }
    results = evaluate(load_dataset([case]), {"g": create_agent_graph(agent)}, out=tmp_path)
    assert results.cases[0].get("answer") == "Yes, 40 dollars."
    sent = [(m.type, m.content) for m in seen.calls[0].messages if m.type != "system"]
    assert sent == [("human", "I paid 40 for A-1001."), ("ai", "Noted."), ("human", "Was it 40?")]
