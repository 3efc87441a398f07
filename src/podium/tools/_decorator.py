"""The ``@podium.tools.tool`` decorator: langchain's ``@tool`` plus governance traits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, overload

from langchain_core.tools import BaseTool
from langchain_core.tools import tool as lc_tool

from podium.errors import ConfigurationError

__all__ = ["Risk", "ToolTraits", "tool", "traits_of"]

Risk = Literal["low", "medium", "high"]
"""How much harm a wrong call can do; policies match on it."""

_RISKS: tuple[Risk, ...] = ("low", "medium", "high")


@dataclass(frozen=True)
class ToolTraits:
    """What podium knows about a tool beyond its schema.

    Tools not declared with :func:`tool` get the conservative defaults below:
    medium risk, not idempotent, not read-only (so they go through the
    exactly-once ledger).
    """

    risk: Risk = "medium"
    """Risk tier, matched by :class:`~podium.Rule` ``risk=``."""
    idempotent: bool = False
    """Running it twice with the same idempotency key has the effect of running it once."""
    read_only: bool = False
    """It changes nothing; such calls skip the exactly-once ledger."""


def traits_of(t: BaseTool) -> ToolTraits:
    """Return the governance traits of a tool (defaults for plain langchain tools)."""
    found = (t.metadata or {}).get("podium")
    return found if isinstance(found, ToolTraits) else ToolTraits()


@overload
def tool(func: Callable[..., Any], /) -> BaseTool: ...


@overload
def tool(
    func: None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    risk: Risk = "low",
    idempotent: bool = False,
    read_only: bool = False,
) -> Callable[[Callable[..., Any]], BaseTool]: ...


def tool(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    risk: Risk = "low",
    idempotent: bool = False,
    read_only: bool = False,
) -> BaseTool | Callable[[Callable[..., Any]], BaseTool]:
    """Declare a tool with its governance traits.

    Works like langchain_core's ``@tool`` (the docstring is the description, the
    signature the schema) and records ``risk``, ``idempotent`` and ``read_only`` for
    the policy and the exactly-once ledger.

    Args:
        func: The function, when used as ``@tool`` without arguments.
        name: Tool name; defaults to the function name.
        description: Description; defaults to the docstring.
        risk: ``"low"``, ``"medium"`` or ``"high"``.
        idempotent: Safe to re-run with the same idempotency key after a crash.
        read_only: Changes nothing; skips the exactly-once ledger.

    Returns:
        A langchain ``BaseTool`` (or a decorator producing one).

    Example:
        >>> from podium.tools import tool, traits_of
        >>> @tool(risk="high")
        ... def issue_refund(order_id: str, amount: float) -> str:
        ...     '''Refund an order.'''
        ...     return "ok"
        >>> traits_of(issue_refund).risk
        'high'
    """
    if risk not in _RISKS:
        raise ConfigurationError(
            f"risk={risk!r} is not one of {', '.join(_RISKS)}.",
            fix="Declare risk='low', 'medium' or 'high'.",
        )
    traits = ToolTraits(risk=risk, idempotent=idempotent, read_only=read_only)

    def wrap(f: Callable[..., Any]) -> BaseTool:
        if description is None and not f.__doc__:
            raise ConfigurationError(
                f"Tool {getattr(f, '__name__', f)!r} has no docstring or description; the model "
                "needs one to know when to call it.",
                fix="Add a docstring or pass description='...'.",
            )
        built = (
            lc_tool(name, description=description)(f)
            if name
            else lc_tool(description=description)(f)
            if description
            else lc_tool(f)
        )
        built.metadata = {**(built.metadata or {}), "podium": traits}
        return built

    return wrap(func) if func is not None else wrap
