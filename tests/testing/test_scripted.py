from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.tool import tool_call
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from pydantic import BaseModel
from typing_extensions import TypedDict

from podium.testing import (
    ScriptedCall,
    ScriptedChatModel,
    ScriptedOutputError,
    ScriptExhaustedError,
    ScriptNotConsumedError,
)


@tool
def lookup(query: str) -> str:
    """Look something up."""
    return f"found {query}"


class Weather(BaseModel):
    """Get the weather for a city."""

    city: str


class Answer(BaseModel):
    answer: str
    confidence: float


class AnswerDict(TypedDict):
    answer: str
    confidence: float


ANSWER_SCHEMA: dict[str, Any] = {
    "title": "Answer",
    "type": "object",
    "properties": {"answer": {"type": "string"}, "confidence": {"type": "number"}},
    "required": ["answer", "confidence"],
    "additionalProperties": False,
}


def calls_to(name: str, *args: dict[str, Any], ids: list[str | None] | None = None) -> AIMessage:
    ids = ids or [None] * len(args)
    return AIMessage(
        content="",
        tool_calls=[tool_call(name=name, args=a, id=i) for a, i in zip(args, ids, strict=True)],
    )


# --- replies -------------------------------------------------------------------------


def test_str_reply_is_a_plain_final_answer() -> None:
    model = ScriptedChatModel(["Hello there."])

    reply = model.invoke("hi")

    assert isinstance(reply, AIMessage)
    assert reply.content == "Hello there."
    assert reply.tool_calls == []
    assert reply.id == "scripted-1"
    assert reply.response_metadata["model_name"] == "scripted"
    assert reply.response_metadata["finish_reason"] == "stop"


def test_replies_come_back_in_script_order() -> None:
    model = ScriptedChatModel(["one", "two", "three"])

    assert [model.invoke("q").content for _ in range(3)] == ["one", "two", "three"]


def test_tool_calls_get_deterministic_ids_and_the_script_is_not_mutated() -> None:
    script = [calls_to("lookup", {"query": "a"}, {"query": "b"}), "done"]

    first = ScriptedChatModel(script).invoke("q")
    second = ScriptedChatModel(script).invoke("q")

    assert [c["id"] for c in first.tool_calls] == ["call_1_1", "call_1_2"]
    assert first.tool_calls == second.tool_calls
    assert first.id == second.id == "scripted-1"
    assert all(c["type"] == "tool_call" for c in first.tool_calls)
    assert first.response_metadata["finish_reason"] == "tool_calls"
    original = script[0]
    assert isinstance(original, AIMessage)
    assert original.id is None
    assert [c["id"] for c in original.tool_calls] == [None, None]
    assert original.usage_metadata is None
    assert original.response_metadata == {}


def test_ids_given_in_the_script_are_kept() -> None:
    reply = calls_to("lookup", {"query": "a"}, {"query": "b"}, ids=["mine", None])
    reply.id = "msg-7"
    model = ScriptedChatModel(["first", reply])
    model.invoke("q")

    returned = model.invoke("q")

    assert returned.id == "msg-7"
    assert [c["id"] for c in returned.tool_calls] == ["mine", "call_2_2"]


def test_each_call_returns_a_fresh_message() -> None:
    model = ScriptedChatModel(["x"])
    reply = model.invoke("q")
    reply.content = "changed by the caller"

    assert model.last_call.response.content == "changed by the caller"
    assert model.responses == ["x"]


def test_rejects_a_single_reply_instead_of_a_sequence() -> None:
    with pytest.raises(TypeError, match="sequence of replies"):
        ScriptedChatModel("hello")
    with pytest.raises(TypeError, match=r"response #2 is a int"):
        ScriptedChatModel(["ok", 3])  # type: ignore[list-item]


# --- tools and bound kwargs ------------------------------------------------------------


def test_bind_tools_records_tool_names_and_shares_the_script() -> None:
    model = ScriptedChatModel([calls_to("lookup", {"query": "a"}), "final"])
    with_tools = model.bind_tools([lookup, Weather], tool_choice="auto")

    with_tools.invoke("q")
    model.invoke("q")

    assert model.remaining == 0
    first, second = model.calls
    assert first.tools == ["lookup", "Weather"]
    assert first.kwargs["tool_choice"] == "auto"
    assert [t["function"]["name"] for t in first.kwargs["tools"]] == ["lookup", "Weather"]
    assert second.tools == []
    assert "tools" not in second.kwargs


def test_kwargs_passed_with_bind_are_recorded() -> None:
    model = ScriptedChatModel(["{}"])
    response_format = {"type": "json_object"}

    model.bind(response_format=response_format, stop=["END"]).invoke("q")

    assert model.last_call.kwargs == {"response_format": response_format, "stop": ["END"]}


def test_works_as_the_model_of_a_langgraph_tool_loop() -> None:
    model = ScriptedChatModel([calls_to("lookup", {"query": "podium"}), "It is found."])
    bound = model.bind_tools([lookup])
    graph = StateGraph(MessagesState)
    graph.add_node("agent", lambda state: {"messages": [bound.invoke(state["messages"])]})
    graph.add_node("tools", ToolNode([lookup]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")

    result = graph.compile().invoke({"messages": [("user", "find podium")]})

    assert result["messages"][-1].content == "It is found."
    tool_message = result["messages"][2]
    assert isinstance(tool_message, ToolMessage)
    assert tool_message.content == "found podium"
    assert tool_message.tool_call_id == "call_1_1"
    assert [m.type for m in model.calls[1].messages] == ["human", "ai", "tool"]
    model.assert_consumed()


# --- structured output -------------------------------------------------------------------


def test_structured_output_pydantic_from_tool_call_args() -> None:
    model = ScriptedChatModel([calls_to("Answer", {"answer": "42", "confidence": 0.9})])

    result = model.with_structured_output(Answer).invoke("q")

    assert result == Answer(answer="42", confidence=0.9)


def test_structured_output_pydantic_from_json_content() -> None:
    model = ScriptedChatModel(['```json\n{"answer": "42", "confidence": 1}\n```'])

    result = model.with_structured_output(Answer).invoke("q")

    assert result == Answer(answer="42", confidence=1.0)
    assert model.last_call.kwargs["response_format"]["json_schema"]["name"] == "Answer"


def test_structured_output_typeddict_and_json_schema_give_dicts() -> None:
    model = ScriptedChatModel(['{"answer": "a", "confidence": 0.5}'] * 2)

    as_typeddict = model.with_structured_output(AnswerDict).invoke("q")
    as_schema = model.with_structured_output(ANSWER_SCHEMA).invoke("q")

    assert as_typeddict == as_schema == {"answer": "a", "confidence": 0.5}


def test_structured_output_function_calling_binds_the_schema_as_a_tool() -> None:
    model = ScriptedChatModel([calls_to("Answer", {"answer": "a", "confidence": 0.1})])

    model.with_structured_output(Answer, method="function_calling").invoke("q")

    assert model.last_call.tools == ["Answer"]
    assert model.last_call.kwargs["tool_choice"] == "Answer"


def test_structured_output_reports_invalid_json_with_the_step() -> None:
    model = ScriptedChatModel(["ok", "not json at all"])
    model.invoke("q")

    with pytest.raises(ScriptedOutputError) as info:
        model.with_structured_output(Answer).invoke("q")

    message = str(info.value)
    assert "reply #2 of 2" in message
    assert "parse JSON" in message
    assert "not json at all" in message
    assert "'Answer'" in message


@pytest.mark.parametrize("schema", [Answer, AnswerDict, ANSWER_SCHEMA])
def test_structured_output_reports_schema_mismatch(schema: Any) -> None:
    model = ScriptedChatModel([calls_to("Answer", {"answer": "a"})])

    with pytest.raises(ScriptedOutputError) as info:
        model.with_structured_output(schema).invoke("q")

    message = str(info.value)
    assert "validate" in message
    assert "confidence" in message
    assert "tool call 'Answer'" in message


def test_json_schema_validation_rejects_wrong_types_and_extra_fields() -> None:
    model = ScriptedChatModel(
        [
            '{"answer": 1, "confidence": 0.5}',
            '{"answer": "a", "confidence": 0.5, "extra": true}',
            '{"answer": "a", "confidence": true}',
        ]
    )
    structured = model.with_structured_output(ANSWER_SCHEMA)

    for expected in ("$.answer: expected string", "unexpected field 'extra'", "expected number"):
        with pytest.raises(ScriptedOutputError, match=expected.replace("$", r"\$")):
            structured.invoke("q")


def test_structured_output_include_raw() -> None:
    model = ScriptedChatModel(['{"answer": "a", "confidence": 1}', "oops"])
    structured = model.with_structured_output(Answer, include_raw=True)

    good = structured.invoke("q")
    bad = structured.invoke("q")

    assert isinstance(good, dict)
    assert good["parsed"] == Answer(answer="a", confidence=1)
    assert good["parsing_error"] is None
    assert good["raw"].id == "scripted-1"
    assert isinstance(bad, dict)
    assert bad["parsed"] is None
    assert isinstance(bad["parsing_error"], ScriptedOutputError)
    assert bad["raw"].content == "oops"


def test_structured_output_rejects_unknown_options() -> None:
    model = ScriptedChatModel([])

    with pytest.raises(ValueError, match="allowed: include_raw, method, strict"):
        model.with_structured_output(Answer, temperature=0)
    with pytest.raises(ValueError, match="method='xml'"):
        model.with_structured_output(Answer, method="xml")


# --- usage metadata -------------------------------------------------------------------


def test_usage_metadata_is_ceil_of_characters_over_four() -> None:
    model = ScriptedChatModel(["abcdefghi", calls_to("lookup", {"query": "x"})])

    first = model.invoke([SystemMessage("ab"), HumanMessage("cde")])  # 5 chars in, 9 out
    second = model.invoke([HumanMessage("hello"), first])  # 5 + 9 chars in

    assert first.usage_metadata == {"input_tokens": 2, "output_tokens": 3, "total_tokens": 5}
    # output: content "" + '{"query": "x"}' (14 chars) -> 4 tokens
    assert second.usage_metadata == {"input_tokens": 4, "output_tokens": 4, "total_tokens": 8}


def test_tool_call_args_of_input_messages_count_as_input() -> None:
    history = [calls_to("lookup", {"query": "x"}, ids=["c1"])]  # 14 chars of args
    model = ScriptedChatModel([""])

    reply = model.invoke(history)

    assert reply.usage_metadata == {"input_tokens": 4, "output_tokens": 0, "total_tokens": 4}


def test_scripted_usage_metadata_is_kept() -> None:
    usage = {"input_tokens": 1000, "output_tokens": 500, "total_tokens": 1500}
    model = ScriptedChatModel([AIMessage("expensive", usage_metadata=usage)])

    assert model.invoke("q").usage_metadata == usage


# --- recorded calls ---------------------------------------------------------------------


def test_calls_record_copies_of_the_input_messages() -> None:
    question = HumanMessage("what is podium?")
    model = ScriptedChatModel(["a library", "yes"])

    reply = model.invoke([question])
    model.invoke([question, reply, HumanMessage("really?")])
    question.content = "mutated afterwards"

    first, second = model.calls
    assert isinstance(first, ScriptedCall)
    assert (first.step, second.step) == (1, 2)
    assert [m.content for m in first.messages] == ["what is podium?"]
    assert [m.content for m in second.messages] == ["what is podium?", "a library", "really?"]
    assert first.response.content == "a library"
    assert model.last_call is model.calls[-1]


def test_last_call_before_any_call_fails_clearly() -> None:
    with pytest.raises(AssertionError, match="not been called yet"):
        _ = ScriptedChatModel(["x"]).last_call


# --- script exhaustion and consumption ------------------------------------------------


def test_an_extra_call_raises_with_the_script_size_and_last_inputs() -> None:
    model = ScriptedChatModel(["one", "two"])
    model.invoke("first question")
    model.invoke("second question")

    with pytest.raises(ScriptExhaustedError) as info:
        model.invoke([SystemMessage("be brief"), HumanMessage("a third, unexpected question")])

    assert isinstance(info.value, AssertionError)
    message = str(info.value)
    assert "2 replies were scripted" in message
    assert "a third, unexpected question" in message
    assert "[human]" in message
    assert len(model.calls) == 2


def test_assert_consumed_lists_unconsumed_replies() -> None:
    model = ScriptedChatModel(["used", calls_to("lookup", {"query": "never"}), "also never"])
    model.invoke("q")

    with pytest.raises(ScriptNotConsumedError) as info:
        model.assert_consumed()

    assert isinstance(info.value, AssertionError)
    message = str(info.value)
    assert "2 of 3" in message
    assert "#2" in message
    assert 'lookup({"query": "never"})' in message
    assert "#3" in message
    assert "also never" in message
    assert "#1" not in message


def test_assert_consumed_passes_when_every_reply_was_used() -> None:
    model = ScriptedChatModel(["a", "b"])
    model.invoke("q")
    model.invoke("q")

    model.assert_consumed()


# --- async, concurrency and delay -----------------------------------------------------


async def test_ainvoke_and_structured_output_async() -> None:
    model = ScriptedChatModel(["async hello", '{"answer": "a", "confidence": 0.2}'])

    reply = await model.ainvoke("q")
    parsed = await model.with_structured_output(Answer).ainvoke("q")

    assert reply.content == "async hello"
    assert parsed == Answer(answer="a", confidence=0.2)
    assert [c.step for c in model.calls] == [1, 2]


async def test_async_extra_call_raises() -> None:
    model = ScriptedChatModel([])

    with pytest.raises(ScriptExhaustedError, match="0 replies were scripted"):
        await model.ainvoke("q")


def test_concurrent_threads_each_get_a_distinct_reply() -> None:
    n = 24
    model = ScriptedChatModel([f"reply {i}" for i in range(n)])
    barrier = threading.Barrier(n)
    results: list[str] = []
    results_lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        content = str(model.invoke("go").content)
        with results_lock:
            results.append(content)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == sorted(f"reply {i}" for i in range(n))
    assert sorted(c.step for c in model.calls) == list(range(1, n + 1))
    model.assert_consumed()


async def test_concurrent_tasks_each_get_a_distinct_reply() -> None:
    model = ScriptedChatModel([f"reply {i}" for i in range(10)])

    replies = await asyncio.gather(*(model.ainvoke("go") for _ in range(10)))

    assert sorted(str(r.content) for r in replies) == sorted(f"reply {i}" for i in range(10))
    model.assert_consumed()


async def test_delay_is_slept_per_reply_and_overlaps_across_tasks() -> None:
    delay = 0.3
    model = ScriptedChatModel(["a", "b", "c", "d"], delay=delay)

    started = time.perf_counter()
    await asyncio.gather(*(model.ainvoke("q") for _ in range(4)))
    elapsed = time.perf_counter() - started

    assert delay <= elapsed < 4 * delay  # concurrent, not one after another


def test_delay_applies_to_sync_calls() -> None:
    model = ScriptedChatModel(["a"], delay=0.1)

    started = time.perf_counter()
    model.invoke("q")

    assert time.perf_counter() - started >= 0.1


def test_negative_delay_is_rejected() -> None:
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        ScriptedChatModel(["a"], delay=-1)
