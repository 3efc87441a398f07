"""Persistence: tuned SQLite / Postgres savers, the ledger, retention, and memory.

* Savers: :func:`sqlite_saver`, :func:`async_sqlite_saver`, :func:`postgres_saver`,
  :func:`async_postgres_saver` -- LangGraph checkpointers with podium's settings,
  integrity checks, strict deserialisation, and the exactly-once ledger beside them.
* The ledger: :class:`ToolLedger` (interface), :class:`SQLiteLedger`,
  :class:`PostgresLedger`.
* Retention and size: :func:`prune`, :func:`thread_sizes`, :func:`delete_thread`.
* History stored as deltas: :data:`Messages`.
* Long-term memory: :func:`sqlite_store`, :func:`postgres_store`.
"""

from typing import TYPE_CHECKING

from podium._lazy import attach as _attach

if TYPE_CHECKING:
    from podium.checkpoints._common import AsyncOpener, podium_serde
    from podium.checkpoints._integrity import check_database_file
    from podium.checkpoints._ledger import (
        ApprovalRecord,
        CallRecord,
        SQLiteLedger,
        ToolLedger,
        args_hash,
    )
    from podium.checkpoints._messages import Messages, merge_messages
    from podium.checkpoints._postgres import (
        PodiumAsyncPostgresSaver,
        PodiumPostgresSaver,
        PostgresLedger,
        async_postgres_saver,
        postgres_saver,
    )
    from podium.checkpoints._retention import Pruned, ThreadSize, delete_thread, prune, thread_sizes
    from podium.checkpoints._sqlite import (
        PodiumAsyncSqliteSaver,
        PodiumSqliteSaver,
        Synchronous,
        async_sqlite_saver,
        sqlite_saver,
    )
    from podium.checkpoints._store import (
        PodiumPostgresStore,
        PodiumSqliteStore,
        postgres_store,
        sqlite_store,
    )

__getattr__, __dir__ = _attach(__name__)

__all__ = [
    "ApprovalRecord",
    "AsyncOpener",
    "CallRecord",
    "Messages",
    "PodiumAsyncPostgresSaver",
    "PodiumAsyncSqliteSaver",
    "PodiumPostgresSaver",
    "PodiumPostgresStore",
    "PodiumSqliteSaver",
    "PodiumSqliteStore",
    "PostgresLedger",
    "Pruned",
    "SQLiteLedger",
    "Synchronous",
    "ThreadSize",
    "ToolLedger",
    "args_hash",
    "async_postgres_saver",
    "async_sqlite_saver",
    "check_database_file",
    "delete_thread",
    "merge_messages",
    "podium_serde",
    "postgres_saver",
    "postgres_store",
    "prune",
    "sqlite_saver",
    "sqlite_store",
    "thread_sizes",
]
