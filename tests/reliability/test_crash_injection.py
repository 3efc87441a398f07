"""Crash injection: SIGKILL every pattern at every node boundary and inside every effect.

For the reference scenario of each pattern (``crash_scenarios.py``: single agent,
manager, handoff, parallel, pipeline -- each with a side-effecting tool that needs
approval and another side effect), a process runs the scenario with
its default call (no ``durability`` argument) and kills itself with SIGKILL

* after the k-th streamed event (``stream_mode="updates"``, subgraphs included),
  for every k up to the number of events of the uninterrupted run, and
* inside every side-effecting tool, before and after its effect.

A new process then finishes the run from the SQLite file through ``podium.runs``,
answering requests as an operator would (approve; an *in doubt* call whose effect
is visible in the effects table is answered with ``respond`` and its result, one
whose effect is missing is approved to run). Each resumed run must match the
uninterrupted one: the same final messages (type and text), the same side effects
(no duplicates), the same approvals on record, and no request listed again by
``runs.pending`` after it was decided. (LangGraph keeps resume values in memory
until a task finishes, so a kill mid-task makes the run ask again; ``runs`` answers
such a request with the decision the ledger holds -- counted as *replayed*.)

Processes are forked from a zygote that imported podium once (``crash_scenarios.py``
run as a script), three at a time, so the whole campaign takes about a minute.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

APP = Path(__file__).with_name("crash_scenarios.py")
PARALLEL = 3

EVENTS = {"single": 6, "manager": 13, "handoff": 11, "parallel": 13, "pipeline": 10}
"""Streamed events (node boundaries, subgraphs included) of each uninterrupted run."""
EFFECTS = {
    "single": ["charge", "ship"],
    "manager": ["charge", "ship"],
    "handoff": ["charge", "ship"],
    "parallel": ["charge", "ship"],
    "pipeline": ["charge", "notify"],
}
"""The side-effecting steps of each scenario (``notify``: a pipeline function action)."""

KILL_POINTS = [
    *(f"{s}:event-{k}" for s, n in EVENTS.items() for k in range(1, n + 1)),
    *(f"{s}:{t}-{when}" for s, ts in EFFECTS.items() for t in ts for when in ("before", "after")),
]


def _kill_spec(point: str) -> dict[str, Any]:
    where = point.split(":", 1)[1]
    if where.startswith("event-"):
        return {"event": int(where.removeprefix("event-"))}
    tool, when = where.split("-")
    return {"tool": tool, "when": when}


def _run_zygote(jobs: list[dict[str, Any]]) -> dict[str, int]:
    proc = subprocess.run(
        [sys.executable, str(APP), str(PARALLEL)],
        input="".join(json.dumps(j) + "\n" for j in jobs),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    exits = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            item = json.loads(line)
            exits[item["id"]] = item["exit"]
    return exits


def _outcome(job: dict[str, Any], exits: dict[str, int]) -> dict[str, Any]:
    out = Path(job["out"])
    err = Path(job["out"] + ".err")
    return {
        "exit": exits.get(job["id"]),
        "record": json.loads(out.read_text()) if out.exists() else None,
        "error": err.read_text() if err.exists() else None,
    }


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Run the references and every kill, then every resume; the outcome per job id."""
    root = tmp_path_factory.mktemp("crash")

    def job(job_id: str, scenario: str, action: str, kill: dict[str, Any] | None) -> dict[str, Any]:
        folder = root / job_id.replace(":", "_")
        return {
            "id": f"{action}:{job_id}",
            "scenario": scenario,
            "action": action,
            "dir": str(folder),
            "out": str(root / f"{action}_{job_id.replace(':', '_')}.json"),
            "kill": kill,
        }

    first = [job(f"{s}:reference", s, "start", None) for s in EVENTS]
    first += [job(p, p.split(":")[0], "start", _kill_spec(p)) for p in KILL_POINTS]
    exits = _run_zygote(first)
    second = [job(p, p.split(":")[0], "resume", None) for p in KILL_POINTS]
    exits.update(_run_zygote(second))
    return {j["id"]: _outcome(j, exits) for j in [*first, *second]}


def _reference(campaign: dict[str, dict[str, Any]], scenario: str) -> dict[str, Any]:
    outcome = campaign[f"start:{scenario}:reference"]
    assert outcome["exit"] == 0, outcome["error"]
    record: dict[str, Any] = outcome["record"]
    return record


@pytest.mark.parametrize("scenario", sorted(EVENTS))
def test_reference_run(campaign: dict[str, dict[str, Any]], scenario: str) -> None:
    ref = _reference(campaign, scenario)
    assert ref["events"] == EVENTS[scenario], "the scenario changed: update EVENTS"
    assert sorted(t for t, _ in ref["effects"]) == sorted(EFFECTS[scenario])
    assert all(a[2:] == ["decided", "approve"] for a in ref["approvals"])
    assert ["approval", "charge"] in ref["asked"]
    assert ref["messages"][-1][0] == "AIMessage"
    assert ref["messages"][-1][1]


def _approved(record: dict[str, Any]) -> Counter[tuple[str, str]]:
    return Counter(
        (a[0], a[1]) for a in record["approvals"] if a[0] == "approval" and a[3] == "approve"
    )


@pytest.mark.parametrize("point", KILL_POINTS)
def test_kill_and_resume_matches_the_uninterrupted_run(
    campaign: dict[str, dict[str, Any]], point: str
) -> None:
    scenario = point.split(":")[0]
    ref = _reference(campaign, scenario)
    killed, resumed = campaign[f"start:{point}"], campaign[f"resume:{point}"]
    assert killed["exit"] == -signal.SIGKILL, killed["error"] or "the process was not killed"
    assert resumed["exit"] == 0, resumed["error"]
    after = resumed["record"]
    assert after["messages"] == ref["messages"]
    assert after["effects"] == ref["effects"]  # exactly once: nothing lost, nothing twice
    assert after["re_asked"] == []  # no decided approval was asked again
    assert _approved(after) == _approved(ref)  # every approval on record, once


def test_campaign_totals(campaign: dict[str, dict[str, Any]]) -> None:
    """The numbers the reliability report quotes."""
    killed = [p for p in KILL_POINTS if campaign[f"start:{p}"]["exit"] == -signal.SIGKILL]
    resumed = [p for p in KILL_POINTS if campaign[f"resume:{p}"]["exit"] == 0]
    duplicated = mismatched = lost = in_doubt = replayed = 0
    for p in resumed:
        ref = _reference(campaign, p.split(":")[0])
        after = campaign[f"resume:{p}"]["record"]
        extra = Counter(map(tuple, after["effects"])) - Counter(map(tuple, ref["effects"]))
        duplicated += sum(extra.values())
        mismatched += after["messages"] != ref["messages"]
        lost += len(after["re_asked"]) + sum((_approved(ref) - _approved(after)).values())
        in_doubt += sum(kind == "in_doubt" for kind, _ in after["asked"])
        replayed += after["replayed"]
    summary = {
        "kill_points": len(KILL_POINTS),
        "killed": len(killed),
        "resumed": len(resumed),
        "duplicated_effects": duplicated,
        "lost_approvals": lost,
        "final_state_mismatches": mismatched,
        "in_doubt_answered": in_doubt,
        "decisions_replayed_from_ledger": replayed,
    }
    print(f"\ncrash campaign: {json.dumps(summary)}")
    assert len(killed) == len(resumed) == len(KILL_POINTS)
    assert duplicated == lost == mismatched == 0
