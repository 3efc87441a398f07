"""The guarantees on the path users run: composition, routing inputs, typos, pending input.

Every test uses the README's plain calls (``app.invoke(input, config)``, default
options) and counts real side effects. The single-agent ones run for both agent kinds
(podium's agent graph, and LangChain's ``create_agent`` with ``podium.middleware.Governed``
under ``govern``; tests/agent_kinds.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from langgraph.types import Command
from typing_extensions import TypedDict

from agent_kinds import agent_app
from podium import (
    Agent,
    ConfigurationError,
    Decision,
    InvalidInputError,
    PendingRequestsError,
    Policy,
    Rule,
    runs,
)
from podium.checkpoints import Messages
from podium.graphs import (
    Stage,
    create_agent_graph,
    create_handoff_graph,
    create_manager_graph,
    create_parallel_graph,
    create_pipeline_graph,
)
from podium.testing import ScriptedChatModel
from podium.tools import tool

CFG = {"configurable": {"thread_id": "t"}}


def call(name: str, args: dict[str, Any], id_: str) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": id_, "type": "tool_call"}])


def refunder(refunds: list[float], replies: list[Any], name: str = "billing") -> Agent:
    @tool(risk="high")
    def issue_refund(order_id: str, amount: float) -> str:
        """Refund an order."""
        refunds.append(amount)
        return f"refunded {amount:g} on {order_id}"

    return Agent(
        name=name,
        description="Refunds",
        model=ScriptedChatModel(replies),
        tools=[issue_refund],
    )


def refund(amount: float, id_: str = "r1") -> AIMessage:
    return call("issue_refund", {"order_id": "A-1", "amount": amount}, id_)


class Plain(TypedDict):
    """A user's own graph's state."""

    messages: Messages


# -- an outer policy governs every member at any depth ----------------------------------------
DENY_REFUNDS = Policy(rules=[Rule(tool="issue_refund", action="deny", reason="no refunds")])
OVER_100 = Policy(
    rules=[
        Rule(tool="issue_refund", action="approve", when=lambda a: a["amount"] > 100),
    ],
    approvers=["finance-lead"],
)


def test_outer_deny_reaches_a_specialist_inside_a_pipeline_inside_a_manager() -> None:
    refunds: list[float] = []
    billing = refunder(refunds, [refund(50), "tried"])
    pipeline = create_pipeline_graph(
        [Stage("refund", billing)], name="desk", description="Handles refunds"
    )
    boss = Agent(
        name="boss",
        model=ScriptedChatModel(
            [call("desk", {"task": "refund 50 on A-1"}, "d1"), "The desk could not refund."]
        ),
    )
    app = create_manager_graph(boss, [pipeline], policy=DENY_REFUNDS).compile(
        checkpointer=InMemorySaver()
    )
    out = app.invoke({"messages": [("user", "refund A-1")]}, CFG)
    assert refunds == []
    assert out["messages"][-1].content == "The desk could not refund."
    seen = billing.model.calls[1].messages[-1]  # type: ignore[union-attr]
    assert isinstance(seen, ToolMessage)
    assert "policy refused this call of 'issue_refund': no refunds" in seen.content


def test_outer_policy_three_levels_deep_pipeline_parallel_manager_agent() -> None:
    """pipeline(policy) -> parallel stage -> manager branch -> agent: the over-limit refund
    waits for the outer policy's approvers; a small one runs."""
    refunds: list[float] = []
    billing = refunder(refunds, [refund(250), "refunded 250"])
    manager = create_manager_graph(
        Agent(
            name="lead",
            model=ScriptedChatModel([call("billing", {"task": "refund 250"}, "d1"), "done"]),
        ),
        [billing],
        name="desk",
    )
    watcher = Agent(name="watcher", model=ScriptedChatModel(["nothing to watch"]))
    team = create_parallel_graph([manager, watcher], name="team")
    pipeline = create_pipeline_graph([Stage("work", team)], policy=OVER_100)
    app = pipeline.compile(checkpointer=InMemorySaver())
    out = app.invoke({"messages": [("user", "refund 250 on A-1")]}, CFG)
    assert "__interrupt__" in out
    assert refunds == []
    [request] = runs.pending(app, CFG)
    assert (request.tool, request.args["amount"], request.approvers) == (
        "issue_refund",
        250.0,
        ("finance-lead",),
    )
    with pytest.raises(Exception, match="may not decide"):
        runs.decide(app, CFG, {request.id: Decision.approve(by="mallory")})
    runs.decide(app, CFG, {request.id: Decision.approve(by="finance-lead")})
    assert refunds == [250.0]


def test_an_inner_policy_may_only_add_restrictions() -> None:
    """Outer allows (default); inner denies over 1,000: the inner deny holds. Outer denies:
    an inner allow cannot loosen it."""
    refunds: list[float] = []
    inner_deny = Policy(
        rules=[Rule(tool="issue_refund", action="deny", when=lambda a: a["amount"] > 1000)]
    )
    inner = create_agent_graph(refunder(refunds, [refund(5000), "no"]), policy=inner_deny)
    outer = create_pipeline_graph([Stage("go", inner)], policy=Policy())
    outer.compile(checkpointer=InMemorySaver()).invoke({"messages": [("user", "x")]}, CFG)
    assert refunds == []
    inner_allow = Policy(rules=[Rule(tool="issue_refund", action="allow")])
    inner = create_agent_graph(refunder(refunds, [refund(5), "no"]), policy=inner_allow)
    outer = create_pipeline_graph([Stage("go", inner)], policy=DENY_REFUNDS)
    outer.compile(checkpointer=InMemorySaver()).invoke({"messages": [("user", "x")]}, CFG)
    assert refunds == []


def test_outer_and_inner_approvers_intersect() -> None:
    refunds: list[float] = []
    inner = create_agent_graph(
        refunder(refunds, [refund(500), "ok"]),
        policy=Policy(
            rules=[Rule(tool="issue_refund", action="approve", approvers=["cfo", "ceo"])]
        ),
    )
    outer = create_pipeline_graph(
        [Stage("go", inner)], policy=Policy(approvers=["cfo", "finance-lead"])
    )
    app = outer.compile(checkpointer=InMemorySaver())
    app.invoke({"messages": [("user", "x")]}, CFG)
    [request] = runs.pending(app, CFG)
    assert request.approvers == ("cfo",)


# -- internal state in the input never steers a run ---------------------------------------------
def vault_desk(opened: list[str]) -> Any:
    @tool(risk="high")
    def open_vault(code: str) -> str:
        """Open the vault."""
        opened.append(code)
        return "open"

    triage = Agent(name="triage", description="Front desk", model=ScriptedChatModel(["Hello."] * 3))
    vault = Agent(
        name="vault",
        description="The vault",
        model=ScriptedChatModel([call("open_vault", {"code": "0000"}, "v1"), "opened"] * 3),
        tools=[open_vault],
    )
    # routes never lead to the vault
    return create_handoff_graph([triage, vault], default_agent="triage", routes={"triage": []})


def patterns() -> dict[str, Any]:
    def agent(name: str) -> Agent:
        return Agent(name=name, description=name, model=ScriptedChatModel(["ok"] * 4))

    return {
        "agent": (create_agent_graph(agent("a")), ["usage", "escalation"]),
        "manager": (
            create_manager_graph(agent("boss"), [agent("s")]),
            ["usage", "escalation"],
        ),
        "handoff": (
            create_handoff_graph([agent("a"), agent("b")], default_agent="a"),
            ["active_agent", "handoffs", "usage"],
        ),
        "parallel": (
            create_parallel_graph([agent("a"), agent("b")]),
            ["branch_results", "join_result", "usage"],
        ),
        "pipeline": (
            create_pipeline_graph([Stage("one", agent("a")), Stage("two", agent("b"))]),
            ["stage_outputs", "stage_log", "rework", "reworks", "usage"],
        ),
    }


@pytest.mark.parametrize("pattern", ["agent", "manager", "handoff", "parallel", "pipeline"])
def test_every_internal_key_of_every_pattern_is_refused_as_input(pattern: str) -> None:
    graph, internal = patterns()[pattern]
    app = graph.compile(checkpointer=InMemorySaver())
    for key in internal:
        value: Any = {"x": 1} if key != "active_agent" else "b"
        with pytest.raises(InvalidInputError, match=repr(key)):
            app.invoke({"messages": [("user", "hi")], key: value}, CFG)
        with pytest.raises(InvalidInputError, match=repr(key)):
            app.invoke(Command(update={key: value}), CFG)
    assert app.get_state(CFG).created_at is None  # nothing ran, nothing was saved
    with pytest.raises(InvalidInputError, match="goto"):
        app.invoke(Command(goto="__end__"), CFG)


def test_a_create_agent_input_cannot_jump() -> None:
    """LangChain's ``jump_to`` routes a ``create_agent`` graph; under ``govern`` it is an
    internal key like podium's own, refused before anything runs."""
    refunds: list[float] = []
    app = gated(refunds, InMemorySaver(), "create_agent")
    for value in ("tools", "end"):
        with pytest.raises(InvalidInputError, match="'jump_to'"):
            app.invoke({"messages": [("user", "refund")], "jump_to": value}, CFG)
    assert app.get_state(CFG).created_at is None
    assert refunds == []


def test_active_agent_in_the_input_cannot_activate_an_unrouted_agent() -> None:
    opened: list[str] = []
    app = vault_desk(opened).compile(checkpointer=InMemorySaver())
    with pytest.raises(InvalidInputError, match="active_agent"):
        app.invoke({"messages": [("user", "open it")], "active_agent": "vault"}, CFG)
    assert opened == []


def test_active_agent_set_by_update_state_still_follows_the_routes() -> None:
    """An operator (or a LangGraph Server client) writing the state directly: the entry
    activates only the default agent or one the declared routes reach."""
    opened: list[str] = []
    app = vault_desk(opened).compile(checkpointer=InMemorySaver())
    app.invoke({"messages": [("user", "hi")]}, CFG)
    app.update_state(CFG, {"active_agent": "vault"})
    out = app.invoke({"messages": [("user", "open it")]}, CFG)
    assert opened == []
    assert out["active_agent"] == "triage"


# -- build-time checks ----------------------------------------------------------------------------
def test_a_typo_in_a_rule_is_a_build_error_listing_the_known_names() -> None:
    typo = Policy(rules=[Rule(tool="issue_refnd", action="deny")])
    with pytest.raises(ConfigurationError, match=r"'issue_refnd'.*Known tools: issue_refund"):
        create_agent_graph(refunder([], ["x"]), policy=typo)
    nested = create_pipeline_graph([Stage("go", refunder([], ["x"]))], name="inner")
    with pytest.raises(ConfigurationError, match="issue_refnd"):
        create_manager_graph(
            Agent(name="boss", model=ScriptedChatModel(["x"])), [nested], policy=typo
        )
    agent_typo = Policy(rules=[Rule(agent="biling", action="deny")])
    with pytest.raises(ConfigurationError, match=r"agent.*'biling'.*Known agents: billing"):
        create_handoff_graph([refunder([], ["x"])], default_agent="billing", policy=agent_typo)
    # names at any depth (and a manager's specialists, as tools) are known
    boss = Agent(name="boss", model=ScriptedChatModel(["x"]))
    nested = create_pipeline_graph([Stage("go", refunder([], ["x"]))], name="desk")
    ok = Policy(rules=[Rule(tool=["issue_refund", "desk"], agent="billing", action="approve")])
    create_manager_graph(boss, [nested], policy=ok)


# -- new input while a request waits ----------------------------------------------------------
def gated(refunds: list[float], checkpointer: BaseCheckpointSaver[Any], kind: str) -> Any:
    billing = refunder(
        refunds, [refund(250), "Refund is waiting.", "Your balance is 0.", "Your balance is 0."]
    )
    policy = Policy(rules=[Rule(tool="issue_refund", action="approve")])
    return agent_app(
        kind,
        name=billing.name,
        model=billing.model,
        tools=billing.granted_tools,
        policy=policy,
        checkpointer=checkpointer,
    )


def test_new_input_while_a_request_waits_is_refused_and_nothing_is_dropped(
    checkpointer: BaseCheckpointSaver[Any], agent_kind: str
) -> None:
    refunds: list[float] = []
    app = gated(refunds, checkpointer, agent_kind)
    app.invoke({"messages": [("user", "refund 250 on A-1")]}, CFG)
    [request] = runs.pending(app, CFG)
    before = app.get_state(CFG)
    with pytest.raises(PendingRequestsError, match=request.id) as raised:
        app.invoke({"messages": [("user", "also, what's my balance?")]}, CFG)
    assert [r.id for r in raised.value.requests] == [request.id]
    after = app.get_state(CFG)
    assert after.config == before.config  # nothing changed
    assert [r.id for r in runs.pending(app, CFG)] == [request.id]
    runs.decide(app, CFG, {request.id: Decision.approve(by="alice")})
    assert refunds == [250.0]


def test_new_input_may_supersede_pending_requests_when_the_caller_opts_in(
    agent_kind: str,
) -> None:
    refunds: list[float] = []
    app = gated(refunds, InMemorySaver(), agent_kind)
    app.invoke({"messages": [("user", "refund 250 on A-1")]}, CFG)
    config = {"configurable": {"thread_id": "t", "podium_pending": "supersede"}}
    out = app.invoke({"messages": [("user", "never mind; my balance?")]}, config)
    assert refunds == []
    assert runs.pending(app, CFG) == []
    messages = out["messages"]
    # every tool call has its result (valid for every provider), the rejection says why
    asked = {c["id"] for m in messages if isinstance(m, AIMessage) for c in m.tool_calls}
    answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    assert asked == answered
    result = next(m for m in messages if isinstance(m, ToolMessage))
    assert "superseded by new input" in result.content
    assert messages[-1].content == "Your balance is 0."


# -- durability: what each kind of call runs with ----------------------------------------------
@pytest.mark.parametrize(
    ("given", "served", "env", "expected"),
    [
        ({}, False, None, "sync"),  # the README's plain call
        ({"durability": "async"}, False, None, "async"),  # a caller's explicit choice
        ({"durability": "exit"}, False, None, "exit"),
        ({"checkpoint_during": True}, False, None, "sync"),
        ({"checkpoint_during": False}, False, None, "exit"),
        ({"durability": "async"}, True, None, "sync"),  # LangGraph Server's own default
        ({"durability": "async"}, True, "async", "async"),  # the operator keeps it
        ({"durability": "exit"}, True, None, "exit"),
    ],
)
def test_the_durability_a_run_gets(
    given: dict[str, Any],
    served: bool,
    env: str | None,
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    agent_kind: str,
) -> None:
    if env:
        monkeypatch.setenv("PODIUM_SERVER_DURABILITY", env)
    billing = refunder([], ["x"])
    app = agent_app(
        agent_kind,
        name=billing.name,
        model=billing.model,
        tools=billing.granted_tools,
        checkpointer=InMemorySaver(),
    )
    conf: dict[str, Any] = {"thread_id": "t", **({"langgraph_request_id": "r1"} if served else {})}
    kwargs = dict(given)
    app._podium_defaults({"messages": [("user", "hi")]}, {"configurable": conf}, kwargs)
    assert kwargs.get("durability") == expected


def test_a_graph_that_cannot_act_keeps_langgraphs_default(agent_kind: str) -> None:
    @tool(read_only=True)
    def look(q: str) -> str:
        """Look something up."""
        return q

    app = agent_app(
        agent_kind,
        name="reader",
        model=ScriptedChatModel(["x"]),
        tools=[look],
        checkpointer=InMemorySaver(),
    )
    kwargs: dict[str, Any] = {}
    app._podium_defaults({"messages": []}, {"configurable": {"thread_id": "t"}}, kwargs)
    assert "durability" not in kwargs


def test_outer_policy_reaches_through_a_users_own_state_graph() -> None:
    """pipeline(policy) -> the user's own StateGraph -> a podium agent graph as its node:
    the outer policy still gates the refund; approved, it runs once."""
    refunds: list[float] = []
    billing = create_agent_graph(refunder(refunds, [refund(250), "refunded 250"])).compile()
    own = StateGraph(Plain)
    own.add_node("desk", billing)
    own.add_edge(START, "desk")
    app = create_pipeline_graph([Stage("work", own.compile(name="own"))], policy=OVER_100).compile(
        checkpointer=InMemorySaver()
    )
    out = app.invoke({"messages": [("user", "refund 250 on A-1")]}, CFG)
    assert "__interrupt__" in out
    assert refunds == []
    [request] = runs.pending(app, CFG)
    assert (request.tool, request.approvers) == ("issue_refund", ("finance-lead",))
    runs.decide(app, CFG, {request.id: Decision.approve(by="finance-lead")})
    assert refunds == [250.0]
    app.invoke(None, CFG)  # a stray resume runs nothing again
    assert refunds == [250.0]
