"""The agent loop: tool call → result → answer, limits, and every bad-input case."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.messages.tool import invalid_tool_call

from podium import Agent, ConfigurationError, MaxStepsExceededError
from podium.graphs import create_agent_graph
from podium.testing import ScriptedChatModel
from podium.tools import tool


class Ledger:
    """Counts real executions of the test tools."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, object]]] = []


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()


@pytest.fixture
def tools(ledger: Ledger) -> dict[str, object]:
    @tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        ledger.calls.append(("get_weather", {"city": city}))
        return f"Sunny and 21 C in {city}"

    @tool(risk="high")
    def send_payment(account: str, amount: float) -> str:
        """Send money to an account."""
        ledger.calls.append(("send_payment", {"account": account, "amount": amount}))
        return "sent"

    return {"get_weather": get_weather, "send_payment": send_payment}


def call(name: str, args: object, id_: str = "call_1") -> dict[str, object]:
    return {"name": name, "args": args, "id": id_, "type": "tool_call"}


def run(agent: Agent, text: str = "hi") -> list[object]:
    app = create_agent_graph(agent).compile()
    return list(app.invoke({"messages": [("user", text)]})["messages"])


def test_tool_call_result_then_answer(tools: dict[str, object], ledger: Ledger) -> None:
    model = ScriptedChatModel(
        [AIMessage("", tool_calls=[call("get_weather", {"city": "Oslo"})]), "It is sunny in Oslo."]
    )
    agent = Agent(
        name="weather", instructions="Be brief.", model=model, tools=[tools["get_weather"]]
    )
    messages = run(agent, "Weather in Oslo?")

    assert [type(m).__name__ for m in messages] == [
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "AIMessage",
    ]
    assert ledger.calls == [("get_weather", {"city": "Oslo"})]
    result = messages[2]
    assert isinstance(result, ToolMessage)
    assert result.content == "Sunny and 21 C in Oslo"
    assert result.tool_call_id == "call_1"
    assert messages[-1].content == "It is sunny in Oslo."
    assert messages[-1].name == "weather"
    # The model saw the system prompt, then the tool result on its second call.
    first, second = model.calls
    assert first.messages[0].content == "Be brief."
    assert isinstance(second.messages[-1], ToolMessage)
    assert second.messages[-1].content == "Sunny and 21 C in Oslo"
    assert first.tools == ["get_weather"]
    model.assert_consumed()


def test_max_steps_trips_with_clear_error(tools: dict[str, object], ledger: Ledger) -> None:
    looping = [
        AIMessage("", tool_calls=[call("get_weather", {"city": "Oslo"}, f"c{i}")]) for i in range(3)
    ]
    agent = Agent(
        name="looper", model=ScriptedChatModel(looping), tools=[tools["get_weather"]], max_steps=2
    )
    with pytest.raises(MaxStepsExceededError, match=r"'looper' made 2 model calls .*max_steps=2"):
        run(agent)
    assert len(ledger.calls) == 2


def test_max_steps_counts_per_turn(tools: dict[str, object]) -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    model = ScriptedChatModel(
        [
            AIMessage("", tool_calls=[call("get_weather", {"city": "A"}, "c1")]),
            "one",
            AIMessage("", tool_calls=[call("get_weather", {"city": "B"}, "c2")]),
            "two",
        ]
    )
    agent = Agent(name="turns", model=model, tools=[tools["get_weather"]], max_steps=2)
    app = create_agent_graph(agent).compile(checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "t"}}
    assert app.invoke({"messages": [("user", "a")]}, cfg)["messages"][-1].content == "one"
    assert app.invoke({"messages": [("user", "b")]}, cfg)["messages"][-1].content == "two"


def _refusal(messages: list[object], call_id: str) -> ToolMessage:
    found = [m for m in messages if isinstance(m, ToolMessage) and m.tool_call_id == call_id]
    assert len(found) == 1, f"expected one ToolMessage for {call_id}, got {found}"
    msg = found[0]
    assert msg.status == "error"
    assert msg.artifact == {"error": msg.artifact["error"], "executed": False}
    return msg


@pytest.mark.parametrize(
    ("bad_call", "code", "text"),
    [
        (
            call("send_payment", {"account": "x", "amount": 5}),
            "tool_not_granted",
            "agent 'clerk' is not allowed to call tool 'send_payment'; nothing was run. "
            "Tools granted to 'clerk': get_weather.",
        ),
        (
            call("launch_rocket", {}),
            "unknown_tool",
            "there is no tool named 'launch_rocket'; nothing was run. "
            "Available tools: get_weather.",
        ),
        (
            call("get_weather", {"town": "Oslo"}),
            "unexpected_arguments",
            "tool 'get_weather' does not take argument(s) 'town'",
        ),
        (
            call("get_weather", {"city": "Oslo", "units": "F"}),
            "unexpected_arguments",
            "does not take argument(s) 'units'; nothing was run. Its arguments are: city.",
        ),
        (
            call("get_weather", {"city": ["Oslo"]}),
            "malformed_arguments",
            "invalid arguments for 'get_weather': city: Input should be a valid string",
        ),
        (
            call("get_weather", {}),
            "malformed_arguments",
            "invalid arguments for 'get_weather': city: Field required",
        ),
    ],
)
def test_bad_tool_calls_are_refused_and_never_run(
    tools: dict[str, object], ledger: Ledger, bad_call: dict[str, object], code: str, text: str
) -> None:
    model = ScriptedChatModel([AIMessage("", tool_calls=[bad_call]), "sorry"])
    # send_payment exists in the system (another agent's tool) but is not granted here.
    from podium.agents._loop import build_agent_loop

    agent = Agent(name="clerk", model=model, tools=[tools["get_weather"]])
    app = build_agent_loop(agent, known_tools=["send_payment"]).compile()
    messages = app.invoke({"messages": [("user", "go")]})["messages"]
    refusal = _refusal(messages, "call_1")
    assert refusal.artifact["error"] == code
    assert text in refusal.content
    assert ledger.calls == []
    assert messages[-1].content == "sorry"


def test_unparseable_tool_call_gets_an_error(tools: dict[str, object], ledger: Ledger) -> None:
    broken = AIMessage(
        "",
        invalid_tool_calls=[
            invalid_tool_call(
                name="get_weather", args='{"city": "Os', id="bad_1", error="Unterminated string"
            )
        ],
    )
    model = ScriptedChatModel([broken, "retrying later"])
    messages = run(Agent(name="w", model=model, tools=[tools["get_weather"]]))
    refusal = _refusal(messages, "bad_1")
    assert refusal.artifact["error"] == "invalid_tool_call"
    assert "could not be parsed: Unterminated string" in refusal.content
    assert ledger.calls == []


def test_duplicate_tool_call_ids_run_nothing(tools: dict[str, object], ledger: Ledger) -> None:
    dup = AIMessage(
        "",
        tool_calls=[
            call("get_weather", {"city": "A"}, "same"),
            call("get_weather", {"city": "B"}, "same"),
            call("get_weather", {"city": "C"}, "other"),
        ],
    )
    model = ScriptedChatModel([dup, "done"])
    messages = run(Agent(name="w", model=model, tools=[tools["get_weather"]]))
    refusal = _refusal(messages, "same")
    assert refusal.artifact["error"] == "duplicate_tool_call_id"
    assert "2 tool calls share the id 'same'; none of them was run" in refusal.content
    # the call with a unique id still runs
    assert ledger.calls == [("get_weather", {"city": "C"})]


def test_tool_exception_goes_back_to_model() -> None:
    @tool
    def flaky(x: int) -> str:
        """Always fails."""
        raise RuntimeError("disk full")

    model = ScriptedChatModel([AIMessage("", tool_calls=[call("flaky", {"x": 1})]), "noted"])
    messages = run(Agent(name="w", model=model, tools=[flaky]))
    result = next(m for m in messages if isinstance(m, ToolMessage))
    assert result.status == "error"
    assert "tool 'flaky' failed: RuntimeError: disk full" in result.content
    assert result.artifact == {"error": "tool_failed", "executed": True}
    assert messages[-1].content == "noted"


def test_parallel_tool_calls_each_run_once(tools: dict[str, object], ledger: Ledger) -> None:
    many = AIMessage("", tool_calls=[call("get_weather", {"city": c}, f"c_{c}") for c in "ABC"])
    messages = run(
        Agent(name="w", model=ScriptedChatModel([many, "ok"]), tools=[tools["get_weather"]])
    )
    assert sorted(c[1]["city"] for c in ledger.calls) == ["A", "B", "C"]
    results = [m for m in messages if isinstance(m, ToolMessage)]
    assert sorted(m.tool_call_id for m in results) == ["c_A", "c_B", "c_C"]


async def test_async_invoke_runs_the_same_loop(tools: dict[str, object], ledger: Ledger) -> None:
    model = ScriptedChatModel(
        [AIMessage("", tool_calls=[call("get_weather", {"city": "Rome"})]), "warm"]
    )
    app = create_agent_graph(Agent(name="w", model=model, tools=[tools["get_weather"]])).compile()
    out = await app.ainvoke({"messages": [HumanMessage("Rome?")]})
    assert out["messages"][-1].content == "warm"
    assert ledger.calls == [("get_weather", {"city": "Rome"})]


def test_agent_validation_errors() -> None:
    with pytest.raises(ConfigurationError, match="Invalid agent name 'bad name'"):
        Agent(name="bad name")
    with pytest.raises(ConfigurationError, match="max_steps must be a positive integer"):
        Agent(name="a", max_steps=0)
    with pytest.raises(ConfigurationError, match="tool_calling='xml' is not one of"):
        Agent(name="a", tool_calling="xml")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="has no docstring"):
        Agent(name="a", tools=[lambda x: x])
    with pytest.raises(ConfigurationError, match="expects a podium Agent"):
        create_agent_graph("agent")  # type: ignore[arg-type]


def test_agent_is_frozen_and_normalises_tools() -> None:
    def ping() -> str:
        """Answer pong."""
        return "pong"

    agent = Agent(name="a", tools=[ping])
    assert agent.tool_names == ("ping",)
    with pytest.raises(AttributeError):
        agent.name = "b"  # type: ignore[misc]
