"""``memory_tools``: long-term memory that agents read and write through tools.

The tools use LangGraph's Store of the running graph (``langgraph.config.get_store()``,
set with ``.compile(store=...)``, e.g. :func:`podium.checkpoints.sqlite_store`), in a
namespace templated from the run's ``config["configurable"]``: with
``namespace=("users", "{user_id}")`` a run with ``{"user_id": "u-42"}`` reads and
writes ``("users", "u-42")`` only, so one user's memories never reach another's run.

``remember`` goes through the exactly-once ledger like any side effect (it is
idempotent: writing the same key again has the same effect); ``recall`` is
read-only. ``recall`` ranks by the store's semantic index when it has one, and
otherwise by how many of the query's words the memory contains.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

from langchain_core.tools import BaseTool
from langgraph.config import get_config, get_store
from langgraph.store.base import BaseStore, Item

from podium.errors import ConfigurationError
from podium.tools._decorator import tool

__all__ = ["memory_tools"]

_WORD = re.compile(r"\w+")


def _fields(namespace: Sequence[str]) -> list[str]:
    fields = []
    for part in namespace:
        try:
            parsed = list(string.Formatter().parse(part))
        except ValueError as exc:
            raise ConfigurationError(
                f"Memory namespace part {part!r} is not a valid template: {exc}.",
                fix='Use plain strings and {name} placeholders, e.g. ("users", "{user_id}").',
            ) from exc
        for _, name, spec, conversion in parsed:
            if name is None:
                continue
            if not name.isidentifier() or spec or conversion:
                raise ConfigurationError(
                    f"Memory namespace part {part!r} has placeholder {{{name}}}; only plain "
                    "{name} placeholders are allowed.",
                    fix='Use e.g. ("users", "{user_id}") and pass user_id in '
                    'config["configurable"].',
                )
            fields.append(name)
    return fields


def _resolve(namespace: Sequence[str]) -> tuple[str, ...]:
    configurable = get_config().get("configurable") or {}
    missing = [f for f in _fields(namespace) if configurable.get(f) in (None, "")]
    if missing:
        raise ConfigurationError(
            f"The memory namespace {tuple(namespace)!r} needs {', '.join(missing)} in "
            'config["configurable"], and this run has none.',
            fix=f'Invoke with config={{"configurable": {{"{missing[0]}": ..., ...}}}}.',
        )
    values = {k: str(v) for k, v in configurable.items()}
    return tuple(part.format(**values) for part in namespace)


def _store() -> BaseStore:
    store = get_store()
    if store is None:
        raise ConfigurationError(
            "The memory tools need a store, and this graph was compiled without one.",
            fix="Compile with .compile(checkpointer=..., store=sqlite_store(path)).",
        )
    return store


def _score(item: Item, words: set[str]) -> int:
    text = f"{item.key} {item.value.get('value', '')}".lower()
    return len(words & set(_WORD.findall(text)))


def memory_tools(
    namespace: Sequence[str] = ("memories", "{user_id}"), *, limit: int = 5
) -> list[BaseTool]:
    """Build ``remember`` and ``recall`` tools over the graph's Store.

    Args:
        namespace: The store namespace, each part a string with optional
            ``{name}`` placeholders filled from ``config["configurable"]``.
        limit: The most memories ``recall`` returns.

    Returns:
        ``[remember, recall]``; grant them to an agent like any tool.

    Raises:
        ConfigurationError: If ``namespace`` is empty or a part is not a valid template.

    Example:
        >>> from podium.tools import memory_tools
        >>> [t.name for t in memory_tools(("users", "{user_id}"))]
        ['remember', 'recall']
    """
    parts = tuple(namespace)
    if not parts or not all(isinstance(p, str) and p for p in parts):
        raise ConfigurationError(
            f"Memory namespace {namespace!r} must be a non-empty sequence of non-empty strings.",
            fix='Pass e.g. namespace=("users", "{user_id}").',
        )
    _fields(parts)

    @tool(risk="low", idempotent=True)
    def remember(key: str, value: str) -> str:
        """Store a fact for later conversations under a short key (overwrites that key)."""
        _store().put(_resolve(parts), key, {"value": value})
        return f"Remembered {key!r}."

    @tool(read_only=True)
    def recall(query: str) -> str:
        """Look up stored facts relevant to the query; returns one 'key: value' per line."""
        store, where = _store(), _resolve(parts)
        if getattr(store, "index_config", None):
            items: Sequence[Item] = store.search(where, query=query, limit=limit)
        else:
            words = set(_WORD.findall(query.lower()))
            found = store.search(where, limit=1000)
            ranked = sorted(found, key=lambda i: (-_score(i, words), i.key))
            items = [i for i in ranked if _score(i, words) > 0 or not words][:limit]
        if not items:
            return "No matching memories."
        return "\n".join(f"{i.key}: {i.value.get('value', i.value)}" for i in items)

    return [remember, recall]
