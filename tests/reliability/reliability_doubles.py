"""Test doubles for the reliability suite: a chat model that fails on cue.

`FlakyChatModel` raises scripted exceptions on chosen calls and otherwise answers
from a `ScriptedChatModel`, so a test decides exactly which attempt fails and how.
The code under test -- podium's failure policy -- is never replaced.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import httpx
import openai
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import PrivateAttr

from podium.testing import ScriptedChatModel

URL = "http://127.0.0.1:9/v1/chat/completions"


def request() -> httpx.Request:
    return httpx.Request("POST", URL)


def rate_limited(retry_after: str | None = None) -> openai.RateLimitError:
    headers = {"retry-after": retry_after} if retry_after else {}
    response = httpx.Response(429, request=request(), headers=headers)
    return openai.RateLimitError("rate limited", response=response, body=None)


def server_error(status: int = 500) -> openai.InternalServerError:
    response = httpx.Response(status, request=request())
    return openai.InternalServerError("server error", response=response, body=None)


def bad_request() -> openai.BadRequestError:
    response = httpx.Response(400, request=request())
    return openai.BadRequestError("bad request", response=response, body=None)


def timed_out() -> openai.APITimeoutError:
    return openai.APITimeoutError(request=request())


def unreachable() -> openai.APIConnectionError:
    return openai.APIConnectionError(request=request())


class FlakyChatModel(BaseChatModel):
    """Fails the calls listed in `failures` (by 0-based call number), else replays a script.

    Args:
        responses: The script for the calls that succeed.
        failures: ``{call number: exception}``; ``"*"`` fails every call.
        delay: Seconds each call sleeps first (for timeouts).
        name_: The ``model_name`` in replies (for costs).
    """

    _inner: ScriptedChatModel = PrivateAttr()
    _failures: dict[int | str, BaseException] = PrivateAttr()
    _delay: float = PrivateAttr(default=0.0)
    _count: int = PrivateAttr(default=0)
    _model_name: str = PrivateAttr(default="scripted")
    _times: list[float] = PrivateAttr(default_factory=list)

    def __init__(
        self,
        responses: Sequence[AIMessage | str] = (),
        failures: dict[int | str, BaseException] | None = None,
        *,
        delay: float = 0.0,
        name_: str = "scripted",
    ) -> None:
        super().__init__()
        self._inner = ScriptedChatModel(responses)
        self._failures = dict(failures or {})
        self._delay = delay
        self._model_name = name_

    @property
    def _llm_type(self) -> str:
        return "flaky-chat-model"

    @property
    def count(self) -> int:
        """How many calls were made (failed ones included)."""
        return self._count

    @property
    def times(self) -> list[float]:
        """When each call started (monotonic seconds)."""
        return list(self._times)

    @property
    def inner(self) -> ScriptedChatModel:
        return self._inner

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[Any, AIMessage]:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        n = self._count
        self._count += 1
        self._times.append(time.monotonic())
        if self._delay:
            time.sleep(self._delay)
        failure = self._failures.get(n) or self._failures.get("*")
        if failure is not None:
            raise failure
        result = self._inner._generate(messages, stop, None, **kwargs)
        for generation in result.generations:
            generation.message.response_metadata["model_name"] = self._model_name
        return result
