"""Per-thread storage figures of a SQLite file (standard library) or a PostgreSQL database.

Shared by retention (:func:`podium.checkpoints.thread_sizes`) and the CLI's
read-only commands, which must not import LangGraph to list threads (on PostgreSQL
they need psycopg's cursor only).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

__all__ = ["SizeRow", "postgres_sizes", "sqlite_sizes"]


@dataclass(frozen=True)
class SizeRow:
    """Raw per-thread size figures."""

    thread_id: str
    bytes: int
    checkpoints: int
    latest_id: str | None
    metadata: Any
    ts: str | None


def sqlite_sizes(cur: sqlite3.Cursor) -> list[SizeRow]:
    """Size, checkpoint count and latest metadata of every thread in LangGraph's tables."""
    totals = cur.execute(
        "SELECT thread_id, SUM(length(checkpoint) + length(metadata)), "
        "SUM(checkpoint_ns = ''), MAX(CASE WHEN checkpoint_ns = '' THEN checkpoint_id END) "
        "FROM checkpoints GROUP BY thread_id"
    ).fetchall()
    writes = dict(
        cur.execute(
            "SELECT thread_id, SUM(length(value)) FROM writes GROUP BY thread_id"
        ).fetchall()
    )
    latest = dict(
        cur.execute(
            "SELECT c.thread_id, c.metadata FROM checkpoints c JOIN ("
            "SELECT thread_id, MAX(checkpoint_id) AS m FROM checkpoints "
            "WHERE checkpoint_ns = '' GROUP BY thread_id) l "
            "ON c.thread_id = l.thread_id AND c.checkpoint_ns = '' "
            "AND c.checkpoint_id = l.m"
        ).fetchall()
    )
    return [
        SizeRow(str(t), int(b or 0) + int(writes.get(t) or 0), int(n or 0), m, latest.get(t), None)
        for t, b, n, m in totals
    ]


def postgres_sizes(cur: Any) -> list[SizeRow]:
    """:func:`sqlite_sizes` for LangGraph's PostgreSQL tables (a psycopg tuple cursor)."""
    totals = cur.execute(
        "SELECT thread_id, SUM(pg_column_size(checkpoint) + pg_column_size(metadata)), "
        "COUNT(*) FILTER (WHERE checkpoint_ns = ''), "
        "MAX(checkpoint_id) FILTER (WHERE checkpoint_ns = '') "
        "FROM checkpoints GROUP BY thread_id"
    ).fetchall()
    extra: dict[str, int] = {}
    for sql in (
        "SELECT thread_id, SUM(COALESCE(length(blob), 0)) FROM checkpoint_blobs GROUP BY thread_id",
        "SELECT thread_id, SUM(length(blob)) FROM checkpoint_writes GROUP BY thread_id",
    ):
        for thread, size in cur.execute(sql).fetchall():
            extra[thread] = extra.get(thread, 0) + int(size or 0)
    latest = {
        r[0]: (r[1], r[2])
        for r in cur.execute(
            "SELECT DISTINCT ON (thread_id) thread_id, metadata, checkpoint ->> 'ts' "
            "FROM checkpoints WHERE checkpoint_ns = '' "
            "ORDER BY thread_id, checkpoint_id DESC"
        ).fetchall()
    }
    return [
        SizeRow(
            str(t),
            int(b or 0) + extra.get(t, 0),
            int(n or 0),
            m,
            latest.get(t, (None, None))[0],
            latest.get(t, (None, None))[1],
        )
        for t, b, n, m in totals
    ]
