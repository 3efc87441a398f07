"""Long-lived programs in the sandbox: :class:`Sandbox`, for stdio MCP servers.

``MCPServer("git", command=..., sandbox=Sandbox(...))`` starts the server inside the
same bubblewrap sandbox, limits, network policy and secret handling as
:func:`~podium.environments.shell_tool` (:mod:`podium.environments._sandbox`,
:mod:`~podium.environments._network`, :mod:`~podium.environments._secrets`): one
implementation, started once per MCP session instead of once per command. What
differs, because a server lives as long as its session:

* **Limits.** Memory (address space per process), processes, file size and the
  ``/tmp`` size apply to the server for its whole life. CPU seconds apply only when
  ``Limits(cpu_seconds=...)`` is given (the per-command default, the timeout, would
  kill a server after that much CPU time in all). ``timeout`` and ``output`` are
  per-command limits and are refused here: each call's wait is ``MCPServer(timeout=)``.
* **Files.** ``/workspace`` is ``directory`` (read-write, or read-only with
  ``read_only=True``) or, without one, an empty private tmpfs that vanishes with the
  server. The server starts in ``/workspace``, so paths in its arguments and in tool
  calls name ``/workspace/...``, never the host path. ``python=True`` (the default)
  also shows the Python installation running podium read-only at its own paths --
  ``sys.prefix`` (the virtual environment), ``sys.base_prefix`` and the exec
  prefixes -- and puts ``sys.executable``'s directory first on ``PATH``, so
  ``command=sys.executable, args=["-m", "mcp_server_git", ...]`` and the venv's
  console scripts just work. Anything else the server needs (a script, a Node
  install under ``/opt``) goes in ``mounts=``.
* **User.** As for commands: the caller's uid, or ``nobody`` when podium runs as
  root. As root a writable ``directory`` must then belong to ``nobody`` (uid 65534)
  or be writable by others; anything else is a build-time error (podium does not
  change the owner of a directory it did not create).
* **Network.** ``"none"`` (default), ``"loopback"`` or an allow-list, through the same
  filtering proxy; its process lives exactly as long as the server's session and is
  stopped with it; a reconnect starts a fresh sandbox and a fresh proxy. The relay
  forwards the host loopback ports that listen when the server starts (a reconnect
  picks up newer ones); proxy-aware clients (``HTTP_PROXY``) reach any allowed host.
* **Environment.** ``PATH``, ``HOME=/workspace``, ``TMPDIR=/tmp``, ``LANG``,
  ``USER``; ``MCPServer(env=...)``; the secrets -- nothing else of podium's.
* **Secrets** are given as environment variables (never on a command line) and
  their values scrubbed from tool results, run events, errors and the server's
  stderr as podium forwards it.
* **Failure is loud.** bubblewrap missing or unable to start a sandbox is a
  :class:`~podium.errors.SandboxUnavailableError` when :func:`~podium.tools.mcp_tools`
  builds the tools (before any server starts); there is no unsandboxed fallback. A
  command the sandbox does not show, a missing ``directory`` or mount, or a
  ``directory`` ``nobody`` cannot write to is a
  :class:`~podium.errors.ConfigurationError` then too. A server that exits while
  starting is, as unsandboxed, a :class:`~podium.errors.ToolUnavailableError`
  (at build time, or mid-run: resume once it can start), which quotes its stderr
  and, when that names a missing file or module, says what to mount. The server
  dies with podium (``--die-with-parent``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import getpass
import os
import re
import stat
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

from podium._scrub import scrub_text
from podium.environments._netpolicy import NetworkPolicy, parse_network
from podium.environments._sandbox import (
    BASE_ENV,
    INSIDE,
    NOBODY,
    SYSTEM,
    Limits,
    bwrap_args,
    check_sandbox,
    launcher,
)
from podium.environments._secrets import Secret, check_secrets
from podium.errors import ConfigurationError, SandboxUnavailableError, ToolUnavailableError

if TYPE_CHECKING:
    from podium.environments._network import Route

__all__ = ["Sandbox", "ServerLaunch"]

_DEFAULT_LIMITS = Limits()
_START_FAILURE = re.compile(
    r"execvp|failed to execute|No such file or directory|can't open file|"
    r"No module named|Permission denied|not found|cannot open shared object",
    re.IGNORECASE,
)
_TAIL = 4000


def _python_dirs() -> list[str]:
    """The running interpreter's installation (and venv) outside the system view."""
    found = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    found.add(os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))))
    # "/" would show the whole host; an interpreter there has its libraries under /usr
    return sorted(d for d in found if d and d != "/" and not _visible_system(d))


def _visible_system(path: str) -> bool:
    real = os.path.realpath(path)
    return any(p == top or p.startswith(top + "/") for p in (path, real) for top in SYSTEM)


@dataclass(frozen=True, kw_only=True)
class Sandbox:
    """Run a stdio MCP server in podium's bubblewrap sandbox (see the module docs).

    Example:
        >>> import sys
        >>> from podium.environments import Sandbox
        >>> from podium.tools import MCPServer
        >>> git = MCPServer("repo", command=sys.executable,
        ...                 args=["-m", "mcp_server_git", "--repository", "/workspace"],
        ...                 sandbox=Sandbox(directory="/srv/repo"))
        >>> git.sandbox.network
        'none'
    """

    directory: str | Path | None = None
    """Host directory shown at ``/workspace`` (read-write unless ``read_only``);
    ``None``: an empty private tmpfs."""
    read_only: bool = False
    """Show ``directory`` read-only."""
    network: str | Sequence[str] = "none"
    """``"none"``, ``"loopback"`` or an allow-list like ``["api.github.com:443"]``."""
    mounts: Sequence[str | Path] = ()
    """Extra host directories visible read-only at their own paths."""
    secrets: Sequence[Secret] = ()
    """:class:`Secret` s the server gets as environment variables (values scrubbed)."""
    limits: Limits = field(default_factory=Limits)
    """Memory, processes, file size, ``/tmp`` size (and CPU seconds, if set) for the
    server's whole life; ``timeout`` and ``output`` do not apply (see the module docs)."""
    python: bool = True
    """Show podium's Python installation and venv read-only, ``sys.executable``'s
    directory first on ``PATH``."""

    def __post_init__(self) -> None:
        """Validate and normalise every field (paths absolute, lists as tuples)."""
        try:
            policy = parse_network(self.network)
        except ValueError as exc:
            raise self._bad(
                f"network: {exc}.", "Use 'none', 'loopback', or e.g. ['api.github.com:443']."
            ) from None
        if self.directory is not None:
            if not isinstance(self.directory, str | Path) or not str(self.directory):
                raise self._bad(f"directory={self.directory!r} is not a path.", "Pass a path.")
            object.__setattr__(self, "directory", os.path.abspath(self.directory))
        if isinstance(self.mounts, str | Path) or not all(
            isinstance(m, str | Path) for m in self.mounts
        ):
            raise self._bad(
                f"mounts={self.mounts!r} is not a list of paths.", "Pass mounts=['/opt/x']."
            )
        if not isinstance(self.limits, Limits):
            raise self._bad(f"limits={self.limits!r} is not a Limits.", "Pass Limits(...).")
        for name in ("timeout", "output"):
            if getattr(self.limits, name) != getattr(_DEFAULT_LIMITS, name):
                raise self._bad(
                    f"Limits({name}=...) is a per-command limit of shell_tool; a server lives "
                    "as long as its session.",
                    "Bound each call with MCPServer(timeout=...); leave Limits' timeout and "
                    "output at their defaults.",
                )
        for flag in ("read_only", "python"):
            if not isinstance(getattr(self, flag), bool):
                raise self._bad(f"{flag} must be True or False.", f"Pass {flag}=True or False.")
        object.__setattr__(self, "mounts", tuple(os.path.abspath(m) for m in self.mounts))
        object.__setattr__(self, "secrets", tuple(self.secrets))
        if policy.mode == "allow" and not isinstance(self.network, NetworkPolicy):
            object.__setattr__(self, "network", tuple(self.network))

    @staticmethod
    def _bad(what: str, fix: str) -> ConfigurationError:
        return ConfigurationError(f"Sandbox(...): {what}", fix=fix)

    @property
    def policy(self) -> NetworkPolicy:
        """The parsed network policy."""
        return parse_network(self.network)

    def visible(self) -> list[str]:
        """Host directories the server sees read-only at their own paths."""
        return [*(_python_dirs() if self.python else []), *(str(m) for m in self.mounts)]

    def path(self) -> str:
        """``PATH`` inside the sandbox."""
        base = BASE_ENV["PATH"]
        return f"{os.path.dirname(sys.executable)}:{base}" if self.python else base

    def check(self, server: str, command: str, env: Mapping[str, str] | None) -> str:
        """Check everything that can be checked before the server starts; return bwrap's version.

        Raises:
            SandboxUnavailableError: bubblewrap (or the network proxy) cannot run here.
            ConfigurationError: A directory, mount, secret or the command is not usable.
        """
        version = check_sandbox()
        if self.policy.routed:
            import importlib.util

            if importlib.util.find_spec("proxy") is None:
                raise SandboxUnavailableError(
                    f"MCP server {server!r}: network={self.policy.describe()!r} needs the "
                    "filtering proxy (the proxy.py package), which is not installed.",
                    fix="Install podium's dependencies again (`pip install proxy.py`), or use "
                    "network='none'.",
                )
            from podium.environments._network import sandbox_python

            sandbox_python()  # the relay's interpreter inside the sandbox, or the install hint
        where = f"MCP server {server!r}: Sandbox"
        for path in self.mounts:
            if not os.path.isdir(path):
                raise ConfigurationError(
                    f"{where}(mounts=...): {path!r} is not a directory.",
                    fix="Mount directories that exist.",
                )
        if self.directory is not None:
            self._check_directory(where, str(self.directory))
        check_secrets(self.secrets, reserved=[*BASE_ENV, "HOME", "USER", *(env or {})], where=where)
        self._check_command(server, command)
        return version

    def _check_directory(self, where: str, directory: str) -> None:
        try:
            info = os.stat(directory)
        except OSError as exc:
            raise ConfigurationError(
                f"{where}(directory={directory!r}): {exc.strerror}.",
                fix="Create the directory first, or leave directory= unset for an empty one.",
            ) from None
        if not stat.S_ISDIR(info.st_mode):
            raise ConfigurationError(
                f"{where}(directory={directory!r}) is not a directory.", fix="Pass a directory."
            )
        if (
            os.geteuid() == 0
            and not self.read_only
            and info.st_uid != NOBODY
            and not info.st_mode & stat.S_IWOTH
        ):
            raise ConfigurationError(
                f"{where}(directory={directory!r}): podium runs as root, so the server runs "
                f"as nobody (uid {NOBODY}), who cannot write to this directory (owner uid "
                f"{info.st_uid}).",
                fix=f"`chown -R {NOBODY}:{NOBODY} {directory}` to let the server write there, "
                "or pass read_only=True.",
            )

    def resolve(self, command: str) -> str | None:
        """``command``'s path: itself if it has a ``/``, else found on the sandbox's PATH."""
        if "/" in command:
            return command
        for folder in self.path().split(":"):
            found = os.path.join(folder, command)
            if os.access(found, os.X_OK) and not os.path.isdir(found):
                return found
        return None

    def _check_command(self, server: str, command: str) -> None:
        found = self.resolve(command)
        if found is None:
            raise ConfigurationError(
                f"MCP server {server!r}: {command!r} is not on the sandbox's PATH ({self.path()}).",
                fix="Give the full path of a program the sandbox shows (under /usr, "
                "podium's Python, or a directory in Sandbox(mounts=[...])).",
            )
        command = found
        if command.startswith(INSIDE + "/"):
            return  # in directory=, checked by the sandbox when it starts
        shown = [*SYSTEM, *self.visible()]
        if not all(
            any(p == top or p.startswith(top.rstrip("/") + "/") for top in shown)
            for p in (os.path.abspath(command), os.path.realpath(command))
        ):
            raise ConfigurationError(
                f"MCP server {server!r}: {command!r} is not visible in its sandbox, which "
                f"shows only {', '.join(shown)} and /workspace.",
                fix=f"Add its directory: Sandbox(mounts=[{os.path.dirname(command)!r}]).",
            )


def _stop_later(route: Route, started: asyncio.Future[Route]) -> None:
    if not started.cancelled() and started.exception() is None:
        threading.Thread(target=route.__exit__, args=(None, None, None), daemon=True).start()


class _Stderr:
    """The server's stderr: forwarded (scrubbed) to podium's, the tail kept."""

    def __init__(self, forward: TextIO) -> None:
        read, write = os.pipe()
        self.writer: TextIO = os.fdopen(write, "w")
        self._tail: collections.deque[bytes] = collections.deque()
        self._kept = 0
        self._thread = threading.Thread(
            target=self._pump, args=(read, forward), name="podium-mcp-stderr", daemon=True
        )
        self._thread.start()

    def _pump(self, read: int, forward: TextIO) -> None:
        with os.fdopen(read, "rb") as stream:
            for line in stream:
                self._tail.append(line)
                self._kept += len(line)
                while self._kept > _TAIL and len(self._tail) > 1:
                    self._kept -= len(self._tail.popleft())
                with contextlib.suppress(OSError, ValueError):
                    forward.write(scrub_text(line.decode("utf-8", "replace")))
                    forward.flush()

    def release(self) -> None:
        """Close podium's copy of the write end (the server holds its own)."""
        with contextlib.suppress(OSError):
            self.writer.close()

    def tail(self, wait: float) -> str:
        """The last lines the server wrote, once it closed stderr (or ``wait`` passed)."""
        self.release()
        self._thread.join(wait)
        return scrub_text(b"".join(self._tail).decode("utf-8", "replace")).strip()


class ServerLaunch:
    """One start of a sandboxed stdio server: its command line, environment and route.

    ``async with`` it around the stdio transport: it starts the network route (if the
    policy needs one) and stops it on exit, so the route lives exactly as long as the
    session. :attr:`argv`, :attr:`env` and :attr:`errlog` are what to start.
    """

    def __init__(
        self,
        sandbox: Sandbox,
        server: str,
        command: str,
        args: Sequence[str],
        env: Mapping[str, str] | None,
        stderr: TextIO,
    ) -> None:
        self.sandbox, self.server = sandbox, server
        self._command = [sandbox.resolve(command) or command, *args]
        self._env = dict(env or {})
        self._forward = stderr
        self._route: Route | None = None
        self._stderr: _Stderr | None = None
        self.argv: list[str] = []
        self.env: dict[str, str] = {}

    @property
    def errlog(self) -> TextIO:
        """Where the server's stderr goes (a pipe podium reads)."""
        if self._stderr is None:
            raise RuntimeError("ServerLaunch.errlog is there only inside `async with launch`")
        return self._stderr.writer

    async def __aenter__(self) -> ServerLaunch:
        sandbox = self.sandbox
        root = os.geteuid() == 0
        env = {
            **BASE_ENV,
            "PATH": sandbox.path(),
            "HOME": INSIDE,
            "USER": "nobody" if root else getpass.getuser(),
            **self._env,
        }
        env.update({s.name: s.value() for s in sandbox.secrets})
        binds: list[tuple[int | str, str]] = []
        prefix: list[str] = []
        if sandbox.policy.routed:
            from podium.environments._network import NET_DIR, Route

            route = Route(sandbox.policy, NOBODY if root else None)
            starting = asyncio.ensure_future(asyncio.to_thread(route.__enter__))  # ~0.2 s
            try:
                await asyncio.shield(starting)
            except asyncio.CancelledError:  # connect timeout: stop the proxy once it is up
                starting.add_done_callback(lambda done: _stop_later(route, done))
                raise
            self._route = route
            binds.append((str(route.dir), NET_DIR))
            prefix = route.prefix()
            env.update(route.env())
        try:
            self.argv = [
                *launcher(sandbox.limits, cpu=False),
                *bwrap_args(
                    None if sandbox.directory is None else str(sandbox.directory),
                    sandbox.limits,
                    mounts=sandbox.visible(),
                    binds=binds,
                    read_only=sandbox.read_only,
                ),
                *prefix,
                *self._command,
            ]
        except BaseException:
            await self._stop_route()
            raise
        self.env = env
        self._stderr = _Stderr(self._forward)
        return self

    def started(self) -> None:
        """The server process exists: podium's copy of its stderr pipe is closed."""
        if self._stderr is not None:
            self._stderr.release()

    def failure(self, exc: BaseException) -> ToolUnavailableError:
        """The error for a server that ended before its session was initialised.

        A :class:`~podium.errors.ToolUnavailableError` (``reached=False``), as for an
        unsandboxed server that cannot start -- at build time and mid-run alike, so a
        run stops and resumes once the server can start -- quoting the server's stderr
        and, when it reads like a file or module the sandbox does not show, what to mount.
        """
        said = self._stderr.tail(2.0) if self._stderr is not None else ""
        lines = "\n".join(said.splitlines()[-8:])
        if said and _START_FAILURE.search(said):
            why = (
                f"it said:\n{lines}\nLikely cause: a program, script or module it needs is "
                "not visible in the sandbox, which shows only /usr, /etc, /bin, /lib*, "
                "podium's Python (unless python=False), Sandbox(mounts=...) and "
                "directory= (at /workspace)."
            )
            fix = (
                "Mount the directory holding the server's program or script with "
                "Sandbox(mounts=[...]), refer to files in directory= as /workspace/..., or "
                "install the server into podium's Python environment"
            )
        elif said:
            why, fix = f"its stderr ends:\n{lines}", "Fix what the server reports"
        else:
            limits = self.sandbox.limits
            why = (
                "it wrote nothing to stderr (it may have hit the sandbox's memory limit, "
                f"{limits.memory:,} bytes, or its process limit, {limits.processes})"
            )
            fix = "Raise Sandbox(limits=Limits(memory=...)) if the server needs more"
        return ToolUnavailableError(
            f"MCP server {self.server!r} could not start in its sandbox "
            f"({type(exc).__name__}); {why}",
            fix=f"{fix}; then resume the run with app.invoke(None, config).",
            server=self.server,
            reached=False,
        )

    async def _stop_route(self) -> None:
        route, self._route = self._route, None
        if route is not None:
            await asyncio.to_thread(route.__exit__, None, None, None)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._stderr is not None:
            self._stderr.release()
        await self._stop_route()
