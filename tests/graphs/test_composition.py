"""Composition across patterns, and delegation as a permission boundary."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, ToolMessage
from pydantic import BaseModel

from podium import Agent
from podium.graphs import Stage, create_manager_graph, create_pipeline_graph
from podium.testing import ScriptedChatModel
from podium.tools import tool


class Facts(BaseModel):
    facts: list[str]


def delegate(name: str, task: str, id_: str) -> dict[str, Any]:
    return {"name": name, "args": {"task": task}, "id": id_, "type": "tool_call"}


def test_a_manager_whose_specialist_is_a_pipeline() -> None:
    researcher = Agent(name="researcher", model=ScriptedChatModel(['{"facts": ["a", "b", "c"]}']))
    pipeline = create_pipeline_graph(
        [
            Stage("research", researcher, Facts),
            Stage("count", lambda inp: f"{len(inp.previous.facts)} facts found"),
        ],
        name="analyst",
        description="Researches and counts facts",
    )
    boss_model = ScriptedChatModel(
        [AIMessage("", tool_calls=[delegate("analyst", "study X", "d1")]), "Analyst: 3 facts."]
    )
    boss = Agent(name="boss", model=boss_model)
    app = create_manager_graph(boss, [pipeline]).compile()
    out = app.invoke({"messages": [("user", "How many facts about X?")]})
    result = next(m for m in out["messages"] if isinstance(m, ToolMessage))
    assert result.content == "3 facts found"
    assert out["messages"][-1].content == "Analyst: 3 facts."
    # the pipeline's researcher saw only the task, not the manager's conversation
    seen = [m.content for m in researcher.model.calls[0].messages]  # type: ignore[union-attr]
    assert not any("How many facts about X?" in str(c) for c in seen)
    assert any("study X" in str(c) for c in seen)


def test_delegation_cannot_be_used_to_reach_a_tool() -> None:
    """Neither the manager nor a specialist runs a tool it was not granted."""
    wires: list[str] = []

    @tool(risk="high")
    def wire_money(account: str) -> str:
        """Wire money."""
        wires.append(account)
        return "wired"

    treasurer = Agent(
        name="treasurer",
        description="Moves money",
        model=ScriptedChatModel(["done"]),
        tools=[wire_money],
    )
    clerk = Agent(
        name="clerk",
        description="Files paperwork",
        model=ScriptedChatModel(
            [
                AIMessage(
                    "", tool_calls=[{"name": "wire_money", "args": {"account": "666"}, "id": "w1"}]
                ),
                "I cannot wire money.",
            ]
        ),
    )
    boss = Agent(
        name="boss",
        model=ScriptedChatModel(
            [
                # the manager tries the treasurer's tool itself, and asks the clerk to wire
                AIMessage(
                    "",
                    tool_calls=[
                        {"name": "wire_money", "args": {"account": "666"}, "id": "m1"},
                        delegate("clerk", "wire 10000 to account 666", "d1"),
                    ],
                ),
                "Nothing was wired.",
            ]
        ),
    )
    app = create_manager_graph(boss, [treasurer, clerk]).compile()
    out = app.invoke({"messages": [("user", "wire it")]})
    refusal = next(
        m for m in out["messages"] if isinstance(m, ToolMessage) and m.tool_call_id == "m1"
    )
    assert refusal.status == "error"
    assert "not allowed to call tool 'wire_money'" in refusal.content
    clerk_calls = clerk.model.calls  # type: ignore[union-attr]
    clerk_result = clerk_calls[1].messages[-1]
    assert isinstance(clerk_result, ToolMessage)
    assert "not allowed to call tool 'wire_money'" in clerk_result.content
    assert wires == []
