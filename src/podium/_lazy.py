"""Lazy re-exports for podium's packages (PEP 562), so a light import stays light.

``import podium`` (errors, version) and the CLI's read-only commands (which read the
database with :mod:`sqlite3`) must not pay for importing LangGraph, LangChain and the
model SDKs: that alone takes seconds on a small machine. A package writes its
re-exports as ordinary imports under ``if TYPE_CHECKING:`` -- what type checkers and
IDEs read -- and calls :func:`attach`; at run time the first access to a name
(``from podium import Agent``, ``podium.Agent``) imports the submodule those imports
name, and caches the value on the package. The import block is the one list of what
comes from where (the same idea as ``lazy_loader.attach_stub``, without a stub file).
"""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["attach"]


def _type_checking_imports(source: str) -> dict[str, str]:
    """``{name: module}`` from the ``from X import a, b`` lines under ``if TYPE_CHECKING:``."""
    found: dict[str, str] = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING")):
            continue
        for statement in node.body:
            if isinstance(statement, ast.ImportFrom) and statement.module:
                module = "." * statement.level + statement.module
                for alias in statement.names:
                    found[alias.asname or alias.name] = module
    return found


def attach(package: str) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` (see the module docs)."""
    exports: dict[str, str] = {}

    def _exports() -> dict[str, str]:
        if not exports:
            init = sys.modules[package].__file__ or ""
            exports.update(_type_checking_imports(Path(init).read_text(encoding="utf-8")))
        return exports

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):  # dunder probes (``__path__`` of a module, ...) stay fast
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        where = _exports().get(name)
        if where is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(_exports()))

    return __getattr__, __dir__
