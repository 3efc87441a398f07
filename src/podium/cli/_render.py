"""How the CLI shows runs.

Messages as they happen, approval requests with the exact commands that decide
them, and JSON for scripts.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from rich.console import Console

from podium.tools import ApprovalRequest

__all__ = ["describe", "program", "show_request"]


def program() -> str:
    """How the user invoked podium, for commands we print (``podium`` or a venv path)."""
    invoked = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("podium")
    if invoked.name != "podium" or "/" not in sys.argv[0]:
        return "podium"
    try:
        return str(invoked.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(invoked)


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


def show_request(console: Console, thread: str, request: ApprovalRequest, extra: list[str]) -> None:
    """Print a pending request and the commands that decide it."""
    prog = program()
    opts = " ".join(shlex.quote(x) for x in extra)
    base = f"{prog} {{verb}} {shlex.quote(thread)} {request.id}" + (f" {opts}" if opts else "")
    console.print(
        f"\n[bold yellow]waiting for a human[/] ({request.kind}) request [bold]{request.id}[/]",
        highlight=False,
    )
    console.print(
        f"  {request.agent} wants {request.tool}({json.dumps(request.args)})",
        highlight=False,
        markup=False,
    )
    if request.reason:
        console.print(
            f"  reason: {request.reason} (risk: {request.risk})", highlight=False, markup=False
        )
    if request.note:
        console.print(f"  note: {request.note}", highlight=False, markup=False)
    user = os.environ.get("USER") or "you"
    lines = [
        ("approve", base.format(verb="approve") + f" --by {user}"),
        (
            "edit",
            base.format(verb="approve")
            + f" --edit {shlex.quote(json.dumps(request.args))} --by {user}",
        ),
        ("reject", base.format(verb="reject") + f" --reason 'not now' --by {user}"),
        ("respond", base.format(verb="respond") + f" --message '...' --by {user}"),
    ]
    for label, command in lines:
        console.print(f"  {label:<8}{command}", highlight=False, markup=False)


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
