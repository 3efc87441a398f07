"""Storage adapters for retention: read a thread's checkpoint graph, delete, measure.

LangGraph's SQLite and Postgres savers lay checkpoints out differently (SQLite keeps
channel values inline in the msgpack checkpoint; Postgres keeps primitives inline in
JSONB and everything else in ``checkpoint_blobs`` by channel version). Each adapter
reduces a thread to :class:`Node` rows -- enough to decide what to keep without
deserialising any message -- and deletes in one transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import ormsgpack
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from psycopg import Connection
from psycopg.rows import tuple_row
from psycopg_pool import ConnectionPool

from podium.checkpoints._sizes import SizeRow, postgres_sizes, sqlite_sizes

__all__ = ["Node", "PostgresStorage", "SizeRow", "SqliteStorage", "Storage"]

_CHUNK = 500  # ids per IN (...) list: below SQLite's bound-parameter limit


@dataclass(frozen=True)
class Node:
    """One stored checkpoint, as retention sees it."""

    ns: str
    id: str
    parent: str | None
    root: str | None
    """The root checkpoint a subgraph checkpoint's call started from."""
    versions: frozenset[str]
    """Channels with a version (written at some point on this branch)."""
    stored: frozenset[str]
    """Channels whose value this checkpoint itself can load (no ancestor walk)."""
    delta: frozenset[str]
    """Delta channels named in its ``counters_since_delta_snapshot`` metadata."""


class Storage(Protocol):
    """What retention needs of a backend."""

    def nodes(self, thread_id: str) -> list[Node]:
        """Every checkpoint of the thread, in all namespaces."""

    def delete(self, thread_id: str, doomed: Mapping[str, Sequence[str]]) -> None:
        """Delete these checkpoints (per namespace) and their writes; orphan children."""

    def sizes(self) -> list[SizeRow]:
        """Per-thread size figures."""

    def delete_events(self, thread_id: str) -> None:
        """Delete the thread's run events, where the backend stores them."""


def _node(ns: str, cid: str, parent: str | None, metadata: Any, versions: Any, stored: Any) -> Node:
    meta = json.loads(metadata) if isinstance(metadata, bytes | str) else dict(metadata or {})
    return Node(
        ns=ns,
        id=cid,
        parent=parent,
        root=(meta.get("parents") or {}).get(""),
        versions=frozenset(versions or ()),
        stored=frozenset(stored or ()),
        delta=frozenset(meta.get("counters_since_delta_snapshot") or ()),
    )


def _chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(ids), _CHUNK):
        yield ids[i : i + _CHUNK]


class SqliteStorage:
    """Retention over a ``SqliteSaver``'s connection (under its lock)."""

    def __init__(self, saver: SqliteSaver) -> None:
        self.saver = saver

    def _checkpoint(self, type_: str, blob: bytes) -> Mapping[str, Any]:
        if type_ == "msgpack":  # decode the structure only: values stay unbuilt
            data = ormsgpack.unpackb(
                blob, ext_hook=lambda code, raw: None, option=ormsgpack.OPT_NON_STR_KEYS
            )
        else:
            data = self.saver.serde.loads_typed((type_, blob))
        return data if isinstance(data, Mapping) else {}

    def nodes(self, thread_id: str) -> list[Node]:
        """Every checkpoint of the thread, in all namespaces."""
        with self.saver.cursor(transaction=False) as cur:
            rows = cur.execute(
                "SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, "
                "metadata FROM checkpoints WHERE thread_id = ?",
                (thread_id,),
            ).fetchall()
        out = []
        for ns, cid, parent, type_, blob, metadata in rows:
            checkpoint = self._checkpoint(type_, blob)
            out.append(
                _node(
                    ns,
                    cid,
                    parent,
                    metadata,
                    checkpoint.get("channel_versions"),
                    checkpoint.get("channel_values"),
                )
            )
        return out

    def delete(self, thread_id: str, doomed: Mapping[str, Sequence[str]]) -> None:
        """Delete in one transaction."""
        with self.saver.cursor() as cur:
            for ns, ids in doomed.items():
                for part in _chunks(list(ids)):
                    marks = ",".join("?" * len(part))
                    args = (thread_id, ns, *part)
                    where = f"thread_id = ? AND checkpoint_ns = ? AND checkpoint_id IN ({marks})"
                    cur.execute(f"DELETE FROM writes WHERE {where}", args)
                    cur.execute(f"DELETE FROM checkpoints WHERE {where}", args)
                    cur.execute(
                        "UPDATE checkpoints SET parent_checkpoint_id = NULL WHERE thread_id = ? "
                        f"AND checkpoint_ns = ? AND parent_checkpoint_id IN ({marks})",
                        args,
                    )

    def sizes(self) -> list[SizeRow]:
        """Per-thread size figures."""
        with self.saver.cursor(transaction=False) as cur:
            return sqlite_sizes(cur)

    def delete_events(self, thread_id: str) -> None:
        """Delete run events stored in the same file (``podium_events``), if any."""
        with self.saver.cursor() as cur:
            found = cur.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'podium_events'"
            ).fetchone()
            if found:
                cur.execute("DELETE FROM podium_events WHERE thread_id = ?", (thread_id,))


class PostgresStorage:
    """Retention over a ``PostgresSaver``'s pool or connection."""

    def __init__(self, saver: PostgresSaver) -> None:
        self.saver = saver

    @contextmanager
    def _conn(self) -> Iterator[Connection[Any]]:
        conn = self.saver.conn
        if isinstance(conn, ConnectionPool):
            with conn.connection() as c:
                yield c
        else:
            with self.saver.lock:
                yield conn

    def nodes(self, thread_id: str) -> list[Node]:
        """Every checkpoint of the thread, in all namespaces."""
        with self._conn() as conn, conn.cursor(row_factory=tuple_row) as cur:
            rows = cur.execute(
                "SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id, metadata, "
                "ARRAY(SELECT jsonb_object_keys(c.checkpoint -> 'channel_versions')), "
                "ARRAY(SELECT jsonb_object_keys(c.checkpoint -> 'channel_values')) || "
                "ARRAY(SELECT b.channel FROM checkpoint_blobs b "
                "  JOIN jsonb_each_text(c.checkpoint -> 'channel_versions') v "
                "  ON b.channel = v.key AND b.version = v.value "
                "  WHERE b.thread_id = c.thread_id AND b.checkpoint_ns = c.checkpoint_ns "
                "  AND b.type <> 'empty') "
                "FROM checkpoints c WHERE thread_id = %s",
                (thread_id,),
            ).fetchall()
        return [_node(*row) for row in rows]

    def delete(self, thread_id: str, doomed: Mapping[str, Sequence[str]]) -> None:
        """Delete in one transaction, with blobs no remaining checkpoint references."""
        with self._conn() as conn, conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
            for ns, ids in doomed.items():
                args = (thread_id, ns, list(ids))
                where = "thread_id = %s AND checkpoint_ns = %s AND checkpoint_id = ANY(%s)"
                cur.execute(f"DELETE FROM checkpoint_writes WHERE {where}", args)
                freed = cur.execute(
                    f"DELETE FROM checkpoints WHERE {where} "
                    "RETURNING checkpoint -> 'channel_versions'",
                    args,
                ).fetchall()
                cur.execute(
                    "UPDATE checkpoints SET parent_checkpoint_id = NULL WHERE thread_id = %s "
                    "AND checkpoint_ns = %s AND parent_checkpoint_id = ANY(%s)",
                    args,
                )
                referenced = set(
                    cur.execute(
                        "SELECT DISTINCT v.key, v.value FROM checkpoints c, "
                        "jsonb_each_text(c.checkpoint -> 'channel_versions') v "
                        "WHERE c.thread_id = %s AND c.checkpoint_ns = %s",
                        (thread_id, ns),
                    ).fetchall()
                )
                garbage: dict[str, list[str]] = {}
                for (versions,) in freed:
                    for channel, version in (versions or {}).items():
                        if (channel, str(version)) not in referenced:
                            garbage.setdefault(channel, []).append(str(version))
                for channel, found in garbage.items():
                    cur.execute(
                        "DELETE FROM checkpoint_blobs WHERE thread_id = %s AND checkpoint_ns = %s "
                        "AND channel = %s AND version = ANY(%s)",
                        (thread_id, ns, channel, sorted(set(found))),
                    )

    def sizes(self) -> list[SizeRow]:
        """Per-thread size figures."""
        with self._conn() as conn, conn.cursor(row_factory=tuple_row) as cur:
            return postgres_sizes(cur)

    def delete_events(self, thread_id: str) -> None:
        """Nothing more: ``PostgresLedger.delete_thread`` deleted the run events."""
