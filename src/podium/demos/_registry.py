"""The demo registry: every runnable demo system, by name, for the CLI and notebooks.

A :class:`Demo` builds its graph over a small business database (or files) under a
home folder. ``build`` is cheap and idempotent: it creates the database if missing
and never wipes side-effect tables, so a second process that builds the same demo to
resume a thread after an approval writes into the same tables -- and the governed
executor's ledger (in the checkpointer's file) keeps each side effect to one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from langchain_core.language_models import BaseChatModel

from podium.demos import _data, _ops, _orders, _research, _support
from podium.graphs import create_agent_graph
from podium.tools import GovernedGraph

__all__ = ["DEMOS", "Demo", "served_home"]

Effects = dict[str, list[dict[str, Any]]]


def served_home() -> Path:
    """Where served demos keep their business databases: ``$PODIUM_HOME`` if set.

    Otherwise ``$XDG_DATA_HOME/podium/served`` (``~/.local/share/podium/served``):
    outside the project. ``langgraph dev`` watches the folder it starts in (uvicorn's
    reloader, through watchfiles) and logs "N changes detected" for every write to a
    file in it; it reloads only for ``.py`` files, but a database there fills its log
    with lines that read like restarts.
    """
    configured = os.environ.get("PODIUM_HOME")
    if configured:
        return Path(configured)
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "podium" / "served"


@dataclass(frozen=True)
class Demo:
    """One runnable demo system.

    Example:
        >>> from podium.demos import DEMOS
        >>> sorted(DEMOS)
        ['data', 'ops', 'orders', 'research', 'support']
    """

    name: str
    """Its name on the command line: ``orders``, ``support``, ``research``, ``ops``,
    ``data``."""
    title: str
    """One line saying what it shows."""
    default_request: str
    """The user's request when none is given."""
    build: Callable[[Path, str | BaseChatModel], GovernedGraph[Any, Any, Any, Any]]
    """``(home, model) -> uncompiled graph``; creates the business database under
    ``home`` if missing (never wiping side effects). ``model`` is a model spec
    (``"local"``, ``"openai:<name>"``, ``"default"``) or a chat model for every agent."""
    effects: Callable[[Path], Effects]
    """``home -> {table: rows}``: the side effects so far, for the closing report."""
    reset: Callable[[Path], None]
    """``home -> None``: forget the side effects (the next ``build`` starts clean)."""


def _build_orders(home: Path, model: str | BaseChatModel) -> GovernedGraph[Any, Any, Any, Any]:
    db = _orders.create_orders_db(home / "orders.sqlite")
    return create_agent_graph(_orders.build_order_agent(db, model))


def _no_effects(home: Path) -> Effects:
    return {}


def _no_reset(home: Path) -> None:
    return None


DEMOS: Mapping[str, Demo] = MappingProxyType(
    {
        "orders": Demo(
            name="orders",
            title="Order desk: one agent, one read-only tool",
            default_request=_orders.DEFAULT_QUESTION,
            build=_build_orders,
            effects=_no_effects,
            reset=_no_reset,
        ),
        "support": Demo(
            name="support",
            title="Support desk (handoff): triage passes to billing or technical; "
            "refunds over 100 need a human",
            default_request=_support.DEFAULT_REQUEST,
            build=_support.build_support_desk,
            effects=_support.support_effects,
            reset=_support.reset_support,
        ),
        "research": Demo(
            name="research",
            title="Research brief (pipeline + parallel): researchers, typed facts, "
            "validation, a report written after approval",
            default_request=_research.DEFAULT_REQUEST,
            build=_research.build_research_brief,
            effects=_research.research_effects,
            reset=_research.reset_research,
        ),
        "ops": Demo(
            name="ops",
            title="Ops manager (manager): parallel delegation to inventory, billing and "
            "communications; customer notices need a human",
            default_request=_ops.DEFAULT_REQUEST,
            build=_ops.build_ops_manager,
            effects=_ops.ops_effects,
            reset=_ops.reset_ops,
        ),
        "data": Demo(
            name="data",
            title="Data desk (one agent, sandboxed shell): a CSV in the thread's workspace, "
            "totalled by a shell command a human approves",
            default_request=_data.DEFAULT_REQUEST,
            build=_data.build_data_desk,
            effects=_data.data_effects,
            reset=_data.reset_data,
        ),
    }
)
"""Every demo, by name."""
