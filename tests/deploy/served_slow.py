"""A slow podium agent for the LangGraph Server tests of one run per thread.

Each model call takes two seconds and answers the last question, so a test can
start a second run while the first one still holds its thread.
"""

from __future__ import annotations

import time
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from podium import Agent
from podium.graphs import create_agent_graph


class SlowEcho(BaseChatModel):
    """Answers ``answer to <the last question>`` after two seconds."""

    @property
    def _llm_type(self) -> str:
        return "slow-echo"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        time.sleep(2.0)
        question = next(m for m in reversed(messages) if isinstance(m, HumanMessage))
        reply = AIMessage(f"answer to {question.text}")
        return ChatResult(generations=[ChatGeneration(message=reply)])


graph = create_agent_graph(Agent(name="slow", model=SlowEcho()))
