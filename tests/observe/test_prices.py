"""Costs that are true: prices from genai-prices, unpriced calls marked, cost budgets
that refuse a model without a price, and free models (scripted, local) priced at 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage, calc_price
from langchain_core.messages import AIMessage
from langchain_core.messages.ai import UsageMetadata
from rich.console import Console

from podium import Agent, Budget, ConfigurationError
from podium.checkpoints import sqlite_saver
from podium.graphs import create_agent_graph, create_manager_graph
from podium.observe import Price, cost_report, price_of, render_cost, render_trace
from podium.testing import ScriptedChatModel
from podium.tools._graph import event_store_for, run_ledger_for

CFG: Any = {"configurable": {"thread_id": "prices"}}
CLAUDE = "claude-3-5-sonnet-20241022"


def answer(model_name: str, inp: int = 1_000, out: int = 500, cached: int = 0) -> AIMessage:
    """A reply as a provider's chat model returns it: model name and token usage."""
    usage = UsageMetadata(input_tokens=inp, output_tokens=out, total_tokens=inp + out)
    if cached:
        usage["input_token_details"] = {"cache_read": cached}
    return AIMessage(
        f"answer from {model_name}",
        usage_metadata=usage,
        response_metadata={"model_name": model_name},
    )


def run(tmp_path: Path, *replies: AIMessage, budget: Budget | None = None) -> tuple[Any, Any]:
    """One turn of an agent graph on SQLite; its final state and run events."""
    saver = sqlite_saver(tmp_path / "runs.sqlite")
    agent = Agent(name="writer", model=ScriptedChatModel(list(replies)))
    app = create_agent_graph(agent, budget=budget).compile(checkpointer=saver)
    try:
        out = app.invoke({"messages": [("user", "write")]}, CFG)
    finally:
        handler = run_ledger_for(saver)
        assert handler is not None
        handler.flush()
        store = event_store_for(saver)
        assert store is not None
        events = store.events("prices")
        saver.close()
    return out, events


def models(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["kind"] == "model"]


def test_an_anthropic_call_is_priced_from_genai_prices(tmp_path: Path) -> None:
    out, events = run(tmp_path, answer(CLAUDE, 1_000, 500))
    expected = float(calc_price(Usage(input_tokens=1_000, output_tokens=500), CLAUDE).total_price)
    assert expected == pytest.approx(1_000 * 3e-6 + 500 * 15e-6)  # $3 / $15 per million
    [event] = models(events)
    assert (event["name"], event["cost"], event["data"]["priced"]) == (CLAUDE, expected, True)
    assert out["usage"]["total"]["cost"] == pytest.approx(expected)
    assert cost_report(events)["writer"].cost == pytest.approx(expected)
    assert cost_report(events)["writer"].unpriced == 0


def test_cached_prompt_tokens_get_the_cache_read_price(tmp_path: Path) -> None:
    out, events = run(tmp_path, answer(CLAUDE, 1_000, 500, cached=800))
    # 200 fresh input tokens at $3, 800 cache reads at $0.30, 500 output at $15 per million
    expected = 200 * 3e-6 + 800 * 0.3e-6 + 500 * 15e-6
    assert models(events)[0]["cost"] == pytest.approx(expected)
    assert out["usage"]["total"]["cost"] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("name", "per_million"),
    [("gpt-4.1-mini-2025-04-14", (0.40, 1.60)), ("gemini-2.0-flash", (0.10, 0.40))],
)
def test_other_providers_and_dated_names_are_priced(
    name: str, per_million: tuple[float, float]
) -> None:
    inp, out = per_million
    assert price_of(name, 1_000_000, 1_000_000) == pytest.approx(inp + out)


def test_an_unknown_model_is_marked_unpriced_in_events_and_reports(tmp_path: Path) -> None:
    _, events = run(tmp_path, answer("acme-llm-7b"))
    [event] = models(events)
    assert event["cost"] == 0.0
    assert event["data"]["priced"] is False
    line = cost_report(events)["writer"]
    assert (line.unpriced, line.items["model:acme-llm-7b"].unpriced) == (1, 1)

    console = Console(record=True, width=200)
    render_cost(events, console)
    shown = console.export_text()
    assert ">= 0.000000" in shown
    assert "unpriced: 1 model call(s) to acme-llm-7b have no known price" in shown
    console = Console(record=True, width=200)
    render_trace(events, console)
    assert "unpriced" in console.export_text()


def test_scripted_and_local_models_are_free_not_unpriced(tmp_path: Path) -> None:
    assert price_of("scripted", 10, 10) == 0.0
    local = ScriptedChatModel([answer("my-own.gguf")], metadata={"podium_model": "local"})
    saver = sqlite_saver(tmp_path / "runs.sqlite")
    writer = Agent(name="writer", model=local, tool_calling="native")
    app = create_agent_graph(writer, budget=Budget(cost=0.01)).compile(checkpointer=saver)
    out = app.invoke({"messages": [("user", "write")]}, CFG)  # a cost budget is fine
    handler = run_ledger_for(saver)
    assert handler is not None
    handler.flush()
    store = event_store_for(saver)
    assert store is not None
    [event] = models(store.events("prices"))
    saver.close()
    assert (event["name"], event["cost"], event["data"]["priced"]) == ("my-own.gguf", 0.0, True)
    assert out["usage"]["total"]["cost"] == 0.0
    assert out["usage"]["total"]["input_tokens"] == 1_000  # tokens still count


def test_a_cost_budget_refuses_a_model_without_a_price(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError) as raised:
        run(tmp_path, answer("acme-llm-7b"), budget=Budget(cost=1.0))
    message = str(raised.value)
    assert "model 'acme-llm-7b' has no known price" in message
    assert "the run's budget" in message
    assert "prices={'acme-llm-7b': Price(input=..., output=...)}" in message


def test_a_nested_cost_budget_refuses_it_too(tmp_path: Path) -> None:
    writer = Agent(name="writer", description="Writes", model=ScriptedChatModel([answer("x-1")]))
    boss = Agent(
        name="boss",
        model=ScriptedChatModel(
            [
                AIMessage("", tool_calls=[{"name": "writer", "args": {"task": "w"}, "id": "d1"}]),
                "The writer could not run.",
            ]
        ),
    )
    app = create_manager_graph(boss, [writer], budget=Budget(cost=1.0)).compile()
    out = app.invoke({"messages": [("user", "go")]})
    # the specialist's failure comes back to the manager as an error result, naming why
    results = [m.content for m in out["messages"] if m.type == "tool"]
    assert any("model 'x-1' has no known price" in str(r) for r in results)


def test_a_price_given_with_the_budget_is_an_explicit_acknowledgement(tmp_path: Path) -> None:
    budget = Budget(cost=1.0, prices={"acme-llm-7b": Price(input=2.0, output=4.0)})
    out, events = run(tmp_path, answer("acme-llm-7b", 1_000, 500), budget=budget)
    assert out["usage"]["total"]["cost"] == pytest.approx(1_000 * 2e-6 + 500 * 4e-6)
    # the run ledger (podium cost / trace) prices the call as the budget does
    [event] = models(events)
    assert event["cost"] == pytest.approx(1_000 * 2e-6 + 500 * 4e-6)
    assert event["data"]["priced"] is True
    free = Budget(cost=1.0, prices={"acme-llm-7b": Price(0, 0)})
    out, _ = run(tmp_path, answer("acme-llm-7b"), budget=free)
    assert out["messages"][-1].content == "answer from acme-llm-7b"


def test_a_cost_budget_on_an_unpriced_openai_spec_is_refused_at_build() -> None:
    with pytest.raises(ConfigurationError, match="'openai:acme-llm-7b' has no known price"):
        Agent(name="a", model="openai:acme-llm-7b", budget=Budget(cost=1.0))
    Agent(name="a", model="openai:gpt-4.1-mini", budget=Budget(cost=1.0))  # priced: fine
    Agent(name="a", model="openai:acme-llm-7b", budget=Budget(tokens=1_000))  # no cost limit


def test_the_price_data_is_imported_only_when_a_price_is_needed() -> None:
    code = (
        "import sys, podium, podium.graphs, podium.observe\n"
        "from podium.observe import price_of\n"
        "assert price_of('scripted', 1, 1) == 0.0\n"
        "print('genai_prices' in sys.modules, end=' ')\n"
        "price_of('gpt-4.1-mini', 1, 1)\n"
        "print('genai_prices' in sys.modules)\n"
    )
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": src}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.split() == ["False", "True"]


def test_an_outer_budgets_prices_reach_a_specialists_run_events(tmp_path: Path) -> None:
    """A manager's budget prices its specialist's model: in the usage and in the ledger."""
    writer = Agent(
        name="writer", description="Writes", model=ScriptedChatModel([answer("x-1", 2_000, 100)])
    )
    boss = Agent(
        name="boss",
        model=ScriptedChatModel(
            [
                AIMessage("", tool_calls=[{"name": "writer", "args": {"task": "w"}, "id": "d1"}]),
                answer("scripted", 10, 10),
            ]
        ),
    )
    budget = Budget(cost=1.0, prices={"x-1": Price(input=1.0, output=10.0)})
    saver = sqlite_saver(tmp_path / "runs.sqlite")
    app = create_manager_graph(boss, [writer], budget=budget).compile(checkpointer=saver)
    out = app.invoke({"messages": [("user", "go")]}, CFG)
    handler = run_ledger_for(saver)
    assert handler is not None
    handler.flush()
    store = event_store_for(saver)
    assert store is not None
    events = models(store.events("prices"))
    saver.close()
    [specialist] = [e for e in events if e["name"] == "x-1"]
    assert specialist["cost"] == pytest.approx(2_000 * 1e-6 + 100 * 10e-6)
    assert specialist["data"]["priced"] is True
    assert out["usage"]["total"]["cost"] == pytest.approx(sum(e["cost"] for e in events))
