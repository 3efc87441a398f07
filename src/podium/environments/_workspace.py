"""Workspaces: a directory per thread, and paths that cannot leave it.

A :class:`Workspace` names where the directories live (under the podium home by
default) and how they are shared: one per thread for every agent that holds its
tools (a team workspace), one per agent (``private=True``), or a sub-directory
(:meth:`Workspace.sub`, e.g. a manager's specialist works in ``research/`` while the
manager sees the whole tree). The directory is created on first use and kept across
resumes and processes (its path depends only on the root and the thread id);
:meth:`Workspace.delete` removes it with the thread.

Paths given by a model are confined: :func:`open_in` walks them one component at a
time from the workspace's directory descriptor with ``O_NOFOLLOW``, so an absolute
path, ``..``, a symbolic link anywhere on the way (even one a command plants while
the walk runs) and a device, FIFO or socket are refused, never followed.
``/workspace/...`` -- the workspace as commands see it -- is accepted as the root.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from podium.errors import ConfigurationError
from podium.observe._scope import scope_of, scoped

__all__ = ["PathRefused", "Workspace", "open_in", "owner_ids"]

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_INSIDE = "/workspace"


class PathRefused(Exception):
    """A path outside the workspace, through a link, or not a regular file or directory."""


def _segment(value: str) -> str:
    """A directory name for a thread id or an agent path (readable, never ``..``)."""
    if _SAFE.match(value) and value not in (".", ".."):
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:12]
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", value).strip("._-")[:40]
    return f"{clean or 'x'}-{digest}"


def default_root() -> Path:
    """``$PODIUM_HOME/workspaces`` (``.podium/workspaces`` when unset)."""
    return Path(os.environ.get("PODIUM_HOME", ".podium")) / "workspaces"


def owner_ids() -> tuple[int, int] | None:
    """The uid and gid the workspace belongs to when podium runs as root (else ``None``).

    Sandboxed commands then run as ``nobody``, so the workspace is theirs.
    """
    return (65534, 65534) if os.geteuid() == 0 else None


def _own(fd: int) -> None:
    ids = owner_ids()
    if ids is not None:
        os.fchown(fd, *ids)


@dataclass(frozen=True)
class Workspace:
    """Where an environment's files live: a directory per thread.

    Args:
        root: The directory holding the workspaces (created when needed);
            ``None``: ``$PODIUM_HOME/workspaces``, i.e. ``.podium/workspaces``.
        private: One directory per agent (``<thread>/agents/<agent path>``) instead of
            one shared by every agent holding the tools (a team workspace).
        max_file_bytes: The largest file the file tools read or write whole.

    Example:
        >>> ws = Workspace("/tmp/podium-ws")
        >>> ws.directory("ticket-42").name
        'ticket-42'
        >>> ws.sub("research").directory("ticket-42").parts[-2:]
        ('ticket-42', 'research')
    """

    root: str | Path | None = None
    private: bool = False
    max_file_bytes: int = 1_000_000
    subdir: tuple[str, ...] = ()
    """Sub-directory path inside each thread's directory (see :meth:`sub`)."""

    def __post_init__(self) -> None:
        """Validate the size cap and the sub-directory names."""
        if (
            isinstance(self.max_file_bytes, bool)
            or not isinstance(self.max_file_bytes, int)
            or self.max_file_bytes <= 0
        ):
            raise ConfigurationError(
                f"Workspace(max_file_bytes={self.max_file_bytes!r}) must be a positive integer."
            )
        for part in self.subdir:
            if not _SAFE.match(part) or part in (".", ".."):
                raise ConfigurationError(
                    f"Workspace sub-directory {part!r} is not a plain name.",
                    fix="Use letters, digits, '.', '_' and '-' (e.g. ws.sub('research')).",
                )

    @property
    def base(self) -> Path:
        """The directory holding every thread's workspace."""
        return Path(self.root).absolute() if self.root is not None else default_root().absolute()

    def sub(self, name: str) -> Workspace:
        """The same workspaces, confined to the sub-directory ``name`` of each.

        Give a manager's specialist ``ws.sub("research")``: its tools see only
        ``research/``, while tools over ``ws`` see the whole tree.
        """
        return replace(self, subdir=(*self.subdir, name))

    def directory(self, thread_id: str, agent: str | None = None) -> Path:
        """The host path of a thread's workspace (for ``agent``, when private)."""
        path = self.base / _segment(thread_id or "_unthreaded")
        if self.private:
            path = path / "agents" / _segment(agent or "_agent")
        return path.joinpath(*self.subdir)

    def for_call(self, config: Mapping[str, Any] | None) -> Path:
        """The directory a tool call works in (its thread, its agent when private)."""
        configurable = (config or {}).get("configurable") or {}
        thread = str(configurable.get("thread_id") or "")
        meta = (config or {}).get("metadata") or {}
        agent = scoped(scope_of(config), str(meta.get("podium_agent") or ""))
        return self.directory(thread, agent or None)

    def ensure(self, directory: Path) -> Path:
        """Create ``directory`` (and its parents) if missing; return it."""
        if not directory.is_dir():
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            ids = owner_ids()
            if ids is not None:  # every level from the thread's directory down
                top = self.base
                for part in directory.relative_to(top).parts:
                    top = top / part
                    os.chown(top, *ids)
        return directory

    def delete(self, thread_id: str) -> bool:
        """Remove a thread's workspace (every agent's and sub-directory); ``True`` if it existed."""
        path = self.base / _segment(thread_id or "_unthreaded")
        if not path.exists():
            return False
        shutil.rmtree(path)
        return True


def relative_parts(path: str) -> list[str]:
    """The components of a model-given path inside the workspace (refusing escapes)."""
    text = path.strip()
    if text == _INSIDE or text.startswith(_INSIDE + "/"):
        text = text[len(_INSIDE) :].lstrip("/")
    elif text.startswith("/") or text.startswith("~"):
        raise PathRefused(f"{path!r} is an absolute path; use a path inside the workspace")
    if "\0" in text:
        raise PathRefused(f"{path!r} contains a NUL byte")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise PathRefused(f"{path!r} goes up with '..'; paths stay inside the workspace")
    return parts


@contextlib.contextmanager
def open_in(
    root: Path, path: str, flags: int = os.O_RDONLY, *, create_dirs: bool = False
) -> Iterator[int]:
    """An fd for ``path`` inside ``root``, never through a link; closed on exit.

    ``flags`` open the last component (``O_NOFOLLOW`` is always added); directories on
    the way are opened with ``O_NOFOLLOW | O_DIRECTORY`` (and created with
    ``create_dirs``). A path naming the root itself opens the root.

    Raises:
        PathRefused: An escape, a link, or something that is not a regular file or
            directory (devices, FIFOs, sockets).
        FileNotFoundError: The path does not exist (and was not to be created).
    """
    parts = relative_parts(path)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            try:
                nxt = os.open(
                    part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
                )
            except FileNotFoundError:
                if not create_dirs:
                    raise
                os.mkdir(part, 0o755, dir_fd=fd)
                nxt = os.open(
                    part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd
                )
                _own(nxt)
            except OSError as exc:
                raise _refused(path, exc) from None
            os.close(fd)
            fd = nxt
        if parts:
            try:
                # O_NONBLOCK: opening a FIFO planted by a command must not hang
                leaf = os.open(
                    parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=fd
                )
            except FileNotFoundError:
                raise
            except OSError as exc:
                raise _refused(path, exc) from None
            os.close(fd)
            fd = leaf
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise PathRefused(
                f"{path!r} is not a regular file or a directory (a device, FIFO or socket)"
            )
        if flags & os.O_CREAT:
            _own(fd)
        yield fd
    finally:
        os.close(fd)


def _refused(path: str, exc: OSError) -> Exception:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
        return PathRefused(f"{path!r} goes through a symbolic link or a non-directory; refused")
    return exc
