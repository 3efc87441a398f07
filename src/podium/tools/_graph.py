"""``GovernedGraph``: a ``StateGraph`` whose ``compile`` binds the tool ledger.

Every podium factory returns a ``GovernedGraph``: an ordinary, uncompiled LangGraph
``StateGraph`` (add nodes, draw it, compile it as usual). Its ``compile`` places the
exactly-once ledger beside the checkpointer and carries it in the compiled graph's
config, where the governed executor finds it:

1. ``PODIUM_LEDGER`` (environment) wins -- for LangGraph Server, which owns the
   checkpointer: a file path (``/data/ledger.sqlite``) or a PostgreSQL URL
   (``postgresql://...``, normally the server's own database);
2. a podium saver (``sqlite_saver``, ``postgres_saver`` and their async variants)
   carries its ledger, in the same file or database;
3. LangGraph's own ``SqliteSaver`` on a file or ``PostgresSaver`` → the ledger
   tables live in that same file or database;
4. anything else (in-memory saver, no checkpointer) → an in-memory ledger shared by
   every graph compiled with that same checkpointer object.

A podium graph used as a subgraph inherits the parent's ledger: the parent's
runtime config overrides the child's default.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.typing import ContextT, InputT, OutputT, StateT

from podium.checkpoints._events import EventStore, SQLiteEventStore
from podium.checkpoints._ledger import MemoryLedger, SQLiteLedger, ToolLedger
from podium.checkpoints._pg import PostgresEventStore, PostgresLedger, is_postgres_url
from podium.observe._events import RunLedgerHandler
from podium.tools._app import DESCRIPTION_KEY, EFFECTS_KEY, GovernedApp
from podium.tools._decisions import LEDGER_KEY

__all__ = [
    "DESCRIPTION_KEY",
    "NAMES_KEY",
    "GovernedGraph",
    "event_store_for",
    "governed_app",
    "ledger_for",
    "run_ledger_for",
]

NAMES_KEY = "__podium_names"
"""The ``configurable`` key listing a compiled podium graph's tools and agents."""

_LOCK = threading.Lock()
_BY_SAVER: weakref.WeakKeyDictionary[object, ToolLedger] = weakref.WeakKeyDictionary()
_BY_LOCATION: dict[str, ToolLedger] = {}


def _sqlite_file(saver: SqliteSaver) -> str | None:
    with saver.lock:
        rows = saver.conn.execute("PRAGMA database_list").fetchall()
    for _, name, file in rows:
        if name == "main" and file:
            return str(file)
    return None


def _ledger_at(location: str) -> ToolLedger:
    is_url = is_postgres_url(location)
    key = location if is_url else os.path.realpath(os.path.expanduser(location))
    if not is_url:
        os.makedirs(os.path.dirname(key), exist_ok=True)  # PODIUM_LEDGER=~/data/l.sqlite
    with _LOCK:
        if key not in _BY_LOCATION:
            _BY_LOCATION[key] = PostgresLedger(key) if is_url else SQLiteLedger(key)
        return _BY_LOCATION[key]


def ledger_for(checkpointer: object) -> ToolLedger:
    """The ledger a graph compiled with ``checkpointer`` uses (see the module docs)."""
    configured = os.environ.get("PODIUM_LEDGER")
    if configured:
        return _ledger_at(configured)
    found = getattr(checkpointer, "podium_ledger", None)
    if isinstance(found, ToolLedger):
        return found
    if isinstance(checkpointer, SqliteSaver):
        path = _sqlite_file(checkpointer)
        if path:
            return _ledger_at(path)
    if checkpointer is None or not isinstance(checkpointer, BaseCheckpointSaver):
        return SQLiteLedger()
    with _LOCK:
        if checkpointer not in _BY_SAVER:
            _BY_SAVER[checkpointer] = (
                PostgresLedger(checkpointer.conn)
                if isinstance(checkpointer, PostgresSaver)
                else SQLiteLedger()
            )
        return _BY_SAVER[checkpointer]


class GovernedGraph(StateGraph[StateT, ContextT, InputT, OutputT]):
    """A ``StateGraph`` whose :meth:`compile` binds podium's tool ledger.

    Factories set :attr:`podium_name` and :attr:`podium_description` so the graph
    can stand where an :class:`~podium.Agent` stands (a manager's specialist, a
    handoff peer, a branch, a stage).
    """

    podium_name: str | None = None
    """The name the graph has as a member of another pattern (and its default
    compiled name)."""
    podium_description: str = ""
    """What the graph does, for managers and handoff peers choosing it."""
    podium_configurable: dict[str, Any] | None = None
    """Entries a factory adds to the compiled graph's ``configurable`` (a run budget)."""
    podium_effects: bool = True
    """Whether a run can have a side effect (a tool that is not read-only, an action
    stage): such graphs run with ``durability="sync"`` unless the caller asks for less."""
    podium_tools: frozenset[str] | None = None
    """Every tool name at any depth (``None``: unknown, a member is not a podium graph)."""
    podium_agents: frozenset[str] | None = None
    """Every Agent name at any depth (``None``: unknown)."""

    def compile(self, checkpointer: Any = None, **kwargs: Any) -> GovernedApp:
        """Compile as ``StateGraph.compile`` does, then bind the ledger (module docs).

        Returns a :class:`~podium.tools.GovernedApp`: LangGraph's compiled graph with
        podium's defaults for top-level runs (durable by default, input that cannot
        steer routing, pending requests never dropped).
        """
        if kwargs.get("name") is None and self.podium_name:
            kwargs["name"] = self.podium_name
        compiled = super().compile(checkpointer, **kwargs)
        conf: dict[str, Any] = dict(self.podium_configurable or {})
        if self.podium_description:
            conf[DESCRIPTION_KEY] = self.podium_description
        conf[EFFECTS_KEY] = self.podium_effects
        if self.podium_tools is not None and self.podium_agents is not None:
            conf[NAMES_KEY] = {
                "tools": sorted(self.podium_tools),
                "agents": sorted(self.podium_agents),
            }
        return governed_app(compiled, checkpointer, conf)


def governed_app(
    compiled: CompiledStateGraph[Any, Any, Any, Any],
    checkpointer: Any,
    configurable: dict[str, Any],
) -> GovernedApp:
    """``compiled`` as a :class:`GovernedApp` bound to ``checkpointer``'s ledgers.

    The one place a compiled graph gets podium's run-time bindings: the tool ledger
    (module docs), the run ledger's callback handler, and ``configurable`` (podium's
    ``__`` entries). A run-ledger handler ``compiled`` already carries (it was bound
    before, to another checkpointer) is replaced, so events are recorded once.
    """
    fields = {k: v for k, v in compiled.__dict__.items() if k != "__orig_class__"}
    given = dict(fields.get("config") or {})
    callbacks = given.get("callbacks")
    if isinstance(callbacks, list):
        given["callbacks"] = [c for c in callbacks if not isinstance(c, RunLedgerHandler)]
    fields["config"] = given
    app = GovernedApp(**fields)
    # Podium's entries ride in ``configurable`` under ``__`` keys: LangGraph copies
    # ``metadata`` and plain ``configurable`` entries into every checkpoint's
    # metadata, but not ``__`` ones.
    config: dict[str, Any] = {"configurable": dict(configurable)}
    conf = config["configurable"]
    # a subgraph uses its parent's ledger: the parent's run-time config wins
    if checkpointer is None and not os.environ.get("PODIUM_LEDGER"):
        conf[LEDGER_KEY] = MemoryLedger()  # private, created on first use
    elif checkpointer is not True:
        conf[LEDGER_KEY] = ledger_for(checkpointer)
    handler = run_ledger_for(checkpointer)
    if handler is not None:
        config["callbacks"] = [handler]
    return app.with_config(config)  # type: ignore[arg-type]


_STORES: dict[str, EventStore] = {}
_HANDLERS: dict[int, RunLedgerHandler] = {}
_MEMORY_STORES: weakref.WeakKeyDictionary[object, EventStore] = weakref.WeakKeyDictionary()
_PG_STORES: weakref.WeakKeyDictionary[PostgresLedger, EventStore] = weakref.WeakKeyDictionary()


def _postgres_ledger(checkpointer: object, configured: str, shared: str) -> PostgresLedger | None:
    """The PostgreSQL ledger whose database keeps the run events, if they go to one."""
    named = configured or shared  # PODIUM_RUN_LEDGER wins over PODIUM_LEDGER
    if named:
        found = _ledger_at(named) if is_postgres_url(named) else None  # else a SQLite file
        return found if isinstance(found, PostgresLedger) else None
    url = getattr(checkpointer, "url", None)
    if isinstance(getattr(checkpointer, "podium_ledger", None), PostgresLedger) and url:
        # the events' own pool, by URL: they are still written after the saver closes
        found = _ledger_at(str(url))
        return found if isinstance(found, PostgresLedger) else None
    if isinstance(checkpointer, PostgresSaver):
        found = ledger_for(checkpointer)
        return found if isinstance(found, PostgresLedger) else None
    return None


def event_store_for(checkpointer: object) -> EventStore | None:
    """Where the run events of graphs compiled with ``checkpointer`` are stored.

    ``PODIUM_RUN_LEDGER=off`` disables the run ledger; ``PODIUM_RUN_LEDGER=/path``
    (or ``=postgresql://...``) puts it in that SQLite file (or database). Otherwise
    the events go where the tool ledger and thread registry are: the SQLite file or
    PostgreSQL database ``PODIUM_LEDGER`` names (so runs served by LangGraph Server,
    which owns the checkpointer, are traced beside their approvals), else a SQLite
    checkpointer's own file, else a PostgreSQL checkpointer's own database (table
    ``podium_events``, created with the ledger's tables; a podium saver's events use
    a small pool of their own on its URL, so events queued when the saver closes are
    still written). Any other checkpointer gets an in-memory store. Graphs compiled
    without a checkpointer (subgraphs) record nothing themselves unless
    ``PODIUM_LEDGER`` names a file or database: their parent's run ledger sees their
    model and tool calls (the same handler, counted once).
    """
    configured = os.environ.get("PODIUM_RUN_LEDGER", "")
    if configured.lower() in ("off", "0", "false", "no"):
        return None
    shared = os.environ.get("PODIUM_LEDGER", "")
    durable = isinstance(checkpointer, BaseCheckpointSaver)
    if not durable and not configured and not shared:
        return None
    ledger = _postgres_ledger(checkpointer, configured, shared)
    if ledger is not None:
        with _LOCK:
            if ledger not in _PG_STORES:
                _PG_STORES[ledger] = PostgresEventStore(ledger)
            return _PG_STORES[ledger]
    path = (
        configured
        or shared
        or (_sqlite_file(checkpointer) if isinstance(checkpointer, SqliteSaver) else None)
    )
    with _LOCK:
        if path:
            real = os.path.realpath(os.path.expanduser(path))
            if real not in _STORES:
                _STORES[real] = SQLiteEventStore(real)
            return _STORES[real]
        if checkpointer not in _MEMORY_STORES:
            _MEMORY_STORES[checkpointer] = SQLiteEventStore()
        return _MEMORY_STORES[checkpointer]


def run_ledger_for(checkpointer: object) -> RunLedgerHandler | None:
    """The callback handler that records runs of graphs compiled with ``checkpointer``."""
    store = event_store_for(checkpointer)
    if store is None:
        return None
    with _LOCK:
        handler = _HANDLERS.get(id(store))
        if handler is None:
            handler = RunLedgerHandler(store.write_events)
            _HANDLERS[id(store)] = handler
        return handler
