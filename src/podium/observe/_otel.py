"""Optional OpenTelemetry export: run events as spans.

Needs ``opentelemetry-sdk`` (or any OpenTelemetry API implementation); imported only
when :func:`otel_sink` is called. Attach it like any run-ledger sink::

    from podium.observe import RunLedgerHandler, otel_sink
    app.invoke(inputs, {"configurable": {...}, "callbacks": [RunLedgerHandler(otel_sink())]})
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from podium.observe._events import RunEvent, Sink

__all__ = ["otel_sink"]


def otel_sink(tracer_provider: Any = None, *, name: str = "podium") -> Sink:
    """A sink that turns each run event into an OpenTelemetry span.

    Spans are named ``<kind> <name>`` (``model gpt-4.1-mini``, ``tool issue_refund``,
    ``approval_decided issue_refund``) and carry ``podium.*`` attributes: thread, agent,
    node, status, tokens, cost and the event's data (as JSON). Span times are the
    event's own start and end.

    Args:
        tracer_provider: The provider to use (default: the global one).
        name: The instrumentation scope name.
    """
    from opentelemetry import trace  # optional dependency: imported on use
    from opentelemetry.trace import Status, StatusCode

    tracer = trace.get_tracer(name, tracer_provider=tracer_provider)

    def export(batch: Sequence[RunEvent]) -> None:
        for event in batch:
            start = int(event.started_at * 1e9)
            end = int((event.ended_at or event.started_at) * 1e9)
            span = tracer.start_span(f"{event.kind} {event.name or ''}".strip(), start_time=start)
            span.set_attributes(
                {
                    "podium.kind": event.kind,
                    "podium.thread_id": event.thread_id,
                    "podium.agent": event.agent or "",
                    "podium.node": event.node or "",
                    "podium.status": event.status,
                    "podium.input_tokens": event.input_tokens,
                    "podium.output_tokens": event.output_tokens,
                    "podium.cost": event.cost,
                    "podium.data": json.dumps(event.data, default=str),
                }
            )
            if event.status == "error":
                span.set_status(Status(StatusCode.ERROR))
            span.end(end_time=end)

    return export
