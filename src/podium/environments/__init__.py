"""Governed tool environments: a sandboxed workspace and shell, network policy, secrets.

* :class:`Workspace` -- a directory per thread (shared by a team, private per agent,
  or a sub-directory for a specialist); :func:`file_tools` read, write, list, search
  and edit inside it and nowhere else.
* :func:`shell_tool` -- one command per call in a bubblewrap sandbox with
  :class:`Limits`, a network policy (``"none"``, ``"loopback"``, an allow-list) and
  :class:`Secret` s; governed by grants, the policy (:func:`command_uses`),
  approvals with edits and the exactly-once ledger like every other tool.
* :class:`Sandbox` -- the same sandbox, limits, network policy and secrets for a
  long-lived program: a stdio MCP server (``MCPServer(..., sandbox=Sandbox(...))``).
"""

from typing import TYPE_CHECKING

from podium._lazy import attach as _attach

if TYPE_CHECKING:
    from podium.environments._commands import command_uses
    from podium.environments._files import file_tools
    from podium.environments._sandbox import Limits
    from podium.environments._secrets import Secret
    from podium.environments._servers import Sandbox
    from podium.environments._shell import shell_tool
    from podium.environments._workspace import Workspace

__getattr__, __dir__ = _attach(__name__)

__all__ = [
    "Limits",
    "Sandbox",
    "Secret",
    "Workspace",
    "command_uses",
    "file_tools",
    "shell_tool",
]
