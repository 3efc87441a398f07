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
Writes without a lease (LangGraph's API used directly) are LangGraph's own.

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
import contextlib
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import aiosqlite
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from podium.checkpoints._common import AsyncOpener, podium_serde, prune_arguments
from podium.checkpoints._integrity import check_database_file
from podium.checkpoints._leases import FENCE_SQL, Lease, lease_of
from podium.checkpoints._ledger import SQLiteLedger, ledger_schema
from podium.checkpoints._retention import prune as retain
from podium.checkpoints._retention_sql import SqliteStorage
from podium.errors import ConfigurationError

__all__ = [
    "PodiumAsyncSqliteSaver",
    "PodiumSqliteSaver",
    "Synchronous",
    "async_sqlite_saver",
    "sqlite_saver",
]

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]
_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
_ROWS_PER_INSERT = 3000  # 9 parameters a row, below SQLite's 32766-parameter limit
_CHECKPOINT_COLUMNS = (
    "thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata"
)
_WRITE_COLUMNS = (
    "thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, type, value"
)
Statement = tuple[str, list[Any]]


def _inserts(
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


class _Rows:
    """The rows LangGraph's SQLite savers write, built once for the sync and async saver."""

    serde: Any

    def _checkpoint_row(
        self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata
    ) -> tuple[Any, ...]:
        conf = config["configurable"]
        type_, serialized = self.serde.dumps_typed(checkpoint)
        meta = json.dumps(get_checkpoint_metadata(config, metadata), ensure_ascii=False)
        return (
            str(conf["thread_id"]),
            conf["checkpoint_ns"],
            checkpoint["id"],
            conf.get("checkpoint_id"),
            type_,
            serialized,
            meta.encode("utf-8", "ignore"),
        )

    def _write_statements(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
        lease: Lease | None,
    ) -> list[Statement]:
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
        return _inserts(verb, "writes", _WRITE_COLUMNS, rows, lease)


def _next_config(config: RunnableConfig, checkpoint: Checkpoint) -> RunnableConfig:
    conf = config["configurable"]
    return {
        "configurable": {
            "thread_id": conf["thread_id"],
            "checkpoint_ns": conf["checkpoint_ns"],
            "checkpoint_id": checkpoint["id"],
        }
    }


def _pragmas(synchronous: str, busy_timeout: float) -> list[str]:
    if synchronous not in _SYNCHRONOUS:
        raise ConfigurationError(
            f"synchronous={synchronous!r} is not a SQLite synchronous level.",
            fix=f"Use one of {', '.join(_SYNCHRONOUS)} (podium's default is NORMAL).",
        )
    return [
        f"PRAGMA busy_timeout={int(busy_timeout * 1000)}",
        "PRAGMA journal_mode=WAL",
        f"PRAGMA synchronous={synchronous}",
    ]


def _create_atomically(path: Path) -> None:
    """Create a ready database at ``path`` unless a file is already there."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)
    os.close(fd)
    try:
        db = sqlite3.connect(name)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            SqliteSaver(db).setup()
            db.executescript(ledger_schema(""))
            db.commit()
        finally:
            db.close()
        try:
            os.link(name, path)  # atomic; fails if another process made it first
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links
            if not path.exists():
                os.replace(name, path)
    finally:
        for leftover in (name, f"{name}-wal", f"{name}-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)


def _prepare(path: Path, integrity_check: bool) -> None:
    check_database_file(path, quick_check=integrity_check)
    _create_atomically(path)


class _CompactVersions:
    """Short channel versions that stock LangGraph savers continue correctly.

    LangGraph's stock savers version channels as ``"<32-digit counter>.<random>"``
    (about 50 characters); the random part keeps Postgres's blob rows (keyed by
    version) apart across forks. SQLite stores each checkpoint's values inline, so a
    counter is enough: podium writes ``"+000000007"`` -- ``+`` and the counter in
    nine digits. That form is what makes a podium thread a LangGraph thread:

    * LangGraph compares versions with ``>`` and takes their ``max``, so every
      version of a thread must be of one type: strings, as the stock savers write
      (integers, which podium wrote before, made a stock saver's next version a
      string beside integers: ``TypeError: '>' not supported``);
    * the stock saver's next version after ``"+000000007"`` is
      ``int("+000000007") + 1`` in its own form, and ``+`` sorts below every digit, so
      each stock version sorts above every podium version: order is kept in both
      directions (podium → stock, stock → podium, and back);
    * among themselves, podium's fixed-width counters sort as numbers.

    A thread a stock saver started or continued (its newest versions in the stock
    form) keeps getting stock versions; a counter past nine digits does too. Each
    checkpoint stores about six versions, so a checkpoint is ~60 bytes larger than
    with bare integers and ~250 bytes smaller than with stock versions
    (``benchmarks/REPORT.md``, row 4b). Threads written by earlier podium builds
    (integer versions) continue with integers.
    """

    def get_next_version(self, current: Any, channel: None) -> Any:
        """The next channel version (see the class docs)."""
        if isinstance(current, int):  # a thread written with integer versions
            return current + 1
        if current is None or current.startswith(_PREFIX):
            following = (int(current) if current else 0) + 1
            if following < _LIMIT:
                return f"{_PREFIX}{following:0{_DIGITS}d}"
        return super().get_next_version(current, channel)  # type: ignore[misc]


_PREFIX = "+"
_DIGITS = 9
_LIMIT = 10**_DIGITS


class PodiumSqliteSaver(_CompactVersions, _Rows, SqliteSaver):
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
        pragmas = _pragmas(synchronous, busy_timeout)
        _prepare(path, integrity_check)
        conn = sqlite3.connect(path, check_same_thread=False, timeout=busy_timeout)
        for pragma in pragmas:
            conn.execute(pragma)
        super().__init__(conn, serde=serde)
        self.path = path
        self.setup()
        self.podium_ledger = SQLiteLedger(path, synchronous=synchronous, busy_timeout=busy_timeout)

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Save a checkpoint (fenced by the run's lease: see the module docs).

        Raises:
            LeaseLostError: If the run no longer holds its thread; nothing was written.
        """
        lease = lease_of(config, self.podium_ledger.location)
        if lease is None:
            return super().put(config, checkpoint, metadata, new_versions)
        row = self._checkpoint_row(config, checkpoint, metadata)
        [(sql, params)] = _inserts("REPLACE", "checkpoints", _CHECKPOINT_COLUMNS, [row], lease)
        with self.cursor() as cur:
            written = cur.execute(sql, params).rowcount
        if written != 1:
            raise self.podium_ledger.lost_lease_error(lease, "checkpoint")
        return _next_config(config, checkpoint)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's writes (fenced by the run's lease: see the module docs).

        Raises:
            LeaseLostError: If the run no longer holds its thread; nothing was written.
        """
        lease = lease_of(config, self.podium_ledger.location)
        if lease is None:
            return super().put_writes(config, writes, task_id, task_path)
        statements = self._write_statements(config, writes, task_id, task_path, lease)
        with self.cursor() as cur:  # one transaction: every part, or none
            written = sum(cur.execute(sql, params).rowcount for sql, params in statements)
        if writes and not written and not self.podium_ledger.holds(lease):
            raise self.podium_ledger.lost_lease_error(lease, "task's writes")
        return None

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


class PodiumAsyncSqliteSaver(_CompactVersions, _Rows, AsyncSqliteSaver):
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

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Save a checkpoint (fenced by the run's lease: see the module docs).

        Raises:
            LeaseLostError: If the run no longer holds its thread; nothing was written.
        """
        lease = lease_of(config, self.podium_ledger.location)
        if lease is None:
            return await super().aput(config, checkpoint, metadata, new_versions)
        await self.setup()
        row = self._checkpoint_row(config, checkpoint, metadata)
        [(sql, params)] = _inserts("REPLACE", "checkpoints", _CHECKPOINT_COLUMNS, [row], lease)
        async with self.lock, self.conn.execute(sql, params) as cur:
            written = cur.rowcount
        if written != 1:
            raise await asyncio.to_thread(self.podium_ledger.lost_lease_error, lease, "checkpoint")
        return _next_config(config, checkpoint)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's writes, one statement per 3,000 (atomic in autocommit mode).

        Fenced by the run's lease (see the module docs).

        Raises:
            LeaseLostError: If the run no longer holds its thread; nothing was written.
        """
        if not writes:
            return
        lease = lease_of(config, self.podium_ledger.location)
        await self.setup()
        written = 0
        for sql, params in self._write_statements(config, writes, task_id, task_path, lease):
            async with self.lock, self.conn.execute(sql, params) as cur:
                written += cur.rowcount
        if lease is not None and not written:
            ledger = self.podium_ledger
            if not await asyncio.to_thread(ledger.holds, lease):
                raise await asyncio.to_thread(ledger.lost_lease_error, lease, "task's writes")

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

    async def __aenter__(self) -> PodiumAsyncSqliteSaver:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


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
    pragmas = _pragmas(synchronous, busy_timeout)

    async def open_() -> PodiumAsyncSqliteSaver:
        _prepare(file, integrity_check)
        conn = await aiosqlite.connect(file, timeout=busy_timeout, isolation_level=None)
        try:
            for pragma in pragmas:
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
