"""The CLI's database: what it reads without user code, and how it rebuilds a graph.

Every podium graph registers the threads it runs in ``podium_threads`` (see
:mod:`podium.checkpoints._threads`), in the same database as its checkpoints, ledger
and run events: a SQLite file, or a PostgreSQL database (``--db postgresql://...``).
So ``threads``, ``pending``, ``trace`` and ``cost`` read the database alone --
whoever started the run, from Python, a notebook, the CLI or LangGraph Server with
``PODIUM_LEDGER`` -- and import neither the user's module nor LangGraph (they need
:mod:`sqlite3`, or psycopg, imported only for a PostgreSQL URL).

Commands that continue a run (``approve``, ``reject``, ``respond``, ``resume``)
must run the graph: they rebuild it from the thread's recorded ``source``
(``package.module:attr``, or ``demo:NAME``) or from ``--graph``, and compile it on
podium's saver of the same database, exactly as another machine sharing it would.

A PostgreSQL URL's password is never printed: messages and the commands the CLI
suggests show the URL without it (libpq then reads ``PGPASSWORD`` or ``~/.pgpass``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from podium.checkpoints._events import SQLiteEventStore
from podium.checkpoints._integrity import check_database_file
from podium.checkpoints._ledger import ApprovalRecord, SQLiteLedger, ToolLedger
from podium.checkpoints._sizes import SizeRow, sqlite_sizes
from podium.checkpoints._threads import ThreadRecord, source_of
from podium.checkpoints._urls import safe_url
from podium.errors import ConfigurationError, UnknownThreadError

if TYPE_CHECKING:
    from langgraph.checkpoint.base import BaseCheckpointSaver
    from langgraph.graph import StateGraph
    from langgraph.graph.state import CompiledStateGraph
    from langgraph.pregel import Pregel

    from podium.checkpoints._pg import PostgresLedger

__all__ = ["Workspace", "load_graph"]

_WAITING = ("new", "running", "waiting")
"""Registry states whose undecided requests are shown as pending (a finished thread's
undecided row belongs to a branch that time travel left behind)."""


class Workspace:
    """The CLI's home folder and its database (checkpoints, ledger, threads, events).

    Args:
        home: The workspace folder (demos keep their data there).
        db: The SQLite file (default ``HOME/podium.sqlite``).
        url: A PostgreSQL URL instead of a file (``--db postgresql://...``).
    """

    def __init__(self, home: Path, db: Path | None = None, url: str | None = None) -> None:
        self.home = home
        self.db = db or home / "podium.sqlite"
        self.url = url
        self._saver: BaseCheckpointSaver[Any] | None = None
        self._ledger: ToolLedger | None = None
        self._pg: PostgresLedger | None = None

    @property
    def where(self) -> str:
        """The database, as messages name it (a URL without its password)."""
        return safe_url(self.url) if self.url else str(self.db)

    def _fix(self) -> str:
        if self.url:
            return (
                "Pass --db with the URL your graph's postgres_saver uses (podium's tables are "
                "created when a podium graph first opens the database)."
            )
        return (
            "Pass --db FILE (the file your graph's sqlite_saver writes) or --home DIR; "
            "PODIUM_HOME sets the default home."
        )

    def _postgres(self) -> PostgresLedger:
        """The ledger on the URL's database, opened once (a down server fails here)."""
        if self._pg is None:
            from podium.checkpoints._pg import PostgresLedger, check_reachable

            url = self.url
            if url is None:  # callers ask only when --db is a URL
                raise ConfigurationError(
                    "The CLI's database is a SQLite file, not a PostgreSQL URL.",
                    fix="Pass --db postgresql://... to read a PostgreSQL database.",
                )
            check_reachable(url)
            self._pg = PostgresLedger(url, setup=False)
        return self._pg

    # -- reading: standard library (or psycopg) only ----------------------------------
    def exists(self) -> bool:
        """Whether the database is there (a file is checked for damage and foreign tables)."""
        if self.url:
            return self._postgres().has_table("podium_threads")
        if not self.db.exists():
            return False
        check_database_file(self.db, quick_check=False)
        return True

    def ledger(self) -> ToolLedger:
        """The ledger (and thread registry) in the database; it must exist."""
        if self._ledger is None:
            if not self.exists():
                raise UnknownThreadError(
                    f"There is no podium database at {self.where}.", fix=self._fix()
                )
            self._ledger = self._postgres() if self.url else SQLiteLedger(self.db)
        return self._ledger

    def threads(self) -> list[ThreadRecord]:
        """Every registered thread, oldest first."""
        return self.ledger().threads() if self.exists() else []

    def thread(self, thread_id: str) -> ThreadRecord:
        """One thread's record: registered, or a thread with checkpoints only."""
        if not self.exists():
            raise UnknownThreadError(
                f"Thread {thread_id!r} is not in {self.where}: there is no podium database there.",
                fix=self._fix(),
            )
        found = self.ledger().thread(thread_id)
        if found is not None:
            return found
        size = next((s for s in self.sizes() if s.thread_id == thread_id), None)
        if size is not None:  # a plain LangGraph graph on this database
            return ThreadRecord(thread_id, *(None,) * 6, "done", None, None, 0, 0.0, 0.0)
        known = ", ".join(t.thread_id for t in self.threads()[-5:]) or "none"
        raise UnknownThreadError(
            f"Thread {thread_id!r} is not in {self.where} (recent threads: {known}).",
            fix="Run `podium threads` to list them, or pass --db/--home for another database.",
        )

    def sizes(self) -> list[SizeRow]:
        """Checkpoint figures per thread (none when the database holds no checkpoints)."""
        if self.url:
            pg = self._postgres()
            if not pg.has_table("checkpoints"):
                return []
            from psycopg.rows import tuple_row

            from podium.checkpoints._sizes import postgres_sizes

            with pg.connection() as conn, conn.cursor(row_factory=tuple_row) as cur:
                return postgres_sizes(cur)
        if not self.exists():
            return []
        db = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
            return sqlite_sizes(db.cursor()) if {"checkpoints", "writes"} <= tables else []
        finally:
            db.close()

    def pending(self, thread_id: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        """``(thread, request JSON)`` of every request waiting for a human."""
        ledger = self.ledger()
        states = {t.thread_id: t.state for t in ledger.threads()}
        found: list[tuple[str, dict[str, Any]]] = []
        threads = [thread_id] if thread_id else sorted(ledger.pending_approvals())
        for thread in threads:
            if states.get(thread, "waiting") not in (*_WAITING, "crashed"):
                continue
            records: list[ApprovalRecord] = ledger.approvals(thread)
            found += [(thread, r.shown or r.request) for r in records if r.status == "pending"]
        return found

    def events(self, thread_id: str | None, since: float | None = None) -> list[dict[str, Any]]:
        """Run events from the database (``[]`` when none were recorded)."""
        if self.url:
            from podium.checkpoints._pg import PostgresEventStore

            pg = self._postgres()
            if not pg.has_table("podium_events"):
                return []
            return PostgresEventStore(pg).events(thread_id, since=since)
        if not self.exists():
            return []
        store = SQLiteEventStore(self.db)
        try:
            return store.events(thread_id, since=since)
        finally:
            store.close()

    # -- running: imports LangGraph and the graph's module --------------------------
    def saver(self) -> BaseCheckpointSaver[Any]:
        """Podium's saver on the database (a SQLite file is created if missing)."""
        if self._saver is None:
            if self.url:
                from podium.checkpoints import postgres_saver

                self._postgres()  # a down server: the clear error, before the pool's
                self._saver = postgres_saver(self.url)
            else:
                from podium.checkpoints import sqlite_saver

                self._saver = sqlite_saver(self.db)
        return self._saver

    def build(
        self, source: str, model: str | None, path: str | None = None
    ) -> StateGraph[Any] | CompiledStateGraph[Any, Any, Any, Any]:
        """The graph ``source`` names (``demo:NAME`` or ``module:attr``).

        Uncompiled, or a compiled LangChain ``create_agent`` graph (see :meth:`app`).
        """
        if source.startswith("demo:"):
            from podium.demos import DEMOS

            name = source.removeprefix("demo:")
            if name not in DEMOS:
                raise ConfigurationError(
                    f"Unknown demo {name!r}; demos: {', '.join(sorted(DEMOS))}."
                )
            return DEMOS[name].build(self.home, model or "default")
        return load_graph(source, path)

    def compiled(
        self, built: StateGraph[Any] | CompiledStateGraph[Any, Any, Any, Any]
    ) -> Pregel[Any, Any, Any, Any]:
        """``built`` compiled on the database (a ``create_agent`` graph governed on it)."""
        from langgraph.graph.state import CompiledStateGraph

        if isinstance(built, CompiledStateGraph):  # create_agent + podium.middleware.Governed
            from podium.middleware import govern

            return govern(built, checkpointer=self.saver())
        return built.compile(checkpointer=self.saver())

    def app(self, record: ThreadRecord, graph: str | None = None) -> Pregel[Any, Any, Any, Any]:
        """The thread's graph compiled on the database (``graph`` overrides the record)."""
        source = graph or record.source
        if not source:
            what = f" (graph {record.graph!r})" if record.graph else ""
            raise ConfigurationError(
                f"Thread {record.thread_id!r} was started outside the CLI{what}, so the CLI "
                "does not know which code to run to continue it.",
                fix="Pass --graph package.module:attribute naming the uncompiled graph (or a "
                "function returning it) that the thread ran; the CLI records it for next time.",
            )
        built = self.build(source, record.model, None if graph else record.source_path)
        app = self.compiled(built)
        if graph and graph != record.source:
            self.ledger().record_source(record.thread_id, graph, source_path=source_of(graph))
        return app

    def close(self) -> None:
        """Close what was opened."""
        if self._saver is not None:
            close = getattr(self._saver, "close", None)
            if callable(close):
                close()
            self._saver = None
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None
        if self._pg is not None:
            self._pg.close()
            self._pg = None


def load_graph(
    spec: str, path: str | None = None
) -> StateGraph[Any] | CompiledStateGraph[Any, Any, Any, Any]:
    """Import ``module:attr`` -- an uncompiled graph, or a function returning one.

    A compiled graph is taken too: LangChain's ``create_agent`` returns one, and its
    tool calls are governed by :class:`podium.middleware.Governed`; the CLI runs it on
    its own saver of the same file (:func:`podium.middleware.govern`).

    The module is looked up where it was found when the thread started (``path``),
    then in the current directory, then on ``sys.path`` -- as ``python -m`` does, so
    no ``PYTHONPATH`` is needed for a module in the folder you run from.
    """
    from langgraph.graph import StateGraph
    from langgraph.graph.state import CompiledStateGraph

    from podium._loading import import_object

    target = import_object(spec, path)
    if callable(target) and not isinstance(target, StateGraph | CompiledStateGraph):
        target = target()
    if isinstance(target, CompiledStateGraph):
        from podium.tools import GovernedGraph

        if isinstance(target.builder, GovernedGraph):
            raise ConfigurationError(
                f"--graph {spec!r} is a compiled podium graph.",
                fix="Expose the uncompiled graph (podium's create_*_graph result); the CLI "
                "compiles it with its own checkpointer on --db.",
            )
        return target
    if not isinstance(target, StateGraph):
        raise ConfigurationError(
            f"--graph {spec!r} is a {type(target).__name__}, not an uncompiled StateGraph.",
            fix="Expose the uncompiled graph (podium's create_*_graph result); the CLI "
            "compiles it with its own checkpointer on --db.",
        )
    return target
