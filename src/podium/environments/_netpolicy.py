"""Network policies: ``"none"``, ``"loopback"``, or an allow-list of hosts and ports.

Standard library only: the filtering proxy's plugin (a separate process) imports it.

* ``"none"`` (the default): the command has its own network namespace with only its
  own loopback interface (as Docker's ``--network none``): programs of one command
  can talk to each other over ``127.0.0.1``; nothing outside the sandbox is
  reachable, the host's own loopback services included.
* ``"loopback"``: also the services listening on the *host's* loopback (a dev
  database, a local model server): any port on ``127.0.0.0/8``, ``::1`` or
  ``localhost``, and nothing else.
* an allow-list, e.g. ``["pypi.org:443", "*.github.com", "127.0.0.1:8080"]``: exactly
  those hosts (``*.`` matches sub-domains; no port means any port).

The last two go through a filtering proxy (see :mod:`podium.environments._network`);
each connection it refuses is a run event.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Endpoint", "NetworkPolicy", "is_loopback", "parse_network"]

_HOST = re.compile(
    r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$"
)


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine's loopback (``127.0.0.0/8``, ``::1``, localhost)."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Endpoint:
    """One allow-list entry: a host (``*.`` for sub-domains) and a port (``None``: any)."""

    host: str
    port: int | None = None

    def matches(self, host: str, port: int) -> bool:
        """Whether a connection to ``host:port`` is allowed by this entry."""
        host = host.strip("[]").lower().rstrip(".")
        if self.port is not None and port != self.port:
            return False
        if self.host.startswith("*."):
            return host.endswith(self.host[1:])
        return host == self.host

    def __str__(self) -> str:
        """``host:port`` (``host`` for any port)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


def _endpoint(entry: str) -> Endpoint:
    text = entry.strip().lower()
    port: int | None = None
    if text.startswith("["):  # [::1]:8080
        host, _, rest = text[1:].partition("]")
        if rest:
            port = _port(entry, rest.removeprefix(":"))
    elif text.count(":") == 1:
        host, raw = text.split(":")
        port = _port(entry, raw)
    else:
        host = text
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        if not _HOST.match(host):
            raise ValueError(f"{entry!r} is not a host name, an IP address or *.domain") from None
    return Endpoint(host.rstrip("."), port)


def _port(entry: str, raw: str) -> int:
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ValueError(f"{entry!r} has no valid port (1-65535)")
    return int(raw)


@dataclass(frozen=True)
class NetworkPolicy:
    """Where a sandboxed command may connect (see the module docs)."""

    mode: str = "none"
    """``none``, ``loopback`` or ``allow``."""
    allow: tuple[Endpoint, ...] = ()
    """For ``allow``: the entries."""

    def allows(self, host: str, port: int) -> bool:
        """Whether the filtering proxy lets a connection to ``host:port`` through."""
        if self.mode == "loopback":
            return is_loopback(host)
        if self.mode == "allow":
            return any(e.matches(host, port) for e in self.allow)
        return False

    @property
    def routed(self) -> bool:
        """Whether commands need the filtering proxy (anything but ``none``)."""
        return self.mode != "none"

    def describe(self) -> str:
        """One line for run events and tool descriptions."""
        if self.mode == "allow":
            return "allow-list: " + ", ".join(str(e) for e in self.allow)
        return self.mode

    def to_json(self) -> str:
        """The policy as JSON (handed to the proxy process)."""
        return json.dumps({"mode": self.mode, "allow": [[e.host, e.port] for e in self.allow]})

    @classmethod
    def from_json(cls, text: str) -> NetworkPolicy:
        """The inverse of :meth:`to_json`."""
        data = json.loads(text)
        return cls(data["mode"], tuple(Endpoint(h, p) for h, p in data["allow"]))


def parse_network(value: str | Sequence[str] | NetworkPolicy) -> NetworkPolicy:
    """Parse ``network=``: ``"none"``, ``"loopback"`` or a list of ``host[:port]``.

    Raises:
        ValueError: With what is wrong (the caller turns it into a configuration error).
    """
    if isinstance(value, NetworkPolicy):
        return value
    if isinstance(value, str):
        if value in ("none", "loopback"):
            return NetworkPolicy(value)
        raise ValueError(
            f"network={value!r} is not 'none', 'loopback' or a list of 'host:port' entries"
        )
    entries = list(value)
    if not entries or not all(isinstance(e, str) for e in entries):
        raise ValueError("an allow-list is a non-empty list of 'host[:port]' strings")
    return NetworkPolicy("allow", tuple(_endpoint(e) for e in entries))
