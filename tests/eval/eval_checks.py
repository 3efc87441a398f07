"""A Python evaluator for the tests: ``PythonCheck: eval_checks:says_ok``."""

from __future__ import annotations

from podium.eval import RunRecord


def says_ok(run: RunRecord) -> bool:
    """The answer is the JSON ``{"ok": true}`` and the run finished."""
    return run.status == "done" and run.answer.replace(" ", "") == '{"ok":true}'
