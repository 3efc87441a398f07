"""A governed ``charge`` app shared by the race and in-doubt tests, and their worker.

As a module: :func:`build` compiles the app on a SQLite file or a PostgreSQL URL,
with the side effect (a row per real charge) in a separate SQLite file, so a test
counts exactly how often the tool acted. :data:`TIERS` is the tiered policy.

As a script: ``python charge_app.py SPEC.json`` runs one worker process. The spec
names the database, the effects file, the policy and a list of rounds; each round
acts on one thread (``decide`` through ``runs.decide``, ``raw`` through
``app.invoke(Command(resume={interrupt_id: decision}))``, ``resume`` through
``runs.resume``) and prints one JSON line with what this process saw.

Thread leases (one run per thread at a time, the default) would refuse all but one
of the racing processes before any of them reaches the ledger, so the race tests
turn them off (``Campaign(leases=False)``, i.e. ``PODIUM_THREAD_LEASE=off``): what
they prove is the layer below, which holds without leases too.

Races are provoked, not hoped for: the worker's ledger (installed as
``saver.podium_ledger``, as ``crash_app.py`` installs its ``KillingLedger``) stops
every process at a cross-process barrier (marker files) right before the
compare-and-set of ``record_decision``, and again right after the first
``get_call`` that follows it, so all deciders read "not started" and then race in
``claim_call``. A barrier that times out is reported, so a test can prove the race
happened.
"""

from __future__ import annotations

import contextvars
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage
from langgraph.types import Command

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: agent_kinds

from agent_kinds import agent_app
from podium import AlreadyDecidedError, ApprovalError, Policy, Rule, runs
from podium.checkpoints import PostgresLedger, SQLiteLedger, postgres_saver, sqlite_saver
from podium.testing import ScriptedChatModel
from podium.tools import tool

GATE = Policy(
    rules=[
        Rule(tool="charge", action="approve", when=lambda a: a["amount"] > 100, reason="over 100")
    ]
)
"""Charges over 100 wait for anyone's approval."""

TIERS = Policy(
    rules=[
        Rule(tool="charge", action="deny", when=lambda a: a["amount"] > 5000, reason="over 5,000"),
        Rule(
            tool="charge",
            action="approve",
            when=lambda a: a["amount"] > 1000,
            approvers=["cfo"],
            reason="over 1,000: the CFO decides",
        ),
        Rule(
            tool="charge",
            action="approve",
            when=lambda a: a["amount"] > 100,
            approvers=["finance-lead", "cfo"],
            reason="over 100: finance decides",
        ),
    ]
)
"""Deny over 5,000; over 1,000 only ``cfo``; over 100 ``finance-lead`` or ``cfo``."""

POLICIES = {"gate": GATE, "tiers": TIERS}


def charge_call(amount: float, order_id: str = "A-1", id_: str = "c1") -> AIMessage:
    return AIMessage(
        "",
        tool_calls=[
            {"name": "charge", "args": {"order_id": order_id, "amount": amount}, "id": id_}
        ],
    )


# -- the side effect ----------------------------------------------------------------------
def effects_db(path: str | Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, timeout=30)
    db.execute("CREATE TABLE IF NOT EXISTS effects (order_id TEXT, amount REAL, pid INTEGER)")
    return db


def effects(path: str | Path, order_id: str | None = None) -> list[tuple[str, float]]:
    """The charges that really happened (optionally for one order), oldest first."""
    db = effects_db(path)
    try:
        sql = "SELECT order_id, amount FROM effects"
        rows = (
            db.execute(sql + " WHERE order_id=? ORDER BY rowid", (order_id,))
            if order_id is not None
            else db.execute(sql + " ORDER BY rowid")
        )
        return [(str(r[0]), float(r[1])) for r in rows]
    finally:
        db.close()


class Hooks:
    """What the tool does around its side effect (set per round by the worker)."""

    def __init__(self) -> None:
        self.inside: Path | None = None
        """Touched when the tool starts."""
        self.hold_until: Path | None = None
        """The tool returns only once this file exists (or after 30 s)."""
        self.sleep = 0.0
        """Seconds the tool sleeps after its side effect."""
        self.crash = False
        """SIGKILL this process right after the side effect."""


def charge_tool(effects_path: str | Path, hooks: Hooks) -> Any:
    @tool(risk="high")
    def charge(order_id: str, amount: float) -> str:
        """Charge a customer's card."""
        if hooks.inside is not None:
            hooks.inside.touch()
        db = effects_db(effects_path)
        db.execute("INSERT INTO effects VALUES (?, ?, ?)", (order_id, amount, os.getpid()))
        db.close()
        if hooks.crash:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        if hooks.sleep:
            time.sleep(hooks.sleep)  # widens the window: the call is running
        if hooks.hold_until is not None:
            deadline = time.monotonic() + 30
            while not hooks.hold_until.exists() and time.monotonic() < deadline:
                time.sleep(0.005)
        return f"charged {amount} to {order_id}"

    return charge


def build(
    saver: Any,
    effects_path: str | Path,
    *,
    policy: Policy = GATE,
    replies: list[Any] | None = None,
    hooks: Hooks | None = None,
    kind: str = "podium",
) -> Any:
    """The compiled app: one ``billing`` agent with the ``charge`` tool (``kind``: see
    tests/agent_kinds.py)."""
    model = ScriptedChatModel(replies if replies is not None else ["done"])
    return agent_app(
        kind,
        name="billing",
        model=model,
        tools=[charge_tool(effects_path, hooks or Hooks())],
        policy=policy,
        checkpointer=saver,
    )


def open_saver(db: str) -> Any:
    return postgres_saver(db, pool_size=4) if db.startswith("postgresql://") else sqlite_saver(db)


def config(thread: str) -> Any:
    return {"configurable": {"thread_id": thread}}


# -- barriers -------------------------------------------------------------------------------
def file_barrier(
    folder: Path, parties: int, me: str, *, gone: Path | None = None, timeout: float = 30.0
) -> bool:
    """Wait until ``parties`` processes touched a marker in ``folder`` (or in ``gone``).

    ``gone`` holds markers of processes that finished the round without reaching
    this barrier. Returns ``False`` on timeout.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / me).touch()
    deadline = time.monotonic() + timeout
    while True:
        names = {p.name for p in folder.iterdir()}
        if gone is not None and gone.exists():
            names |= {p.name for p in gone.iterdir()}
        if len(names) >= parties:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)


class Gates:
    """Where the racing ledger stops, and what it saw.

    Each gate is a function returning ``False`` when it timed out. What the ledger
    saw is kept per caller (a context variable that LangGraph copies into the
    threads running the graph's tasks), so threads racing in one process each see
    their own outcomes.
    """

    def __init__(self) -> None:
        self.before_decide: Callable[[], bool] | None = None
        """Right before the compare-and-set of ``record_decision``."""
        self.before_first_read: Callable[[], bool] | None = None
        """Before the first ``get_call`` after ``record_decision`` (the call's start)."""
        self.after_first_read: Callable[[], bool] | None = None
        """Right after that read: every caller read "not started", none claimed yet."""
        self.after_claim: Callable[[Any], bool] | None = None
        """Right after ``claim_call``, with its :class:`~podium.checkpoints.Claim`."""
        self.next_step: Callable[[], None] | None = None
        """Called by a caller's first ledger read after it lost ``claim_call``."""
        self.saw_running: Path | None = None
        """Touched when a read finds the call started but not done."""
        self.die_after_finish = False
        """SIGKILL this process right after ``finish_call`` recorded a result (before
        LangGraph saved the step)."""
        self._seen: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("seen")

    def reset(self) -> dict[str, Any]:
        """Start a new round for the calling thread; return its record."""
        seen: dict[str, Any] = {"decide_won": None, "claim_won": None, "timeouts": []}
        self._seen.set(seen)
        return seen

    @property
    def seen(self) -> dict[str, Any]:
        found = self._seen.get(None)
        return found if found is not None else self.reset()

    def pass_(self, name: str, gate: Callable[[], bool] | None) -> None:
        if gate is not None and not gate():
            self.seen["timeouts"].append(name)

    def moved(self) -> None:
        """A ledger read: tell :attr:`next_step` if this caller just lost a claim."""
        if self.seen.pop("lost_claim", False) and self.next_step is not None:
            self.next_step()


class _Racing:
    """Mixin for a ledger: stops at the gates, records compare-and-set outcomes."""

    gates: Gates

    def record_decision(self, *args: Any, **kwargs: Any) -> bool:
        seen = self.gates.seen
        self.gates.pass_("decide", self.gates.before_decide)
        won = bool(super().record_decision(*args, **kwargs))  # type: ignore[misc]
        if seen["decide_won"] is None:
            seen["decide_won"] = won
            seen["armed"] = True
        return won

    def get_call(self, *args: Any, **kwargs: Any) -> Any:
        self.gates.moved()
        armed = self.gates.seen.pop("armed", False)
        if armed:
            self.gates.pass_("read", self.gates.before_first_read)
        record = super().get_call(*args, **kwargs)  # type: ignore[misc]
        if armed:
            self.gates.pass_("claim", self.gates.after_first_read)
        if record is not None and record.status == "started" and self.gates.saw_running:
            self.gates.saw_running.touch()
        return record

    def claim_call(self, *args: Any, **kwargs: Any) -> Any:
        if self.gates.seen.pop("armed", False):  # no read since the decision: claim together
            self.gates.pass_("claim", self.gates.after_first_read)
        claim = super().claim_call(*args, **kwargs)  # type: ignore[misc]
        seen = self.gates.seen
        seen["claim_won"] = claim.won
        if not claim.won:
            seen["lost_claim"] = True
        hook = self.gates.after_claim
        if hook is not None and not hook(claim):
            seen["timeouts"].append("hold")
        return claim

    def open_request(self, *args: Any, **kwargs: Any) -> Any:
        self.gates.moved()
        return super().open_request(*args, **kwargs)  # type: ignore[misc]

    def finish_call(self, *args: Any, **kwargs: Any) -> bool:
        done = bool(super().finish_call(*args, **kwargs))  # type: ignore[misc]
        if self.gates.die_after_finish:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return done


class RacingLedger(_Racing, SQLiteLedger):
    def __init__(self, path: str, gates: Gates) -> None:
        super().__init__(path)
        self.gates = gates


class RacingPostgresLedger(_Racing, PostgresLedger):
    def __init__(self, url: str, gates: Gates) -> None:
        super().__init__(url)
        self.gates = gates


def racing_ledger(db: str, gates: Gates) -> Any:
    if db.startswith("postgresql://"):
        return RacingPostgresLedger(db, gates)
    return RacingLedger(db, gates)


def owner_gone(claim: Any) -> bool:
    """For the loser of ``claim_call``: wait until the winner's process has exited."""
    if claim.won:
        return True
    pid = int(str(claim.record.owner).split("|")[1])
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# -- what a process saw -----------------------------------------------------------------------
def tool_messages(out: Any) -> list[dict[str, Any]]:
    if not isinstance(out, dict):
        return []
    return [
        {"id": m.tool_call_id, "content": m.text, "status": m.status}
        for m in out.get("messages", [])
        if isinstance(m, ToolMessage)
    ]


def act(app: Any, cfg: Any, action: str, decision: dict[str, Any] | None) -> dict[str, Any]:
    """Do one round's action; describe the outcome as JSON."""
    seen: dict[str, Any] = {"outcome": "ok"}
    try:
        if action == "decide":
            [request] = runs.pending(app, cfg)
            out = runs.decide(app, cfg, {request.id: decision or {}})
        elif action == "raw":
            [item] = app.get_state(cfg).interrupts
            out = app.invoke(Command(resume={item.id: decision}), cfg)
        else:
            out = runs.resume(app, cfg)
        seen["tools"] = tool_messages(out)
        seen["interrupted"] = "__interrupt__" in out
        seen["final"] = str(out["messages"][-1].content) if out.get("messages") else ""
    except AlreadyDecidedError as exc:
        seen.update(
            outcome="already_decided",
            recorded=exc.recorded,
            result_tools=tool_messages(exc.result),
            result_interrupted=isinstance(exc.result, dict) and "__interrupt__" in exc.result,
        )
    except ApprovalError as exc:
        seen.update(outcome=type(exc).__name__, error=str(exc))
    return seen


# -- the test side: paused threads and worker processes ---------------------------------------
@dataclass
class Campaign:
    """A database with paused threads, and worker processes (this module) acting on it."""

    db: str
    """A SQLite file or a PostgreSQL URL."""
    tmp: Path
    """Where specs, markers and the effects file go."""
    policy: str = "gate"
    """A key of :data:`POLICIES`."""
    kind: str = "podium"
    """How the agent is built (tests/agent_kinds.py)."""
    leases: bool = True
    """Whether the worker processes take thread leases (``PODIUM_THREAD_LEASE``)."""
    effects: Path = field(init=False)

    def __post_init__(self) -> None:
        self.effects = self.tmp / "effects.sqlite"
        self.saver = open_saver(self.db)

    def close(self) -> None:
        self.saver.close()

    def app(self, replies: list[Any] | None = None, hooks: Hooks | None = None) -> Any:
        """The app in this process (the model answers ``replies``)."""
        return build(
            self.saver,
            self.effects,
            policy=POLICIES[self.policy],
            replies=replies,
            hooks=hooks,
            kind=self.kind,
        )

    def pause(self, thread: str, order: str, amount: float) -> Any:
        """Start a run on ``thread`` that waits for a human; return the request."""
        app = self.app([charge_call(amount, order)])
        out = app.invoke({"messages": [("user", f"charge {order}")]}, config(thread))
        assert "__interrupt__" in out
        [request] = runs.pending(app, config(thread))
        return request

    def workers(
        self, specs: list[dict[str, Any]], *, killed: bool = False, timeout: float = 120
    ) -> list[list[dict[str, Any]]]:
        """Run one worker process per spec at once; return each one's JSON lines.

        ``killed``: the workers are expected to die by SIGKILL (a round with ``crash``).
        """
        procs = []
        for i, spec in enumerate(specs):
            path = self.tmp / f"spec-{spec['me']}-{i}.json"
            full = {
                "db": self.db,
                "effects": str(self.effects),
                "policy": self.policy,
                "kind": self.kind,
                "leases": self.leases,
                **spec,
            }
            path.write_text(json.dumps(full))
            procs.append(
                subprocess.Popen(
                    [sys.executable, __file__, str(path)],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        outputs = []
        deadline = time.monotonic() + timeout
        try:
            while None in [proc.poll() for proc in procs]:  # reaps each one as it exits
                assert time.monotonic() < deadline, "a worker process hangs"
                time.sleep(0.01)
            for proc in procs:
                out, err = proc.communicate(timeout=timeout)
                assert proc.returncode == (-signal.SIGKILL if killed else 0), err
                lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
                outputs.append(lines)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                proc.communicate()
        return outputs


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    if not spec.get("leases", True):
        os.environ["PODIUM_THREAD_LEASE"] = "off"
    db, me = spec["db"], spec["me"]
    gates, hooks = Gates(), Hooks()
    saver = open_saver(db)
    saver.podium_ledger = racing_ledger(db, gates)
    for round_ in spec["rounds"]:
        folder = Path(round_["dir"]) if round_.get("dir") else None
        parties = int(round_.get("parties", 1))
        gates.reset()
        gates.saw_running = Path(round_["saw_running"]) if round_.get("saw_running") else None
        gates.die_after_finish = bool(round_.get("die_after_finish"))
        gates.after_claim = owner_gone if round_.get("lost_claim_waits_for_exit") else None
        gates.before_decide = gates.after_first_read = None
        if folder is not None and parties > 1:
            gates.before_decide = lambda f=folder, n=parties: file_barrier(f / "decide", n, me)
            gates.after_first_read = lambda f=folder, n=parties: file_barrier(
                f / "claim", n, me, gone=f / "gone"
            )
        hooks.inside = Path(round_["inside"]) if round_.get("inside") else None
        hooks.hold_until = Path(round_["hold_until"]) if round_.get("hold_until") else None
        hooks.sleep = float(round_.get("sleep", 0.0))
        hooks.crash = bool(round_.get("crash"))
        if round_.get("wait_for"):  # start only once another process is inside the tool
            marker, deadline = Path(round_["wait_for"]), time.monotonic() + 60
            while not marker.exists() and time.monotonic() < deadline:
                time.sleep(0.005)
        app = build(
            saver,
            spec["effects"],
            policy=POLICIES[spec.get("policy", "gate")],
            hooks=hooks,
            kind=spec.get("kind", "podium"),
        )
        seen = act(app, config(round_["thread"]), round_["action"], round_.get("decision"))
        if folder is not None:
            (folder / "gone").mkdir(parents=True, exist_ok=True)
            (folder / "gone" / me).touch()
        print(json.dumps({**seen, **gates.seen, "me": me, "thread": round_["thread"]}), flush=True)
    saver.close()


if __name__ == "__main__":
    main()
