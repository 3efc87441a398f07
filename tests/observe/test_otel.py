"""OpenTelemetry export of run events."""

from __future__ import annotations

from langchain_core.messages import AIMessage
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from podium import Agent
from podium.graphs import create_agent_graph
from podium.observe import RunLedgerHandler, otel_sink
from podium.testing import ScriptedChatModel
from podium.tools import tool


@tool(read_only=True)
def lookup(order_id: str) -> str:
    """Look up an order."""
    return "paid"


def test_events_become_spans() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    handler = RunLedgerHandler(otel_sink(provider))
    model = ScriptedChatModel(
        [
            AIMessage("", tool_calls=[{"name": "lookup", "args": {"order_id": "A"}, "id": "c"}]),
            "paid",
        ]
    )
    app = create_agent_graph(Agent(name="desk", model=model, tools=[lookup])).compile()
    app.invoke(
        {"messages": [("user", "A?")]},
        {"configurable": {"thread_id": "otel"}, "callbacks": [handler]},
    )
    handler.flush()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert {"model scripted", "tool lookup", "policy lookup"} <= set(spans)
    model_span = spans["model scripted"]
    assert model_span.attributes is not None
    assert model_span.attributes["podium.agent"] == "desk"
    assert model_span.attributes["podium.thread_id"] == "otel"
    assert model_span.attributes["podium.input_tokens"] > 0
    assert model_span.end_time is not None
    assert model_span.start_time is not None
    assert model_span.end_time >= model_span.start_time
