"""JSON tool calling: the schema, the rendered prompt, and parsing into standard tool calls."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from podium import Agent
from podium.agents._structured import (
    FINAL_ANSWER,
    choice_response_format,
    parse_choice,
    render_for_json,
)
from podium.graphs import create_agent_graph
from podium.testing import ScriptedChatModel
from podium.tools import tool


@tool
def lookup(order_id: str) -> str:
    """Look up an order."""
    return f"Order {order_id}: shipped"


def test_response_format_is_a_union_of_tools_and_final_answer() -> None:
    fmt = choice_response_format([lookup])
    assert fmt["type"] == "json_schema"
    schema = fmt["json_schema"]["schema"]
    branches = schema["anyOf"]
    assert [b["properties"]["tool"]["const"] for b in branches] == ["lookup", FINAL_ANSWER]
    args = branches[0]["properties"]["args"]
    assert args["required"] == ["order_id"]
    assert args["additionalProperties"] is False


def test_parse_choice_tool_final_and_garbage() -> None:
    as_call = parse_choice(AIMessage('{"tool": "lookup", "args": {"order_id": "A-1"}}', id="r1"))
    assert as_call.tool_calls == [
        {"name": "lookup", "args": {"order_id": "A-1"}, "id": "call_r1", "type": "tool_call"}
    ]
    final = parse_choice(AIMessage('{"tool": "final_answer", "args": {"answer": "Done."}}'))
    assert final.content == "Done."
    assert not final.tool_calls
    garbage = parse_choice(AIMessage("I think the answer is 4", id="r3"))
    assert not garbage.tool_calls
    assert garbage.invalid_tool_calls[0]["id"] == "call_r3"
    assert "not valid JSON" in (garbage.invalid_tool_calls[0]["error"] or "")
    wrong_shape = parse_choice(AIMessage('{"tool": "lookup", "args": [1]}'))
    assert "'args' must be a JSON object" in (wrong_shape.invalid_tool_calls[0]["error"] or "")


def test_render_turns_tool_traffic_into_plain_dialogue() -> None:
    history = [
        HumanMessage("Where is A-1?"),
        AIMessage("", tool_calls=[{"name": "lookup", "args": {"order_id": "A-1"}, "id": "c1"}]),
        ToolMessage("Order A-1: shipped", tool_call_id="c1", name="lookup"),
    ]
    rendered = render_for_json("Be exact.", history, [lookup])
    assert isinstance(rendered[0], SystemMessage)
    assert rendered[0].content.startswith("Be exact.")
    assert "- lookup: Look up an order." in rendered[0].content
    assert json.loads(rendered[2].content) == {"tool": "lookup", "args": {"order_id": "A-1"}}
    assert isinstance(rendered[3], HumanMessage)
    assert rendered[3].content.startswith("Tool result (lookup): Order A-1: shipped\n\nNow reply")
    assert all(not getattr(m, "tool_calls", None) for m in rendered)


def test_agent_in_json_mode_runs_tools_from_json_replies() -> None:
    model = ScriptedChatModel(
        [
            '{"tool": "lookup", "args": {"order_id": "A-7"}}',
            '{"tool": "final_answer", "args": {"answer": "A-7 has shipped."}}',
        ]
    )
    agent = Agent(name="desk", model=model, tools=[lookup], tool_calling="json")
    messages = (
        create_agent_graph(agent).compile().invoke({"messages": [("user", "A-7?")]})["messages"]
    )
    assert isinstance(messages[2], ToolMessage)
    assert messages[2].content == "Order A-7: shipped"
    assert messages[-1].content == "A-7 has shipped."
    # each call was constrained by the schema and saw no native tools
    for recorded in model.calls:
        assert recorded.kwargs["response_format"]["type"] == "json_schema"
        assert recorded.tools == []
    model.assert_consumed()


def test_json_mode_garbage_reply_is_an_error_for_the_model_not_a_crash() -> None:
    model = ScriptedChatModel(
        ["lookup A-7 please", '{"tool": "final_answer", "args": {"answer": "ok"}}']
    )
    agent = Agent(name="desk", model=model, tools=[lookup], tool_calling="json")
    messages = create_agent_graph(agent).compile().invoke({"messages": [("user", "x")]})["messages"]
    error = messages[2]
    assert isinstance(error, ToolMessage)
    assert error.status == "error"
    assert "could not be parsed" in error.content
    # the model's second prompt shows it the error as a user turn
    assert "could not be parsed" in model.calls[1].messages[-1].content
    assert messages[-1].content == "ok"


def test_repeated_identical_call_forces_a_final_answer() -> None:
    """A small model that repeats an answered call is only offered final_answer next."""
    model = ScriptedChatModel(
        [
            '{"tool": "lookup", "args": {"order_id": "A-7"}}',
            '{"tool": "lookup", "args": {"order_id": "A-7"}}',
            '{"tool": "final_answer", "args": {"answer": "A-7 shipped"}}',
        ]
    )
    agent = Agent(name="desk", model=model, tools=[lookup], tool_calling="json")
    create_agent_graph(agent).compile().invoke({"messages": [("user", "A-7?")]})
    offered = [
        [
            b["properties"]["tool"].get("const")
            for b in c.kwargs["response_format"]["json_schema"]["schema"].get(
                "anyOf", [c.kwargs["response_format"]["json_schema"]["schema"]]
            )
        ]
        for c in model.calls
    ]
    assert offered == [["lookup", FINAL_ANSWER], ["lookup", FINAL_ANSWER], [FINAL_ANSWER]]


def test_json_reply_cut_off_at_max_tokens_is_an_error_for_the_model() -> None:
    """langchain-openai raises LengthFinishReasonError on a truncated structured reply."""
    import openai
    from langchain_core.language_models import BaseChatModel
    from langchain_core.outputs import ChatGeneration, ChatResult
    from openai.types import CompletionUsage
    from openai.types.chat import ChatCompletion

    class Truncating(BaseChatModel):
        calls: int = 0

        @property
        def _llm_type(self) -> str:
            return "truncating"

        def _generate(
            self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
        ) -> ChatResult:
            self.calls += 1
            if self.calls == 1:
                usage = CompletionUsage(prompt_tokens=50, completion_tokens=8, total_tokens=58)
                raise openai.LengthFinishReasonError(
                    completion=ChatCompletion.model_construct(usage=usage)
                )
            reply = '{"tool": "final_answer", "args": {"answer": "short"}}'
            return ChatResult(generations=[ChatGeneration(message=AIMessage(reply))])

    agent = Agent(
        name="desk", model=Truncating(), tools=[lookup], tool_calling="json", max_tokens=8
    )
    messages = create_agent_graph(agent).compile().invoke({"messages": [("user", "x")]})["messages"]
    cut = messages[1]
    assert isinstance(cut, AIMessage)
    assert cut.usage_metadata is not None
    assert cut.usage_metadata["output_tokens"] == 8
    error = messages[2]
    assert isinstance(error, ToolMessage)
    assert "cut off at max_tokens=8" in error.content
    assert messages[-1].content == "short"
