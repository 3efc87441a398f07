"""MCP servers as governed tool sources: :class:`MCPServer` and :func:`mcp_tools`.

Each tool of a Model Context Protocol server becomes a langchain ``BaseTool`` that
podium governs like any other: it is a grant (an agent runs only the tools it lists),
its arguments are validated against the server's JSON schema before the call
(unknown arguments are refused), the :class:`~podium.Policy` matches it by name and
risk, approvals and the exactly-once ledger apply, and its calls are run events. It
runs through the one governed executor; nothing here is a second path.

Built on langchain-mcp-adapters (connection settings, sessions, the conversion of
results) and the official ``mcp`` SDK. Decisions, where MCP leaves a choice:

* **Names.** ``<prefix>_<tool>``, the prefix being the server's name unless
  ``prefix=`` says otherwise (``""``: the server's own names). Model APIs allow only
  ``[A-Za-z0-9_-]`` in tool names (OpenAI: ``^[a-zA-Z0-9_-]{1,64}$``; ``.`` is
  refused), so ``_`` is the separator, as in langchain-mcp-adapters'
  ``tool_name_prefix``; any other character of a server's tool name becomes ``_``.
  A name longer than 64 characters, or one that two servers (or two tools of one
  server) would share, is a :class:`~podium.errors.ConfigurationError` at build time.
* **Traits** come from the tool's annotations, which MCP calls *hints*: a
  ``readOnlyHint`` tool is ``read_only`` (no ledger record; low risk); otherwise
  ``destructiveHint`` -- which MCP defaults to true -- makes it high risk, and an
  explicit ``destructiveHint: false`` medium; ``idempotentHint`` makes it
  ``idempotent`` (re-run after a crash without asking). They are trusted because
  you chose the server; ``traits={"tool": {...}}`` overrides them per tool, and
  ``trust_hints=False`` ignores them all (every tool then high risk, side-effecting).
* **Results.** Text becomes the ``ToolMessage`` content (several blocks joined by
  newlines); images stay image content blocks beside the text; a resource link
  becomes a line of text naming it; structured content is kept in the message's
  ``artifact["structured_content"]`` (and is the content when the server sent no
  text). A result the server flags ``isError`` is an error ``ToolMessage``.
* **Sessions** are opened when :func:`mcp_tools` lists the tools, reused by every
  call in the process, reconnected when the server dropped, and closed at exit
  (see :mod:`podium.tools._mcp_sessions`). A server that is down stops the run with
  :class:`~podium.errors.ToolUnavailableError` (resume once it is back); a call
  without an answer within ``timeout`` seconds is a
  :class:`~podium.errors.ToolTimeoutError`, which the executor treats as its own
  tool timeout (the model is told; a side-effecting call stays in doubt).
* **Arguments** are checked by the executor against the server's JSON schema in its
  own dialect (2020-12 unless it says otherwise), defaults filled in, before anything
  is sent (:mod:`podium.tools._checks`).
* **Sandboxing.** ``sandbox=Sandbox(...)`` (:class:`podium.environments.Sandbox`)
  starts a stdio server in podium's bubblewrap sandbox, with the shell tool's view,
  user, limits, network policy (its proxy lives as long as the session) and secrets;
  the sandbox is part of the session's identity. bubblewrap missing is a
  :class:`~podium.errors.SandboxUnavailableError` from :func:`mcp_tools` before any
  server starts -- never an unsandboxed fallback. See
  :mod:`podium.environments._servers` for what the server sees and which limits apply.
  Without ``sandbox=`` a stdio server is a plain child process with the environment the
  ``mcp`` SDK passes (``HOME``, ``PATH``, ... plus ``env=``).
* **The other direction.** LangGraph Server serves every graph, podium's included, as
  a tool at its ``/mcp`` endpoint. Each call there is a stateless run, with no
  checkpointer: a call that needs a human fails closed with
  :class:`~podium.errors.HumanUnavailableError` (the MCP client gets it as the tool's
  error), no request is left pending, and the gated call never runs.

This module is light: the tools are built by :mod:`podium.tools._mcp_adapter` and
run through :mod:`podium.tools._mcp_sessions`, which load the ``mcp`` SDK when
:func:`mcp_tools` first runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.tools import BaseTool

from podium.errors import ConfigurationError
from podium.tools._decorator import ToolTraits

if TYPE_CHECKING:
    from langchain_mcp_adapters.sessions import Connection

    from podium.environments import Sandbox

__all__ = ["MCPServer", "Transport", "bad", "mcp_tools"]

Transport = Literal["stdio", "streamable_http", "sse"]
"""How podium talks to an MCP server."""

_SERVER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,47}$")
_PREFIX = re.compile(r"^[A-Za-z0-9_-]{0,48}$")
_TRAIT_KEYS = frozenset({"risk", "idempotent", "read_only"})


def bad(server: str, what: str, fix: str) -> ConfigurationError:
    """A configuration error about the server named ``server``."""
    return ConfigurationError(f"MCPServer({server!r}): {what}", fix=fix)


@dataclass(frozen=True)
class MCPServer:
    """An MCP server whose tools an agent may be granted.

    Give ``command`` (stdio: podium starts the server as a child process) or ``url``
    (streamable HTTP, or ``transport="sse"`` for the older SSE transport). Pass it to
    :func:`mcp_tools`, or put it straight into ``Agent(tools=[...])``.

    Example:
        >>> import sys
        >>> git = MCPServer("repo", command=sys.executable,
        ...                 args=["-m", "mcp_server_git", "--repository", "."])
        >>> git.transport
        'stdio'
        >>> MCPServer("docs", url="http://127.0.0.1:8000/mcp").transport
        'streamable_http'
    """

    name: str
    """The server's name: the tools' name prefix (unless ``prefix=``) and in messages."""
    _: KW_ONLY
    command: str | None = None
    """stdio: the executable that runs the server."""
    args: Sequence[str] = ()
    """stdio: its arguments."""
    env: Mapping[str, str] | None = None
    """stdio: the server's environment variables; ``None``: the ``mcp`` SDK's safe
    default subset of podium's (``HOME``, ``PATH``, ...)."""
    cwd: str | Path | None = None
    """stdio: its working directory."""
    url: str | None = None
    """HTTP: the endpoint, e.g. ``http://127.0.0.1:8000/mcp``."""
    transport: Transport | None = None
    """``"stdio"`` (given ``command``), ``"streamable_http"`` (given ``url``, the
    default for URLs) or ``"sse"``."""
    headers: Mapping[str, str] | None = None
    """HTTP: headers sent with every request (e.g. ``Authorization``)."""
    prefix: str | None = None
    """Prefix of the tools' names (``None``: the server's name; ``""``: none)."""
    include: Sequence[str] | None = None
    """Only these tools (the server's own names); ``None``: all of them."""
    traits: Mapping[str, ToolTraits | Mapping[str, Any]] = field(default_factory=dict)
    """Per tool (the server's own name): a :class:`~podium.tools.ToolTraits`, or a
    dict of the traits to change (``{"risk": "high"}``)."""
    trust_hints: bool = True
    """Take traits from the tools' annotations (``False``: every tool is treated as
    high risk, not read-only, not idempotent, unless ``traits`` says otherwise)."""
    timeout: float = 60.0
    """Seconds a call may wait for the server's answer."""
    connect_timeout: float = 30.0
    """Seconds to start or reach the server and open a session."""
    sandbox: Sandbox | None = None
    """stdio: run the server in podium's bubblewrap sandbox
    (:class:`podium.environments.Sandbox`: files, network policy, secrets, limits);
    ``None``: a plain child process."""

    def __post_init__(self) -> None:
        """Validate the settings and infer the transport."""
        name = self.name
        if not isinstance(name, str) or not _SERVER_NAME.fullmatch(name):
            raise bad(
                str(name),
                "the name must start with a letter and contain only letters, digits, '_' or "
                "'-' (at most 48 characters); it prefixes the tools' names.",
                "Name the server e.g. 'git' or 'docs'.",
            )
        if (self.command is None) == (self.url is None):
            raise bad(
                name,
                "give exactly one of command= (a stdio server) or url= (an HTTP server).",
                "MCPServer('git', command='uvx', args=['mcp-server-git']) or "
                "MCPServer('docs', url='http://127.0.0.1:8000/mcp').",
            )
        transport = self.transport or ("stdio" if self.command is not None else "streamable_http")
        if transport not in ("stdio", "streamable_http", "sse"):
            raise bad(
                name,
                f"transport={transport!r} is not one of 'stdio', 'streamable_http', 'sse'.",
                "Leave transport unset, or pick one.",
            )
        if (transport == "stdio") != (self.command is not None):
            raise bad(
                name,
                f"transport={transport!r} does not fit "
                f"{'command=' if self.command is not None else 'url='}.",
                "stdio servers take command=; HTTP and SSE servers take url=.",
            )
        if self.url is not None and not re.match(r"^https?://", self.url):
            raise bad(
                name,
                f"url={self.url!r} is not an http:// or https:// URL.",
                "Pass the server's endpoint, e.g. 'http://127.0.0.1:8000/mcp'.",
            )
        for what in ("args", "include"):
            value = getattr(self, what)
            if value is not None and (
                isinstance(value, str) or not all(isinstance(v, str) for v in value)
            ):
                raise bad(
                    name, f"{what} must be a list of strings, got {value!r}.", f"Pass {what}=[...]."
                )
        if self.prefix is not None and (
            not isinstance(self.prefix, str) or not _PREFIX.fullmatch(self.prefix)
        ):
            raise bad(
                name,
                f"prefix={self.prefix!r} may contain only letters, digits, '_' and '-'.",
                "Pass e.g. prefix='git', or prefix='' for no prefix.",
            )
        for what in ("timeout", "connect_timeout"):
            value = getattr(self, what)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise bad(
                    name,
                    f"{what}={value!r} must be a number of seconds > 0.",
                    f"Pass e.g. {what}=30.",
                )
        for tool, given in self.traits.items():
            if not isinstance(given, ToolTraits | Mapping) or (
                isinstance(given, Mapping) and not set(given) <= _TRAIT_KEYS
            ):
                raise bad(
                    name,
                    f"traits[{tool!r}]={given!r} is not a ToolTraits or a dict "
                    f"of {sorted(_TRAIT_KEYS)}.",
                    "Pass e.g. {'git_commit': {'risk': 'high'}}.",
                )
        if self.sandbox is not None:
            self._check_sandbox(transport)
        object.__setattr__(self, "transport", transport)
        object.__setattr__(self, "args", tuple(self.args))

    def _check_sandbox(self, transport: str) -> None:
        from podium.environments._servers import Sandbox  # light: no sandbox starts here

        if not isinstance(self.sandbox, Sandbox):
            raise bad(
                self.name,
                f"sandbox={self.sandbox!r} is not a podium.environments.Sandbox.",
                "Pass sandbox=Sandbox(directory=..., network='none').",
            )
        if transport != "stdio":
            raise bad(
                self.name,
                "sandbox= runs a stdio server podium starts; an HTTP server runs elsewhere.",
                "Drop sandbox=, or start the server over stdio with command=.",
            )
        if self.cwd is not None:
            raise bad(
                self.name,
                "cwd= does not apply in a sandbox: the server starts in /workspace "
                "(Sandbox(directory=...)).",
                "Drop cwd=; give the directory as Sandbox(directory=...).",
            )

    def connection(self) -> Connection:
        """The server's connection settings in langchain-mcp-adapters' format."""
        if self.transport == "stdio":
            return {
                "transport": "stdio",
                "command": self.command or "",
                "args": list(self.args),
                "env": dict(self.env) if self.env is not None else None,
                "cwd": self.cwd,
            }
        if self.transport == "sse":
            return {"transport": "sse", "url": self.url or "", "headers": dict(self.headers or {})}
        return {
            "transport": "streamable_http",
            "url": self.url or "",
            "headers": dict(self.headers or {}),
        }


def mcp_tools(*servers: MCPServer) -> list[BaseTool]:
    """Connect to MCP servers and return their tools as podium tools.

    Each server's session is opened now (a stdio server is started), its tools are
    listed, and each becomes a tool named ``<prefix>_<name>`` with traits from its
    annotations (see :mod:`podium.tools._mcp` for every rule). Grant them to an agent
    like any tool; name them in ``Rule(tool=...)``.

    Args:
        *servers: The servers, each an :class:`MCPServer`.

    Returns:
        The tools, server by server in the order the servers list them.

    Raises:
        ConfigurationError: For no servers, two servers of one name, two tools of one
            name, an ``include`` or ``traits`` entry naming a tool the server does not
            have, a stdio command that cannot run, or an invalid argument schema.
        SandboxUnavailableError: A server has ``sandbox=`` and bubblewrap is missing or
            cannot start a sandbox here (checked before any server starts).
        ToolUnavailableError: When a server cannot be started or reached.

    Example:
        >>> import sys
        >>> from podium.tools import MCPServer, mcp_tools
        >>> clock = MCPServer("clock", command=sys.executable, args=["-m", "mcp_server_time"])
        >>> [t.name for t in mcp_tools(clock)]  # doctest: +SKIP
        ['clock_get_current_time', 'clock_convert_time']
    """
    if not servers:
        raise ConfigurationError(
            "mcp_tools() needs at least one server.",
            fix="Pass MCPServer('name', command=...) or MCPServer('name', url=...).",
        )
    names: set[str] = set()
    for server in servers:
        if not isinstance(server, MCPServer):
            raise ConfigurationError(
                f"mcp_tools() takes MCPServer objects, got {server!r}.",
                fix="Wrap the settings: MCPServer('git', command='uvx', args=['mcp-server-git']).",
            )
        if server.name in names:
            raise ConfigurationError(
                f"mcp_tools(): two servers are named {server.name!r}.",
                fix="Give every server its own name.",
            )
        names.add(server.name)
    for server in servers:  # before any server starts: no unsandboxed fallback, ever
        if server.sandbox is not None:
            server.sandbox.check(server.name, server.command or "", server.env)
    # deferred: the mcp SDK and langchain-mcp-adapters take ~0.2 s to import, which only
    # programs that use MCP should pay (``import podium``, the CLI do not)
    from podium.tools._mcp_adapter import build

    return build(servers)
