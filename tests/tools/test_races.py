"""Concurrent deciders: one decision binds, nothing runs twice.

Processes (and threads) decide the same pending request at the same moment. The
race is provoked, not hoped for: every decider's ledger waits at a barrier right
before the compare-and-set of ``record_decision`` and again right after the first
read of the call's row, so all of them are inside each compare-and-set together
(see ``charge_app.py``). Every assertion counts real side effects: a row per charge
in a separate SQLite file. Every race runs for both agent kinds (podium's agent graph,
and LangChain's ``create_agent`` with ``podium.middleware.Governed``; tests/agent_kinds.py).

Thread leases are off here (``PODIUM_THREAD_LEASE=off``): with them, the second
decider of a podium graph is refused before it reaches the ledger
(``tests/tools/test_leases.py``); these tests prove that the ledger alone keeps one
decision and one effect.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from charge_app import (
    Campaign,
    Gates,
    RacingLedger,
    config,
    effects,
    tool_messages,
)

from agent_kinds import AGENT_KINDS
from podium import AlreadyDecidedError, Decision, runs
from podium.tools._decisions import current_ledger

AMOUNT = 150.0

ALICE = {"action": "approve", "by": "alice"}
BOB = {"action": "approve", "by": "bob"}
CAROL = {"action": "approve", "by": "carol"}
REJECT = {"action": "reject", "reason": "not today", "by": "bob"}
EDIT = {"action": "edit", "args": {"amount": 90}, "by": "bob"}


def effect_of(decision: dict[str, Any]) -> float | None:
    """The amount a decision charges (``None``: nothing runs)."""
    if decision["action"] == "approve":
        return AMOUNT
    if decision["action"] == "edit":
        return float(decision["args"]["amount"])
    return None


def same(recorded: dict[str, Any], sent: dict[str, Any]) -> bool:
    """Whether the ledger's decision is the one sent (an edit is stored merged)."""
    got, want = Decision.parse(recorded), Decision.parse(sent)
    if (got.action, got.by, got.reason, got.message) != (
        want.action,
        want.by,
        want.reason,
        want.message,
    ):
        return False
    return all((got.args or {}).get(k) == v for k, v in (want.args or {}).items())


def check_settled(campaign: Campaign, thread: str, order: str, winner: dict[str, Any]) -> None:
    """After the race: one decision in the ledger, nothing pending, resume is a no-op."""
    expected = effect_of(winner)
    charged = [(order, expected)] if expected is not None else []
    assert effects(campaign.effects, order) == charged
    app = campaign.app([])
    ledger = current_ledger(app.config)
    records = ledger.approvals(thread)
    assert [r.status for r in records] == ["decided"]
    assert records[0].decision is not None
    assert same(records[0].decision, winner)
    assert thread not in ledger.pending_approvals()
    assert runs.pending(app, config(thread)) == []
    before = app.get_state(config(thread)).values["messages"]
    runs.resume(app, config(thread))  # nothing is left to do: nothing runs, nothing asks
    assert effects(campaign.effects, order) == charged
    assert app.get_state(config(thread)).values["messages"] == before
    assert runs.pending(app, config(thread)) == []


SCENARIOS: dict[str, tuple[str, list[dict[str, Any]]]] = {
    "same-2": ("decide", [ALICE, BOB]),
    "same-3": ("decide", [ALICE, BOB, CAROL]),
    "approve-reject": ("decide", [ALICE, REJECT]),
    "approve-edit": ("decide", [ALICE, EDIT]),
    "raw-same": ("raw", [ALICE, BOB]),
    "raw-approve-reject": ("raw", [ALICE, REJECT]),
}
"""Per scenario: how each process decides (``runs.decide`` or a raw ``Command``), and
one decision per process."""

Answers = dict[str, list[list[dict[str, Any]]]]
"""Per scenario, per round: each process's JSON answer."""


def run_campaign(campaign: Campaign, rounds: int) -> Answers:
    """Every scenario, ``rounds`` fresh threads each; the same worker processes race."""
    plan = [
        (name, r, f"{name}-{r}", f"A-{name}-{r}")
        for r in range(rounds)
        for name in SCENARIOS  # interleaved, so the processes are warm for every kind
    ]
    for _, _, thread, order in plan:
        campaign.pause(thread, order, AMOUNT)
    width = max(len(decisions) for _, decisions in SCENARIOS.values())
    specs = []
    for i in range(width):
        mine = []
        for name, _, thread, _ in plan:
            action, decisions = SCENARIOS[name]
            if i < len(decisions):
                mine.append(
                    {
                        "thread": thread,
                        "action": action,
                        "decision": decisions[i],
                        "parties": len(decisions),
                        "dir": str(campaign.tmp / thread),
                    }
                )
        specs.append({"me": f"p{i}", "rounds": mine})
    by_thread: dict[str, list[dict[str, Any]]] = {}
    for lines in campaign.workers(specs):
        for line in lines:
            by_thread.setdefault(line["thread"], []).append(line)
    answers: Answers = {name: [] for name in SCENARIOS}
    for name, _, thread, _ in plan:
        got = sorted(by_thread[thread], key=lambda a: a["me"])
        assert len(got) == len(SCENARIOS[name][1])
        answers[name].append(got)
    return answers


def check_scenario(campaign: Campaign, answers: Answers, name: str) -> None:
    action, decisions = SCENARIOS[name]
    for r, got in enumerate(answers[name]):
        thread, order = f"{name}-{r}", f"A-{name}-{r}"
        assert all(a["timeouts"] == [] for a in got), got  # the race really happened
        # exactly one compare-and-set recorded a decision
        assert sorted(bool(a["decide_won"]) for a in got) == [False] * (len(got) - 1) + [True]
        [w] = [i for i, a in enumerate(got) if a["decide_won"]]
        winner = decisions[w]
        if effect_of(winner) is not None:  # every process tried to start the call; one did
            assert sorted(bool(a["claim_won"]) for a in got) == [False] * (len(got) - 1) + [True], (
                got
            )
        else:
            assert all(a["claim_won"] is None for a in got), got
        result = got[w]["tools"]
        assert len(result) == 1, got[w]
        if effect_of(winner) is not None:
            assert result[0]["content"] == f"charged {effect_of(winner)} to {order}"
        for i, answer in enumerate(got):
            if action == "raw":  # a raw resume that lost neither raises nor acts
                assert answer["outcome"] == "ok", answer
                assert answer["tools"] == result
                assert not answer["interrupted"]
            elif i == w:
                assert answer["outcome"] == "ok", answer
                assert not answer["interrupted"]
            else:
                assert answer["outcome"] == "already_decided", answer
                assert same(answer["recorded"], winner)
                assert answer["result_tools"] in ([], result)
                assert not answer["result_interrupted"], answer
        check_settled(campaign, thread, order, winner)


@pytest.fixture(scope="module", params=AGENT_KINDS)
def sqlite_race(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Any:
    tmp = tmp_path_factory.mktemp("sqlite-race")
    campaign = Campaign(str(tmp / "runs.sqlite"), tmp, kind=request.param, leases=False)
    answers = run_campaign(campaign, rounds=5)
    yield campaign, answers
    campaign.close()


@pytest.fixture(scope="module", params=AGENT_KINDS)
def pg_race(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: Any, request: pytest.FixtureRequest
) -> Any:
    url = postgres_server.create_database()
    campaign = Campaign(url, tmp_path_factory.mktemp("pg-race"), kind=request.param, leases=False)
    answers = run_campaign(campaign, rounds=3)
    yield campaign, answers
    campaign.close()
    postgres_server.drop_database(url)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_processes_decide_at_once_on_sqlite(sqlite_race: Any, scenario: str) -> None:
    check_scenario(*sqlite_race, scenario)


@pytest.mark.postgres
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_processes_decide_at_once_on_postgres(pg_race: Any, scenario: str) -> None:
    check_scenario(*pg_race, scenario)


# -- threads of one process ------------------------------------------------------------------
def barrier_gate(barrier: threading.Barrier) -> Any:
    def wait() -> bool:
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            return False
        return True

    return wait


class ThreadRace:
    """Two threads of the test process deciding one request through ``runs.decide``."""

    def __init__(self, tmp: Path, kind: str) -> None:
        self.campaign = Campaign(str(tmp / "runs.sqlite"), tmp, kind=kind, leases=False)
        self.gates = Gates()
        self.campaign.saver.podium_ledger = RacingLedger(self.campaign.db, self.gates)

    def close(self) -> None:
        self.campaign.close()

    def run(self, thread: str, order: str, decisions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        self.campaign.pause(thread, order, AMOUNT)
        app = self.campaign.app(["done", "done"])
        [request] = runs.pending(app, config(thread))
        got: list[dict[str, Any]] = [{} for _ in decisions]

        def decide(i: int) -> None:
            seen = self.gates.reset()
            try:
                out = runs.decide(app, config(thread), {request.id: decisions[i]})
                seen.update(outcome="ok", out=out)
            except AlreadyDecidedError as exc:
                seen.update(outcome="already_decided", recorded=exc.recorded, out=exc.result)
            except Exception as exc:
                seen.update(outcome=repr(exc), out=None)
            finally:
                got[i] = seen
                self.on_exit()

        workers = [threading.Thread(target=decide, args=(i,)) for i in range(len(decisions))]
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
        return got

    def on_exit(self) -> None:
        """A deciding thread returned (hook for the tests)."""


@pytest.mark.parametrize(
    "decisions",
    [[ALICE, BOB], [ALICE, REJECT], [ALICE, EDIT]],
    ids=["same", "approve-reject", "approve-edit"],
)
def test_threads_decide_at_once(
    tmp_path: Path,
    agent_kind: str,
    decisions: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both threads are inside ``record_decision``'s compare-and-set together.

    The thread that lost the decision starts the call only once the winner is done
    (the claim race between threads of one process is the next test's subject).
    """
    monkeypatch.setenv("PODIUM_THREAD_LEASE", "off")
    race = ThreadRace(tmp_path, agent_kind)
    try:
        for r in range(3):
            settled = threading.Event()
            race.on_exit = settled.set  # type: ignore[method-assign]
            race.gates.before_decide = barrier_gate(threading.Barrier(2, timeout=10))
            race.gates.before_first_read = lambda done=settled: (
                race.gates.seen["decide_won"] is not False or done.wait(10)
            )
            thread, order = f"threads-{r}", f"A-threads-{r}"
            got = race.run(thread, order, decisions)
            assert all(g["timeouts"] == [] for g in got), got
            assert sorted(bool(g["decide_won"]) for g in got) == [False, True]
            [w] = [i for i, g in enumerate(got) if g["decide_won"]]
            assert got[w]["outcome"] == "ok", got
            assert "__interrupt__" not in got[w]["out"]
            result = tool_messages(got[w]["out"])
            assert len(result) == 1
            loser = got[1 - w]
            assert loser["outcome"] == "already_decided", loser
            assert same(loser["recorded"], decisions[w])
            assert "__interrupt__" not in loser["out"]
            assert tool_messages(loser["out"]) == result
            check_settled(race.campaign, thread, order, decisions[w])
    finally:
        race.close()


def test_thread_that_loses_the_claim_waits_for_the_winner(
    tmp_path: Path, agent_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both threads read "not started" and claim together; the winner is held right
    after its claim (before it runs the tool) until the loser took its next step."""
    monkeypatch.setenv("PODIUM_THREAD_LEASE", "off")
    race = ThreadRace(tmp_path, agent_kind)
    try:
        loser_moved = threading.Event()
        race.gates.before_decide = barrier_gate(threading.Barrier(2, timeout=10))
        race.gates.after_first_read = barrier_gate(threading.Barrier(2, timeout=10))
        race.gates.after_claim = lambda claim: not claim.won or loser_moved.wait(10)
        race.gates.next_step = loser_moved.set
        got = race.run("held", "A-held", [ALICE, BOB])
        assert all(g["timeouts"] == [] for g in got), got
        assert sorted(bool(g["claim_won"]) for g in got) == [False, True]
        assert effects(race.campaign.effects, "A-held") == [("A-held", AMOUNT)]
        for g in got:  # neither thread is left asking about a call that ran once
            assert g["out"] is not None, g
            assert "__interrupt__" not in g["out"], g["out"]["__interrupt__"]
            assert tool_messages(g["out"])[0]["content"] == f"charged {AMOUNT} to A-held"
        ledger = current_ledger(race.campaign.app([]).config)
        assert [r.request["kind"] for r in ledger.approvals("held")] == ["approval"]
        assert "held" not in ledger.pending_approvals()
    finally:
        race.close()


# -- a slow call and a second process ---------------------------------------------------------
def test_second_process_waits_for_a_slow_call(tmp_path: Path, agent_kind: str) -> None:
    """Process A approves and is inside the (slow) tool; process B resumes the same
    approved call (``runs.resume``, then a raw resume). B must wait for A's result:
    not run the call, and not take it for in doubt (no ghost ``in_doubt`` request).
    A's tool returns only once B has seen the call running."""
    campaign = Campaign(str(tmp_path / "runs.sqlite"), tmp_path, kind=agent_kind, leases=False)
    try:
        check_slow_call(campaign, tmp_path)
    finally:
        campaign.close()


def check_slow_call(campaign: Campaign, tmp: Path) -> None:
    rounds = {"resume": ("slow-resume", "A-slow-resume"), "raw": ("slow-raw", "A-slow-raw")}
    for thread, order in rounds.values():
        campaign.pause(thread, order, AMOUNT)
    a_rounds, b_rounds = [], []
    for action, (thread, _) in rounds.items():
        inside, seen_running = tmp / f"{thread}.inside", tmp / f"{thread}.seen"
        a_rounds.append(
            {
                "thread": thread,
                "action": "decide",
                "decision": ALICE,
                "inside": str(inside),
                "hold_until": str(seen_running),
                "sleep": 0.2,
            }
        )
        b_rounds.append(
            {
                "thread": thread,
                "action": action,
                "decision": BOB,
                "wait_for": str(inside),
                "saw_running": str(seen_running),
            }
        )
    a_seen, b_seen = campaign.workers(
        [{"me": "a", "rounds": a_rounds}, {"me": "b", "rounds": b_rounds}]
    )
    for (thread, order), a, b in zip(rounds.values(), a_seen, b_seen, strict=True):
        assert (tmp / f"{thread}.seen").exists()  # B really found the call running
        assert a["outcome"] == "ok", a
        assert a["claim_won"] is True
        assert a["tools"] == [
            {"id": "c1", "content": f"charged {AMOUNT} to {order}", "status": "success"}
        ]
        assert b["outcome"] == "ok", b
        assert b["claim_won"] is None  # B never tried to start it: it waited
        assert not b["interrupted"], b
        assert b["tools"] == a["tools"]
        assert effects(campaign.effects, order) == [(order, AMOUNT)]
        ledger = current_ledger(campaign.app([]).config)
        assert [(r.request["kind"], r.status) for r in ledger.approvals(thread)] == [
            ("approval", "decided")
        ]
        assert thread not in ledger.pending_approvals()
        check_settled(campaign, thread, order, ALICE)


def test_loser_of_the_claim_does_not_doubt_a_call_that_just_finished(
    tmp_path: Path, agent_kind: str
) -> None:
    """Two processes approve at once and both claim; the loser is held right after its
    lost claim until the winner ran the call, finished its run and exited."""
    campaign = Campaign(str(tmp_path / "runs.sqlite"), tmp_path, kind=agent_kind, leases=False)
    try:
        campaign.pause("stale", "A-stale", AMOUNT)
        specs = [
            {
                "me": f"p{i}",
                "rounds": [
                    {
                        "thread": "stale",
                        "action": "decide",
                        "decision": decision,
                        "parties": 2,
                        "dir": str(tmp_path / "stale"),
                        "lost_claim_waits_for_exit": True,
                    }
                ],
            }
            for i, decision in enumerate([ALICE, BOB])
        ]
        got = [lines[0] for lines in campaign.workers(specs)]
        assert all(g["timeouts"] == [] for g in got), got
        assert sorted(bool(g["claim_won"]) for g in got) == [False, True]
        assert effects(campaign.effects, "A-stale") == [("A-stale", AMOUNT)]
        [loser] = [g for g in got if not g["claim_won"]]
        assert loser["outcome"] in ("ok", "already_decided"), loser
        # not asking about a call that is done
        assert not loser.get("interrupted"), loser
        assert not loser.get("result_interrupted"), loser
        shown = loser["tools"] if loser["outcome"] == "ok" else loser["result_tools"]
        assert shown == [
            {"id": "c1", "content": f"charged {AMOUNT} to A-stale", "status": "success"}
        ]
        ledger = current_ledger(campaign.app([]).config)
        assert [r.request["kind"] for r in ledger.approvals("stale")] == ["approval"]
        assert "stale" not in ledger.pending_approvals()
    finally:
        campaign.close()
