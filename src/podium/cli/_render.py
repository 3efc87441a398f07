"""How the CLI shows messages as they happen, and as JSON for scripts."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from podium.tools import ApprovalRequest

__all__ = ["describe", "jsonable"]


def describe(message: BaseMessage) -> str | None:
    """One line for a message in a run's progress."""
    if isinstance(message, AIMessage):
        who = message.name or "agent"
        if message.tool_calls:
            calls = ", ".join(f"{c['name']}({json.dumps(c['args'])})" for c in message.tool_calls)
            return f"[{who}] calls {calls}"
        if message.invalid_tool_calls:
            return f"[{who}] made an unparseable tool call"
        return f"[{who}] {message.text}"
    if isinstance(message, ToolMessage):
        marker = " (refused or failed)" if message.status == "error" else ""
        return f"  [{message.name}]{marker} {message.text}"
    if isinstance(message, HumanMessage):
        return f"> {message.text}"
    return None


def jsonable(value: Any) -> Any:
    """Messages and requests as JSON-friendly data."""
    if isinstance(value, BaseMessage):
        data: dict[str, Any] = {"type": value.type, "content": value.content}
        if getattr(value, "name", None):
            data["name"] = value.name
        if isinstance(value, AIMessage) and value.tool_calls:
            data["tool_calls"] = [{"name": c["name"], "args": c["args"]} for c in value.tool_calls]
        if isinstance(value, ToolMessage):
            data["status"] = value.status
        return data
    if isinstance(value, ApprovalRequest):
        return value.to_json()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
