"""JSON tool calling extras: typed final answers, several calls per reply, own next steps.

These keep a small local model on track in multi-agent patterns: a pipeline stage's
output model constrains its agent's answer by grammar, a manager may delegate to
several specialists in one reply, and a tool result can name its own next step.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from pydantic import BaseModel, Field

from podium import Agent, ConfigurationError
from podium.agents._structured import (
    CALLS,
    FINAL_ANSWER,
    answer_schema,
    choice_response_format,
    parse_choice,
    render_for_json,
)
from podium.graphs import Stage, create_agent_graph, create_manager_graph, create_pipeline_graph
from podium.testing import ScriptedChatModel
from podium.tools import tool


class Item(BaseModel):
    kind: Literal["a", "b"]
    note: str = Field(max_length=20)


class Basket(BaseModel):
    items: list[Item]


@tool
def lookup(order_id: str) -> str:
    """Look up an order."""
    return f"Order {order_id}: shipped. Next step: final_answer."


@tool
def pick(color: Literal["red", "blue"]) -> str:
    """Pick a color."""
    return color


def _branches(fmt: dict[str, Any]) -> list[dict[str, Any]]:
    schema = fmt["json_schema"]["schema"]
    return list(schema.get("anyOf", [schema]))


def _final(fmt: dict[str, Any]) -> dict[str, Any]:
    (branch,) = [
        b for b in _branches(fmt) if b["properties"].get("tool", {}) == {"const": FINAL_ANSWER}
    ]
    return dict(branch["properties"]["args"]["properties"]["answer"])


# -- typed final answers ---------------------------------------------------------------
def test_answer_schema_is_inlined_and_closed() -> None:
    assert answer_schema(None) == {"type": "string"}
    schema = answer_schema(Basket)
    assert "$defs" not in json.dumps(schema)
    assert "$ref" not in json.dumps(schema)
    assert schema["additionalProperties"] is False
    item = schema["properties"]["items"]["items"]
    assert item["additionalProperties"] is False
    assert item["properties"]["kind"]["enum"] == ["a", "b"]
    assert _final(choice_response_format([], Basket)) == schema


def test_typed_answer_becomes_json_text_and_is_shown_as_an_object() -> None:
    reply = AIMessage(json.dumps({"tool": FINAL_ANSWER, "args": {"answer": {"items": []}}}))
    assert parse_choice(reply).content == '{"items": []}'
    rendered = render_for_json("", [HumanMessage("x"), AIMessage('{"items": []}')], [], Basket)
    assert json.loads(rendered[-1].content) == {
        "tool": FINAL_ANSWER,
        "args": {"answer": {"items": []}},
    }
    assert '"answer": {"items": [{"kind": "a" | "b", "note": string}, ...]}' in rendered[0].content


def test_agent_output_constrains_the_json_answer() -> None:
    model = ScriptedChatModel(['{"tool": "final_answer", "args": {"answer": {"items": []}}}'])
    agent = Agent(name="packer", model=model, tool_calling="json", output=Basket)
    out = create_agent_graph(agent).compile().invoke({"messages": [("user", "pack")]})
    assert out["messages"][-1].content == '{"items": []}'
    assert _final(model.calls[0].kwargs["response_format"]) == answer_schema(Basket)
    with pytest.raises(ConfigurationError, match="is not a pydantic model class"):
        Agent(name="x", output=dict)  # type: ignore[arg-type]


def test_pipeline_stage_output_types_its_agents_json_answer() -> None:
    model = ScriptedChatModel(
        ['{"tool": "final_answer", "args": {"answer": {"items": [{"kind": "a", "note": "n"}]}}}']
    )
    packer = Agent(name="packer", model=model, tool_calling="json")
    app = create_pipeline_graph([Stage("pack", packer, output=Basket)]).compile()
    out = app.invoke({"messages": [("user", "pack")]})
    assert out["stage_outputs"]["pack"] == {"items": [{"kind": "a", "note": "n"}]}
    assert _final(model.calls[0].kwargs["response_format"]) == answer_schema(Basket)
    assert packer.output is None  # the stage's copy is typed; the user's agent is unchanged


# -- several calls per reply ------------------------------------------------------------
def test_parallel_adds_a_calls_branch_bounded_by_the_tools() -> None:
    assert CALLS not in json.dumps(choice_response_format([lookup, pick]))
    assert CALLS not in json.dumps(choice_response_format([lookup], parallel=True))
    (several,) = [
        b
        for b in _branches(choice_response_format([lookup, pick], parallel=True))
        if CALLS in b["properties"]
    ]
    array = several["properties"][CALLS]
    assert (array["minItems"], array["maxItems"]) == (2, 2)
    assert [b["properties"]["tool"]["const"] for b in array["items"]["anyOf"]] == ["lookup", "pick"]


def test_parse_several_calls() -> None:
    raw = {
        CALLS: [
            {"tool": "lookup", "args": {"order_id": "1"}},
            {"tool": "pick", "args": {"color": "red"}},
        ]
    }
    parsed = parse_choice(AIMessage(json.dumps(raw), id="r1"))
    assert [(c["name"], c["args"], c["id"]) for c in parsed.tool_calls] == [
        ("lookup", {"order_id": "1"}, "call_r1_0"),
        ("pick", {"color": "red"}, "call_r1_1"),
    ]
    for bad, error in [
        ({CALLS: []}, "must be a non-empty list"),
        ({CALLS: [{"tool": FINAL_ANSWER, "args": {"answer": "x"}}]}, "cannot be one of several"),
        ({CALLS: ["lookup"]}, "item 0 is not an object"),
    ]:
        invalid = parse_choice(AIMessage(json.dumps(bad), id="r2"))
        assert not invalid.tool_calls
        assert error in (invalid.invalid_tool_calls[0]["error"] or "")


def test_render_several_calls_and_their_results_as_one_turn() -> None:
    history = [
        HumanMessage("go"),
        AIMessage(
            "",
            tool_calls=[
                {"name": "lookup", "args": {"order_id": "1"}, "id": "c1"},
                {"name": "pick", "args": {"color": "red"}, "id": "c2"},
            ],
        ),
        ToolMessage("Order 1: shipped. Next step: final_answer.", tool_call_id="c1", name="lookup"),
        ToolMessage("red", tool_call_id="c2", name="pick"),
    ]
    rendered = render_for_json("", history, [lookup, pick], parallel=True)
    assert "To call several tools at once" in rendered[0].content
    assert json.loads(rendered[2].content) == {
        CALLS: [
            {"tool": "lookup", "args": {"order_id": "1"}},
            {"tool": "pick", "args": {"color": "red"}},
        ]
    }
    assert len(rendered) == 4  # both results in one user turn, with the generic cue
    assert rendered[3].content.startswith("Tool result (lookup): Order 1")
    assert "Tool result (pick): red" in rendered[3].content
    assert rendered[3].content.endswith("unless you need a different tool call.")
    single = render_for_json("", history, [lookup, pick])
    assert "To call several" not in single[0].content
    assert single[2].content.count("\n") == 1  # one choice per line, as before


def test_a_lone_result_that_names_its_next_step_keeps_it() -> None:
    history = [
        HumanMessage("go"),
        AIMessage("", tool_calls=[{"name": "lookup", "args": {"order_id": "1"}, "id": "c1"}]),
        ToolMessage("Order 1: shipped. Next step: final_answer.", tool_call_id="c1", name="lookup"),
    ]
    rendered = render_for_json("", history, [lookup])
    assert (
        rendered[-1].content == "Tool result (lookup): Order 1: shipped. Next step: final_answer."
    )
    assert '"color": "red" | "blue"' in render_for_json("", [], [pick])[0].content


def test_agent_with_parallel_tool_calls_runs_several_json_calls() -> None:
    model = ScriptedChatModel(
        [
            json.dumps(
                {
                    CALLS: [
                        {"tool": "lookup", "args": {"order_id": "1"}},
                        {"tool": "pick", "args": {"color": "blue"}},
                    ]
                }
            ),
            '{"tool": "final_answer", "args": {"answer": "done"}}',
        ]
    )
    agent = Agent(
        name="desk",
        model=model,
        tools=[lookup, pick],
        tool_calling="json",
        parallel_tool_calls=True,
    )
    out = create_agent_graph(agent).compile().invoke({"messages": [("user", "go")]})
    assert sorted(m.content for m in out["messages"] if isinstance(m, ToolMessage)) == [
        "Order 1: shipped. Next step: final_answer.",
        "blue",
    ]
    assert out["messages"][-1].content == "done"
    with pytest.raises(ConfigurationError, match="parallel_tool_calls must be"):
        Agent(name="x", parallel_tool_calls="yes")  # type: ignore[arg-type]


def test_native_parallel_tool_calls_false_is_passed_to_the_provider() -> None:
    model = ScriptedChatModel(["ok"])
    agent = Agent(name="desk", model=model, tools=[lookup], parallel_tool_calls=False)
    create_agent_graph(agent).compile().invoke({"messages": [("user", "go")]})
    assert model.calls[0].kwargs["parallel_tool_calls"] is False


def test_json_mode_manager_delegates_to_several_specialists_in_one_reply() -> None:
    boss_model = ScriptedChatModel(
        [
            json.dumps(
                {
                    CALLS: [
                        {"tool": "a", "args": {"task": "x"}},
                        {"tool": "b", "args": {"task": "y"}},
                    ]
                }
            ),
            '{"tool": "final_answer", "args": {"answer": "both done"}}',
        ]
    )
    boss = Agent(name="boss", model=boss_model, tool_calling="json")
    a = Agent(name="a", description="Does a", model=ScriptedChatModel(["a done"]))
    b = Agent(name="b", description="Does b", model=ScriptedChatModel(["b done"]))
    out = create_manager_graph(boss, [a, b]).compile().invoke({"messages": [("user", "go")]})
    assert out["messages"][-1].content == "both done"
    assert sorted(m.content for m in out["messages"] if isinstance(m, ToolMessage)) == [
        "a done",
        "b done",
    ]
    assert CALLS in json.dumps(boss_model.calls[0].kwargs["response_format"])
    assert boss.parallel_tool_calls is None  # the manager's copy allows several calls
