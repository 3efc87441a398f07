"""LangChain v1 middleware in podium agents, and instructions that are a function.

LangChain's own PIIMiddleware and ModelCallLimitMiddleware run inside a podium handoff
desk; ``@dynamic_prompt`` and ``wrap_model_call`` wrappers shape what the model is sent;
hooks podium does not run are refused when the agent is built. Every assertion reads
what the scripted model really received (``model.calls``).
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain.agents.middleware import (
    AgentMiddleware,
    ModelCallLimitMiddleware,
    ModelRequest,
    PIIMiddleware,
    ToolRetryMiddleware,
    dynamic_prompt,
)
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver

from podium import Agent, ConfigurationError
from podium.graphs import create_agent_graph, create_handoff_graph
from podium.testing import ScriptedChatModel
from podium.tools import tool

CFG: Any = {"configurable": {"thread_id": "t"}}


def seen(model: ScriptedChatModel, i: int) -> str:
    """Everything model call ``i`` was sent, as one text."""
    return "\n".join(str(m.content) for m in model.calls[i].messages)


def handoff(reason: str, target: str = "billing") -> AIMessage:
    call = {"name": f"transfer_to_{target}", "args": {"reason": reason}, "id": "h1"}
    return AIMessage("", tool_calls=[call])


def test_pii_and_a_call_limit_work_inside_a_handoff_desk() -> None:
    lookups: list[str] = []

    @tool(read_only=True)
    def lookup(order_id: str) -> str:
        """Look up an order."""
        lookups.append(order_id)
        return f"{order_id}: paid by card 4111-1111-1111-1111"

    triage_model = ScriptedChatModel([handoff("refund question")])
    looping = [
        AIMessage("", tool_calls=[{"name": "lookup", "args": {"order_id": "A-1"}, "id": i}])
        for i in ("l1", "l2")
    ]
    billing_model = ScriptedChatModel(looping)
    pii = PIIMiddleware("email", strategy="redact", apply_to_input=True)
    cards = PIIMiddleware("credit_card", strategy="mask", apply_to_tool_results=True)
    limit = ModelCallLimitMiddleware(run_limit=2, exit_behavior="end")
    triage = Agent(name="triage", description="Routes", model=triage_model, middleware=[pii])
    billing = Agent(
        name="billing",
        description="Refunds",
        model=billing_model,
        tools=[lookup],
        middleware=[pii, cards, limit],
    )
    app = create_handoff_graph([triage, billing], default_agent="triage").compile(
        checkpointer=InMemorySaver()
    )
    out = app.invoke({"messages": [("user", "I am alan@example.com, refund A-1")]}, CFG)
    # PII: no model ever saw the address; the tool result's card number was masked
    assert "alan@example.com" not in seen(triage_model, 0)
    assert "[REDACTED_EMAIL]" in seen(triage_model, 0)
    assert "alan@example.com" not in seen(billing_model, 0)
    assert "4111-1111-1111-1111" not in seen(billing_model, 1)
    assert "1111" in seen(billing_model, 1)  # masked to its last digits
    # the call limit: two model calls, then the turn ends with LangChain's notice
    assert len(billing_model.calls) == 2
    billing_model.assert_consumed()
    assert lookups == ["A-1", "A-1"]
    last = out["messages"][-1]
    assert isinstance(last, AIMessage)
    assert "Model call limits exceeded" in str(last.content)
    assert out["active_agent"] == "billing"


def test_a_call_limit_counts_across_turns_of_a_single_agent() -> None:
    model = ScriptedChatModel(["one", "two"])
    limit = ModelCallLimitMiddleware(thread_limit=2, exit_behavior="end")
    app = create_agent_graph(Agent(name="a", model=model, middleware=[limit])).compile(
        checkpointer=InMemorySaver()
    )
    for text in ("first", "second"):
        app.invoke({"messages": [("user", text)]}, CFG)
    out = app.invoke({"messages": [("user", "third")]}, CFG)
    assert "thread limit (2/2)" in str(out["messages"][-1].content)
    assert len(model.calls) == 2
    assert out["thread_model_call_count"] == 2


def test_dynamic_prompt_and_a_wrapper_shape_what_the_model_is_sent() -> None:
    @dynamic_prompt
    def by_length(request: ModelRequest) -> str:
        return f"The user has sent {len(request.messages)} message(s)."

    class OnlyLastMessage(AgentMiddleware):  # type: ignore[type-arg]
        def wrap_model_call(self, request: Any, handler: Any) -> Any:
            return handler(request.override(messages=request.messages[-1:]))

    model = ScriptedChatModel(["ok", "ok again"])
    agent = Agent(
        name="a", instructions="static", model=model, middleware=[by_length, OnlyLastMessage()]
    )
    app = create_agent_graph(agent).compile(checkpointer=InMemorySaver())
    app.invoke({"messages": [("user", "hi")]}, CFG)
    app.invoke({"messages": [("user", "again")]}, CFG)
    system, *rest = model.calls[1].messages
    assert isinstance(system, SystemMessage)
    assert system.content == "The user has sent 3 message(s)."  # outermost saw the history
    assert [m.content for m in rest] == ["again"]  # the inner wrapper cut it
    # the history itself is whole
    assert len(app.get_state(CFG).values["messages"]) == 4


async def test_async_runs_take_the_async_hooks() -> None:
    model = ScriptedChatModel(["fine"])
    pii = PIIMiddleware("email", strategy="block", apply_to_input=True)
    agent = Agent(name="a", model=model, middleware=[pii])
    app = create_agent_graph(agent).compile(checkpointer=InMemorySaver())
    out = await app.ainvoke({"messages": [("user", "nothing personal")]}, CFG)
    assert out["messages"][-1].content == "fine"
    from langchain.agents.middleware.pii import PIIDetectionError

    with pytest.raises(PIIDetectionError):
        await app.ainvoke({"messages": [("user", "write to bob@example.com")]}, CFG)
    assert len(model.calls) == 1


class BeforeAgent(AgentMiddleware):  # type: ignore[type-arg]
    def before_agent(self, state: Any, runtime: Any) -> None:
        return None


class WithTools(AgentMiddleware):  # type: ignore[type-arg]
    def __init__(self) -> None:
        super().__init__()

        @tool
        def extra() -> str:
            """An extra tool."""
            return "x"

        self.tools = [extra]


@pytest.mark.parametrize(
    ("middleware", "message"),
    [
        (ToolRetryMiddleware(), "implements wrap_tool_call"),
        (BeforeAgent(), "implements before_agent"),
        (WithTools(), "brings tools"),
        ("PIIMiddleware", "must be a list"),
        (["not middleware"], "is not a LangChain AgentMiddleware"),
        ([ModelCallLimitMiddleware(run_limit=1)] * 2, "two middleware are named"),
    ],
)
def test_hooks_podium_does_not_run_are_refused_at_build_time(middleware: Any, message: str) -> None:
    items = middleware if isinstance(middleware, list | str) else [middleware]
    with pytest.raises(ConfigurationError, match=message):
        Agent(name="a", model=ScriptedChatModel(["x"]), middleware=items)


def test_a_jump_podium_cannot_honour_stops_with_a_clear_error() -> None:
    class JumpToTools(AgentMiddleware):  # type: ignore[type-arg]
        def after_model(self, state: Any, runtime: Any) -> dict[str, Any]:
            return {"jump_to": "model"}

    agent = Agent(name="a", model=ScriptedChatModel(["x"]), middleware=[JumpToTools()])
    app = create_agent_graph(agent).compile()
    with pytest.raises(ConfigurationError, match="only before_model may end the turn"):
        app.invoke({"messages": [("user", "hi")]})


# -- instructions that are a function ------------------------------------------------------
def test_instructions_may_be_a_function_of_state_and_config() -> None:
    def instructions(state: Any, config: Any) -> str:
        user = config["configurable"]["user"]
        return f"Help {user}; this is message {len(state['messages'])}."

    model = ScriptedChatModel(["hello"])
    app = create_agent_graph(Agent(name="a", instructions=instructions, model=model)).compile()
    app.invoke({"messages": [("user", "hi")]}, {"configurable": {"user": "alan"}})
    system = model.calls[0].messages[0]
    assert isinstance(system, SystemMessage)
    assert system.content == "Help alan; this is message 1."
    assert isinstance(model.calls[0].messages[1], HumanMessage)


@pytest.mark.parametrize(
    ("instructions", "message"),
    [
        (lambda state: "one argument", "cannot be called as instructions\\(state, config\\)"),
        (42, "must be a string or a function"),
    ],
)
def test_bad_instructions_are_refused_when_the_agent_is_built(
    instructions: Any, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Agent(name="a", instructions=instructions)


def test_instructions_that_return_no_text_stop_with_a_clear_error() -> None:
    model = ScriptedChatModel(["x"])
    agent = Agent(name="a", instructions=lambda state, config: None, model=model)  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigurationError, match="returned NoneType, not a string"):
        create_agent_graph(agent).compile().invoke({"messages": [("user", "hi")]})
    assert model.calls == []


def test_middleware_sees_tool_results_paired_with_their_calls() -> None:
    """A wrapper gets the standard messages (JSON tool calling parsed into tool calls)."""
    seen_calls: list[list[str]] = []

    class Spy(AgentMiddleware):  # type: ignore[type-arg]
        def wrap_model_call(self, request: Any, handler: Any) -> Any:
            response = handler(request)
            seen_calls.append([c["name"] for c in response.result[-1].tool_calls])
            return response

    @tool(read_only=True)
    def lookup(q: str) -> str:
        """Look up."""
        return q

    model = ScriptedChatModel(
        [
            '{"tool": "lookup", "args": {"q": "x"}}',
            '{"tool": "final_answer", "args": {"answer": "y"}}',
        ]
    )
    agent = Agent(name="a", model=model, tools=[lookup], tool_calling="json", middleware=[Spy()])
    out = create_agent_graph(agent).compile().invoke({"messages": [("user", "q")]})
    assert seen_calls == [["lookup"], []]
    assert isinstance(out["messages"][2], ToolMessage)
    assert out["messages"][-1].content == "y"


@pytest.mark.parametrize("exit_behavior", ["continue", "end"])
def test_a_tool_call_limit_refuses_the_calls_over_it(exit_behavior: str) -> None:
    from langchain.agents.middleware import ToolCallLimitMiddleware

    lookups: list[str] = []

    @tool(read_only=True)
    def lookup(order_id: str) -> str:
        """Look up an order."""
        lookups.append(order_id)
        return f"{order_id}: shipped"

    calls = [{"name": "lookup", "args": {"order_id": f"A-{i}"}, "id": f"l{i}"} for i in range(3)]
    model = ScriptedChatModel([AIMessage("", tool_calls=calls), "Two of three looked up."])
    limit = ToolCallLimitMiddleware(run_limit=2, exit_behavior=exit_behavior)  # type: ignore[arg-type]
    agent = Agent(name="a", model=model, tools=[lookup], middleware=[limit])
    out = create_agent_graph(agent).compile().invoke({"messages": [("user", "look up")]})
    results = {m.tool_call_id: m for m in out["messages"] if isinstance(m, ToolMessage)}
    assert set(results) == {"l0", "l1", "l2"}  # every call answered: a valid history
    assert results["l2"].status == "error"
    if exit_behavior == "continue":
        assert lookups == ["A-0", "A-1"]  # the call over the limit did not run
        assert out["messages"][-1].content == "Two of three looked up."
    else:
        assert lookups == []  # the turn ended: no call of the batch ran
        assert "limit" in str(out["messages"][-1].content)
        assert len(model.calls) == 1


def test_context_editing_clears_old_tool_results_only_in_what_the_model_is_sent() -> None:
    from langchain.agents.middleware import ClearToolUsesEdit, ContextEditingMiddleware

    @tool(read_only=True)
    def lookup(order_id: str) -> str:
        """Look up an order."""
        return f"{order_id}: " + "details " * 40

    asks = [
        AIMessage(
            "", tool_calls=[{"name": "lookup", "args": {"order_id": f"A-{i}"}, "id": f"c{i}"}]
        )
        for i in range(3)
    ]
    model = ScriptedChatModel([*asks, "done"])
    editing = ContextEditingMiddleware(edits=[ClearToolUsesEdit(trigger=100, keep=1)])
    agent = Agent(name="a", model=model, tools=[lookup], middleware=[editing])
    out = create_agent_graph(agent).compile().invoke({"messages": [("user", "look")]})
    sent = [m for m in model.calls[-1].messages if isinstance(m, ToolMessage)]
    assert [m.content.startswith("A-") for m in sent] == [False, False, True]  # cleared
    kept = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert all(m.content.startswith(f"A-{i}: details") for i, m in enumerate(kept))
