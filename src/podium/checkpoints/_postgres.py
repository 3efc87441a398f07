"""``postgres_saver`` / ``async_postgres_saver``: the scale-out path.

Any number of stateless worker processes, on any number of machines, share
threads through one PostgreSQL database: a run paused on one worker is listed,
decided and finished on another. The checkpoints are LangGraph's own
``PostgresSaver`` tables; the exactly-once ledger (:class:`PostgresLedger`) lives in
the same database (tables ``podium_tool_calls`` and ``podium_approvals``), so the
approval and exactly-once guarantees hold across workers. The run ledger's events
(table ``podium_events``) are there too, created with the ledger's tables
(:mod:`podium.checkpoints._pg`).

Each saver owns a ``psycopg_pool`` connection pool (autocommit, as LangGraph's
saver requires). ``delete_thread`` and ``prune(..., strategy="delete")`` also
delete the threads' ledger rows and run events; ``prune(..., strategy="keep_latest")`` is
:func:`podium.checkpoints.prune` with ``keep_last=1``, since LangGraph's own
``keep_latest`` refuses threads with ``DeltaChannel`` histories -- every podium
graph's thread. Schema set-up (LangGraph's migrations and the ledger's tables)
runs under a PostgreSQL advisory lock, so many workers may start at once on a
fresh database.

**Fenced writes.** A checkpoint or a task's writes made by a run that holds its
thread's lease (a top-level run of a podium graph: see
:mod:`podium.checkpoints._leases`) runs in one transaction that first reads the
thread's row in ``podium_threads`` ``FOR SHARE`` and checks the run's lease
generation: a run taking the thread over waits for that transaction, and a run
that lost the thread writes nothing (:class:`~podium.errors.LeaseLostError`; the
transaction is rolled back). The check, the writes and the commit are pipelined,
as LangGraph pipelines its writes, so the fence adds no round trip. Writes
without a lease are LangGraph's own. The fence's logic is
:mod:`podium.checkpoints._fenced` (shared with the SQLite savers).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any

from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from psycopg import AsyncCursor, Connection, Cursor
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from podium.checkpoints._common import (
    AsyncOpener,
    ClosesAsync,
    ClosesPool,
    podium_serde,
    prune_arguments,
)
from podium.checkpoints._fenced import AsyncFencedWrites, FencedWrites, PutCheckpoint, PutWrites
from podium.checkpoints._leases import FENCE_SQL, Lease
from podium.checkpoints._pg import (
    CONN_KWARGS,
    SETUP_LOCK,
    PostgresLedger,
    locked,
    session_kwargs,
    setup_lock,
    unreachable,
)
from podium.errors import ConfigurationError

__all__ = [
    "PodiumAsyncPostgresSaver",
    "PodiumPostgresSaver",
    "PostgresLedger",
    "async_postgres_saver",
    "postgres_saver",
]

_FENCE_SHARE = FENCE_SQL.replace("?", "%s") + " FOR SHARE"
_FENCE: ContextVar[Lease | None] = ContextVar("podium_fence", default=None)
"""The lease the saver call running in this context is fenced by."""


class _Lost(Exception):
    """A fenced write found the run's lease gone (rolls its transaction back)."""


class _Fenced:
    """Within: the saver's writes are fenced by ``lease`` (its ``_cursor`` reads it).

    A write refused by the fence raises ``_Lost`` inside, which rolls its
    transaction back; here it ends the block, and :attr:`held` says so.
    """

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self.held = True

    def __enter__(self) -> _Fenced:
        self._token = _FENCE.set(self.lease)
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> bool:
        _FENCE.reset(self._token)
        self.held = kind is not _Lost
        return not self.held


def _check_pool_size(pool_size: int) -> None:
    if pool_size < 2:
        raise ConfigurationError(
            f"pool_size={pool_size} is too small: set-up holds one connection while it "
            "runs migrations on another.",
            fix="Use pool_size=2 or more (the default is 10).",
        )


class PodiumPostgresSaver(FencedWrites, ClosesPool, PostgresSaver):
    """A ``PostgresSaver`` on its own connection pool, with the ledger in the same database.

    Use it as a plain object (``saver.close()`` when done) or as a context manager.
    """

    podium_ledger: PostgresLedger
    """The exactly-once ledger, in the same database (sharing the pool)."""
    url: str
    """The connection string."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int,
        serde: JsonPlusSerializer,
        connect_timeout: float = 10.0,
    ) -> None:
        _check_pool_size(pool_size)
        pool: ConnectionPool[Connection[DictRow]] = ConnectionPool(
            url,
            connection_class=Connection[DictRow],
            min_size=1,
            max_size=pool_size,
            kwargs={**session_kwargs(url), "row_factory": dict_row},
            open=False,
        )
        try:
            pool.open(wait=True, timeout=connect_timeout)
        except PoolTimeout as exc:
            pool.close()
            raise unreachable(url, exc) from exc
        super().__init__(pool, serde=serde)
        self.url = url
        with pool.connection() as conn, setup_lock(conn):
            self.setup()
        self.podium_ledger = PostgresLedger(pool)

    def _fenced_put(self, lease: Lease, put: PutCheckpoint) -> bool:
        with _Fenced(lease) as fence:
            PostgresSaver.put(self, *put)
        return fence.held

    def _fenced_put_writes(self, lease: Lease, put: PutWrites) -> bool:
        with _Fenced(lease) as fence:
            PostgresSaver.put_writes(self, *put)
        return fence.held

    @contextmanager
    def _cursor(self, *, pipeline: bool = False) -> Iterator[Cursor[DictRow]]:
        lease = _FENCE.get()
        if lease is None:
            with super()._cursor(pipeline=pipeline) as cur:
                yield cur
            return
        with (  # pipelined: the check, the writes and the commit in one round trip
            super()._cursor(pipeline=True) as cur,
            cur.connection.transaction(),
            cur.connection.cursor() as check,
        ):
            check.execute(_FENCE_SHARE, lease.params)
            yield cur
            if check.fetchone() is None:
                raise _Lost  # the writes are rolled back with the transaction

    def delete_thread(self, thread_id: str) -> None:
        """Delete the thread's checkpoints, writes, blobs, its ledger rows and run events."""
        super().delete_thread(thread_id)
        self.podium_ledger.delete_thread(str(thread_id))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune the given threads (LangGraph's saver interface).

        ``"delete"`` removes the threads' checkpoints, writes and blobs in one
        transaction (LangGraph's ``prune``), then their exactly-once ledger rows
        (``podium_tool_calls``, ``podium_approvals``) and run events
        (``podium_events``), as :meth:`delete_thread` does. ``"keep_latest"`` runs
        :func:`podium.checkpoints.prune` with ``keep_last=1``: each thread keeps its
        latest checkpoint and what loading it needs (LangGraph's ``keep_latest``
        refuses threads whose history is a ``DeltaChannel``, which every podium
        graph's is); its ledger rows and events stay, since the thread lives on.

        Args:
            thread_ids: The threads (a sequence of ids; one string is refused).
            strategy: ``"keep_latest"`` (default) or ``"delete"``.

        Raises:
            ConfigurationError: If ``thread_ids`` is a string or ``strategy`` is unknown.
        """
        ids = prune_arguments(thread_ids, strategy)
        if not ids:
            return
        if strategy == "delete":
            super().prune(ids, strategy="delete")
            for thread_id in ids:
                self.podium_ledger.delete_thread(thread_id)
            return
        from podium.checkpoints._retention import prune as retain  # imports this module

        for thread_id in ids:
            retain(self, thread_id, keep_last=1)


def postgres_saver(
    url: str,
    *,
    pool_size: int = 10,
    allowed_types: Iterable[type | tuple[str, str]] = (),
    connect_timeout: float = 10.0,
) -> PodiumPostgresSaver:
    """Open a podium checkpointer on a PostgreSQL database (tables created if missing).

    Returns a plain object, also usable as a context manager that closes it.

    Args:
        url: A libpq connection string, e.g. ``postgresql://user:pass@host:5432/db``
            (or ``postgresql:///db?host=/run/postgresql`` for a Unix socket).
        pool_size: The most connections this saver opens (at least 2).
        allowed_types: Extra classes the serializer may rebuild (see
            :func:`~podium.checkpoints.podium_serde`).
        connect_timeout: Seconds to wait for the first connection.

    Raises:
        PersistenceError: If the server cannot be reached within ``connect_timeout``.
    """
    return PodiumPostgresSaver(
        url,
        pool_size=pool_size,
        serde=podium_serde(allowed_types),
        connect_timeout=connect_timeout,
    )


class PodiumAsyncPostgresSaver(ClosesAsync, AsyncFencedWrites, AsyncPostgresSaver):
    """An ``AsyncPostgresSaver`` on its own async pool, with the ledger in the same database.

    The ledger uses a small synchronous pool of its own (its statements are short
    and single). Close with ``await saver.aclose()`` or ``async with``.
    """

    podium_ledger: PostgresLedger
    """The exactly-once ledger, in the same database."""
    url: str
    """The connection string."""

    async def _afenced_put(self, lease: Lease, put: PutCheckpoint) -> bool:
        with _Fenced(lease) as fence:
            await AsyncPostgresSaver.aput(self, *put)
        return fence.held

    async def _afenced_put_writes(self, lease: Lease, put: PutWrites) -> bool:
        with _Fenced(lease) as fence:
            await AsyncPostgresSaver.aput_writes(self, *put)
        return fence.held

    @asynccontextmanager
    async def _cursor(self, *, pipeline: bool = False) -> AsyncIterator[AsyncCursor[DictRow]]:
        lease = _FENCE.get()
        if lease is None:
            async with super()._cursor(pipeline=pipeline) as cur:
                yield cur
            return
        async with (  # pipelined: the check, the writes and the commit in one round trip
            super()._cursor(pipeline=True) as cur,
            cur.connection.transaction(),
            cur.connection.cursor() as check,
        ):
            await check.execute(_FENCE_SHARE, lease.params)
            yield cur
            if await check.fetchone() is None:
                raise _Lost  # the writes are rolled back with the transaction

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete the thread's checkpoints, writes, blobs, its ledger rows and run events."""
        await super().adelete_thread(thread_id)
        self.podium_ledger.delete_thread(str(thread_id))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune the given threads; what each strategy does is :meth:`PodiumPostgresSaver.prune`'s.

        ``"keep_latest"`` runs :func:`podium.checkpoints.prune` in a worker thread,
        on a synchronous connection of its own to the same database. The
        synchronous ``prune`` (from a thread other than the event loop's) runs this.

        Args:
            thread_ids: The threads (a sequence of ids; one string is refused).
            strategy: ``"keep_latest"`` (default) or ``"delete"``.

        Raises:
            ConfigurationError: If ``thread_ids`` is a string or ``strategy`` is unknown.
        """
        ids = prune_arguments(thread_ids, strategy)
        if not ids:
            return
        if strategy == "delete":
            await super().aprune(ids, strategy="delete")
            for thread_id in ids:
                self.podium_ledger.delete_thread(thread_id)
            return
        url = getattr(self, "url", None)
        if not url:
            raise ConfigurationError(
                'aprune(strategy="keep_latest") opens a synchronous connection of its own and '
                "this saver does not know its connection string.",
                fix="Open the saver with podium.checkpoints.async_postgres_saver(url), or set "
                "saver.url.",
            )
        await asyncio.to_thread(self._keep_latest, url, ids)

    def _keep_latest(self, url: str, thread_ids: Sequence[str]) -> None:
        from podium.checkpoints._retention import prune as retain  # imports this module

        with Connection.connect(url, **CONN_KWARGS, row_factory=dict_row) as conn:
            saver = PostgresSaver(conn, serde=self.serde)
            for thread_id in thread_ids:
                retain(saver, thread_id, keep_last=1)

    async def aclose(self) -> None:
        """Close both pools."""
        self.podium_ledger.close()
        if isinstance(self.conn, AsyncConnectionPool):
            await self.conn.close()


def async_postgres_saver(
    url: str,
    *,
    pool_size: int = 10,
    allowed_types: Iterable[type | tuple[str, str]] = (),
    connect_timeout: float = 10.0,
) -> AsyncOpener[PodiumAsyncPostgresSaver]:
    """Open a podium async checkpointer on a PostgreSQL database.

    Use ``async with async_postgres_saver(url) as saver:`` or
    ``saver = await async_postgres_saver(url)`` (then ``await saver.aclose()``).

    Args:
        url: A libpq connection string.
        pool_size: The most connections the saver's async pool opens (at least 2).
        allowed_types: Extra classes the serializer may rebuild.
        connect_timeout: Seconds to wait for the first connection.

    Raises:
        PersistenceError: If the server cannot be reached within ``connect_timeout``.
    """
    _check_pool_size(pool_size)

    async def open_() -> PodiumAsyncPostgresSaver:
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={**session_kwargs(url), "row_factory": dict_row},
            open=False,
        )
        try:
            await pool.open(wait=True, timeout=connect_timeout)
        except PoolTimeout as exc:
            await pool.close()
            raise unreachable(url, exc) from exc
        try:
            saver = PodiumAsyncPostgresSaver(pool, serde=podium_serde(allowed_types))
            saver.url = url
            async with pool.connection() as conn:
                deadline = time.monotonic() + 300.0
                while True:  # poll, never block in a statement (see setup_lock)
                    cur = await conn.execute(
                        "SELECT pg_try_advisory_lock(%s) AS locked", (SETUP_LOCK,)
                    )
                    if locked(await cur.fetchone()):
                        break
                    if time.monotonic() > deadline:
                        raise TimeoutError("podium's schema set-up lock was busy for 300 s")
                    await asyncio.sleep(0.2)
                try:
                    await saver.setup()
                finally:
                    await conn.execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK,))
            saver.podium_ledger = PostgresLedger(url)
        except BaseException:
            await pool.close()
            raise
        return saver

    return AsyncOpener(open_)
