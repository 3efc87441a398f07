"""The parallel pattern: fan-out, private state, joins, quorum, timeouts, concurrency, resume."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.types import Command
from typing_extensions import TypedDict

from podium import Agent, ConfigurationError, QuorumNotMetError, runs
from podium.checkpoints import Messages
from podium.graphs import (
    Stage,
    best_of,
    create_agent_graph,
    create_parallel_graph,
    create_pipeline_graph,
)
from podium.graphs._members import member_name
from podium.testing import ScriptedChatModel
from podium.tools import Decision, Policy, Rule, tool
from podium.tools._app import DEFAULT_WORKERS

CFG = {"configurable": {"thread_id": "par-1"}}


def agent(name: str, *replies: AIMessage | str, tools: Sequence[Any] = (), **kw: Any) -> Agent:
    return Agent(name=name, model=ScriptedChatModel(list(replies), **kw), tools=list(tools))


def model_of(a: Agent) -> ScriptedChatModel:
    assert isinstance(a.model, ScriptedChatModel)
    return a.model


def call(name: str, args: dict[str, Any], id_: str) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": id_, "type": "tool_call"}])


class _S(TypedDict):
    messages: Messages


def graph_member(name: str, fn: Callable[[_S], dict[str, Any]]) -> Any:
    g = StateGraph(_S)
    g.add_node("work", fn)
    g.add_edge(START, "work")
    return g.compile(name=name)


def ask(app: Any, text: str, config: Any = None) -> dict[str, Any]:
    return dict(app.invoke({"messages": [("user", text)]}, config))


# -- fan-out and joins -----------------------------------------------------------------
def test_static_fan_out_concat_in_private_state() -> None:
    branches = [agent("pros", "Cheap."), agent("cons", "Slow."), agent("facts", "Built 1990.")]
    app = create_parallel_graph(branches, name="panel").compile()
    out = ask(app, "Should we take the train?")

    assert out["messages"][-1].content == (
        "## pros\nCheap.\n\n## cons\nSlow.\n\n## facts\nBuilt 1990."
    )
    assert out["messages"][-1].name == "panel"
    assert [type(m).__name__ for m in out["messages"]] == ["HumanMessage", "AIMessage"]
    assert {n: r["status"] for n, r in out["branch_results"].items()} == dict.fromkeys(
        ["pros", "cons", "facts"], "ok"
    )
    assert out["join_result"] == {"join": "concat", "included": ["pros", "cons", "facts"]}
    for b in branches:  # each branch saw the request only, never a sibling's work
        (only,) = model_of(b).calls
        assert [m.content for m in only.messages] == ["Should we take the train?"]


def test_run_time_selection_with_send_and_reset_per_turn() -> None:
    billing, tech = agent("billing", "Refund issued.", "Invoice sent."), agent("tech", "Reboot.")

    def select(state: Any) -> list[str]:
        text = state["messages"][-1].content
        return ["billing"] if "money" in text else ["billing", "tech"]

    app = create_parallel_graph([billing, tech], select=select).compile(
        checkpointer=InMemorySaver()
    )
    first = ask(app, "my money", CFG)
    assert first["messages"][-1].content == "## billing\nRefund issued."
    assert list(first["branch_results"]) == ["billing"]
    assert model_of(tech).calls == []

    second = ask(app, "both please", CFG)
    assert set(second["branch_results"]) == {"billing", "tech"}
    assert second["messages"][-1].content == "## billing\nInvoice sent.\n\n## tech\nReboot."
    # the second turn's branches see the conversation, never the other branch's work
    seen = [m.content for m in model_of(tech).calls[0].messages]
    assert seen == ["my money", "## billing\nRefund issued.", "both please"]


@pytest.mark.parametrize(
    ("chosen", "message"),
    [
        (["billing", "sales"], r"unknown branch\(es\) \['sales'\].*drawn from: billing, tech"),
        ([], r"select returned \[\]; it must return one or more distinct"),
        ("billing", r"select returned 'billing'; it must return a list of branch names"),
        (["tech", "tech"], r"one or more distinct branch names"),
    ],
)
def test_bad_select_result_is_a_clear_error(chosen: object, message: str) -> None:
    app = create_parallel_graph(
        [agent("billing", "x"), agent("tech", "y")], select=lambda s: chosen
    ).compile()
    with pytest.raises(ConfigurationError, match=message):
        ask(app, "hi")


def test_vote_normalises_json_and_text() -> None:
    branches = [
        agent("a", '{"answer": "B", "n": 1}'),
        agent("b", '```json\n{"n": 1, "answer": "B"}\n```'),
        agent("c", '{"answer": "C", "n": 1}'),
    ]
    out = ask(create_parallel_graph(branches, join="vote").compile(), "pick")
    assert out["messages"][-1].content == '{"answer": "B", "n": 1}'
    result = out["join_result"]
    assert result["join"] == "vote"
    assert result["winner"] == '{"answer":"B","n":1}'
    assert result["tie"] is False
    assert result["majority"] is True
    assert result["votes"] == {'{"answer":"B","n":1}': ["a", "b"], '{"answer":"C","n":1}': ["c"]}

    text = [agent("x", "Paris."), agent("y", "  paris"), agent("z", "Lyon")]
    out = ask(create_parallel_graph(text, join="vote").compile(), "capital?")
    assert out["messages"][-1].content == "Paris."


def test_vote_tie_is_reported() -> None:
    branches = [agent("a", "yes"), agent("b", "no")]
    out = ask(create_parallel_graph(branches, join="vote").compile(), "ok?")
    assert out["join_result"]["tie"] is True
    assert out["join_result"]["winner"] is None
    assert (
        out["messages"][-1].content
        == "No majority: the branches tied 1-1 between 'yes' (a); 'no' (b)."
    )


def test_best_of_keeps_the_highest_score() -> None:
    branches = [
        agent("brief", "OK."),
        agent("full", "A complete, sourced answer."),
        agent("x", "Hm"),
    ]
    out = ask(create_parallel_graph(branches, join=best_of(len)).compile(), "explain")
    assert out["messages"][-1].content == "A complete, sourced answer."
    assert out["join_result"]["join"] == "best_of(len)"
    assert out["join_result"]["winner"] == "full"
    assert out["join_result"]["scores"] == {"brief": 3.0, "full": 27.0, "x": 2.0}


def test_custom_join_function() -> None:
    def shortest(answers: Any) -> str:
        return min(answers.values(), key=len)

    out = ask(
        create_parallel_graph([agent("a", "long one"), agent("b", "s")], join=shortest).compile(),
        "q",
    )
    assert out["messages"][-1].content == "s"
    assert out["join_result"] == {"join": "shortest"}

    bad = create_parallel_graph([agent("a", "x")], join=lambda answers: 42).compile()
    with pytest.raises(ConfigurationError, match="a join returns the final answer as a str"):
        ask(bad, "q")


def test_synthesiser_agent_receives_the_branch_results() -> None:
    synth = agent("editor", "Take the train: cheap, if slow.")
    branches = [agent("pros", "Cheap."), agent("cons", "Slow.")]
    out = ask(create_parallel_graph(branches, join=synth).compile(), "Train?")
    assert out["messages"][-1].content == "Take the train: cheap, if slow."
    assert out["join_result"] == {"join": "synthesiser", "agent": "editor"}
    (seen,) = model_of(synth).calls
    assert seen.messages[0].content == "Train?"
    prompt = seen.messages[-1]
    assert isinstance(prompt, HumanMessage)
    assert "## pros\nCheap." in prompt.content
    assert "## cons\nSlow." in prompt.content


# -- failures, quorum, timeouts ---------------------------------------------------------
def _boom(state: _S) -> dict[str, Any]:
    raise RuntimeError("upstream down")


def test_quorum_holds_with_one_failing_branch() -> None:
    branches = [agent("a", "A"), graph_member("flaky", _boom), agent("c", "C")]
    out = ask(create_parallel_graph(branches, quorum=2).compile(), "go")
    # the answer tells the user which branch failed and why; the join saw only a and c
    answer = out["messages"][-1]
    assert answer.content == (
        "## a\nA\n\n## c\nC\n\n(Note: 1 of 3 branches failed: flaky (RuntimeError: upstream down).)"
    )
    assert answer.response_metadata["podium_answer"] == "## a\nA\n\n## c\nC"
    assert answer.response_metadata["podium_failed"] == {"flaky": "RuntimeError: upstream down"}
    assert out["join_result"]["failed"] == {"flaky": "RuntimeError: upstream down"}
    failed = out["branch_results"]["flaky"]
    assert failed["status"] == "error"
    assert failed["error"] == "RuntimeError: upstream down"
    assert failed["answer"] == ""


@pytest.mark.parametrize("quorum", [None, 3])
def test_below_quorum_is_a_clear_error_with_results_saved(quorum: int | None) -> None:
    branches = [agent("a", "A"), graph_member("flaky", _boom), agent("c", "C")]
    app = create_parallel_graph(branches, quorum=quorum, name="team").compile(
        checkpointer=InMemorySaver()
    )
    with pytest.raises(
        QuorumNotMetError,
        match=r"Only 2 of 3 branches of team succeeded; 3 must .*Failed: flaky "
        r"\(RuntimeError: upstream down\)",
    ):
        ask(app, "go", CFG)
    saved = app.get_state(CFG).values["branch_results"]
    assert {n: r["status"] for n, r in saved.items()} == {"a": "ok", "flaky": "error", "c": "ok"}


_RELEASE = threading.Event()
"""Holds the slow branches until the test that started them has checked its answer."""


def _slow_sync(state: _S) -> dict[str, Any]:
    _RELEASE.wait(10)
    return {"messages": [AIMessage("late")]}


async def _slow_async(state: _S) -> dict[str, Any]:
    await asyncio.to_thread(_RELEASE.wait, 10)
    return {"messages": [AIMessage("late")]}


@pytest.fixture
def release_slow() -> Any:
    _RELEASE.clear()
    yield
    _RELEASE.set()


def test_branch_timeout_sync(release_slow: None) -> None:
    branches = [agent("fast", "F"), graph_member("slow", _slow_sync)]
    app = create_parallel_graph(branches, branch_timeout=2, quorum=1).compile()
    started = time.monotonic()
    out = ask(app, "go")
    assert time.monotonic() - started < 8  # the slow branch is held for 10 s: not waited for
    slow = out["branch_results"]["slow"]
    assert slow["status"] == "timeout"
    # a plain LangGraph graph may do anything: podium cannot rule out a side effect
    assert slow["error"] == (
        "timed out after 2s; it may still be running, and acting, in the background"
    )
    assert slow["may_still_act"] is True
    answer = out["messages"][-1]
    assert answer.content.startswith(
        "## fast\nF\n\n(Note: 1 of 2 branches failed: slow timed out and may still be acting"
    )
    assert answer.response_metadata["podium_may_still_act"] == ["slow"]
    assert out["join_result"]["may_still_act"] == ["slow"]


async def test_branch_timeout_async(release_slow: None) -> None:
    branches = [agent("fast", "F"), graph_member("slow", _slow_async)]
    app = create_parallel_graph(branches, branch_timeout=2, quorum=1).compile()
    started = time.monotonic()
    out = await app.ainvoke({"messages": [("user", "go")]})
    assert time.monotonic() - started < 8  # the slow branch is held for 10 s: not waited for
    assert out["branch_results"]["slow"]["status"] == "timeout"
    with pytest.raises(QuorumNotMetError, match=r"slow \(timed out after 2s; it may still"):
        await (
            create_parallel_graph(branches, branch_timeout=2)
            .compile()
            .ainvoke({"messages": [("user", "go")]})
        )


# -- concurrency -----------------------------------------------------------------------
async def test_async_branches_run_concurrently() -> None:
    """All ten branches are inside their tool at once (run in turn, the first would wait
    at the barrier alone and time out)."""
    everyone = asyncio.Barrier(10)

    @tool(read_only=True)
    async def gather() -> str:
        """Wait for the other branches."""
        await asyncio.wait_for(everyone.wait(), 30)
        return "met"

    branches = [
        agent(f"b{i}", call("gather", {}, f"g{i}"), f"answer {i}", tools=[gather])
        for i in range(10)
    ]
    app = create_parallel_graph(branches).compile()
    out = await app.ainvoke({"messages": [("user", "go")]})
    assert [r["status"] for r in out["branch_results"].values()] == ["ok"] * 10
    assert all(model_of(b).calls[1].messages[-1].content == "met" for b in branches)


def _sleepy_branches(n: int, inside: list[int] | None = None) -> list[Agent]:
    both = threading.Barrier(n, timeout=30)
    lock = threading.Lock()
    now = [0]

    @tool(read_only=True)
    def wait() -> str:
        """Wait a moment."""
        if inside is None:  # every branch must be here at once
            both.wait()
            return "waited"
        with lock:
            now[0] += 1
            inside.append(now[0])
        time.sleep(0.05)
        with lock:
            now[0] -= 1
        return "waited"

    return [agent(f"s{i}", call("wait", {}, f"w{i}"), "done", tools=[wait]) for i in range(n)]


def test_sync_branches_do_not_serialise() -> None:
    branches = _sleepy_branches(3)
    app = create_parallel_graph(branches).compile()
    out = ask(app, "go")
    assert [r["status"] for r in out["branch_results"].values()] == ["ok"] * 3
    assert all(model_of(b).calls[1].messages[-1].content == "waited" for b in branches)


def test_max_concurrency_is_bound_as_config() -> None:
    inside: list[int] = []
    app = create_parallel_graph(_sleepy_branches(3, inside), max_concurrency=1).compile()
    assert app.config is not None
    assert app.config["max_concurrency"] == 1
    ask(app, "go")
    assert inside == [1, 1, 1]  # one branch's tool at a time


# -- approvals inside a branch ---------------------------------------------------------
def test_interrupt_in_one_branch_never_reruns_siblings(
    make_saver: Callable[[], BaseCheckpointSaver[Any]],
) -> None:
    effects: list[str] = []

    @tool
    def log_visit(who: str) -> str:
        """Record a visit."""
        effects.append(f"visit:{who}")
        return "logged"

    @tool(risk="high")
    def pay(amount: int) -> str:
        """Pay out money."""
        effects.append(f"pay:{amount}")
        return "paid"

    def branches() -> list[Agent]:
        return [
            agent(
                "clerk", call("log_visit", {"who": "ann"}, "v1"), "Visit logged.", tools=[log_visit]
            ),
            agent("cashier", call("pay", {"amount": 500}, "p1"), "Paid 500.", tools=[pay]),
            agent("greeter", "Hello!"),
        ]

    made = branches()
    policy = Policy(rules=[Rule(tool="pay", action="approve", reason="payouts need a human")])
    first = create_parallel_graph(made, policy=policy).compile(checkpointer=make_saver())
    out = ask(first, "serve ann", CFG)
    assert "__interrupt__" in out
    assert effects == ["visit:ann"]

    # a new process: a new compiled graph on the same storage
    second = create_parallel_graph(made, policy=policy).compile(checkpointer=make_saver())
    (request,) = runs.pending(second, CFG)
    assert (request.agent, request.tool, request.args) == ("cashier", "pay", {"amount": 500})
    final = runs.decide(second, CFG, {request.id: Decision.approve(by="alice")})

    assert sorted(effects) == ["pay:500", "visit:ann"]
    assert final["messages"][-1].content == (
        "## clerk\nVisit logged.\n\n## cashier\nPaid 500.\n\n## greeter\nHello!"
    )
    assert len(model_of(made[0]).calls) == 2  # clerk: tool call + answer, never re-run
    assert len(model_of(made[2]).calls) == 1
    for a in made:
        model_of(a).assert_consumed()


async def test_interrupt_in_one_branch_under_ainvoke() -> None:
    paid: list[int] = []

    @tool(risk="high")
    def pay(amount: int) -> str:
        """Pay out money."""
        paid.append(amount)
        return "paid"

    greeter = agent("greeter", "Hello!")
    cashier = agent("cashier", call("pay", {"amount": 5}, "p1"), "Paid 5.", tools=[pay])
    policy = Policy(rules=[Rule(tool="pay", action="approve")])
    app = create_parallel_graph([greeter, cashier], policy=policy, branch_timeout=5).compile(
        checkpointer=InMemorySaver()
    )
    out = await app.ainvoke({"messages": [("user", "hi")]}, CFG)
    assert "__interrupt__" in out
    (request,) = runs.pending(app, CFG)
    final = await app.ainvoke(
        Command(resume={out["__interrupt__"][0].id: {"action": "approve", "by": "al"}}), CFG
    )
    assert request.tool == "pay"
    assert paid == [5]
    assert final["messages"][-1].content == "## greeter\nHello!\n\n## cashier\nPaid 5."
    assert len(model_of(greeter).calls) == 1


def test_agent_graph_compiled_with_a_name_is_a_branch() -> None:
    solo = create_agent_graph(agent("inner", "from a graph")).compile(name="solo")
    out = ask(create_parallel_graph([solo, agent("other", "x")]).compile(), "go")
    assert out["messages"][-1].content == "## solo\nfrom a graph\n\n## other\nx"


# -- composition and build-time validation ---------------------------------------------
def test_branch_can_be_a_pipeline_and_the_team_a_member() -> None:
    pipeline = create_pipeline_graph(
        [
            Stage("draft", agent("drafter", "draft")),
            Stage("shout", lambda inp: inp.previous.upper()),
        ],
        name="loud",
    )
    team = create_parallel_graph([pipeline, agent("quiet", "hush")], name="team", description="Two")
    out = ask(team.compile(), "speak")
    assert out["messages"][-1].content == "## loud\nDRAFT\n\n## quiet\nhush"
    assert member_name(team) == "team"
    assert team.compile().name == "team"


def _unnamed_graph() -> Any:
    g = StateGraph(_S)
    g.add_node("n", lambda s: {})
    g.add_edge(START, "n")
    return g


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"branches": []}, "No branches given"),
        ({"branches": ["a", "a"]}, "Two branches are named 'a'"),
        ({"branches": ["join"]}, "reserved names: fan_out, join"),
        ({"quorum": 0}, r"quorum=0 is not allowed.*from 1 to the number of branches \(2\)"),
        ({"quorum": 3}, r"quorum=3 is not allowed"),
        ({"quorum": "2"}, r"quorum='2' is not allowed"),
        ({"join": "median"}, r"Unknown join 'median'; allowed: 'concat', 'vote', best_of"),
        ({"join": "best_of"}, r"Fix: Pass join=best_of\(scorer\)"),
        ({"branch_timeout": 0}, r"branch_timeout=0 is not allowed"),
        ({"select": ["a"]}, r"select=\['a'\] is not a function"),
        ({"max_concurrency": 0}, r"max_concurrency=0 is not allowed"),
        ({"policy": "strict"}, r"policy must be a podium Policy"),
        ({"name": "bad name"}, r"Invalid graph name 'bad name'"),
    ],
)
def test_build_time_validation(kwargs: dict[str, Any], message: str) -> None:
    names = kwargs.pop("branches", ["a", "b"])
    branches = [agent(n, "x") for n in names]
    with pytest.raises(ConfigurationError, match=message):
        create_parallel_graph(branches, **kwargs)


def test_graph_member_without_a_name_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="needs a name"):
        create_parallel_graph([agent("a", "x"), _unnamed_graph()])
    with pytest.raises(ConfigurationError, match="best_of needs a function"):
        best_of("len")  # type: ignore[arg-type]


# -- real parallelism under a plain invoke -------------------------------------------
WIDE = 40  # wider than any default thread pool (at most 32 threads)


def _meeting(n: int, timeout: float = 10.0) -> list[Any]:
    """``n`` branches that each wait until all ``n`` are waiting at once (or time out)."""
    barrier = threading.Barrier(n, timeout=timeout)

    def meet(state: _S) -> dict[str, Any]:
        barrier.wait()  # BrokenBarrierError unless all n run concurrently
        return {"messages": [AIMessage("met")]}

    return [graph_member(f"m{i:02d}", meet) for i in range(n)]


def _met(out: dict[str, Any]) -> list[str]:
    return [r["status"] for r in out["branch_results"].values()]


def test_a_plain_invoke_runs_every_branch_at_once() -> None:
    assert WIDE > DEFAULT_WORKERS
    app = create_parallel_graph(_meeting(WIDE)).compile()
    assert _met(ask(app, "meet")) == ["ok"] * WIDE


def test_a_nested_parallel_graph_runs_every_branch_at_once(
    make_saver: Callable[[], BaseCheckpointSaver[Any]],
) -> None:
    inner = create_parallel_graph(_meeting(WIDE), name="team")
    outer = create_parallel_graph([inner, agent("solo", "alone")], name="outer")
    app = create_pipeline_graph([Stage("work", outer)]).compile(checkpointer=make_saver())
    out = ask(app, "meet", {"configurable": {"thread_id": "wide"}})
    assert out["messages"][-1].content.count("met") == WIDE


def test_a_callers_max_concurrency_is_kept() -> None:
    n = DEFAULT_WORKERS + 2
    app = create_parallel_graph(_meeting(n, timeout=0.5)).compile()
    with pytest.raises(QuorumNotMetError, match="BrokenBarrierError"):
        ask(app, "meet", {"max_concurrency": 2})  # two at a time: they never all meet
    # the same graph, left to podium, meets (a broken barrier stays broken: a new one)
    app = create_parallel_graph(_meeting(n, timeout=0.5)).compile()
    assert _met(ask(app, "meet")) == ["ok"] * n
