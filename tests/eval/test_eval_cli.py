"""`podium eval`: JSON output, regression exit codes, the plot, Ctrl-C, clear errors."""

from __future__ import annotations

import _thread
import io
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from demo_helpers import ByAgent, call, calls
from rich.console import Console
from rich.progress import Progress

from podium.cli import main
from podium.demos import build_support_agent
from podium.eval import EvalResults, evaluate, load_dataset

HERE = Path(__file__).parent
GRAPHS = [
    "--graph",
    "single=scripted_support:single",
    "--graph",
    "handoff=scripted_support:handoff",
    "--graph",
    "manager=scripted_support:manager",
]


def _eval(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["eval", str(HERE / "cases.yaml"), *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One scripted evaluation of the three desks, as `podium eval --save` wrote it."""
    out = tmp_path_factory.mktemp("baseline")
    code = main(["eval", str(HERE / "cases.yaml"), *GRAPHS, "--out", str(out / "run"),
                 "--save", str(out / "base.json"), "--json"])  # fmt: skip
    assert code == 0
    data: dict[str, Any] = json.loads((out / "base.json").read_text())
    return data


def test_json_output(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = _eval(capsys, *GRAPHS, "--json", "--out", str(tmp_path))
    assert code == 0
    data = json.loads(out)
    assert data["format"] == "podium.eval/1"
    assert data["regressions"] == []
    assert data["graphs"] == {
        "single": "scripted_support:single",
        "handoff": "scripted_support:handoff",
        "manager": "scripted_support:manager",
    }
    rates = {s["graph"]: (s["passed"], s["runs"]) for s in data["summary"]}
    assert rates == {"single": (3, 4), "handoff": (4, 4), "manager": (4, 4)}
    summary = data["summary"][0]
    assert set(summary) >= {"pass_rate", "ci_low", "ci_high", "median_tokens", "median_cost",
                            "median_seconds", "approvals_requested", "refusals",
                            "escalations"}  # fmt: skip
    case = next(c for c in data["cases"] if (c["graph"], c["case"]) == ("single", "injection"))
    assert case["passed"] is False
    assert case["assertions"]["ToolNotCalled"]["value"] is False
    assert [t["tool"] for t in case["trajectory"]] == ["lookup_order", "issue_refund"]
    assert case["approval_requests"] == [
        {"tool": "issue_refund", "args": {"order_id": "A-1005", "amount": 300},
         "kind": "approval", "decision": "reject"}
    ]  # fmt: skip
    assert json.loads((tmp_path / "results.json").read_text())["summary"] == data["summary"]


def test_terminal_table_and_plot(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    plot = tmp_path / "comparison.png"
    code, out, _ = _eval(capsys, *GRAPHS, "--out", str(tmp_path / "run"), "--plot", str(plot))
    assert code == 0
    assert "scripted_support: 3 graph(s), repeat 1" in out
    assert "single: ToolNotCalled" in out  # the injection case, in the failed-checks column
    for row in ("│ single  │       75% │", "│ handoff │      100% │", "│ manager │      100% │"):
        assert row in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_regressions_exit_3(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, baseline: dict[str, Any]
) -> None:
    def write(data: dict[str, Any]) -> str:
        path = tmp_path / f"base{len(list(tmp_path.iterdir()))}.json"
        path.write_text(json.dumps(data))
        return str(path)

    def run(*args: str) -> tuple[int, str, str]:  # scripted runs take milliseconds: noisy
        return _eval(capsys, *GRAPHS, "--tolerance-latency", "1000", *args)

    same = write(baseline)
    code, out, _ = run("--baseline", same, "--out", str(tmp_path / "a"))
    assert code == 0
    assert "REGRESSION" not in out

    better = json.loads(json.dumps(baseline))
    for case in better["cases"]:
        case["passed"] = True
    code, out, _ = run("--baseline", write(better), "--out", str(tmp_path / "b"))
    assert code == 3
    assert "REGRESSION single: pass rate 75% < baseline 100% (tolerance 5% points)" in out
    # a looser tolerance lets the same drop pass
    code, _, _ = run("--baseline", write(better), "--tolerance-pass", "0.3",
                     "--out", str(tmp_path / "c"))  # fmt: skip
    assert code == 0

    cheaper = json.loads(json.dumps(baseline))
    for case in cheaper["cases"]:
        case["tokens"] = case["tokens"] // 2
    code, out, _ = run("--baseline", write(cheaper), "--json", "--out", str(tmp_path / "d"))
    assert code == 3
    problems = json.loads(out)["regressions"]
    assert len(problems) == 3
    assert all("median tokens" in p for p in problems)
    code, _, _ = run("--baseline", write(cheaper), "--tolerance-tokens", "1.5",
                     "--out", str(tmp_path / "e"))  # fmt: skip
    assert code == 0

    faster = json.loads(json.dumps(baseline))
    for case in faster["cases"]:
        case["seconds"] = case["seconds"] / 10_000
    code, out, _ = _eval(capsys, *GRAPHS, "--baseline", write(faster), "--out", str(tmp_path / "f"))
    assert code == 3
    assert "REGRESSION single: median latency" in out


def test_fail_under(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = _eval(capsys, *GRAPHS, "--fail-under", "0.8", "--out", str(tmp_path / "a"))
    assert code == 3
    assert "REGRESSION single: pass rate 75% is under --fail-under 80%" in out
    code, _, _ = _eval(capsys, *GRAPHS[:2], "--fail-under", "0.75", "--out", str(tmp_path / "b"))
    assert code == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--graph", "nope_module:x"], "Cannot load --graph 'nope_module:x'"),
        (["--graph", "scripted_support:not_a_graph"], "is a int, not an uncompiled StateGraph"),
        (["--graph", "a=scripted_support:single", "--graph", "a=scripted_support:handoff"],
         "need distinct labels"),
        (["--graph", "scripted_support:single", "--repeat", "0"], "at least 1"),
        (["--graph", "scripted_support:single", "--baseline", "missing.json"],
         "Cannot read evaluation results from missing.json"),
    ],
)  # fmt: skip
def test_errors_exit_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], message: str
) -> None:
    code, out, err = _eval(capsys, *args, "--out", str(tmp_path))
    assert code == 1
    assert out == ""
    assert message in err


def test_a_bad_dataset_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("cases:\n  - name: x\n    inputs: {messages: hi, decision: []}\n")
    assert main(["eval", str(bad), "--graph", "scripted_support:single"]) == 1
    err = capsys.readouterr().err
    assert f"Cannot read the dataset from {bad}" in err
    assert "decision" in err
    assert "Extra inputs are not permitted" in err


# -- Ctrl-C ---------------------------------------------------------------------------------
def _interrupting(home: Path, case: Any) -> Any:
    refund = calls(call("issue_refund", {"order_id": "A-1001", "amount": 40}, "c1"))
    if case.name == "second":  # Ctrl-C while this case is being built
        _thread.interrupt_main()
        time.sleep(2.0)  # the main thread notices within its 0.1 s join
    return build_support_agent(home, ByAgent.of({"support": [refund, f"{case.name} done."]}))


CASES = [{"name": n, "inputs": "refund 40 on A-1001"} for n in ("first", "second", "third")]


@pytest.fixture(autouse=True)
def _ctrl_c_reaches_python() -> Iterator[None]:
    """Python's Ctrl-C handler, whatever the process inherited.

    A process started in the background by a non-interactive shell (a CI job's ``cmd &``)
    starts with SIGINT ignored, and then ``_thread.interrupt_main`` does nothing.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_keeps_finished_cases(tmp_path: Path) -> None:
    results = evaluate(load_dataset(CASES), {"desk": _interrupting}, out=tmp_path)
    assert results.interrupted
    assert [(c.case, c.passed, c.get("answer")) for c in results.cases] == [
        ("first", True, "first done.")
    ]
    saved = EvalResults.load(tmp_path / "results.json")
    assert saved.interrupted
    assert [c.case for c in saved.cases] == ["first"]
    assert len((tmp_path / "cases.jsonl").read_text().splitlines()) == 1


def test_ctrl_c_in_the_cli_prints_and_exits_130(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "three.jsonl").write_text("\n".join(json.dumps(c) for c in CASES))
    (tmp_path / "interrupting.py").write_text(
        f"import sys\nsys.path.insert(0, {str(HERE)!r})\nfrom test_eval_cli import _interrupting\n"
    )
    monkeypatch.chdir(tmp_path)
    code = main(["eval", "three.jsonl", "--graph", "desk=interrupting:_interrupting",
                 "--out", "run"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 130
    assert "INTERRUPTED, finished cases only" in out
    assert "│ first │" in out
    assert "podium: interrupted; the finished cases are saved" in err
    assert EvalResults.load(tmp_path / "run" / "results.json").interrupted


# -- progress and import cost --------------------------------------------------------------
def test_progress_advances_per_graph(tmp_path: Path) -> None:
    progress = Progress(console=Console(file=io.StringIO()))
    with progress:
        evaluate(
            HERE / "cases.yaml",
            ["single=scripted_support:single", "scripted_support:handoff"],
            repeat=2,
            concurrency=3,
            progress=progress,
            out=tmp_path,
        )
    done = {t.description: (t.completed, t.total) for t in progress.tasks}
    assert done == {"single": (8, 8), "handoff": (8, 8)}


def test_the_cli_parser_imports_no_eval_library() -> None:
    code = (
        "import sys, podium.cli; podium.cli.build_parser(); "
        "print(sorted(m for m in ('pydantic_evals', 'langgraph', 'podium.eval._evaluate') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
