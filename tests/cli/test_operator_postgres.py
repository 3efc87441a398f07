"""The operator's view on PostgreSQL: a thread run from Python on ``postgres_saver(url)``
is listed, traced, costed and decided by the CLI with ``--db URL``, in other processes.

The run events are written by the process that ran the graph and read by the CLI's
(they live in ``podium_events`` in the saver's database, not in that process).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import podium as podium_package
from podium.checkpoints._pg import PostgresEventStore, PostgresLedger

pytestmark = pytest.mark.postgres

HERE = Path(__file__).parent
SOURCE = str(Path(podium_package.__file__).resolve().parents[1])
PODIUM = Path(sys.executable).with_name("podium")
START = """
import os
from desk import build
from podium.checkpoints import postgres_saver

saver = postgres_saver(os.environ["PG_URL"], pool_size=2)
app = build().compile(checkpointer=saver)
app.invoke({"messages": [("user", "refund A-1 please")]}, {"configurable": {"thread_id": "pg-1"}})
saver.close()  # the run ledger still writes what is queued, on a pool of its own
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(HERE / "refund_graph.py", tmp_path / "desk.py")
    (tmp_path / "start.py").write_text(START)
    return tmp_path


def _env(project: Path, url: str, stage: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PODIUM_HOME")}
    return {
        **env,
        "PYTHONPATH": SOURCE,  # the podium under test (the graph module is found in cwd)
        "PG_URL": url,
        "REFUND_EFFECTS": str(project / "effects.sqlite"),
        "REFUND_STAGE": stage,
    }


def run(
    project: Path, url: str, *argv: str, stage: str = "resume"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=project,
        env=_env(project, url, stage),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def podium(project: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run(project, url, str(PODIUM), *args)


def as_json(project: Path, url: str, *args: str) -> Any:
    done = podium(project, url, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def refunds(project: Path) -> int:
    import sqlite3

    if not (project / "effects.sqlite").exists():
        return 0
    with sqlite3.connect(project / "effects.sqlite") as db:
        return int(db.execute("SELECT COUNT(*) FROM refunds").fetchone()[0])


def test_a_thread_on_postgres_is_listed_traced_costed_and_approved_once(
    project: Path, postgres_url: str
) -> None:
    url = postgres_url
    started = run(project, url, sys.executable, "start.py", stage="start")
    assert started.returncode == 0, started.stderr
    db = ("--db", url)

    [row] = as_json(project, url, "threads", *db)
    assert (row["thread"], row["graph"], row["status"]) == ("pg-1", "billing", "waiting")
    assert row["pending_approvals"] == 1
    assert row["checkpoints"] > 0
    [request] = as_json(project, url, "pending", *db)
    assert (request["thread"], request["tool"]) == ("pg-1", "issue_refund")
    shown = podium(project, url, "pending", *db).stdout
    assert f"approve pg-1 {request['id']} --db {shlex.quote(url)} --graph MODULE:ATTR" in shown

    # written by the process that ran the graph, read by this one
    events = as_json(project, url, "trace", "pg-1", *db)
    [model] = [e for e in events if e["kind"] == "model"]
    assert model["input_tokens"] > 0
    assert model["output_tokens"] > 0
    assert model["agent"] == "billing"
    [asked] = [e for e in events if e["kind"] == "approval_requested"]
    assert asked["data"]["request_id"] == request["id"]
    cost = as_json(project, url, "cost", *db)
    assert cost["agents"]["billing"]["calls"] == 1
    assert cost["agents"]["billing"]["input_tokens"] == model["input_tokens"]
    info = as_json(project, url, "inspect", "pg-1", *db)
    assert info["messages"][0] == {"type": "human", "content": "refund A-1 please"}

    done = podium(project, url, "approve", "pg-1", *db, "--graph", "desk:build", "--by", "alice")
    assert done.returncode == 0, done.stderr
    assert "Refund done." in done.stdout
    assert refunds(project) == 1
    again = podium(project, url, "approve", "pg-1", *db, "--by", "bob")
    assert again.returncode == 1
    assert "has no pending requests" in again.stderr
    assert podium(project, url, "resume", "pg-1", *db).returncode == 0
    assert refunds(project) == 1
    [row] = as_json(project, url, "threads", *db)
    assert (row["status"], row["source"]) == ("done", "desk:build")
    decided = [
        e for e in as_json(project, url, "trace", "pg-1", *db) if e["kind"] == "approval_decided"
    ]
    assert [e["data"]["by"] for e in decided] == ["alice"]
    pruned = as_json(project, url, "prune", "pg-1", *db, "--keep-last", "1")
    assert pruned["thread"] == "pg-1"
    assert pruned["kept"] + pruned["deleted"] == row["checkpoints"]
    [after] = as_json(project, url, "threads", *db)
    assert after["checkpoints"] == pruned["kept"]


def test_read_only_commands_on_postgres_import_neither_langgraph_nor_langchain(
    project: Path, postgres_url: str
) -> None:
    started = run(project, postgres_url, sys.executable, "start.py", stage="start")
    assert started.returncode == 0, started.stderr
    probe = (
        "import os, sys; from podium.cli import main\n"
        "for argv in (['threads'], ['pending'], ['trace', 'pg-1'], ['cost']):\n"
        "    assert main([*argv, '--db', os.environ['PG_URL'], '--json']) == 0\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('langgraph', 'langchain_core', 'openai', 'desk', 'matplotlib', 'xllamacpp'))\n"
        "assert not heavy, heavy\n"
        "assert 'psycopg' in sys.modules\n"
    )
    done = run(project, postgres_url, sys.executable, "-c", probe)
    assert done.returncode == 0, done.stderr


def test_a_down_server_or_a_refused_login_is_a_clear_error_without_the_password(
    project: Path, postgres_url: str, tmp_path: Path
) -> None:
    down = "postgresql://alice:s3cr3t-pw@127.0.0.1:1/podium"
    done = podium(project, down, "threads", "--db", down)
    assert done.returncode == 1
    assert "Cannot connect to PostgreSQL at 127.0.0.1:1" in done.stderr
    assert "Traceback" not in done.stderr
    assert "s3cr3t-pw" not in done.stderr + done.stdout

    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(postgres_url)
    host = params["host"]
    refused = f"postgresql://nobody:s3cr3t-pw@/{params['dbname']}?host={host}"
    for argv in (["pending"], ["approve", "t1", "--graph", "desk:build"]):
        done = podium(project, refused, *argv, "--db", refused)
        assert done.returncode == 1
        assert 'role "nobody" does not exist' in done.stderr
        assert "Traceback" not in done.stderr
        assert "s3cr3t-pw" not in done.stderr + done.stdout
    assert make_conninfo  # the URL above is built by hand, as a user would


def test_served_runs_with_a_postgres_ledger_are_traced_beside_their_approvals(
    project: Path,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    from podium.cli import main
    from podium.tools import _graph

    monkeypatch.setenv("REFUND_EFFECTS", str(project / "effects.sqlite"))
    monkeypatch.setenv("REFUND_STAGE", "start")
    monkeypatch.syspath_prepend(str(project))
    from desk import build  # type: ignore[import-not-found]

    monkeypatch.setenv("PODIUM_LEDGER", postgres_url)
    try:
        app = build().compile()  # as a served module compiles it: the server brings a saver
        app.checkpointer = InMemorySaver()
        config: Any = {"configurable": {"thread_id": "served-1"}}
        app.invoke({"messages": [("user", "refund A-1 please")]}, config)
        handler = _graph.run_ledger_for(None)
        assert handler is not None
        handler.flush()
        store = _graph.event_store_for(None)
        assert isinstance(store, PostgresEventStore)
    finally:
        monkeypatch.delenv("PODIUM_LEDGER")
        ledger = _graph._BY_LOCATION.pop(postgres_url)

    reader = PostgresLedger(postgres_url)  # another connection: the rows are in the database
    try:
        events = PostgresEventStore(reader).events("served-1")
        kinds = [e["kind"] for e in events]
        assert "model" in kinds
        assert "approval_requested" in kinds
        [approval] = reader.approvals("served-1")
        assert approval.status == "pending"
    finally:
        reader.close()
        ledger.close()
    assert main(["trace", "served-1", "--db", postgres_url, "--json"]) == 0
    traced = json.loads(capsys.readouterr().out)
    assert [e["kind"] for e in traced] == kinds
    assert main(["pending", "--db", postgres_url, "--json"]) == 0
    [pending] = json.loads(capsys.readouterr().out)
    assert pending["id"] == approval.request["id"]
