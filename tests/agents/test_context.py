"""Context policies: long conversations within a token budget, without losing history.

A 300-turn conversation on a scripted model: every model call stays under 4,000 tokens
(the scripted model's own count of what it was sent), every tool call the model sees is
paired with its result, and the checkpoint still holds every message. A summariser that
raises loses nothing (langchain #38867); a cut never orphans a tool result (#34282).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatResult

from podium import Agent, ConfigurationError, runs
from podium.agents import ContextPolicy
from podium.agents._context import SUMMARY_HEADER, units
from podium.checkpoints import sqlite_saver
from podium.graphs import create_agent_graph
from podium.testing import ScriptedChatModel
from podium.tools import tool

CFG: Any = {"configurable": {"thread_id": "long"}}
TURNS = 300
BUDGET = 4000
FILLER = "The customer adds a long explanation of what happened. " * 6  # ~85 tokens


@tool(read_only=True)
def lookup(order_id: str) -> str:
    """Look up an order."""
    return f"order {order_id}: shipped, paid, " + "tracking details " * 20


def turn_script(turns: int) -> list[Any]:
    """Each turn: a lookup (a call and its result), then an answer."""
    script: list[Any] = []
    for t in range(turns):
        call = {"name": "lookup", "args": {"order_id": f"A-{t}"}, "id": f"call-{t}"}
        script.append(AIMessage("", tool_calls=[call], id=f"ask-{t}"))
        script.append(AIMessage(f"Order A-{t} is on its way. " * 4, id=f"answer-{t}"))
    return script


def paired(messages: list[BaseMessage]) -> bool:
    """Every tool call has its result and every result its call, in what was sent."""
    asked = {c["id"] for m in messages if isinstance(m, AIMessage) for c in m.tool_calls}
    answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    return asked == answered


def converse(app: Any, turns: int) -> None:
    for t in range(turns):
        app.invoke({"messages": [("user", f"Turn {t}: where is A-{t}? {FILLER}")]}, CFG)


def check_calls(model: ScriptedChatModel) -> None:
    for call in model.calls:
        assert call.response.usage_metadata["input_tokens"] < BUDGET, call.response.usage_metadata
        assert paired(call.messages)
        assert isinstance(call.messages[1], HumanMessage)  # the window starts at a user turn


@pytest.mark.parametrize("summarized", [False, True], ids=["trim", "summarize"])
def test_a_300_turn_conversation_stays_within_the_budget_and_loses_nothing(
    tmp_path: Path, summarized: bool
) -> None:
    model = ScriptedChatModel(turn_script(TURNS))
    summaries = ScriptedChatModel([f"Summary {i}: orders A-0 onwards shipped." for i in range(40)])
    policy = ContextPolicy(max_tokens=BUDGET, summarizer=summaries if summarized else None)
    agent = Agent(
        name="desk",
        instructions="Answer order questions.",
        model=model,
        tools=[lookup],
        context=policy,
    )
    saver = sqlite_saver(tmp_path / "runs.sqlite")
    app = create_agent_graph(agent).compile(checkpointer=saver)
    converse(app, TURNS)
    model.assert_consumed()
    check_calls(model)
    # the first call sees everything; the last one far from all of it
    assert len(model.calls[0].messages) == 2
    assert len(model.calls[-1].messages) < 100
    # the checkpoint holds the whole conversation: 4 messages a turn, none changed
    history = app.get_state(CFG).values["messages"]
    assert len(history) == 4 * TURNS
    asked = [m.content for m in history if isinstance(m, HumanMessage)]
    assert asked == [f"Turn {t}: where is A-{t}? {FILLER}" for t in range(TURNS)]
    assert paired(history)
    if summarized:
        # the summary is cached: a few summary calls serve 600 model calls
        assert 2 <= len(summaries.calls) <= 40
        last = model.calls[-1].messages[0]
        assert SUMMARY_HEADER in str(last.content)
        assert "Summary " in str(last.content)
        assert app.get_state(CFG).values["context"]["text"].startswith("Summary ")
    saver.close()


class Broken(BaseChatModel):
    """A summariser whose provider is down."""

    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "broken"

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.calls += 1
        raise ConnectionError("summariser unreachable")


def test_a_summariser_that_raises_loses_no_message(tmp_path: Path) -> None:
    turns = 40
    model = ScriptedChatModel(turn_script(turns))
    broken = Broken()
    policy = ContextPolicy(max_tokens=1500, summarizer=broken)
    agent = Agent(name="desk", model=model, tools=[lookup], context=policy)
    saver = sqlite_saver(tmp_path / "runs.sqlite")
    app = create_agent_graph(agent).compile(checkpointer=saver)
    converse(app, turns)
    assert broken.calls > 0  # it was asked, and failed
    for call in model.calls:  # trimmed instead, still paired
        assert call.response.usage_metadata["input_tokens"] < 1500
        assert paired(call.messages)
    history = app.get_state(CFG).values["messages"]
    assert len(history) == 4 * turns  # nothing was deleted
    assert app.get_state(CFG).values.get("context") is None  # no summary was cached
    failed = runs.events(app, CFG, kinds=["fallback"])
    assert failed
    assert failed[0]["name"] == "summary"
    assert "summariser unreachable" in failed[0]["data"]["error"]
    saver.close()


def test_units_keep_parallel_results_with_their_call() -> None:
    calls = [{"name": "lookup", "args": {"order_id": i}, "id": i} for i in ("a", "b")]
    messages = [
        HumanMessage("q", id="h"),
        AIMessage("", tool_calls=calls, id="ai"),
        ToolMessage("ra", tool_call_id="a", id="ta"),
        ToolMessage("rb", tool_call_id="b", id="tb"),
        AIMessage("done", id="end"),
    ]
    assert [[m.id for m in u] for u in units(messages)] == [["h"], ["ai", "ta", "tb"], ["end"]]


def test_the_newest_turn_is_sent_even_when_it_alone_is_over_the_budget() -> None:
    big = "x" * 2000
    model = ScriptedChatModel(["ok", "ok"])
    agent = Agent(name="a", model=model, context=ContextPolicy(max_tokens=100))
    app = create_agent_graph(agent).compile(checkpointer=None)
    out = app.invoke({"messages": [("user", big)]})
    assert out["messages"][-1].content == "ok"
    assert [m.content for m in model.calls[0].messages] == [big]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_tokens": 10}, "at least 100"),
        ({"max_tokens": 4000, "keep": 1.5}, "keep must be between"),
        ({"max_tokens": 4000, "summarizer": 3}, "summarizer must be"),
    ],
)
def test_bad_policies_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ContextPolicy(**kwargs)
    with pytest.raises(ConfigurationError, match="context must be a podium ContextPolicy"):
        Agent(name="a", context=4000)  # type: ignore[arg-type]
