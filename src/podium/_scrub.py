"""Secret values known to this process, and scrubbing them out of text by value.

A :class:`podium.environments.Secret` registers its value here when it is read, so
everything podium stores or prints afterwards -- run events, the exactly-once
ledger's arguments, results and requests, tool results that become the model's
context (and so the checkpoints) -- has the value replaced by ``[redacted]``
wherever it appears, whatever key or sentence it sits in. Redaction by key name
(:func:`podium.observe.default_redactor`) cannot catch a password under a key like
``note``; redaction by value does.

This module sits below :mod:`podium.observe` and :mod:`podium.checkpoints` (both
use it) and imports nothing from podium.

Limits: only exact occurrences are caught. A value the process never read is
unknown here (a secret is registered on first read, and by ``Secret`` objects whose
source is readable when they are built); a transformed value (base64, reversed,
split across two writes) is not recognised.
"""

from __future__ import annotations

import contextlib
import re
import threading
from typing import Any, TypeVar

__all__ = [
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "add_secret",
    "has_secrets",
    "scrub",
    "scrub_error",
    "scrub_text",
]

REDACTED = "[redacted]"
"""What a redacted value is replaced with."""

MIN_SECRET_LENGTH = 4
"""Shorter values are not registered: replacing every ``ab`` in every text would
destroy the text and protect nothing (such a value is guessable anyway)."""

_E = TypeVar("_E", bound=BaseException)

_lock = threading.Lock()
_values: frozenset[str] = frozenset()
_pattern: re.Pattern[str] | None = None


def add_secret(value: str) -> None:
    """Register a secret value: from now on it is scrubbed from what podium stores.

    Values shorter than :data:`MIN_SECRET_LENGTH` are ignored (see there). The value
    is also registered with surrounding whitespace stripped (a file ending in a
    newline).
    """
    global _values, _pattern
    found = {v for v in (value, value.strip()) if len(v) >= MIN_SECRET_LENGTH}
    with _lock:
        if found <= _values:
            return
        _values = _values | found
        # longest first, so a value that contains another is replaced whole
        ordered = sorted(_values, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(v) for v in ordered))


def has_secrets() -> bool:
    """Whether any secret value is registered (everything is a no-op otherwise)."""
    return _pattern is not None


def scrub_text(text: str) -> str:
    """``text`` with every registered secret value replaced by :data:`REDACTED`."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(REDACTED, text)


def scrub(value: Any) -> Any:
    """A JSON-like value with registered secret values scrubbed from every string.

    Dict keys are scrubbed too. Values that are not strings, dicts, lists or tuples
    are returned as they are; with no secret registered, ``value`` itself is returned.
    """
    if _pattern is None:
        return value
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


def scrub_error(exc: _E) -> _E:
    """``exc`` with registered secret values scrubbed from its message, in place.

    For an error that leaves podium (a tool's ``ToolUnavailableError`` that stops
    the run, any error a run ends with): its ``args`` (what ``str(exc)`` shows) and
    a podium error's ``message`` and ``fix``. Chained causes are scrubbed too.
    Returns ``exc``.
    """
    if _pattern is None:
        return exc
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.args = tuple(scrub(a) if isinstance(a, str) else a for a in current.args)
        for name in ("message", "fix"):
            text = getattr(current, name, None)
            if isinstance(text, str):
                with contextlib.suppress(AttributeError):  # read-only: args are scrubbed
                    setattr(current, name, scrub_text(text))
        current = current.__cause__ or current.__context__
    return exc
