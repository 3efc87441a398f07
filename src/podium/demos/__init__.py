"""Runnable demo systems (each creates its own small SQLite database)."""

from podium.demos._orders import DEFAULT_QUESTION, build_order_agent, create_orders_db
from podium.demos._registry import DEMOS, Demo, served_home
from podium.demos._support import build_support_desk
from podium.demos._support_patterns import build_support_agent, build_support_manager

__all__ = [
    "DEFAULT_QUESTION",
    "DEMOS",
    "Demo",
    "build_order_agent",
    "build_support_agent",
    "build_support_desk",
    "build_support_manager",
    "create_orders_db",
    "served_home",
]
