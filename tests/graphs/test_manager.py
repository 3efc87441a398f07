"""The manager pattern: delegation, private histories, parallelism, limits, approvals."""

from __future__ import annotations

import doctest
import threading
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.tool import invalid_tool_call
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import START, MessagesState, StateGraph

import podium.graphs._manager
from podium import (
    Agent,
    ConfigurationError,
    LimitError,
    MaxRoundsExceededError,
    runs,
)
from podium.graphs import (
    ManagerState,
    create_agent_graph,
    create_handoff_graph,
    create_manager_graph,
)
from podium.testing import ScriptedChatModel
from podium.tools import Decision, Policy, Rule, tool

CFG = {"configurable": {"thread_id": "m1"}}


def call(name: str, args: object, id_: str) -> dict[str, Any]:
    return {"name": name, "args": args, "id": id_, "type": "tool_call"}


def delegate(*calls: dict[str, Any]) -> AIMessage:
    return AIMessage("", tool_calls=list(calls))


def results(messages: list[Any]) -> dict[str, ToolMessage]:
    return {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage)}


class Effects:
    """Counts real side effects of the specialists' tools."""

    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def add(self, what: str, value: Any) -> None:
        with self.lock:
            self.log.append((what, value))


@pytest.fixture
def effects() -> Effects:
    return Effects()


@pytest.fixture
def pay_tool(effects: Effects) -> Any:
    @tool(risk="high")
    def pay(amount: int) -> str:
        """Pay an invoice."""
        effects.add("pay", amount)
        return f"paid {amount}"

    return pay


@pytest.fixture
def search_tool(effects: Effects) -> Any:
    @tool
    def search(query: str) -> str:
        """Search the web."""
        effects.add("search", query)
        return f"results for {query}"

    return search


# -- delegation ---------------------------------------------------------------------


def test_delegation_task_goes_in_and_only_the_answer_comes_back(search_tool: Any) -> None:
    boss_model = ScriptedChatModel(
        [
            delegate(call("research", {"task": "Find the capital of Peru."}, "d1")),
            "The capital of Peru is Lima.",
        ]
    )
    research_model = ScriptedChatModel(
        [AIMessage("", tool_calls=[call("search", {"query": "Peru capital"}, "s1")]), "Lima."]
    )
    boss = Agent(name="boss", instructions="Delegate research.", model=boss_model)
    research = Agent(
        name="research",
        description="Finds facts on the web",
        instructions="Be precise.",
        model=research_model,
        tools=[search_tool],
    )
    app = create_manager_graph(boss, [research]).compile()
    secret = "my account number is 4242, and what is the capital of Peru?"
    out = app.invoke({"messages": [("user", secret)]})

    messages = out["messages"]
    assert [type(m).__name__ for m in messages] == [
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "AIMessage",
    ]
    result = messages[2]
    assert result.tool_call_id == "d1"
    assert result.name == "research"
    assert result.content == "Lima."
    assert messages[-1].content == "The capital of Peru is Lima."
    # The specialist saw only its instructions and the task, never the conversation.
    first = research_model.calls[0].messages
    assert first == [
        SystemMessage("Be precise."),
        HumanMessage("Find the capital of Peru.", id=first[1].id),
    ]
    for c in research_model.calls:
        assert all("4242" not in m.text for m in c.messages)
    # Only the final answer crossed back: the specialist's tool traffic stays private.
    assert all("results for" not in m.text for m in messages)
    assert [m.text for m in boss_model.calls[1].messages if isinstance(m, ToolMessage)] == ["Lima."]
    # The manager sees the specialist as a tool with exactly one `task: str` argument.
    assert boss_model.calls[0].tools == ["research"]
    [spec] = boss_model.calls[0].kwargs["tools"]
    assert spec["function"]["description"] == "Finds facts on the web"
    params = spec["function"]["parameters"]
    assert set(params["properties"]) == {"task"}
    assert params["properties"]["task"]["type"] == "string"
    assert params["required"] == ["task"]
    boss_model.assert_consumed()
    research_model.assert_consumed()


def test_each_delegation_starts_a_fresh_private_history() -> None:
    boss = Agent(
        name="boss",
        model=ScriptedChatModel(
            [
                delegate(call("writer", {"task": "draft A"}, "d1")),
                delegate(call("writer", {"task": "draft B"}, "d2")),
                "both drafted",
            ]
        ),
    )
    writer_model = ScriptedChatModel(["A drafted", "B drafted"])
    app = create_manager_graph(boss, [Agent(name="writer", model=writer_model)]).compile()
    out = app.invoke({"messages": [("user", "two drafts")]})
    assert [[m.text for m in c.messages] for c in writer_model.calls] == [["draft A"], ["draft B"]]
    assert [r.content for r in results(out["messages"]).values()] == ["A drafted", "B drafted"]


def test_parallel_delegations_run_concurrently(effects: Effects) -> None:
    """Both specialists are inside their tool at once: each waits for the other there.

    Run one after the other, the first would wait at the barrier alone and time out.
    """
    both_inside = threading.Barrier(2, timeout=30)
    met: dict[str, bool] = {}

    def timed(label: str) -> Any:
        @tool(name=f"work_{label}")
        def work() -> str:
            """Do slow work."""
            both_inside.wait()
            met[label] = True
            return "ok"

        return work

    def worker(label: str) -> Agent:
        model = ScriptedChatModel(
            [AIMessage("", tool_calls=[call(f"work_{label}", {}, "w")]), f"{label} done"]
        )
        return Agent(name=label, description=f"Worker {label}", model=model, tools=[timed(label)])

    boss_model = ScriptedChatModel(
        [
            delegate(call("left", {"task": "go"}, "d1"), call("right", {"task": "go"}, "d2")),
            "both done",
        ]
    )
    app = create_manager_graph(
        Agent(name="boss", model=boss_model), [worker("left"), worker("right")]
    )
    out = app.compile().invoke({"messages": [("user", "start")]})
    found = results(out["messages"])
    assert found["d1"].content == "left done"
    assert found["d2"].content == "right done"
    assert met == {"left": True, "right": True}, "the two specialists did not overlap"
    # the manager's next call saw both results
    assert {m.text for m in boss_model.calls[1].messages if isinstance(m, ToolMessage)} == {
        "left done",
        "right done",
    }


async def test_async_parallel_delegations() -> None:
    boss_model = ScriptedChatModel(
        [delegate(call("a", {"task": "x"}, "d1"), call("b", {"task": "y"}, "d2")), "done"]
    )
    a = Agent(name="a", model=ScriptedChatModel(["from a"], delay=0.2))
    b = Agent(name="b", model=ScriptedChatModel(["from b"], delay=0.2))
    app = create_manager_graph(Agent(name="boss", model=boss_model), [a, b]).compile()
    out = await app.ainvoke({"messages": [("user", "go")]})
    assert {k: v.content for k, v in results(out["messages"]).items()} == {
        "d1": "from a",
        "d2": "from b",
    }
    assert out["messages"][-1].content == "done"


# -- validation of delegation calls ---------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "code", "text"),
    [
        (
            call("lawyer", {"task": "sue"}, "c1"),
            "unknown_tool",
            "there is no tool named 'lawyer'; nothing was run. Available tools: research.",
        ),
        (
            call("research", {"task": "x", "urgency": "high"}, "c1"),
            "unexpected_arguments",
            "tool 'research' does not take argument(s) 'urgency'; nothing was run. "
            "Its arguments are: task.",
        ),
        (
            call("research", {"task": 42}, "c1"),
            "malformed_arguments",
            "invalid arguments for 'research': task: Input should be a valid string",
        ),
        (
            call("research", {}, "c1"),
            "malformed_arguments",
            "invalid arguments for 'research': task: Field required",
        ),
    ],
)
def test_bad_delegations_are_refused_and_run_nothing(
    bad: dict[str, Any], code: str, text: str
) -> None:
    research_model = ScriptedChatModel([])
    boss = Agent(name="boss", model=ScriptedChatModel([delegate(bad), "sorry"]))
    app = create_manager_graph(boss, [Agent(name="research", model=research_model)]).compile()
    out = app.invoke({"messages": [("user", "hi")]})
    refusal = results(out["messages"])["c1"]
    assert refusal.status == "error"
    assert refusal.artifact == {"error": code, "executed": False}
    assert text in refusal.content
    assert research_model.calls == []
    assert out["messages"][-1].content == "sorry"


def test_unparseable_delegation_is_refused() -> None:
    research_model = ScriptedChatModel([])
    broken = AIMessage(
        "",
        invalid_tool_calls=[
            invalid_tool_call(
                name="research", args='{"task": "unterminated', id="c1", error="bad JSON"
            )
        ],
    )
    boss = Agent(name="boss", model=ScriptedChatModel([broken, "sorry"]))
    app = create_manager_graph(boss, [Agent(name="research", model=research_model)]).compile()
    out = app.invoke({"messages": [("user", "hi")]})
    refusal = results(out["messages"])["c1"]
    assert refusal.artifact == {"error": "invalid_tool_call", "executed": False}
    assert "could not be parsed: bad JSON" in refusal.content
    assert "Call one of: research" in refusal.content
    assert research_model.calls == []


def test_duplicate_delegation_ids_run_nothing() -> None:
    research_model = ScriptedChatModel([])
    boss_model = ScriptedChatModel(
        [
            delegate(
                call("research", {"task": "a"}, "same"), call("research", {"task": "b"}, "same")
            ),
            "ok",
        ]
    )
    app = create_manager_graph(
        Agent(name="boss", model=boss_model), [Agent(name="research", model=research_model)]
    ).compile()
    out = app.invoke({"messages": [("user", "hi")]})
    assert results(out["messages"])["same"].artifact["error"] == "duplicate_tool_call_id"
    assert research_model.calls == []


def test_manager_tools_and_delegations_are_governed(
    effects: Effects, search_tool: Any, pay_tool: Any
) -> None:
    boss_model = ScriptedChatModel(
        [
            delegate(
                call("search", {"query": "q"}, "own"),  # the manager's own tool: runs
                call("pay", {"amount": 5}, "theirs"),  # a specialist's tool: not granted
                call("payer", {"task": "pay 5"}, "deleg"),  # delegation denied by policy
            ),
            "done",
        ]
    )
    payer_model = ScriptedChatModel([])
    boss = Agent(name="boss", model=boss_model, tools=[search_tool])
    payer = Agent(name="payer", model=payer_model, tools=[pay_tool])
    policy = Policy(rules=[Rule(tool="payer", action="deny", reason="payments are frozen")])
    out = (
        create_manager_graph(boss, [payer], policy=policy)
        .compile()
        .invoke({"messages": [("user", "go")]})
    )
    found = results(out["messages"])
    assert found["own"].content == "results for q"
    assert found["theirs"].artifact["error"] == "tool_not_granted"
    assert "agent 'boss' is not allowed to call tool 'pay'" in found["theirs"].content
    assert found["deleg"].artifact["error"] == "policy_denied"
    assert "payments are frozen" in found["deleg"].content
    assert effects.log == [("search", "q")]
    assert payer_model.calls == []
    assert boss_model.calls[0].tools == ["search", "payer"]


# -- limits and failures -----------------------------------------------------------


def test_max_rounds_stops_a_looping_manager() -> None:
    looping = [delegate(call("echo", {"task": f"t{i}"}, f"d{i}")) for i in range(3)]
    echo = Agent(name="echo", model=ScriptedChatModel(["e0", "e1", "e2"]))
    app = create_manager_graph(
        Agent(name="boss", model=ScriptedChatModel(looping)), [echo], max_rounds=2
    ).compile()
    with pytest.raises(MaxRoundsExceededError, match=r"Manager 'boss' made 2 model calls") as info:
        app.invoke({"messages": [("user", "go")]})
    assert isinstance(info.value, LimitError)
    assert "max_rounds=2" in str(info.value)
    assert "Fix: Raise create_manager_graph(max_rounds=...)" in str(info.value)
    assert len(echo.model.calls) == 2  # type: ignore[union-attr]


def test_specialist_failures_come_back_as_error_results(search_tool: Any) -> None:
    stuck = Agent(
        name="stuck",
        model=ScriptedChatModel([AIMessage("", tool_calls=[call("search", {"query": "x"}, "s")])]),
        tools=[search_tool],
        max_steps=1,
    )

    def explode(state: ManagerState) -> dict[str, Any]:
        raise ValueError("backend down")

    broken: StateGraph[Any, Any, Any, Any] = StateGraph(ManagerState)
    broken.add_node("explode", explode)
    broken.add_edge(START, "explode")
    boss_model = ScriptedChatModel(
        [
            delegate(call("stuck", {"task": "a"}, "d1"), call("broken", {"task": "b"}, "d2")),
            "handled",
        ]
    )
    app = create_manager_graph(
        Agent(name="boss", model=boss_model), [stuck, broken.compile(name="broken")]
    ).compile()
    out = app.invoke({"messages": [("user", "go")]})
    found = results(out["messages"])
    assert found["d1"].status == "error"
    assert "tool 'stuck' failed: MaxStepsExceededError: Agent 'stuck' made 1 model calls" in (
        found["d1"].content
    )
    assert found["d2"].status == "error"
    assert "tool 'broken' failed: ValueError: backend down" in found["d2"].content
    assert out["messages"][-1].content == "handled"


# -- approvals inside specialists --------------------------------------------------


def _approval_team(effects: Effects, pay_tool: Any, search_tool: Any, *, fresh: bool) -> Any:
    """A manager delegating to a payer (gated tool) and a searcher in one turn.

    ``fresh`` builds the scripts a new process would need after the interrupt: the
    manager's and payer's first replies are already checkpointed.
    """
    first = delegate(
        call("payer", {"task": "pay 500"}, "d1"), call("searcher", {"task": "x"}, "d2")
    )
    boss_script: list[Any] = ["paid and found"] if fresh else [first, "paid and found"]
    pay_script: list[Any] = [AIMessage("", tool_calls=[call("pay", {"amount": 500}, "p1")])]
    search_script: list[Any] = [
        AIMessage("", tool_calls=[call("search", {"query": "x"}, "s1")]),
        "found x",
    ]
    boss = Agent(name="boss", model=ScriptedChatModel(boss_script))
    payer = Agent(
        name="payer",
        model=ScriptedChatModel(["paid 500"] if fresh else [*pay_script, "paid 500"]),
        tools=[pay_tool],
    )
    searcher = Agent(
        name="searcher",
        model=ScriptedChatModel([] if fresh else search_script),
        tools=[search_tool],
    )
    policy = Policy(rules=[Rule(tool="pay", action="approve", reason="payments need a human")])
    graph = create_manager_graph(boss, [payer, searcher], policy=policy)
    graph.boss_model, graph.payer_model = boss.model, payer.model  # type: ignore[attr-defined]
    return graph


def test_approval_inside_a_specialist_pauses_and_resumes_without_rerunning_siblings(
    effects: Effects, pay_tool: Any, search_tool: Any, checkpointer: BaseCheckpointSaver[Any]
) -> None:
    app = _approval_team(effects, pay_tool, search_tool, fresh=False).compile(
        checkpointer=checkpointer
    )
    out = app.invoke({"messages": [("user", "pay and search")]}, CFG)
    assert "__interrupt__" in out
    assert effects.log == [("search", "x")]
    [request] = runs.pending(app, CFG)
    assert (request.agent, request.tool, request.args) == ("payer", "pay", {"amount": 500})
    assert request.reason == "payments need a human"

    out = runs.decide(app, CFG, {request.id: Decision.approve(by="alice")})
    assert effects.log == [("search", "x"), ("pay", 500)]  # the sibling did not run again
    found = results(out["messages"])
    assert found["d1"].content == "paid 500"
    assert found["d2"].content == "found x"
    assert out["messages"][-1].content == "paid and found"
    assert runs.pending(app, CFG) == []


def test_a_new_process_finishes_the_interrupted_run(
    effects: Effects,
    pay_tool: Any,
    search_tool: Any,
    make_saver: Callable[[], BaseCheckpointSaver[Any]],
) -> None:
    first = _approval_team(effects, pay_tool, search_tool, fresh=False).compile(
        checkpointer=make_saver()
    )
    first.invoke({"messages": [("user", "pay and search")]}, CFG)
    [request] = runs.pending(first, CFG)

    # A new compiled graph, new models, a new saver on the same database.
    second = _approval_team(effects, pay_tool, search_tool, fresh=True).compile(
        checkpointer=make_saver()
    )
    assert [r.id for r in runs.pending(second, CFG)] == [request.id]
    out = runs.decide(second, CFG, {request.id: Decision.approve(by="alice")})
    assert out["messages"][-1].content == "paid and found"
    assert effects.log == [("search", "x"), ("pay", 500)]


def test_rejected_approval_is_reported_by_the_specialist(
    effects: Effects, pay_tool: Any, search_tool: Any, checkpointer: BaseCheckpointSaver[Any]
) -> None:
    graph = _approval_team(effects, pay_tool, search_tool, fresh=False)
    app = graph.compile(checkpointer=checkpointer)
    app.invoke({"messages": [("user", "pay and search")]}, CFG)
    [request] = runs.pending(app, CFG)
    out = runs.decide(app, CFG, {request.id: Decision.reject("over budget", by="bo")})
    assert ("pay", 500) not in effects.log
    assert out["messages"][-1].content == "paid and found"
    # the payer (not the manager) saw the rejection, in its private history
    payer_model = graph.payer_model
    rejection = payer_model.calls[-1].messages[-1]
    assert isinstance(rejection, ToolMessage)
    assert "rejected this call of 'pay': over budget" in rejection.text
    boss_inputs = [m.text for c in graph.boss_model.calls for m in c.messages]
    assert not any("over budget" in t for t in boss_inputs)


def test_two_gated_specialists_get_distinct_requests_decided_one_at_a_time(
    effects: Effects, pay_tool: Any, checkpointer: BaseCheckpointSaver[Any]
) -> None:
    def payer(name: str, amount: int) -> Agent:
        script = [AIMessage("", tool_calls=[call("pay", {"amount": amount}, "p")]), f"{name} paid"]
        return Agent(name=name, model=ScriptedChatModel(script), tools=[pay_tool])

    boss_model = ScriptedChatModel(
        [delegate(call("a", {"task": "pay 1"}, "d1"), call("b", {"task": "pay 2"}, "d2")), "done"]
    )
    policy = Policy(rules=[Rule(tool="pay", action="approve")])
    app = create_manager_graph(
        Agent(name="boss", model=boss_model), [payer("a", 1), payer("b", 2)], policy=policy
    ).compile(checkpointer=checkpointer)
    app.invoke({"messages": [("user", "pay both")]}, CFG)
    first, second = runs.pending(app, CFG)
    assert {(first.agent, first.args["amount"]), (second.agent, second.args["amount"])} == {
        ("a", 1),
        ("b", 2),
    }
    out = runs.decide(app, CFG, {first.id: Decision.approve(by="alice")})
    assert "__interrupt__" in out
    assert effects.log == [("pay", first.args["amount"])]
    assert [r.id for r in runs.pending(app, CFG)] == [second.id]
    out = runs.decide(app, CFG, {second.id: Decision.approve(by="alice")})
    assert sorted(effects.log) == [("pay", 1), ("pay", 2)]
    assert out["messages"][-1].content == "done"


# -- composition ---------------------------------------------------------------------


def test_a_handoff_desk_and_an_agent_graph_as_specialists() -> None:
    go = call("transfer_to_billing", {"reason": "refund"}, "h1")
    triage_model = ScriptedChatModel([AIMessage("", tool_calls=[go])])
    billing_model = ScriptedChatModel(["Refund of order 7 approved."])
    desk = create_handoff_graph(
        [Agent(name="triage", model=triage_model), Agent(name="billing", model=billing_model)],
        default_agent="triage",
        name="support_desk",
        description="Customer support: triage and billing",
    )
    poet_model = ScriptedChatModel(["Roses are red."])
    poet = create_agent_graph(Agent(name="inner", model=poet_model)).compile(name="poet")
    boss_model = ScriptedChatModel(
        [
            delegate(
                call("support_desk", {"task": "Refund order 7."}, "d1"),
                call("poet", {"task": "A poem."}, "d2"),
            ),
            "Refund approved; here is a poem.",
        ]
    )
    app = create_manager_graph(Agent(name="boss", model=boss_model), [desk, poet]).compile()
    out = app.invoke({"messages": [("user", "refund order 7 and write me a poem")]})
    found = results(out["messages"])
    assert found["d1"].content == "Refund of order 7 approved."
    assert found["d2"].content == "Roses are red."
    specs = {t["function"]["name"]: t for t in boss_model.calls[0].kwargs["tools"]}
    assert (
        specs["support_desk"]["function"]["description"] == "Customer support: triage and billing"
    )
    assert [m.text for m in triage_model.calls[0].messages] == ["Refund order 7."]
    assert [m.text for m in poet_model.calls[0].messages] == ["A poem."]


def test_a_manager_graph_is_a_specialist_named_after_its_manager() -> None:
    inner_boss = Agent(
        name="lead",
        description="Leads the research team",
        model=ScriptedChatModel([delegate(call("analyst", {"task": "sum 1..3"}, "i1")), "6"]),
    )
    team = create_manager_graph(inner_boss, [Agent(name="analyst", model=ScriptedChatModel(["6"]))])
    assert (team.podium_name, team.podium_description) == ("lead", "Leads the research team")
    outer_model = ScriptedChatModel(
        [delegate(call("lead", {"task": "sum 1..3"}, "o1")), "It is 6."]
    )
    app = create_manager_graph(Agent(name="ceo", model=outer_model), [team]).compile()
    out = app.invoke({"messages": [("user", "sum 1..3")]})
    assert results(out["messages"])["o1"].content == "6"
    assert out["messages"][-1].content == "It is 6."


# -- build-time validation ------------------------------------------------------------


def _agent(name: str, **kw: Any) -> Agent:
    return Agent(name=name, model=ScriptedChatModel([]), **kw)


def _unnamed_graph() -> StateGraph[Any, Any, Any, Any]:
    plain: StateGraph[Any, Any, Any, Any] = StateGraph(MessagesState)
    plain.add_node("echo", lambda state: {"messages": []})
    plain.add_edge(START, "echo")
    return plain


def test_validation_errors(search_tool: Any) -> None:
    boss = _agent("boss", tools=[search_tool])
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: create_manager_graph(boss, []), "No specialists given"),
        (
            lambda: create_manager_graph(boss, [_agent("a"), _agent("a")]),
            "Two specialists are named 'a'",
        ),
        (lambda: create_manager_graph(boss, [_agent("boss")]), "has the manager's name 'boss'"),
        (
            lambda: create_manager_graph(boss, [_agent("search")]),
            "Manager 'boss' has a tool named 'search', which is also the name",
        ),
        (lambda: create_manager_graph(boss, [_agent("tools")]), "the manager's tool step"),
        (
            lambda: create_manager_graph(create_agent_graph(boss), [_agent("a")]),  # type: ignore[arg-type]
            "the manager must be a podium Agent",
        ),
        (
            lambda: create_manager_graph(boss, [_unnamed_graph()]),
            "A graph used as a member needs a name",
        ),
        (lambda: create_manager_graph(boss, _agent("a")), "specialists must be a list"),  # type: ignore[arg-type]
        (lambda: create_manager_graph(boss, [_agent("a")], max_rounds=0), "max_rounds must be"),
        (
            lambda: create_manager_graph(boss, [_agent("a")], policy="strict"),  # type: ignore[arg-type]
            "policy must be a podium Policy",
        ),
        (lambda: create_manager_graph(boss, [_agent("a")], name="no spaces"), "Invalid graph name"),
        (lambda: create_manager_graph(boss, ["a"]), "cannot stand where an agent stands"),  # type: ignore[list-item]
        (
            lambda: create_manager_graph(
                _agent("b", tool_calling="json"), [_agent("final_answer")]
            ),
            "JSON tool calling reserves",
        ),
    ]
    for build, message in cases:
        with pytest.raises(ConfigurationError, match=message.replace("(", r"\(")):
            build()


def test_returns_an_uncompiled_graph_with_names() -> None:
    graph = create_manager_graph(
        _agent("boss"), [_agent("a")], name="desk", description="Answers everything"
    )
    assert isinstance(graph, StateGraph)
    assert (graph.podium_name, graph.podium_description) == ("desk", "Answers everything")
    assert set(graph.nodes) == {"boss", "a", "tools"}


def test_docstring_example_runs() -> None:
    result = doctest.testmod(podium.graphs._manager, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


def test_an_uncompiled_agent_graph_is_a_named_member() -> None:
    specialist = create_agent_graph(_agent("researcher"))
    graph = create_manager_graph(_agent("boss"), [specialist])
    assert "researcher" in graph.nodes


# -- share: a specialist may see part of the manager's conversation -------------------------
def test_share_shows_a_specialist_the_last_messages_of_the_conversation() -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    delegate = {"name": "billing", "args": {"task": "Refund the order."}, "id": "d1"}
    boss = Agent(
        name="boss",
        model=ScriptedChatModel(["Hello Alan.", AIMessage("", tool_calls=[delegate]), "Done."]),
    )
    billing_model = ScriptedChatModel(["Refunded A-7."])
    other_model = ScriptedChatModel([])
    billing = Agent(name="billing", description="Refunds", model=billing_model)
    other = Agent(name="other", description="Other things", model=other_model)
    app = create_manager_graph(boss, [billing, other], share={"billing": 3}).compile(
        checkpointer=InMemorySaver()
    )
    config: Any = {"configurable": {"thread_id": "share"}}
    app.invoke({"messages": [("user", "I am Alan, order A-7.")]}, config)
    app.invoke({"messages": [("user", "Please refund it.")]}, config)
    sent = [(m.type, m.content) for m in billing_model.calls[0].messages]
    assert sent == [  # the last 3 messages the user and the manager exchanged, then the task
        ("human", "I am Alan, order A-7."),
        ("ai", "Hello Alan."),
        ("human", "Please refund it."),
        ("human", "Refund the order."),
    ]
    other_model.assert_consumed()


def test_share_defaults_to_a_private_history_and_is_validated() -> None:
    delegate = {"name": "billing", "args": {"task": "Refund the order."}, "id": "d1"}
    boss = Agent(name="boss", model=ScriptedChatModel([AIMessage("", tool_calls=[delegate]), "ok"]))
    billing_model = ScriptedChatModel(["done"])
    billing = Agent(name="billing", description="Refunds", model=billing_model)
    create_manager_graph(boss, [billing]).compile().invoke({"messages": [("user", "secret")]})
    assert [m.content for m in billing_model.calls[0].messages] == ["Refund the order."]
    for bad, message in [(-1, "whole number"), ({"nobody": 2}, "unknown specialist")]:
        with pytest.raises(ConfigurationError, match=message):
            create_manager_graph(boss, [billing], share=bad)
