"""Pieces every podium saver shares: the strict serializer, the async opener, prune checks.

**Strict deserialisation.** LangGraph's ``JsonPlusSerializer`` rebuilds objects
from checkpoint bytes by importing the module and calling the class a record
names. By default (``LANGGRAPH_STRICT_MSGPACK`` unset) it will import *any*
module, so whoever can write to the database can make a reader run code. podium's
savers pass ``allowed_msgpack_modules`` themselves, so they are strict whether or
not the variable is set: only LangGraph's own safe list (datetimes, UUIDs,
messages, ``Send``, ``Interrupt``, ``Command``, ...) plus the types you name in
``allowed_types`` are rebuilt. podium's own state needs nothing more: messages
are on the safe list, and everything else podium stores (approval requests,
decisions, tool requests, branch results, stage outputs) is plain JSON data.

A value of a type that is not allowed comes back as its plain data (a dict)
and LangGraph logs ``Blocked deserialization of ...``. With
``LANGGRAPH_STRICT_MSGPACK=true`` LangGraph also adds the types named in each
compiled graph's state schema to the list, so custom pydantic models in your
own state keep working; without it, name them in ``allowed_types``.

**Fast message loading.** Loading a long history is dominated by rebuilding
messages: LangGraph's hook imports the module and re-validates every message
(~15 µs each). A stored message is the ``model_dump()`` of a validated message, so
when its record names one of LangChain's message classes and carries exactly that
class's fields, podium's serializer rebuilds it from a cached class without
re-validating, as ``model_construct`` would (~2 µs); anything else -- other types,
records from another langchain-core version with different fields -- takes
LangGraph's path unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Generator, Iterable, Sequence
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

import ormsgpack
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)
from langgraph.checkpoint.serde.jsonplus import (
    EXT_DELTA_SNAPSHOT,
    EXT_PYDANTIC_V2,
    JsonPlusSerializer,
)
from langgraph.checkpoint.serde.types import _DeltaSnapshot

from podium.errors import ConfigurationError

__all__ = [
    "PRUNE_STRATEGIES",
    "AsyncOpener",
    "AsyncSaver",
    "ClosesAsync",
    "PodiumSerializer",
    "podium_serde",
    "prune_arguments",
]

_SAMPLES: tuple[BaseMessage, ...] = (
    AIMessage("a", id="a"),
    HumanMessage("h", id="h"),
    SystemMessage("s", id="s"),
    ToolMessage("t", tool_call_id="c", id="t"),
    ChatMessage(content="c", role="r", id="c"),
    FunctionMessage(content="f", name="f", id="f"),
    RemoveMessage(id="r"),
)


def _set_fields(cls: type[BaseMessage], fields: dict[str, Any]) -> BaseMessage:
    # What ``model_construct`` does when every field is given and there are no
    # extras or private attributes, without its per-field Python loop (~1 µs, not ~5).
    message = cls.__new__(cls)
    _set = object.__setattr__
    _set(message, "__dict__", fields)
    _set(message, "__pydantic_fields_set__", set(fields))
    _set(message, "__pydantic_extra__", {})
    _set(message, "__pydantic_private__", None)
    return message


def _builder(sample: BaseMessage) -> Callable[[dict[str, Any]], BaseMessage]:
    """The fastest way to rebuild ``sample``'s class that gives what pydantic gives."""
    cls = type(sample)
    dumped = sample.model_dump()
    a, b = cls.model_construct(**dumped), _set_fields(cls, dict(dumped))
    same = (
        a.__dict__ == b.__dict__
        and a.__pydantic_fields_set__ == b.__pydantic_fields_set__
        and a.__pydantic_extra__ == b.__pydantic_extra__
        and a.__pydantic_private__ == b.__pydantic_private__
    )
    if same:
        return functools.partial(_set_fields, cls)
    return lambda fields: cls.model_construct(**fields)  # a pydantic that builds differently


_MESSAGE_CLASSES: dict[tuple[str, str], tuple[Callable[[dict[str, Any]], Any], frozenset[str]]] = {
    (type(m).__module__, type(m).__name__): (_builder(m), frozenset(type(m).model_fields))
    for m in _SAMPLES
}
_OPTIONS = ormsgpack.OPT_NON_STR_KEYS

ExtHook = Callable[[int, bytes], Any]


class PodiumSerializer(JsonPlusSerializer):
    """LangGraph's serializer, loading stored messages faster (see the module docs).

    Writes are byte-for-byte LangGraph's; only msgpack loading differs, and only
    for LangChain messages stored with exactly their class's fields.
    """

    _podium_hook: tuple[ExtHook, ExtHook] | None = None

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        """Load a stored value (see :meth:`JsonPlusSerializer.loads_typed`)."""
        type_, raw = data
        if type_ != "msgpack":
            return super().loads_typed(data)
        return ormsgpack.unpackb(raw, ext_hook=self._message_hook(), option=_OPTIONS)

    def _message_hook(self) -> ExtHook:
        # Wraps whichever hook LangGraph built for this serializer's allow-list
        # (``with_msgpack_allowlist`` clones rebuild it, hence the identity check).
        stock = self._unpack_ext_hook
        if self._podium_hook is not None and self._podium_hook[0] is stock:
            return self._podium_hook[1]

        def hook(code: int, data: bytes) -> Any:
            if code == EXT_PYDANTIC_V2:
                record = ormsgpack.unpackb(data, ext_hook=hook, option=_OPTIONS)
                fast = _MESSAGE_CLASSES.get((record[0], record[1]))
                fields = record[2]
                if fast is not None and isinstance(fields, dict) and fields.keys() == fast[1]:
                    return fast[0](fields)
            elif code == EXT_DELTA_SNAPSHOT:  # a snapshot of the history: its messages too
                return _DeltaSnapshot(ormsgpack.unpackb(data, ext_hook=hook, option=_OPTIONS))
            return stock(code, data)

        self._podium_hook = (stock, hook)
        return hook


def podium_serde(allowed_types: Iterable[type | tuple[str, str]] = ()) -> PodiumSerializer:
    """The strict serializer podium's savers use (see the module docs).

    Args:
        allowed_types: Classes (or ``(module, name)`` pairs) to rebuild beyond
            LangGraph's safe list.

    Returns:
        A :class:`PodiumSerializer` (a ``JsonPlusSerializer``) with an explicit
        msgpack allow-list.
    """
    extra = tuple(allowed_types)
    return PodiumSerializer(allowed_msgpack_modules=extra or None)


class AsyncSaver(Protocol):
    """What :class:`AsyncOpener` needs of the saver it opens."""

    async def aclose(self) -> None:
        """Release the saver's connections."""


S = TypeVar("S", bound=AsyncSaver)


class AsyncOpener(Generic[S]):
    """Opens an async saver: ``await`` it, or use it with ``async with``.

    ``saver = await async_sqlite_saver(path)`` gives the saver (call
    ``await saver.aclose()`` when done); ``async with async_sqlite_saver(path) as
    saver:`` closes it on exit.
    """

    def __init__(self, open_: Callable[[], Awaitable[S]]) -> None:
        self._open = open_
        self._saver: S | None = None

    def __await__(self) -> Generator[Any, None, S]:
        return self._open().__await__()

    async def __aenter__(self) -> S:
        self._saver = await self._open()
        return self._saver

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._saver is not None:
            await self._saver.aclose()
            self._saver = None


class ClosesPool:
    """Mixin for podium's Postgres saver and store: they own their connection pool.

    ``close()`` closes it; the object is also a context manager that closes it.
    """

    def close(self) -> None:
        """Close the connection pool (a connection passed in by the caller is left open)."""
        from psycopg_pool import ConnectionPool  # the postgres extra is imported on use

        pool = getattr(self, "conn", None)
        if isinstance(pool, ConnectionPool):
            pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ClosesAsync:
    """Mixin for podium's async savers: ``async with saver:`` closes it (``aclose``)."""

    async def aclose(self) -> None:
        """Release the saver's connections."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


PRUNE_STRATEGIES = ("keep_latest", "delete")
"""The strategies of LangGraph's ``BaseCheckpointSaver.prune`` / ``aprune``."""


def prune_arguments(thread_ids: Sequence[str], strategy: str) -> list[str]:
    """Check ``prune`` / ``aprune`` arguments; return the thread ids as strings.

    Raises:
        ConfigurationError: If ``thread_ids`` is a single string or ``strategy``
            is not one of :data:`PRUNE_STRATEGIES`.
    """
    if isinstance(thread_ids, str | bytes):
        raise ConfigurationError(
            f"prune(thread_ids={thread_ids!r}) takes a sequence of thread ids, not one string "
            "(it would be read as one id per character).",
            fix=f"Pass a list: prune([{thread_ids!r}], strategy=...).",
        )
    if strategy not in PRUNE_STRATEGIES:
        raise ConfigurationError(
            f"prune(strategy={strategy!r}) is not a prune strategy; podium's savers know "
            f"{' and '.join(repr(s) for s in PRUNE_STRATEGIES)}.",
            fix='Use strategy="keep_latest" to keep only what loading the latest checkpoint '
            'needs, or strategy="delete" to remove the threads with their ledger rows.',
        )
    return [str(t) for t in thread_ids]
