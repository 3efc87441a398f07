"""Retention and size: :func:`prune`, :func:`thread_sizes`, :func:`delete_thread`.

**What prune keeps.** ``prune(saver, thread_id, keep_last=N)`` keeps the thread's N
newest checkpoints -- so resuming, ``get_state_history`` and forking with
``update_state`` from any of them keep working -- plus what rebuilding them needs:

* ``messages`` is a ``DeltaChannel``: a checkpoint stores only a marker, and the
  value is rebuilt from the nearest ancestor holding a snapshot plus the writes
  after it. For each kept checkpoint, every ancestor back to that snapshot is kept
  too, with its writes (LangGraph's own ``prune`` refuses such threads). So the
  history may list up to one snapshot interval
  (:data:`~podium.checkpoints._messages.SNAPSHOT_EVERY` updates) more than N.
* Every kept checkpoint keeps its pending writes (interrupts, finished sibling
  tasks of an interrupted step).
* A subgraph call (namespace ``node:task-id``) is kept while the root checkpoint
  it started from is kept; a ``checkpointer=True`` subgraph's own history is
  pruned like the root's.

Deleted: older checkpoints, their writes, and (Postgres) blobs no kept
checkpoint references. A kept checkpoint whose parent was deleted becomes a
root. Checkpoints a run saves while prune runs are never deleted. Old
snapshots go with their checkpoints, so a pruned thread stores O(its history).

Works on podium's (and LangGraph's) synchronous SQLite and Postgres savers; for an
async saver, open a synchronous one on the same file or URL.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.sqlite import SqliteSaver

from podium.checkpoints._ledger import SQLiteLedger, ToolLedger
from podium.checkpoints._postgres import PostgresLedger
from podium.checkpoints._retention_sql import Node, PostgresStorage, SqliteStorage, Storage
from podium.errors import ConfigurationError

__all__ = ["Pruned", "ThreadSize", "delete_thread", "prune", "thread_sizes"]

_UUID_EPOCH = 0x01B21DD213814000  # 100-ns ticks from 1582-10-15 to 1970-01-01


@dataclass(frozen=True)
class ThreadSize:
    """How much storage a thread uses (one row of :func:`thread_sizes`)."""

    thread_id: str
    """The thread."""
    bytes: int
    """Bytes of its checkpoints, writes and blobs (payload, not page overhead)."""
    checkpoints: int
    """Checkpoints in its root namespace (what ``get_state_history`` lists)."""
    last_step: int | None
    """The ``step`` of its latest checkpoint."""
    updated_at: datetime | None
    """When its latest checkpoint was saved (UTC)."""
    pending_approvals: int
    """Approval requests in the ledger with no decision yet."""


@dataclass(frozen=True)
class Pruned:
    """What :func:`prune` did to one thread."""

    thread_id: str
    """The thread."""
    kept: int
    """Checkpoints kept (all namespaces): the newest ones and what they need."""
    deleted: int
    """Checkpoints deleted (all namespaces), with their writes."""


def _storage(saver: object) -> Storage:
    if isinstance(saver, SqliteSaver):
        return SqliteStorage(saver)
    if isinstance(saver, PostgresSaver):
        return PostgresStorage(saver)
    raise ConfigurationError(
        f"Retention works on SQLite and Postgres savers, not {type(saver).__name__}.",
        fix="Open the database with podium.checkpoints.sqlite_saver(path) or "
        "postgres_saver(url) (a synchronous saver, even if your app runs async).",
    )


def _ledger(saver: object) -> tuple[ToolLedger | None, bool]:
    """The saver's ledger and whether the caller must close it."""
    found = getattr(saver, "podium_ledger", None)
    if isinstance(found, ToolLedger):
        return found, False
    if isinstance(saver, SqliteSaver):
        with saver.lock:
            rows = saver.conn.execute("PRAGMA database_list").fetchall()
        path = next((r[2] for r in rows if r[1] == "main" and r[2]), None)
        return (SQLiteLedger(path), True) if path else (None, False)
    if isinstance(saver, PostgresSaver):
        return PostgresLedger(saver.conn), False
    return None, False


def _keep_chain(nodes: list[Node], keep_last: int, delta: set[str]) -> set[str]:
    """The ``keep_last`` newest ids, plus the ancestors their delta channels need."""
    by_id = {n.id: n for n in nodes}
    newest = sorted(by_id, reverse=True)[:keep_last]
    keep = set(newest)
    for head in newest:
        node = by_id[head]
        need = {ch for ch in delta if ch in node.versions and ch not in node.stored}
        while need and node.parent in by_id:
            node = by_id[node.parent]
            keep.add(node.id)
            need -= node.stored
    return keep


def plan_prune(nodes: Iterable[Node], keep_last: int) -> dict[str, set[str]]:
    """Per namespace, the checkpoint ids to keep (see the module docs)."""
    by_ns: dict[str, list[Node]] = defaultdict(list)
    for node in nodes:
        by_ns[node.ns].append(node)
    delta = {ch for ns_nodes in by_ns.values() for n in ns_nodes for ch in n.delta}
    keep = {"": _keep_chain(by_ns.get("", []), keep_last, delta)}
    for ns, ns_nodes in by_ns.items():
        if not ns:
            continue
        if ":" not in ns:  # a checkpointer=True subgraph: a history of its own
            keep[ns] = _keep_chain(ns_nodes, keep_last, delta)
            continue
        live = [n for n in ns_nodes if n.root in keep[""]]
        wanted = _keep_chain(live, len(live), delta) if live else set()
        by_id = {n.id: n for n in ns_nodes}
        for head in list(wanted):  # ancestors of a live call outside it (rare)
            node = by_id[head]
            need = {ch for ch in delta if ch in node.versions and ch not in node.stored}
            while need and node.parent in by_id:
                node = by_id[node.parent]
                wanted.add(node.id)
                need -= node.stored
        keep[ns] = wanted
    return keep


def prune(saver: object, thread_id: str, *, keep_last: int = 10) -> Pruned:
    """Delete a thread's old checkpoints, keeping what resume and time travel need.

    Args:
        saver: A synchronous SQLite or Postgres saver (podium's or LangGraph's).
        thread_id: The thread to prune.
        keep_last: How many of the newest checkpoints stay loadable (at least 1).

    Returns:
        How many checkpoints were kept and deleted.

    Raises:
        ConfigurationError: ``keep_last`` below 1, or an unsupported saver.
    """
    if keep_last < 1:
        raise ConfigurationError(
            f"keep_last={keep_last}: prune must keep at least the latest checkpoint.",
            fix="Pass keep_last=1 or more; use delete_thread() to remove a whole thread.",
        )
    storage = _storage(saver)
    nodes = storage.nodes(str(thread_id))
    keep = plan_prune(nodes, keep_last)
    doomed: dict[str, list[str]] = defaultdict(list)
    for node in nodes:
        if node.id not in keep.get(node.ns, set()):
            doomed[node.ns].append(node.id)
    deleted = sum(len(ids) for ids in doomed.values())
    if deleted:
        storage.delete(str(thread_id), doomed)
    return Pruned(str(thread_id), len(nodes) - deleted, deleted)


def _updated_at(checkpoint_id: str | None, ts: str | None) -> datetime | None:
    if ts:
        return datetime.fromisoformat(ts)
    if not checkpoint_id:
        return None
    value = uuid.UUID(checkpoint_id).int
    ticks = ((value >> 80) << 12) | ((value >> 64) & 0x0FFF)
    return datetime.fromtimestamp((ticks - _UUID_EPOCH) / 1e7, UTC)


def thread_sizes(saver: object) -> list[ThreadSize]:
    """Storage used by every thread, largest first.

    Args:
        saver: A synchronous SQLite or Postgres saver (podium's or LangGraph's).

    Returns:
        One :class:`ThreadSize` per thread that has checkpoints.

    Raises:
        ConfigurationError: An unsupported saver.
    """
    storage = _storage(saver)
    ledger, owned = _ledger(saver)
    try:
        pending = ledger.pending_approvals() if ledger is not None else {}
    finally:
        if owned and ledger is not None:
            ledger.close()
    out = []
    for row in storage.sizes():
        metadata = row.metadata
        if isinstance(metadata, bytes | str):
            metadata = json.loads(metadata)
        step = (metadata or {}).get("step")
        out.append(
            ThreadSize(
                thread_id=row.thread_id,
                bytes=row.bytes,
                checkpoints=row.checkpoints,
                last_step=step if isinstance(step, int) else None,
                updated_at=_updated_at(row.latest_id, row.ts),
                pending_approvals=pending.get(row.thread_id, 0),
            )
        )
    return sorted(out, key=lambda s: (-s.bytes, s.thread_id))


def delete_thread(saver: object, thread_id: str) -> None:
    """Delete a thread: its checkpoints, writes, blobs, ledger rows and run events.

    Args:
        saver: A synchronous SQLite or Postgres saver (podium's or LangGraph's).
        thread_id: The thread to delete; deleting an unknown thread does nothing.

    Raises:
        ConfigurationError: An unsupported saver.
    """
    storage = _storage(saver)
    cast_saver: Any = saver
    cast_saver.delete_thread(str(thread_id))
    ledger, owned = _ledger(saver)
    if ledger is not None:
        try:
            ledger.delete_thread(str(thread_id))
        finally:
            if owned:
                ledger.close()
    storage.delete_events(str(thread_id))
