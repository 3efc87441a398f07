"""Nothing slips through failures: timed-out effects stay in doubt, budgets count every call.

* A non-idempotent call that outlives ``tool_timeout`` is in doubt, not failed: the model
  may not run the same tool again in the thread until it resolves (one effect, however
  often the model retries); an idempotent one retried with the same arguments reuses
  the idempotency key; one whose worker died is settled by a human.
* A timed-out parallel branch that can act says so, and its payment lands once.
* Every model call's usage folds into the run: a failing specialist, a failing or
  timed-out branch.
* A parallel thread stopped by ``QuorumNotMetError`` resumes by re-running only the
  failed branches.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from reliability_doubles import FlakyChatModel, server_error

from podium import Agent, Budget, Decision, FailurePolicy, QuorumNotMetError, runs
from podium.checkpoints import SQLiteLedger, sqlite_saver
from podium.graphs import create_agent_graph, create_manager_graph, create_parallel_graph
from podium.testing import ScriptedChatModel
from podium.tools import idempotency_key, tool

CFG = {"configurable": {"thread_id": "t"}}


def calls(name: str, args: dict[str, Any], id_: str) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": id_, "type": "tool_call"}])


def results(out: dict[str, Any]) -> list[ToolMessage]:
    return [m for m in out["messages"] if isinstance(m, ToolMessage)]


class Payments:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.paid: list[str] = []
        self.keys: list[str | None] = []
        self.done = threading.Event()

    def tools(self) -> tuple[Any, Any]:
        @tool(risk="high")
        def pay(invoice: str) -> str:
            """Pay an invoice (not idempotent)."""
            time.sleep(self.seconds)
            self.paid.append(invoice)
            self.done.set()
            return f"paid {invoice}"

        @tool(idempotent=True)
        def ship(order: str) -> str:
            """Ship an order (idempotent: the carrier dedupes by idempotency key)."""
            self.keys.append(idempotency_key())
            if len(self.keys) == 1:  # the carrier is slow the first time
                time.sleep(self.seconds)
            return f"shipped {order}"

        return pay, ship


def timed(payments: Payments, replies: list[Any]) -> Any:
    pay, ship = payments.tools()
    agent = Agent(
        name="clerk",
        model=ScriptedChatModel(replies),
        tools=[pay, ship],
        failure=FailurePolicy(tool_timeout=0.3),
    )
    return create_agent_graph(agent).compile(checkpointer=InMemorySaver())


# -- a timeout is in doubt, not a failure ----------------------------------------------------------
def test_a_timed_out_payment_is_not_run_again_while_it_may_still_act() -> None:
    payments = Payments(seconds=1.2)
    app = timed(
        payments,
        [
            calls("pay", {"invoice": "I-1"}, "p1"),
            calls("pay", {"invoice": "I-1"}, "p2"),  # the model retries at once
            "I could not pay yet.",
            calls("pay", {"invoice": "I-1"}, "p3"),  # next turn, after it landed
            "It was paid.",
        ],
    )
    out = app.invoke({"messages": [("user", "pay I-1")]}, CFG)
    first, retry = results(out)
    assert first.artifact == {"error": "tool_timeout", "executed": True, "in_doubt": True}
    assert "does not run again in this conversation until then" in first.content
    assert retry.artifact == {"error": "earlier_call_running", "executed": False}
    assert payments.done.wait(5)
    time.sleep(0.1)  # the background thread records the result
    out = app.invoke({"messages": [("user", "did it work?")]}, CFG)
    delivered = results(out)[-1]
    assert delivered.artifact == {"error": "earlier_call_finished", "executed": False}
    assert "has finished since: paid I-1" in delivered.content
    assert payments.paid == ["I-1"]  # once, however often the model asked


def test_an_idempotent_call_retried_after_a_timeout_reuses_its_key() -> None:
    payments = Payments(seconds=0.6)
    app = timed(
        payments,
        [calls("ship", {"order": "A-1"}, "s1"), calls("ship", {"order": "A-1"}, "s2"), "ok"],
    )
    out = app.invoke({"messages": [("user", "ship A-1")]}, CFG)
    first, retry = results(out)
    assert first.artifact["error"] == "tool_timeout"
    assert "calling it again with the same arguments is safe" in first.content
    assert retry.content == "shipped A-1"
    assert len(payments.keys) == 2
    assert payments.keys[0] == payments.keys[1] is not None


def test_a_timed_out_call_whose_worker_died_is_settled_by_a_human() -> None:
    payments = Payments(seconds=1.0)
    app = timed(
        payments,
        [
            calls("pay", {"invoice": "I-1"}, "p1"),
            "Paying takes long.",
            calls("pay", {"invoice": "I-2"}, "p2"),
            "Paid I-2.",
        ],
    )
    app.invoke({"messages": [("user", "pay I-1")]}, CFG)
    assert payments.done.wait(5)
    ledger = app.config["configurable"]["__podium_ledger"]
    # as if the worker had died while I-1 ran: started, late, owner gone
    ledger._run(
        "UPDATE podium_tool_calls SET status='started', result=NULL, late=1, owner=?",
        (f"{socket.gethostname()}|999999|1|x",),
    )
    app.invoke({"messages": [("user", "now pay I-2")]}, CFG)
    [request] = runs.pending(app, CFG)
    assert (request.kind, request.tool, request.args) == ("in_doubt", "pay", {"invoice": "I-1"})
    assert "may or may not have taken effect" in request.reason
    with pytest.raises(Exception, match="takes reject, respond"):
        runs.decide(app, CFG, {request.id: Decision.approve(by="ops")})
    runs.decide(app, CFG, {request.id: Decision.reject("never arrived", by="ops")})
    deadline = time.monotonic() + 5
    while len(payments.paid) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert payments.paid == ["I-1", "I-2"]  # I-2 went ahead once I-1 was settled


# -- a timed-out branch that can act -------------------------------------------------------------
def test_a_timed_out_branch_says_it_may_still_act_and_pays_once() -> None:
    payments = Payments(seconds=1.0)
    pay, _ = payments.tools()
    payer = Agent(
        name="payer", model=ScriptedChatModel([calls("pay", {"invoice": "I-9"}, "p")]), tools=[pay]
    )
    reader = Agent(name="reader", model=ScriptedChatModel(["nothing due"]))
    app = create_parallel_graph([payer, reader], branch_timeout=0.3, quorum=1).compile(
        checkpointer=InMemorySaver()
    )
    out = app.invoke({"messages": [("user", "settle up")]}, CFG)
    assert out["branch_results"]["payer"]["may_still_act"] is True
    assert "may still be acting in the background" in out["messages"][-1].content
    assert payments.done.wait(5)
    assert payments.paid == ["I-9"]


# -- budgets count every call -------------------------------------------------------------------
def lookups(n: int, prefix: str) -> list[Any]:
    return [calls("lookup", {"q": str(i)}, f"{prefix}{i}") for i in range(n)]


@tool(read_only=True)
def lookup(q: str) -> str:
    """Look something up."""
    return f"found {q}"


def test_a_failing_specialist_counts_against_the_run_budget() -> None:
    """The specialist makes 3 calls and fails (max_steps); delegated again, it would make 3
    more. The run's budget of 6 calls sees every call, and usage is the real bill."""
    specialist_model = ScriptedChatModel(lookups(12, "s"))
    specialist = Agent(
        name="research", description="Finds", model=specialist_model, tools=[lookup], max_steps=3
    )
    boss_model = ScriptedChatModel(
        [calls("research", {"task": f"try {i}"}, f"d{i}") for i in range(4)] + ["gave up"]
    )
    boss = Agent(name="boss", model=boss_model)
    app = create_manager_graph(boss, [specialist], budget=Budget(model_calls=6)).compile(
        checkpointer=InMemorySaver()
    )
    out = app.invoke({"messages": [("user", "research X")]}, CFG)
    made = len(specialist_model.calls) + len(boss_model.calls)
    assert out["usage"]["total"]["model_calls"] == made
    assert made <= 7  # the limit is checked before each call; one may end past it
    assert out["messages"][-1].response_metadata.get("podium_stop") == "budget"


def test_failing_and_timed_out_branches_count_in_usage() -> None:
    # looks something up, then its model server fails (no failure policy: the branch fails)
    failing = FlakyChatModel([calls("lookup", {"q": "a"}, "f1")], failures={1: server_error()})
    failing_agent = Agent(name="flaky", model=failing, tools=[lookup])
    slow = FlakyChatModel(["late"], delay=1.0)
    good = ScriptedChatModel(["fine"])
    app = create_parallel_graph(
        [failing_agent, Agent(name="slow", model=slow), Agent(name="good", model=good)],
        branch_timeout=0.5,
        quorum=1,
    ).compile()
    out = app.invoke({"messages": [("user", "go")]})
    statuses = {n: r["status"] for n, r in out["branch_results"].items()}
    assert statuses == {"flaky": "error", "slow": "timeout", "good": "ok"}
    agents = out["usage"]["agents"]
    assert agents["flaky"]["model_calls"] == failing.count == 2  # the failed call included
    assert agents["good"]["model_calls"] == 1
    # the slow branch's one call was still running when it timed out: it ends after the
    # run returned, so it is not in this turn's usage (documented; the run ledger has it)
    assert slow.count == 1
    assert "slow" not in agents
    assert out["usage"]["total"]["model_calls"] == 3


# -- a quorum failure resumes ------------------------------------------------------------------
def test_a_thread_stopped_by_the_quorum_resumes_running_only_the_failed_branch() -> None:
    down = FlakyChatModel(["recovered answer"], failures={0: server_error()})
    steady = ScriptedChatModel(["steady answer"])
    app = create_parallel_graph(
        [Agent(name="down", model=down), Agent(name="steady", model=steady)], name="team"
    ).compile(checkpointer=InMemorySaver())
    with pytest.raises(QuorumNotMetError, match="resume the thread"):
        app.invoke({"messages": [("user", "go")]}, CFG)
    out = runs.resume(app, CFG)  # the model server is back
    assert out["branch_results"]["down"]["status"] == "ok"
    assert out["messages"][-1].content == "## down\nrecovered answer\n\n## steady\nsteady answer"
    assert len(steady.calls) == 1  # the branch that had succeeded did not run again
    assert down.count == 2
    assert out["usage"]["total"]["model_calls"] == 3


# -- many calls of one tool at once are not "earlier calls in doubt" ---------------------------
class SlowFinish(SQLiteLedger):
    """Recording a result takes a while: widens the moment between a call's end and its
    record, when a sibling must not take it for a call whose worker died."""

    def finish_call(self, *args: Any, **kwargs: Any) -> bool:
        time.sleep(0.05)
        return super().finish_call(*args, **kwargs)


def test_many_concurrent_calls_of_one_tool_in_one_thread_all_run(tmp_path: Path) -> None:
    """Siblings that run at the same moment (parallel tool calls, parallel branches) are
    neither blocked nor taken for in doubt, however their starts and ends interleave."""
    done: list[str] = []
    saver = sqlite_saver(tmp_path / "runs.sqlite")
    saver.podium_ledger = SlowFinish(tmp_path / "runs.sqlite")

    @tool(risk="high")
    def record(item: str) -> str:
        """Record an item (a side effect)."""
        time.sleep(0.01)
        done.append(item)
        return f"recorded {item}"

    reply = AIMessage(
        "",
        tool_calls=[
            {"name": "record", "args": {"item": f"i{i}"}, "id": f"r{i}", "type": "tool_call"}
            for i in range(25)
        ],
    )
    agent = Agent(name="clerk", model=ScriptedChatModel([reply, "ok"]), tools=[record])
    out = (
        create_agent_graph(agent)
        .compile(checkpointer=saver)
        .invoke({"messages": [("user", "record all")]}, CFG)
    )
    assert "__interrupt__" not in out
    assert sorted(done) == sorted(f"i{i}" for i in range(25))
    branches = [
        Agent(
            name=f"b{i}",
            model=ScriptedChatModel([calls("record", {"item": f"b{i}"}, "c"), "ok"]),
            tools=[record],
        )
        for i in range(30)
    ]
    app = create_parallel_graph(branches).compile(checkpointer=saver)
    out = app.invoke({"messages": [("user", "go")]}, {"configurable": {"thread_id": "fan"}})
    assert "__interrupt__" not in out
    assert len(done) == 55
