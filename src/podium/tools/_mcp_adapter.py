"""Building podium tools from an MCP server's tools (the rules: :mod:`podium.tools._mcp`).

Imported when :func:`~podium.tools.mcp_tools` first runs: the ``mcp`` SDK and
langchain-mcp-adapters are only loaded by programs that use MCP.
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool, ToolException
from langchain_mcp_adapters.interceptors import (
    MCPToolCallRequest,
    MCPToolCallResult,
    ToolCallInterceptor,
)
from langchain_mcp_adapters.tools import convert_mcp_tool_to_langchain_tool
from mcp.types import CallToolResult, ResourceLink, TextContent
from mcp.types import Tool as MCPTool

from podium.errors import ConfigurationError
from podium.tools import _mcp_sessions as sessions
from podium.tools._decorator import ToolTraits
from podium.tools._mcp import MCPServer, bad

__all__ = ["build", "endpoint_of"]

_TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def endpoint_of(server: MCPServer) -> sessions.Endpoint:
    """The session pool's view of ``server`` (its key: the name, connection and sandbox)."""
    conn = server.connection()
    key = json.dumps(
        {"name": server.name, **conn, "sandbox": repr(server.sandbox)}, sort_keys=True, default=str
    )
    return sessions.Endpoint(
        server.name,
        conn,
        key,
        float(server.connect_timeout),
        float(server.timeout),
        server.sandbox,
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
        if changed.risk not in ("low", "medium", "high") or not all(
            isinstance(v, bool) for v in (changed.read_only, changed.idempotent)
        ):
            raise bad(
                server.name,
                f"traits[{tool.name!r}]={dict(given)!r} is not valid.",
                "Use risk='low', 'medium' or 'high'; read_only and idempotent are True/False.",
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
        raise bad(
            server.name,
            f"tool {tool!r} would be named {name!r}, longer than the 64 characters model "
            "APIs allow.",
            "Pass a shorter prefix= (or prefix=''), or leave the tool out with include=.",
        )
    return name


def build(servers: Sequence[MCPServer]) -> list[BaseTool]:
    """List each server's tools and build them (see :func:`~podium.tools.mcp_tools`)."""
    built: list[BaseTool] = []
    origin: dict[str, str] = {}
    for server in servers:
        endpoint = endpoint_of(server)
        listed = sessions.run(sessions.link(endpoint).list_tools())
        offered = {t.name for t in listed}
        for what, wanted in (("include", server.include or ()), ("traits", server.traits)):
            unknown = sorted(set(wanted) - offered)
            if unknown:
                raise bad(
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
