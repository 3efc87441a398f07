"""Storage of the run ledger's events: a table beside the checkpoints.

Rows are written in batches by :class:`podium.observe.RunLedgerHandler` from a
background thread; readers (``podium trace``, ``podium cost``, notebooks,
:func:`podium.runs.events`) query them here.

:class:`EventStore` is the store: the SQL (one schema, :func:`events_schema`; the
batch insert; the query) is written once, and a backend runs it --
:class:`SQLiteEventStore` (a file shared with the checkpoints, or memory) or
:class:`~podium.checkpoints._pg.PostgresEventStore` (the saver's own database,
through a :class:`~podium.checkpoints.PostgresLedger`'s connections). This module
needs only the standard library, so the CLI reads a SQLite file without psycopg.
"""

from __future__ import annotations

import json
import operator
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["EventStore", "SQLiteEventStore", "events_schema"]

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


def events_schema(seq_column: str) -> str:
    """The ``podium_events`` DDL; ``seq_column`` is the backend's auto-increment key.

    Times and cost are ``DOUBLE PRECISION`` (SQLite's ``REAL``; PostgreSQL's
    ``REAL`` is single precision, too coarse for epoch seconds).
    """
    return f"""
CREATE TABLE IF NOT EXISTS podium_events (
    seq {seq_column},
    kind TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    agent TEXT,
    node TEXT,
    name TEXT,
    started_at DOUBLE PRECISION NOT NULL,
    ended_at DOUBLE PRECISION,
    status TEXT NOT NULL,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cost DOUBLE PRECISION NOT NULL DEFAULT 0,
    run_id TEXT,
    parent_run_id TEXT,
    data TEXT
);
CREATE INDEX IF NOT EXISTS podium_events_thread ON podium_events (thread_id, started_at);
"""


class EventStore(ABC):
    """Run events in a database: the SQL, written once; a backend runs it.

    Statements are written with ``?`` placeholders; :attr:`_placeholder` converts
    (as :class:`~podium.checkpoints.ToolLedger` does).
    """

    _placeholder = "?"

    @abstractmethod
    def _insert(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        """Insert ``rows`` with ``sql`` in one transaction."""

    @abstractmethod
    def _select(self, sql: str, args: Sequence[Any]) -> list[Sequence[Any]]:
        """Run a query; its rows."""

    @abstractmethod
    def close(self) -> None:
        """Release the store's connection."""

    def _sql(self, sql: str) -> str:
        return sql if self._placeholder == "?" else sql.replace("?", self._placeholder)

    def write_events(self, events: Sequence[Any]) -> None:
        """Append a batch of :class:`~podium.observe.RunEvent` objects in one transaction.

        The run ledger's writer calls this for every batch, so it reads the
        attributes straight into row tuples (no intermediate dicts).
        """
        rows = [(*_FIELDS(e), json.dumps(e.data, default=str) if e.data else "{}") for e in events]
        self._insert(self._sql(_INSERT), rows)

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
        rows = self._select(self._sql(sql + " ORDER BY started_at, seq"), args)
        out = []
        for row in rows:
            item = dict(zip(_COLUMNS, row, strict=True))
            item["data"] = json.loads(item["data"] or "{}")
            out.append(item)
        return out


class SQLiteEventStore(EventStore):
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
        self._db.executescript(events_schema("INTEGER PRIMARY KEY AUTOINCREMENT"))

    def _insert(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        with self._lock, self._db:
            self._db.executemany(sql, rows)

    def _select(self, sql: str, args: Sequence[Any]) -> list[Sequence[Any]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()
