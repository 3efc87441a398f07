"""Evaluation datasets: cases in YAML, JSON or JSONL, read with pydantic-evals.

A dataset is a `pydantic_evals.Dataset` whose case ``inputs`` are
:class:`CaseInputs` (the conversation, scripted decisions, per-case config) and whose
output is the run's final answer (a ``str``). YAML and JSON files use pydantic-evals'
own format; a JSONL file holds one case per line::

    # cases.yaml
    name: support
    evaluators:                       # applied to every case
      - NoEscalation
    cases:
      - name: refund_over_limit
        metadata: {category: refund_over_limit}
        inputs:
          messages: "Order A-1002 arrived broken. Please refund the 250 dollars."
          decisions: [{action: approve, tool: issue_refund}]
        evaluators:
          - ApprovalRequested: issue_refund
          - ToolCalled: {tool: issue_refund, args: {amount: 250}}
          - Contains: {value: "250"}

``inputs`` may also be a plain string (one user message). Evaluators are written
as pydantic-evals specs (``Name``, ``Name: argument`` or ``Name: {keyword: value}``):
podium's own (:mod:`podium.eval._checks`, :mod:`podium.eval._answers`) and
pydantic-evals' built-ins (``Contains``, ``Equals``, ``EqualsExpected``,
``IsInstance``, ``MaxDuration``, ...), which see the final answer as the output.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from podium.errors import ConfigurationError, InvalidDecisionError
from podium.tools import Decision

if TYPE_CHECKING:
    from pydantic_evals import Dataset
    from pydantic_evals.evaluators import Evaluator

__all__ = ["Approvals", "CaseInputs", "ScriptedDecision", "load_dataset"]

Approvals = Literal["wait", "approve", "reject"]
"""What happens to an approval request no scripted decision answers: ``wait`` (the
case ends waiting for a human), ``approve`` or ``reject`` (answered at once)."""


class Message(BaseModel):
    """One message of a case's conversation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Literal["user", "assistant", "system"] = "user"
    """Who says it."""
    content: str
    """What is said."""


class ScriptedDecision(BaseModel):
    """A human's answer to the next approval request (for ``tool``, if given).

    ``action`` and its fields are a :class:`~podium.Decision` in JSON form
    (``approve``; ``edit`` with ``args``; ``reject`` with ``reason``; ``respond``
    with ``message``); ``by`` defaults to ``eval``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["approve", "edit", "reject", "respond"]
    """The decision."""
    tool: str | None = None
    """Answer only a request for this tool (``None``: the next request, whatever it is)."""
    args: dict[str, Any] | None = None
    """New arguments, for ``edit``."""
    reason: str = ""
    """Shown to the agent, for ``reject``."""
    message: str = ""
    """The call's result, for ``respond``."""
    by: str = "eval"
    """Who decides."""

    @model_validator(mode="after")
    def _valid(self) -> ScriptedDecision:
        self.decision()  # raises InvalidDecisionError, which pydantic reports
        return self

    def decision(self) -> Decision:
        """The :class:`~podium.Decision` this stands for."""
        data: dict[str, Any] = {"action": self.action, "by": self.by}
        if self.action == "edit":
            if not self.args:
                raise ValueError("an edit decision needs `args` (the arguments to run with)")
            data["args"] = self.args
        if self.action == "reject":
            data["reason"] = self.reason or "rejected by the evaluation"
        if self.action == "respond":
            data["message"] = self.message
        try:
            return Decision.parse(data)
        except InvalidDecisionError as exc:
            raise ValueError(str(exc)) from exc


class CaseInputs(BaseModel):
    """What one case sends to the graph, and how its approval requests are answered."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    messages: list[Message] = Field(min_length=1)
    """The conversation so far (a string or ``{role, content}`` per message; a plain
    string stands for one user message)."""
    decisions: list[ScriptedDecision] = []
    """Answers to approval requests, used in order (a decision naming a ``tool``
    answers only a request for it)."""
    approvals: Approvals | None = None
    """Requests left unanswered: ``wait``, ``approve`` or ``reject`` (``None``: the
    run's default, ``wait`` unless ``podium eval --approvals`` says otherwise)."""
    config: dict[str, Any] = {}
    """Merged into the run's ``RunnableConfig`` (``recursion_limit``, ``configurable``
    keys...); the thread id is the evaluation's."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"messages": value} if isinstance(value, str) else value

    @field_validator("messages", mode="before")
    @classmethod
    def _messages(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [{"content": m} if isinstance(m, str) else m for m in value]
        return value

    @property
    def request(self) -> str:
        """The last user message (what the case asks)."""
        return next((m.content for m in reversed(self.messages) if m.role == "user"), "")

    def payload(self) -> dict[str, Any]:
        """The graph input: ``{"messages": [(role, content), ...]}``."""
        return {"messages": [(m.role, m.content) for m in self.messages]}


def evaluator_types() -> list[type[Evaluator[CaseInputs, str, Any]]]:
    """Podium's evaluators, for reading datasets (pydantic-evals' built-ins come too)."""
    from podium.eval._answers import ANSWER_CHECKS
    from podium.eval._checks import RUN_CHECKS

    return [*ANSWER_CHECKS, *RUN_CHECKS]


def _problem(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_problem(e) for e in exc.exceptions[:5])
    if isinstance(exc.__cause__, ConfigurationError):  # an evaluator's own check
        return exc.__cause__.message
    if isinstance(exc, ValidationError):
        lines = []
        for error in exc.errors()[:5]:
            where = ".".join(str(p) for p in error["loc"])
            lines.append(f"{where}: {error['msg']}")
        more = f" (and {exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
        return "; ".join(lines) + more
    return str(exc)


def _inner_fix(exc: BaseException) -> str | None:
    """The fix of an evaluator's own :class:`ConfigurationError` inside ``exc``, if any."""
    if isinstance(exc.__cause__, ConfigurationError):
        return exc.__cause__.fix
    if isinstance(exc, BaseExceptionGroup):
        return next((f for f in map(_inner_fix, exc.exceptions) if f), None)
    return None


def load_dataset(
    source: str | Path | Sequence[dict[str, Any]],
    *,
    name: str | None = None,
    evaluators: Sequence[type[Evaluator[Any, Any, Any]]] = (),
) -> Dataset[CaseInputs, str, Any]:
    """Read an evaluation dataset.

    Args:
        source: A ``.yaml``/``.yml``/``.json`` file in pydantic-evals' format, a
            ``.jsonl`` file (one case per line: ``name``, ``inputs``, ``metadata``,
            ``expected_output``, ``evaluators``), or a list of such case dicts.
        name: The dataset's name (default: the file's stem, or ``cases``).
        evaluators: Your own evaluator classes (pydantic-evals ``Evaluator``
            dataclasses), so the file can name them.

    Returns:
        A ``pydantic_evals.Dataset`` with :class:`CaseInputs` inputs.

    Raises:
        ConfigurationError: The file is missing or unreadable, or a case or an
            evaluator is malformed (the message names the case and field).
    """
    from pydantic_evals import Dataset

    types = [*evaluator_types(), *evaluators]
    kind: type[Dataset[CaseInputs, str, Any]] = Dataset[CaseInputs, str, Any]
    where = "the cases given"
    try:
        if isinstance(source, str | Path):
            path = Path(source)
            where = str(path)
            if not path.is_file():
                raise ConfigurationError(
                    f"There is no dataset file {path}.",
                    fix="Pass the path of a .yaml, .json or .jsonl file of cases.",
                )
            if path.suffix == ".jsonl":
                rows = [
                    json.loads(line)
                    for line in path.read_text(encoding="utf-8").splitlines()
                    if line.strip()
                ]
                data = {"name": name or path.stem, "cases": rows}
                return kind.from_dict(data, custom_evaluator_types=types)
            if path.suffix not in (".yaml", ".yml", ".json"):
                raise ConfigurationError(
                    f"Dataset {path} has the suffix {path.suffix!r}; podium reads .yaml, "
                    ".yml, .json and .jsonl.",
                    fix="Rename the file, or convert it to one of those formats.",
                )
            dataset = kind.from_file(path, custom_evaluator_types=types)
            if name:
                dataset.name = name
            return dataset
        return kind.from_dict(
            {"name": name or "cases", "cases": list(source)}, custom_evaluator_types=types
        )
    except ConfigurationError:
        raise
    except (ValidationError, ValueError, TypeError, KeyError, OSError, ExceptionGroup) as exc:
        inner = _inner_fix(exc)
        raise ConfigurationError(
            f"Cannot read the dataset from {where}: {_problem(exc)}",
            fix=inner
            or "Each case needs `inputs` (a string, or `messages` with optional "
            "`decisions`, `approvals`, `config`); evaluators are written `Name`, "
            "`Name: value` or `Name: {keyword: value}` (see podium.eval).",
        ) from exc
