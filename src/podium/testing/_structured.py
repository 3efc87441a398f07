"""Structured output for `ScriptedChatModel`: schemas, parsing and validation.

A schema is a pydantic model class, a `TypedDict` class, or a JSON-schema dict (also
accepted in OpenAI function / tool form). Pydantic and `TypedDict` values are validated
by pydantic. JSON-schema dicts are checked by a small built-in validator (podium.testing
must not depend on `jsonschema`); it understands `type`, `enum`, `const`, `properties`,
`required`, `additionalProperties`, `items`, `anyOf`, `oneOf`, `allOf` and local
`$ref`s (`#/$defs/...`, `#/definitions/...`), and ignores other keywords.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.messages import AIMessage
from langchain_core.utils.function_calling import convert_to_json_schema
from pydantic import BaseModel, PydanticUserError, TypeAdapter, ValidationError
from typing_extensions import is_typeddict

from podium.testing._errors import ScriptedOutputError

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list, tuple),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


@dataclass(frozen=True)
class OutputSchema:
    """A structured-output schema normalised for parsing and validation.

    Attributes:
        name: The schema's name (class name, or the JSON schema's `title`/`name`).
        json_schema: The schema as a JSON schema (object parameters).
        kind: Which validator applies.
        model: The pydantic model class when `kind == "pydantic"`.
        adapter: A pydantic adapter for a `TypedDict` schema, if pydantic accepts it.
    """

    name: str
    json_schema: dict[str, Any]
    kind: Literal["pydantic", "typeddict", "json_schema"]
    model: type[BaseModel] | None = None
    adapter: TypeAdapter[Any] | None = None

    @classmethod
    def from_schema(cls, schema: dict[str, Any] | type) -> OutputSchema:
        """Normalise a schema given to `with_structured_output`.

        Args:
            schema: A pydantic model class, a `TypedDict` class, or a JSON-schema
                dict (plain, OpenAI function form, or OpenAI tool form).

        Returns:
            The normalised schema.

        Raises:
            TypeError: If `schema` is none of the supported kinds.
        """
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            return cls(schema.__name__, schema.model_json_schema(), "pydantic", model=schema)
        if isinstance(schema, type) and is_typeddict(schema):
            try:
                adapter: TypeAdapter[Any] | None = TypeAdapter(schema)
            except PydanticUserError:  # e.g. typing.TypedDict on Python < 3.12
                adapter = None
            return cls(
                schema.__name__, convert_to_json_schema(schema), "typeddict", adapter=adapter
            )
        if isinstance(schema, dict):
            spec: dict[str, Any] = schema
            if isinstance(spec.get("function"), dict):  # OpenAI tool form
                spec = spec["function"]
            if "parameters" in spec and "name" in spec:  # OpenAI function form
                return cls(str(spec["name"]), dict(spec["parameters"]), "json_schema")
            name = spec.get("title") or spec.get("name") or "output"
            return cls(str(name), dict(spec), "json_schema")
        msg = (
            f"ScriptedChatModel.with_structured_output got an unsupported schema "
            f"{schema!r}. Pass a pydantic model class, a TypedDict class, or a "
            f"JSON-schema dict."
        )
        raise TypeError(msg)

    @property
    def tool_definition(self) -> dict[str, Any]:
        """The schema as an OpenAI-format tool, for `method="function_calling"`."""
        return {"type": "function", "function": {"name": self.name, "parameters": self.json_schema}}

    def validate(self, value: Any) -> Any:
        """Validate a parsed value against the schema.

        Args:
            value: The decoded JSON value or tool-call args.

        Returns:
            A model instance for pydantic schemas, else the (validated) value.

        Raises:
            ValueError: If the value does not match the schema (pydantic's
                `ValidationError` is a `ValueError`).
        """
        if self.model is not None:
            return self.model.model_validate(value)
        if self.adapter is not None:
            return self.adapter.validate_python(value)
        errors = _json_schema_errors(value, self.json_schema, self.json_schema, "$")
        if errors:
            raise ValueError("; ".join(errors))
        return value


def parse_structured(
    message: AIMessage, schema: OutputSchema, describe: Callable[[AIMessage], str]
) -> Any:
    """Turn a scripted reply into a structured value.

    The first tool call's args are used if the reply has tool calls; otherwise the
    reply's text is decoded as JSON (a surrounding Markdown code fence is allowed).

    Args:
        message: The reply returned by the scripted model.
        schema: The requested schema.
        describe: Names the reply for error messages (its script step).

    Returns:
        The validated value (a model instance for pydantic schemas).

    Raises:
        ScriptedOutputError: If decoding or validation fails.
    """
    expected = (
        f"Expected a reply whose first tool call has args matching {schema.name!r}, or whose "
        f"content is a JSON object matching it. Schema: {_short(json.dumps(schema.json_schema))}"
    )
    if message.tool_calls:
        call = message.tool_calls[0]
        value: Any = call["args"]
        source = f"the args of its tool call {call['name']!r}"
    else:
        text = message.text
        try:
            value = json.loads(_strip_fence(text))
        except json.JSONDecodeError as exc:
            msg = (
                f"{describe(message)} cannot be used as structured output {schema.name!r}: "
                f"step 'parse JSON' failed, its content is not valid JSON ({exc}). "
                f"Content: {_short(text)!r}. {expected}"
            )
            raise ScriptedOutputError(msg, llm_output=text) from exc
        source = "its JSON content"
    try:
        return schema.validate(value)
    except (ValidationError, ValueError) as exc:
        msg = (
            f"{describe(message)} cannot be used as structured output {schema.name!r}: "
            f"step 'validate' failed, {source} do not match the schema: {exc}. "
            f"Value: {_short(json.dumps(value, default=str))}. {expected}"
        )
        raise ScriptedOutputError(msg, llm_output=message.text) from exc


def _strip_fence(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```") and len(stripped) >= 6:
        body = stripped[3:-3]
        first_line, _, rest = body.partition("\n")
        return rest if first_line.strip().isalpha() or not first_line.strip() else body
    return stripped


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _json_schema_errors(value: Any, schema: Any, root: dict[str, Any], path: str) -> list[str]:
    """Check `value` against the supported subset of JSON Schema; return error texts."""
    if not isinstance(schema, dict):
        return []  # `true` / unknown forms accept everything
    if "$ref" in schema:
        return _json_schema_errors(value, _resolve_ref(schema["$ref"], root), root, path)
    errors: list[str] = []
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_is_json_type(value, name) for name in names):
            return [f"{path}: expected {' or '.join(names)}, got {type(value).__name__} {value!r}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: expected one of {schema['enum']!r}, got {value!r}")
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: expected {schema['const']!r}, got {value!r}")
    if isinstance(value, dict):
        errors += _object_errors(value, schema, root, path)
    if isinstance(value, list | tuple) and "items" in schema:
        for i, item in enumerate(value):
            errors += _json_schema_errors(item, schema["items"], root, f"{path}[{i}]")
    for sub in schema.get("allOf", []):
        errors += _json_schema_errors(value, sub, root, path)
    for keyword, want_one in (("anyOf", False), ("oneOf", True)):
        if keyword in schema:
            matches = sum(
                not _json_schema_errors(value, sub, root, path) for sub in schema[keyword]
            )
            if matches == 0 or (want_one and matches > 1):
                errors.append(f"{path}: {value!r} matches {matches} of the {keyword} alternatives")
    return errors


def _object_errors(
    value: dict[str, Any], schema: dict[str, Any], root: dict[str, Any], path: str
) -> list[str]:
    properties: dict[str, Any] = schema.get("properties", {})
    errors = [
        f"{path}: missing required field {key!r}"
        for key in schema.get("required", [])
        if key not in value
    ]
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            errors += _json_schema_errors(item, properties[key], root, f"{path}.{key}")
        elif extra is False:
            errors.append(f"{path}: unexpected field {key!r} (allowed: {sorted(properties)})")
        else:
            errors += _json_schema_errors(item, extra, root, f"{path}.{key}")
    return errors


def _is_json_type(value: Any, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    if name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _JSON_TYPES.get(name, (object,)))


def _resolve_ref(ref: str, root: dict[str, Any]) -> Any:
    if not ref.startswith("#/"):
        return {}  # remote references are not supported; accept
    node: Any = root
    for part in ref[2:].split("/"):
        node = (
            node.get(part.replace("~1", "/").replace("~0", "~"), {})
            if isinstance(node, dict)
            else {}
        )
    return node
