"""Grants and argument checks: the first stage of the governed executor.

A call runs only if its tool is granted to the calling agent and its arguments
validate against the tool's schema: extra arguments, non-finite numbers (NaN,
infinity) and booleans where another type is expected (pydantic would turn ``true``
into ``1.0``) are refused, and the validated arguments -- defaults filled in, values
coerced as the tool will receive them -- are what the policy sees and the tool gets.

Tools described by a pydantic model are validated by it. Tools described by a plain
JSON schema (MCP servers' tools) are validated by ``jsonschema`` against that
schema's own dialect (2020-12 unless it says otherwise), with the schema's top-level
defaults filled in; extra arguments are refused unless the schema explicitly allows
them (``additionalProperties`` true or a schema).
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Sequence
from typing import Any

import jsonschema
from jsonschema.protocols import Validator
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from pydantic import BaseModel, ValidationError

from podium.errors import ConfigurationError
from podium.tools._requests import ToolRequest

__all__ = ["Grants", "refusal"]


def refusal(call_id: str, name: str | None, code: str, text: str) -> ToolMessage:
    """A ``ToolMessage`` that tells the model its call was refused and did not run."""
    return ToolMessage(
        content=f"Error: {text}",
        tool_call_id=call_id,
        name=name or "unknown",
        status="error",
        artifact={"error": code, "executed": False},
    )


def _format_validation(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(arguments)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


_Schema = tuple[type[BaseModel] | None, dict[str, Any], Validator | None]


def _schema_of(t: BaseTool) -> _Schema:
    """The tool's pydantic model, JSON schema, and a validator for a plain JSON schema."""
    schema = t.tool_call_schema
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return schema, schema.model_json_schema(), None
    plain = dict(schema) if isinstance(schema, dict) else {}
    if not plain:
        return None, plain, None
    kind = jsonschema.validators.validator_for(plain, default=jsonschema.Draft202012Validator)
    try:
        kind.check_schema(plain)
    except jsonschema.SchemaError as exc:
        raise ConfigurationError(
            f"Tool {t.name!r} has an invalid JSON schema for its arguments: {exc.message} "
            f"(at {'/'.join(map(str, exc.path)) or 'the top'}).",
            fix="Fix the tool's schema (for an MCP tool: its server's inputSchema), or leave "
            "the tool out.",
        ) from None
    return None, plain, kind(plain)


def _json_problems(validator: Validator, args: dict[str, Any]) -> str:
    parts = []
    for err in sorted(validator.iter_errors(args), key=lambda e: list(map(str, e.path))):
        loc = ".".join(str(p) for p in err.path) or "(arguments)"
        parts.append(f"{loc}: {err.message}")
    return "; ".join(parts)


def _non_finite(value: Any, at: str = "") -> str | None:
    """The path of the first NaN or infinity in ``value`` (``None``: all finite)."""
    if isinstance(value, float) and not math.isfinite(value):
        return at or "(value)"
    if isinstance(value, dict):
        for k, v in value.items():
            found = _non_finite(v, f"{at}.{k}" if at else str(k))
            if found:
                return found
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            found = _non_finite(v, f"{at}[{i}]")
            if found:
                return found
    return None


class Grants:
    """One agent's grants and the checks every call of it passes before the policy.

    Args:
        agent: The calling agent's name (for messages).
        granted: The agent's tools: the only ones it may run.
        known: Names of every tool in the surrounding graph, so a call to another
            agent's tool is reported as *not granted* rather than *unknown*.
    """

    def __init__(
        self, agent: str, granted: Sequence[BaseTool], known: Collection[str] = ()
    ) -> None:
        self.agent = agent
        self.granted = {t.name: t for t in granted}
        self.known = frozenset(known) | frozenset(self.granted)
        self._schemas = {name: _schema_of(t) for name, t in self.granted.items()}

    def check(self, req: ToolRequest) -> ToolMessage | None:
        """Return a refusal for a call that must not run, else ``None``."""
        checked = self.checked(req)
        return checked if isinstance(checked, ToolMessage) else None

    def checked(self, req: ToolRequest) -> ToolMessage | dict[str, Any]:
        """A refusal, or the call's arguments validated and with defaults filled in."""
        name, call_id, args = req["name"], req["id"], req["args"]
        problem = req.get("problem")
        if problem == "invalid":
            return refusal(
                call_id,
                name,
                "invalid_tool_call",
                f"your tool call could not be parsed: {req.get('detail') or 'malformed'}. "
                f"Nothing was run. Call one of: {self._granted_list()}, with JSON object "
                "arguments.",
            )
        if problem == "duplicate_id":
            return refusal(
                call_id,
                name,
                "duplicate_tool_call_id",
                f"{req.get('detail') or 'several tool calls share this id'}; none of them was "
                "run. Give every tool call its own id and call again.",
            )
        if name is None or name not in self.granted:
            if name in self.known:
                return refusal(
                    call_id,
                    name,
                    "tool_not_granted",
                    f"agent {self.agent!r} is not allowed to call tool {name!r}; nothing was "
                    f"run. Tools granted to {self.agent!r}: {self._granted_list()}.",
                )
            return refusal(
                call_id,
                name,
                "unknown_tool",
                f"there is no tool named {name!r}; nothing was run. Available tools: "
                f"{self._granted_list()}.",
            )
        if not isinstance(args, dict):
            return refusal(
                call_id,
                name,
                "malformed_arguments",
                f"arguments for {name!r} must be a JSON object, got {type(args).__name__}; "
                "nothing was run.",
            )
        problem_text = self.validate(name, args)
        if isinstance(problem_text, tuple):
            code, text = problem_text
            return refusal(call_id, name, code, text)
        return problem_text

    def validate(self, name: str, args: dict[str, Any]) -> tuple[str, str] | dict[str, Any]:
        """``(code, message)`` for invalid arguments, else the validated arguments."""
        model, json_schema, validator = self._schemas[name]
        allowed = set(json_schema.get("properties", {}))
        extra = sorted(set(args) - allowed)
        if json_schema.get("additionalProperties", False) not in (False, None) and model is None:
            extra = []  # the schema takes arguments beyond its properties
        if extra:
            return (
                "unexpected_arguments",
                f"tool {name!r} does not take argument(s) {', '.join(map(repr, extra))}; "
                f"nothing was run. Its arguments are: {', '.join(sorted(allowed)) or 'none'}.",
            )
        if model is None:
            values: dict[str, Any] = dict(args)
            if validator is not None:
                for key, spec in json_schema.get("properties", {}).items():
                    if key not in values and isinstance(spec, dict) and "default" in spec:
                        values[key] = spec["default"]
                problems = _json_problems(validator, values)
                if problems:
                    return (
                        "malformed_arguments",
                        f"invalid arguments for {name!r}: {problems}; nothing was run. Expected "
                        f"schema: {json.dumps(json_schema.get('properties', {}))}.",
                    )
        else:
            try:
                validated = model.model_validate(args)
            except ValidationError as exc:
                return (
                    "malformed_arguments",
                    f"invalid arguments for {name!r}: {_format_validation(exc)}; nothing was "
                    f"run. Expected schema: {json.dumps(json_schema.get('properties', {}))}.",
                )
            values = validated.model_dump()
            coerced = sorted(
                k
                for k, v in args.items()
                if isinstance(v, bool) and not isinstance(values.get(k), bool)
            )
            if coerced:
                return (
                    "malformed_arguments",
                    f"argument(s) {', '.join(coerced)} of {name!r} got true/false where a "
                    "value of another type is expected; nothing was run.",
                )
        where_ = _non_finite(values)
        if where_ is not None:
            return (
                "malformed_arguments",
                f"argument {where_} of {name!r} is not a finite number (NaN or infinity); "
                "nothing was run. Send a finite number.",
            )
        if model is not None:
            values = validated.model_dump(mode="json")
        return values

    def _granted_list(self) -> str:
        return ", ".join(sorted(self.granted)) or "(none)"
