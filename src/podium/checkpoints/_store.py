"""Long-term memory: LangGraph's Store on SQLite (default) or Postgres.

Checkpoints hold one thread's state; a store holds what outlives threads (a user's
preferences, facts an agent learned), in namespaces such as ``("users", "u-42")``.
Compile a graph with ``store=sqlite_store(path)`` and its nodes and tools reach it
through ``langgraph.config.get_store()``; :func:`podium.tools.memory_tools` gives
agents ``remember`` / ``recall`` tools over it.

``sqlite_store`` opens the file with the same checks and settings as
:func:`~podium.checkpoints.sqlite_saver` (it may be the same file: the store's
tables are ``store*``). ``postgres_store`` uses its own connection pool and runs
set-up under the same advisory lock as the saver.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from langgraph.store.postgres import PostgresStore
from langgraph.store.postgres.base import PostgresIndexConfig
from langgraph.store.sqlite import SqliteStore
from langgraph.store.sqlite.base import SqliteIndexConfig
from psycopg import Connection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from podium.checkpoints._common import ClosesPool
from podium.checkpoints._integrity import check_database_file
from podium.checkpoints._pg import session_kwargs as _session_kwargs
from podium.checkpoints._pg import setup_lock as _setup_lock
from podium.checkpoints._pg import unreachable as _unreachable

__all__ = ["PodiumPostgresStore", "PodiumSqliteStore", "postgres_store", "sqlite_store"]


class PodiumSqliteStore(SqliteStore):
    """A ``SqliteStore`` on its own WAL connection; close it, or use it as a context manager."""

    path: Path
    """The database file."""

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def __enter__(self) -> PodiumSqliteStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def sqlite_store(
    path: str | Path,
    *,
    index: SqliteIndexConfig | None = None,
    busy_timeout: float = 30.0,
    integrity_check: bool = True,
) -> PodiumSqliteStore:
    """Open (or create) a LangGraph ``SqliteStore`` at ``path`` for long-term memory.

    Args:
        path: The database file (may be the checkpointer's own file).
        index: LangGraph's embedding index configuration, for semantic search;
            without it ``search`` filters by namespace and fields only.
        busy_timeout: Seconds a writer waits for another process's lock.
        integrity_check: Run SQLite's ``quick_check`` when opening.

    Raises:
        CorruptDatabaseError: If the file is empty, not SQLite, corrupt, or foreign.

    Example:
        >>> import tempfile, pathlib
        >>> from podium.checkpoints import sqlite_store
        >>> with sqlite_store(pathlib.Path(tempfile.mkdtemp()) / "memory.sqlite") as store:
        ...     store.put(("users", "u1"), "tz", {"value": "Europe/Paris"})
        ...     store.get(("users", "u1"), "tz").value
        {'value': 'Europe/Paris'}
    """
    file = Path(path)
    check_database_file(file, quick_check=integrity_check)
    file.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        file, check_same_thread=False, isolation_level=None, timeout=busy_timeout
    )
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    store = PodiumSqliteStore(conn, index=index)
    store.path = file
    try:
        store.setup()
    except BaseException:
        conn.close()
        raise
    return store


class PodiumPostgresStore(ClosesPool, PostgresStore):
    """A ``PostgresStore`` on its own connection pool; close it, or use it as a context manager."""


def postgres_store(
    url: str,
    *,
    index: PostgresIndexConfig | None = None,
    pool_size: int = 5,
    connect_timeout: float = 10.0,
) -> PodiumPostgresStore:
    """Open a LangGraph ``PostgresStore`` for long-term memory (tables created if missing).

    Args:
        url: A libpq connection string (may be the checkpointer's own database).
        index: LangGraph's embedding index configuration (needs the ``pgvector``
            extension), for semantic search.
        pool_size: The most connections the store opens.
        connect_timeout: Seconds to wait for the first connection.

    Raises:
        PersistenceError: If the server cannot be reached within ``connect_timeout``.
    """
    pool: ConnectionPool[Connection[DictRow]] = ConnectionPool(
        url,
        connection_class=Connection[DictRow],
        min_size=1,
        max_size=max(pool_size, 2),
        kwargs={**_session_kwargs(url), "row_factory": dict_row},
        open=False,
    )
    try:
        pool.open(wait=True, timeout=connect_timeout)
    except PoolTimeout as exc:
        pool.close()
        raise _unreachable(url, exc) from exc
    store = PodiumPostgresStore(pool, index=index)
    try:
        with pool.connection() as conn, _setup_lock(conn):
            store.setup()
    except BaseException:
        pool.close()
        raise
    return store
