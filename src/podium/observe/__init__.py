"""Observability: run events, usage and cost, and the local-first run ledger."""

from typing import TYPE_CHECKING

from podium._lazy import attach as _attach

if TYPE_CHECKING:
    from podium.observe._events import RunEvent, RunLedgerHandler, Sink, emit
    from podium.observe._otel import otel_sink
    from podium.observe._prices import DEFAULT_PRICES, FREE_MODELS, Price, cost_of, price_of
    from podium.observe._redact import REDACTED, Redactor, default_redactor, redact, set_redactor
    from podium.observe._report import (
        CostLine,
        TimelineRow,
        cost_report,
        draw_run,
        plot_timeline,
        render_cost,
        render_trace,
        timeline,
    )

__getattr__, __dir__ = _attach(__name__)

__all__ = [
    "DEFAULT_PRICES",
    "FREE_MODELS",
    "REDACTED",
    "CostLine",
    "Price",
    "Redactor",
    "RunEvent",
    "RunLedgerHandler",
    "Sink",
    "TimelineRow",
    "cost_of",
    "cost_report",
    "default_redactor",
    "draw_run",
    "emit",
    "otel_sink",
    "plot_timeline",
    "price_of",
    "redact",
    "render_cost",
    "render_trace",
    "set_redactor",
    "timeline",
]
