"""The scale-out load test: N worker processes, M threads, a decider, and chaos.

:func:`run_load` plays the *chaos process*: it starts N worker processes and one
decider process (from a ``forkserver`` that imported everything once, so a new
worker starts in milliseconds), then every few seconds SIGKILLs a random worker and
starts a new one, until every turn was acknowledged; then it stops everything and
checks the databases.

**The load.** M threads, T turns each; every third turn is *gated* (its ``refund``
needs a human). A turn is a job in a queue (a SQLite file of the test's own, apart
from the system under test). Jobs go out in random order, two turns of one thread
back to back, so two workers often send to one thread at the same moment -- what a
user with two tabs, a web handler and a retry, or two channels feeding one thread
do. A job taken by a worker that is killed goes back to the queue.

**A worker** takes a job and does what a careful client does (the same on both
sides): it reads the thread; if its message is there and answered, it acknowledges
the job; if the thread waits for a human, it retries later; if its message is
there but the run that carried it was cut off, it resumes the thread
(``invoke(None)``); otherwise it sends the message (``invoke``, the README's plain
call) and acknowledges it once the answer is in the returned history. A busy
thread (``ThreadBusyError``) or a thread waiting for a human sends the job back to
the queue for a moment. **The decider** approves every approval request it sees
(podium: ``runs.pending`` / ``runs.decide`` with ``podium_multitask="enqueue"``;
stock: ``Command(resume=...)`` on each interrupt), and decides a call left *in
doubt* by a kill the way an operator would: it looks in the effects file and
rejects the re-run if the effect happened, approves it otherwise.

**Checked at the end:** lost turns (an acknowledged job whose question or answer is
not in the final history), duplicated effects (a job's tool that acted more than
once), lost approvals (an approval the decider gave whose refund never happened, or
a request still waiting), stuck threads (a turn never acknowledged, a request still
pending, or a run left unfinished), and what was measured on the way: turns per
second, turn latency (first take → acknowledgement; a gated turn includes its
approval), and lease waits (first ``ThreadBusyError`` → the attempt that got in).
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import sqlite3
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage
from langgraph.types import Command

from benchmarks._scaleout_agents import (
    GATED,
    answered,
    close_saver,
    effects,
    open_app,
    open_saver,
    prepare,
    prepare_effects,
)

QUEUE_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, thread TEXT, turn INTEGER, text TEXT, seq INTEGER, state TEXT,
    worker INTEGER, not_before REAL, first_taken REAL, busy_since REAL, got_in REAL,
    acked REAL, attempts INTEGER DEFAULT 0, busy INTEGER DEFAULT 0, errors INTEGER DEFAULT 0,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS control (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS decisions (request TEXT, thread TEXT, job TEXT, kind TEXT,
    decision TEXT, at REAL);
CREATE TABLE IF NOT EXISTS log (at REAL, pid INTEGER, job TEXT, what TEXT);
"""


class Queue:
    """The job queue (a SQLite file of the test's own)."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, timeout=60, isolation_level=None)
        self.db.execute("PRAGMA busy_timeout=60000")

    def take(self, worker: int) -> tuple[str, str, str] | None:
        now = time.time()
        row = self.db.execute(
            "UPDATE jobs SET state='taken', worker=?, attempts=attempts+1, "
            "first_taken=COALESCE(first_taken, ?) WHERE id=(SELECT id FROM jobs "
            "WHERE state='ready' AND not_before<=? ORDER BY seq LIMIT 1) "
            "AND state='ready' RETURNING id, thread, text",
            (worker, now, now),
        ).fetchone()
        return (str(row[0]), str(row[1]), str(row[2])) if row else None

    def ack(self, job: str) -> None:
        self.db.execute("UPDATE jobs SET state='done', acked=? WHERE id=?", (time.time(), job))

    def got_in(self, job: str) -> None:
        self.db.execute("UPDATE jobs SET got_in=COALESCE(got_in, ?) WHERE id=?", (time.time(), job))

    def later(self, job: str, delay: float, *, busy: bool = False, error: str = "") -> None:
        now = time.time()
        self.db.execute(
            "UPDATE jobs SET state='ready', not_before=?, busy=busy+?, errors=errors+?, "
            "busy_since=CASE WHEN ? AND busy_since IS NULL THEN ? ELSE busy_since END, "
            "last_error=CASE WHEN ?='' THEN last_error ELSE ? END WHERE id=?",
            (now + delay, int(busy), int(bool(error)), int(busy), now, error, error[:300], job),
        )

    def requeue(self, worker: int) -> int:
        return self.db.execute(
            "UPDATE jobs SET state='ready', not_before=? WHERE state='taken' AND worker=?",
            (time.time(), worker),
        ).rowcount

    def log(self, job: str, what: str) -> None:
        self.db.execute(
            "INSERT INTO log VALUES (?, ?, ?, ?)", (time.time(), os.getpid(), job, what)
        )

    def stopped(self) -> bool:
        return self.db.execute("SELECT 1 FROM control WHERE key='stop'").fetchone() is not None

    def decided(self, request: str, thread: str, job: str, kind: str, decision: str) -> None:
        self.db.execute(
            "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?)",
            (request, thread, job, kind, decision, time.time()),
        )


# -- the worker process -------------------------------------------------------------------------
def worker(side: str, db: str, queue_path: str, effects_path: str) -> None:
    """A worker process: take jobs until told to stop (see the module docs)."""
    from podium import ConcurrencyError, PendingRequestsError

    saver = open_saver(side, db)
    app = open_app(side, saver, effects_path)
    queue = Queue(queue_path)
    me = os.getpid()
    while not queue.stopped():
        job = queue.take(me)
        if job is None:
            time.sleep(0.02)
            continue
        key, thread, text = job
        try:
            _serve(app, queue, key, thread, text)
        except ConcurrencyError as exc:
            queue.log(key, repr(exc)[:200])  # ThreadBusyError, LeaseLostError, CallInProgressError
            busy = type(exc).__name__ == "ThreadBusyError"
            queue.later(key, random.uniform(0.01, 0.05), busy=busy, error="" if busy else repr(exc))
        except PendingRequestsError:
            queue.log(key, "pending")
            queue.later(key, 0.1)
        except Exception as exc:
            queue.log(key, repr(exc)[:300])
            queue.later(key, 0.1, error=f"{type(exc).__name__}: {exc}")


def _serve(app: Any, queue: Queue, key: str, thread: str, text: str) -> None:
    config: Any = {"configurable": {"thread_id": thread}}
    state = app.get_state(config)
    messages = state.values.get("messages", [])
    if any(isinstance(m, HumanMessage) and m.id == key for m in messages):
        if answered(messages, key):
            queue.ack(key)
            return
        if state.interrupts or not state.tasks:  # waits for a human (or cannot go on)
            queue.later(key, 0.1)
            return
        queue.log(key, "resume")
        out = app.invoke(None, config)  # the run that carried it was cut off: finish it
    elif state.interrupts:  # a careful client does not talk over a pending question
        queue.later(key, 0.1)
        return
    elif state.tasks:  # nor over a run that was cut off: it finishes that run first
        queue.log(key, "resume first")
        app.invoke(None, config)
        queue.later(key, 0.0)
        return
    else:
        queue.log(key, "send")
        out = app.invoke({"messages": [HumanMessage(text, id=key)]}, config)
    queue.log(key, "returned")
    queue.got_in(key)
    if answered(out.get("messages", []), key):
        queue.ack(key)
    else:
        queue.later(key, 0.1)


# -- the decider process ------------------------------------------------------------------------
def decider(side: str, db: str, queue_path: str, effects_path: str, threads: list[str]) -> None:
    """The decider process: approve what waits (see the module docs)."""
    saver = open_saver(side, db)
    app = open_app(side, saver, effects_path)
    queue = Queue(queue_path)
    while not queue.stopped():
        try:
            if side == "podium":
                _decide_podium(app, saver, queue, effects_path)
            else:
                _decide_stock(app, queue, threads)
        except Exception:  # a refused or raced decision: look again
            time.sleep(0.05)
        time.sleep(0.03)


def _decide_podium(app: Any, saver: Any, queue: Queue, effects_path: str) -> None:
    from podium import AlreadyDecidedError, ConcurrencyError, Decision, UnknownRequestError, runs

    for thread in list(saver.podium_ledger.pending_approvals()):
        config: Any = {
            "configurable": {
                "thread_id": thread,
                "podium_multitask": "enqueue",
                "podium_multitask_timeout": 10,
            }
        }
        for request in runs.pending(app, config):
            job = str(request.args.get("job", ""))
            decision = Decision.approve(by="decider")
            if request.kind == "in_doubt" and (job, request.tool) in _done(effects_path):
                decision = Decision.reject("it happened before the crash", by="decider")
            try:
                runs.decide(app, config, {request.id: decision})
            except (AlreadyDecidedError, UnknownRequestError, ConcurrencyError):
                continue
            queue.decided(request.id, thread, job, request.kind, decision.action)


def _decide_stock(app: Any, queue: Queue, threads: list[str]) -> None:
    for thread in threads:
        config: Any = {"configurable": {"thread_id": thread}}
        for item in app.get_state(config).interrupts:
            job = str(item.value.get("job", "")) if isinstance(item.value, dict) else ""
            app.invoke(Command(resume={item.id: "approve"}), config)
            queue.decided(item.id, thread, job, "approval", "approve")


def _done(effects_path: str) -> set[tuple[str, str]]:
    return {(job, tool) for job, tool, _ in effects(Path(effects_path))}


# -- the chaos process: run the load and check the outcome -------------------------------------
@dataclass
class Load:
    """One load-test configuration."""

    side: str
    """``podium`` or ``stock``."""
    db: str
    """The system under test's database: a SQLite file or a PostgreSQL URL."""
    workers: int
    threads: int
    turns: int
    folder: Path
    kill_every: tuple[float, float] = (2.0, 4.0)
    """Seconds between two SIGKILLs (uniformly random in this range)."""
    limit: float = 240.0
    """Seconds the load may take before it is cut off."""
    drain: float = 30.0
    """Seconds without chaos for the last turns after the load (or the limit)."""
    seed: int = 7


@dataclass
class Outcome:
    """What a load run measured and found."""

    load: Load
    seconds: float = 0.0
    turns: int = 0
    acked: int = 0
    kills: int = 0
    latency: list[float] = field(default_factory=list)
    lease_waits: list[float] = field(default_factory=list)
    busy: int = 0
    errors: int = 0
    sample_error: str = ""
    lost_turns: int = 0
    duplicated_effects: int = 0
    lost_approvals: int = 0
    approvals: int = 0
    stuck_threads: int = 0
    crashed_rows: int = 0

    @property
    def rate(self) -> float:
        return self.acked / self.seconds if self.seconds else 0.0

    @property
    def clean(self) -> bool:
        return (
            self.lost_turns,
            self.duplicated_effects,
            self.lost_approvals,
            self.stuck_threads,
        ) == (
            0,
            0,
            0,
            0,
        )

    def percentile(self, values: list[float], q: float) -> float:
        if not values:
            return 0.0
        if len(values) == 1:
            return values[0]
        return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _jobs(load: Load) -> list[tuple[str, str, int, str, int]]:
    rng = random.Random(load.seed)
    bursts: list[list[tuple[str, str, int, str]]] = []
    for t in range(load.threads):
        thread = f"thread-{t}"
        turns = [
            (
                f"{thread}-turn-{k}",
                thread,
                k,
                f"question {k} of {thread}" + (f" {GATED}" if (t + k) % 3 == 0 else ""),
            )
            for k in range(load.turns)
        ]
        bursts += [turns[i : i + 2] for i in range(0, len(turns), 2)]
    rng.shuffle(bursts)  # two turns of one thread go out together
    ordered = [job for burst in bursts for job in burst]
    return [(*job, seq) for seq, job in enumerate(ordered)]


def run_load(load: Load) -> Outcome:
    """Run the load with chaos and check the outcome (see the module docs)."""
    load.folder.mkdir(parents=True, exist_ok=True)
    queue_path, effects_path = str(load.folder / "queue.sqlite"), load.folder / "effects.sqlite"
    prepare_effects(effects_path)
    with sqlite3.connect(queue_path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(QUEUE_SCHEMA)
        db.executemany(
            "INSERT INTO jobs (id, thread, turn, text, seq, state, not_before) "
            "VALUES (?, ?, ?, ?, ?, 'ready', 0)",
            _jobs(load),
        )
    prepare(load.side, load.db)  # tables made once, before the workers
    threads = [f"thread-{t}" for t in range(load.threads)]
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["benchmarks._scaleout"])
    args = (load.side, load.db, queue_path, str(effects_path))

    def spawn() -> Any:
        proc = ctx.Process(target=worker, args=args, daemon=True)
        proc.start()
        return proc

    queue = Queue(queue_path)
    rng = random.Random(load.seed)
    outcome = Outcome(load, turns=load.threads * load.turns)
    judge = ctx.Process(target=decider, args=(*args, threads), daemon=True)
    judge.start()
    procs = [spawn() for _ in range(load.workers)]
    started = time.time()
    next_kill = started + rng.uniform(*load.kill_every)
    try:
        while time.time() - started < load.limit and _open(queue) and not judge.exitcode:
            time.sleep(0.05)
            if time.time() >= next_kill:
                victim = procs.pop(rng.randrange(len(procs)))
                os.kill(victim.pid, signal.SIGKILL)
                queue.log("", f"killed {victim.pid}")
                victim.join(30)
                queue.requeue(victim.pid)
                procs.append(spawn())
                outcome.kills += 1
                next_kill = time.time() + rng.uniform(*load.kill_every)
        drained = time.time() + load.drain
        while time.time() < drained and _open(queue):
            time.sleep(0.05)
        finished = _last_ack(queue) or time.time()
        outcome.seconds = finished - started
    finally:
        queue.db.execute("INSERT OR REPLACE INTO control VALUES ('stop', '1')")
        for proc in [*procs, judge]:
            proc.join(30)
            if proc.is_alive():
                proc.kill()
                proc.join(10)
    _check(load, outcome, queue, effects_path)
    return outcome


def _open(queue: Queue) -> int:
    return int(queue.db.execute("SELECT COUNT(*) FROM jobs WHERE state != 'done'").fetchone()[0])


def _last_ack(queue: Queue) -> float | None:
    row = queue.db.execute("SELECT MAX(acked) FROM jobs").fetchone()
    return float(row[0]) if row and row[0] else None


def _check(load: Load, outcome: Outcome, queue: Queue, effects_path: Path) -> None:
    jobs = queue.db.execute(
        "SELECT id, thread, text, state, first_taken, busy_since, got_in, acked, busy, errors, "
        "last_error FROM jobs"
    ).fetchall()
    outcome.acked = sum(1 for j in jobs if j[3] == "done")
    outcome.latency = [j[7] - j[4] for j in jobs if j[7] and j[4]]
    outcome.lease_waits = [j[6] - j[5] for j in jobs if j[5] and j[6] and j[6] >= j[5]]
    outcome.busy = sum(j[8] for j in jobs)
    outcome.errors = sum(j[9] for j in jobs)
    outcome.sample_error = next((j[10] for j in jobs if j[10]), "") or ""
    done = effects(effects_path)
    counts: dict[tuple[str, str], int] = {}
    for job, tool, _ in done:
        counts[(job, tool)] = counts.get((job, tool), 0) + 1
    outcome.duplicated_effects = sum(n - 1 for n in counts.values() if n > 1)
    saver = open_saver(load.side, load.db)
    try:
        app = open_app(load.side, saver, str(effects_path))
        histories, unfinished, waiting = {}, set(), set()
        for thread in {j[1] for j in jobs}:
            state = app.get_state({"configurable": {"thread_id": thread}})
            histories[thread] = state.values.get("messages", [])
            if state.next and not state.interrupts:
                unfinished.add(thread)
            if state.interrupts:
                waiting.add(thread)
        if load.side == "podium":
            ledger = saver.podium_ledger
            waiting |= set(ledger.pending_approvals())
            outcome.crashed_rows = sum(1 for r in ledger.threads() if r.state == "crashed")
    finally:
        close_saver(saver)
    outcome.lost_turns = sum(
        1 for j in jobs if j[3] == "done" and not answered(histories[j[1]], j[0])
    )
    approved = queue.db.execute(
        "SELECT DISTINCT job FROM decisions WHERE kind='approval' AND decision='approve'"
    ).fetchall()
    outcome.approvals = len(approved)
    outcome.lost_approvals = sum(1 for (job,) in approved if (job, "refund") not in counts) + len(
        waiting
    )
    open_threads = {j[1] for j in jobs if j[3] != "done"}
    outcome.stuck_threads = len(open_threads | unfinished | waiting)
