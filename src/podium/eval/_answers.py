"""Checks on the final answer: a pattern, a JSON schema, your function, an LLM judge.

The evaluation's output (``ctx.output``) is the final answer, so pydantic-evals'
own ``Contains``, ``Equals``, ``EqualsExpected`` and ``IsInstance`` work on it as
they are; podium adds:

* ``Regex``: the answer matches ``pattern`` (``re.search``).
* ``JsonSchema``: the answer is JSON valid against ``schema``.
* ``PythonCheck``: ``function`` (``package.module:name``) is called with the
  :class:`~podium.eval.RunRecord` and returns a bool, a number, a string or an
  ``EvaluationReason``.
* ``Judge``: a model grades the answer against ``rubric`` -- any podium model spec
  (``local``, ``openai:<name>``, ``default``), through the same
  :func:`~podium.models.resolve_model` the agents use; it answers a JSON object
  ``{"reason", "passed"}`` constrained by a schema. (pydantic-evals' ``LLMJudge``
  remains available for pydantic-ai model names.)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import jsonschema
from pydantic import BaseModel, Field
from pydantic_evals.evaluators import EvaluationReason, Evaluator, EvaluatorContext

from podium.errors import ConfigurationError
from podium.eval._checks import run_of

__all__ = ["ANSWER_CHECKS", "JsonSchema", "Judge", "PythonCheck", "Regex"]

Ctx = EvaluatorContext[Any, Any, Any]


def _answer(ctx: Ctx) -> str:
    return ctx.output if isinstance(ctx.output, str) else str(ctx.output or "")


@dataclass(repr=False)
class Regex(Evaluator[object, object, object]):
    """The final answer matches ``pattern`` somewhere (``re.search``)."""

    pattern: str
    """A Python regular expression."""
    ignore_case: bool = False
    """Match regardless of case."""

    def __post_init__(self) -> None:
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise ConfigurationError(
                f"Regex pattern {self.pattern!r} is not a valid regular expression ({exc}).",
                fix="Fix the pattern (Python `re` syntax; quote it in YAML).",
            ) from exc

    def evaluate(self, ctx: Ctx) -> EvaluationReason:
        """Search the answer."""
        flags = re.IGNORECASE if self.ignore_case else 0
        found = re.search(self.pattern, _answer(ctx), flags)
        return EvaluationReason(
            value=found is not None,
            reason=f"matched {found.group(0)!r}" if found else f"no match for {self.pattern!r}",
        )


@dataclass(repr=False)
class JsonSchema(Evaluator[object, object, object]):
    """The final answer is a JSON document valid against ``schema``."""

    schema: dict[str, Any]
    """A JSON schema."""

    def __post_init__(self) -> None:
        try:
            jsonschema.validators.validator_for(self.schema).check_schema(self.schema)
        except jsonschema.SchemaError as exc:
            raise ConfigurationError(
                f"JsonSchema's schema is not a valid JSON schema: {exc.message}.",
                fix="Fix the schema (https://json-schema.org).",
            ) from exc

    def evaluate(self, ctx: Ctx) -> EvaluationReason:
        """Parse and validate the answer."""
        try:
            document = json.loads(_answer(ctx))
        except json.JSONDecodeError as exc:
            return EvaluationReason(value=False, reason=f"not JSON: {exc.msg}")
        errors = sorted(
            jsonschema.validators.validator_for(self.schema)(self.schema).iter_errors(document),
            key=lambda e: list(e.path),
        )
        if errors:
            where = "/".join(str(p) for p in errors[0].path) or "(root)"
            return EvaluationReason(value=False, reason=f"{where}: {errors[0].message}")
        return EvaluationReason(value=True, reason="valid")


@dataclass(repr=False)
class PythonCheck(Evaluator[object, object, object]):
    """Your function decides: ``function(run)`` for the case's run record."""

    function: str
    """``package.module:name`` of a function taking a :class:`~podium.eval.RunRecord`
    and returning a bool, a number, a string (a label) or an ``EvaluationReason``."""

    def evaluate(self, ctx: Ctx) -> Any:
        """Import the function (once per process) and call it."""
        from podium._loading import import_object

        check = import_object(self.function, what="PythonCheck function")
        if not callable(check):
            raise ConfigurationError(
                f"PythonCheck {self.function!r} is a {type(check).__name__}, not a function.",
                fix="Name a function that takes the run record.",
            )
        return check(run_of(ctx))

    def get_default_evaluation_name(self) -> str:
        """Named after the function, so several checks read apart in reports."""
        return self.function.rpartition(":")[2] or "PythonCheck"


class Verdict(BaseModel):
    """A judge's grade."""

    reason: str = Field(description="One or two sentences: why the answer passes or fails.")
    passed: bool = Field(description="Whether the answer meets the rubric.")


_JUDGE_PROMPT = (
    "You grade a customer-facing assistant's final answer against a rubric. "
    "Reply with a JSON object: a short reason, then passed (true or false).\n\n"
    "Rubric: {rubric}"
)


@dataclass(repr=False)
class Judge(Evaluator[object, object, object]):
    """A model grades the final answer against ``rubric`` (pass or fail, with a reason)."""

    rubric: str
    """What a good answer does, in plain words."""
    model: Any = "default"
    """A podium model spec (``local``, ``openai:<name>``, ``default``) or, from Python,
    a chat model (e.g. a ``ScriptedChatModel``)."""
    include_request: bool = True
    """Show the judge the customer's request too."""

    def evaluate(self, ctx: Ctx) -> EvaluationReason:
        """Ask the judge model for a :class:`Verdict`."""
        from langchain_core.messages import HumanMessage, SystemMessage

        from podium.models import resolve_model

        llm = resolve_model(self.model).with_structured_output(Verdict, method="json_schema")
        request = getattr(ctx.inputs, "request", "")
        shown = f"Request: {request}\n\n" if self.include_request and request else ""
        verdict = llm.invoke(
            [
                SystemMessage(_JUDGE_PROMPT.format(rubric=self.rubric)),
                HumanMessage(f"{shown}Answer: {_answer(ctx)}"),
            ]
        )
        if not isinstance(verdict, Verdict):
            verdict = Verdict.model_validate(verdict)
        return EvaluationReason(value=verdict.passed, reason=verdict.reason)


ANSWER_CHECKS: tuple[type[Evaluator[Any, Any, Any]], ...] = (JsonSchema, Judge, PythonCheck, Regex)
"""The evaluators that read the final answer."""
