"""``memory_tools``: long-term memory that agents read and write through tools.

The tools use LangGraph's Store of the running graph (``langgraph.config.get_store()``,
set with ``.compile(store=...)``, e.g. :func:`podium.checkpoints.sqlite_store`), in a
namespace templated from the run's ``config["configurable"]``: with
``namespace=("users", "{user_id}")`` a run with ``{"user_id": "u-42"}`` reads and
writes ``("users", "u-42")`` only, so one user's memories never reach another's run.

**Any value works.** LangGraph's Store refuses namespace labels that contain a
period or a NUL character (it joins labels with ``.``). So each value filled into
a placeholder is percent-encoded -- ``%`` becomes ``%25``, ``.`` becomes ``%2E``
and NUL becomes ``%00`` -- before it becomes part of a label:
``{"user_id": "alan@example.com"}`` is stored under
``("users", "alan@example%2Ecom")``, and ``urllib.parse.unquote`` gives the value
back. Because ``%`` itself is encoded, two different values never share a
namespace (``a.b`` is ``a%2Eb``, the literal value ``a%2Eb`` is ``a%252Eb``).
Values without ``%``, ``.`` or NUL are stored exactly as before this encoding
existed; a value that contains ``%`` was stored unencoded before, so its old
memories must be moved (``store.search`` the old namespace, ``put`` into the new
one). In the one other label the Store refuses -- a first label equal to
``langgraph`` -- the values are percent-encoded whole (``%6C%61...``).

An empty value (or ``None``, or none at all) is refused with an error the agent
sees, rather than pooling every run without an id into one namespace. The fixed
text of the template is not encoded; a period or NUL in it, or a first part
``langgraph``, is refused when the tools are built. Put one placeholder in each
part: two in one part (``"{org}-{user}"``) are joined by your text, so values that
contain that text can meet in one namespace.

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


_ENCODE = str.maketrans({"%": "%25", ".": "%2E", "\x00": "%00"})
_RESERVED_ROOT = "langgraph"  # the Store refuses it as a namespace's first label


def _encode_value(value: str) -> str:
    """Percent-encode what the Store refuses in a label: ``%``, ``.`` and NUL.

    Reversible with ``urllib.parse.unquote``; a value without those characters
    is returned unchanged.
    """
    return value.translate(_ENCODE)


def _encode_whole(value: str) -> str:
    return "".join(f"%{byte:02X}" for byte in value.encode())


def _fields(namespace: Sequence[str]) -> list[str]:
    fields = []
    for index, part in enumerate(namespace):
        try:
            parsed = list(string.Formatter().parse(part))
        except ValueError as exc:
            raise ConfigurationError(
                f"Memory namespace part {part!r} is not a valid template: {exc}.",
                fix='Use plain strings and {name} placeholders, e.g. ("users", "{user_id}").',
            ) from exc
        for literal, name, spec, conversion in parsed:
            if "." in literal or "\x00" in literal:
                raise ConfigurationError(
                    f"Memory namespace part {part!r} contains a period or a NUL character; "
                    "LangGraph's Store refuses them in namespace labels.",
                    fix='Use another separator in the fixed text, e.g. ("users", "{user_id}") '
                    "or a separate part per level.",
                )
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
        if index == 0 and part == _RESERVED_ROOT:
            raise ConfigurationError(
                f"Memory namespace {tuple(namespace)!r} starts with {_RESERVED_ROOT!r}, which "
                "LangGraph's Store reserves.",
                fix='Start the namespace with your own label, e.g. ("memories", "{user_id}").',
            )
    return fields


def _resolve(namespace: Sequence[str]) -> tuple[str, ...]:
    configurable = get_config().get("configurable") or {}
    fields = _fields(namespace)
    missing = [f for f in fields if configurable.get(f) is None]
    if missing:
        raise ConfigurationError(
            f"The memory namespace {tuple(namespace)!r} needs {', '.join(missing)} in "
            'config["configurable"], and this run has none.',
            fix=f'Invoke with config={{"configurable": {{"{missing[0]}": ..., ...}}}}.',
        )
    raw = {f: str(configurable[f]) for f in fields}
    empty = [f for f in fields if not raw[f]]
    if empty:
        raise ConfigurationError(
            f"The memory namespace {tuple(namespace)!r} needs {', '.join(empty)} in "
            'config["configurable"], and this run passes an empty string.',
            fix=f"Pass a non-empty {empty[0]} that identifies whose memories these are.",
        )
    values = {f: _encode_value(v) for f, v in raw.items()}
    labels = [part.format(**values) for part in namespace]
    if labels[0] == _RESERVED_ROOT:  # only a filled-in value can make it (see _fields)
        labels[0] = namespace[0].format(**{f: _encode_whole(v) for f, v in raw.items()})
    return tuple(labels)


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
            ``{name}`` placeholders filled from ``config["configurable"]``. Any
            non-empty value works: ``%``, ``.`` and NUL in a value are
            percent-encoded (``alan@example.com`` -> ``alan@example%2Ecom``), so
            values never collide and values without them are stored as they are
            (see the module docs).
        limit: The most memories ``recall`` returns.

    Returns:
        ``[remember, recall]``; grant them to an agent like any tool. A run whose
        ``config["configurable"]`` lacks a placeholder's value, or passes an empty
        one, gets an error tool message and stores nothing.

    Raises:
        ConfigurationError: If ``namespace`` is empty, a part is not a valid
            template, its fixed text contains a period or NUL, or it starts with
            ``"langgraph"`` (reserved by LangGraph's Store).

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
