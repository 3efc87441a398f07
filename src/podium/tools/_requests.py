"""What the router hands the governed executor: one tool call (a ``Send`` payload)."""

from __future__ import annotations

from typing import Any, Literal, NotRequired

from typing_extensions import TypedDict

__all__ = ["Problem", "ToolRequest"]

Problem = Literal["invalid", "duplicate_id"]


class ToolRequest(TypedDict):
    """One tool call handed to the executor (the payload of a ``Send``)."""

    name: str | None
    """The tool name the model asked for (``None`` if it could not be parsed)."""
    args: Any
    """The arguments the model supplied: a dict, or raw text for invalid calls."""
    id: str
    """The tool-call id the result must answer."""
    message: NotRequired[str | None]
    """The id of the ``AIMessage`` that asked for the call (part of its identity)."""
    problem: NotRequired[Problem]
    """Set by the router for calls that must not run."""
    detail: NotRequired[str]
    """Why, for ``problem`` calls."""
