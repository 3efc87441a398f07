"""Which graph a thread belongs to, so any later process can resume it.

``podium demo`` (or ``--graph module:attr``) records each thread it starts in the
table ``podium_threads`` of the same SQLite file; ``approve``, ``resume`` and the
other commands rebuild that graph in a new process and compile it on the file.
"""

from __future__ import annotations

import importlib
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

from podium.checkpoints import PodiumSqliteSaver, check_database_file, sqlite_saver
from podium.demos import DEMOS
from podium.errors import ConfigurationError, UnknownThreadError

__all__ = ["ThreadEntry", "Workspace"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS podium_threads (
    thread_id TEXT PRIMARY KEY,
    graph TEXT NOT NULL,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    created_at REAL NOT NULL
)
"""


@dataclass(frozen=True)
class ThreadEntry:
    """A thread started by the CLI."""

    thread_id: str
    graph: str
    model: str
    request: str
    created_at: float


class Workspace:
    """The CLI's home folder and its SQLite file (checkpoints, ledgers, threads)."""

    def __init__(self, home: Path, db: Path | None = None) -> None:
        self.home = home
        self.db = db or home / "podium.sqlite"
        self._saver: PodiumSqliteSaver | None = None

    def saver(self) -> PodiumSqliteSaver:
        if self._saver is None:
            self._saver = sqlite_saver(self.db)
            with self._connect() as conn:
                conn.execute(_SCHEMA)
        return self._saver

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.db, timeout=30)

    def close(self) -> None:
        if self._saver is not None:
            self._saver.close()
            self._saver = None

    # -- registry ---------------------------------------------------------------
    def register(self, thread_id: str, graph: str, model: str, request: str) -> None:
        self.saver()
        with self._connect() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO podium_threads VALUES (?, ?, ?, ?, ?)",
                (thread_id, graph, model, request, time.time()),
            )

    def entries(self) -> list[ThreadEntry]:
        if not self.db.exists():
            return []
        check_database_file(self.db)
        with self._connect() as conn:
            conn.execute(_SCHEMA)
            rows = conn.execute(
                "SELECT thread_id, graph, model, request, created_at FROM podium_threads "
                "ORDER BY created_at"
            ).fetchall()
        return [ThreadEntry(*row) for row in rows]

    def entry(self, thread_id: str) -> ThreadEntry:
        for item in self.entries():
            if item.thread_id == thread_id:
                return item
        known = ", ".join(e.thread_id for e in self.entries()[-5:]) or "none"
        raise UnknownThreadError(
            f"Thread {thread_id!r} is not in {self.db} (recent threads: {known}).",
            fix="Run `podium threads` to list them, or pass --home/--db for another workspace.",
        )

    # -- graphs -----------------------------------------------------------------
    def build(self, graph: str, model: str) -> StateGraph[Any, Any, Any, Any]:
        if graph.startswith("demo:"):
            name = graph.removeprefix("demo:")
            if name not in DEMOS:
                raise ConfigurationError(
                    f"Unknown demo {name!r}; demos: {', '.join(sorted(DEMOS))}."
                )
            return DEMOS[name].build(self.home, model)
        return load_graph(graph)

    def app(self, entry: ThreadEntry) -> Pregel[Any, Any, Any, Any]:
        built = self.build(entry.graph, entry.model)
        return built.compile(checkpointer=self.saver())


def load_graph(spec: str) -> StateGraph[Any, Any, Any, Any]:
    """Import ``module:attr`` -- an uncompiled graph, or a function returning one."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigurationError(
            f"--graph {spec!r} must look like 'package.module:attribute'.",
            fix="Point at an uncompiled StateGraph, or a function that returns one.",
        )
    try:
        target: Any = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"Cannot load --graph {spec!r}: {exc}.") from exc
    if callable(target) and not isinstance(target, StateGraph):
        target = target()
    if not isinstance(target, StateGraph):
        raise ConfigurationError(
            f"--graph {spec!r} is a {type(target).__name__}, not an uncompiled StateGraph.",
            fix="Expose the uncompiled graph (podium's create_*_graph result); the CLI "
            "compiles it with its own SQLite checkpointer.",
        )
    return target
