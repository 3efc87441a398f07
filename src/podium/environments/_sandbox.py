"""Running one command in a bubblewrap sandbox, under per-call limits.

Each command runs as ``prlimit <limits> -- bwrap <namespaces and mounts> -- /bin/sh
-c COMMAND`` (``prlimit`` is util-linux's; it sets the resource limits on itself and
execs bwrap, so every process of the command inherits them, and Python never
forks with a ``preexec_fn``). What the sandbox is:

* **Namespaces**: its own user, PID, IPC, UTS, cgroup (when the kernel allows) and
  network namespace; nested user namespaces are disabled (``--disable-userns``);
  ``--new-session`` (no terminal injection); ``--die-with-parent`` (the command dies
  with the process that runs it).
* **Files**: a read-only view of the system -- ``/usr``, ``/etc``, the ``/bin``,
  ``/sbin`` and ``/lib*`` links or directories, and any ``mounts=`` -- plus a new
  ``/proc``, a minimal ``/dev``, a private ``/tmp`` (tmpfs, size-capped) and the
  workspace read-write at ``/workspace`` (bound from an open directory descriptor, so
  the host path is never looked up again). Nothing else exists: not the host's home
  directories, not ``/root``, ``/home``, ``/run``, ``/var``, ``/srv``, ``/opt``, ``/mnt``,
  not the podium database.
* **User**: the caller's own uid, in a user namespace that cannot create more
  (``--disable-userns``). When podium runs as root, the command runs as ``nobody``
  (uid 65534) with no capabilities, no bounding set and ``no_new_privs``: a root
  process keeps root's file permissions in any namespace (``/etc/shadow`` would be
  readable) and the kernel does not apply the process limit to root. bwrap then sets
  the sandbox up as root without a user namespace (so it can reach workspaces under
  directories only root may enter) and ``setpriv`` switches to ``nobody``; the
  workspace belongs to ``nobody``. (A command can then create user namespaces of its
  own; they give it nothing outside the sandbox.)
* **Limits** (:class:`Limits`): wall-clock timeout (the whole process tree is killed:
  killing bwrap ends the sandbox's PID namespace, which the kernel empties), CPU
  seconds, address space per process, number of processes of the user, file size,
  ``/tmp`` size, output kept (head and tail, with a note).

``sandbox="none"`` runs the same command under the same limits and environment but
with no isolation at all; it is an explicit opt-in and every call says so.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast

from podium.errors import ConfigurationError, SandboxUnavailableError

__all__ = [
    "BASE_ENV",
    "INSIDE",
    "NOBODY",
    "SYSTEM",
    "Limits",
    "Outcome",
    "bwrap_args",
    "bwrap_version",
    "check_sandbox",
    "launcher",
    "run_command",
]

INSIDE = "/workspace"
"""Where the workspace appears inside the sandbox (the command's working directory)."""

NOBODY = 65534
"""The uid and gid commands run as when podium runs as root."""

BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
    "TMPDIR": "/tmp",
}
"""The environment every sandboxed process starts from (podium's own is not passed)."""

_INSTALL = (
    "Install bubblewrap: `apt-get install bubblewrap` (Debian, Ubuntu), `dnf install "
    "bubblewrap` (Fedora), `pacman -S bubblewrap` (Arch). It needs unprivileged user "
    "namespaces: on Ubuntu 24.04+ allow them for bwrap (AppArmor's userns restriction), on "
    "older Debian set `sysctl kernel.unprivileged_userns_clone=1`. Only if you accept running "
    "commands with no isolation at all, pass sandbox='none'."
)


def _positive(name: str, value: float | None, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or value != value
        or value <= 0
        or value == float("inf")
    ):
        raise ConfigurationError(
            f"Limits({name}={value!r}) must be a finite number above 0.",
            fix=f"Pass {name}= a positive number (see podium.environments.Limits).",
        )


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Per-command limits of a sandboxed command (every process of it inherits them).

    Example:
        >>> Limits(timeout=10, memory=512 * 2**20).cpu
        10
    """

    timeout: float = 30.0
    """Wall-clock seconds; then the command and every process it started are killed."""
    cpu_seconds: int | None = None
    """CPU seconds per process (``RLIMIT_CPU``); ``None``: the timeout, rounded up."""
    memory: int = 1 << 30
    """Bytes of address space per process (``RLIMIT_AS``; 1 GiB). Runtimes that reserve
    large address ranges up front (the JVM, Go, Node) may need more."""
    processes: int = 128
    """Processes of the command's user at once (``RLIMIT_NPROC``): stops fork bombs. The
    kernel counts every process of that uid, so concurrent commands share it."""
    file_size: int = 256 << 20
    """Largest file a command may write, in bytes (``RLIMIT_FSIZE``)."""
    tmp_size: int = 64 << 20
    """Size of the command's private ``/tmp``, in bytes."""
    output: int = 32_000
    """Bytes of output (stdout and stderr, interleaved) given back; past it the head and
    the tail are kept with a note of how much was left out."""

    def __post_init__(self) -> None:
        """Validate every limit."""
        _positive("timeout", self.timeout)
        _positive("cpu_seconds", self.cpu_seconds, allow_none=True)
        for name in ("memory", "processes", "file_size", "tmp_size", "output"):
            _positive(name, getattr(self, name))

    @property
    def cpu(self) -> int:
        """The CPU limit in force, in seconds."""
        return int(self.cpu_seconds or -(-self.timeout // 1))


@dataclass
class Outcome:
    """What one command did."""

    exit_code: int | None
    """The shell's exit status (128 + N when a signal N killed it); ``None`` if killed
    by the timeout."""
    output: str
    """What it printed (stdout and stderr interleaved), truncated to the limit."""
    bytes_out: int
    """How many bytes it printed in all."""
    truncated: bool
    """Whether :attr:`output` leaves some out."""
    duration: float
    """Wall-clock seconds."""
    timed_out: bool = False
    """Killed by the wall-clock timeout (with every process it started)."""
    sandbox: str = ""
    """``bubblewrap X.Y.Z`` or ``none``."""
    notes: list[str] = field(default_factory=list)
    """Anything the caller should tell the model (limits hit)."""


def _which(name: str) -> str | None:
    found = shutil.which(name) or shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin")
    return found


@functools.cache
def bwrap_version() -> str:
    """The version of the ``bwrap`` found (``bubblewrap X.Y.Z``; raises if there is none)."""
    binary = _which("bwrap")
    if binary is None:
        raise SandboxUnavailableError(
            "Cannot run commands in a sandbox: bubblewrap (`bwrap`) is not installed.",
            fix=_INSTALL,
        )
    done = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "bubblewrap (unknown version)"


SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
"""The host directories every sandbox sees, read-only."""


def _system_view() -> list[str]:
    """Bwrap arguments for the read-only system view."""
    args = ["--ro-bind", "/usr", "/usr"]
    for top in SYSTEM[1:-1]:
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    args += ["--ro-bind", "/etc", "/etc"]
    return args


def _under(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _mounts(mounts: Sequence[str | Path], taken: Sequence[str]) -> list[str]:
    """Bwrap arguments binding ``mounts`` read-only at their own paths.

    Bound last, so a mount under ``/tmp`` is not hidden by the private ``/tmp``. The
    directories above a mount that bwrap creates get mode 0755 (as root bwrap would
    make them 0700, and ``nobody`` could not reach the mount); one already inside a
    bound directory is left alone.
    """
    args: list[str] = []
    bound = list(taken)
    for path in sorted({os.path.abspath(m) for m in mounts}, key=len):
        if _under(path, bound):
            continue  # inside a directory already visible
        parent = os.path.dirname(path)
        missing = []
        while parent != "/" and not _under(parent, bound):
            missing.append(parent)
            parent = os.path.dirname(parent)
        for directory in reversed(missing):
            args += ["--perms", "0755", "--dir", directory]
        args += ["--ro-bind", path, path]
        bound.append(path)
    return args


def launcher(limits: Limits, *, cpu: bool = True) -> list[str]:
    """``prlimit`` setting ``limits`` on itself, then exec'ing what follows its ``--``.

    ``cpu=False`` leaves CPU time unlimited unless ``limits.cpu_seconds`` is set (a
    long-lived process, such as a sandboxed MCP server, would otherwise be killed once
    its lifetime's CPU time reached the per-command default).
    """
    prlimit = _which("prlimit")
    if prlimit is None:
        raise SandboxUnavailableError(
            "Cannot set a command's limits: util-linux's `prlimit` is not installed.",
            fix="Install util-linux (`apt-get install util-linux`).",
        )
    seconds = limits.cpu if cpu else limits.cpu_seconds
    return [
        prlimit,
        *([f"--cpu={seconds}:{seconds}"] if seconds is not None else []),
        f"--as={limits.memory}:{limits.memory}",
        f"--nproc={limits.processes}:{limits.processes}",
        f"--fsize={limits.file_size}:{limits.file_size}",
        "--core=0:0",
        "--",
    ]


Source = int | str
"""What bwrap binds: an open directory descriptor (``--bind-fd``: the host path is not
looked up again) or a host path (for launchers that cannot pass descriptors)."""


def _bind(source: Source, target: str, *, read_only: bool = False) -> list[str]:
    if isinstance(source, int):
        return ["--ro-bind-fd" if read_only else "--bind-fd", str(source), target]
    return ["--ro-bind" if read_only else "--bind", source, target]


def bwrap_args(
    workspace: Source | None,
    limits: Limits,
    *,
    mounts: Sequence[str | Path] = (),
    binds: Sequence[tuple[Source, str]] = (),
    read_only: bool = False,
) -> list[str]:
    """The bwrap command line up to the command (see the module docs for what it does).

    ``workspace`` is bound at ``/workspace`` (read-only if ``read_only``); ``None``
    makes ``/workspace`` an empty private tmpfs (``limits.tmp_size``). ``binds`` are
    extra read-write directories, as (descriptor or host path, path inside). As root,
    the line ends with ``setpriv`` switching to ``nobody``.
    """
    binary = _which("bwrap")
    if binary is None:
        bwrap_version()  # raises the install hint
    root = os.geteuid() == 0
    # as root, bwrap sets the sandbox up privileged (no user namespace, so the kernel
    # counts the command's processes under nobody's RLIMIT_NPROC) and keeps only the
    # two capabilities setpriv needs to become nobody; setpriv drops them and the
    # bounding set before the command runs
    users = (
        ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        if root
        else ["--unshare-user", "--disable-userns"]
    )
    args = [
        str(binary),
        *users,
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-uts",
        "--unshare-net",
        "--unshare-cgroup-try",
        "--die-with-parent",
        "--new-session",
        "--hostname",
        "sandbox",
        *_system_view(),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--perms",
        "1777",
        "--size",
        str(limits.tmp_size),
        "--tmpfs",
        "/tmp",
        "--perms",
        "0755",
        "--dir",
        "/run",
    ]
    if workspace is None:
        args += ["--perms", "1777", "--size", str(limits.tmp_size), "--tmpfs", INSIDE]
    else:
        args += ["--dir", INSIDE, *_bind(workspace, INSIDE, read_only=read_only)]
    for source, target in binds:
        args += _bind(source, target)
    args += _mounts(mounts, [*SYSTEM, "/proc", "/dev", INSIDE, *(t for _, t in binds)])
    args += ["--chdir", INSIDE, "--"]
    if root:
        setpriv = _which("setpriv")
        if setpriv is None:
            raise SandboxUnavailableError(
                "Running as root, podium runs sandboxed commands as nobody with util-linux's "
                "`setpriv`, which is not installed.",
                fix="Install util-linux (`apt-get install util-linux`).",
            )
        args += [
            setpriv,
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
        ]
    return args


@functools.cache
def check_sandbox() -> str:
    """Start one trivial sandbox (once per process); return bubblewrap's version.

    Raises:
        SandboxUnavailableError: bwrap is missing or cannot create its namespaces here,
            with what it said and how to fix it.
    """
    version = bwrap_version()
    fd = os.open("/", os.O_PATH | os.O_DIRECTORY)
    try:
        done = subprocess.run(
            [*launcher(Limits()), *bwrap_args(fd, Limits()), "/bin/sh", "-c", "true"],
            pass_fds=(fd,),
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
            env={"PATH": "/usr/bin:/bin"},
        )
    finally:
        os.close(fd)
    if done.returncode != 0:
        raise SandboxUnavailableError(
            f"bubblewrap ({version}) is installed but cannot start a sandbox here: "
            f"{done.stderr.strip()[-400:] or f'exit status {done.returncode}'}.",
            fix=_INSTALL,
        )
    return version


class _Capture:
    """Keeps the head and the tail of a stream, and counts every byte."""

    def __init__(self, limit: int) -> None:
        self.head_limit = limit - limit // 2
        self.tail_limit = limit // 2
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk and self.tail_limit:
            self.tail += chunk
            del self.tail[: max(0, len(self.tail) - self.tail_limit)]

    def text(self) -> tuple[str, bool]:
        kept = len(self.head) + len(self.tail)
        if kept >= self.total:
            return (bytes(self.head) + bytes(self.tail)).decode("utf-8", "replace"), False
        note = (
            f"\n[... output truncated: {self.total:,} bytes in all; the first "
            f"{len(self.head):,} and the last {len(self.tail):,} are shown ...]\n"
        )
        head = bytes(self.head).decode("utf-8", "replace")
        return head + note + bytes(self.tail).decode("utf-8", "replace"), True


def _sandbox_init(info: int | None) -> int | None:
    """The pid of the sandbox's PID 1, from bwrap's ``--info-fd`` (``None``: unknown)."""
    if info is None:
        return None
    data = b""
    os.set_blocking(info, False)  # bwrap wrote it when the sandbox started
    with contextlib.suppress(OSError):
        while chunk := os.read(info, 4096):
            data += chunk
    found = re.search(rb'"child-pid":\s*(\d+)', data)
    return int(found.group(1)) if found else None


def _kill(proc: subprocess.Popen[bytes], info: int | None) -> None:
    """Kill the command and every process it started, and wait until they are gone.

    Killing the sandbox's PID 1 makes the kernel kill everything in its PID namespace;
    PID 1 is reaped (by bwrap, which then exits) only once they all are.
    """
    init = _sandbox_init(info)
    if init is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(init, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):  # bwrap itself, or an unsandboxed group
        os.killpg(proc.pid, signal.SIGKILL)


def run_command(
    argv: Sequence[str],
    *,
    limits: Limits,
    env: Mapping[str, str],
    pass_fds: Sequence[int] = (),
    cwd: str | None = None,
    sandbox: str = "",
    info: tuple[int, int] | None = None,
) -> Outcome:
    """Run ``argv`` (a launcher line built here) and collect its output within the limits.

    ``info``: the pipe whose write end was given to :func:`launch_line` as ``info_fd``
    (the write end is passed to bwrap and closed here; the caller closes the read end).
    """
    started = time.monotonic()
    capture = _Capture(limits.output)
    try:
        proc = _start(argv, env, [*pass_fds, *(info[1:] if info else ())], cwd)
    finally:
        if info is not None:
            os.close(info[1])
    stdout = cast("IO[bytes]", proc.stdout)  # stdout=PIPE above
    deadline = started + limits.timeout
    timed_out = False
    with selectors.DefaultSelector() as selector:
        selector.register(stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                _kill(proc, info[0] if info else None)
                break
            if not selector.select(min(left, 1.0)):
                continue
            chunk = os.read(stdout.fileno(), 65536)
            if not chunk:
                break
            capture.add(chunk)
    stdout.close()
    code = proc.wait()
    return _outcome(capture, code, timed_out, time.monotonic() - started, limits, sandbox)


def _start(
    argv: Sequence[str], env: Mapping[str, str], pass_fds: Sequence[int], cwd: str | None
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(env),
        pass_fds=tuple(pass_fds),
        cwd=cwd,
        start_new_session=True,
    )


def _outcome(
    capture: _Capture, code: int, timed_out: bool, duration: float, limits: Limits, sandbox: str
) -> Outcome:
    output, truncated = capture.text()
    notes = []
    if timed_out:
        notes.append(
            f"the command did not finish within {limits.timeout:g} s: it was killed, with "
            "every process it started"
        )
    elif code in (128 + signal.SIGXCPU, 128 + signal.SIGKILL, -signal.SIGKILL):
        notes.append(
            f"the command was killed (exit status {code}); it may have hit the CPU limit "
            f"({limits.cpu} s)"
        )
    if re.search(r"Cannot fork|Resource temporarily unavailable", output):
        notes.append(f"the command hit the process limit ({limits.processes})")
    if re.search(r"MemoryError|Cannot allocate memory|out of memory", output):
        notes.append(f"the command may have hit the memory limit ({limits.memory:,} bytes)")
    return Outcome(
        exit_code=None if timed_out else code,
        output=output,
        bytes_out=capture.total,
        truncated=truncated,
        duration=duration,
        timed_out=timed_out,
        sandbox=sandbox,
        notes=notes,
    )


def launch_line(
    command: str,
    workspace_fd: int,
    limits: Limits,
    *,
    sandbox: str,
    mounts: Sequence[str | Path] = (),
    binds: Sequence[tuple[Source, str]] = (),
    prefix: Sequence[str] = (),
    info_fd: int | None = None,
) -> list[str]:
    """The full command line: limits, the sandbox (unless ``none``), the shell.

    ``info_fd``: where bwrap writes ``{"child-pid": N}`` (the sandbox's PID 1).
    """
    shell = [*prefix, "/bin/sh", "-c", command]
    if sandbox == "none":
        return [*launcher(limits), *shell]
    line = bwrap_args(workspace_fd, limits, mounts=mounts, binds=binds)
    if info_fd is not None:
        line[1:1] = ["--info-fd", str(info_fd)]
    return [*launcher(limits), *line, *shell]
