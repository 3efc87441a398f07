"""The rows podium's SQLite savers write, and their fenced ``INSERT`` statements.

LangGraph's ``SqliteSaver`` writes a checkpoint with ``INSERT OR REPLACE`` and a
task's writes with ``INSERT OR REPLACE`` (special channels) or ``INSERT OR IGNORE``.
podium builds the same rows (same columns, same serializer) once here, for the
sync and the async saver, as multi-row statements. A fenced write (see
:mod:`podium.checkpoints._fenced`) is one ``INSERT ... SELECT * FROM (VALUES ...)
WHERE EXISTS (fence)`` statement: the lease check and the write are one
transaction, and a write refused by the fence inserts no row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    get_checkpoint_metadata,
)

from podium.checkpoints._fenced import PutCheckpoint, PutWrites
from podium.checkpoints._leases import FENCE_SQL, Lease

__all__ = ["SqliteRows", "Statement", "inserts"]

_ROWS_PER_INSERT = 3000  # 9 parameters a row, below SQLite's 32766-parameter limit
_CHECKPOINT_COLUMNS = (
    "thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata"
)
_WRITE_COLUMNS = (
    "thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, value"
)
Statement = tuple[str, list[Any]]


def inserts(
    verb: str, table: str, columns: str, rows: Sequence[Sequence[Any]], lease: Lease | None
) -> list[Statement]:
    """``INSERT OR <verb>`` statements for ``rows`` (fenced by ``lease`` if given)."""
    width = columns.count(",") + 1
    statements: list[Statement] = []
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        part = rows[start : start + _ROWS_PER_INSERT]
        values = ",".join([f"({', '.join('?' * width)})"] * len(part))
        params = [v for row in part for v in row]
        if lease is None:
            sql = f"INSERT OR {verb} INTO {table} ({columns}) VALUES {values}"
        else:
            sql = (
                f"INSERT OR {verb} INTO {table} ({columns}) SELECT * FROM (VALUES {values}) "
                f"WHERE EXISTS ({FENCE_SQL})"
            )
            params += lease.params
        statements.append((sql, params))
    return statements


class SqliteRows:
    """The statements LangGraph's SQLite savers' writes are, for the sync and async saver."""

    serde: Any

    def _checkpoint_statement(self, put: PutCheckpoint, lease: Lease | None) -> Statement:
        config, checkpoint = put.config, put.checkpoint
        conf = config["configurable"]
        type_, serialized = self.serde.dumps_typed(checkpoint)
        meta = json.dumps(get_checkpoint_metadata(config, put.metadata), ensure_ascii=False)
        row = (
            str(conf["thread_id"]),
            conf["checkpoint_ns"],
            checkpoint["id"],
            conf.get("checkpoint_id"),
            type_,
            serialized,
            meta.encode("utf-8", "ignore"),
        )
        [statement] = inserts("REPLACE", "checkpoints", _CHECKPOINT_COLUMNS, [row], lease)
        return statement

    def _write_statements(self, put: PutWrites, lease: Lease | None) -> list[Statement]:
        config, writes, task_id, task_path = put
        conf = config["configurable"]
        rows = [
            (
                str(conf["thread_id"]),
                str(conf["checkpoint_ns"]),
                str(conf["checkpoint_id"]),
                task_id,
                task_path,
                WRITES_IDX_MAP.get(channel, idx),
                channel,
                *self.serde.dumps_typed(value),
            )
            for idx, (channel, value) in enumerate(writes)
        ]
        verb = "REPLACE" if all(w[0] in WRITES_IDX_MAP for w in writes) else "IGNORE"
        return inserts(verb, "writes", _WRITE_COLUMNS, rows, lease)
