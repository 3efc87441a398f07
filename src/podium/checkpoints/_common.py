"""Pieces every podium saver shares: the strict serializer and the async opener.

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
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Iterable
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

__all__ = ["AsyncOpener", "AsyncSaver", "podium_serde"]


def podium_serde(allowed_types: Iterable[type | tuple[str, str]] = ()) -> JsonPlusSerializer:
    """The strict serializer podium's savers use (see the module docs).

    Args:
        allowed_types: Classes (or ``(module, name)`` pairs) to rebuild beyond
            LangGraph's safe list.

    Returns:
        A ``JsonPlusSerializer`` with an explicit msgpack allow-list.
    """
    extra = tuple(allowed_types)
    return JsonPlusSerializer(allowed_msgpack_modules=extra or None)


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
