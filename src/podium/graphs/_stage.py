"""Pipeline stages: :class:`Stage`, :class:`StageInput` and :class:`Rework`.

A stage receives a :class:`StageInput`; a validating stage returns :class:`Rework` to
send work back to an earlier one.

Stage outputs travel through checkpoints, so they are stored as JSON values: a
pydantic output is stored as ``model_dump(mode="json")`` and re-validated into the
stage's ``output`` model whenever a later stage reads it.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NotRequired

from langchain_core.messages import AnyMessage, HumanMessage
from langgraph.graph import StateGraph
from langgraph.pregel import Pregel
from pydantic import BaseModel, ValidationError
from typing_extensions import TypedDict

from podium.agents import Agent
from podium.agents._budget import UsageChannel
from podium.agents._spec import validate_name
from podium.checkpoints._messages import Messages
from podium.errors import ConfigurationError, InvalidModelOutputError
from podium.graphs._joins import strip_fences
from podium.tools import Policy

__all__ = [
    "PipelineState",
    "Rework",
    "Stage",
    "StageInput",
    "StageRecord",
    "check_output",
    "check_stages",
    "find_rework",
    "invalid_output",
    "parse_answer",
    "problems",
    "render",
    "stage_prompt",
    "to_json_value",
    "typed",
]


class Rework(BaseModel):
    """Send work back to an earlier stage, with feedback for it.

    Return it from a function stage, or give a stage's ``output`` model a field
    ``rework: Rework | None = None`` so an agent stage can ask for rework in its
    JSON answer. The target stage runs again with ``feedback`` (then every stage
    after it); a pipeline allows ``max_rework`` of these per run.

    Example:
        >>> Rework(to="research", feedback="Cite at least two sources.").to
        'research'
    """

    to: str
    """The earlier stage to run again."""
    feedback: str = ""
    """What to fix; the target stage receives it."""


@dataclass(frozen=True)
class StageInput:
    """What a function stage receives (an agent stage gets the same as a prompt)."""

    request: str
    """The user's latest message (as a human edited it, for a first action stage)."""
    messages: list[AnyMessage]
    """The conversation so far."""
    outputs: dict[str, Any]
    """Outputs of the earlier stages this run, by stage name; a stage with an
    ``output`` model gives an instance of it, others their JSON value."""
    previous: Any = None
    """The output of the stage just before (``None`` for the first stage); for an
    action stage, what it acts on, after any human edit."""
    feedback: str | None = None
    """Feedback from a later stage that sent work back here (``None`` otherwise)."""


class StageRecord(TypedDict):
    """One entry of a pipeline's ``stage_log``."""

    stage: str
    """The stage."""
    status: Literal["done", "skipped", "rework"]
    """``done``; ``skipped`` (a human rejected or answered its gate); or ``rework``
    (it sent work back)."""
    detail: dict[str, Any]
    """The decision, the rework request, or the attempts an agent needed."""


def _merge(current: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    return {**current, **update}


def _append(current: list[StageRecord], update: list[StageRecord]) -> list[StageRecord]:
    return [*current, *update]


class PipelineState(TypedDict):
    """State of a pipeline graph."""

    messages: Messages
    """The conversation: the user's turns and the pipeline's answers."""
    stage_outputs: NotRequired[Annotated[dict[str, Any], _merge]]
    """This run's output per stage, as JSON values."""
    stage_log: NotRequired[Annotated[list[StageRecord], _append]]
    """What happened at each stage this run, in order."""
    rework: NotRequired[dict[str, str] | None]
    """A pending rework: ``to``, ``feedback``, ``by`` (the asking stage), ``turn``."""
    reworks: NotRequired[int]
    """Reworks used this run."""
    usage: NotRequired[UsageChannel]
    """What the run used, every agent stage's calls included."""


StageRunner = Agent | StateGraph[Any, Any, Any, Any] | Pregel[Any, Any, Any, Any]


@dataclass(frozen=True)
class Stage:
    """One step of a pipeline: an agent, a pattern graph, or a function.

    Example:
        >>> from pydantic import BaseModel
        >>> class Plan(BaseModel):
        ...     steps: list[str]
        >>> Stage("plan", lambda inp: Plan(steps=["a", "b"]), output=Plan).name
        'plan'
    """

    name: str
    """Unique within the pipeline; names the node and keys ``stage_outputs``."""
    run: StageRunner | Callable[[StageInput], Any]
    """An :class:`~podium.Agent` or pattern graph (it gets the conversation plus the
    earlier outputs, and its final answer is the output), or a function
    ``StageInput -> output`` (sync, or async under ``ainvoke``) returning a dict,
    a pydantic model, a str, or a :class:`Rework`."""
    output: type[BaseModel] | None = None
    """The output's type. An agent's answer must then be JSON that validates
    against it (invalid answers are sent back with the errors, ``retries`` times,
    then :class:`~podium.errors.InvalidModelOutputError`); a function's return value
    must validate too."""
    action: bool = False
    """Acts on the world: a human approves (or edits, or rejects) its input before it
    runs, bound in the approval ledger so it never runs without a decision."""
    rework_to: Sequence[str] | str = field(default=(), kw_only=True)
    """Earlier stages this stage may send work back to (checked at build time and
    drawn); empty allows any earlier stage, checked when it happens."""
    retries: int = field(default=2, kw_only=True)
    """For an agent stage with ``output``: how many times an invalid answer is sent
    back before the run fails."""

    def __post_init__(self) -> None:
        """Validate the fields; normalise ``rework_to`` to a tuple."""
        validate_name(self.name, "stage")
        targets = (self.rework_to,) if isinstance(self.rework_to, str) else tuple(self.rework_to)
        object.__setattr__(self, "rework_to", targets)
        self._check()

    def _check(self) -> None:
        run = self.run
        if isinstance(run, Agent | StateGraph | Pregel):
            pass
        elif not callable(run):
            raise ConfigurationError(
                f"Stage {self.name!r}: run={run!r} is not an Agent, a graph or a function.",
                fix="Pass an Agent, a podium graph, or a function StageInput -> output.",
            )
        elif not _takes_one_argument(run):
            raise ConfigurationError(
                f"Stage {self.name!r}: its function must take one argument (a StageInput).",
                fix=f"Define it as def {self.name}(inp: StageInput) -> ...",
            )
        if self.output is not None and not (
            isinstance(self.output, type) and issubclass(self.output, BaseModel)
        ):
            raise ConfigurationError(
                f"Stage {self.name!r}: output={self.output!r} is not a pydantic model class.",
                fix="Pass a BaseModel subclass, or output=None for untyped output.",
            )
        if not isinstance(self.action, bool):
            raise ConfigurationError(f"Stage {self.name!r}: action must be True or False.")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ConfigurationError(
                f"Stage {self.name!r}: retries={self.retries!r}; it is a whole number >= 0.",
                fix="Pass retries=2 (the default).",
            )
        if not all(isinstance(t, str) for t in self.rework_to):
            raise ConfigurationError(f"Stage {self.name!r}: rework_to must name stages.")

    @property
    def is_member(self) -> bool:
        """Whether ``run`` is an Agent or a graph (rather than a function)."""
        return isinstance(self.run, Agent | StateGraph | Pregel)


def _takes_one_argument(func: Callable[..., Any]) -> bool:
    try:
        inspect.signature(func).bind(None)
    except TypeError:
        return False
    except ValueError:  # pragma: no cover - builtins without a signature
        return True
    return True


def to_json_value(value: Any, stage: str) -> Any:
    """A stage's output as a JSON value (pydantic models are dumped).

    Raises:
        ConfigurationError: If the value cannot be stored as JSON.
    """
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"Stage {stage!r} returned {type(value).__name__} {value!r:.60}, which cannot be "
            f"stored in a checkpoint ({exc}).",
            fix="Return a pydantic model, a dict/list of JSON values, a str or a number.",
        ) from exc
    return value


def typed(value: Any, model: type[BaseModel] | None) -> Any:
    """A stored output as its stage's model instance (or unchanged if untyped)."""
    if model is None or value is None or isinstance(value, model):
        return value
    return model.model_validate(value)


def check_output(value: Any, model: type[BaseModel] | None, stage: str) -> Any:
    """Validate a function stage's return value against ``model``; return it as JSON.

    Raises:
        ConfigurationError: If the value does not validate.
    """
    if model is not None and not isinstance(value, model):
        try:
            value = model.model_validate(value)
        except ValidationError as exc:
            raise ConfigurationError(
                f"Stage {stage!r} returned {value!r:.80}, which is not a valid "
                f"{model.__name__}: {exc.errors(include_url=False)}.",
                fix=f"Return a {model.__name__} instance, or a dict that validates as one.",
            ) from exc
    return to_json_value(value, stage)


def parse_answer(text: str, model: type[BaseModel]) -> BaseModel:
    """Parse an agent's final answer as JSON into ``model`` (code fences allowed).

    Raises:
        ValidationError: If it is not JSON or does not match the model.
    """
    return model.model_validate_json(strip_fences(text))


def find_rework(value: Any) -> Rework | None:
    """The rework a stage asked for: a :class:`Rework`, or a model's ``rework`` field."""
    if isinstance(value, Rework):
        return value
    found = getattr(value, "rework", None) if isinstance(value, BaseModel) else None
    return found if isinstance(found, Rework) else None


def render(value: Any) -> str:
    """A stage output as text for a prompt or the final message."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return value if isinstance(value, str) else json.dumps(value, indent=2)


def problems(exc: ValidationError) -> str:
    """A validation error as one line: ``loc: message; ...``."""
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors()
    )


def stage_prompt(stage: Stage, inp: StageInput, *, edited_request: bool) -> list[AnyMessage]:
    """What an agent or graph stage receives.

    The conversation, plus a note with the earlier outputs, any rework feedback, and
    the output schema.
    """
    parts = []
    if edited_request:
        parts.append(f"The request, as a human approved it: {inp.request}")
    if inp.outputs:
        listing = "\n\n".join(f"## {n}\n{render(v)}" for n, v in inp.outputs.items())
        parts.append(f"Outputs of the earlier stages:\n\n{listing}")
    if inp.feedback:
        parts.append(f"A later stage sent this work back to you. Feedback: {inp.feedback}")
    if stage.output is not None:
        schema = json.dumps(stage.output.model_json_schema())
        parts.append(f"Reply with only a JSON object that matches this JSON schema: {schema}")
    if not parts:
        return list(inp.messages)
    note = f"You are the {stage.name!r} stage of a pipeline.\n\n" + "\n\n".join(parts)
    return [*inp.messages, HumanMessage(note)]


def invalid_output(stage: Stage, text: str, problem: str) -> InvalidModelOutputError:
    """The error for an agent stage whose answers never validated."""
    model = stage.output.__name__ if stage.output else "its output"
    return InvalidModelOutputError(
        f"Stage {stage.name!r}: the answer did not validate as {model} after "
        f"{stage.retries + 1} attempt(s). Last problem: {problem}. Last answer: {text!r:.200}",
        fix="Tighten the agent's instructions, raise Stage(retries=...), or use a model "
        "that follows JSON schemas.",
    )


def check_stages(stages: Sequence[Stage], max_rework: int, policy: object) -> None:
    """Build-time checks of a pipeline's stages and options.

    Raises:
        ConfigurationError: Saying what is wrong and how to fix it.
    """
    if not stages:
        raise ConfigurationError(
            "No stages given; a pipeline needs at least one Stage.",
            fix='Pass stages=[Stage("research", agent), Stage("write", writer)].',
        )
    names = [s.name if isinstance(s, Stage) else None for s in stages]
    seen: list[str] = []
    for stage in stages:
        if not isinstance(stage, Stage):
            raise ConfigurationError(
                f"Pipeline stages must be Stage objects, got {stage!r:.60}.",
                fix='Wrap it: Stage("name", run=agent_or_graph_or_function).',
            )
        if stage.name in seen:
            raise ConfigurationError(
                f"Two stages are named {stage.name!r}; stage names must be unique.",
                fix="Rename one of them.",
            )
        for target in stage.rework_to:
            if target not in seen:
                where = "is not an earlier stage" if target != stage.name else "is the stage itself"
                raise ConfigurationError(
                    f"Stage {stage.name!r} may send work back to {target!r}, which "
                    f"{where if target in names else 'does not exist'}; rework goes to an "
                    f"earlier stage: {', '.join(seen) or '(none)'}.",
                    fix="Name an earlier stage in rework_to=..., or reorder the stages.",
                )
        seen.append(stage.name)
    if isinstance(max_rework, bool) or not isinstance(max_rework, int) or max_rework < 0:
        raise ConfigurationError(
            f"max_rework={max_rework!r} is not allowed; it is a whole number >= 0.",
            fix="Pass max_rework=2 (the default), or 0 to forbid rework.",
        )
    if policy is not None and not isinstance(policy, Policy):
        raise ConfigurationError(
            f"policy must be a podium Policy, got {type(policy).__name__}.",
            fix="Pass Policy(rules=[Rule(...)]).",
        )
