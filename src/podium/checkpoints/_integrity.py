"""Integrity checks run before podium opens a SQLite file.

SQLite happily treats a zero-length file as a new, empty database, and LangGraph
then reports every thread as unknown: state lost without a word. podium refuses
instead, naming the file, what is wrong with it, and what to do:

* a directory, or a zero-length file (truncated to nothing, or never written);
* a file that is not SQLite (its 16-byte header is wrong);
* a damaged file (truncated, or with corrupt pages: ``PRAGMA quick_check``);
* another application's database (it has tables, none of them podium's).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from podium.errors import CorruptDatabaseError

__all__ = ["check_database_file"]

_HEADER = b"SQLite format 3\x00"
_OURS = frozenset(
    {
        # LangGraph's SqliteSaver
        "checkpoints",
        "writes",
        # podium's own tables are all named podium_* (ledger, run events)
        # LangGraph's SqliteStore (long-term memory may share the file)
        "store",
        "store_vectors",
        "store_migrations",
        "vector_migrations",
    }
)


def check_database_file(path: Path, *, quick_check: bool = True) -> None:
    """Refuse files that would silently lose state: empty, not SQLite, damaged, or foreign.

    A missing file passes (it will be created).

    Args:
        path: The database file.
        quick_check: Also run SQLite's ``PRAGMA quick_check`` (reads every page).

    Raises:
        CorruptDatabaseError: Naming the file, what is wrong, and what to do.
    """
    path = Path(path)
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
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            problems = (
                [r[0] for r in db.execute("PRAGMA quick_check(5)")] if quick_check else ["ok"]
            )
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise CorruptDatabaseError(
            f"{path} cannot be read as a SQLite database: {exc} (the file is truncated or "
            "damaged).",
            fix="Restore it from a backup; `sqlite3 FILE .recover` may salvage rows; or "
            "delete it to start with no threads.",
        ) from exc
    if problems != ["ok"]:
        raise CorruptDatabaseError(
            f"{path} failed SQLite's integrity check: {'; '.join(problems)}.",
            fix="Restore it from a backup; `sqlite3 FILE .recover` may salvage rows.",
        )
    ours = {t for t in tables if t in _OURS or t.startswith("podium_")}
    foreign = {t for t in tables if not t.startswith("sqlite_")} - ours
    if foreign and not ours:
        raise CorruptDatabaseError(
            f"{path} is another application's database (tables: {', '.join(sorted(foreign))}); "
            "podium will not add its tables to it.",
            fix="Use a separate file for podium's checkpoints.",
        )
