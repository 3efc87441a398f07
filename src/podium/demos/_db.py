"""The demos' small SQLite business databases: connect, create once, read side effects.

Each demo keeps its business data in one SQLite file under the demo home. Reference
tables (orders, stock, invoices) are seeded with ``INSERT OR IGNORE``; side-effect
tables (refunds, outbox, notices, reports) are created if missing and never wiped by a
rebuild, so a second process that rebuilds the demo to resume a thread after an
approval sees -- and adds to -- the same rows. Side-effect rows carry the tool call's
idempotency key under a ``UNIQUE`` constraint: a re-run of the same call (an idempotent
tool after a crash) cannot write a second row.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from podium.tools import idempotency_key

__all__ = ["call_key", "connect", "create_db", "drop_tables", "read_tables"]


@contextmanager
def connect(path: Path) -> Iterator[sqlite3.Connection]:
    """A connection to ``path`` that commits on success and always closes."""
    db = sqlite3.connect(path, timeout=30)
    db.row_factory = sqlite3.Row
    try:
        with db:
            yield db
    finally:
        db.close()


def create_db(path: Path, schema: str, seed: Iterable[tuple[str, Sequence[Any]]] = ()) -> Path:
    """Create the tables in ``schema`` if missing and insert the seed rows if absent.

    Args:
        path: The SQLite file (its folder is created).
        schema: ``CREATE TABLE IF NOT EXISTS`` statements.
        seed: ``(INSERT OR IGNORE statement, row)`` pairs.

    Returns:
        ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with connect(path) as db:
        db.executescript(schema)
        for statement, row in seed:
            db.execute(statement, tuple(row))
    return path


def drop_tables(path: Path, tables: Iterable[str]) -> None:
    """Drop the side-effect ``tables`` (for a fresh demo run); a rebuild recreates them."""
    if not path.exists():
        return
    with connect(path) as db:
        for table in tables:
            db.execute(f"DROP TABLE IF EXISTS {table}")


def read_tables(path: Path, tables: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """Every row of ``tables`` as dicts, in insertion order (empty lists if missing)."""
    out: dict[str, list[dict[str, Any]]] = {t: [] for t in tables}
    if not path.exists():
        return out
    with connect(path) as db:
        present = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for table in out:
            if table in present:
                rows = db.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
                out[table] = [dict(r) for r in rows]
    return out


def call_key() -> str:
    """The running tool call's idempotency key (a fresh-looking stand-in outside a call)."""
    key = idempotency_key()
    if key is None:  # called directly, not through the governed executor
        return f"direct-{uuid.uuid4().hex}"
    return key
