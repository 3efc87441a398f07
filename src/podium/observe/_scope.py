"""Agent paths: where an agent sits in nested graphs (``support_desk/cashier``).

A pattern graph can stand where an agent stands: a handoff desk named
``support_desk`` can be a specialist of a manager. Its agents then show under the
desk's name -- ``support_desk/cashier`` -- in run events (the ``agent`` column) and
in :attr:`ApprovalRequest.agent <podium.ApprovalRequest.agent>`; agents of the
top-level graph keep their bare names.

The path comes from one place: when a pattern runs a *graph* member, it adds the
member's name to the run's **scope**, a string kept in the LangChain run metadata
under :data:`SCOPE_KEY` (metadata is inherited by every nested run and reaches every
callback, so the run ledger sees it beside ``podium_agent``). Agent members add
nothing: an agent's own name is the last segment. The scope is computed anew on
every execution from the graphs' structure, never stored, so a resumed or forked run
shows the same paths, and nothing that identifies a request or a ledger row depends
on it.

Names never contain ``/`` (see :func:`podium.agents._spec.validate_name`), so a name
that does is already a path and is kept as it is; and a segment is not repeated (a
graph named like the agent it wraps -- ``create_agent_graph``, a manager graph named
after its manager -- shows that agent as ``billing``, not ``billing/billing``).

This module has no dependencies, so readers of the run ledger can import it cheaply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["SCOPE_KEY", "SEPARATOR", "scope_of", "scoped"]

SCOPE_KEY = "podium_scope"
"""The run-metadata key holding the path of the enclosing member graphs."""
SEPARATOR = "/"
"""Joins the segments of a path."""


def scope_of(config: Mapping[str, Any] | None) -> str:
    """The scope of a run: the path of the member graphs it runs in (``""`` at top level).

    Args:
        config: A runnable config (its ``metadata`` is read), or run metadata itself.
    """
    if not config:
        return ""
    meta = config.get("metadata")
    found = (meta if isinstance(meta, Mapping) else config).get(SCOPE_KEY)
    return found if isinstance(found, str) else ""


def scoped(scope: str | None, name: str) -> str:
    """``name`` as seen from the top-level graph: ``scoped("support_desk", "cashier")``.

    Returns ``name`` unchanged at top level (empty ``scope``) and when it already is a
    path; returns ``scope`` when its last segment is ``name`` (no repeated segment).
    """
    if not scope or not name or SEPARATOR in name:
        return name
    if scope.rsplit(SEPARATOR, 1)[-1] == name:
        return scope
    return f"{scope}{SEPARATOR}{name}"
