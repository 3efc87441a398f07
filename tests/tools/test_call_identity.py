"""What a policy sees, and what counts as the same call: predicates, replay, forks, time travel.

The policy decides on exactly the arguments the tool will receive (validated, with
defaults). A call is identified by the message that asked for it, its call id and
its arguments, so replaying, forking or time-travelling a finished call returns its
recorded result, while a new model message acts anew.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver

from podium import Agent, Decision, Policy, Rule, runs
from podium.graphs import create_agent_graph
from podium.testing import ScriptedChatModel
from podium.tools import tool

CFG = {"configurable": {"thread_id": "t"}}


def call(args: dict[str, Any], id_: str = "c1", msg: str | None = None) -> AIMessage:
    return AIMessage(
        "",
        id=msg,
        tool_calls=[{"name": "issue_refund", "args": args, "id": id_, "type": "tool_call"}],
    )


class Seen:
    def __init__(self) -> None:
        self.predicate: list[dict[str, Any]] = []
        self.refunds: list[tuple[str, float]] = []


def app_for(
    seen: Seen,
    replies: list[Any],
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    policy: Policy | None = None,
) -> Any:
    @tool(risk="high")
    def issue_refund(order_id: str, amount: float = 900) -> str:
        """Refund an order (the whole order, 900, unless an amount is given)."""
        seen.refunds.append((order_id, amount))
        return f"refunded {amount:g} on {order_id}"

    def over_100(args: dict[str, Any]) -> bool:
        seen.predicate.append(dict(args))
        return bool(args.get("amount", 0) > 100)

    policy = policy or Policy(rules=[Rule(tool="issue_refund", action="approve", when=over_100)])
    agent = Agent(name="billing", model=ScriptedChatModel(replies), tools=[issue_refund])
    return create_agent_graph(agent, policy=policy).compile(checkpointer=checkpointer)


# -- predicates see what will run ---------------------------------------------------------------
def test_an_omitted_default_is_what_the_predicate_sees(
    checkpointer: BaseCheckpointSaver[Any],
) -> None:
    seen = Seen()
    app = app_for(seen, [call({"order_id": "A-1"}), "done"], checkpointer)
    app.invoke({"messages": [("user", "refund A-1")]}, CFG)
    assert seen.predicate == [{"order_id": "A-1", "amount": 900.0}]
    assert seen.refunds == []  # 900 is over 100: a human decides
    [request] = runs.pending(app, CFG)
    assert request.args == {"order_id": "A-1", "amount": 900.0}
    runs.decide(app, CFG, {request.id: Decision.approve(by="alice")})
    assert seen.refunds == [("A-1", 900.0)]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), True, False])
def test_non_finite_numbers_and_booleans_are_refused_before_the_policy(bad: Any) -> None:
    seen = Seen()
    app = app_for(seen, [call({"order_id": "A-1", "amount": bad}), "done"])
    out = app.invoke({"messages": [("user", "refund")]})
    [result] = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert result.status == "error"
    assert result.artifact == {"error": "malformed_arguments", "executed": False}
    assert seen.predicate == []  # the policy never saw it
    assert seen.refunds == []


@pytest.mark.parametrize(
    ("given", "ran"), [("250", 250.0), (250, 250.0), (-500, -500.0), ("1e3", 1000.0)]
)
def test_the_predicate_and_the_tool_see_the_same_values(given: Any, ran: float) -> None:
    seen = Seen()
    policy = Policy(
        rules=[
            Rule(tool="issue_refund", action="deny", when=lambda a: a["amount"] < 0),
            Rule(tool="issue_refund", action="allow"),
        ]
    )
    app = app_for(seen, [call({"order_id": "A-1", "amount": given}), "done"], policy=policy)
    app.invoke({"messages": [("user", "refund")]})
    if ran < 0:
        assert seen.refunds == []  # the deny rule saw the number the tool would get
    else:
        assert seen.refunds == [("A-1", ran)]


# -- the same call: replay, forks, time travel ------------------------------------------------
ALLOW = Policy(rules=[Rule(tool="issue_refund", action="allow")])


def finished(seen: Seen, checkpointer: BaseCheckpointSaver[Any], policy: Policy = ALLOW) -> Any:
    app = app_for(
        seen,
        [call({"order_id": "A-1", "amount": 50}, msg="ai-1"), "done", "done again", "again"],
        checkpointer,
        policy,
    )
    app.invoke({"messages": [("user", "refund 50 on A-1")]}, CFG)
    assert seen.refunds == [("A-1", 50.0)]
    return app


def before_tools(app: Any) -> Any:
    return next(s for s in app.get_state_history(CFG) if s.next == ("tools",))


def test_time_travel_to_before_a_finished_call_replays_its_result(
    checkpointer: BaseCheckpointSaver[Any],
) -> None:
    seen = Seen()
    app = finished(seen, checkpointer)
    out = app.invoke(None, before_tools(app).config)
    assert seen.refunds == [("A-1", 50.0)]
    result = next(m for m in out["messages"] if isinstance(m, ToolMessage))
    assert result.content == "refunded 50 on A-1"
    assert result.artifact == {"replayed": True, "executed": False}


def test_update_state_fork_of_a_finished_call_replays_its_result(
    checkpointer: BaseCheckpointSaver[Any],
) -> None:
    seen = Seen()
    app = finished(seen, checkpointer)
    forked = app.update_state(before_tools(app).config, None)
    app.invoke(None, forked)
    forked = app.update_state(before_tools(app).config, None, as_node="model")
    app.invoke(None, forked)
    assert seen.refunds == [("A-1", 50.0)]


def test_a_new_model_message_reusing_the_call_id_acts_anew() -> None:
    seen = Seen()
    replies = [
        call({"order_id": "A-1", "amount": 50}, "c1", "ai-1"),
        "done",
        call({"order_id": "A-1", "amount": 50}, "c1", "ai-2"),  # a new reply, same call id
        "done again",
    ]
    from langgraph.checkpoint.memory import InMemorySaver

    app = app_for(seen, replies, InMemorySaver(), ALLOW)
    app.invoke({"messages": [("user", "refund 50")]}, CFG)
    app.invoke({"messages": [("user", "and another 50")]}, CFG)
    assert seen.refunds == [("A-1", 50.0), ("A-1", 50.0)]


def test_a_fork_of_a_gated_call_reuses_the_decision_only_for_identical_args(
    checkpointer: BaseCheckpointSaver[Any],
) -> None:
    seen = Seen()
    app = app_for(
        seen,
        [call({"order_id": "A-1", "amount": 250}, msg="ai-1"), "done", "done 2", "done 3"],
        checkpointer,
    )
    app.invoke({"messages": [("user", "refund 250")]}, CFG)
    [request] = runs.pending(app, CFG)
    runs.decide(app, CFG, {request.id: Decision.approve(by="alice")})
    assert seen.refunds == [("A-1", 250.0)]
    before = before_tools(app)
    # the same call (same message, id, args): its recorded result; nobody is asked
    out = app.invoke(None, before.config)
    assert "__interrupt__" not in out
    assert seen.refunds == [("A-1", 250.0)]
    # the same message rewritten to other args: a new call, asked anew
    edited = call({"order_id": "A-1", "amount": 999}, msg="ai-1")
    forked = app.update_state(before.config, {"messages": [edited]}, as_node="model")
    out = app.invoke(None, forked)
    assert "__interrupt__" in out
    [again] = runs.pending(app, CFG)
    assert again.id != request.id
    assert again.args["amount"] == 999.0
    assert seen.refunds == [("A-1", 250.0)]


def test_replaying_a_call_whose_worker_died_asks_a_human(
    checkpointer: BaseCheckpointSaver[Any],
) -> None:
    """A started row whose owner process is gone (a worker killed mid-call) is in doubt
    on replay, fork or resume: a human decides, with the call's tier."""
    seen = Seen()
    app = finished(seen, checkpointer)
    ledger = app.config["configurable"]["__podium_ledger"]
    [key] = [
        r[0]
        for r in ledger._run("SELECT call_key FROM podium_tool_calls WHERE thread_id=?", ("t",))[0]
    ]
    ledger._run(  # the worker died after it started the call and before it finished
        "UPDATE podium_tool_calls SET status='started', result=NULL, owner=?, "
        "heartbeat_at=NULL WHERE call_key=?",
        (f"{socket.gethostname()}|999999|1|x", key),  # this host; no such process
    )
    out = app.invoke(None, before_tools(app).config)
    assert "__interrupt__" in out
    [request] = runs.pending(app, CFG)
    assert request.kind == "in_doubt"
    assert request.args == {"order_id": "A-1", "amount": 50.0}
    runs.decide(app, CFG, {request.id: Decision.respond("refunded 50 on A-1", by="ops")})
    assert seen.refunds == [("A-1", 50.0)]
