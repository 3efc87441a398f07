"""Import ``package.module:attribute`` named on a command line or in a dataset.

The module is looked up in the current directory first (as ``python -m`` does), then
in ``path`` (where it was found before), then on ``sys.path``: no ``PYTHONPATH`` is
needed for a module in the folder you run from.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from podium.errors import ConfigurationError

__all__ = ["import_object"]


def import_object(spec: str, path: str | None = None, *, what: str = "--graph") -> Any:
    """The object ``spec`` (``package.module:attribute``) names.

    Args:
        spec: ``package.module:attribute``.
        path: A folder to search too (where the module was found earlier).
        what: How the caller names ``spec`` in error messages.

    Raises:
        ConfigurationError: ``spec`` is malformed, or the import or attribute fails.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigurationError(
            f"{what} {spec!r} must look like 'package.module:attribute'.",
            fix="Name a module and an attribute in it, separated by a colon.",
        )
    for entry in (os.getcwd(), path):
        if entry and entry not in sys.path:
            sys.path.insert(0, entry)
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(
            f"Cannot load {what} {spec!r}: {exc}.",
            fix="Run from the folder that holds the module (or set PYTHONPATH) and check "
            "the attribute name.",
        ) from exc
    return target
