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
* **Sandboxing.** stdio servers run as plain child processes with the environment
  the ``mcp`` SDK passes (``HOME``, ``PATH``, ... plus ``env=``). Running them inside
  podium's sandboxed environments, under its network policy, waits for that feature.
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from langchain_core.tools import BaseTool, StructuredTool, ToolException
from langchain_mcp_adapters.interceptors import (
    MCPToolCallRequest,
    MCPToolCallResult,
    ToolCallInterceptor,
)
from langchain_mcp_adapters.sessions import Connection
from langchain_mcp_adapters.tools import convert_mcp_tool_to_langchain_tool
from mcp.types import CallToolResult, ResourceLink, TextContent
from mcp.types import Tool as MCPTool

from podium.errors import ConfigurationError
from podium.tools import _mcp_sessions as sessions
from podium.tools._decorator import ToolTraits

__all__ = ["MCPServer", "Transport", "mcp_tools"]

Transport = Literal["stdio", "streamable_http", "sse"]
"""How podium talks to an MCP server."""

_SERVER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,47}$")
_PREFIX = re.compile(r"^[A-Za-z0-9_-]{0,48}$")
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_TRAIT_KEYS = frozenset({"risk", "idempotent", "read_only"})


def _bad(server: str, what: str, fix: str) -> ConfigurationError:
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

    def __post_init__(self) -> None:
        """Validate the settings and infer the transport."""
        name = self.name
        if not isinstance(name, str) or not _SERVER_NAME.fullmatch(name):
            raise _bad(
                str(name),
                "the name must start with a letter and contain only letters, digits, '_' or "
                "'-' (at most 48 characters); it prefixes the tools' names.",
                "Name the server e.g. 'git' or 'docs'.",
            )
        if (self.command is None) == (self.url is None):
            raise _bad(
                name,
                "give exactly one of command= (a stdio server) or url= (an HTTP server).",
                "MCPServer('git', command='uvx', args=['mcp-server-git']) or "
                "MCPServer('docs', url='http://127.0.0.1:8000/mcp').",
            )
        transport = self.transport or ("stdio" if self.command is not None else "streamable_http")
        if transport not in ("stdio", "streamable_http", "sse"):
            raise _bad(
                name,
                f"transport={transport!r} is not one of 'stdio', 'streamable_http', 'sse'.",
                "Leave transport unset, or pick one.",
            )
        if (transport == "stdio") != (self.command is not None):
            raise _bad(
                name,
                f"transport={transport!r} does not fit "
                f"{'command=' if self.command is not None else 'url='}.",
                "stdio servers take command=; HTTP and SSE servers take url=.",
            )
        if self.url is not None and not re.match(r"^https?://", self.url):
            raise _bad(
                name,
                f"url={self.url!r} is not an http:// or https:// URL.",
                "Pass the server's endpoint, e.g. 'http://127.0.0.1:8000/mcp'.",
            )
        for what in ("args", "include"):
            value = getattr(self, what)
            if value is not None and (
                isinstance(value, str) or not all(isinstance(v, str) for v in value)
            ):
                raise _bad(
                    name, f"{what} must be a list of strings, got {value!r}.", f"Pass {what}=[...]."
                )
        if self.prefix is not None and (
            not isinstance(self.prefix, str) or not _PREFIX.fullmatch(self.prefix)
        ):
            raise _bad(
                name,
                f"prefix={self.prefix!r} may contain only letters, digits, '_' and '-'.",
                "Pass e.g. prefix='git', or prefix='' for no prefix.",
            )
        for what in ("timeout", "connect_timeout"):
            value = getattr(self, what)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise _bad(
                    name,
                    f"{what}={value!r} must be a number of seconds > 0.",
                    f"Pass e.g. {what}=30.",
                )
        for tool, given in self.traits.items():
            if not isinstance(given, ToolTraits | Mapping) or (
                isinstance(given, Mapping) and not set(given) <= _TRAIT_KEYS
            ):
                raise _bad(
                    name,
                    f"traits[{tool!r}]={given!r} is not a ToolTraits or a dict "
                    f"of {sorted(_TRAIT_KEYS)}.",
                    "Pass e.g. {'git_commit': {'risk': 'high'}}.",
                )
        object.__setattr__(self, "transport", transport)
        object.__setattr__(self, "args", tuple(self.args))

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

    def endpoint(self) -> sessions.Endpoint:
        """The session pool's view of the server."""
        conn = dict(self.connection())
        key = json.dumps({"name": self.name, **conn}, sort_keys=True, default=str)
        return sessions.Endpoint(
            self.name, self.connection(), key, float(self.connect_timeout), float(self.timeout)
        )


def _traits(server: MCPServer, tool: MCPTool) -> ToolTraits:
    hints = tool.annotations if server.trust_hints else None
    read_only = bool(hints and hints.readOnlyHint)
    if read_only:
        traits = ToolTraits(risk="low", idempotent=True, read_only=True)
    else:
        destructive = hints is None or hints.destructiveHint is not False
        traits = ToolTraits(
            risk="high" if destructive else "medium",
            idempotent=bool(hints and hints.idempotentHint),
        )
    given = server.traits.get(tool.name)
    if isinstance(given, ToolTraits):
        return given
    if given:
        changed = replace(traits, **dict(given))
        if changed.risk not in ("low", "medium", "high"):
            raise _bad(
                server.name,
                f"traits[{tool.name!r}] has risk={changed.risk!r}.",
                "Use 'low', 'medium' or 'high'.",
            )
        return changed
    return traits


def _portable(result: CallToolResult) -> CallToolResult:
    """A resource link becomes a line of text (a model cannot open a ``file`` block)."""
    if not any(isinstance(c, ResourceLink) for c in result.content):
        return result
    content = [
        TextContent(
            type="text",
            text=f"Resource link: {c.name} <{c.uri}>"
            + (f" ({c.mimeType})" if c.mimeType else "")
            + (f": {c.description}" if c.description else ""),
        )
        if isinstance(c, ResourceLink)
        else c
        for c in result.content
    ]
    return result.model_copy(update={"content": content})


def _content(blocks: Any, artifact: Any) -> Any:
    """Text-only results as one string; images kept as content blocks."""
    if not isinstance(blocks, list):
        return blocks
    texts = [b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text"]
    if len(texts) == len(blocks):
        if texts:
            return "\n".join(texts)
        structured = artifact.get("structured_content") if isinstance(artifact, dict) else None
        return json.dumps(structured) if structured is not None else ""
    return blocks


def _build(server: MCPServer, endpoint: sessions.Endpoint, tool: MCPTool, name: str) -> BaseTool:
    traits = _traits(server, tool)
    resend = traits.read_only or traits.idempotent

    class Route(ToolCallInterceptor):
        """Every call goes to the process's one session of this server, never a new one."""

        async def __call__(
            self,
            request: MCPToolCallRequest,
            handler: Callable[[MCPToolCallRequest], Awaitable[MCPToolCallResult]],
        ) -> MCPToolCallResult:
            link = sessions.link(endpoint)
            answer = await link.call(
                request.name, request.args, resend=resend, timeout=endpoint.call_timeout
            )
            return _portable(answer)

    adapted = convert_mcp_tool_to_langchain_tool(
        None,
        tool,
        connection=endpoint.connection,
        server_name=server.name,
        tool_interceptors=[Route()],
    )
    call = adapted.coroutine if isinstance(adapted, StructuredTool) else None
    if call is None:  # pragma: no cover - the adapter always builds a coroutine tool
        raise ConfigurationError(f"cannot adapt MCP tool {tool.name!r}", fix="Report a bug.")

    async def on_loop(kwargs: dict[str, Any]) -> tuple[Any, Any]:
        blocks, artifact = await call(**kwargs)
        return _content(blocks, artifact), artifact

    def run_sync(**kwargs: Any) -> tuple[Any, Any]:
        return sessions.run(on_loop(kwargs))

    async def run_async(**kwargs: Any) -> tuple[Any, Any]:
        return await sessions.run_async(on_loop(kwargs))

    for fn in (run_sync, run_async):  # langchain reads them on every call: resolve once
        fn.__annotations__ = typing.get_type_hints(fn)

    def server_error(exc: ToolException) -> str:
        return f"Error: MCP server {server.name!r} reported an error from {tool.name!r}: {exc}"

    return StructuredTool(
        name=name,
        description=tool.description or tool.title or f"{tool.name} (MCP server {server.name})",
        args_schema=tool.inputSchema,
        func=run_sync,
        coroutine=run_async,
        response_format="content_and_artifact",
        handle_tool_error=server_error,
        metadata={
            **(adapted.metadata or {}),
            "podium": traits,
            "mcp": {"server": server.name, "tool": tool.name},
        },
    )


def _name(server: MCPServer, tool: str) -> str:
    prefix = server.name if server.prefix is None else server.prefix
    safe = _UNSAFE.sub("_", tool)
    name = f"{prefix}_{safe}" if prefix else safe
    if not _TOOL_NAME.fullmatch(name):
        raise _bad(
            server.name,
            f"tool {tool!r} would be named {name!r}, longer than the 64 characters model "
            "APIs allow.",
            "Pass a shorter prefix= (or prefix=''), or leave the tool out with include=.",
        )
    return name


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
    built: list[BaseTool] = []
    origin: dict[str, str] = {}
    for server in servers:
        endpoint = server.endpoint()
        listed = sessions.run(sessions.link(endpoint).list_tools())
        offered = {t.name for t in listed}
        for what, wanted in (("include", server.include or ()), ("traits", server.traits)):
            unknown = sorted(set(wanted) - offered)
            if unknown:
                raise _bad(
                    server.name,
                    f"{what} names tool(s) {unknown} that the server does not offer. It "
                    f"offers: {', '.join(sorted(offered)) or '(none)'}.",
                    f"Use the server's own tool names in {what}=.",
                )
        for tool in listed:
            if server.include is not None and tool.name not in server.include:
                continue
            name = _name(server, tool.name)
            if name in origin:
                raise ConfigurationError(
                    f"MCP tool name clash: {name!r} is tool {tool.name!r} of server "
                    f"{server.name!r} and also comes from {origin[name]}.",
                    fix="Give the servers distinct names or prefix=, or leave one tool out "
                    "with include=.",
                )
            origin[name] = f"server {server.name!r}"
            built.append(_build(server, endpoint, tool, name))
    return built
