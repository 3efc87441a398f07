"""podium.middleware on the plain ``create_agent`` call, and the peers' known failures.

The governance suites run ``create_agent`` + ``Governed`` under ``govern`` through one
fixture (tests/agent_kinds.py). Here: what the plain call without ``govern`` gets
(approvals, ``runs.pending`` / ``runs.decide``, the CLI, exactly once), and the LangChain
failures podium's middleware must not repeat: a HITL edit that switches to another tool
skips that tool's gate (langchain #40166), and ``ToolRetryMiddleware`` re-runs a tool that
acted (langchain #40688). Every test counts real side effects.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware, ToolRetryMiddleware
from langchain.tools import ToolRuntime
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from podium import ConfigurationError, Decision, Policy, Rule, runs
from podium.checkpoints import sqlite_saver
from podium.cli import main
from podium.middleware import Governed, govern
from podium.testing import ScriptedChatModel
from podium.tools import tool

CFG: Any = {"configurable": {"thread_id": "t1"}}


def call(name: str, args: dict[str, Any], id_: str = "c1") -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": id_, "type": "tool_call"}])


class Bank:
    def __init__(self) -> None:
        self.wires: list[float] = []
        self.lookups: list[str] = []

        @tool(risk="high")
        def wire(account: str, amount: float) -> str:
            """Wire money to an account."""
            self.wires.append(amount)
            return f"wired {amount:g} to {account}"

        @tool(read_only=True)
        def lookup(account: str) -> str:
            """Look up an account."""
            self.lookups.append(account)
            return f"{account}: open"

        self.wire, self.lookup = wire, lookup


GATE = Policy(rules=[Rule(tool="wire", action="approve", reason="wires need a human")])


def test_plain_create_agent_waits_for_podium_approval_and_acts_once(tmp_path: Path) -> None:
    bank = Bank()
    db = tmp_path / "runs.sqlite"
    model = ScriptedChatModel([call("wire", {"account": "X-1", "amount": 500}), "Sent."])
    app = create_agent(
        model,
        [bank.wire, bank.lookup],
        middleware=[Governed(policy=GATE)],
        checkpointer=sqlite_saver(db),
        name="teller",
    )
    out = app.invoke({"messages": [("user", "wire 500 to X-1")]}, CFG)
    [pending] = out["__interrupt__"]
    [request] = runs.pending(app, CFG)
    assert pending.value["id"] == request.id
    assert (request.agent, request.tool, request.args) == ("teller", "wire", pending.value["args"])
    assert request.reason == "wires need a human"
    assert bank.wires == []
    # the thread is in the file: the operator's CLI lists the request from the database alone
    assert main(["pending", "--db", str(db), "--json"]) == 0
    final = runs.decide(app, CFG, {request.id: Decision.approve(by="alice")})
    assert final["messages"][-1].content == "Sent."
    assert bank.wires == [500.0]
    runs.resume(app, CFG)  # nothing is left to do
    with pytest.raises(Exception, match="already decided"):
        runs.decide(app, CFG, {request.id: Decision.approve(by="bob")})
    assert bank.wires == [500.0]
    kinds = {e["kind"] for e in runs.events(app, CFG)}
    assert {"policy", "approval_requested", "approval_decided"} <= kinds


def test_the_cli_reads_a_plain_create_agent_thread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bank = Bank()
    db = tmp_path / "runs.sqlite"
    model = ScriptedChatModel([call("wire", {"account": "X-1", "amount": 5})])
    app = create_agent(
        model, [bank.wire], middleware=[Governed(policy=GATE)], checkpointer=sqlite_saver(db)
    )
    app.invoke({"messages": [("user", "wire 5")]}, CFG)
    capsys.readouterr()
    assert main(["pending", "--db", str(db), "--json"]) == 0
    [(listed)] = json.loads(capsys.readouterr().out)
    assert (listed["thread"], listed["tool"], listed["agent"]) == ("t1", "wire", "agent")


def test_a_hitl_edit_to_another_tool_still_meets_that_tools_gate() -> None:
    """langchain #40166: HumanInTheLoopMiddleware lets an edit switch ``lookup`` (not
    gated) to ``wire`` and runs it without asking. Under Governed the call that reaches
    the tool step is judged by the policy as what it is: a wire, which waits."""
    bank = Bank()
    model = ScriptedChatModel([call("lookup", {"account": "X-1"}), "Done."])
    hitl = HumanInTheLoopMiddleware(interrupt_on={"lookup": True})
    app = create_agent(
        model,
        [bank.wire, bank.lookup],
        middleware=[hitl, Governed(policy=GATE)],
        checkpointer=InMemorySaver(),
    )
    app.invoke({"messages": [("user", "look up X-1")]}, CFG)
    edited = {"name": "wire", "args": {"account": "X-666", "amount": 9000}}
    out = app.invoke(
        Command(resume={"decisions": [{"type": "edit", "edited_action": edited}]}), CFG
    )
    assert bank.wires == []
    [request] = runs.pending(app, CFG)
    assert (request.tool, request.args) == ("wire", {"account": "X-666", "amount": 9000.0})
    assert out["__interrupt__"][0].value["id"] == request.id
    runs.decide(app, CFG, {request.id: Decision.reject("not what was asked", by="alice")})
    assert bank.wires == []
    assert bank.lookups == []


def flaky_charge(charges: list[float], *, idempotent: bool = False) -> Any:
    @tool(risk="high", idempotent=idempotent)
    def charge(amount: float) -> str:
        """Charge the card."""
        charges.append(amount)  # the charge went through...
        raise TimeoutError("read timed out")  # ...and the answer was lost

    return charge


def retry() -> ToolRetryMiddleware:
    return ToolRetryMiddleware(max_retries=2, initial_delay=0, jitter=False)


def test_tool_retry_middleware_alone_charges_three_times() -> None:
    """The peer failure (langchain #40688), reproduced: the vector is real."""
    charges: list[float] = []
    model = ScriptedChatModel([call("charge", {"amount": 30}), "Tried."])
    app = create_agent(model, [flaky_charge(charges)], middleware=[retry()])
    app.invoke({"messages": [("user", "charge 30")]})
    assert charges == [30.0, 30.0, 30.0]


@pytest.mark.parametrize("order", ["retry_outside", "retry_inside"])
def test_a_retried_call_that_acted_is_not_run_again(order: str) -> None:
    charges: list[float] = []
    model = ScriptedChatModel([call("charge", {"amount": 30}), "Tried."])
    governed = Governed()
    stack = [retry(), governed] if order == "retry_outside" else [governed, retry()]
    app = create_agent(
        model, [flaky_charge(charges)], middleware=stack, checkpointer=InMemorySaver()
    )
    out = app.invoke({"messages": [("user", "charge 30")]}, CFG)
    assert charges == [30.0]  # once, whichever side of Governed the retry sits
    [result] = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert result.status == "error"
    assert "read timed out" in result.content or "does not run it again" in result.content


def test_an_idempotent_tool_may_be_retried_inside() -> None:
    charges: list[float] = []
    model = ScriptedChatModel([call("charge", {"amount": 30}), "Tried."])
    app = create_agent(
        model,
        [flaky_charge(charges, idempotent=True)],
        middleware=[Governed(), retry()],
        checkpointer=InMemorySaver(),
    )
    app.invoke({"messages": [("user", "charge 30")]}, CFG)
    assert charges == [30.0, 30.0, 30.0]  # declared safe to repeat (same idempotency key)


# -- clear errors ---------------------------------------------------------------------------
def test_govern_refuses_an_agent_whose_tools_are_not_governed() -> None:
    bank = Bank()
    app = create_agent(ScriptedChatModel(["x"]), [bank.wire], checkpointer=InMemorySaver())
    with pytest.raises(ConfigurationError, match="Governed is not among its middleware"):
        govern(app)
    with pytest.raises(ConfigurationError, match="takes a compiled graph"):
        govern("app")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"policy": "allow"}, "policy must be a podium Policy"),
        ({"grants": "wire"}, "grants must be a list"),
        ({"tool_timeout": 0}, "tool_timeout must be a positive number"),
    ],
)
def test_bad_options_are_refused_when_built(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Governed(**kwargs)


@pytest.mark.parametrize(
    ("governed", "message"),
    [
        (Governed(grants=["wire", "transfer"]), r"grants \['transfer'\]"),
        (Governed(policy=Policy(rules=[Rule(tool="wyre", action="deny")])), "'wyre'"),
    ],
)
def test_names_the_agent_lacks_stop_the_first_tool_call(governed: Governed, message: str) -> None:
    bank = Bank()
    model = ScriptedChatModel([call("wire", {"account": "X-1", "amount": 5})])
    app = create_agent(model, [bank.wire], middleware=[governed], checkpointer=InMemorySaver())
    with pytest.raises(ConfigurationError, match=message):
        app.invoke({"messages": [("user", "wire 5")]}, CFG)
    assert bank.wires == []


DESK = '''
from langchain.agents import create_agent
from podium import Policy, Rule
from podium.middleware import Governed
from podium.testing import ScriptedChatModel
from podium.tools import tool

SCRIPT = []
WIRES = []


@tool(risk="high")
def wire(account: str, amount: float) -> str:
    """Wire money to an account."""
    WIRES.append(amount)
    return f"wired {amount:g} to {account}"


def build():
    gate = Policy(rules=[Rule(tool="wire", action="approve")])
    return create_agent(ScriptedChatModel(list(SCRIPT)), [wire],
                        middleware=[Governed(policy=gate)], name="teller")
'''


def test_the_cli_decides_a_create_agent_thread_started_from_python(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``podium approve --graph module:build`` on a thread a plain create_agent started:
    the CLI runs the agent on its own saver of the file (govern), and the tool acts once."""
    import importlib
    import sys

    (tmp_path / "teller_desk.py").write_text(DESK)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    desk = importlib.import_module("teller_desk")
    db = tmp_path / "runs.sqlite"
    try:
        desk.SCRIPT[:] = [call("wire", {"account": "X-1", "amount": 70})]
        saver = sqlite_saver(db)
        app = desk.build().copy(update={"checkpointer": saver})
        app.invoke({"messages": [("user", "wire 70")]}, CFG)
        [request] = runs.pending(app, CFG)
        saver.close()
        desk.SCRIPT[:] = ["Sent."]
        capsys.readouterr()
        args = ["approve", "t1", "--db", str(db), "--graph", "teller_desk:build", "--by", "ops"]
        assert main(args) == 0, capsys.readouterr().err
        assert desk.WIRES == [70.0]
        assert main(["pending", "--db", str(db), "--json"]) == 0
        assert main([*args[:1], "t1", "--db", str(db), "--by", "ops"]) == 1  # nothing waits
        assert desk.WIRES == [70.0]
        assert request.tool == "wire"
    finally:
        sys.modules.pop("teller_desk", None)


async def test_the_async_path_asks_and_acts_once() -> None:
    bank = Bank()
    model = ScriptedChatModel([call("wire", {"account": "X-1", "amount": 9}), "Sent."])
    app = govern(
        create_agent(
            model, [bank.wire], middleware=[Governed(policy=GATE)], checkpointer=InMemorySaver()
        )
    )
    out = await app.ainvoke({"messages": [("user", "wire 9")]}, CFG)
    [pending] = out["__interrupt__"]
    approve = Decision.approve(by="alice").to_json()
    out = await app.ainvoke(Command(resume={pending.id: approve}), CFG)
    assert out["messages"][-1].content == "Sent."
    assert bank.wires == [9.0]
    await app.ainvoke(Command(resume={pending.id: approve}), CFG)
    assert bank.wires == [9.0]


async def test_async_retries_inside_do_not_repeat_a_side_effect() -> None:
    charges: list[float] = []
    model = ScriptedChatModel([call("charge", {"amount": 30}), "Tried."])
    app = create_agent(
        model,
        [flaky_charge(charges)],
        middleware=[Governed(), retry()],
        checkpointer=InMemorySaver(),
    )
    await app.ainvoke({"messages": [("user", "charge 30")]}, CFG)
    assert charges == [30.0]


def test_injected_runtime_and_command_results_work_under_governed() -> None:
    seen: list[str] = []

    @tool(risk="high")
    def note(text: str, runtime: ToolRuntime) -> Command[Any]:
        """Write a note."""
        seen.append(f"{text} @ {runtime.tool_call_id}")
        message = ToolMessage(f"noted {text}", tool_call_id=runtime.tool_call_id)
        return Command(update={"messages": [message]})

    model = ScriptedChatModel([call("note", {"text": "hi"}, "n1"), "Noted."])
    app = govern(create_agent(model, [note], middleware=[Governed()], checkpointer=InMemorySaver()))
    out = app.invoke({"messages": [("user", "note hi")]}, CFG)
    assert seen == ["hi @ n1"]  # the model's arguments, validated; the runtime injected
    [result] = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert result.content == "noted hi"
    assert out["messages"][-1].content == "Noted."
    runs.resume(app, CFG)
    assert seen == ["hi @ n1"]
