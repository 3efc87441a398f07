"""`ScriptedChatModel`: a chat model that replays a script, for tests and notebooks."""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from operator import itemgetter
from typing import Annotated, Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import tool_call
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import (
    Runnable,
    RunnableLambda,
    RunnableMap,
    RunnablePassthrough,
)
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, Field, PrivateAttr, SkipValidation

from podium.testing._errors import ScriptExhaustedError, ScriptNotConsumedError
from podium.testing._structured import OutputSchema, parse_structured

MODEL_NAME = "scripted"
"""The `model_name` reported in every reply's `response_metadata`."""

_CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class ScriptedCall:
    """One call made to a `ScriptedChatModel`.

    Attributes:
        step: The 1-based position in the script of the reply that was returned.
        messages: Copies of the input messages the model received.
        tools: Names of the tools bound to the call (via `bind_tools`), in order.
        kwargs: Every other keyword the call received: `tools` (OpenAI format),
            `tool_choice`, `response_format`, `stop`, or anything passed with
            `.bind(...)`.
        response: The reply returned for this call.
    """

    step: int
    messages: list[BaseMessage]
    tools: list[str]
    kwargs: dict[str, Any]
    response: AIMessage


class ScriptedChatModel(BaseChatModel):
    """A chat model that returns scripted replies in order, and records every call.

    Use it wherever a `BaseChatModel` is accepted, to run agents and graphs without
    a network or a real model:

    ```python
    model = ScriptedChatModel([
        AIMessage("", tool_calls=[tool_call(name="lookup", args={"q": "x"}, id=None)]),
        "The answer is 42.",
    ])
    ...
    model.assert_consumed()
    model.calls[0].tools  # ["lookup"]: the tools bound for the first call
    ```

    Replies:
        A `str` is a plain final answer, `AIMessage(content=str)`. An `AIMessage` is
        copied, never mutated. A reply without an `id` gets `scripted-<n>` and a tool
        call without an id gets `call_<n>_<i>` (`n` the reply's 1-based position in
        the script, `i` the 1-based position of the tool call), so the same script
        always yields the same ids.

    Usage and metadata:
        Every reply carries `response_metadata` with `model_name="scripted"` and
        `finish_reason` (`"tool_calls"` if the reply has tool calls, else `"stop"`;
        keys given in the scripted message win), and `usage_metadata` computed as
        `tokens(text) = ceil(len(text) / 4)`:

        - `input_tokens`: over the concatenated text of all input messages, where a
          message's text is its text content plus, for each of its tool calls,
          `json.dumps(args)`;
        - `output_tokens`: the same over the reply's text content and tool-call args;
        - `total_tokens`: their sum.

        A scripted `AIMessage` that already has `usage_metadata` keeps it, which lets
        a test drive token budgets with exact numbers.

    Concurrency:
        Each call claims the next reply under a lock (never held across an `await`),
        so parallel LangGraph branches, threads and asyncio tasks each get a
        distinct reply. Which branch gets which reply follows the order in which
        the calls arrive.

    Errors:
        A call after the script is used up raises `ScriptExhaustedError`;
        `assert_consumed()` raises `ScriptNotConsumedError`. Both are
        `AssertionError`s.

    Attributes:
        responses: The script, as given (never modified).
        delay: Seconds to sleep before each reply (`asyncio.sleep` in async calls),
            after the reply is claimed; useful to test parallel fan-out timing.
    """

    responses: Annotated[list[AIMessage | str], SkipValidation] = Field(repr=False)
    delay: float = Field(default=0.0, ge=0.0)

    _replies: list[AIMessage] = PrivateAttr(default_factory=list)
    _cursor: int = PrivateAttr(default=0)
    _calls: list[ScriptedCall] = PrivateAttr(default_factory=list)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def __init__(
        self,
        responses: Sequence[AIMessage | str],
        *,
        delay: float = 0.0,
        **kwargs: Any,
    ) -> None:
        """Create a scripted model.

        Args:
            responses: The replies, in the order they are returned. A `str` is a
                plain final answer.
            delay: Seconds to sleep before each reply.
            **kwargs: Other `BaseChatModel` fields (`callbacks`, `tags`, ...).

        Raises:
            TypeError: If `responses` is not a sequence of `AIMessage`s and `str`s.
        """
        if isinstance(responses, str | BaseMessage):
            msg = (
                "ScriptedChatModel takes a sequence of replies, e.g. "
                f"ScriptedChatModel([{responses!r}]), not a single reply."
            )
            raise TypeError(msg)
        script = list(responses)
        for n, reply in enumerate(script, 1):
            if not isinstance(reply, AIMessage | str):
                msg = (
                    f"ScriptedChatModel response #{n} is a {type(reply).__name__}; "
                    f"each response must be an AIMessage or a str (a final answer)."
                )
                raise TypeError(msg)
        super().__init__(responses=script, delay=delay, **kwargs)
        self._replies = [_prepare(reply, n) for n, reply in enumerate(self.responses, 1)]

    @property
    def _llm_type(self) -> str:
        return "scripted-chat-model"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": MODEL_NAME}

    @property
    def calls(self) -> list[ScriptedCall]:
        """The calls made so far, in the order their replies were claimed."""
        with self._lock:
            return list(self._calls)

    @property
    def last_call(self) -> ScriptedCall:
        """The most recent call.

        Raises:
            AssertionError: If the model has not been called yet.
        """
        with self._lock:
            if not self._calls:
                msg = "ScriptedChatModel has not been called yet, so it has no last_call."
                raise AssertionError(msg)
            return self._calls[-1]

    @property
    def remaining(self) -> int:
        """How many scripted replies have not been returned yet."""
        with self._lock:
            return len(self._replies) - self._cursor

    def assert_consumed(self) -> None:
        """Check that every scripted reply was returned.

        Raises:
            ScriptNotConsumedError: If some replies were never requested; the
                message lists them.
        """
        with self._lock:
            cursor, total = self._cursor, len(self._replies)
            unused = list(enumerate(self._replies[cursor:], cursor + 1))
        if not unused:
            return
        listing = "\n".join(f"  #{n}: {_describe_message(m)}" for n, m in unused)
        msg = (
            f"ScriptedChatModel: {len(unused)} of {total} scripted replies were never "
            f"requested (the code under test made {cursor} model call(s)):\n{listing}\n"
            f"Remove them from the script, or find why the code stopped calling the "
            f"model early."
        )
        raise ScriptNotConsumedError(msg)

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools, as a real chat model does; the script stays shared.

        The tools are converted to OpenAI format and passed to every call of the
        returned runnable, which records their names in `ScriptedCall.tools`.
        Binding tools does not change which reply comes next.

        Args:
            tools: Tools in any form LangChain accepts (`BaseTool`, function,
                pydantic model, `TypedDict`, dict).
            tool_choice: Recorded in the call's `kwargs` if given.
            **kwargs: Further keywords, recorded in the call's `kwargs`.

        Returns:
            A runnable binding to this same model.
        """
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | BaseModel]:
        """Return a runnable whose output is the next reply parsed into `schema`.

        If the reply has tool calls, the first tool call's args are the value;
        otherwise its content is decoded as JSON. The value is then validated: a
        pydantic schema yields a model instance, a `TypedDict` or JSON-schema dict
        yields a dict. Failures raise `ScriptedOutputError` naming the script step
        and the failing stage.

        Args:
            schema: A pydantic model class, a `TypedDict` class, or a JSON-schema
                dict (also in OpenAI function or tool form).
            include_raw: If true, return `{"raw": AIMessage, "parsed": value |
                None, "parsing_error": Exception | None}` instead of raising.
            **kwargs: `method` (`"json_schema"`, the default, binds an OpenAI
                `response_format`; `"function_calling"` binds the schema as the
                only tool; `"json_mode"` binds `{"type": "json_object"}`) and
                `strict`. The bound keywords are recorded in `ScriptedCall`.

        Returns:
            The structured-output runnable.

        Raises:
            ValueError: If an unknown keyword or `method` is given.
            TypeError: If the schema is not a supported kind.
        """
        method = kwargs.pop("method", None) or "json_schema"
        strict = kwargs.pop("strict", None)
        if kwargs:
            msg = (
                f"ScriptedChatModel.with_structured_output got unsupported arguments "
                f"{sorted(kwargs)}; allowed: include_raw, method, strict."
            )
            raise ValueError(msg)
        output = OutputSchema.from_schema(schema)
        ls_format = {"kwargs": {"method": method}, "schema": output.tool_definition}
        llm: Runnable[LanguageModelInput, AIMessage]
        if method == "function_calling":
            llm = self.bind_tools(
                [output.tool_definition],
                tool_choice=output.name,
                ls_structured_output_format=ls_format,
            )
        elif method in ("json_schema", "json_mode"):
            response_format: dict[str, Any] = {"type": "json_object"}
            if method == "json_schema":
                json_schema = {"name": output.name, "schema": output.json_schema}
                if strict is not None:
                    json_schema["strict"] = strict
                response_format = {"type": "json_schema", "json_schema": json_schema}
            llm = self.bind(response_format=response_format, ls_structured_output_format=ls_format)
        else:
            msg = (
                f"ScriptedChatModel.with_structured_output got method={method!r}; "
                f"allowed: 'json_schema', 'function_calling', 'json_mode'."
            )
            raise ValueError(msg)
        parser = RunnableLambda(
            partial(parse_structured, schema=output, describe=self._describe_reply)
        )
        if not include_raw:
            return llm | parser
        parse_raw = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        )
        no_parse = RunnablePassthrough.assign(parsed=lambda _: None)
        with_fallback = parse_raw.with_fallbacks([no_parse], exception_key="parsing_error")
        return RunnableMap(raw=llm) | with_fallback

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        reply = self._take(messages, stop, kwargs)
        if self.delay:
            time.sleep(self.delay)
        return ChatResult(generations=[ChatGeneration(message=reply)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        reply = self._take(messages, stop, kwargs)
        if self.delay:
            await asyncio.sleep(self.delay)
        return ChatResult(generations=[ChatGeneration(message=reply)])

    def _take(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> AIMessage:
        """Claim the next reply, record the call, and return a fresh copy."""
        inputs = [m.model_copy(deep=True) for m in messages]
        call_kwargs = dict(kwargs) if stop is None else {**kwargs, "stop": stop}
        tools = [_tool_name(t) for t in kwargs.get("tools") or []]
        with self._lock:
            step = self._cursor + 1
            if step > len(self._replies):
                raise ScriptExhaustedError(self._exhausted_message(inputs))
            self._cursor = step
            reply = _finish(self._replies[step - 1], inputs)
            self._calls.append(ScriptedCall(step, inputs, tools, call_kwargs, reply))
        return reply

    def _exhausted_message(self, messages: list[BaseMessage]) -> str:
        total = len(self._replies)
        shown = messages[-3:]
        lines = "\n".join(f"  {_describe_message(m)}" for m in shown) or "  (none)"
        return (
            f"ScriptedChatModel was called again after its script was used up: "
            f"{total} repl{'y was' if total == 1 else 'ies were'} scripted and all "
            f"have been returned. Last {len(shown)} of {len(messages)} input "
            f"message(s) of the unexpected call:\n{lines}\n"
            f"Add a reply to the script for this call, or find why the code under "
            f"test calls the model again."
        )

    def _describe_reply(self, message: AIMessage) -> str:
        for n, reply in enumerate(self._replies, 1):
            if message.id is not None and reply.id == message.id:
                return f"Scripted reply #{n} of {len(self._replies)} (id {message.id!r})"
        return f"Scripted reply (id {message.id!r})"


def _prepare(reply: AIMessage | str, step: int) -> AIMessage:
    """Copy a scripted reply, filling in deterministic message and tool-call ids."""
    if isinstance(reply, str):
        return AIMessage(content=reply, id=f"scripted-{step}")
    calls = [
        tool_call(name=c["name"], args=c["args"], id=c.get("id") or f"call_{step}_{i}")
        for i, c in enumerate(reply.tool_calls, 1)
    ]
    update = {"id": reply.id or f"scripted-{step}", "tool_calls": calls}
    return reply.model_copy(deep=True, update=update)


def _finish(template: AIMessage, inputs: list[BaseMessage]) -> AIMessage:
    """A fresh copy of `template` with usage and response metadata for one call."""
    finish_reason: Literal["stop", "tool_calls"] = "tool_calls" if template.tool_calls else "stop"
    usage = template.usage_metadata
    if usage is None:
        input_tokens = _tokens("".join(_message_text(m) for m in inputs))
        output_tokens = _tokens(_message_text(template))
        usage = UsageMetadata(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=input_tokens + output_tokens,
        )
    metadata = {
        "model_name": MODEL_NAME,
        "finish_reason": finish_reason,
        **template.response_metadata,
    }
    return template.model_copy(
        deep=True, update={"usage_metadata": usage, "response_metadata": metadata}
    )


def _tokens(text: str) -> int:
    return math.ceil(len(text) / _CHARS_PER_TOKEN)


def _message_text(message: BaseMessage) -> str:
    """A message's text content plus `json.dumps(args)` of each of its tool calls."""
    parts: list[str] = [message.text]
    if isinstance(message, AIMessage):
        parts += [json.dumps(call["args"]) for call in message.tool_calls]
    return "".join(parts)


def _tool_name(tool: Any) -> str:
    if isinstance(tool, dict):
        function = tool.get("function")
        if isinstance(function, dict) and "name" in function:
            return str(function["name"])
        return str(tool.get("name") or tool.get("type") or tool)
    return str(getattr(tool, "name", tool))


def _describe_message(message: BaseMessage | str, limit: int = 200) -> str:
    if isinstance(message, str):
        return repr(_clip(message, limit))
    text = f"[{message.type}] {_clip(message.text, limit)!r}"
    if isinstance(message, AIMessage) and message.tool_calls:
        calls = ", ".join(
            f"{c['name']}({_clip(json.dumps(c['args']), limit)})" for c in message.tool_calls
        )
        text += f" tool_calls: {calls}"
    return text


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
