"""Storage of the run ledger's events: a table beside the checkpoints.

Rows are written in batches by :class:`podium.observe.RunLedgerHandler` from a
background thread; readers (``podium trace``, ``podium cost``, notebooks) query
them here.
"""

from __future__ import annotations

import json
import operator
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["EventStore"]

_COLUMNS = (
    "kind",
    "thread_id",
    "agent",
    "node",
    "name",
    "started_at",
    "ended_at",
    "status",
    "input_tokens",
    "output_tokens",
    "cost",
    "run_id",
    "parent_run_id",
    "data",
)
_FIELDS = operator.attrgetter(*_COLUMNS[:-1])  # every column but ``data``
_INSERT = (
    f"INSERT INTO podium_events ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS podium_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    agent TEXT,
    node TEXT,
    name TEXT,
    started_at REAL NOT NULL,
    ended_at REAL,
    status TEXT NOT NULL,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cost REAL NOT NULL DEFAULT 0,
    run_id TEXT,
    parent_run_id TEXT,
    data TEXT
);
CREATE INDEX IF NOT EXISTS podium_events_thread ON podium_events (thread_id, started_at);
"""


class EventStore:
    """Run events in SQLite (a file shared with the checkpoints, or memory).

    Args:
        path: The database file; ``None`` keeps events in memory.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = str(path) if path is not None else None
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path or ":memory:", check_same_thread=False, timeout=30)
        if self.path:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def write_events(self, events: Sequence[Any]) -> None:
        """Append a batch of :class:`~podium.observe.RunEvent` objects in one transaction.

        The run ledger's writer calls this for every batch, so it reads the
        attributes straight into row tuples (no intermediate dicts).
        """
        rows = [(*_FIELDS(e), json.dumps(e.data, default=str) if e.data else "{}") for e in events]
        with self._lock, self._db:
            self._db.executemany(_INSERT, rows)

    def events(
        self,
        thread_id: str | None = None,
        *,
        since: float | None = None,
        kinds: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Events, oldest first, optionally for one thread, after ``since`` (epoch s)."""
        where: list[str] = []
        args: list[Any] = []
        if thread_id is not None:
            where.append("thread_id = ?")
            args.append(thread_id)
        if since is not None:
            where.append("started_at >= ?")
            args.append(since)
        if kinds:
            where.append(f"kind IN ({', '.join('?' for _ in kinds)})")
            args.extend(kinds)
        sql = f"SELECT {', '.join(_COLUMNS)} FROM podium_events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY started_at, seq", args).fetchall()
        out = []
        for row in rows:
            item = dict(zip(_COLUMNS, row, strict=True))
            item["data"] = json.loads(item["data"] or "{}")
            out.append(item)
        return out

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()
