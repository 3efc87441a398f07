"""PostgreSQL with psycopg alone: the ledger, the run events, connecting, set-up.

What the savers (:mod:`podium.checkpoints._postgres`) share with readers that must
not import LangGraph -- the CLI's read-only commands on ``--db postgresql://...``:
:class:`PostgresLedger` (the exactly-once ledger, the thread registry, and the
``podium_events`` table, created together under podium's set-up lock) and
:class:`PostgresEventStore` (the run events, on a ledger's connections).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from psycopg import Connection
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import tuple_row
from psycopg_pool import ConnectionPool, PoolTimeout

from podium.checkpoints._events import EventStore, events_schema
from podium.checkpoints._ledger import Row, ToolLedger, ledger_schema
from podium.checkpoints._urls import is_postgres_url, safe_url
from podium.errors import PersistenceError

__all__ = [
    "PostgresEventStore",
    "PostgresLedger",
    "check_reachable",
    "is_postgres_url",
    "redact",
    "safe_url",
]

SETUP_LOCK = 7_301_116_105_117_109  # advisory lock key: podium's schema set-up
CONN_KWARGS: dict[str, Any] = {"autocommit": True, "prepare_threshold": 0}

IDLE_IN_TRANSACTION_MS = 10_000
"""The server ends a session of podium's that leaves a transaction open this long.

podium's transactions are a few statements sent back to back; one left open for
seconds belongs to a worker that was frozen mid-write (SIGSTOP, a paused VM). Its
row locks (the fence's ``FOR SHARE`` on the thread's registry row) would otherwise
block the worker that takes the thread over, for as long as the frozen one is stopped;
this bounds the wait. The frozen worker's write then fails: it wrote nothing."""


def session_kwargs(url: str) -> dict[str, Any]:
    """Connection settings for podium's pools on ``url``.

    :data:`CONN_KWARGS`, and the :data:`IDLE_IN_TRANSACTION_MS` limit added to the
    URL's own ``options``.
    """
    try:
        given = str(conninfo_to_dict(url).get("options") or "")
    except Exception:  # an unparseable URL fails at connect, with its own message
        given = ""
    limit = f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}"
    return {**CONN_KWARGS, "options": f"{given} {limit}".strip()}


def server_of(url: str) -> str:
    """``host:port`` (or the socket directory) the URL connects to, for error messages."""
    try:
        params = conninfo_to_dict(url)
    except Exception:
        return "an unparseable address"
    host = params.get("host") or "localhost"
    return f"{host}:{params.get('port') or 5432}"


def check_reachable(url: str, timeout: float = 5.0) -> None:
    """Connect once, so a down server or a refused login fails now and says why.

    A pool (what the ledger and the savers open) retries until its timeout and
    reports only that it gave up; one plain connection reports libpq's reason.

    Raises:
        PersistenceError: The server cannot be reached or refused the login; the
            message names host and port, never the password.
    """
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=max(1, int(timeout)), **CONN_KWARGS).close()
    except psycopg.Error as exc:
        reason = str(exc).strip()
        password = conninfo_to_dict(url).get("password")
        if password:
            reason = reason.replace(str(password), "***")
        raise PersistenceError(
            f"Cannot connect to PostgreSQL at {server_of(url)} ({safe_url(url)}): {reason}",
            fix="Check that the server runs there and that the URL's host, port, database, "
            "user and password are right (libpq also reads PGPASSWORD and ~/.pgpass).",
        ) from None


def redact(url: str) -> str:
    """The connection string without its password (for error messages)."""
    try:
        params = conninfo_to_dict(url)
    except Exception:  # an unparseable string: show nothing of it
        return "<unparseable connection string>"
    if "password" in params:
        params["password"] = "***"
    return make_conninfo("", **params)


def unreachable(url: str, exc: BaseException) -> PersistenceError:
    return PersistenceError(
        f"Cannot connect to PostgreSQL at {redact(url)!r}: {exc}.",
        fix="Check that the server runs and the URL (host, port, database, user, password) "
        "is right, e.g. postgresql://user:pass@localhost:5432/podium.",
    )


def locked(row: Any) -> bool:
    """Read ``pg_try_advisory_lock``'s answer from a tuple or dict row."""
    if row is None:
        return False
    return bool(row["locked"] if isinstance(row, dict) else row[0])


@contextmanager
def setup_lock(conn: Connection[Any], timeout: float = 300.0) -> Iterator[None]:
    # Poll with pg_try_advisory_lock instead of blocking in pg_advisory_lock: a waiter
    # blocked inside a statement holds a transaction open, and the migrations' CREATE
    # INDEX CONCURRENTLY waits for every open transaction -- an undetected deadlock
    # between the lock holder and its waiters. Polling leaves no transaction open.
    deadline = time.monotonic() + timeout
    while True:
        row = conn.execute("SELECT pg_try_advisory_lock(%s) AS locked", (SETUP_LOCK,)).fetchone()
        if locked(row):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"podium's schema set-up lock was busy for {timeout:.0f} s")
        time.sleep(0.2)
    try:
        yield
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK,))


class PostgresLedger(ToolLedger):
    """The exactly-once ledger in a PostgreSQL database.

    Args:
        conn: A connection string (the ledger opens a small pool of its own), a
            ``psycopg_pool.ConnectionPool`` (shared, e.g. with the saver), or one
            ``psycopg.Connection``.
        setup: Create the ledger's tables, and the run events' ``podium_events``,
            if missing.
    """

    _placeholder = "%s"
    _order = "seq"
    _share = " FOR SHARE"

    def __init__(
        self, conn: str | ConnectionPool[Any] | Connection[Any], *, setup: bool = True
    ) -> None:
        self._owned = isinstance(conn, str)
        if isinstance(conn, str):
            pool: ConnectionPool[Any] = ConnectionPool(
                conn, min_size=1, max_size=4, kwargs=session_kwargs(conn), open=False
            )
            try:
                pool.open(wait=True, timeout=10)
            except PoolTimeout as exc:
                pool.close()
                raise unreachable(conn, exc) from exc
            self._conn: ConnectionPool[Any] | Connection[Any] = pool
        else:
            self._conn = conn
        self._lock = threading.Lock()
        if setup:
            self.setup()

    def connection(self) -> AbstractContextManager[Connection[Any]]:
        """One of the ledger's connections, for a reader's own statements."""
        return self._connection()

    @contextmanager
    def _connection(self) -> Iterator[Connection[Any]]:
        if isinstance(self._conn, ConnectionPool):
            with self._conn.connection() as conn:
                yield conn
        else:
            with self._lock:
                yield self._conn

    @property
    def location(self) -> str:
        """The database (host, port, name): two ledgers on it share their calls."""
        found: str | None = getattr(self, "_location", None)
        if found is None:  # once: every fenced write of a run asks
            found = self._locate()
            self._location = found
        return found

    def _locate(self) -> str:
        conn = self._conn
        conninfo = conn.conninfo if isinstance(conn, ConnectionPool) else conn.info.dsn
        try:
            params = conninfo_to_dict(conninfo if isinstance(conninfo, str) else conninfo())
        except Exception:  # an unparseable string: this object only
            return super().location
        where = (params.get("host"), params.get("port"), params.get("dbname"))
        return f"postgres:{where}"

    def setup(self) -> None:
        """Create the ledger's tables and ``podium_events`` if missing (many workers may)."""
        with self._connection() as conn, setup_lock(conn):
            schema = ledger_schema("BIGSERIAL") + events_schema("BIGSERIAL PRIMARY KEY")
            for statement in schema.split(";"):
                if statement.strip():
                    conn.execute(statement)
            if not conn.autocommit:
                conn.commit()

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[Row], int]:
        with self._connection() as conn:
            rows: list[Row] = []
            if conn.autocommit:
                with conn.cursor(row_factory=tuple_row) as cur:
                    cur.execute(sql, tuple(params))
                    rows.extend(cur.fetchall() if cur.description else ())
                    return rows, cur.rowcount
            with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
                cur.execute(sql, tuple(params))
                rows.extend(cur.fetchall() if cur.description else ())
                return rows, cur.rowcount

    def delete_thread(self, thread_id: str) -> None:
        """Forget the thread's calls, approvals, registry row and run events."""
        super().delete_thread(thread_id)
        self._run("DELETE FROM podium_events WHERE thread_id=?", (thread_id,))

    def has_table(self, name: str) -> bool:
        """Whether the database has table ``name`` (in the search path)."""
        rows, _ = self._run("SELECT to_regclass(?) IS NOT NULL", (name,))
        return bool(rows and rows[0][0])

    def close(self) -> None:
        """Close the ledger's own pool (a shared pool or connection is left open)."""
        if self._owned and isinstance(self._conn, ConnectionPool):
            self._conn.close()


class PostgresEventStore(EventStore):
    """Run events in PostgreSQL: table ``podium_events`` on a ledger's connections.

    The table is created with the ledger's (:meth:`PostgresLedger.setup`), and
    :meth:`PostgresLedger.delete_thread` deletes a thread's events with its records.

    Args:
        ledger: The ledger whose connections (its own pool, or the saver's) it uses.
    """

    _placeholder = "%s"

    def __init__(self, ledger: PostgresLedger) -> None:
        self.ledger = ledger

    def _insert(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        with (
            self.ledger._connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=tuple_row) as cur,
        ):
            cur.executemany(sql, rows)

    def _select(self, sql: str, args: Sequence[Any]) -> list[Sequence[Any]]:
        with self.ledger._connection() as conn, conn.cursor(row_factory=tuple_row) as cur:
            cur.execute(sql, tuple(args))
            return list(cur.fetchall())

    def close(self) -> None:
        """Nothing to release: the connections are the ledger's."""
