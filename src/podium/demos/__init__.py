"""Runnable demo systems (each creates its own small SQLite database)."""

from podium.demos._orders import DEFAULT_QUESTION, build_order_agent, create_orders_db
from podium.demos._registry import DEMOS, Demo, served_home

__all__ = [
    "DEFAULT_QUESTION",
    "DEMOS",
    "Demo",
    "build_order_agent",
    "create_orders_db",
    "served_home",
]
