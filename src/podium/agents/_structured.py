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
from langchain_core.messages.tool import invalid_tool_call, tool_call
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

__all__ = [
    "FINAL_ANSWER",
    "choice_response_format",
    "parse_choice",
    "render_for_json",
    "repeated_call",
]

FINAL_ANSWER = "final_answer"
"""The reserved choice that ends the agent's turn with ``args.answer`` as its reply."""


def _args_schema(tool: BaseTool) -> dict[str, Any]:
    params: dict[str, Any] = dict(convert_to_openai_tool(tool)["function"].get("parameters", {}))
    params.setdefault("type", "object")
    params.setdefault("properties", {})
    params["additionalProperties"] = False
    return params


def choice_response_format(tools: Sequence[BaseTool]) -> dict[str, Any]:
    """Build the ``response_format`` that constrains a reply to one tool choice.

    Args:
        tools: The tools the agent may call.

    Returns:
        An OpenAI ``response_format`` of type ``json_schema``.
    """
    branches: list[dict[str, Any]] = [
        {
            "type": "object",
            "properties": {"tool": {"const": t.name}, "args": _args_schema(t)},
            "required": ["tool", "args"],
            "additionalProperties": False,
        }
        for t in tools
    ]
    branches.append(
        {
            "type": "object",
            "properties": {
                "tool": {"const": FINAL_ANSWER},
                "args": {
                    "type": "object",
                    "properties": {"answer": {"type": "string"}},
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


def _catalogue(tools: Sequence[BaseTool]) -> str:
    lines = []
    for t in tools:
        props = _args_schema(t).get("properties", {})
        args = ", ".join(f'"{k}": {v.get("type", "value")}' for k, v in props.items())
        lines.append(f"- {t.name}: {t.description.strip()} Args: {{{args}}}")
    lines.append(f'- {FINAL_ANSWER}: reply to the user and finish. Args: {{"answer": string}}')
    return "\n".join(lines)


def render_for_json(
    instructions: str, messages: Sequence[BaseMessage], tools: Sequence[BaseTool]
) -> list[BaseMessage]:
    """Render a conversation as plain chat turns for a JSON-choice model call.

    Tool calls become the assistant's JSON choices and tool results become user turns,
    so chat templates without tool support (and small models) see a simple dialogue.

    Args:
        instructions: The agent's system prompt.
        messages: The conversation so far (standard LangChain messages).
        tools: The tools the agent may call.

    Returns:
        Messages to send to the model.
    """
    system = (f"{instructions.strip()}\n\n" if instructions.strip() else "") + (
        'You act by replying with one JSON object {"tool": <name>, "args": {...}}.\n'
        f"Choices:\n{_catalogue(tools)}\n"
        "Call a tool when you need information or an action; when you have what the user "
        f"needs, choose {FINAL_ANSWER} and put the full reply in answer, using the tool "
        "results."
    )
    out: list[BaseMessage] = [SystemMessage(system)]
    for m in messages:
        if isinstance(m, SystemMessage):
            continue
        if isinstance(m, AIMessage):
            if m.tool_calls or m.invalid_tool_calls:
                parts = [json.dumps({"tool": c["name"], "args": c["args"]}) for c in m.tool_calls]
                parts += [str(c.get("args") or "") for c in m.invalid_tool_calls]
                out.append(AIMessage("\n".join(parts)))
            else:
                out.append(
                    AIMessage(json.dumps({"tool": FINAL_ANSWER, "args": {"answer": m.text}}))
                )
        elif isinstance(m, ToolMessage):
            out.append(HumanMessage(_render_result(m)))
        else:
            out.append(HumanMessage(m.text))
    return out


_NEXT = (
    f'Now reply to the user with {{"tool": "{FINAL_ANSWER}", "args": {{"answer": "..."}}}}, '
    "using the facts above, unless you need a different tool call."
)


def _render_result(m: ToolMessage) -> str:
    label = m.name or "tool"
    if m.status == "error":
        return (
            f"Tool error ({label}): {m.text.removeprefix('Error: ')}\n\nFix the call and "
            f"try again, or reply with {FINAL_ANSWER}."
        )
    return f"Tool result ({label}): {m.text}\n\n{_NEXT}"


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

    ``final_answer`` becomes plain content; a tool choice becomes one entry of
    ``tool_calls``; anything unparseable becomes an ``invalid_tool_calls`` entry,
    which the executor answers with an error so the model can try again.

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
        if isinstance(data, dict) and isinstance(data.get("tool"), str):
            args = data.get("args", {})
            if not isinstance(args, dict):
                error = f"'args' must be a JSON object, got {type(args).__name__}."
            elif data["tool"] == FINAL_ANSWER:
                answer = args.get("answer")
                return AIMessage(
                    content=answer if isinstance(answer, str) else json.dumps(args), **keep
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
