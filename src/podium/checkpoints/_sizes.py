"""Per-thread storage figures of a SQLite checkpoint file, with the standard library only.

Shared by retention (:func:`podium.checkpoints.thread_sizes`) and the CLI's
read-only commands, which must not import LangGraph to list threads.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

__all__ = ["SizeRow", "sqlite_sizes"]


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
