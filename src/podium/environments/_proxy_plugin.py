"""The filtering proxy's plugin: allow or refuse each connection, and log both.

Loaded by proxy.py in the proxy process a sandboxed command's traffic goes through
(see :mod:`podium.environments._network`), never in podium's own process. The
policy comes in ``PODIUM_NET_POLICY`` (JSON); every connection attempt is appended
to the file ``PODIUM_NET_LOG`` as one JSON line ``{"host", "port", "allowed"}``, which
podium turns into run events when the command ends.
"""

from __future__ import annotations

import json
import os
import time

from proxy.common.utils import text_
from proxy.http.exception import HttpRequestRejected
from proxy.http.parser import HttpParser
from proxy.http.proxy import HttpProxyBasePlugin

from podium.environments._netpolicy import NetworkPolicy

__all__ = ["PolicyPlugin"]

_POLICY = NetworkPolicy.from_json(
    os.environ.get("PODIUM_NET_POLICY", '{"mode": "none", "allow": []}')
)
_LOG = os.environ.get("PODIUM_NET_LOG")


def _log(host: str, port: int, allowed: bool) -> None:
    if not _LOG:
        return
    line = json.dumps({"host": host, "port": port, "allowed": allowed, "at": time.time()})
    fd = os.open(_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


class PolicyPlugin(HttpProxyBasePlugin):
    """Lets a request or ``CONNECT`` through only if the policy allows its host and port."""

    def before_upstream_connection(self, request: HttpParser) -> HttpParser | None:
        """Refuse (403) a connection the policy does not allow; log every attempt."""
        host = text_(request.host) if request.host else ""
        port = int(request.port or (443 if request.is_https_tunnel else 80))
        allowed = bool(host) and _POLICY.allows(host, port)
        _log(host, port, allowed)
        if not allowed:
            raise HttpRequestRejected(
                status_code=403,
                reason=b"Forbidden by the podium network policy",
                body=f"podium: connections to {host}:{port} are not allowed "
                f"(network: {_POLICY.describe()})\n".encode(),
            )
        return request
