"""The agent loop: model → governed tool step → model … until an answer or a limit.

Built as a LangGraph subgraph from public primitives only: a ``model`` node, a
``tools`` node that receives one ``Send`` per tool call (so parallel calls are
separate tasks with their own interrupts, and a resumed call never re-runs a
sibling), and a conditional edge that routes between them.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Collection, Sequence
from typing import Any

import openai
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import invalid_tool_call
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.graph import END, START
from langgraph.types import Send
from typing_extensions import TypedDict

from podium.agents._models import check_model_spec, is_local_model, resolve_model
from podium.agents._spec import Agent
from podium.agents._structured import (
    FINAL_ANSWER,
    choice_response_format,
    parse_choice,
    render_for_json,
    repeated_call,
)
from podium.checkpoints._messages import Messages
from podium.errors import (
    ConfigurationError,
    MaxStepsExceededError,
    ModelUnavailableError,
    UnknownThreadError,
)
from podium.tools._executor import GovernedExecutor, ToolRequest
from podium.tools._graph import GovernedGraph
from podium.tools._policy import Policy

__all__ = ["AgentState", "build_agent_loop"]


class AgentState(TypedDict):
    """State of one agent's loop: its conversation."""

    messages: Messages
    """The conversation, stored as deltas."""


def _usage_of(exc: openai.LengthFinishReasonError) -> UsageMetadata | None:
    usage = getattr(exc.completion, "usage", None)
    if usage is None:
        return None
    return UsageMetadata(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
    )


def _steps_this_turn(messages: Sequence[AnyMessage]) -> int:
    steps = 0
    for m in reversed(messages):
        if isinstance(m, HumanMessage):
            break
        if isinstance(m, AIMessage):
            steps += 1
    return steps


class _ModelStep:
    """The ``model`` node: one model call, with the model resolved lazily once."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._model: BaseChatModel | None = None
        self._lock = threading.Lock()

    def model(self) -> BaseChatModel:
        with self._lock:
            if self._model is None:
                self._model = resolve_model(self.agent.model, max_tokens=self.agent.max_tokens)
            return self._model

    def _json_mode(self, model: BaseChatModel) -> bool:
        mode = self.agent.tool_calling
        return mode == "json" or (mode == "auto" and is_local_model(model))

    def _prepare(self, state: AgentState) -> tuple[Any, list[Any], bool]:
        messages = state.get("messages") or []
        if not messages:
            raise UnknownThreadError(
                f"Agent {self.agent.name!r} has no messages to answer. If this was a resume "
                "(Command(resume=...) or invoke(None)), the thread has no saved state.",
                fix='Start a run with {"messages": [("user", "...")]}, or check the thread_id '
                "and that the graph uses the same checkpointer (database file).",
            )
        used = _steps_this_turn(messages)
        if used >= self.agent.max_steps:
            raise MaxStepsExceededError(
                f"Agent {self.agent.name!r} made {used} model calls this turn without a final "
                f"answer (max_steps={self.agent.max_steps}).",
                fix="Raise Agent(max_steps=...), give clearer instructions, or check the tool "
                "results the model keeps reacting to.",
            )
        model = self.model()
        tools = list(self.agent.granted_tools)
        if self._json_mode(model):
            # a repeated identical call means the answer is already in the history:
            # only final_answer is offered (the grammar enforces it)
            fmt = choice_response_format([] if repeated_call(messages) else tools)
            prompt = render_for_json(self.agent.instructions, messages, tools)
            return model.bind(response_format=fmt), prompt, True
        system = [SystemMessage(self.agent.instructions)] if self.agent.instructions else []
        runnable: Any = model.bind_tools(tools) if tools else model
        return runnable, [*system, *messages], False

    def _finish(
        self, state: AgentState, reply: Any, json_mode: bool
    ) -> dict[str, list[AnyMessage]]:
        if not isinstance(reply, AIMessage):
            reply = AIMessage(content=str(getattr(reply, "content", reply)))
        if reply.id is None or any(m.id == reply.id for m in state.get("messages") or []):
            # a reply must never replace an earlier message (add_messages merges by id)
            reply = reply.model_copy(update={"id": f"{reply.id or 'ai'}-{uuid.uuid4().hex[:12]}"})
        if json_mode:
            reply = parse_choice(reply)
        calls = [
            {**c, "id": c.get("id") or f"call_{reply.id or 'x'}_{i}"}
            for i, c in enumerate(reply.tool_calls)
        ]
        reply = reply.model_copy(update={"name": self.agent.name, "tool_calls": calls})
        return {"messages": [reply]}

    def _unavailable(self, exc: openai.APIConnectionError) -> ModelUnavailableError:
        where = str(exc.request.url) if exc.request is not None else "its server"
        return ModelUnavailableError(
            f"Agent {self.agent.name!r} could not reach its model at {where}: {exc}. The run "
            "stopped before this model call; its state is saved.",
            fix="Start (or restart) the model server, then resume the thread with "
            "invoke(None, config). For model='local', the embedded server restarts on the "
            "next call.",
        )

    def _cut_off(self, exc: openai.LengthFinishReasonError) -> AIMessage:
        """A JSON reply cut off at ``max_tokens``: an invalid call the model can retry."""
        return AIMessage(
            content="",
            invalid_tool_calls=[
                invalid_tool_call(
                    name=None,
                    args=None,
                    id=f"cut_{uuid.uuid4().hex[:12]}",
                    error=f"the reply was cut off at max_tokens={self.agent.max_tokens} "
                    "before the JSON was complete; reply with a shorter choice",
                )
            ],
            usage_metadata=_usage_of(exc),
        )

    def invoke(self, state: AgentState, config: RunnableConfig) -> dict[str, list[AnyMessage]]:
        runnable, prompt, json_mode = self._prepare(state)
        try:
            reply = runnable.invoke(prompt, config)
        except openai.APIConnectionError as exc:
            raise self._unavailable(exc) from exc
        except openai.LengthFinishReasonError as exc:
            reply = self._cut_off(exc)
        return self._finish(state, reply, json_mode and not getattr(reply, "invalid_tool_calls", None))

    async def ainvoke(
        self, state: AgentState, config: RunnableConfig
    ) -> dict[str, list[AnyMessage]]:
        runnable, prompt, json_mode = self._prepare(state)
        try:
            reply = await runnable.ainvoke(prompt, config)
        except openai.APIConnectionError as exc:
            raise self._unavailable(exc) from exc
        except openai.LengthFinishReasonError as exc:
            reply = self._cut_off(exc)
        return self._finish(state, reply, json_mode and not getattr(reply, "invalid_tool_calls", None))


def route_tool_calls(message: AIMessage, node: str) -> list[Send]:
    """One ``Send`` per tool call of ``message``; flagged calls carry a ``problem``."""
    counts = Counter(c["id"] for c in message.tool_calls)
    sends: list[Send] = []
    seen_dupes: set[str] = set()
    for c in message.tool_calls:
        call_id = c["id"] or ""
        req: ToolRequest = {"name": c["name"], "args": c["args"], "id": call_id}
        if counts[c["id"]] > 1:
            if call_id in seen_dupes:
                continue
            seen_dupes.add(call_id)
            req["problem"] = "duplicate_id"
            req["detail"] = f"{counts[c['id']]} tool calls share the id {call_id!r}"
        sends.append(Send(node, req))
    for i, bad in enumerate(message.invalid_tool_calls):
        bad_id = bad.get("id") or f"invalid_{message.id or 'x'}_{i}"
        sends.append(
            Send(
                node,
                ToolRequest(
                    name=bad.get("name"),
                    args=bad.get("args"),
                    id=bad_id,
                    problem="invalid",
                    detail=bad.get("error") or "unparseable arguments",
                ),
            )
        )
    return sends


def build_agent_loop(
    agent: Agent, *, known_tools: Collection[str] = (), policy: Policy | None = None
) -> GovernedGraph[AgentState, None, AgentState, AgentState]:
    """Build the uncompiled loop graph for one agent.

    Args:
        agent: The agent.
        known_tools: Every tool name in the surrounding system, so calls to tools
            granted to others are refused as *not granted* rather than *unknown*.
        policy: Applied to every tool call (default: allow every granted call).

    Returns:
        An uncompiled ``StateGraph`` with nodes ``model`` and ``tools``.
    """
    check_model_spec(agent.model)
    if agent.tool_calling != "native" and FINAL_ANSWER in agent.tool_names:
        raise ConfigurationError(
            f"Agent {agent.name!r} has a tool named {FINAL_ANSWER!r}, which JSON tool calling "
            "reserves for the final reply.",
            fix="Rename the tool, or set tool_calling='native'.",
        )
    step = _ModelStep(agent)
    executor = GovernedExecutor(agent.name, agent.granted_tools, known_tools, policy)

    def run_tool(req: ToolRequest, config: RunnableConfig) -> dict[str, list[AnyMessage]]:
        return {"messages": [executor.run(req, config)]}

    async def arun_tool(req: ToolRequest, config: RunnableConfig) -> dict[str, list[AnyMessage]]:
        return {"messages": [await executor.arun(req, config)]}

    def route(state: AgentState) -> list[Send] | str:
        last = state["messages"][-1] if state["messages"] else None
        if isinstance(last, AIMessage) and (last.tool_calls or last.invalid_tool_calls):
            return route_tool_calls(last, "tools")
        return END

    graph: GovernedGraph[AgentState, None, AgentState, AgentState] = GovernedGraph(AgentState)
    graph.add_node("model", RunnableLambda(step.invoke, afunc=step.ainvoke, name="model"))
    graph.add_node("tools", RunnableLambda(run_tool, afunc=arun_tool, name="tools"))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", route, ["tools", END])
    graph.add_edge("tools", "model")
    return graph
