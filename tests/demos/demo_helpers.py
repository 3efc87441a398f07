"""Helpers for the demo tests: a per-agent scripted model and a "process" on a demo."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import SkipValidation

from podium import runs
from podium.checkpoints import sqlite_saver
from podium.demos import Demo
from podium.testing import ScriptedChatModel
from podium.tools import ApprovalRequest, Decision


class ByAgent(BaseChatModel):
    """One script per agent, chosen by the agent making the call.

    Parallel branches and delegations call their models concurrently, so one shared
    script would hand out replies in arrival order; this model gives each agent its
    own :class:`ScriptedChatModel` (podium tags every model call with the agent).
    """

    scripts: Annotated[dict[str, ScriptedChatModel], SkipValidation]

    @classmethod
    def of(cls, scripts: Mapping[str, Sequence[AIMessage | str]]) -> ByAgent:
        return cls(scripts={name: ScriptedChatModel(list(s)) for name, s in scripts.items()})

    @property
    def _llm_type(self) -> str:
        return "by-agent"

    def bind_tools(
        self, tools: Sequence[dict[str, Any] | type | BaseTool | Any], **kwargs: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        agent = (run_manager.metadata if run_manager else {}).get("podium_agent")
        if agent not in self.scripts:
            raise AssertionError(f"unexpected model call by agent {agent!r}")
        return self.scripts[agent]._generate(messages, stop, run_manager, **kwargs)

    def assert_consumed(self) -> None:
        for script in self.scripts.values():
            script.assert_consumed()


def call(name: str, args: dict[str, Any], id_: str) -> dict[str, Any]:
    return {"name": name, "args": args, "id": id_, "type": "tool_call"}


def calls(*items: dict[str, Any]) -> AIMessage:
    return AIMessage("", tool_calls=list(items))


CONFIG: dict[str, Any] = {"configurable": {"thread_id": "demo-1"}}


@dataclass
class Process:
    """One process's view of a demo run: a fresh build, saver and compiled graph."""

    demo: Demo
    home: Path
    model: BaseChatModel | str

    def __post_init__(self) -> None:
        self.saver = sqlite_saver(self.home / "runs.sqlite")
        self.app = self.demo.build(self.home, self.model).compile(checkpointer=self.saver)

    def start(self, request: str | None = None) -> dict[str, Any]:
        text = request or self.demo.default_request
        return dict(self.app.invoke({"messages": [("user", text)]}, CONFIG))

    def pending(self) -> list[ApprovalRequest]:
        return runs.pending(self.app, CONFIG)

    def decide(self, request: ApprovalRequest, decision: Decision) -> dict[str, Any]:
        return runs.decide(self.app, CONFIG, {request.id: decision})

    def close(self) -> None:
        self.saver.close()


OpenDemo = Callable[[str, BaseChatModel | str], Process]
"""``open_demo(name, model)``: a new "process" (build, saver, compiled graph) on a demo."""
