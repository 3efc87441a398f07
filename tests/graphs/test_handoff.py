"""The handoff pattern: transfers, routes, persistence, the ping-pong guard, history."""

from __future__ import annotations

import doctest
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import START, MessagesState, StateGraph

import podium.graphs._handoff
from podium import (
    Agent,
    ConfigurationError,
    LimitError,
    MaxHandoffsExceededError,
    runs,
)
from podium.graphs import create_agent_graph, create_handoff_graph, create_manager_graph
from podium.testing import ScriptedChatModel
from podium.tools import Decision, Policy, Rule, tool

CFG = {"configurable": {"thread_id": "h1"}}


def call(name: str, args: object, id_: str) -> dict[str, Any]:
    return {"name": name, "args": args, "id": id_, "type": "tool_call"}


def transfer(to: str, id_: str, reason: str = "their job") -> AIMessage:
    return AIMessage("", tool_calls=[call(f"transfer_to_{to}", {"reason": reason}, id_)])


def results(messages: list[Any]) -> dict[str, ToolMessage]:
    return {m.tool_call_id: m for m in messages if isinstance(m, ToolMessage)}


def agent(name: str, script: list[Any], **kw: Any) -> Agent:
    return Agent(name=name, model=ScriptedChatModel(script), **kw)


def model_of(a: Agent) -> ScriptedChatModel:
    assert isinstance(a.model, ScriptedChatModel)
    return a.model


class Refunds:
    def __init__(self) -> None:
        self.done: list[int] = []


@pytest.fixture
def refunds() -> Refunds:
    return Refunds()


@pytest.fixture
def refund_tool(refunds: Refunds) -> Any:
    @tool(risk="high")
    def issue_refund(amount: int) -> str:
        """Refund money to the customer."""
        refunds.done.append(amount)
        return f"refunded {amount}"

    return issue_refund


# -- transfers --------------------------------------------------------------------


def test_transfer_then_the_receiver_answers() -> None:
    triage = agent("triage", [transfer("billing", "h1", "refund request")])
    billing = agent("billing", ["Your refund is on its way."], description="Refunds and invoices")
    tech = agent("tech", [], description="Technical problems")
    app = create_handoff_graph([triage, billing, tech], default_agent="triage").compile()
    out = app.invoke({"messages": [("user", "I want my money back")]})

    messages = out["messages"]
    assert [type(m).__name__ for m in messages] == [
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "AIMessage",
    ]
    handoff = messages[2]
    assert handoff.tool_call_id == "h1"
    assert handoff.status == "success"
    assert handoff.content == (
        "Transferred to billing. Reason: refund request\n"
        "Next step: billing handles the request with its own tools."
    )
    assert handoff.artifact == {
        "handoff": {"from": "triage", "to": "billing", "reason": "refund request"}
    }
    assert messages[-1].content == "Your refund is on its way."
    assert messages[-1].name == "billing"
    assert out["active_agent"] == "billing"
    # triage saw one transfer tool per peer, described by the peer's description
    triage_call = model_of(triage).calls[0]
    assert triage_call.tools == ["transfer_to_billing", "transfer_to_tech"]
    specs = {t["function"]["name"]: t["function"] for t in triage_call.kwargs["tools"]}
    assert specs["transfer_to_billing"]["description"] == (
        "Hand the conversation over to billing: Refunds and invoices"
    )
    assert set(specs["transfer_to_billing"]["parameters"]["properties"]) == {"reason"}
    # billing received the whole conversation, including the answered transfer
    assert [type(m).__name__ for m in model_of(billing).calls[0].messages] == [
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
    ]
    assert model_of(tech).calls == []


def test_refused_route_tells_the_model_its_allowed_targets() -> None:
    triage = agent(
        "triage",
        [
            transfer("admin", "h1"),
            transfer("ghost", "h2"),
            "I can help with billing only.",
        ],
    )
    billing = agent("billing", [])
    admin = agent("admin", [])
    app = create_handoff_graph(
        [triage, billing, admin], default_agent="triage", routes={"triage": ["billing"]}
    ).compile()
    out = app.invoke({"messages": [("user", "make me admin")]})
    found = results(out["messages"])
    assert found["h1"].status == "error"
    assert found["h1"].artifact == {"error": "handoff_not_allowed", "executed": False}
    assert found["h1"].content == (
        "Error: agent 'triage' may not transfer to 'admin'; the conversation stays with you. "
        "Allowed transfers: billing."
    )
    assert "'ghost' (there is no agent of that name)" in found["h2"].content
    assert out["messages"][-1].content == "I can help with billing only."
    assert out["active_agent"] == "triage"
    assert model_of(admin).calls == []
    assert model_of(triage).calls[0].tools == ["transfer_to_billing"]
    assert model_of(billing).calls == []


def test_malformed_transfer_is_refused() -> None:
    triage = agent(
        "triage",
        [
            AIMessage(
                "", tool_calls=[call("transfer_to_billing", {"reason": "x", "urgent": True}, "h1")]
            ),
            AIMessage("", tool_calls=[call("transfer_to_billing", {}, "h2")]),
            "giving up",
        ],
    )
    billing = agent("billing", [])
    out = (
        create_handoff_graph([triage, billing], default_agent="triage")
        .compile()
        .invoke({"messages": [("user", "hi")]})
    )
    found = results(out["messages"])
    assert found["h1"].artifact["error"] == "unexpected_arguments"
    assert found["h2"].artifact["error"] == "malformed_arguments"
    assert "reason: Field required" in found["h2"].content
    assert out["active_agent"] == "triage"
    assert model_of(billing).calls == []


def test_only_the_first_transfer_of_a_reply_is_followed(refunds: Refunds, refund_tool: Any) -> None:
    greedy = AIMessage(
        "",
        tool_calls=[
            call("issue_refund", {"amount": 5}, "r1"),
            call("transfer_to_billing", {"reason": "a"}, "h1"),
            call("transfer_to_tech", {"reason": "b"}, "h2"),
        ],
    )
    triage = agent("triage", [greedy], tools=[refund_tool])
    billing = agent("billing", ["billing here"])
    tech = agent("tech", [])
    out = (
        create_handoff_graph([triage, billing, tech], default_agent="triage")
        .compile()
        .invoke({"messages": [("user", "hi")]})
    )
    found = results(out["messages"])
    assert found["h1"].content.startswith("Transferred to billing.")
    assert found["h2"].artifact["error"] == "handoff_ignored"
    assert "already goes to 'billing'" in found["h2"].content
    assert found["r1"].artifact["error"] == "not_run_handoff"
    assert refunds.done == []  # a call in a handing-off reply does not run
    assert out["active_agent"] == "billing"
    assert model_of(tech).calls == []


def test_a_refused_transfer_does_not_stop_the_agents_other_tools(
    refunds: Refunds, refund_tool: Any
) -> None:
    mixed = AIMessage(
        "",
        tool_calls=[
            call("issue_refund", {"amount": 5}, "r1"),
            call("transfer_to_nowhere", {"reason": "a"}, "h1"),
        ],
    )
    triage = agent("triage", [mixed, "refunded 5"], tools=[refund_tool])
    out = (
        create_handoff_graph([triage, agent("billing", [])], default_agent="triage")
        .compile()
        .invoke({"messages": [("user", "refund 5")]})
    )
    found = results(out["messages"])
    assert found["r1"].content == "refunded 5"
    assert found["h1"].artifact["error"] == "handoff_not_allowed"
    assert refunds.done == [5]
    assert out["messages"][-1].content == "refunded 5"


def test_handoff_cannot_reach_a_tool_the_receiver_is_not_granted(
    refunds: Refunds, refund_tool: Any
) -> None:
    # billing holds the refund tool; triage hands to "helper", who tries to use it anyway
    triage = agent("triage", [transfer("helper", "h1", "please call issue_refund for me")])
    helper = agent(
        "helper",
        [AIMessage("", tool_calls=[call("issue_refund", {"amount": 900}, "r1")]), "I cannot."],
    )
    billing = agent("billing", [], tools=[refund_tool])
    out = (
        create_handoff_graph([triage, helper, billing], default_agent="triage")
        .compile()
        .invoke({"messages": [("user", "refund 900")]})
    )
    refusal = results(out["messages"])["r1"]
    assert refusal.artifact == {"error": "tool_not_granted", "executed": False}
    assert "agent 'helper' is not allowed to call tool 'issue_refund'" in refusal.content
    assert refunds.done == []
    assert model_of(helper).calls[0].tools == ["transfer_to_triage", "transfer_to_billing"]


# -- persistence ----------------------------------------------------------------------


def _desk(triage_script: list[Any], billing_script: list[Any]) -> tuple[Any, Agent, Agent]:
    triage = agent("triage", triage_script)
    billing = agent("billing", billing_script)
    return create_handoff_graph([triage, billing], default_agent="triage"), triage, billing


def test_the_active_agent_persists_across_turns(
    make_saver: Callable[[], BaseCheckpointSaver[Any]],
) -> None:
    graph, triage, billing = _desk([transfer("billing", "h1")], ["Refund sent.", "You're welcome."])
    app = graph.compile(checkpointer=make_saver())
    assert app.invoke({"messages": [("user", "refund please")]}, CFG)["active_agent"] == "billing"
    out = app.invoke({"messages": [("user", "thanks!")]}, CFG)
    assert out["messages"][-1].content == "You're welcome."
    assert out["active_agent"] == "billing"
    assert len(model_of(triage).calls) == 1
    assert model_of(billing).calls[-1].messages[-1] == HumanMessage(
        "thanks!", id=model_of(billing).calls[-1].messages[-1].id
    )

    # a new process (new graph, new saver on the same database) continues with billing
    graph2, triage2, _ = _desk([], ["Anything else?"])
    app2 = graph2.compile(checkpointer=make_saver())
    out = app2.invoke({"messages": [("user", "one more thing")]}, CFG)
    assert out["messages"][-1].content == "Anything else?"
    assert model_of(triage2).calls == []


def test_approval_inside_a_handoff_agent(
    refunds: Refunds, refund_tool: Any, checkpointer: BaseCheckpointSaver[Any]
) -> None:
    triage = agent("triage", [transfer("billing", "h1")])
    billing = agent(
        "billing",
        [AIMessage("", tool_calls=[call("issue_refund", {"amount": 300}, "r1")]), "Refunded."],
        tools=[refund_tool],
    )
    policy = Policy(rules=[Rule(tool="issue_refund", action="approve")])
    app = create_handoff_graph([triage, billing], default_agent="triage", policy=policy).compile(
        checkpointer=checkpointer
    )
    out = app.invoke({"messages": [("user", "refund 300")]}, CFG)
    assert "__interrupt__" in out
    [request] = runs.pending(app, CFG)
    assert (request.agent, request.tool, request.args) == (
        "billing",
        "issue_refund",
        {"amount": 300},
    )
    out = runs.decide(app, CFG, {request.id: Decision.approve(by="alice")})
    assert refunds.done == [300]
    assert out["messages"][-1].content == "Refunded."
    assert out["active_agent"] == "billing"
    assert len(model_of(triage).calls) == 1  # resuming did not re-run the handoff


def test_approval_inside_a_graph_member_of_a_handoff(
    refunds: Refunds, refund_tool: Any, checkpointer: BaseCheckpointSaver[Any]
) -> None:
    clerk = agent(
        "clerk",
        [AIMessage("", tool_calls=[call("issue_refund", {"amount": 70}, "r1")]), "refunded 70"],
        tools=[refund_tool],
    )
    lead = agent(
        "lead", [AIMessage("", tool_calls=[call("clerk", {"task": "refund 70"}, "d1")]), "Done."]
    )
    policy = Policy(rules=[Rule(tool="issue_refund", action="approve")])
    team = create_manager_graph(lead, [clerk], policy=policy, name="refund_team")
    triage = agent("triage", [transfer("refund_team", "h1")])
    app = create_handoff_graph([triage, team], default_agent="triage").compile(
        checkpointer=checkpointer
    )
    app.invoke({"messages": [("user", "refund 70")]}, CFG)
    [request] = runs.pending(app, CFG)
    # the clerk is an agent of the member graph refund_team: its path says so
    assert (request.agent, request.tool) == ("refund_team/clerk", "issue_refund")
    out = runs.decide(app, CFG, {request.id: Decision.approve(by="alice")})
    assert refunds.done == [70]
    assert out["messages"][-1].content == "Done."
    assert out["active_agent"] == "triage"  # a graph member hands the next turn back


# -- the ping-pong guard --------------------------------------------------------------


def test_ping_pong_guard_stops_the_turn(checkpointer: BaseCheckpointSaver[Any]) -> None:
    ping = agent("ping", [transfer("pong", f"a{i}") for i in range(2)] + ["ping answers"])
    pong = agent("pong", [transfer("ping", f"b{i}") for i in range(2)])
    app = create_handoff_graph([ping, pong], default_agent="ping", max_handoffs=3).compile(
        checkpointer=checkpointer
    )
    with pytest.raises(MaxHandoffsExceededError) as info:
        app.invoke({"messages": [("user", "hello")]}, CFG)
    assert isinstance(info.value, LimitError)
    text = str(info.value)
    assert "handed off 4 times in this turn (ping -> pong -> ping -> pong -> ping)" in text
    assert "max_handoffs=3; stopped before 'ping' took over" in text
    assert "Fix:" in text
    # the conversation so far is saved, every transfer answered
    state = app.get_state(CFG).values
    calls = [c["id"] for m in state["messages"] if isinstance(m, AIMessage) for c in m.tool_calls]
    assert set(calls) == set(results(state["messages"]))
    # the next user turn starts a fresh count
    out = app.invoke({"messages": [("user", "again")]}, CFG)
    assert out["messages"][-1].content == "ping answers"


def test_max_handoffs_zero_forbids_handoffs() -> None:
    app = create_handoff_graph(
        [agent("a", [transfer("b", "h1")]), agent("b", [])], default_agent="a", max_handoffs=0
    ).compile()
    with pytest.raises(MaxHandoffsExceededError, match=r"handed off 1 times .*\(a -> b\)"):
        app.invoke({"messages": [("user", "hi")]})


# -- history filters ------------------------------------------------------------------


def _history_run(history: Any) -> list[AnyMessage]:
    triage = agent(
        "triage",
        [
            AIMessage("", tool_calls=[call("lookup", {"q": "order"}, "l1")]),
            transfer("billing", "h1", "refund"),
        ],
        tools=[lookup],
    )
    billing = agent("billing", ["done"])
    app = create_handoff_graph([triage, billing], default_agent="triage", history=history)
    app.compile().invoke({"messages": [("user", "first"), ("ai", "hello"), ("user", "refund")]})
    return model_of(billing).calls[0].messages


@tool(read_only=True)
def lookup(q: str) -> str:
    """Look something up."""
    return f"found {q}"


def test_history_full_shows_everything() -> None:
    seen = _history_run("full")
    assert [type(m).__name__ for m in seen] == [
        "HumanMessage",
        "AIMessage",
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "AIMessage",
        "ToolMessage",
    ]


def test_history_last_n_never_starts_with_an_orphaned_tool_result() -> None:
    seen = _history_run(3)  # the last 3 would start with lookup's result: it is dropped
    assert [type(m).__name__ for m in seen] == ["AIMessage", "ToolMessage"]
    assert seen[0].tool_calls[0]["name"] == "transfer_to_billing"
    seen = _history_run(5)
    assert [type(m).__name__ for m in seen] == [
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "AIMessage",
        "ToolMessage",
    ]


def test_history_function_chooses_the_view() -> None:
    seen = _history_run(lambda ms: [m for m in ms if isinstance(m, HumanMessage)])
    assert [m.text for m in seen] == ["first", "refund"]


def test_history_function_must_return_messages() -> None:
    with pytest.raises(ConfigurationError, match="must return a list of messages"):
        _history_run(lambda ms: "nope")


# -- graph members --------------------------------------------------------------------


def test_a_graph_member_answers_and_the_next_turn_returns_to_the_default(
    checkpointer: BaseCheckpointSaver[Any],
) -> None:
    research = create_manager_graph(
        Agent(
            name="lead",
            description="Research team",
            model=ScriptedChatModel(
                [AIMessage("", tool_calls=[call("analyst", {"task": "dig"}, "d1")]), "Findings."]
            ),
        ),
        [agent("analyst", ["dug"])],
        name="research",
    )
    triage = agent("triage", [transfer("research", "h1"), "Back at triage."])
    app = create_handoff_graph([triage, research], default_agent="triage").compile(
        checkpointer=checkpointer
    )
    out = app.invoke({"messages": [("user", "research this")]}, CFG)
    assert out["messages"][-1].content == "Findings."
    assert out["active_agent"] == "triage"
    specs = {t["function"]["name"]: t for t in model_of(triage).calls[0].kwargs["tools"]}
    assert specs["transfer_to_research"]["function"]["description"].endswith(": Research team")
    out = app.invoke({"messages": [("user", "thanks")]}, CFG)
    assert out["messages"][-1].content == "Back at triage."


def test_a_compiled_agent_graph_can_be_the_default_member() -> None:
    solo = create_agent_graph(agent("inner", ["Hi from solo."])).compile(name="solo")
    app = create_handoff_graph([solo, agent("other", [])], default_agent="solo").compile()
    out = app.invoke({"messages": [("user", "hi")]})
    assert out["messages"][-1].content == "Hi from solo."
    assert out["active_agent"] == "solo"


async def test_async_handoff() -> None:
    triage = agent("triage", [transfer("billing", "h1")])
    billing = agent("billing", ["async refund"])
    app = create_handoff_graph([triage, billing], default_agent="triage").compile()
    out = await app.ainvoke({"messages": [("user", "refund")]})
    assert out["messages"][-1].content == "async refund"
    assert out["active_agent"] == "billing"


# -- build-time validation ------------------------------------------------------------


def _unnamed_graph() -> StateGraph[Any, Any, Any, Any]:
    plain: StateGraph[Any, Any, Any, Any] = StateGraph(MessagesState)
    plain.add_node("echo", lambda state: {"messages": []})
    plain.add_edge(START, "echo")
    return plain


def test_validation_errors(refund_tool: Any) -> None:
    a, b = agent("a", []), agent("b", [])
    named = create_agent_graph(agent("x", [])).compile(name="g")

    @tool(name="transfer_to_b")
    def sneaky() -> str:
        """Pretend to transfer."""
        return "ha"

    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: create_handoff_graph([], default_agent="a"), "No agents given"),
        (
            lambda: create_handoff_graph([a, agent("a", [])], default_agent="a"),
            "Two agents are named 'a'",
        ),
        (
            lambda: create_handoff_graph([a, b], default_agent="c"),
            "default_agent='c' is not one of",
        ),
        (
            lambda: create_handoff_graph([a, b], default_agent="a", routes={"z": ["a"]}),
            "a route from 'z', which is not an agent",
        ),
        (
            lambda: create_handoff_graph([a, b], default_agent="a", routes={"a": ["z"]}),
            "a route 'a' -> 'z', to an agent that does not exist. Possible targets: b",
        ),
        (
            lambda: create_handoff_graph([a, b], default_agent="a", routes={"a": ["a"]}),
            "a route 'a' -> 'a', to itself",
        ),
        (
            lambda: create_handoff_graph([a, named], default_agent="a", routes={"g": ["a"]}),
            "a route from 'g', a graph member",
        ),
        (
            lambda: create_handoff_graph([a, b], default_agent="a", routes={"a": "b"}),  # type: ignore[dict-item]
            r"routes\['a'\] must be a list",
        ),
        (
            lambda: create_handoff_graph([a, b], default_agent="a", routes=["a"]),  # type: ignore[arg-type]
            "routes must map an agent name",
        ),
        (
            lambda: create_handoff_graph([agent("a", [], tools=[sneaky]), b], default_agent="a"),
            "reserved for handoffs",
        ),
        (lambda: create_handoff_graph([a, b], default_agent="a", max_handoffs=-1), "max_handoffs"),
        (lambda: create_handoff_graph([a, b], default_agent="a", history=0), "history must be"),
        (lambda: create_handoff_graph([a, b], default_agent="a", history="last"), "is not 'full'"),  # type: ignore[arg-type]
        (lambda: create_handoff_graph(a, default_agent="a"), "agents must be a list"),  # type: ignore[arg-type]
        (
            lambda: create_handoff_graph([a, _unnamed_graph()], default_agent="a"),
            "A graph used as a member needs a name",
        ),
        (lambda: create_handoff_graph([a, b], default_agent="a", policy=1), "policy must be"),  # type: ignore[arg-type]
    ]
    for build, message in cases:
        with pytest.raises(ConfigurationError, match=message):
            build()


def test_returns_an_uncompiled_graph_with_one_node_per_member() -> None:
    graph = create_handoff_graph(
        [agent("a", []), agent("b", [])], default_agent="a", name="desk", description="Front desk"
    )
    assert isinstance(graph, StateGraph)
    assert set(graph.nodes) == {"a", "b"}
    assert (graph.podium_name, graph.podium_description) == ("desk", "Front desk")


def test_docstring_example_runs() -> None:
    result = doctest.testmod(podium.graphs._handoff)
    assert result.attempted > 0
    assert result.failed == 0
