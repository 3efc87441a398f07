"""JSON tool calling for models without reliable native tool calls.

The model is asked for one JSON object ``{"tool": <name>, "args": {...}}`` that must
match a JSON schema: a union of one branch per granted tool (its argument schema)
plus a ``final_answer`` branch. Servers that enforce ``response_format`` by grammar
(llama.cpp, vLLM) make even a 0.5B model emit a well-formed choice; the arguments
are still the model's own and are validated by the governed executor like any other
call. The choice is turned into a standard ``AIMessage.tool_calls`` entry, so
everything downstream is identical to native tool calling.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.tool import ToolCall, invalid_tool_call, tool_call
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_core.utils.json_schema import dereference_refs
from pydantic import BaseModel

__all__ = [
    "CALLS",
    "FINAL_ANSWER",
    "NEXT_STEP",
    "answer_schema",
    "choice_response_format",
    "parse_choice",
    "render_for_json",
    "repeated_call",
]

FINAL_ANSWER = "final_answer"
"""The reserved choice that ends the agent's turn with ``args.answer`` as its reply."""

CALLS = "calls"
"""The key of a reply holding several tool calls: ``{"calls": [{"tool", "args"}, ...]}``."""

NEXT_STEP = "Next step:"
"""A tool result whose last line contains this states its own next step; the
generic "now reply with final_answer" cue is then left out (when it is the only
result of its turn), so a tool in a multi-step procedure can lead a small model to
the step after it."""


def _args_schema(tool: BaseTool) -> dict[str, Any]:
    params: dict[str, Any] = dict(convert_to_openai_tool(tool)["function"].get("parameters", {}))
    params.setdefault("type", "object")
    params.setdefault("properties", {})
    params["additionalProperties"] = False
    return params


def _closed(schema: Any) -> Any:
    """``schema`` with ``additionalProperties: false`` on every object that lists properties."""
    if isinstance(schema, list):
        return [_closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _closed(v) for k, v in schema.items()}
    if "properties" in out:
        out.setdefault("additionalProperties", False)
    return out


def answer_schema(output: type[BaseModel] | None) -> dict[str, Any]:
    """The JSON schema of a final answer: a string, or an ``output`` model's object.

    References are inlined and objects closed (no extra keys), so a grammar-enforcing
    server constrains the answer to exactly the model's shape.
    """
    if output is None:
        return {"type": "string"}
    schema = dereference_refs(output.model_json_schema())
    schema.pop("$defs", None)
    closed: dict[str, Any] = _closed(schema)
    return closed


def _calls_allowed(tools: Sequence[BaseTool], parallel: bool) -> int:
    """How many calls one reply may hold: several only when asked for and useful."""
    return len(tools) if parallel and len(tools) > 1 else 1


def choice_response_format(
    tools: Sequence[BaseTool],
    output: type[BaseModel] | None = None,
    *,
    parallel: bool = False,
) -> dict[str, Any]:
    """Build the ``response_format`` that constrains a reply to one tool choice.

    Args:
        tools: The tools the agent may call.
        output: The final answer's pydantic model (``None``: the answer is text).
        parallel: Also accept ``{"calls": [choice, ...]}``: several tool calls in one
            reply (two up to one per tool), which run in parallel.

    Returns:
        An OpenAI ``response_format`` of type ``json_schema``.
    """
    calls: list[dict[str, Any]] = [
        {
            "type": "object",
            "properties": {"tool": {"const": t.name}, "args": _args_schema(t)},
            "required": ["tool", "args"],
            "additionalProperties": False,
        }
        for t in tools
    ]
    branches = list(calls)
    most = _calls_allowed(tools, parallel)
    if most > 1:
        branches.append(
            {
                "type": "object",
                "properties": {
                    CALLS: {
                        "type": "array",
                        "items": {"anyOf": calls},
                        "minItems": 2,
                        "maxItems": most,
                    }
                },
                "required": [CALLS],
                "additionalProperties": False,
            }
        )
    branches.append(
        {
            "type": "object",
            "properties": {
                "tool": {"const": FINAL_ANSWER},
                "args": {
                    "type": "object",
                    "properties": {"answer": answer_schema(output)},
                    "required": ["answer"],
                    "additionalProperties": False,
                },
            },
            "required": ["tool", "args"],
            "additionalProperties": False,
        }
    )
    schema: dict[str, Any] = branches[0] if len(branches) == 1 else {"anyOf": branches}
    return {
        "type": "json_schema",
        "json_schema": {"name": "choice", "schema": schema, "strict": True},
    }


def _sketch(schema: Any) -> str:
    """A compact picture of a JSON schema for the prompt: enums listed, objects opened."""
    if not isinstance(schema, dict):
        return "value"
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    if "anyOf" in schema:
        return " | ".join(_sketch(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"[{_sketch(schema.get('items'))}, ...]"
    if "properties" in schema:
        fields = ", ".join(f'"{k}": {_sketch(v)}' for k, v in schema["properties"].items())
        return f"{{{fields}}}"
    return str(schema.get("type", "value"))


def _catalogue(tools: Sequence[BaseTool], output: type[BaseModel] | None) -> str:
    lines = []
    for t in tools:
        lines.append(f"- {t.name}: {t.description.strip()} Args: {_sketch(_args_schema(t))}")
    answer = _sketch({"properties": {"answer": answer_schema(output)}})
    lines.append(f"- {FINAL_ANSWER}: reply to the user and finish. Args: {answer}")
    return "\n".join(lines)


def render_for_json(
    instructions: str,
    messages: Sequence[BaseMessage],
    tools: Sequence[BaseTool],
    output: type[BaseModel] | None = None,
    *,
    parallel: bool = False,
) -> list[BaseMessage]:
    """Render a conversation as plain chat turns for a JSON-choice model call.

    Tool calls become the assistant's JSON choices and tool results become user turns,
    so chat templates without tool support (and small models) see a simple dialogue.
    Each result ends with a cue to answer now, unless its last line states its own
    next step (:data:`NEXT_STEP`).

    Args:
        instructions: The agent's system prompt.
        messages: The conversation so far (standard LangChain messages).
        tools: The tools the agent may call.
        output: The final answer's pydantic model (``None``: the answer is text).
        parallel: The reply may hold several calls (see :func:`choice_response_format`).

    Returns:
        Messages to send to the model.
    """
    several = _calls_allowed(tools, parallel) > 1
    shape = (
        'one JSON object. To call several tools at once: {"calls": [{"tool": <name>, '
        '"args": {...}}, ...]}. To call one tool: {"tool": <name>, "args": {...}}'
        if several
        else 'one JSON object {"tool": <name>, "args": {...}}'
    )
    system = (f"{instructions.strip()}\n\n" if instructions.strip() else "") + (
        f"You act by replying with {shape}.\n"
        f"Choices:\n{_catalogue(tools, output)}\n"
        "Call a tool when you need information or an action; when you have what the user "
        f"needs, choose {FINAL_ANSWER} and put the full reply in answer, using the tool "
        "results."
    )
    out: list[BaseMessage] = [SystemMessage(system)]
    results: list[ToolMessage] = []
    for m in messages:
        if isinstance(m, ToolMessage):
            results.append(m)  # consecutive results become one turn
            continue
        if results:
            out.append(HumanMessage(_render_results(results)))
            results = []
        if isinstance(m, SystemMessage):
            continue
        if isinstance(m, AIMessage):
            out.append(AIMessage(_render_reply(m, output, several)))
        else:
            out.append(HumanMessage(m.text))
    if results:
        out.append(HumanMessage(_render_results(results)))
    return out


def _render_reply(m: AIMessage, output: type[BaseModel] | None, several: bool) -> str:
    """An assistant turn as the JSON choice it was (or would have been)."""
    if m.tool_calls or m.invalid_tool_calls:
        choices = [{"tool": c["name"], "args": c["args"]} for c in m.tool_calls]
        if several and len(choices) > 1 and not m.invalid_tool_calls:
            return json.dumps({CALLS: choices})
        parts = [json.dumps(c) for c in choices]
        parts += [str(c.get("args") or "") for c in m.invalid_tool_calls]
        return "\n".join(parts)
    answer: Any = m.text
    if output is not None:  # a typed answer is shown as the object it was
        with contextlib.suppress(json.JSONDecodeError):
            answer = json.loads(m.text)
    return json.dumps({"tool": FINAL_ANSWER, "args": {"answer": answer}})


_NEXT = (
    f'Now reply to the user with {{"tool": "{FINAL_ANSWER}", "args": {{"answer": "..."}}}}, '
    "using the facts above, unless you need a different tool call."
)


def _render_results(results: Sequence[ToolMessage]) -> str:
    """Tool results as one user turn, ending with one cue for the next step.

    An error asks for a fixed call; a lone result whose last line states its own
    next step (:data:`NEXT_STEP`) keeps it; otherwise -- several results included --
    the turn ends with :data:`_NEXT`.
    """
    parts: list[str] = []
    cue = _NEXT
    for m in results:
        label = m.name or "tool"
        if m.status == "error":
            parts.append(f"Tool error ({label}): {m.text.removeprefix('Error: ')}")
            cue = f"Fix the call and try again, or reply with {FINAL_ANSWER}."
        else:
            parts.append(f"Tool result ({label}): {m.text}")
    own = len(results) == 1 and NEXT_STEP in results[0].text.rstrip().rsplit("\n", 1)[-1]
    if own and results[0].status != "error":
        cue = ""
    return "\n\n".join([*parts, cue] if cue else parts)


def repeated_call(messages: Sequence[BaseMessage]) -> bool:
    """Whether the latest tool call repeats one already answered in this turn.

    Used to force a final answer in JSON mode: a small model that asks the same
    question twice has the answer in front of it.
    """
    seen: list[tuple[str, str]] = []
    latest: list[tuple[str, str]] = []
    for m in messages:
        if isinstance(m, HumanMessage):
            seen, latest = [], []
        elif isinstance(m, AIMessage) and m.tool_calls:
            seen.extend(latest)
            latest = [(c["name"], json.dumps(c["args"], sort_keys=True)) for c in m.tool_calls]
    return bool(latest) and all(c in seen for c in latest)


def parse_choice(reply: AIMessage) -> AIMessage:
    """Turn a JSON-choice reply into a standard ``AIMessage``.

    ``final_answer`` becomes plain content (a typed answer, an object, as its JSON
    text); a tool choice becomes one entry of ``tool_calls``, and ``{"calls": [...]}``
    one entry per choice (a ``final_answer`` among them is an error); anything
    unparseable becomes an ``invalid_tool_calls`` entry, which the executor answers
    with an error so the model can try again.

    Args:
        reply: The raw reply whose content is the JSON choice.

    Returns:
        The standard message (usage metadata and id preserved).
    """
    raw = reply.text.strip()
    base_id = reply.id or f"run-{uuid.uuid4().hex}"
    call_id = f"call_{base_id}"
    keep: dict[str, Any] = {
        "id": reply.id,
        "usage_metadata": reply.usage_metadata,
        "response_metadata": reply.response_metadata,
    }
    if reply.tool_calls:  # a model that used native tool calls anyway
        return reply
    error: str
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        error = f"The reply is not valid JSON ({exc.msg} at position {exc.pos})."
    else:
        if isinstance(data, dict) and set(data) == {CALLS}:
            calls, error = _several(data[CALLS], call_id)
            if calls:
                return AIMessage(content="", tool_calls=calls, **keep)
        elif isinstance(data, dict) and isinstance(data.get("tool"), str):
            args = data.get("args", {})
            if not isinstance(args, dict):
                error = f"'args' must be a JSON object, got {type(args).__name__}."
            elif data["tool"] == FINAL_ANSWER:
                answer = args.get("answer", args)
                return AIMessage(
                    content=answer if isinstance(answer, str) else json.dumps(answer), **keep
                )
            else:
                return AIMessage(
                    content="",
                    tool_calls=[tool_call(name=data["tool"], args=args, id=call_id)],
                    **keep,
                )
        else:
            error = 'The reply must be an object like {"tool": "<name>", "args": {...}}.'
    return AIMessage(
        content=raw,
        invalid_tool_calls=[invalid_tool_call(name=None, args=raw, id=call_id, error=error)],
        **keep,
    )


def _several(items: object, call_id: str) -> tuple[list[ToolCall], str]:
    """The tool calls of a ``{"calls": [...]}`` reply, or ``[]`` and what is wrong."""
    if not isinstance(items, list) or not items:
        return [], f'\'{CALLS}\' must be a non-empty list of {{"tool", "args"}} objects.'
    calls: list[ToolCall] = []
    for i, item in enumerate(items):
        if not (
            isinstance(item, dict)
            and isinstance(item.get("tool"), str)
            and isinstance(item.get("args", {}), dict)
        ):
            return (
                [],
                f'\'{CALLS}\' item {i} is not an object like {{"tool": ..., "args": {{...}}}}.',
            )
        if item["tool"] == FINAL_ANSWER:
            return [], f"{FINAL_ANSWER} cannot be one of several calls; reply with it alone."
        calls.append(tool_call(name=item["tool"], args=item.get("args", {}), id=f"{call_id}_{i}"))
    return calls, ""
