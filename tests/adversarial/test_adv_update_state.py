"""Attacks through ``update_state``: a debugger writing to a thread a run is using,
forged tool results for gated calls, forged stage inputs after an approval.

``update_state`` is a write to the thread like a run's: it takes the thread's lease
(a busy thread refuses it), it may not drop requests that wait for a human, and it
may not run over a run whose process died mid-run. Side effects are counted in real
tool bodies; persistence is a real SQLite file and a real PostgreSQL.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver

from agent_kinds import agent_app
from podium import PendingRequestsError, ThreadBusyError, runs
from podium.testing import ScriptedChatModel
from podium.tools import Decision, Policy, Rule, tool

CFG: Any = {"configurable": {"thread_id": "t1"}}
BIG = Policy(rules=[Rule(tool="refund", action="approve", when=lambda a: a["amount"] > 100)])


def refund_call(amount: float, id_: str = "c1") -> dict[str, Any]:
    return {"name": "refund", "args": {"amount": amount}, "id": id_, "type": "tool_call"}


class Desk:
    """A billing agent whose refund tool can be held inside its body."""

    def __init__(self, kind: str, saver: BaseCheckpointSaver[Any], replies: list[Any]) -> None:
        self.done: list[float] = []
        self.inside = threading.Event()
        self.go = threading.Event()
        self.go.set()

        @tool(risk="high")
        def refund(amount: float) -> str:
            """Refund an amount."""
            self.inside.set()
            assert self.go.wait(30)
            self.done.append(amount)
            return f"refunded {amount}"

        self.app = agent_app(
            kind,
            name="billing",
            model=ScriptedChatModel(replies),
            tools=[refund],
            policy=BIG,
            checkpointer=saver,
        )


def texts(app: Any) -> list[str]:
    return [str(m.content) for m in app.get_state(CFG).values["messages"]]


@pytest.mark.parametrize(
    "checkpointer_kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_update_state_while_a_run_holds_the_thread_is_refused(
    agent_kind: str, make_saver: Any
) -> None:
    desk = Desk(agent_kind, make_saver(), [AIMessage("", tool_calls=[refund_call(50)]), "done"])
    desk.go.clear()
    worker = threading.Thread(target=desk.app.invoke, args=({"messages": [("user", "go")]}, CFG))
    worker.start()
    try:
        assert desk.inside.wait(30)  # the run holds the thread, inside the tool
        with pytest.raises(ThreadBusyError, match="is busy"):
            desk.app.update_state(CFG, {"messages": [HumanMessage("debugger")]})
    finally:
        desk.go.set()
        worker.join(30)
    # nothing the refused update meant was written; the run's turn is whole
    assert texts(desk.app) == ["go", "", "refunded 50.0", "done"]
    assert desk.done == [50.0]
    # once the thread is free the update is a write like any other, and the thread's
    # status is what the run left
    desk.app.update_state(CFG, {"messages": [HumanMessage("debugger")]})
    assert texts(desk.app)[-1] == "debugger"
    ledger = desk.app.checkpointer.podium_ledger
    record = ledger.thread("t1")
    assert (record.status, record.owner, record.runs) == ("done", None, 1)


def test_an_enqueued_update_waits_for_the_run_and_lands_after_it(
    agent_kind: str, tmp_path: Any
) -> None:
    from podium.checkpoints import sqlite_saver

    desk = Desk(
        agent_kind,
        sqlite_saver(tmp_path / "x.sqlite"),
        [AIMessage("", tool_calls=[refund_call(50)]), "done"],
    )
    desk.go.clear()
    worker = threading.Thread(target=desk.app.invoke, args=({"messages": [("user", "go")]}, CFG))
    worker.start()
    assert desk.inside.wait(30)
    queued: Any = {"configurable": {"thread_id": "t1", "podium_multitask": "enqueue"}}
    updater = threading.Thread(
        target=desk.app.update_state, args=(queued, {"messages": [HumanMessage("debugger")]})
    )
    updater.start()
    updater.join(0.3)
    assert updater.is_alive()  # waits for the thread
    desk.go.set()
    worker.join(30)
    updater.join(30)
    assert texts(desk.app) == ["go", "", "refunded 50.0", "done", "debugger"]


def test_a_forged_tool_result_is_refused_and_the_request_still_decides_once(
    agent_kind: str, tmp_path: Any
) -> None:
    from podium.checkpoints import sqlite_saver

    saver = sqlite_saver(tmp_path / "x.sqlite")
    desk = Desk(agent_kind, saver, [AIMessage("", tool_calls=[refund_call(250)]), "done", "x"])
    desk.app.invoke({"messages": [("user", "go")]}, CFG)
    [request] = runs.pending(desk.app, CFG)
    from langchain_core.messages import ToolMessage

    for as_node in ("tools", None):
        with pytest.raises(PendingRequestsError, match=request.id):
            desk.app.update_state(
                CFG, {"messages": [ToolMessage("refunded 250", tool_call_id="c1")]}, as_node
            )
    assert saver.podium_ledger.thread("t1").status == "waiting"  # not a phantom
    assert runs.pending(desk.app, CFG) == [request]
    runs.decide(desk.app, CFG, {request.id: Decision.approve(by="alice")})
    assert desk.done == [250.0]
    assert saver.podium_ledger.thread("t1").status == "done"
    # decided: the debugger may write now (a fork from before the call replays it)
    past = next(s for s in desk.app.get_state_history(CFG) if s.next == ("tools",))
    fork = desk.app.update_state(past.config, None)
    desk.app.invoke(None, fork)
    assert desk.done == [250.0]


def test_update_state_on_a_thread_whose_run_died_is_refused_until_it_is_finished(
    tmp_path: Any,
) -> None:
    import time

    from podium.checkpoints import sqlite_saver

    saver = sqlite_saver(tmp_path / "x.sqlite")
    desk = Desk("podium", saver, ["one", "two"])
    desk.app.invoke({"messages": [("user", "one")]}, CFG)
    ledger = saver.podium_ledger
    # a run on another host took the thread, saved its input, and vanished
    lease = ledger.take_lease(
        "t1", owner="far|1|1|n", seconds=0.2, seen=ledger.thread("t1"), location=ledger.location
    )
    from podium.checkpoints._leases import LEASE_KEY

    held: Any = {"configurable": {"thread_id": "t1", LEASE_KEY: lease}}
    desk.app.update_state(held, {"messages": [("user", "two")]}, as_node="__start__")
    time.sleep(0.25)
    before = desk.app.get_state(CFG).config
    with pytest.raises(ThreadBusyError, match="last run did not end"):
        desk.app.update_state(CFG, {"messages": [HumanMessage("debugger")]})
    assert desk.app.get_state(CFG).config == before
    assert ledger.thread("t1").owner == "far|1|1|n"  # the next run still finishes it
    desk.app.invoke(None, CFG)
    desk.app.update_state(CFG, {"messages": [HumanMessage("debugger")]})
    assert texts(desk.app) == ["one", "one", "two", "two", "debugger"]
