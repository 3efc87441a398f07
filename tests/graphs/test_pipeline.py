"""The pipeline pattern: typed stage outputs, retries, rework, action gates, composition."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import BaseModel

from podium import (
    Agent,
    ApproverNotAllowedError,
    ConfigurationError,
    HumanUnavailableError,
    InvalidDecisionError,
    InvalidModelOutputError,
    ReworkLimitError,
    UnknownRequestError,
    runs,
)
from podium.graphs import (
    Rework,
    Stage,
    StageInput,
    create_parallel_graph,
    create_pipeline_graph,
)
from podium.testing import ScriptedChatModel
from podium.tools import Decision, Policy, Rule, tool

CFG = {"configurable": {"thread_id": "pipe-1"}}


class Facts(BaseModel):
    facts: list[str]


class Outline(BaseModel):
    sections: list[str]


class Release(BaseModel):
    version: str
    notes: str = ""


def agent(name: str, *replies: str) -> Agent:
    return Agent(name=name, model=ScriptedChatModel(list(replies)))


def model_of(a: Agent) -> ScriptedChatModel:
    assert isinstance(a.model, ScriptedChatModel)
    return a.model


def ask(app: Any, text: str, config: Any = None) -> dict[str, Any]:
    return dict(app.invoke({"messages": [("user", text)]}, config))


# -- ordered, typed stages -----------------------------------------------------------
def test_stages_run_in_order_with_typed_outputs() -> None:
    research = agent("researcher", '{"facts": ["rail is cheap", "rail is slow"]}')
    writer = agent("writer", "Trains: cheap but slow.")
    seen: list[StageInput] = []

    def outline(inp: StageInput) -> Outline:
        seen.append(inp)
        return Outline(sections=[f.title() for f in inp.previous.facts])

    app = create_pipeline_graph(
        [
            Stage("research", research, output=Facts),
            Stage("outline", outline, output=Outline),
            Stage("write", writer),
        ],
        name="brief",
    ).compile(checkpointer=InMemorySaver())
    out = ask(app, "Trains?", CFG)

    (inp,) = seen
    assert isinstance(inp.previous, Facts)  # re-validated from the stored dict
    assert inp.outputs == {"research": inp.previous}
    assert inp.request == "Trains?"
    assert out["stage_outputs"] == {
        "research": {"facts": ["rail is cheap", "rail is slow"]},
        "outline": {"sections": ["Rail Is Cheap", "Rail Is Slow"]},
        "write": "Trains: cheap but slow.",
    }
    assert [(r["stage"], r["status"]) for r in out["stage_log"]] == [
        ("research", "done"),
        ("outline", "done"),
        ("write", "done"),
    ]
    assert out["messages"][-1].content == "Trains: cheap but slow."
    assert out["messages"][-1].name == "brief"
    assert len(out["messages"]) == 2
    # the research agent was told the schema; the writer got the earlier outputs
    research_prompt = model_of(research).calls[0].messages[-1].content
    assert "Reply with only a JSON object that matches this JSON schema" in research_prompt
    assert '"facts"' in research_prompt
    writer_prompt = model_of(writer).calls[0].messages
    assert writer_prompt[0].content == "Trains?"
    assert "## outline\n{\n" in writer_prompt[-1].content
    assert "Rail Is Slow" in writer_prompt[-1].content
    # stored outputs survive a checkpoint round trip as plain JSON
    assert json.loads(json.dumps(app.get_state(CFG).values["stage_outputs"]))


def test_invalid_output_is_sent_back_then_accepted() -> None:
    research = agent("researcher", "Sure! Rail is cheap.", '```json\n{"facts": ["cheap"]}\n```')
    app = create_pipeline_graph([Stage("research", research, output=Facts)]).compile()
    out = ask(app, "Trains?")
    assert out["stage_outputs"]["research"] == {"facts": ["cheap"]}
    assert out["stage_log"][0]["detail"] == {"attempts": 2}
    retry = model_of(research).calls[1].messages
    assert retry[-2].content == "Sure! Rail is cheap."
    assert isinstance(retry[-1], HumanMessage)
    assert "Your answer is not a valid Facts JSON object: (root): Invalid JSON" in retry[-1].content


def test_invalid_output_fails_after_retries() -> None:
    research = agent("researcher", "no", '{"facts": "cheap"}')
    app = create_pipeline_graph([Stage("research", research, output=Facts, retries=1)]).compile()
    with pytest.raises(
        InvalidModelOutputError,
        match=r"Stage 'research': the answer did not validate as Facts after 2 attempt\(s\)\. "
        r"Last problem: .*facts: Input should be a valid array",
    ):
        ask(app, "Trains?")
    model_of(research).assert_consumed()


def test_function_stage_output_is_validated() -> None:
    app = create_pipeline_graph([Stage("plan", lambda inp: {"steps": 1}, output=Outline)]).compile()
    with pytest.raises(ConfigurationError, match=r"Stage 'plan' returned .* not a valid Outline"):
        ask(app, "go")
    unstorable = create_pipeline_graph([Stage("raw", lambda inp: object())]).compile()
    with pytest.raises(ConfigurationError, match="cannot be stored in a checkpoint"):
        ask(unstorable, "go")


# -- rework ------------------------------------------------------------------------------
def _rework_pipeline(passes_after: int, max_rework: int) -> tuple[Any, list[str | None]]:
    feedback_seen: list[str | None] = []

    def research(inp: StageInput) -> Facts:
        feedback_seen.append(inp.feedback)
        return Facts(facts=["f"] * len(feedback_seen))

    def check(inp: StageInput) -> Any:
        facts = inp.outputs["research"].facts
        if len(facts) < passes_after:
            return Rework(to="research", feedback=f"only {len(facts)} fact(s); need more")
        return {"ok": True}

    stages = [
        Stage("research", research, output=Facts),
        Stage("check", check, rework_to="research"),
        Stage("publish", lambda inp: f"published {len(inp.outputs['research'].facts)} facts"),
    ]
    return create_pipeline_graph(stages, max_rework=max_rework).compile(), feedback_seen


def test_rework_sends_work_back_with_feedback() -> None:
    app, feedback = _rework_pipeline(passes_after=3, max_rework=2)
    out = ask(app, "go")
    assert feedback == [None, "only 1 fact(s); need more", "only 2 fact(s); need more"]
    assert out["messages"][-1].content == "published 3 facts"
    assert out["reworks"] == 2
    assert out["rework"] is None
    assert [(r["stage"], r["status"]) for r in out["stage_log"]] == [
        ("research", "done"),
        ("check", "rework"),
        ("research", "done"),
        ("check", "rework"),
        ("research", "done"),
        ("check", "done"),
        ("publish", "done"),
    ]


def test_rework_is_bounded() -> None:
    app, feedback = _rework_pipeline(passes_after=10, max_rework=2)
    with pytest.raises(
        ReworkLimitError,
        match=r"Stage 'check' sent work back to 'research' again, but the pipeline allows "
        r"max_rework=2 per run\. Last feedback: only 3 fact",
    ):
        ask(app, "go")
    assert len(feedback) == 3


def test_agent_stage_can_ask_for_rework_through_its_output_model() -> None:
    class Review(BaseModel):
        ok: bool
        rework: Rework | None = None

    writer = agent("writer", "draft one", "draft two")
    reviewer = agent(
        "reviewer",
        '{"ok": false, "rework": {"to": "nowhere", "feedback": "x"}}',
        '{"ok": false, "rework": {"to": "write", "feedback": "Shorter."}}',
        '{"ok": true}',
    )
    app = create_pipeline_graph(
        [Stage("write", writer), Stage("review", reviewer, output=Review)]
    ).compile()
    out = ask(app, "Write a haiku")
    assert out["stage_outputs"] == {"write": "draft two", "review": {"ok": True, "rework": None}}
    # an impossible rework target is invalid output: it went back to the reviewer
    bad_target = model_of(reviewer).calls[1].messages[-1].content
    assert "asks for rework, but it named stage 'nowhere'" in bad_target
    assert "may send work back to: write" in bad_target
    assert "Feedback: Shorter." in model_of(writer).calls[1].messages[-1].content


def test_function_rework_to_a_later_stage_is_refused_at_run_time() -> None:
    stages = [Stage("a", lambda inp: Rework(to="b")), Stage("b", lambda inp: "b")]
    with pytest.raises(ConfigurationError, match=r"may send work back to: \(no earlier stage\)"):
        ask(create_pipeline_graph(stages).compile(), "go")


# -- the action gate ---------------------------------------------------------------------
def _release_pipeline(effects: list[dict[str, Any]]) -> Any:
    def deploy(inp: StageInput) -> str:
        effects.append(inp.previous.model_dump())
        return f"deployed {inp.previous.version}"

    return create_pipeline_graph(
        [
            Stage("prepare", lambda inp: Release(version="1.2", notes="fixes"), output=Release),
            Stage("deploy", deploy, action=True),
            Stage("announce", lambda inp: f"announced ({inp.outputs.get('deploy', 'skipped')})"),
        ],
        name="release",
    )


def test_action_stage_approve_runs_once_even_from_a_new_graph(
    make_saver: Callable[[], BaseCheckpointSaver[Any]],
) -> None:
    effects: list[dict[str, Any]] = []
    out = ask(_release_pipeline(effects).compile(checkpointer=make_saver()), "ship it", CFG)
    assert "__interrupt__" in out
    assert effects == []

    app = _release_pipeline(effects).compile(checkpointer=make_saver())  # a new process
    (request,) = runs.pending(app, CFG)
    assert (request.agent, request.tool, request.kind) == ("release", "deploy", "approval")
    assert request.args == {"version": "1.2", "notes": "fixes"}
    final = runs.decide(app, CFG, {request.id: Decision.approve(by="alice")})
    assert effects == [{"version": "1.2", "notes": "fixes"}]
    assert final["messages"][-1].content == "announced (deployed 1.2)"
    deploy_log = next(r for r in final["stage_log"] if r["stage"] == "deploy")
    assert deploy_log["status"] == "done"

    # resuming again, or deciding again, changes nothing
    assert "__interrupt__" not in runs.resume(app, CFG)
    with pytest.raises(UnknownRequestError, match="already decided"):
        runs.decide(app, CFG, {request.id: Decision.approve(by="alice")})
    assert len(effects) == 1


def test_action_stage_edit_replaces_its_input(checkpointer: BaseCheckpointSaver[Any]) -> None:
    effects: list[dict[str, Any]] = []
    app = _release_pipeline(effects).compile(checkpointer=checkpointer)
    ask(app, "ship it", CFG)
    (request,) = runs.pending(app, CFG)
    # an edit that is not a valid Release is refused and asked again, with a note
    with pytest.raises(InvalidDecisionError, match="is not a valid Release"):
        runs.decide(app, CFG, {request.id: Decision.edit({"version": 3}, by="alice")})
    (retry,) = runs.pending(app, CFG)
    assert retry.id == request.id
    assert "is not a valid Release: version: Input should be a valid string" in retry.note
    # a partial edit is merged onto what the stage would act on
    final = runs.decide(app, CFG, {retry.id: Decision.edit({"version": "1.3"}, by="alice")})
    assert effects == [{"version": "1.3", "notes": "fixes"}]
    assert final["messages"][-1].content == "announced (deployed 1.3)"
    assert final["stage_outputs"]["prepare"] == {"version": "1.2", "notes": "fixes"}


@pytest.mark.parametrize(
    ("decision", "recorded"),
    [
        (
            Decision.reject("freeze week", by="bob"),
            "Stage 'deploy' was not run: bob rejected it: freeze week.",
        ),
        (Decision.respond("Deployed by hand already.", by="bob"), "Deployed by hand already."),
    ],
)
def test_action_stage_reject_or_respond_skips_it(
    checkpointer: BaseCheckpointSaver[Any], decision: Decision, recorded: str
) -> None:
    effects: list[dict[str, Any]] = []
    app = _release_pipeline(effects).compile(checkpointer=checkpointer)
    ask(app, "ship it", CFG)
    (request,) = runs.pending(app, CFG)
    final = runs.decide(app, CFG, {request.id: decision})
    assert effects == []
    assert final["messages"][-1].content == "announced (skipped)"
    skipped = next(r for r in final["stage_log"] if r["stage"] == "deploy")
    assert skipped["status"] == "skipped"
    assert skipped["detail"]["decision"] == decision.to_json()
    assert "deploy" not in final["stage_outputs"]
    # the last stage being skipped makes the skip the answer
    last = create_pipeline_graph([Stage("deploy", lambda inp: "x", action=True)]).compile(
        checkpointer=checkpointer
    )
    config = {"configurable": {"thread_id": "last"}}
    ask(last, "go", config)
    (req,) = runs.pending(last, config)
    assert req.args == {"request": "go"}  # a first action stage acts on the request
    assert runs.decide(last, config, {req.id: decision})["messages"][-1].content == recorded


def test_action_that_failed_midway_is_in_doubt(checkpointer: BaseCheckpointSaver[Any]) -> None:
    attempts: list[str] = []

    def flaky_deploy(inp: StageInput) -> str:
        attempts.append(inp.request)
        if len(attempts) == 1:
            raise ConnectionError("lost the deploy server mid-way")
        return "deployed"

    app = create_pipeline_graph([Stage("deploy", flaky_deploy, action=True)]).compile(
        checkpointer=checkpointer
    )
    ask(app, "go", CFG)
    (gate,) = runs.pending(app, CFG)
    with pytest.raises(ConnectionError):
        runs.decide(app, CFG, {gate.id: Decision.approve(by="alice")})
    assert attempts == ["go"]
    out = runs.resume(app, CFG)  # re-running the step does not act blindly
    assert "__interrupt__" in out
    (doubt,) = runs.pending(app, CFG)
    assert doubt.kind == "in_doubt"
    assert "started before but did not finish" in doubt.reason
    final = runs.decide(app, CFG, {doubt.id: Decision.approve(by="alice")})
    assert attempts == ["go", "go"]
    assert final["messages"][-1].content == "deployed"


def test_agent_action_stage_with_its_own_tool_approval(
    make_saver: Callable[[], BaseCheckpointSaver[Any]],
) -> None:
    class Receipt(BaseModel):
        paid: int

    payments: list[int] = []

    @tool(risk="high")
    def pay(amount: int) -> str:
        """Pay an invoice."""
        payments.append(amount)
        return "paid"

    payer = Agent(
        name="payer",
        model=ScriptedChatModel(
            [
                AIMessage("", tool_calls=[{"name": "pay", "args": {"amount": 5}, "id": "p1"}]),
                "Paid five.",  # not JSON: sent back once
                '{"paid": 5}',
            ]
        ),
        tools=[pay],
    )
    policy = Policy(rules=[Rule(tool="pay", action="approve")], approvers=["alice"])

    def build() -> Any:
        return create_pipeline_graph(
            [
                Stage("invoice", lambda inp: {"amount": 5}),
                Stage("pay", payer, output=Receipt, action=True),
            ],
            policy=policy,
        ).compile(checkpointer=make_saver())

    ask(build(), "settle the invoice", CFG)
    app = build()
    (gate,) = runs.pending(app, CFG)
    assert (gate.tool, gate.args, gate.approvers) == ("pay", {"amount": 5}, ("alice",))
    with pytest.raises(ApproverNotAllowedError):
        runs.decide(app, CFG, {gate.id: Decision.approve(by="mallory")})
    runs.decide(app, CFG, {gate.id: Decision.approve(by="alice")})
    app = build()
    (tool_request,) = runs.pending(app, CFG)
    assert (tool_request.agent, tool_request.tool) == ("payer", "pay")
    final = runs.decide(app, CFG, {tool_request.id: Decision.approve(by="alice")})
    assert payments == [5]
    assert final["stage_outputs"]["pay"] == {"paid": 5}
    assert final["stage_log"][-1]["detail"] == {"attempts": 2}
    model_of(payer).assert_consumed()


def test_time_travel_replay_returns_the_recorded_action_without_acting_again() -> None:
    effects: list[dict[str, Any]] = []
    app = _release_pipeline(effects).compile(checkpointer=InMemorySaver())
    ask(app, "ship it", CFG)
    (request,) = runs.pending(app, CFG)
    first = runs.decide(app, CFG, {request.id: Decision.approve(by="alice")})
    before = next(s for s in app.get_state_history(CFG) if s.next == ("deploy",))
    # a fork of the same input: the action already ran, so its recorded result is replayed
    replay = app.invoke(None, before.config)
    assert "__interrupt__" not in replay
    assert runs.pending(app, CFG) == []
    assert len(effects) == 1
    assert replay["messages"][-1].content == first["messages"][-1].content
    deploy_log = next(r for r in replay["stage_log"] if r["stage"] == "deploy")
    assert deploy_log["detail"] == {"replayed": True}


# -- composition, async, turns -----------------------------------------------------------
def test_research_stage_can_be_a_parallel_team() -> None:
    team = create_parallel_graph(
        [agent("web", "Web: rail is cheap."), agent("papers", "Papers: rail is green.")],
        name="research_team",
    )
    writer = agent("writer", "Rail: cheap and green.")
    app = create_pipeline_graph([Stage("research", team), Stage("write", writer)]).compile()
    out = ask(app, "Rail?")
    assert out["stage_outputs"]["research"] == (
        "## web\nWeb: rail is cheap.\n\n## papers\nPapers: rail is green."
    )
    assert (
        "## research\n## web\nWeb: rail is cheap." in model_of(writer).calls[0].messages[-1].content
    )
    assert out["messages"][-1].content == "Rail: cheap and green."


async def test_async_pipeline_with_async_function_stage() -> None:
    async def fetch(inp: StageInput) -> Facts:
        return Facts(facts=[inp.request])

    app = create_pipeline_graph(
        [Stage("fetch", fetch, output=Facts), Stage("say", agent("sayer", "ok"))]
    ).compile()
    out = await app.ainvoke({"messages": [("user", "hello")]})
    assert out["stage_outputs"]["fetch"] == {"facts": ["hello"]}
    with pytest.raises(ConfigurationError, match="is an async function; run the pipeline with"):
        app.invoke({"messages": [("user", "hello")]})


def test_each_turn_starts_fresh() -> None:
    app = create_pipeline_graph(
        [Stage("echo", lambda inp: inp.request), Stage("n", lambda inp: len(inp.outputs))]
    ).compile(checkpointer=InMemorySaver())
    ask(app, "one", CFG)
    out = ask(app, "two", CFG)
    assert out["stage_outputs"] == {"echo": "two", "n": 1}
    assert len(out["stage_log"]) == 2
    assert [m.content for m in out["messages"]] == ["one", "1", "two", "1"]


# -- build-time validation ---------------------------------------------------------------
def _fn(inp: StageInput) -> str:
    return "x"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: create_pipeline_graph([]), "No stages given"),
        (
            lambda: create_pipeline_graph([Stage("a", _fn), Stage("a", _fn)]),
            "Two stages are named 'a'",
        ),
        (lambda: create_pipeline_graph(["a"]), "must be Stage objects"),  # type: ignore[list-item]
        (
            lambda: create_pipeline_graph([Stage("a", _fn, rework_to="zzz")]),
            "may send work back to 'zzz', which does not exist",
        ),
        (
            lambda: create_pipeline_graph([Stage("a", _fn, rework_to="b"), Stage("b", _fn)]),
            "which is not an earlier stage",
        ),
        (
            lambda: create_pipeline_graph([Stage("a", _fn, rework_to="a")]),
            "which is the stage itself",
        ),
        (lambda: create_pipeline_graph([Stage("a", _fn)], max_rework=-1), "max_rework=-1"),
        (lambda: create_pipeline_graph([Stage("a", _fn)], policy="x"), "policy must be"),  # type: ignore[arg-type]
        (lambda: Stage("bad name", _fn), "Invalid stage name 'bad name'"),
        (lambda: Stage("a", 42), "run=42 is not an Agent, a graph or a function"),  # type: ignore[arg-type]
        (lambda: Stage("a", lambda: 1), "must take one argument"),  # type: ignore[arg-type]
        (lambda: Stage("a", _fn, output=dict), "output=<class 'dict'> is not a pydantic model"),  # type: ignore[arg-type]
        (lambda: Stage("a", _fn, retries=-1), "retries=-1"),
    ],
)
def test_build_time_validation(make: Callable[[], object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make()


def test_an_action_stage_first_is_fine() -> None:
    graph = create_pipeline_graph([Stage("act", _fn, action=True)], name="p", description="d")
    assert graph.podium_name == "p"
    assert graph.podium_description == "d"


def test_an_action_stage_without_a_checkpointer_refuses_to_ask_and_runs_nothing() -> None:
    effects: list[dict[str, Any]] = []
    with pytest.raises(
        HumanUnavailableError, match="'release' needs a human's approval for 'deploy'"
    ):
        ask(_release_pipeline(effects).compile(), "ship it", CFG)
    assert effects == []
