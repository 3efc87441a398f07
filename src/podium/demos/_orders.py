"""The single-agent demo: an order desk that looks orders up in a small SQLite table."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool

from podium.agents import Agent
from podium.tools import tool

__all__ = ["DEFAULT_QUESTION", "ORDERS", "build_order_agent", "create_orders_db"]

DEFAULT_QUESTION = "What is the status of order A-1002?"

ORDERS: tuple[tuple[str, str, str, str], ...] = (
    ("A-1001", "Ada Lovelace", "delivered", "delivered on 2026-11-18"),
    ("A-1002", "Alan Turing", "shipped", "arriving on 2026-11-27 via DHL"),
    ("A-1003", "Grace Hopper", "processing", "ships on 2026-11-25"),
)


def create_orders_db(path: Path) -> Path:
    """Create (or reset) the demo's orders table in the SQLite file ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _connect(path) as db:
        db.execute("DROP TABLE IF EXISTS orders")
        db.execute(
            "CREATE TABLE orders (id TEXT PRIMARY KEY, customer TEXT, status TEXT, detail TEXT)"
        )
        db.executemany("INSERT INTO orders VALUES (?, ?, ?, ?)", ORDERS)
    return path


@contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(path)
    try:
        with db:
            yield db
    finally:
        db.close()


def _lookup_tool(path: Path) -> BaseTool:
    @tool(read_only=True)
    def lookup_order(order_id: str) -> str:
        """Look up an order by its id (like A-1002) and return its status."""
        with _connect(path) as db:
            row = db.execute(
                "SELECT id, customer, status, detail FROM orders WHERE id = ?",
                (order_id.strip().upper(),),
            ).fetchone()
        if row is None:
            known = ", ".join(o[0] for o in ORDERS)
            return f"No order {order_id!r}. Known orders: {known}."
        return f"Order {row[0]} for {row[1]}: {row[2]}, {row[3]}."

    return lookup_order


def build_order_agent(db_path: Path, model: str | BaseChatModel = "default") -> Agent:
    """The order-desk agent with its one read-only tool, over the database at ``db_path``."""
    return Agent(
        name="order_desk",
        description="Answers questions about customer orders.",
        instructions=(
            "You are an order desk assistant. To answer a question about an order, first "
            "call lookup_order with the order id, then answer in one sentence that repeats "
            "the status and detail from the tool result."
        ),
        model=model,
        tools=[_lookup_tool(db_path)],
        max_steps=4,
        max_tokens=96,
    )
