"""The operator's view: a thread started from plain Python, seen and decided by the CLI.

No ``PYTHONPATH``, no CLI registration: the graph module sits in the folder the
operator runs from, as a user's project does. Every command runs in its own process.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from podium.cli import _parse, build_parser

HERE = Path(__file__).parent
PODIUM = Path(sys.executable).with_name("podium")
START = """
from desk import build
from podium.checkpoints import sqlite_saver

app = build().compile(checkpointer=sqlite_saver("runs.sqlite"))
app.invoke({"messages": [("user", "refund A-1 please")]}, {"configurable": {"thread_id": "py-1"}})
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A user's folder: their graph module and a script that runs it from Python."""
    shutil.copy(HERE / "refund_graph.py", tmp_path / "desk.py")
    (tmp_path / "start.py").write_text(START)
    return tmp_path


def _env(project: Path, stage: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PODIUM_HOME")}
    return {**env, "REFUND_EFFECTS": str(project / "effects.sqlite"), "REFUND_STAGE": stage}


def podium(project: Path, *args: str, stage: str = "resume") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PODIUM), *args],
        cwd=project,
        env=_env(project, stage),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def as_json(project: Path, *args: str, stage: str = "resume") -> Any:
    done = podium(project, *args, "--json", stage=stage)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def refunds(project: Path) -> int:
    with sqlite3.connect(project / "effects.sqlite") as db:
        return int(db.execute("SELECT COUNT(*) FROM refunds").fetchone()[0])


def test_a_thread_run_from_python_is_listed_traced_costed_and_decided(project: Path) -> None:
    started = subprocess.run(
        [sys.executable, "start.py"],
        cwd=project,
        env=_env(project, "start"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    db = ("--db", "runs.sqlite")

    [row] = as_json(project, "threads", *db)
    assert (row["thread"], row["graph"], row["status"]) == ("py-1", "billing", "waiting")
    assert row["request"] == "refund A-1 please"
    assert row["pending_approvals"] == 1
    [request] = as_json(project, "pending", *db)
    assert (request["thread"], request["tool"], request["args"]) == (
        "py-1",
        "issue_refund",
        {"order_id": "A-1", "amount": 250},
    )
    shown = podium(project, "pending", *db).stdout
    assert f"approve py-1 {request['id']} --db runs.sqlite --graph MODULE:ATTR --by" in shown
    info = as_json(project, "inspect", "py-1", *db)
    assert info["status"] == "waiting"
    assert info["messages"][0] == {"type": "human", "content": "refund A-1 please"}
    assert [r["id"] for r in info["pending"]] == [request["id"]]
    kinds = [e["kind"] for e in as_json(project, "trace", "py-1", *db)]
    assert "approval_requested" in kinds
    assert "model" in kinds
    cost = as_json(project, "cost", "py-1", *db)
    assert cost["agents"]["billing"]["calls"] >= 1

    # deciding runs the graph: the CLI says exactly what it needs, and changes nothing
    refused = podium(project, "approve", "py-1", *db, "--by", "alice")
    assert refused.returncode == 1
    assert "started outside the CLI (graph 'billing')" in refused.stderr
    assert "--graph package.module:attribute" in refused.stderr
    assert not (project / "effects.sqlite").exists()
    assert as_json(project, "pending", *db)[0]["id"] == request["id"]

    # options anywhere on the line; the module is found in the folder we run from
    done = podium(project, "approve", "--graph", "desk:build", "py-1", *db, "--by", "alice")
    assert done.returncode == 0, done.stderr
    assert "Refund done." in done.stdout
    assert refunds(project) == 1
    [row] = as_json(project, "threads", *db)
    assert (row["status"], row["source"], row["runs"]) == ("done", "desk:build", 2)
    assert as_json(project, "pending", *db) == []
    # the graph is recorded now: resume needs no --graph, and acts no second time
    assert podium(project, "resume", "py-1", *db).returncode == 0
    assert refunds(project) == 1
    decided = [e for e in as_json(project, "trace", "py-1", *db) if e["kind"] == "approval_decided"]
    assert [e["data"]["by"] for e in decided] == ["alice"]


def test_read_only_commands_import_neither_langgraph_nor_user_code(project: Path) -> None:
    subprocess.run(
        [sys.executable, "start.py"], cwd=project, env=_env(project, "start"), check=True
    )
    probe = (
        "import sys; from podium.cli import main\n"
        "for argv in (['threads'], ['pending'], ['trace', 'py-1'], ['cost']):\n"
        "    assert main([*argv, '--db', 'runs.sqlite', '--json']) == 0\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('langgraph', 'langchain_core', 'openai', 'desk', 'matplotlib', 'xllamacpp', 'psycopg'))\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=project,
        env=_env(project, "resume"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_every_command_that_prints_speaks_json(project: Path) -> None:
    """``--json`` everywhere: each command's whole output parses."""
    db = ("--db", "runs.sqlite")
    run = as_json(project, "run", "desk:build", "refund", "--thread", "c1", *db, stage="start")
    assert run["status"] == "waiting"
    outputs = {
        "models": as_json(project, "models"),
        "threads": as_json(project, "threads", *db),
        "pending": as_json(project, "pending", *db),
        "inspect": as_json(project, "inspect", "c1", *db),
        "trace": as_json(project, "trace", "c1", *db),
        "cost": as_json(project, "cost", *db),
        "respond": as_json(project, "respond", "c1", *db, "--message", "no refunds today"),
    }
    assert outputs["respond"]["status"] == "done"
    as_json(project, "run", "desk:build", "refund", "--thread", "c2", *db, stage="start")
    outputs["reject"] = as_json(project, "reject", "c2", *db, "--reason", "no")
    outputs["resume"] = as_json(project, "resume", "c2", *db)
    outputs["prune"] = as_json(project, "prune", "c2", *db, "--keep-last", "1")
    assert outputs["prune"]["thread"] == "c2"
    assert {t["thread"] for t in as_json(project, "threads", *db)} == {"c1", "c2"}
    assert refunds_or_zero(project) == 0


def refunds_or_zero(project: Path) -> int:
    return refunds(project) if (project / "effects.sqlite").exists() else 0


def test_text_output_ends_with_a_newline_and_refusals_exit_non_zero(project: Path) -> None:
    db = ("--db", "runs.sqlite")
    assert podium(project, "threads", *db).stdout == "no threads\n"
    started = podium(project, "run", "desk:build", "refund", "--thread", "n1", *db, stage="start")
    assert started.returncode == 0
    # a graph on its own (scripted) models: no model label it does not use
    assert started.stdout.splitlines()[0] == "podium run desk:build (thread n1)"
    listing = podium(project, "threads", *db).stdout
    assert listing.endswith("\n")
    assert "n1" in listing
    assert "waiting" in listing
    assert podium(project, "approve", "n1", "apr_nope", *db).returncode == 1
    assert podium(project, "approve", "n1", *db, "--by", "a").returncode == 0
    again = podium(project, "approve", "n1", *db, "--by", "b")
    assert again.returncode == 1
    assert "has no pending requests" in again.stderr


def test_options_may_come_between_positionals() -> None:
    parser = build_parser()
    args = _parse(parser, ["demo", "support", "--json", "my request", "--model", "local"])
    assert (args.name, args.request, args.json, args.model) == (
        "support",
        "my request",
        True,
        "local",
    )
    args = _parse(parser, ["approve", "--by", "al", "t1", "--db", "x.sqlite", "apr_1"])
    assert (args.thread, args.request, args.by, args.db) == ("t1", "apr_1", "al", "x.sqlite")


def test_the_cli_knows_every_demo() -> None:
    from podium.cli import DEMO_NAMES
    from podium.demos import DEMOS

    assert set(DEMO_NAMES) == set(DEMOS)


def test_a_thread_that_records_its_source_is_decided_without_graph(project: Path) -> None:
    script = START + (
        "from podium import runs\n"
        "runs.record_source(app, {'configurable': {'thread_id': 'py-1'}}, 'desk:build')\n"
    )
    (project / "start.py").write_text(script)
    subprocess.run(
        [sys.executable, "start.py"], cwd=project, env=_env(project, "start"), check=True
    )
    assert "--graph" not in podium(project, "pending", "--db", "runs.sqlite").stdout
    done = podium(project, "approve", "py-1", "--db", "runs.sqlite", "--by", "alice")
    assert done.returncode == 0, done.stderr
    assert refunds(project) == 1
