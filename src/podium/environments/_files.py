"""File tools confined to a workspace: read, write, list, search, edit.

Every path a model gives goes through :func:`~podium.environments._workspace.open_in`:
absolute paths (other than ``/workspace/...``), ``..``, symbolic links and anything
that is not a regular file or directory are refused, and nothing is followed. Files
larger than the workspace's ``max_file_bytes`` are not read or written whole.

The tools are podium tools: reading, listing and searching are ``read_only`` (no
ledger record); writing is idempotent (writing the same content twice is writing
it once), editing is not (an edit whose new text contains the old one would apply
twice). A refusal is an error the model reads (and the call did nothing).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from pydantic import Field

from podium.environments._workspace import PathRefused, Workspace, open_in, relative_parts
from podium.tools import tool

__all__ = ["file_tools"]

_LIST_LIMIT = 500
_SEARCH_HITS = 50
_LINE = 300

RelPath = Annotated[
    str, Field(max_length=500, description="A path inside the workspace, like data/sales.csv.")
]


def _read(root: Path, path: str, cap: int) -> bytes:
    with open_in(root, path) as fd:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise PathRefused(f"{path!r} is a directory; use list_files")
        if info.st_size > cap:
            raise PathRefused(
                f"{path!r} has {info.st_size:,} bytes, more than the {cap:,} a file tool reads; "
                "read part of it with the shell (head, tail, grep)"
            )
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)


def _write(root: Path, path: str, data: bytes) -> None:
    with open_in(root, path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, create_dirs=True) as fd:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise PathRefused(f"{path!r} is a directory")
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]


def _walk(root: Path, path: str) -> Iterator[tuple[str, os.stat_result]]:
    """Entries under ``path`` (relative names, lstat results), never through links."""
    base = "/".join(relative_parts(path))
    with open_in(root, path) as fd:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            yield base, os.fstat(fd)
            return
        stack = [(os.dup(fd), base)]
    while stack:
        dfd, prefix = stack.pop()
        try:
            names = sorted(os.listdir(dfd))
            for name in names:
                info = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                rel = f"{prefix}/{name}" if prefix else name
                yield rel, info
                if stat.S_ISDIR(info.st_mode):
                    try:
                        child = os.open(
                            name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dfd
                        )
                    except OSError:
                        continue
                    stack.append((child, rel))
        finally:
            os.close(dfd)


def _kind(info: os.stat_result) -> str:
    if stat.S_ISDIR(info.st_mode):
        return "dir"
    if stat.S_ISLNK(info.st_mode):
        return "link (not followed)"
    if stat.S_ISREG(info.st_mode):
        return f"{info.st_size:,} bytes"
    return "special file (refused)"


def _refusal(exc: Exception) -> str:
    if isinstance(exc, FileNotFoundError):
        return "Error: no such file or directory in the workspace."
    return f"Error: {exc}. Nothing was done."


def file_tools(workspace: Workspace) -> list[BaseTool]:
    """The file tools over ``workspace``: read, write, list, search and edit files.

    ``read_file``, ``write_file``, ``list_files``, ``search_files`` and ``edit_file``.
    Grant them like any tools (``Agent(tools=[*file_tools(ws), ...])``); the directory
    is the calling thread's (and agent's, for a private workspace).

    Example:
        >>> [t.name for t in file_tools(Workspace("/tmp/podium-ws"))]
        ['read_file', 'write_file', 'list_files', 'search_files', 'edit_file']
    """
    cap = workspace.max_file_bytes

    def here(config: RunnableConfig) -> Path:
        return workspace.ensure(workspace.for_call(config))

    @tool(read_only=True)
    def read_file(path: RelPath, config: RunnableConfig) -> str:
        """Read a text file from the workspace."""
        try:
            data = _read(here(config), path, cap)
        except (PathRefused, OSError) as exc:
            return _refusal(exc)
        return data.decode("utf-8", "replace")

    @tool(risk="medium", idempotent=True)
    def write_file(
        path: RelPath,
        content: Annotated[str, Field(description="The whole new content of the file.")],
        config: RunnableConfig,
    ) -> str:
        """Write a text file in the workspace (creating folders; replacing the file)."""
        data = content.encode()
        if len(data) > cap:
            return f"Error: {len(data):,} bytes is more than the {cap:,} a file may have here."
        try:
            _write(here(config), path, data)
        except (PathRefused, OSError) as exc:
            return _refusal(exc)
        return f"Wrote {len(data):,} bytes to {'/'.join(relative_parts(path))}."

    @tool(read_only=True)
    def list_files(
        path: Annotated[str, Field(max_length=500, description="A folder; '.' is the top.")] = ".",
        config: RunnableConfig = None,  # type: ignore[assignment]
    ) -> str:
        """List the files and folders in the workspace (recursively)."""
        try:
            rows = []
            for rel, info in _walk(here(config), path):
                rows.append(f"{rel}  ({_kind(info)})")
                if len(rows) >= _LIST_LIMIT:
                    rows.append(f"[... more than {_LIST_LIMIT} entries; list a sub-folder ...]")
                    break
        except (PathRefused, OSError) as exc:
            return _refusal(exc)
        return "\n".join(rows) if rows else "The folder is empty."

    @tool(read_only=True)
    def search_files(
        pattern: Annotated[str, Field(max_length=200, description="Text to look for.")],
        path: Annotated[str, Field(max_length=500, description="A folder or file.")] = ".",
        config: RunnableConfig = None,  # type: ignore[assignment]
    ) -> str:
        """Find the lines of workspace files that contain a text (case-insensitive)."""
        root, needle, hits = here(config), pattern.lower(), []
        try:
            for rel, info in _walk(root, path):
                if not stat.S_ISREG(info.st_mode) or info.st_size > cap:
                    continue
                try:
                    text = _read(root, rel, cap).decode("utf-8", "replace")
                except (PathRefused, OSError):
                    continue
                for number, line in enumerate(text.splitlines(), 1):
                    if needle in line.lower():
                        hits.append(f"{rel}:{number}: {line[:_LINE]}")
                if len(hits) >= _SEARCH_HITS:
                    hits = [*hits[:_SEARCH_HITS], f"[... more than {_SEARCH_HITS} matches ...]"]
                    break
        except (PathRefused, OSError) as exc:
            return _refusal(exc)
        return "\n".join(hits) if hits else f"No line contains {pattern!r}."

    @tool(risk="medium")
    def edit_file(
        path: RelPath,
        old: Annotated[str, Field(min_length=1, description="Exact text to replace (once).")],
        new: Annotated[str, Field(description="The replacement text.")],
        config: RunnableConfig,
    ) -> str:
        """Replace one exact piece of text in a workspace file."""
        root = here(config)
        try:
            text = _read(root, path, cap).decode("utf-8")
        except UnicodeDecodeError:
            return "Error: the file is not UTF-8 text; it was not changed."
        except (PathRefused, OSError) as exc:
            return _refusal(exc)
        count = text.count(old)
        if count != 1:
            where = "does not occur" if count == 0 else f"occurs {count} times"
            return f"Error: the old text {where} in the file; it was not changed."
        updated = text.replace(old, new).encode()
        if len(updated) > cap:
            return f"Error: the file would exceed {cap:,} bytes; it was not changed."
        try:
            _write(root, path, updated)
        except (PathRefused, OSError) as exc:
            return _refusal(exc)
        return f"Edited {'/'.join(relative_parts(path))}."

    return [read_file, write_file, list_files, search_files, edit_file]
