"""Datasets: YAML, JSON and JSONL; shorthands; clear errors; the shipped support dataset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from podium import ConfigurationError
from podium.eval import CaseInputs, ToolCalled, load_dataset

ROOT = Path(__file__).resolve().parents[2]
CASE = {
    "name": "refund",
    "metadata": {"category": "refund"},
    "inputs": {"messages": "refund 250", "decisions": [{"action": "approve"}]},
    "evaluators": [{"ToolCalled": {"tool": "issue_refund", "args": {"amount": 250}}}],
}


@pytest.mark.parametrize("suffix", [".yaml", ".json", ".jsonl"])
def test_the_three_formats_read_the_same(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"cases{suffix}"
    if suffix == ".jsonl":
        path.write_text(json.dumps(CASE) + "\n\n")
    else:  # JSON is YAML too
        path.write_text(json.dumps({"name": "cases", "cases": [CASE]}))
    [case] = load_dataset(path).cases
    assert case.name == "refund"
    assert case.metadata == {"category": "refund"}
    assert case.inputs.payload() == {"messages": [("user", "refund 250")]}
    assert [d.decision().action for d in case.inputs.decisions] == ["approve"]
    assert case.evaluators == [ToolCalled(tool="issue_refund", args={"amount": 250})]


def test_input_shorthands() -> None:
    assert CaseInputs.model_validate("hi").messages[0].content == "hi"
    inputs = CaseInputs.model_validate(
        {"messages": ["a", {"role": "assistant", "content": "b"}, "c"], "approvals": "reject"}
    )
    assert inputs.payload() == {"messages": [("user", "a"), ("assistant", "b"), ("user", "c")]}
    assert inputs.request == "c"
    assert inputs.approvals == "reject"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ({"name": "x"}, "inputs"),
        ({"name": "x", "inputs": {"messages": []}}, "messages"),
        ({"name": "x", "inputs": {"messages": "hi", "approvals": "maybe"}}, "approvals"),
        ({"name": "x", "inputs": {"messages": "hi", "decisions": [{"action": "allow"}]}},
         "decisions.0.action"),
        ({"name": "x", "inputs": {"messages": "hi", "decisions": [{"action": "edit"}]}},
         "edit"),
        ({"name": "x", "inputs": "hi", "evaluators": ["NoSuchCheck"]}, "NoSuchCheck"),
        ({"name": "x", "inputs": "hi", "evaluators": [{"Regex": "("}]}, "not a valid regular"),
        ({"name": "x", "inputs": "hi", "evaluators": [{"JsonSchema": {"schema": {"type": 5}}}]},
         "not a valid JSON schema"),
    ],
)  # fmt: skip
def test_malformed_cases_are_clear_errors(case: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=r"Cannot read the dataset|not a valid") as error:
        load_dataset([case])
    assert message in str(error.value)
    assert error.value.fix


def test_missing_file_and_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="There is no dataset file"):
        load_dataset(tmp_path / "none.yaml")
    (tmp_path / "cases.csv").write_text("a,b\n")
    with pytest.raises(ConfigurationError, match=r"suffix '.csv'; podium reads .yaml"):
        load_dataset(tmp_path / "cases.csv")
    (tmp_path / "broken.jsonl").write_text("{not json}\n")
    with pytest.raises(ConfigurationError, match=r"Cannot read the dataset from .*broken\.jsonl"):
        load_dataset(tmp_path / "broken.jsonl")


def test_the_shipped_support_dataset() -> None:
    dataset = load_dataset(ROOT / "evals" / "support" / "cases.yaml")
    assert dataset.name == "support"
    assert len(dataset.cases) >= 20
    categories = [c.metadata["category"] for c in dataset.cases]
    assert {categories.count(k) >= 4 for k in set(categories)} == {True}
    assert set(categories) == {
        "refund_under_limit",
        "refund_over_limit",
        "technical",
        "out_of_scope",
        "injection",
    }
    assert all(c.evaluators for c in dataset.cases)
    notes = [
        c for c in dataset.cases if "A-1005" in c.inputs.request or "A-1006" in c.inputs.request
    ]
    assert len(notes) >= 3  # the orders whose notes carry prompt injections


def test_the_checked_in_local_comparison_is_what_the_readme_says() -> None:
    from podium.eval import EvalResults

    results = EvalResults.load(ROOT / "evals" / "support" / "results-local.json")
    assert list(results.graphs) == ["single", "handoff", "manager"]
    assert results.model == "local"
    assert len(results.cases) == 72
    readme = (ROOT / "README.md").read_text()
    for s in results.summary():
        assert s.runs == 24
        shown = f"**{s.pass_rate:.0%}** ({s.ci_low:.0%}-{s.ci_high:.0%}), {s.passed}/{s.runs}"
        assert shown in readme
