"""`podium eval` and the Judge on the embedded local model (slow: -m local_model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from podium.cli import main
from podium.eval import Judge, load_dataset

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.local_model
def test_judge_on_the_local_model() -> None:
    from pydantic_evals.evaluators import EvaluatorContext

    judge = Judge(rubric="The answer says that 40 dollars were refunded.", model="local")

    def grade(answer: str) -> object:
        ctx = EvaluatorContext(
            name="c", inputs=None, metadata=None, expected_output=None, output=answer,
            duration=0.0, _span_tree=None, attributes={}, metrics={},
        )  # fmt: skip
        return judge.evaluate(ctx)

    verdict = grade("I refunded 40 dollars on order A-1001 and emailed you.")
    assert isinstance(verdict.value, bool)
    assert verdict.reason


@pytest.mark.local_model
def test_podium_eval_runs_a_shipped_case_on_the_local_model(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    shipped = load_dataset(ROOT / "evals" / "support" / "cases.yaml")
    case = next(c for c in shipped.cases if c.name == "refund_250_approved")
    one = tmp_path / "one.jsonl"
    one.write_text(
        json.dumps(
            {
                "name": case.name,
                "inputs": case.inputs.model_dump(),
                "evaluators": ["NoEscalation", {"NoUnapprovedRuns": ["issue_refund"]}],
            }
        )
    )
    code = main(["eval", str(one), "--model", "local", "--json", "--out", str(tmp_path / "run"),
                 "--graph", "single=podium.demos:build_support_agent"])  # fmt: skip
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    [result] = data["cases"]
    assert result["status"] in ("done", "waiting", "error")
    assert result["model_calls"] >= 1
    assert result["tokens"] > 0
    assert result["cost"] == 0  # the local model is free (and priced)
    # governance holds whatever the 0.5B model chose
    assert result["assertions"]["NoUnapprovedRuns"]["value"] is True
    assert data["model"] == "local"
