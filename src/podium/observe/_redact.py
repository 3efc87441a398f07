"""Redaction: arguments and outputs pass a hook before the run ledger stores them.

Two kinds: by key (:func:`default_redactor`: values under secret-looking keys, the
hook :func:`set_redactor` can replace) and by value (the values of the secrets this
process read, see :mod:`podium._scrub`), which :func:`redact` always applies after
the hook, whatever hook is installed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from podium._scrub import REDACTED, scrub

__all__ = ["REDACTED", "Redactor", "default_redactor", "redact", "set_redactor"]

Redactor = Callable[[Any], Any]
"""Takes a JSON-like value and returns what may be stored."""

_SECRET_KEY = re.compile(
    r"pass(word|wd)?|secret|token|api[_-]?key|auth(orization)?|cookie|credential|private[_-]?key",
    re.IGNORECASE,
)


def default_redactor(value: Any) -> Any:
    """Replace values stored under secret-looking keys, at any depth.

    Keys matching password, passwd, secret, token, api_key, authorization, cookie,
    credential or private_key (any case, any position in the key) are redacted.
    """
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and _SECRET_KEY.search(k) else default_redactor(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [default_redactor(v) for v in value]
    return value


_current: Redactor = default_redactor


def set_redactor(redactor: Redactor | None) -> None:
    """Install a redaction hook for this process (``None`` restores the default).

    The hook receives each event's data (arguments, tasks, reasons) before it is
    stored in the run ledger or exported.
    """
    global _current
    _current = redactor or default_redactor


def redact(value: Any) -> Any:
    """Apply the installed redaction hook, then scrub secret values (by value)."""
    return scrub(_current(value))
