"""``sqlite_saver``: LangGraph's SqliteSaver tuned for podium, with integrity checks.

Settings (applied to every connection podium opens on the file):

* ``journal_mode=WAL`` -- readers never block the writer; many processes may share
  the file.
* ``synchronous=NORMAL`` (default, configurable) -- in WAL mode a committed
  transaction survives a process crash (SIGKILL); only an operating-system crash
  or power loss can lose the last few commits. Pass ``synchronous="FULL"`` to
  survive those too, at the cost of an fsync per commit.
* ``busy_timeout`` 30 s -- a writer waits for the lock instead of failing with
  "database is locked".

The exactly-once tool ledger lives in the same file (tables ``podium_*``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Literal

from langgraph.checkpoint.sqlite import SqliteSaver

from podium.checkpoints._ledger import ToolLedger
from podium.errors import CorruptDatabaseError

__all__ = ["PodiumSqliteSaver", "Synchronous", "sqlite_saver"]

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]
_HEADER = b"SQLite format 3\x00"
_OURS = {"checkpoints", "writes", "podium_tool_calls", "podium_approvals"}


def check_database_file(path: Path) -> None:
    """Refuse files that would silently lose state: empty, not SQLite, or foreign.

    Raises:
        CorruptDatabaseError: Naming the file, what is wrong, and what to do.
    """
    if not path.exists():
        return
    if path.is_dir():
        raise CorruptDatabaseError(
            f"{path} is a directory, not a database file.", fix="Pass the path of a .sqlite file."
        )
    size = path.stat().st_size
    if size == 0:
        raise CorruptDatabaseError(
            f"{path} is empty (0 bytes): any state it held is gone, and podium will not "
            "silently treat it as a new database.",
            fix="Restore it from a backup, or delete the file to start with no threads.",
        )
    with path.open("rb") as fh:
        header = fh.read(len(_HEADER))
    if header != _HEADER:
        raise CorruptDatabaseError(
            f"{path} is not a SQLite database (its first bytes are {header[:16]!r}).",
            fix="Point podium at its own database file, or move this file away.",
        )
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            (check,) = db.execute("PRAGMA quick_check").fetchone()
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise CorruptDatabaseError(
            f"{path} cannot be read as a SQLite database: {exc}.",
            fix="Restore it from a backup, or delete it to start with no threads.",
        ) from exc
    if check != "ok":
        raise CorruptDatabaseError(
            f"{path} failed SQLite's integrity check: {check}.",
            fix="Restore it from a backup; `sqlite3 FILE .recover` may salvage rows.",
        )
    foreign = {t for t in tables if not t.startswith("sqlite_")} - _OURS
    if foreign and not tables & _OURS:
        raise CorruptDatabaseError(
            f"{path} is another application's database (tables: {', '.join(sorted(foreign))}); "
            "podium will not add its tables to it.",
            fix="Use a separate file for podium's checkpoints.",
        )


class PodiumSqliteSaver(SqliteSaver):
    """A ``SqliteSaver`` with podium's settings and its tool ledger in the same file.

    Use it as a plain object (``saver.close()`` when done) or as a context manager.
    """

    podium_ledger: ToolLedger
    """The exactly-once ledger stored in the same file."""
    path: Path
    """The database file."""

    def __init__(self, path: Path, *, synchronous: Synchronous, busy_timeout: float) -> None:
        check_database_file(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, check_same_thread=False, timeout=busy_timeout)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        super().__init__(conn)
        self.path = path
        self.setup()
        self.podium_ledger = ToolLedger(path, synchronous=synchronous)

    def close(self) -> None:
        """Close the checkpoint and ledger connections."""
        self.podium_ledger.close()
        self.conn.close()

    def __enter__(self) -> PodiumSqliteSaver:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def sqlite_saver(
    path: str | Path, *, synchronous: Synchronous = "NORMAL", busy_timeout: float = 30.0
) -> PodiumSqliteSaver:
    """Open (or create) a podium SQLite checkpointer at ``path``.

    Returns a plain object, also usable as a context manager that closes it.

    Args:
        path: The database file; created if missing.
        synchronous: SQLite's ``synchronous`` level (see the module docs).
        busy_timeout: Seconds a writer waits for the lock before failing.

    Raises:
        CorruptDatabaseError: If the file is empty, not SQLite, corrupt, or foreign.

    Example:
        >>> import tempfile, pathlib
        >>> from podium.checkpoints import sqlite_saver
        >>> with sqlite_saver(pathlib.Path(tempfile.mkdtemp()) / "runs.sqlite") as saver:
        ...     saver.path.name
        'runs.sqlite'
    """
    return PodiumSqliteSaver(Path(path), synchronous=synchronous, busy_timeout=busy_timeout)
