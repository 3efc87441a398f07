"""The implementation of :mod:`podium.middleware` (see there)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

from langchain.agents.middleware import AgentMiddleware, AgentState
from langchain.agents.middleware.types import ModelRequest, ModelResponse, ToolCallRequest
from langchain_core.messages import AIMessage, AnyMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import merge_configs
from langchain_core.tools import BaseTool
from langgraph.constants import CONFIG_KEY_CHECKPOINTER
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode
from langgraph.runtime import Runtime
from langgraph.types import Command

from podium.checkpoints._ledger import ToolLedger
from podium.checkpoints._messages import edited_calls
from podium.errors import ConfigurationError, UnknownThreadError
from podium.graphs._members import Inventory, check_rule_names
from podium.tools._app import EFFECTS_KEY, GovernedApp
from podium.tools._decisions import LEDGER_KEY
from podium.tools._decorator import traits_of
from podium.tools._executor import GovernedExecutor
from podium.tools._graph import governed_app, ledger_for, run_ledger_for
from podium.tools._policy import Policy
from podium.tools._requests import ToolRequest

__all__ = ["Governed", "RepeatedCallError", "govern"]

_SAME: Any = object()

ToolResult = ToolMessage | Command[Any]


class Governed(AgentMiddleware[AgentState[Any], Any, Any]):
    """podium's governed tool execution as a LangChain v1 ``AgentMiddleware``.

    Args:
        policy: Rules for every tool call (:class:`~podium.Policy`; default: allow
            every granted, well-formed call). A rule naming a tool or an agent the
            agent does not have is a :class:`~podium.errors.ConfigurationError` at
            its first tool call (``create_agent`` shows middleware its tools only
            then).
        grants: The tools (names or tool objects) the agent may run; calls to the
            agent's other tools are refused as *not granted*. ``None``: every tool
            given to ``create_agent``.
        agent: The agent's name in requests, events and ``Rule(agent=...)``
            (default: ``create_agent``'s ``name=``, else ``"agent"``).
        tool_timeout: Seconds a tool call may run (as ``FailurePolicy(tool_timeout=)``:
            a call that outlives it is in doubt, not failed).

    Raises:
        ConfigurationError: For a policy that is not a podium ``Policy``, grants that
            are not names or tools, or a non-positive timeout.
    """

    def __init__(
        self,
        *,
        policy: Policy | None = None,
        grants: Sequence[str | BaseTool] | None = None,
        agent: str | None = None,
        tool_timeout: float | None = None,
    ) -> None:
        super().__init__()
        if policy is not None and not isinstance(policy, Policy):
            raise ConfigurationError(
                f"Governed: policy must be a podium Policy, got {type(policy).__name__}.",
                fix="Pass Policy(rules=[Rule(...)]) from podium.",
            )
        if grants is not None and (
            isinstance(grants, str) or not all(isinstance(g, str | BaseTool) for g in grants)
        ):
            raise ConfigurationError(
                f"Governed: grants must be a list of tool names or tools, got {grants!r}.",
                fix='Pass grants=["lookup", "issue_refund"], or leave it None to grant every '
                "tool given to create_agent.",
            )
        if tool_timeout is not None and not (
            isinstance(tool_timeout, int | float) and tool_timeout > 0
        ):
            raise ConfigurationError(
                f"Governed: tool_timeout must be a positive number of seconds, got "
                f"{tool_timeout!r}.",
                fix="Pass tool_timeout=30, or None for no limit.",
            )
        self.policy = policy
        self.grants = (
            None
            if grants is None
            else tuple(g.name if isinstance(g, BaseTool) else g for g in grants)
        )
        self.agent = agent
        self.tool_timeout = tool_timeout
        self._executors: dict[tuple[str, tuple[str, ...]], GovernedExecutor] = {}
        self._lock = threading.Lock()

    # -- the tool-call hook -------------------------------------------------------------
    def wrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], ToolResult]
    ) -> ToolResult:
        """Check, gate and run one tool call through podium's executor."""
        executor, req, config = self._prepare(request)
        ran: list[Command[Any]] = []

        def invoke(call: dict[str, Any], _: RunnableConfig) -> Any:
            return _recorded(handler(_with_args(request, call)), req["id"], ran)

        return _answer(executor.run(req, config, invoke=invoke), ran)

    async def awrap_tool_call(
        self,
        request: ToolCallRequest,
        handler: Callable[[ToolCallRequest], Awaitable[ToolResult]],
    ) -> ToolResult:
        """The asynchronous form of :meth:`wrap_tool_call`."""
        executor, req, config = self._prepare(request)
        ran: list[Command[Any]] = []

        async def ainvoke(call: dict[str, Any], _: RunnableConfig) -> Any:
            return _recorded(await handler(_with_args(request, call)), req["id"], ran)

        return _answer(await executor.arun(req, config, ainvoke=ainvoke), ran)

    # -- before each model call ---------------------------------------------------------
    def before_model(self, state: AgentState[Any], runtime: Runtime[Any]) -> dict[str, Any] | None:
        """Show the model the calls that ran (after edits); refuse an empty thread.

        Raises:
            UnknownThreadError: The state has no messages (a resume of a thread that
                has no saved state).
        """
        messages: list[AnyMessage] = list(state.get("messages") or [])
        if not messages:
            raise UnknownThreadError(
                "The agent has no messages to answer. If this was a resume "
                "(Command(resume=...) or invoke(None)), the thread has no saved state.",
                fix='Start a run with {"messages": [("user", "...")]}, or check the thread_id '
                "and that the agent uses the same checkpointer (database file).",
            )
        rewritten = edited_calls(messages)
        return {"messages": rewritten} if rewritten else None

    async def abefore_model(
        self, state: AgentState[Any], runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        """The asynchronous form of :meth:`before_model`."""
        return self.before_model(state, runtime)

    # -- the model call -----------------------------------------------------------------
    def wrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], ModelResponse[Any]]
    ) -> ModelResponse[Any]:
        """A reply never replaces an earlier message (as in podium's model step).

        ``add_messages`` merges by id, so a reply that reuses an earlier message's id
        (a scripted model replaying across processes, a provider's cache) would
        overwrite the message that asked for a call -- and its record in the ledger
        would no longer match the history. Such a reply gets a fresh id.
        """
        return _fresh_ids(request, handler(request))

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any]:
        """The asynchronous form of :meth:`wrap_model_call`."""
        return _fresh_ids(request, await handler(request))

    # -- helpers ------------------------------------------------------------------------
    def _prepare(
        self, request: ToolCallRequest
    ) -> tuple[GovernedExecutor, ToolRequest, RunnableConfig]:
        runtime = request.runtime
        config = cast(RunnableConfig, getattr(runtime, "config", None) or {})
        metadata = config.get("metadata") or {}
        agent = self.agent or str(metadata.get("lc_agent_name") or "agent")
        tools = list(getattr(runtime, "tools", None) or [])
        if request.tool is not None and all(t.name != request.tool.name for t in tools):
            tools.append(request.tool)
        executor = self._executor(agent, tools)
        return executor, _tool_request(request), _bound(config)

    def _executor(self, agent: str, tools: Sequence[BaseTool]) -> GovernedExecutor:
        names = tuple(sorted(t.name for t in tools))
        with self._lock:
            found = self._executors.get((agent, names))
            if found is not None:
                return found
            by_name = {t.name: t for t in tools}
            granted = names if self.grants is None else self.grants
            missing = [g for g in granted if g not in by_name]
            if missing:
                raise ConfigurationError(
                    f"Governed grants {missing} to agent {agent!r}, but create_agent was not "
                    f"given such tools (its tools: {', '.join(names) or 'none'}).",
                    fix="Grant only tools passed to create_agent(tools=[...]), by name.",
                )
            held = Inventory(frozenset(names), frozenset({agent}), True)
            check_rule_names("Governed", self.policy, held)
            executor = GovernedExecutor(
                agent,
                [by_name[g] for g in granted],
                names,
                self.policy,
                timeout=self.tool_timeout,
            )
            self._executors[(agent, names)] = executor
            return executor


def _fresh_ids(request: ModelRequest[Any], response: ModelResponse[Any]) -> ModelResponse[Any]:
    taken = {m.id for m in request.state.get("messages") or () if m.id is not None}
    if not any(m.id in taken for m in response.result):
        return response
    result = [
        m.model_copy(update={"id": f"{m.id}-{uuid.uuid4().hex[:12]}"}) if m.id in taken else m
        for m in response.result
    ]
    return ModelResponse(result=result, structured_response=response.structured_response)


def _asking(state: Any, call_id: str) -> AIMessage | None:
    """The ``AIMessage`` in ``state`` that asked for the call ``call_id``."""
    messages = state.get("messages") if isinstance(state, Mapping) else None
    if messages is None:
        messages = getattr(state, "messages", None) or []
    for m in reversed(messages):
        if isinstance(m, AIMessage) and any(c.get("id") == call_id for c in m.tool_calls):
            return m
    return None


def _tool_request(request: ToolCallRequest) -> ToolRequest:
    call = request.tool_call
    call_id = str(call.get("id") or "")
    asked = _asking(request.state, call_id)
    req = ToolRequest(
        name=call.get("name"),
        args=call.get("args"),
        id=call_id,
        message=asked.id if asked is not None else None,
    )
    if asked is not None:
        sharing = sum(1 for c in asked.tool_calls if c.get("id") == call_id)
        if sharing > 1:
            req["problem"] = "duplicate_id"
            req["detail"] = f"{sharing} tool calls share the id {call_id!r}"
    return req


def _bound(config: RunnableConfig) -> RunnableConfig:
    """The run's config with the ledger and run ledger of its checkpointer bound.

    A graph :func:`govern` compiled carries both already; a plain ``create_agent``
    graph's checkpointer is found in the run's config, so the ledger is the one in
    its file or database -- the one ``runs.pending`` / ``runs.decide`` read.
    """
    conf = config.get("configurable") or {}
    saver = conf.get(CONFIG_KEY_CHECKPOINTER)
    if saver is None:  # no checkpointer: nothing can resume, the process-wide ledger
        return config
    extra: dict[str, Any] = {}
    if not isinstance(conf.get(LEDGER_KEY), ToolLedger):
        extra["configurable"] = {LEDGER_KEY: ledger_for(saver)}
    handler = run_ledger_for(saver)  # once: callback managers skip a handler they hold
    if handler is not None:
        extra["callbacks"] = [handler]
    return merge_configs(config, cast(RunnableConfig, extra)) if extra else config


def _with_args(request: ToolCallRequest, call: dict[str, Any]) -> ToolCallRequest:
    """The request with the arguments the executor cleared (validated, maybe edited).

    A tool that may act and is not idempotent runs at most once per cleared call: a
    retry inside the handler (``ToolRetryMiddleware`` listed after ``Governed``) gets
    :class:`RepeatedCallError` instead of a second side effect (LangChain #40688).
    """
    update: dict[str, Any] = {"tool_call": {**request.tool_call, "args": call["args"]}}
    tool = request.tool
    if tool is not None:
        traits = traits_of(tool)
        if not traits.read_only and not traits.idempotent:
            update["tool"] = cast(BaseTool, _RunsOnce(tool))
    return request.override(**update)


class RepeatedCallError(RuntimeError):
    """A retry asked a side-effecting, non-idempotent tool to run a call again."""


class _RunsOnce:
    """A tool that runs once; any further ``invoke`` raises :class:`RepeatedCallError`."""

    def __init__(self, tool: BaseTool) -> None:
        self._tool = tool
        self._ran = False
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tool, name)

    def _first(self) -> None:
        with self._lock:
            ran, self._ran = self._ran, True
        if ran:
            raise RepeatedCallError(
                f"podium ran {self._tool.name!r} once for this call and does not run it "
                "again: it may have taken effect, and it is not idempotent. Nothing was "
                "run this time."
            )

    def invoke(self, *args: Any, **kwargs: Any) -> Any:
        self._first()
        return self._tool.invoke(*args, **kwargs)

    async def ainvoke(self, *args: Any, **kwargs: Any) -> Any:
        self._first()
        return await self._tool.ainvoke(*args, **kwargs)


def _recorded(output: ToolResult, call_id: str, ran: list[Command[Any]]) -> ToolMessage:
    """What the ledger records for a call: a tool's ``Command`` is kept to return."""
    if not isinstance(output, Command):
        return output
    ran.append(output)
    update = output.update if isinstance(output.update, Mapping) else {}
    for m in update.get("messages") or ():
        if isinstance(m, ToolMessage) and m.tool_call_id == call_id:
            return m
    return ToolMessage(content="", tool_call_id=call_id)


def _answer(message: ToolMessage, ran: list[Command[Any]]) -> ToolResult:
    """The executor's message, or the tool's own ``Command`` carrying it."""
    refused = isinstance(message.artifact, dict) and message.artifact.get("executed") is False
    if not ran or refused:
        return message
    command = ran[0]
    update = dict(command.update) if isinstance(command.update, Mapping) else {}
    messages = [
        message if isinstance(m, ToolMessage) and m.tool_call_id == message.tool_call_id else m
        for m in update.get("messages") or ()
    ]
    update["messages"] = messages if messages else [message]
    return Command(update=update, goto=command.goto, graph=command.graph)


def govern(
    app: CompiledStateGraph[Any, Any, Any, Any], *, checkpointer: Any = _SAME
) -> GovernedApp:
    """A compiled ``create_agent`` graph with podium's run-time guarantees.

    Returns podium's ``GovernedApp`` (what podium's own graphs compile to): runs are
    durable by default (``durability="sync"`` when a tool can act), every thread is
    registered for the CLI, input may carry ``messages`` only (no ``jump_to`` or
    other internal keys), new input on a thread that waits for a human is refused
    (or supersedes the requests, opted in), decided requests answer themselves after
    a crash, and model and tool calls are recorded in the run ledger.

    Args:
        app: ``create_agent(..., middleware=[Governed(...), ...])``.
        checkpointer: Another checkpointer to run on (the CLI passes its own saver on
            the same file); default: the graph's own.

    Returns:
        The governed app; ``invoke`` / ``stream`` / ``runs.*`` as usual.

    Raises:
        ConfigurationError: ``app`` is not a compiled graph, or it runs tools without
            :class:`Governed` among its middleware.
    """
    if not isinstance(app, CompiledStateGraph):
        raise ConfigurationError(
            f"govern() takes a compiled graph (what create_agent returns), got "
            f"{type(app).__name__}.",
            fix="Pass create_agent(model, tools, middleware=[Governed(...)], checkpointer=...).",
        )
    nodes = app.builder.nodes
    tool_node = nodes["tools"].runnable if "tools" in nodes else None
    if tool_node is not None and f"{Governed.__name__}.before_model" not in nodes:
        raise ConfigurationError(
            "govern(): this agent runs tools, but Governed is not among its middleware, so "
            "its tool calls would not be governed.",
            fix="Pass create_agent(..., middleware=[Governed(policy=...), ...]).",
        )
    tools = tool_node.tools_by_name.values() if isinstance(tool_node, ToolNode) else ()
    effects = any(not traits_of(t).read_only for t in tools)
    if checkpointer is not _SAME:
        app = app.copy(update={"checkpointer": checkpointer})
    return governed_app(app, app.checkpointer, {EFFECTS_KEY: effects})
