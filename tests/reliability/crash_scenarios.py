"""Reference scenarios for the crash-injection suite, and the process that runs them.

Run as ``python crash_scenarios.py`` it is a *zygote*: it imports podium once, then
reads jobs (JSON lines) on stdin and runs each in a forked child, up to ``--jobs``
at a time, answering one JSON line per finished job (its exit status). A child
that is told to die kills itself with SIGKILL -- after the k-th streamed event
(a node boundary, subgraphs included) or inside a side-effecting tool, before or
after its effect. Every child opens the databases itself; the zygote never
touches them, so a resume runs in a new process that knows only the files.

Each scenario has one side-effecting tool that needs approval (``charge``, not
idempotent), and another side effect (``ship``, idempotent; or a pipeline's
function action). Effects are rows in a separate SQLite file. Models are
deterministic functions of the conversation, so a resumed run asks them the same
questions and gets the same answers.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict

from podium import Agent, runs
from podium.checkpoints import sqlite_saver
from podium.graphs import (
    Stage,
    StageInput,
    create_agent_graph,
    create_handoff_graph,
    create_manager_graph,
    create_parallel_graph,
    create_pipeline_graph,
)
from podium.tools import ApprovalRequest, Decision, Policy, Rule, idempotency_key, tool
from podium.tools._executor import current_ledger

THREAD = {"configurable": {"thread_id": "crash"}}
REQUEST = "Charge order A-1 250 and ship it."
POLICY = Policy(rules=[Rule(tool="charge", action="approve")])  # notify: an action stage

_KILL: dict[str, Any] = {}
_EFFECTS: list[sqlite3.Connection] = []


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _maybe_die(tool_name: str, when: str) -> None:
    if _KILL.get("tool") == tool_name and _KILL.get("when") == when:
        die()


def _effects() -> sqlite3.Connection:
    return _EFFECTS[0]


def result_of(tool_name: str, args: dict[str, Any]) -> str:
    """What a side-effecting tool returns (the resumer answers in-doubt calls with it)."""
    if tool_name == "charge":
        return f"charged {float(args['amount']):g} to {args['order_id']}"
    if tool_name == "ship":
        return f"shipped {args['order_id']}"
    return "customer notified"


@tool(risk="high")
def charge(order_id: str, amount: float) -> str:
    """Charge the customer's card (not idempotent)."""
    _maybe_die("charge", "before")
    _effects().execute("INSERT INTO effects VALUES ('charge', ?, ?)", (order_id, str(amount)))
    _maybe_die("charge", "after")
    return result_of("charge", {"order_id": order_id, "amount": amount})


@tool(risk="medium", idempotent=True)
def ship(order_id: str) -> str:
    """Ship the order (idempotent: the carrier dedupes by idempotency key)."""
    key = idempotency_key() or "none"
    _maybe_die("ship", "before")
    _effects().execute(
        "INSERT INTO effects SELECT 'ship', ?, ? WHERE NOT EXISTS "
        "(SELECT 1 FROM effects WHERE tool='ship' AND detail=?)",
        (order_id, key, key),
    )
    _maybe_die("ship", "after")
    return result_of("ship", {"order_id": order_id})


def notify(inp: StageInput) -> str:
    """A pipeline's function action: tell the customer (a side effect)."""
    _maybe_die("notify", "before")
    _effects().execute("INSERT INTO effects VALUES ('notify', 'A-1', '')")
    _maybe_die("notify", "after")
    return result_of("notify", {})


# -- deterministic models ------------------------------------------------------------
Rule_ = Callable[[list[BaseMessage]], AIMessage]


class RuleModel(BaseChatModel):
    """A chat model whose reply is a function of the conversation it is shown."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    rule: Any
    label: str

    @property
    def _llm_type(self) -> str:
        return "rule"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[Any, AIMessage]:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        reply: AIMessage = self.rule(messages)
        turn = sum(isinstance(m, AIMessage) for m in messages)
        reply = reply.model_copy(
            update={
                "id": f"{self.label}-{turn}",
                "usage_metadata": UsageMetadata(input_tokens=10, output_tokens=5, total_tokens=15),
                "response_metadata": {"model_name": "scripted"},
            }
        )
        return ChatResult(generations=[ChatGeneration(message=reply)])


def _done(messages: list[BaseMessage], tool_name: str) -> bool:
    return any(isinstance(m, ToolMessage) and m.name == tool_name for m in messages)


def _call(name: str, args: dict[str, Any], id_: str) -> dict[str, Any]:
    return {"name": name, "args": args, "id": id_, "type": "tool_call"}


CHARGE = _call("charge", {"order_id": "A-1", "amount": 250}, "c-charge")
SHIP = _call("ship", {"order_id": "A-1"}, "c-ship")


def model(label: str, rule: Rule_) -> RuleModel:
    return RuleModel(rule=rule, label=label)


def _charge_then_answer(answer: str) -> Rule_:
    return lambda ms: (
        AIMessage(answer) if _done(ms, "charge") else AIMessage("", tool_calls=[CHARGE])
    )


def _ship_then_answer(answer: str) -> Rule_:
    return lambda ms: AIMessage(answer) if _done(ms, "ship") else AIMessage("", tool_calls=[SHIP])


def _both_then_answer(ms: list[BaseMessage]) -> AIMessage:
    if _done(ms, "charge") and _done(ms, "ship"):
        return AIMessage("Charged and shipped A-1.")
    return AIMessage("", tool_calls=[CHARGE, SHIP])


def _sequential(ms: list[BaseMessage]) -> AIMessage:
    if not _done(ms, "charge"):
        return AIMessage("", tool_calls=[CHARGE])
    if not _done(ms, "ship"):
        return AIMessage("", tool_calls=[SHIP])
    return AIMessage("Charged and shipped A-1.")


def _boss(ms: list[BaseMessage]) -> AIMessage:
    results = [m.text for m in ms if isinstance(m, ToolMessage)]
    if results:
        return AIMessage("All done: " + "; ".join(results))
    return AIMessage(
        "",
        tool_calls=[
            _call("billing", {"task": "charge A-1 250"}, "d-billing"),
            _call("shipping", {"task": "ship A-1"}, "d-shipping"),
        ],
    )


def _triage(ms: list[BaseMessage]) -> AIMessage:
    return AIMessage("", tool_calls=[_call("transfer_to_billing", {"reason": "payment"}, "h-1")])


def _planner(ms: list[BaseMessage]) -> AIMessage:
    return AIMessage("Plan: charge A-1, then notify the customer.")


def _billing() -> Agent:
    return Agent(
        name="billing",
        description="Charges",
        model=model("billing", _charge_then_answer("charged A-1")),
        tools=[charge],
    )


def _shipping() -> Agent:
    return Agent(
        name="shipping",
        description="Ships",
        model=model("shipping", _ship_then_answer("shipped A-1")),
        tools=[ship],
    )


def build(scenario: str) -> Any:
    """The uncompiled reference graph of ``scenario``."""
    if scenario == "single":
        agent = Agent(name="clerk", model=model("clerk", _both_then_answer), tools=[charge, ship])
        return create_agent_graph(agent, policy=POLICY)
    if scenario == "manager":
        boss = Agent(name="ops", model=model("ops", _boss))
        return create_manager_graph(boss, [_billing(), _shipping()], policy=POLICY)
    if scenario == "handoff":
        triage = Agent(name="triage", model=model("triage", _triage))
        billing = Agent(name="billing", model=model("billing", _sequential), tools=[charge, ship])
        return create_handoff_graph([triage, billing], default_agent="triage", policy=POLICY)
    if scenario == "parallel":
        return create_parallel_graph([_billing(), _shipping()], policy=POLICY)
    if scenario == "pipeline":
        planner = Agent(name="planner", model=model("planner", _planner))
        stages = [
            Stage("plan", planner),
            Stage("bill", _billing()),
            Stage("notify", notify, action=True),
        ]
        return create_pipeline_graph(stages, policy=POLICY)
    raise ValueError(scenario)


# -- the human in the loop ---------------------------------------------------------------
def _took_effect(request: ApprovalRequest) -> bool:
    row = _effects().execute("SELECT COUNT(*) FROM effects WHERE tool=?", (request.tool,))
    return bool(row.fetchone()[0])


def _decisions(app: Any, record: dict[str, Any]) -> dict[str, Decision]:
    """Answer every open request (``runs.pending``) as an operator would."""
    decided = {
        r.request.get("id")
        for r in current_ledger(app.config).approvals("crash")
        if r.status == "decided"
    }
    raw = {i.value.get("id") for i in app.get_state(THREAD).interrupts}
    record["replayed"] += len(raw & decided)  # asked again by LangGraph; the ledger answers
    decisions: dict[str, Decision] = {}
    for request in runs.pending(app, THREAD):
        record["asked"].append([request.kind, request.tool])
        if request.id in decided:
            record["re_asked"].append(request.id)  # a decided approval shown again: lost
        if request.kind == "in_doubt" and _took_effect(request):
            # the operator checks the external system: it happened; supply the result
            decisions[request.id] = Decision.respond(result_of(request.tool, request.args), by="o")
        else:
            decisions[request.id] = Decision.approve(by="ops")
    return decisions


def _stream(app: Any, value: Any, record: dict[str, Any]) -> None:
    """Stream one leg of the run; die after event number ``_KILL['event']``."""
    # the default call: no durability argument (podium graphs that act default to "sync")
    for _ in app.stream(value, THREAD, stream_mode="updates", subgraphs=True):
        record["events"] += 1
        if _KILL.get("event") == record["events"]:
            die()


def finish(app: Any, record: dict[str, Any], first: Any = None) -> None:
    """Run to the end, answering requests; the first leg streams ``first`` if given.

    Continue while requests are open, the thread stopped mid-run (``next``; or
    ``tasks`` -- a step whose tasks finished but whose checkpoint was never written
    has an empty ``next``), or LangGraph asks again for a decision the ledger holds.
    """
    if first is not None:
        _stream(app, first, record)
    for _ in range(20):
        decisions = _decisions(app, record)
        snapshot = app.get_state(THREAD)
        if decisions:
            _stream(app, runs.resume_command(app, THREAD, decisions), record)
        elif snapshot.interrupts or snapshot.next or snapshot.tasks:
            runs.resume(app, THREAD)
        else:
            return
    raise RuntimeError("the run did not finish in 20 legs (a request asked again forever?)")


def run_job(job: dict[str, Any]) -> None:
    """Run one job (in a forked child) and write its record to ``job['out']``."""
    workdir = Path(job["dir"])
    workdir.mkdir(parents=True, exist_ok=True)
    effects = sqlite3.connect(
        workdir / "effects.sqlite", isolation_level=None, check_same_thread=False
    )
    effects.execute("CREATE TABLE IF NOT EXISTS effects (tool TEXT, key TEXT, detail TEXT)")
    _EFFECTS.append(effects)
    _KILL.update(job.get("kill") or {})
    saver = sqlite_saver(workdir / "runs.sqlite")
    app = build(job["scenario"]).compile(checkpointer=saver)
    record: dict[str, Any] = {"events": 0, "asked": [], "re_asked": [], "replayed": 0}
    start = {"messages": [HumanMessage(REQUEST)]} if job["action"] == "start" else None
    finish(app, record, start)
    state = app.get_state(THREAD).values
    record["messages"] = [[type(m).__name__, m.text] for m in state.get("messages", [])]
    record["effects"] = sorted(
        [t, k] for t, k in effects.execute("SELECT tool, key FROM effects").fetchall()
    )
    ledger = current_ledger(app.config)
    record["approvals"] = sorted(
        [r.request.get("kind"), r.request.get("tool"), r.status, (r.decision or {}).get("action")]
        for r in ledger.approvals("crash")
    )
    Path(job["out"]).write_text(json.dumps(record))


def zygote(parallel: int) -> None:
    """Read jobs on stdin, fork one child per job, report exit statuses on stdout."""
    running: dict[int, str] = {}

    def reap() -> None:
        pid, status = os.waitpid(-1, 0)
        job_id = running.pop(pid)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(json.dumps({"id": job_id, "exit": code}), flush=True)

    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        while len(running) >= parallel:
            reap()
        pid = os.fork()
        if pid == 0:  # the child
            code = 0
            try:
                run_job(job)
            except BaseException as exc:  # report, never fall back into the zygote loop
                Path(job["out"] + ".err").write_text(f"{type(exc).__name__}: {exc}")
                code = 1
            finally:
                sys.stdout.flush()
                os._exit(code)
        running[pid] = job["id"]
    while running:
        reap()


if __name__ == "__main__":
    zygote(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
