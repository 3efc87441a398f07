"""Runnable demo systems (each creates its own small SQLite database)."""

from podium.demos._orders import DEFAULT_QUESTION, build_order_agent, create_orders_db

__all__ = ["DEFAULT_QUESTION", "build_order_agent", "create_orders_db"]
