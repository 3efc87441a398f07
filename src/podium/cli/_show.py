"""How the CLI shows a pending request, with the exact commands that decide it.

Standard library and rich only: the read-only commands use it without LangGraph.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

__all__ = ["program", "show_request"]


def program() -> str:
    """How the user invoked podium, for commands we print (``podium`` or a venv path)."""
    invoked = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("podium")
    if invoked.name != "podium" or "/" not in sys.argv[0]:
        return "podium"
    try:
        return str(invoked.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(invoked)


def show_request(console: Console, thread: str, request: dict[str, Any], extra: list[str]) -> None:
    """Print a pending request (its JSON form) and the commands that decide it."""
    opts = " ".join(shlex.quote(x) for x in extra)
    rid = request.get("id")
    base = f"{program()} {{verb}} {shlex.quote(thread)} {rid}" + (f" {opts}" if opts else "")
    kind = request.get("kind")
    console.print(
        f"\n[bold yellow]waiting for a human[/] ({kind}) request [bold]{rid}[/]", highlight=False
    )
    args = json.dumps(request.get("args"))
    console.print(
        f"  {request.get('agent')} wants {request.get('tool')}({args})",
        highlight=False,
        markup=False,
    )
    if request.get("reason"):
        console.print(
            f"  reason: {request['reason']} (risk: {request.get('risk')})",
            highlight=False,
            markup=False,
        )
    if request.get("note"):
        console.print(f"  note: {request['note']}", highlight=False, markup=False)
    user = os.environ.get("USER") or "you"
    lines = [
        ("approve", base.format(verb="approve") + f" --by {user}"),
        ("edit", base.format(verb="approve") + f" --edit {shlex.quote(args)} --by {user}"),
        ("reject", base.format(verb="reject") + f" --reason 'not now' --by {user}"),
        ("respond", base.format(verb="respond") + f" --message '...' --by {user}"),
    ]
    for label, command in lines:
        console.print(f"  {label:<8}{command}", highlight=False, markup=False)
