"""Budgets: usage accounting across patterns, and every action when one runs out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.messages.ai import UsageMetadata
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import BaseModel

from podium import (
    Agent,
    Budget,
    BudgetExceededError,
    ConfigurationError,
    InvalidDecisionError,
    runs,
)
from podium.checkpoints import sqlite_saver
from podium.graphs import (
    Stage,
    create_agent_graph,
    create_handoff_graph,
    create_manager_graph,
    create_parallel_graph,
    create_pipeline_graph,
)
from podium.observe import Price
from podium.testing import ScriptedChatModel
from podium.tools import Decision, tool


def used(inp: int, out: int) -> UsageMetadata:
    return UsageMetadata(input_tokens=inp, output_tokens=out, total_tokens=inp + out)


def reply(text: str, inp: int = 10, out: int = 5, **kw: Any) -> AIMessage:
    return AIMessage(text, usage_metadata=used(inp, out), **kw)


def call(name: str, args: dict[str, Any], id_: str) -> dict[str, Any]:
    return {"name": name, "args": args, "id": id_}


@tool(read_only=True)
def lookup(q: str) -> str:
    """Look something up."""
    return f"found {q}"


def looping(n: int, inp: int = 10, out: int = 5) -> ScriptedChatModel:
    """A model that looks something up ``n`` times, then answers."""
    script: list[AIMessage | str] = [
        reply("", inp, out, tool_calls=[call("lookup", {"q": str(i)}, f"c{i}")]) for i in range(n)
    ]
    return ScriptedChatModel([*script, reply("final answer", inp, out)])


def cfg(thread: str = "t") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def run_agent(agent: Agent, budget: Budget | None = None, saver: Any = None) -> dict[str, Any]:
    app = create_agent_graph(agent, budget=budget).compile(checkpointer=saver or InMemorySaver())
    out: dict[str, Any] = app.invoke({"messages": [("user", "go")]}, cfg())
    return out


def stop_of(out: dict[str, Any]) -> AIMessage:
    last = out["messages"][-1]
    assert isinstance(last, AIMessage)
    assert last.response_metadata["podium_stop"] == "budget"
    return last


# -- accounting ------------------------------------------------------------------------
def test_usage_is_counted_exactly_with_costs_from_the_price_table() -> None:
    prices = {"scripted": Price(input=1_000_000, output=2_000_000)}  # $1 and $2 per token
    budget = Budget(cost=1_000, prices=prices)
    out = run_agent(Agent(name="a", model=looping(2), tools=[lookup]), budget)
    total = out["usage"]["total"]
    assert (total["input_tokens"], total["output_tokens"], total["model_calls"]) == (30, 15, 3)
    assert total["cost"] == pytest.approx(30 * 1 + 15 * 2)
    assert out["usage"]["agents"]["a"]["output_tokens"] == 15
    assert total["started_at"] > 0


def test_scripted_and_local_models_cost_nothing_but_count_tokens() -> None:
    out = run_agent(Agent(name="a", model=looping(1), tools=[lookup]), Budget(cost=0.01))
    assert out["usage"]["total"]["cost"] == 0.0
    assert out["usage"]["total"]["output_tokens"] == 10
    assert out["messages"][-1].content == "final answer"


# -- on_exhausted="stop", for every kind of limit ---------------------------------------
@pytest.mark.parametrize(
    ("limit", "value"),
    [
        ("input_tokens", 20),
        ("output_tokens", 10),
        ("tokens", 30),
        ("model_calls", 2),
        ("cost", 0.000030),
        ("seconds", 0.3),
    ],
)
def test_each_limit_stops_the_run_cleanly(limit: str, value: float) -> None:
    model = looping(5)
    if limit == "seconds":
        model = ScriptedChatModel(model.responses, delay=0.2)
    budget = Budget(**{limit: value}, prices={"scripted": Price(1.0, 1.0)})
    out = run_agent(Agent(name="a", model=model, tools=[lookup]), budget)
    last = stop_of(out)
    assert limit in last.content
    assert "the run's budget" in last.content
    assert last.response_metadata["podium_budget"]["exceeded"].keys() == {limit}
    assert last.name == "a"
    assert not last.tool_calls
    assert out["usage"]["total"]["model_calls"] == 2  # checked before the third call


def test_a_finished_budget_stops_the_next_turn_before_any_call() -> None:
    model = ScriptedChatModel([reply("one", 10, 100)])
    app = create_agent_graph(Agent(name="a", model=model), budget=Budget(output_tokens=50))
    app = app.compile(checkpointer=InMemorySaver())
    assert app.invoke({"messages": [("user", "1")]}, cfg())["messages"][-1].content == "one"
    out = app.invoke({"messages": [("user", "2")]}, cfg())
    assert "output_tokens: 100 of 50 used" in stop_of(out).content
    model.assert_consumed()


def test_on_exhausted_raise() -> None:
    agent = Agent(name="a", model=looping(3), tools=[lookup])
    with pytest.raises(BudgetExceededError, match="model_calls: 1 of 1 used"):
        run_agent(agent, Budget(model_calls=1, on_exhausted="raise"))


def test_agent_budget_applies_to_that_agent_only() -> None:
    agent = Agent(name="a", model=looping(3), tools=[lookup], budget=Budget(model_calls=2))
    last = stop_of(run_agent(agent))
    assert "agent 'a''s budget" in last.content
    assert last.response_metadata["podium_budget"]["scope"] == "agent:a"


# -- on_exhausted="escalate" ------------------------------------------------------------
SCOPE = "run:a#383d7416"  # Budget(model_calls=2, on_exhausted="escalate") of graph "a"


def escalating(saver: BaseCheckpointSaver[Any]) -> tuple[Any, ScriptedChatModel]:
    model = looping(4)
    agent = Agent(name="a", model=model, tools=[lookup])
    budget = Budget(model_calls=2, on_exhausted="escalate")
    return create_agent_graph(agent, budget=budget).compile(checkpointer=saver), model


def test_escalate_then_approve_grants_one_more_allowance(
    checkpointer: BaseCheckpointSaver[Any],
) -> None:
    app, model = escalating(checkpointer)
    app.invoke({"messages": [("user", "go")]}, cfg())
    [request] = runs.pending(app, cfg())
    assert (request.kind, request.tool) == ("escalation", "budget")
    # the graph's name and a digest of its budget: the same in every process and release
    assert request.args["scope"] == SCOPE
    assert request.args["exceeded"] == {"model_calls": {"used": 2, "limit": 2}}
    runs.decide(app, cfg(), {request.id: Decision.approve(by="ops")})  # 2 more calls
    [again] = runs.pending(app, cfg())
    assert again.args["exceeded"] == {"model_calls": {"used": 4, "limit": 4}}
    out = runs.decide(app, cfg(), {again.id: Decision.approve(by="ops")})
    assert out["messages"][-1].content == "final answer"
    assert out["usage"]["extended"] == {SCOPE: {"model_calls": 4.0}}
    model.assert_consumed()


def test_escalate_then_edit_sets_new_limits() -> None:
    app, model = escalating(InMemorySaver())
    app.invoke({"messages": [("user", "go")]}, cfg())
    [request] = runs.pending(app, cfg())
    out = runs.decide(app, cfg(), {request.id: Decision.edit({"model_calls": 10}, by="ops")})
    assert out["messages"][-1].content == "final answer"
    model.assert_consumed()


def test_escalate_edit_with_a_bad_limit_is_refused_and_asked_again() -> None:
    app, _ = escalating(InMemorySaver())
    app.invoke({"messages": [("user", "go")]}, cfg())
    [request] = runs.pending(app, cfg())
    before = len(list(app.get_state_history(cfg())))
    with pytest.raises(InvalidDecisionError, match="edited budget was refused"):
        runs.decide(app, cfg(), {request.id: Decision.edit({"dollars": 5}, by="ops")})
    [again] = runs.pending(app, cfg())
    assert again.id == request.id
    assert "edited budget was refused" in again.note
    assert len(list(app.get_state_history(cfg()))) == before  # nothing changed


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        ({"model_calls": float("nan")}, "model_calls=nan is not a finite number"),
        ({"model_calls": float("inf")}, "model_calls=inf is not a finite number"),
        ({"model_calls": float("-inf")}, "model_calls=-inf is not a finite number"),
        ({"model_calls": -5}, "model_calls=-5 is not above the 2 already used"),
        ({"model_calls": 1}, "model_calls=1 is not above the 2 already used"),
        ({"model_calls": 2}, "model_calls=2 is not above the 2 already used"),
        ({"model_calls": True}, "model_calls must be a number"),
        ({"model_calls": "10"}, "model_calls must be a number"),
        ({"output_tokens": 10}, "this budget sets no output_tokens limit"),
        ({}, "an edit sets new limits"),
    ],
)
def test_escalate_edit_must_leave_a_finite_limit_above_what_is_used(
    edit: dict[str, Any], match: str
) -> None:
    app, model = escalating(InMemorySaver())
    app.invoke({"messages": [("user", "go")]}, cfg())
    [request] = runs.pending(app, cfg())
    with pytest.raises(InvalidDecisionError, match="edited budget was refused"):
        runs.decide(app, cfg(), {request.id: Decision.edit(edit, by="ops")})
    [again] = runs.pending(app, cfg())  # refused, nothing ran, the human is asked again
    assert again.id == request.id
    assert "edited budget was refused" in (again.note or "")
    assert match in (again.note or "")
    assert 'e.g. {"model_calls": 4}' in (again.note or "")
    assert len(model.calls) == 2
    # a valid edit then goes through: the refused value never became a limit
    runs.decide(app, cfg(), {again.id: Decision.edit({"model_calls": 4}, by="ops")})
    [third] = runs.pending(app, cfg())
    assert third.args["exceeded"] == {"model_calls": {"used": 4, "limit": 4}}
    assert len(model.calls) == 4


def test_escalate_edit_must_raise_every_exhausted_limit() -> None:
    model = looping(4, inp=10, out=5)
    agent = Agent(name="a", model=model, tools=[lookup])
    budget = Budget(model_calls=2, output_tokens=10, on_exhausted="escalate")
    app = create_agent_graph(agent, budget=budget).compile(checkpointer=InMemorySaver())
    app.invoke({"messages": [("user", "go")]}, cfg())
    [request] = runs.pending(app, cfg())
    assert set(request.args["exceeded"]) == {"model_calls", "output_tokens"}
    with pytest.raises(InvalidDecisionError, match="output_tokens is used up"):
        runs.decide(app, cfg(), {request.id: Decision.edit({"model_calls": 9}, by="ops")})
    [again] = runs.pending(app, cfg())
    assert "output_tokens is used up and the edit leaves it as it is" in (again.note or "")
    edit = Decision.edit({"model_calls": 9, "output_tokens": 100}, by="ops")
    out = runs.decide(app, cfg(), {again.id: edit})
    assert out["messages"][-1].content == "final answer"
    model.assert_consumed()


def test_escalate_edit_sent_as_json_with_nan_is_refused() -> None:
    from langgraph.types import Command

    app, model = escalating(InMemorySaver())
    [interrupt] = app.invoke({"messages": [("user", "go")]}, cfg())["__interrupt__"]
    # Python's json reads NaN and Infinity: a remote client can send them
    edit = json.loads('{"action": "edit", "args": {"model_calls": NaN}, "by": "o"}')
    paused = app.invoke(Command(resume={interrupt.id: edit}), cfg())
    [again] = paused["__interrupt__"]
    assert "not a finite number" in again.value["note"]
    assert len(model.calls) == 2


def test_escalate_then_reject_stops() -> None:
    app, _ = escalating(InMemorySaver())
    app.invoke({"messages": [("user", "go")]}, cfg())
    [request] = runs.pending(app, cfg())
    out = runs.decide(app, cfg(), {request.id: Decision.reject("enough", by="ops")})
    last = stop_of(out)
    assert "ops chose to stop: enough" in last.content


def test_escalate_then_respond_answers() -> None:
    app, _ = escalating(InMemorySaver())
    app.invoke({"messages": [("user", "go")]}, cfg())
    [request] = runs.pending(app, cfg())
    out = runs.decide(app, cfg(), {request.id: Decision.respond("Partial answer.", by="o")})
    last = stop_of(out)
    assert last.content == "Partial answer."
    assert last.response_metadata["responded_by"] == "o"


# -- across patterns -----------------------------------------------------------------------
def test_manager_run_budget_counts_the_specialists_private_runs() -> None:
    boss = Agent(
        name="boss",
        model=ScriptedChatModel(
            [reply("", 10, 5, tool_calls=[call("research", {"task": "dig"}, "d1")]), "never"]
        ),
    )
    research = Agent(
        name="research",
        description="Digs",
        model=ScriptedChatModel([reply("deep result", 100, 200)]),
    )
    app = create_manager_graph(boss, [research], budget=Budget(output_tokens=100)).compile(
        checkpointer=InMemorySaver()
    )
    out = app.invoke({"messages": [("user", "go")]}, cfg())
    usage = out["usage"]
    assert usage["total"]["output_tokens"] == 205
    assert usage["agents"]["research"]["input_tokens"] == 100
    assert usage["agents"]["boss"]["model_calls"] == 1
    assert "output_tokens: 205 of 100 used" in stop_of(out).content
    delegated = next(m for m in out["messages"] if isinstance(m, ToolMessage))
    assert delegated.content == "deep result"


def test_manager_grants_a_sub_budget_per_delegation() -> None:
    boss = Agent(
        name="boss",
        model=ScriptedChatModel(
            [
                reply("", tool_calls=[call("research", {"task": "a"}, "d1")]),
                reply("", tool_calls=[call("research", {"task": "b"}, "d2")]),
                "both done",
            ]
        ),
    )
    # each delegation may make 2 model calls: the first one loops and is stopped; the
    # second starts with a fresh allowance and answers within it
    research = Agent(name="research", description="Digs", model=looping(3), tools=[lookup])
    app = create_manager_graph(
        boss, [research], specialist_budget={"research": Budget(model_calls=2)}
    ).compile(checkpointer=InMemorySaver())
    out = app.invoke({"messages": [("user", "go")]}, cfg())
    results = [
        m.content for m in out["messages"] if isinstance(m, ToolMessage) and m.name == "research"
    ]
    assert "the delegation budget of 'research'" in results[0]
    assert "model_calls: 2 of 2 used" in results[0]
    assert results[1] == "final answer"
    assert out["messages"][-1].content == "both done"
    assert out["usage"]["agents"]["research"]["model_calls"] == 4


def test_specialist_budget_must_name_specialists() -> None:
    boss = Agent(name="boss", model=ScriptedChatModel([]))
    spec = Agent(name="s", model=ScriptedChatModel([]))
    with pytest.raises(ConfigurationError, match="unknown specialist"):
        create_manager_graph(boss, [spec], specialist_budget={"x": Budget(tokens=1)})


def test_handoff_usage_includes_every_member() -> None:
    go = call("transfer_to_billing", {"reason": "money"}, "h1")
    triage = Agent(name="triage", model=ScriptedChatModel([reply("", 3, 4, tool_calls=[go])]))
    billing = Agent(name="billing", model=ScriptedChatModel([reply("refunded", 30, 40)]))
    app = create_handoff_graph([triage, billing], default_agent="triage").compile(
        checkpointer=InMemorySaver()
    )
    out = app.invoke({"messages": [("user", "refund")]}, cfg())
    assert out["usage"]["total"]["output_tokens"] == 44
    assert set(out["usage"]["agents"]) == {"triage", "billing"}


def test_handoff_run_budget_is_seen_by_the_next_member() -> None:
    go = call("transfer_to_billing", {"reason": "money"}, "h1")
    triage = Agent(name="triage", model=ScriptedChatModel([reply("", 3, 40, tool_calls=[go])]))
    billing = Agent(name="billing", model=ScriptedChatModel([]))
    app = create_handoff_graph(
        [triage, billing], default_agent="triage", budget=Budget(output_tokens=40)
    ).compile(checkpointer=InMemorySaver())
    out = app.invoke({"messages": [("user", "refund")]}, cfg())
    assert stop_of(out).name == "billing"


def test_parallel_and_join_usage_are_folded_in() -> None:
    a = Agent(name="a", model=ScriptedChatModel([reply("A", 1, 2)]))
    b = Agent(name="b", model=ScriptedChatModel([reply("B", 10, 20)]))
    judge = Agent(name="judge", model=ScriptedChatModel([reply("A and B", 100, 200)]))
    app = create_parallel_graph([a, b], join=judge).compile(checkpointer=InMemorySaver())
    out = app.invoke({"messages": [("user", "both")]}, cfg())
    assert out["usage"]["total"]["output_tokens"] == 222
    assert out["usage"]["total"]["model_calls"] == 3


def test_pipeline_usage_sums_stages_and_their_retries() -> None:
    class Plan(BaseModel):
        steps: list[str]

    planner = Agent(
        name="planner",
        model=ScriptedChatModel([reply("not json", 1, 1), reply('{"steps": ["x"]}')]),
    )
    writer = Agent(name="writer", model=ScriptedChatModel([reply("done", 100, 100)]))
    app = create_pipeline_graph(
        [Stage("plan", planner, Plan), Stage("write", writer)], budget=Budget(tokens=10_000)
    ).compile(checkpointer=InMemorySaver())
    out = app.invoke({"messages": [("user", "plan it")]}, cfg())
    assert out["usage"]["total"]["model_calls"] == 3
    assert out["usage"]["total"]["output_tokens"] == 106


def test_pipeline_budget_stops_a_later_stage() -> None:
    planner = Agent(name="planner", model=ScriptedChatModel([reply("plan", 10, 500)]))
    writer = Agent(name="writer", model=ScriptedChatModel([]))
    app = create_pipeline_graph(
        [Stage("plan", planner), Stage("write", writer)], budget=Budget(output_tokens=100)
    ).compile(checkpointer=InMemorySaver())
    out = app.invoke({"messages": [("user", "plan it")]}, cfg())
    assert "Stopped before calling the model" in out["messages"][-1].content


# -- nested graphs with the same name ----------------------------------------------------
def test_a_stage_named_like_its_pipeline_keeps_its_own_budget() -> None:
    # The inner graph and the pipeline are both named "team". Each budget has its own
    # scope: the stage stops at its 2 calls, and the pipeline's 3 stop the next stage.
    inner = create_agent_graph(
        Agent(name="team", model=looping(5), tools=[lookup]), budget=Budget(model_calls=2)
    )
    reviewer = Agent(name="reviewer", model=looping(5), tools=[lookup])
    app = create_pipeline_graph(
        [Stage("draft", inner), Stage("review", reviewer)],
        name="team",
        budget=Budget(model_calls=3),
    ).compile(checkpointer=InMemorySaver())
    out = app.invoke({"messages": [("user", "go")]}, cfg())
    assert out["usage"]["agents"]["team"]["model_calls"] == 2  # the inner limit held
    assert out["usage"]["agents"]["reviewer"]["model_calls"] == 1  # then the outer one
    assert "(team) (model_calls: 2 of 2 used)" in out["stage_outputs"]["draft"]
    assert "(team) (model_calls: 3 of 3 used)" in out["stage_outputs"]["review"]


def test_nested_same_name_budgets_escalate_apart_and_resume_in_a_new_process(
    tmp_path: Path,
) -> None:
    import nested_budget_app as nested

    db = tmp_path / "runs.sqlite"
    with sqlite_saver(db) as saver:
        app = nested.build(nested.FIRST_PROCESS).compile(checkpointer=saver)
        app.invoke({"messages": [("user", "charge A-1")]}, nested.CONFIG)
        [request] = runs.pending(app, nested.CONFIG)
        scope = request.args["scope"]
        assert request.tool == "budget"
        assert request.args["exceeded"] == {"model_calls": {"used": 2, "limit": 2}}
        assert scope.startswith("run:team#")
        assert "the run's budget (team)" in (request.reason or "")
        runs.decide(app, nested.CONFIG, {request.id: Decision.approve(by="ops")})
        [approval] = runs.pending(app, nested.CONFIG)  # the 3rd call: charge, inside 2 + 2
        assert approval.tool == "charge"
    # Another process (another hash seed) resumes: it finds the extension under the same
    # scope, so the 4th call runs without asking again, and the outer budget is intact.
    proc = subprocess.run(
        [sys.executable, nested.__file__, str(db), approval.id],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["pending"] == []
    assert result["stage_outputs"] == {"work": "Charged A-1."}
    assert result["usage"]["total"]["model_calls"] == 4
    assert result["usage"]["extended"] == {scope: {"model_calls": 2.0}}


def test_run_budget_scopes_follow_the_budget_definition() -> None:
    def scope_of(budget: Budget) -> str:
        model = ScriptedChatModel([reply("x")])
        app = create_agent_graph(Agent(name="a", model=model), budget=budget)
        out = app.compile(checkpointer=InMemorySaver()).invoke(
            {"messages": [("user", "go")]}, cfg()
        )
        return str(stop_of(out).response_metadata["podium_budget"]["scope"])

    assert scope_of(Budget(model_calls=0)) == scope_of(Budget(model_calls=0))
    assert scope_of(Budget(model_calls=0)) == scope_of(Budget(model_calls=0.0))
    scopes = {
        scope_of(Budget(model_calls=0)),
        scope_of(Budget(model_calls=0, tokens=5)),
        scope_of(Budget(model_calls=0, on_exhausted="stop", prices={"x": Price(1, 1)})),
    }
    assert len(scopes) == 3
    assert all(s.startswith("run:a#") for s in scopes)


# -- validation ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "sets no limit"),
        ({"tokens": -1}, "non-negative"),
        ({"cost": "1"}, "non-negative"),
        ({"model_calls": float("nan")}, r"Budget\(model_calls=nan\): limits are finite"),
        ({"model_calls": float("inf")}, r"Budget\(model_calls=inf\): limits are finite"),
        ({"cost": float("-inf")}, "not NaN, infinity or a bool"),
        ({"seconds": float("nan"), "tokens": 5}, "seconds=nan"),
        ({"tokens": True}, "not NaN, infinity or a bool"),
        ({"tokens": None, "cost": -0.5}, "non-negative"),
        ({"tokens": 5, "on_exhausted": "pause"}, "on_exhausted"),
    ],
)
def test_budget_validates_its_fields(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        Budget(**kwargs)


def test_factories_and_agents_refuse_a_non_budget() -> None:
    agent = Agent(name="a", model=ScriptedChatModel([]))
    with pytest.raises(ConfigurationError, match="budget must be a podium Budget"):
        create_agent_graph(agent, budget={"tokens": 5})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="budget must be a podium Budget"):
        Agent(name="a", budget=5)  # type: ignore[arg-type]


def test_agent_budget_counts_across_delegations() -> None:
    boss = Agent(
        name="boss",
        model=ScriptedChatModel(
            [
                reply("", tool_calls=[call("research", {"task": "a"}, "d1")]),
                reply("", tool_calls=[call("research", {"task": "b"}, "d2")]),
                "done",
            ]
        ),
    )
    # the agent's own budget spans the run: its second delegation sees the first's calls
    research = Agent(
        name="research",
        description="Digs",
        model=ScriptedChatModel([reply("first"), reply("second")]),
        budget=Budget(model_calls=1),
    )
    app = create_manager_graph(boss, [research]).compile(checkpointer=InMemorySaver())
    out = app.invoke({"messages": [("user", "go")]}, cfg())
    results = [m.content for m in out["messages"] if isinstance(m, ToolMessage)]
    assert results[0] == "first"
    assert "agent 'research''s budget (model_calls: 1 of 1 used)" in results[1]


async def test_budget_escalation_under_ainvoke() -> None:
    from langgraph.types import Command

    app, model = escalating(InMemorySaver())
    paused = await app.ainvoke({"messages": [("user", "go")]}, cfg())
    [interrupt] = paused["__interrupt__"]
    edit = {"action": "edit", "args": {"model_calls": 50}, "by": "o"}
    out = await app.ainvoke(Command(resume={interrupt.id: edit}), cfg())
    assert out["messages"][-1].content == "final answer"
    model.assert_consumed()
