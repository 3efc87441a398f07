"""``GovernedGraph``: a ``StateGraph`` whose ``compile`` binds the tool ledger.

Every podium factory returns a ``GovernedGraph``: an ordinary, uncompiled LangGraph
``StateGraph`` (add nodes, draw it, compile it as usual). Its ``compile`` places the
exactly-once ledger beside the checkpointer and carries it in the compiled graph's
config, where the governed executor finds it:

1. ``PODIUM_LEDGER=/path/ledger.sqlite`` (environment) wins -- for LangGraph Server,
   which owns the checkpointer;
2. a SQLite checkpointer on a file → the ledger tables live in that same file;
3. anything else (in-memory saver, no checkpointer) → an in-memory ledger shared by
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
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.typing import ContextT, InputT, OutputT, StateT

from podium.checkpoints._ledger import ToolLedger
from podium.tools._executor import LEDGER_KEY

__all__ = ["GovernedGraph", "ledger_for"]

_LOCK = threading.Lock()
_BY_SAVER: weakref.WeakKeyDictionary[object, ToolLedger] = weakref.WeakKeyDictionary()
_BY_PATH: dict[str, ToolLedger] = {}


def _sqlite_file(saver: SqliteSaver) -> str | None:
    with saver.lock:
        rows = saver.conn.execute("PRAGMA database_list").fetchall()
    for _, name, file in rows:
        if name == "main" and file:
            return str(file)
    return None


def _ledger_at(path: str) -> ToolLedger:
    real = os.path.realpath(path)
    with _LOCK:
        if real not in _BY_PATH:
            _BY_PATH[real] = ToolLedger(real)
        return _BY_PATH[real]


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
        return ToolLedger()
    with _LOCK:
        if checkpointer not in _BY_SAVER:
            _BY_SAVER[checkpointer] = ToolLedger()
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

    def compile(
        self, checkpointer: Any = None, **kwargs: Any
    ) -> CompiledStateGraph[StateT, ContextT, InputT, OutputT]:
        """Compile as ``StateGraph.compile`` does, then bind the ledger (module docs)."""
        if kwargs.get("name") is None and self.podium_name:
            kwargs["name"] = self.podium_name
        compiled = super().compile(checkpointer, **kwargs)
        config: dict[str, Any] = {"metadata": {"podium_description": self.podium_description}}
        if checkpointer is not True:  # True: a subgraph sharing its parent's ledger
            config["configurable"] = {LEDGER_KEY: ledger_for(checkpointer)}
        return compiled.with_config(config)  # type: ignore[arg-type]
