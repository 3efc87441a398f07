"""Opening a podium SQLite file: the connection settings and creating the file whole.

Settings (see :mod:`podium.checkpoints._sqlite`): WAL, ``synchronous`` (``NORMAL``
by default), a busy timeout. A new file is created whole -- in a temporary file
beside it, with LangGraph's and the ledger's tables, then linked into place -- so
another process never sees a half-made database, and a zero-length file always
means lost data (:class:`~podium.errors.CorruptDatabaseError`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from pathlib import Path
from typing import Literal

from langgraph.checkpoint.sqlite import SqliteSaver

from podium.checkpoints._integrity import check_database_file
from podium.checkpoints._ledger import ledger_schema
from podium.errors import ConfigurationError

__all__ = ["Synchronous", "create_atomically", "pragmas", "prepare"]

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]
_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


def pragmas(synchronous: str, busy_timeout: float) -> list[str]:
    """The PRAGMAs podium runs on every connection to the file.

    Raises:
        ConfigurationError: If ``synchronous`` is not a SQLite level.
    """
    if synchronous not in _SYNCHRONOUS:
        raise ConfigurationError(
            f"synchronous={synchronous!r} is not a SQLite synchronous level.",
            fix=f"Use one of {', '.join(_SYNCHRONOUS)} (podium's default is NORMAL).",
        )
    return [
        f"PRAGMA busy_timeout={int(busy_timeout * 1000)}",
        "PRAGMA journal_mode=WAL",
        f"PRAGMA synchronous={synchronous}",
    ]


def create_atomically(path: Path) -> None:
    """Create a ready database at ``path`` unless a file is already there."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)
    os.close(fd)
    try:
        db = sqlite3.connect(name)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            SqliteSaver(db).setup()
            db.executescript(ledger_schema(""))
            db.commit()
        finally:
            db.close()
        try:
            os.link(name, path)  # atomic; fails if another process made it first
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links
            if not path.exists():
                os.replace(name, path)
    finally:
        for leftover in (name, f"{name}-wal", f"{name}-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)


def prepare(path: Path, integrity_check: bool) -> None:
    """Check the file at ``path`` (if any), else create it whole."""
    check_database_file(path, quick_check=integrity_check)
    create_atomically(path)
