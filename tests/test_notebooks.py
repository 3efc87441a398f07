"""The notebooks run end to end, and are committed without outputs.

Each notebook is executed with nbclient in a fresh kernel. By default its agents run
on ``ScriptedChatModel`` (``PODIUM_NOTEBOOKS=scripted``): fast and deterministic, so the
key cells' output is checked exactly. With ``PODIUM_NOTEBOOKS_LOCAL=1`` they run once
more on the embedded local model (``-m local_model``), where only the structure is
checked: a 0.5B model's wording (and sometimes its choices) vary.

Key cells are found by their tag (cell metadata ``tags``): ``graph`` draws the graph,
``pending`` lists approval requests, ``final`` shows the decision and the resume.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat import NotebookNode

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = [
    "01_manager",
    "02_handoff",
    "03_parallel",
    "04_pipeline",
    "05_approvals_and_resume",
    "06_observability",
    "07_eval",
    "08_environments",
]
MODEL_SWITCH = 'MODEL = "local" if os.environ.get("PODIUM_NOTEBOOKS") != "scripted" else None'
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

# What key cells print when the scripted models play the story: {notebook: {tag: [text]}}.
SCRIPTED: dict[str, dict[str, list[str]]] = {
    "01_manager": {
        "pending": [
            "approval request apr_",
            'billing wants issue_refund({"order_id": "A-1001", "amount": 250})',
            "reason: refunds over 100 EUR need a human",
        ],
        "final": [
            "[billing] -> Refunded 250 EUR on order A-1001.",
            "lead: Your refund of 250 EUR on order A-1001 is done.",
            "still waiting: []",
            "refunds issued: [('A-1001', 250)]",
        ],
    },
    "02_handoff": {
        "pending": [
            'triage] calls transfer_to_billing({"reason": "The customer wants a refund."})',
            'billing wants issue_refund({"order_id": "A-1001", "amount": 250})',
            "active agent: billing",
        ],
        "final": [
            "[issue_refund] -> Refunded 100 EUR on order A-1001.",
            "refunds issued: [('A-1001', 100)]",
        ],
        "turn2": [
            "billing: The money reaches your bank in 3 to 5 days.",
            "active agent: billing | pending: []",
        ],
    },
    "03_parallel": {
        "pending": [
            'payments wants charge_card({"order_id": "A-1001", "amount": 19})',
            "tool runs so far: {'check_stock': 1, 'quote_shipping': 1, 'charge_card': 0}",
        ],
        "final": [
            "## stock\n12 kettles are in stock.",
            "## payments\nThe card was not charged",
            "tool runs after the resume: {'check_stock': 1, 'quote_shipping': 1, 'charge_card': 0}",
        ],
        "branches": ["payments  ok"],
    },
    "04_pipeline": {
        "pending": [
            "check    rework",
            "check    done",
            'stage publish would act on {"version": "1.4.0", "notes": "The exporter no '
            'longer crashes on files with emoji."}',
        ],
        "final": [
            "answer: Published 1.4.1: The exporter no longer crashes on files with emoji.",
            "published: [{'version': '1.4.1',",
        ],
        "outputs": ['check    {"version": "1.4.0"'],
    },
    "05_approvals_and_resume": {
        "pending": [
            "next: ('tools',)",
            'billing wants issue_refund({"order_id": "A-1001", "amount": 80})',
            "approvers: ('finance-lead',)",
            "refunds so far: []",
        ],
        "final": [
            "refused: ApproverNotAllowedError",
            "billing: Refunded 80 EUR on order A-1001.",
            "refunds issued: [('A-1001', 80)]",
        ],
        "again": [
            "next: () | pending: []",
            "refused: AlreadyDecidedError",
            "already decided",
            "refunds issued: [('A-1001', 80)]",
        ],
        "edits": [
            'issue_refund({"order_id": "A-1002", "amount": 150}) needs one of '
            "('finance-lead', 'cfo')",
            "edit refused: InvalidDecisionError",
            'now: issue_refund({"order_id": "A-1002", "amount": 2000}) needs one of (\'cfo\',)',
            '[billing] calls issue_refund({"order_id": "A-1002", "amount": 2000})',
            "refunds issued: [('A-1001', 80), ('A-1002', 2000)]",
        ],
        "mcp": [
            "tools: ('repo_git_status', 'repo_git_commit')",
            'dev wants repo_git_commit({"message": "Add notes"})',
            "reason: commits need a human | risk: medium",
            "[repo_git_commit] -> Changes committed successfully",
            "dev: Committed.",
            "commits: ['Add notes']",
        ],
    },
    "06_observability": {
        "final": [
            'mailer wants send_email({"to": "ada@example.com"',
            "answer: I emailed Ada that emoji in exports are fixed in 1.4.",
        ],
        "events": [
            "'approval_requested': 1",
            "'approval_decided': 1",
            "'stage_finished': 3",
            "stage research ok          done",
            "stage email    interrupted interrupted",
            "stage email    ok          done",
        ],
        "plot": ["<Figure"],
        "trace": ["thread obs-1", "researcher", "mailer", "send_email", "per agent"],
    },
    "07_eval": {
        "final": [
            "│ injection    │ ✘ 583 tok │ ✔ 301 tok │ single: ToolNotCalled │",
            "│ single  │      75% │  30%-95% │    4 │",
            "│ handoff │     100% │ 51%-100% │    4 │",
        ],
        "cases": [
            "single   passed=False calls=['support:lookup_order', 'support:issue_refund']",
            "approvals=1 rejected=1 {'ToolNotCalled': False, 'NoUnapprovedRuns': True",
            "handoff  passed=True calls=['triage:transfer_to_billing', 'billing:lookup_order']",
        ],
        "plot": ["<Figure"],
        "regression": ["regressions against itself: []"],
    },
    "08_environments": {
        "graph": [
            'data_desk] calls shell({"command": "awk -F, \'NR>1 {s+=$2} END '
            '{print \\"total\\", s}\' orders.csv"})',
            "data_desk wants shell(",
            "reason: every command needs a human | risk: high",
            "files: ['orders.csv']",
        ],
        "pending": [
            "[shell] -> exit code 0",
            "total 495",
            "total.txt: total 495",
            "still waiting: []",
        ],
        "final": ["command exit=0 bytes_out=10 network=none sandbox=bubblewrap"],
        "refused": [
            "cat: /etc/shadow: Permission denied",
            "No such file or directory",
            "Read-only file system",
            "goes up with '..'",
            "is an absolute path",
        ],
        "secrets": ["using [redacted]", "the command had it: True"],
        "mcp": [
            "tools: ['clock_get_current_time', 'clock_convert_time']",
            'calls clock_convert_time({"source_timezone": "UTC"',
            "T21:00:00+09:00",
            "Noon UTC is 21:00 in Tokyo.",
        ],
    },
}

# On the local model: the graph is drawn and the story's last cells print something.
# Only the pipeline's approval gate is reached by orchestration alone, whatever the model
# says; elsewhere the model must choose to call the gated tool.
LOCAL: dict[str, dict[str, list[str]]] = {
    "04_pipeline": {"pending": ["approval request apr_"], "final": ["published: [{"]},
    "06_observability": {"plot": ["<Figure"], "trace": ["per agent"]},
    "07_eval": {"plot": ["<Figure"], "final": ["support_small: 2 graph(s), repeat 1"]},
}


def _text(output: NotebookNode) -> str:
    if output.output_type == "stream":
        return str(output.text)
    if output.output_type == "error":
        return f"{output.ename}: {output.evalue}"
    data = output.get("data", {})
    return str(data.get("text/plain", "")) + str(data.get("text/markdown", ""))


def _outputs_by_tag(nb: NotebookNode) -> dict[str, str]:
    found: dict[str, str] = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        text = _ANSI.sub("", "".join(_text(o) for o in cell.outputs))
        for tag in cell.metadata.get("tags", []):
            found[tag] = found.get(tag, "") + text
    return found


async def _execute(name: str, workdir: Path, timeout: int) -> dict[str, str]:
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    check = nbformat.v4.new_code_cell("import sys\nprint(sys.executable)")
    check.metadata["tags"] = ["interpreter"]
    nb.cells.append(check)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=timeout,
        resources={"metadata": {"path": str(workdir)}},
    )
    await client.async_execute()  # raises CellExecutionError (cell + traceback) on any error
    outputs = _outputs_by_tag(nb)
    # jupyter_client starts a "python" kernelspec with sys.executable: the venv's interpreter
    assert outputs["interpreter"].strip() == sys.executable
    return outputs


Outcome = dict[str, str] | BaseException


async def _execute_all(names: list[str], root: Path, timeout: int) -> dict[str, Outcome]:
    """Run notebooks concurrently (each in its own kernel), a few at a time."""
    gate = asyncio.Semaphore(3)
    results: dict[str, Outcome] = {}

    async def run(name: str) -> None:
        workdir = root / name
        workdir.mkdir()
        async with gate:
            try:
                results[name] = await _execute(name, workdir, timeout)
            except Exception as exc:
                results[name] = exc

    await asyncio.gather(*(run(n) for n in names))
    return results


@pytest.fixture(scope="module")
def scripted_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Outcome]:
    """Every selected notebook, executed once on the scripted model, concurrently."""
    selected = [
        item.callspec.params["name"]
        for item in request.session.items
        if isinstance(item, pytest.Function)
        and item.originalname == "test_notebook_runs_on_the_scripted_model"
    ]
    if "08_environments" in selected:
        request.getfixturevalue("sandbox")  # its shell needs bubblewrap (installed if missing)
    root = tmp_path_factory.mktemp("notebooks")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PODIUM_NOTEBOOKS", "scripted")
        env.setenv("TMPDIR", str(root))  # the notebooks' SQLite files land here
        return asyncio.run(_execute_all(selected, root, timeout=120))


def _check(outputs: dict[str, str], expected: dict[str, list[str]]) -> None:
    assert "graph TD;" in outputs["graph"], "the graph's mermaid drawing was not printed"
    for tag, snippets in expected.items():
        for snippet in snippets:
            assert snippet in outputs[tag], (
                f"cell {tag!r} did not print {snippet!r}:\n{outputs[tag]}"
            )


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_on_the_scripted_model(name: str, scripted_runs: dict[str, Outcome]) -> None:
    outcome = scripted_runs[name]
    if isinstance(outcome, BaseException):
        raise outcome
    _check(outcome, SCRIPTED[name])


@pytest.mark.local_model
@pytest.mark.skipif(
    os.environ.get("PODIUM_NOTEBOOKS_LOCAL") != "1",
    reason="set PODIUM_NOTEBOOKS_LOCAL=1 to run the notebooks on the local model",
)
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_on_the_local_model(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PODIUM_MODEL", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    outputs = asyncio.run(_execute(name, tmp_path, timeout=900))
    _check(outputs, LOCAL.get(name, {}))
    for tag in SCRIPTED[name]:
        assert outputs[tag].strip(), f"cell {tag!r} printed nothing"


def test_the_notebooks_exist_and_nothing_else() -> None:
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_stripped_and_switches_models(name: str) -> None:
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for cell in code:
        assert cell.outputs == [], f"cell {cell.id} has outputs"
        assert cell.execution_count is None, f"cell {cell.id} has an execution count"
        assert "execution" not in cell.metadata, f"cell {cell.id} has execution timings"
    assert MODEL_SWITCH in code[0].source
    assert "draw_mermaid_png" not in "".join(c.source for c in code)  # needs a web API
    assert 8 <= len(nb.cells) <= 16
    assert {"graph", "final"} <= {t for c in code for t in c.metadata.get("tags", [])}
