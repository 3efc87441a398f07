"""The sandbox's only route out: a filtering proxy per command, and a relay inside.

A sandboxed command always has its own network namespace. For ``network="none"``
that is all. For ``"loopback"`` and allow-lists, one command gets one route:

1. **Outside**, a `proxy.py <https://github.com/abhinavsingh/proxy.py>`_ process
   (the PyPI package ``proxy.py``: a maintained, dependency-free HTTP/HTTPS proxy
   with a plugin API, BSD licensed) listens on a Unix socket in a private temporary
   directory. Its plugin (:mod:`podium.environments._proxy_plugin`) allows or refuses
   each request and ``CONNECT`` by host and port, answering refusals with 403, and
   logs every attempt. We chose it over mitmproxy (TLS interception we do not want,
   and a large dependency tree), pproxy (unmaintained since 2024) and writing our own
   (the brief, and every proxy's history of parsing bugs, say not to).
2. **Inside**, a small relay (Python's standard library, run by the sandbox's
   ``python3``) listens on ``127.0.0.1:3128`` -- ``HTTP_PROXY``/``HTTPS_PROXY`` point
   there, so curl, pip, git, requests and httpx go through it -- and on every port
   something listens on at the host's loopback when the command starts, which it
   forwards with ``CONNECT`` (so plain TCP clients such as ``psql -h 127.0.0.1``
   reach allowed host services). Every byte still passes the proxy, so the plugin is
   the one place that decides, and sees (and reports) every refused connection.

The Unix socket's directory is bound into the sandbox; the network namespace has no
other way out. Costs: starting the proxy (about 0.2 s) per command that has a route;
``network="none"`` costs nothing. What the proxy cannot see: it decides on the host
name the client asks for (``CONNECT pypi.org:443``), not on what that name resolves
to, and it does not look inside TLS.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import podium
from podium.environments._netpolicy import NetworkPolicy
from podium.errors import SandboxUnavailableError

__all__ = ["RELAY", "Route", "host_loopback_ports", "sandbox_python"]

PROXY_PORT = 3128
"""Where the relay listens for proxy-aware clients inside the sandbox."""
NET_DIR = "/run/podium-net"
"""Where the proxy's socket directory appears inside the sandbox."""
_MAX_FORWARDS = 200

RELAY = r"""
import os, selectors, socket, sys, threading
sock, proxy_port = sys.argv[1], int(sys.argv[2])
cut = sys.argv.index("--")
ports, cmd = [int(p) for p in sys.argv[3:cut]], sys.argv[cut + 1:]
def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
def handle(c, port):
    try:
        u = socket.socket(socket.AF_UNIX)
        u.connect(sock)
        if port:
            u.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (port, port))
            head = b""
            while b"\r\n\r\n" not in head:
                d = u.recv(4096)
                if not d:
                    raise OSError("proxy closed")
                head += d
            status, rest = head.split(b"\r\n", 1)[0], head.split(b"\r\n\r\n", 1)[1]
            if status.split()[1:2] != [b"200"]:
                raise OSError("refused")
            if rest:
                c.sendall(rest)
        threading.Thread(target=pipe, args=(c, u), daemon=True).start()
        pipe(u, c)
    except OSError:
        c.close()
def serve(listeners):
    with selectors.DefaultSelector() as sel:
        for listener, port in listeners:
            sel.register(listener, selectors.EVENT_READ, port)
        while True:
            for key, _ in sel.select():
                try:
                    c, _ = key.fileobj.accept()
                except OSError:
                    continue
                threading.Thread(target=handle, args=(c, key.data), daemon=True).start()
threading.stack_size(256 * 1024)
listeners = []
for port in [0] + ports:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("127.0.0.1", port or proxy_port))
    except OSError:
        continue
    listener.listen(64)
    listeners.append((listener, port))
threading.Thread(target=serve, args=(listeners,), daemon=True).start()
pid = os.fork()
if pid == 0:
    os.execv(cmd[0], cmd)
status = os.waitpid(pid, 0)[1]
code = os.waitstatus_to_exitcode(status)
os._exit(code if code >= 0 else 128 - code)
"""
"""The relay run inside the sandbox (``python3 -I -S -c RELAY SOCKET PORT PORTS... -- CMD``)."""


def host_loopback_ports() -> list[int]:
    """TCP ports something listens on at the host's loopback (or every address)."""
    ports: set[int] = set()
    for table, loopback in (
        ("/proc/net/tcp", ("0100007F", "00000000")),
        ("/proc/net/tcp6", ("00000000000000000000000001000000", "0" * 32)),
    ):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 4 or fields[3] != "0A":  # LISTEN
                continue
            address, port = fields[1].split(":")
            if address in loopback or (len(address) == 8 and address.endswith("7F")):
                ports.add(int(port, 16))
    return sorted(ports)


def sandbox_python() -> str:
    """The system python3 the relay runs on inside the sandbox (raises the install hint)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3", "/bin/python3"):
        if os.path.exists(candidate):
            return candidate
    raise SandboxUnavailableError(
        "A network route for a sandboxed command needs python3 in the sandbox's system view "
        "(/usr/bin/python3); none was found.",
        fix="Install the system python3 (`apt-get install python3`), or use network='none'.",
    )


class Route:
    """One command's route out: the proxy process, and the relay's command line.

    Use as a context manager around the command; :meth:`attempts` lists what the
    command tried (``{"host", "port", "allowed"}``) once it ended.
    """

    def __init__(self, policy: NetworkPolicy, uid: int | None) -> None:
        self.policy = policy
        self.uid = uid
        self.dir = Path(tempfile.mkdtemp(prefix="podium-net-"))
        self.socket = self.dir / "proxy.sock"
        self.log = self.dir / "connections.jsonl"
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir_fd = -1

    def __enter__(self) -> Route:
        src = str(Path(podium.__file__).resolve().parents[1])
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p),
            "PODIUM_NET_POLICY": self.policy.to_json(),
            "PODIUM_NET_LOG": str(self.log),
        }
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "proxy",
                "--unix-socket-path",
                str(self.socket),
                "--num-acceptors",
                "1",
                "--num-workers",
                "1",
                "--plugins",
                "podium.environments._proxy_plugin.PolicyPlugin",
                "--log-level",
                "CRITICAL",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            cwd=self.dir,
        )
        try:
            self._wait_ready()
            if self.uid is not None:
                os.chown(self.dir, self.uid, self.uid)
                os.chown(self.socket, self.uid, self.uid)
            self._dir_fd = os.open(self.dir, os.O_PATH | os.O_DIRECTORY)
        except BaseException:
            self.__exit__(None, None, None)  # no proxy, pipe or directory left behind
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                err = (self._proc.stderr.read() if self._proc.stderr else b"").decode()[-400:]
                raise SandboxUnavailableError(
                    f"The network proxy for a sandboxed command did not start: {err.strip()}",
                    fix="Check that the proxy.py package is installed (a podium dependency).",
                )
            if self.socket.exists():
                probe = socket.socket(socket.AF_UNIX)
                try:
                    probe.connect(str(self.socket))
                    return
                except OSError:
                    pass
                finally:
                    probe.close()
            time.sleep(0.01)
        raise SandboxUnavailableError(
            "The network proxy for a sandboxed command did not start within 20 s.",
            fix="Retry; on a very busy machine use network='none' where possible.",
        )

    def forwards(self) -> list[int]:
        """Host loopback ports the relay forwards (all that listen, up to 200)."""
        # every one, allowed or not: the proxy decides, so a refusal is seen (an event)
        return [p for p in host_loopback_ports() if p != PROXY_PORT][:_MAX_FORWARDS]

    def prefix(self) -> list[str]:
        """The relay's command line (the command follows ``--``)."""
        sock = f"{NET_DIR}/{self.socket.name}"
        ports = [str(p) for p in self.forwards()]
        return [sandbox_python(), "-I", "-S", "-c", RELAY, sock, str(PROXY_PORT), *ports, "--"]

    def bind(self) -> tuple[int, str]:
        """The socket directory's descriptor and where the sandbox sees it."""
        return self._dir_fd, NET_DIR

    def env(self) -> dict[str, str]:
        """Proxy variables for the command (loopback traffic goes straight to the relay)."""
        url = f"http://127.0.0.1:{PROXY_PORT}"
        names = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
        direct = "localhost,127.0.0.1,::1"
        return {**dict.fromkeys(names, url), "no_proxy": direct, "NO_PROXY": direct}

    def attempts(self) -> list[dict[str, Any]]:
        """Every connection the command tried through the proxy, in order."""
        try:
            lines = self.log.read_text().splitlines()
        except OSError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
            if self._proc.stderr is not None:
                self._proc.stderr.close()
        if self._dir_fd >= 0:
            os.close(self._dir_fd)
        shutil.rmtree(self.dir, ignore_errors=True)
