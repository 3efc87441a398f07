"""``sqlite_saver`` / ``async_sqlite_saver``: LangGraph's SQLite savers tuned for podium.

Settings (applied to every connection podium opens on the file):

* ``journal_mode=WAL`` -- readers never block the writer; many threads and
  processes may share the file.
* ``synchronous=NORMAL`` (default, configurable) -- in WAL mode a committed
  transaction survives a process crash (SIGKILL); only an operating-system crash
  or power loss can lose the last few commits. Pass ``synchronous="FULL"`` to
  survive those too, at the cost of an fsync per commit.
* ``busy_timeout`` 30 s -- a writer waits for the lock instead of failing with
  "database is locked". Every write LangGraph's savers and the ledger make is a
  single-statement transaction that starts by writing, so the wait always applies
  (no read-then-write upgrade that SQLite would refuse at once).
* One connection per saver object (share the object between threads); each
  process opens its own saver.

A new file is created whole -- in a temporary file beside it, then linked into
place -- so another process never sees a half-made database, and a zero-length
file always means lost data (:class:`~podium.errors.CorruptDatabaseError`).

The exactly-once tool ledger lives in the same file (tables ``podium_*``), on a
second, autocommit connection. The savers deserialise strictly (see
:func:`~podium.checkpoints.podium_serde`).

**Fenced writes.** A checkpoint or a task's writes made by a run that holds its
thread's lease (a top-level run of a podium graph: see
:mod:`podium.checkpoints._leases`) is one ``INSERT ... SELECT ... WHERE EXISTS``
statement that writes only if the thread's row in ``podium_threads`` still has
the run's lease generation: the check and the write are one transaction, so a run
that lost its thread writes nothing (:class:`~podium.errors.LeaseLostError`).
Writes without a lease (LangGraph's API used directly) are LangGraph's own. The
fence's logic is :mod:`podium.checkpoints._fenced` (shared with the Postgres
savers); the statements are :mod:`podium.checkpoints._sqlite_rows`.

**Deleting and pruning.** ``delete_thread`` removes a thread's checkpoints and
writes, its ledger rows and its run events (table ``podium_events`` in the same
file). LangGraph's stock SQLite savers do not implement ``prune`` / ``aprune``;
podium's do: ``strategy="delete"`` is ``delete_thread`` for each thread, and
``strategy="keep_latest"`` is :func:`podium.checkpoints.prune` with
``keep_last=1`` (the latest checkpoint and what loading it needs; ledger rows and
events stay, since the thread lives on).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from podium.checkpoints._common import AsyncOpener, ClosesAsync, podium_serde, prune_arguments
from podium.checkpoints._fenced import AsyncFencedWrites, FencedWrites, PutCheckpoint, PutWrites
from podium.checkpoints._leases import Lease
from podium.checkpoints._ledger import SQLiteLedger
from podium.checkpoints._retention import prune as retain
from podium.checkpoints._retention_sql import SqliteStorage
from podium.checkpoints._sqlite_file import Synchronous, pragmas, prepare
from podium.checkpoints._sqlite_rows import SqliteRows, Statement
from podium.checkpoints._versions import CompactVersions

__all__ = [
    "PodiumAsyncSqliteSaver",
    "PodiumSqliteSaver",
    "Synchronous",
    "async_sqlite_saver",
    "sqlite_saver",
]


class PodiumSqliteSaver(CompactVersions, SqliteRows, FencedWrites, SqliteSaver):
    """A ``SqliteSaver`` with podium's settings and its tool ledger in the same file.

    Use it as a plain object (``saver.close()`` when done) or as a context manager.
    """

    podium_ledger: SQLiteLedger
    """The exactly-once ledger stored in the same file."""
    path: Path
    """The database file."""

    def __init__(
        self,
        path: Path,
        *,
        synchronous: Synchronous,
        busy_timeout: float,
        serde: JsonPlusSerializer,
        integrity_check: bool = True,
    ) -> None:
        settings = pragmas(synchronous, busy_timeout)
        prepare(path, integrity_check)
        conn = sqlite3.connect(path, check_same_thread=False, timeout=busy_timeout)
        for pragma in settings:
            conn.execute(pragma)
        super().__init__(conn, serde=serde)
        self.path = path
        self.setup()
        self.podium_ledger = SQLiteLedger(path, synchronous=synchronous, busy_timeout=busy_timeout)

    def _execute(self, statements: Sequence[Statement]) -> int:
        """Run ``statements`` in one transaction (every part, or none); rows written."""
        with self.cursor() as cur:
            return sum(cur.execute(sql, params).rowcount for sql, params in statements)

    def _fenced_put(self, lease: Lease, put: PutCheckpoint) -> bool:
        return self._execute([self._checkpoint_statement(put, lease)]) == 1

    def _fenced_put_writes(self, lease: Lease, put: PutWrites) -> bool:
        written = self._execute(self._write_statements(put, lease))
        # no row written: refused by the fence, or every row was there already
        return bool(written) or not put.writes or self.podium_ledger.holds(lease)

    def delete_thread(self, thread_id: str) -> None:
        """Delete the thread's checkpoints and writes, its ledger rows and its run events."""
        super().delete_thread(thread_id)
        self.podium_ledger.delete_thread(str(thread_id))
        SqliteStorage(self).delete_events(str(thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune the given threads (LangGraph's saver interface; the stock saver has none).

        ``"delete"`` runs :meth:`delete_thread` for each thread: checkpoints,
        writes, exactly-once ledger rows (``podium_tool_calls``,
        ``podium_approvals``) and run events go. ``"keep_latest"`` runs
        :func:`podium.checkpoints.prune` with ``keep_last=1``: each thread keeps its
        latest checkpoint and what loading it needs (ancestors back to the last
        ``messages`` snapshot, pending writes, subgraph calls); its ledger rows and
        run events stay, since the thread lives on.

        Args:
            thread_ids: The threads (a sequence of ids; one string is refused).
            strategy: ``"keep_latest"`` (default) or ``"delete"``.

        Raises:
            ConfigurationError: If ``thread_ids`` is a string or ``strategy`` is unknown.
        """
        for thread_id in prune_arguments(thread_ids, strategy):
            if strategy == "delete":
                self.delete_thread(thread_id)
            else:
                retain(self, thread_id, keep_last=1)

    def close(self) -> None:
        """Close the checkpoint and ledger connections."""
        self.podium_ledger.close()
        self.conn.close()

    def __enter__(self) -> PodiumSqliteSaver:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def sqlite_saver(
    path: str | Path,
    *,
    synchronous: Synchronous = "NORMAL",
    busy_timeout: float = 30.0,
    allowed_types: Iterable[type | tuple[str, str]] = (),
    integrity_check: bool = True,
) -> PodiumSqliteSaver:
    """Open (or create) a podium SQLite checkpointer at ``path``.

    Returns a plain object, also usable as a context manager that closes it.

    Args:
        path: The database file; created if missing.
        synchronous: SQLite's ``synchronous`` level (see the module docs).
        busy_timeout: Seconds a writer waits for the lock before failing.
        allowed_types: Extra classes the serializer may rebuild (see
            :func:`~podium.checkpoints.podium_serde`).
        integrity_check: Run SQLite's ``quick_check`` when opening (reads the
            whole file: about a second per GB). Header, size and table checks
            always run.

    Raises:
        CorruptDatabaseError: If the file is empty, not SQLite, corrupt, or foreign.

    Example:
        >>> import tempfile, pathlib
        >>> from podium.checkpoints import sqlite_saver
        >>> with sqlite_saver(pathlib.Path(tempfile.mkdtemp()) / "runs.sqlite") as saver:
        ...     saver.path.name
        'runs.sqlite'
    """
    return PodiumSqliteSaver(
        Path(path),
        synchronous=synchronous,
        busy_timeout=busy_timeout,
        serde=podium_serde(allowed_types),
        integrity_check=integrity_check,
    )


class PodiumAsyncSqliteSaver(
    ClosesAsync, CompactVersions, SqliteRows, AsyncFencedWrites, AsyncSqliteSaver
):
    """An ``AsyncSqliteSaver`` with podium's settings and its ledger in the same file.

    The ledger keeps a synchronous connection of its own (its writes are single
    short statements). Close with ``await saver.aclose()`` or ``async with``.

    Its aiosqlite connection runs in autocommit mode and every write is one
    statement, committed inside aiosqlite's thread. (LangGraph's saver commits with
    a second ``await``; if the event loop is busy in a synchronous ledger write
    meanwhile, the two connections wait on each other until "database is locked".)
    """

    podium_ledger: SQLiteLedger
    """The exactly-once ledger stored in the same file."""
    path: Path
    """The database file."""

    async def _aexecute(self, statements: Sequence[Statement]) -> int:
        """Run ``statements``, each its own autocommit transaction; rows written."""
        await self.setup()
        written = 0
        for sql, params in statements:
            async with self.lock, self.conn.execute(sql, params) as cur:
                written += cur.rowcount
        return written

    async def _afenced_put(self, lease: Lease, put: PutCheckpoint) -> bool:
        return await self._aexecute([self._checkpoint_statement(put, lease)]) == 1

    async def _afenced_put_writes(self, lease: Lease, put: PutWrites) -> bool:
        if not put.writes:
            return True
        written = await self._aexecute(self._write_statements(put, lease))
        return bool(written) or await asyncio.to_thread(self.podium_ledger.holds, lease)

    async def _aput_writes_unfenced(self, put: PutWrites) -> None:
        """A task's writes, one statement per 3,000 rows (atomic in autocommit mode)."""
        if put.writes:
            await self._aexecute(self._write_statements(put, None))

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete the thread's checkpoints and writes, its ledger rows and its run events."""
        await super().adelete_thread(thread_id)
        self.podium_ledger.delete_thread(str(thread_id))
        async with self.lock:
            found = await self.conn.execute_fetchall(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'podium_events'"
            )
            if found:
                sql = "DELETE FROM podium_events WHERE thread_id = ?"
                async with self.conn.execute(sql, (str(thread_id),)):
                    pass

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune the given threads; what each strategy does is :meth:`PodiumSqliteSaver.prune`'s.

        ``"delete"`` runs :meth:`adelete_thread` for each thread (ledger rows and
        run events included). ``"keep_latest"`` runs :func:`podium.checkpoints.prune`
        with ``keep_last=1`` in a worker thread, on a connection of its own to the
        same file.

        Args:
            thread_ids: The threads (a sequence of ids; one string is refused).
            strategy: ``"keep_latest"`` (default) or ``"delete"``.

        Raises:
            ConfigurationError: If ``thread_ids`` is a string or ``strategy`` is unknown.
        """
        ids = prune_arguments(thread_ids, strategy)
        if strategy == "delete":
            for thread_id in ids:
                await self.adelete_thread(thread_id)
            return
        if ids:
            await asyncio.to_thread(self._keep_latest, ids, await self._busy_timeout())

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Synchronous :meth:`aprune`, for a thread other than the event loop's."""
        try:
            if asyncio.get_running_loop() is self.loop:
                raise asyncio.InvalidStateError(
                    "Synchronous calls to AsyncSqliteSaver are only allowed from a different "
                    "thread. From the main thread, use `await checkpointer.aprune(...)`."
                )
        except RuntimeError:
            pass
        asyncio.run_coroutine_threadsafe(
            self.aprune(thread_ids, strategy=strategy), self.loop
        ).result()

    async def _busy_timeout(self) -> float:
        rows = list(await self.conn.execute_fetchall("PRAGMA busy_timeout"))
        return float(rows[0][0]) / 1000 if rows else 30.0

    def _keep_latest(self, thread_ids: Sequence[str], busy_timeout: float) -> None:
        conn = sqlite3.connect(self.path, check_same_thread=False, timeout=busy_timeout)
        try:
            conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            saver = SqliteSaver(conn, serde=self.serde)
            for thread_id in thread_ids:
                retain(saver, thread_id, keep_last=1)
        finally:
            conn.close()

    async def aclose(self) -> None:
        """Close the checkpoint and ledger connections."""
        self.podium_ledger.close()
        await self.conn.close()


def async_sqlite_saver(
    path: str | Path,
    *,
    synchronous: Synchronous = "NORMAL",
    busy_timeout: float = 30.0,
    allowed_types: Iterable[type | tuple[str, str]] = (),
    integrity_check: bool = True,
) -> AsyncOpener[PodiumAsyncSqliteSaver]:
    """Open (or create) a podium async SQLite checkpointer at ``path``.

    Same file format, settings and checks as :func:`sqlite_saver`; for
    ``ainvoke`` / ``astream``. Use ``async with async_sqlite_saver(path) as saver:``
    or ``saver = await async_sqlite_saver(path)`` (then ``await saver.aclose()``).

    Args:
        path: The database file; created if missing.
        synchronous: SQLite's ``synchronous`` level.
        busy_timeout: Seconds a writer waits for the lock before failing.
        allowed_types: Extra classes the serializer may rebuild.
        integrity_check: Run SQLite's ``quick_check`` when opening.

    Raises:
        CorruptDatabaseError: If the file is empty, not SQLite, corrupt, or foreign.
    """
    file = Path(path)
    settings = pragmas(synchronous, busy_timeout)

    async def open_() -> PodiumAsyncSqliteSaver:
        prepare(file, integrity_check)
        conn = await aiosqlite.connect(file, timeout=busy_timeout, isolation_level=None)
        try:
            for pragma in settings:
                await conn.execute(pragma)
            saver = PodiumAsyncSqliteSaver(conn, serde=podium_serde(allowed_types))
            await saver.setup()
            saver.path = file
            saver.podium_ledger = SQLiteLedger(
                file, synchronous=synchronous, busy_timeout=busy_timeout
            )
        except BaseException:
            await conn.close()
            raise
        return saver

    return AsyncOpener(open_)
