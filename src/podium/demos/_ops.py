"""The ops-manager demo: a manager delegates to inventory, billing and communications.

``ops_lead`` (``create_manager_graph``) sees each specialist as a tool taking a
``task``; each specialist works in a private history with one or two tools over the
demo's SQLite database. ``communications`` sends the customer a notice -- a row in the
``notices`` table -- and every notice waits for a human (a :class:`~podium.Policy`
rule). The manager writes the synthesis from the specialists' reports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool
from pydantic import BaseModel, Field

from podium.agents import Agent
from podium.demos._db import call_key, connect, create_db, drop_tables, read_tables
from podium.graphs import create_manager_graph
from podium.tools import GovernedGraph, Policy, Rule, tool

__all__ = [
    "DEFAULT_REQUEST",
    "EFFECT_TABLES",
    "OpsReport",
    "build_ops_manager",
    "create_ops_db",
    "ops_effects",
    "reset_ops",
]

DEFAULT_REQUEST = (
    "Order B-2001 is late. Find out why, check its invoice, and send the customer a notice."
)
DB_NAME = "ops.sqlite"
EFFECT_TABLES = ("notices",)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY, customer TEXT NOT NULL, email TEXT NOT NULL, sku TEXT NOT NULL,
    quantity INTEGER NOT NULL, status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stock (
    sku TEXT PRIMARY KEY, name TEXT NOT NULL, on_hand INTEGER NOT NULL,
    next_delivery TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS invoices (
    order_id TEXT PRIMARY KEY, amount INTEGER NOT NULL, status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS notices (
    id INTEGER PRIMARY KEY AUTOINCREMENT, order_id TEXT NOT NULL, recipient TEXT NOT NULL,
    message TEXT NOT NULL, call_key TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);
"""

ORDERS = (
    ("B-2001", "Edsger Dijkstra", "edsger@example.com", "W-7", 3, "waiting for stock"),
    ("B-2002", "Barbara Liskov", "barbara@example.com", "G-2", 1, "shipped"),
)
STOCK = (
    ("W-7", "steel widget", 0, "2026-12-04"),
    ("G-2", "brass gear", 25, "2026-12-10"),
)
INVOICES = (("B-2001", 180, "paid"), ("B-2002", 45, "paid"))

Line = Annotated[str, Field(min_length=12, max_length=160)]


class OpsReport(BaseModel):
    """The manager's answer: one line per specialist's report."""

    stock: Line
    invoice: Line
    customer_notice: Line


OrderId = Annotated[str, Field(pattern=r"^B-[0-9]{4}$", description="The order id, like B-2001.")]


def create_ops_db(home: Path) -> Path:
    """Create the ops database under ``home`` if missing; never wipes notices."""
    seed = [
        *(("INSERT OR IGNORE INTO orders VALUES (?, ?, ?, ?, ?, ?)", r) for r in ORDERS),
        *(("INSERT OR IGNORE INTO stock VALUES (?, ?, ?, ?)", r) for r in STOCK),
        *(("INSERT OR IGNORE INTO invoices VALUES (?, ?, ?)", r) for r in INVOICES),
    ]
    return create_db(home / DB_NAME, _SCHEMA, seed)


def reset_ops(home: Path) -> None:
    """Forget every notice sent."""
    drop_tables(home / DB_NAME, EFFECT_TABLES)


def ops_effects(home: Path) -> dict[str, list[dict[str, Any]]]:
    """The notices sent."""
    return read_tables(home / DB_NAME, EFFECT_TABLES)


def _row(path: Path, sql: str, key: str) -> dict[str, Any] | None:
    with connect(path) as db:
        row = db.execute(sql, (key,)).fetchone()
        return dict(row) if row is not None else None


def _no_order(order_id: str) -> str:
    return f"There is no order {order_id}. Known orders: {', '.join(o[0] for o in ORDERS)}."


def _tools(path: Path) -> dict[str, list[BaseTool]]:
    @tool(read_only=True)
    def check_stock(order_id: OrderId) -> str:
        """Stock and next delivery of the item an order waits for."""
        order = _row(path, "SELECT * FROM orders WHERE id = ?", order_id)
        if order is None:
            return _no_order(order_id)
        item = _row(path, "SELECT * FROM stock WHERE sku = ?", order["sku"])
        if item is None:  # pragma: no cover - the seed data is consistent
            return f"Order {order_id} waits for {order['sku']}, which is not stocked."
        return (
            f"Order {order_id} needs {order['quantity']} x {item['name']} ({item['sku']}): "
            f"{item['on_hand']} on hand, next delivery on {item['next_delivery']}."
        )

    @tool(read_only=True)
    def get_invoice(order_id: OrderId) -> str:
        """The invoice of an order: amount and payment status."""
        invoice = _row(path, "SELECT * FROM invoices WHERE order_id = ?", order_id)
        if invoice is None:
            return _no_order(order_id)
        return f"Invoice for {order_id}: {invoice['amount']} dollars, {invoice['status']}."

    @tool(risk="medium", idempotent=True)
    def send_notice(
        order_id: OrderId,
        message: Annotated[
            str,
            Field(
                pattern=r"^We are sorry for [A-Za-z ,'-]{3,80}[.]$",
                description="One sentence of apology, starting with 'We are sorry for' "
                "(no numbers: the tool adds the expected date).",
            ),
        ],
    ) -> str:
        """Send the customer of an order a notice (name and expected date are added)."""
        order = _row(path, "SELECT * FROM orders WHERE id = ?", order_id)
        if order is None:
            return _no_order(order_id)
        item = _row(path, "SELECT * FROM stock WHERE sku = ?", order["sku"]) or {}
        text = (
            f"Dear {order['customer']}, {message.strip()} Your order {order_id} "
            f"({item.get('name', order['sku'])}) is expected on "
            f"{item.get('next_delivery', 'a date we will confirm')}."
        )
        with connect(path) as db:
            db.execute(
                "INSERT OR IGNORE INTO notices (order_id, recipient, message, call_key) "
                "VALUES (?, ?, ?, ?)",
                (order_id, order["email"], text, call_key()),
            )
        return f"Notice sent to {order['email']}: {text}"

    return {
        "inventory": [check_stock],
        "billing": [get_invoice],
        "communications": [send_notice],
    }


def build_ops_manager(
    home: Path, model: str | BaseChatModel = "default"
) -> GovernedGraph[Any, Any, Any, Any]:
    """The ops manager and its specialists over the database under ``home``."""
    tools = _tools(create_ops_db(home))
    specialists = [
        Agent(
            name="inventory",
            description="Checks stock and the next delivery for an order.",
            instructions="Call check_stock for the order, then final_answer with the result.",
            model=model,
            tools=tools["inventory"],
            max_steps=3,
            max_tokens=96,
        ),
        Agent(
            name="billing",
            description="Checks the invoice of an order.",
            instructions="Call get_invoice for the order, then final_answer with the result.",
            model=model,
            tools=tools["billing"],
            max_steps=3,
            max_tokens=96,
        ),
        Agent(
            name="communications",
            description="Sends the customer a notice about an order.",
            instructions=(
                "Call send_notice for the order with a short apology for the delay. "
                "Then final_answer: say the notice was sent, with the expected date."
            ),
            model=model,
            tools=tools["communications"],
            max_steps=4,
            max_tokens=128,
        ),
    ]
    manager = Agent(
        name="ops_lead",
        description="Coordinates inventory, billing and communications.",
        instructions=(
            "You are the operations lead. First ask inventory, billing and communications "
            "at once; then final_answer with what each reported. For order "
            'B-0000 you first reply: {"calls": [{"tool": "inventory", "args": {"task": '
            '"Check stock for order B-0000."}}, {"tool": "billing", "args": {"task": "Check '
            'the invoice of order B-0000."}}, {"tool": "communications", "args": {"task": '
            '"Tell the customer of order B-0000 about the delay."}}]}'
        ),
        model=model,
        output=OpsReport,
        max_tokens=200,
    )
    policy = Policy(
        rules=[
            Rule(
                tool="send_notice",
                action="approve",
                reason="every customer notice is approved by a human",
            )
        ]
    )
    return create_manager_graph(
        manager,
        specialists,
        policy=policy,
        max_rounds=6,
        name="ops_manager",
        description="An operations manager with inventory, billing and communications.",
    )
