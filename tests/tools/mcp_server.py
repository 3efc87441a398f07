"""An MCP server for the tests, on the official SDK's FastMCP (podium's client side only
meets it through the protocol).

Usage: python mcp_server.py TRANSPORT PORT NOTES
TRANSPORT: stdio | streamable-http | sse (HTTP ones listen on 127.0.0.1:PORT).
NOTES: a file each ``note`` call appends a line to (the side effect the tests count).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import sys
from pathlib import Path

from mcp.server.fastmcp import FastMCP, Image
from mcp.types import ImageContent, ResourceLink, TextContent, ToolAnnotations
from pydantic import BaseModel

# one red pixel
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)

transport, port, notes = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
logging.getLogger("mcp").setLevel(logging.WARNING)
mcp = FastMCP("podium-test", host="127.0.0.1", port=port, log_level="WARNING")
READ_ONLY = ToolAnnotations(readOnlyHint=True)


@mcp.tool(annotations=READ_ONLY)
def echo(text: str, times: int = 1) -> str:
    """Repeat a text."""
    return " ".join([text] * times)


@mcp.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False))
def note(text: str) -> str:
    """Write a note down."""
    with notes.open("a") as f:
        f.write(text + "\n")
    return f"noted: {text}"


@mcp.tool(annotations=READ_ONLY)
async def slow(seconds: float) -> str:
    """Wait, then answer."""
    await asyncio.sleep(seconds)
    return "done waiting"


@mcp.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False))
async def slow_note(text: str, seconds: float) -> str:
    """Wait, then write a note down."""
    await asyncio.sleep(seconds)
    return note(text)


@mcp.tool(annotations=READ_ONLY)
def pid() -> str:
    """The server's process id."""
    return str(os.getpid())


class Weather(BaseModel):
    city: str
    celsius: float


@mcp.tool(annotations=READ_ONLY)
def weather(city: str) -> Weather:
    """Today's weather in a city."""
    return Weather(city=city, celsius=21.5)


@mcp.tool(annotations=READ_ONLY, structured_output=False)
def picture(caption: str) -> list[TextContent | ImageContent]:
    """A captioned picture."""
    image = Image(data=PNG, format="png").to_image_content()
    return [TextContent(type="text", text=caption), image]


@mcp.tool(annotations=READ_ONLY)
def report_link() -> ResourceLink:
    """Where the report is."""
    return ResourceLink(
        type="resource_link",
        name="report",
        uri="file:///srv/report.txt",
        mimeType="text/plain",
        description="the weekly report",
    )


@mcp.tool(annotations=READ_ONLY)
def fail(reason: str) -> str:
    """Always fails."""
    raise ValueError(f"cannot do that: {reason}")


@mcp.tool(name="files.read", annotations=READ_ONLY)
def files_read(path: str) -> str:
    """A tool whose name has a dot (model APIs refuse dots)."""
    return f"contents of {path}"


mcp.run(transport=transport)  # type: ignore[arg-type]
