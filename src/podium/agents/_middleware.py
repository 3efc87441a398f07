"""LangChain v1 ``AgentMiddleware`` inside podium's model step: the model-side hooks.

``Agent(middleware=[...])`` takes LangChain's middleware objects (``PIIMiddleware``,
``ModelCallLimitMiddleware``, ``ContextEditingMiddleware``, ``@dynamic_prompt``,
``ModelFallbackMiddleware``, your own subclasses) and runs their model-side hooks in
the one model step of every podium pattern, in LangChain's order:

* ``before_model`` / ``abefore_model``: first to last, before the call. An update is
  applied to the state the next hook and the model see, and saved with the step
  (``messages`` merge by id, as LangChain's). ``jump_to="end"`` skips the model call
  and ends the agent's turn with the messages the hook returned (a call limit's
  notice).
* ``wrap_model_call`` / ``awrap_model_call``: the first middleware is the outermost
  wrapper, as in ``create_agent``. The innermost handler is one attempt of podium's
  model call (native or JSON tool calling, the agent's grants), so a wrapper sees and
  may change ``request.messages``, ``request.system_message`` (a dynamic prompt),
  ``request.model`` and ``request.tools`` (a subset of the grants: the executor
  refuses anything else). podium's own failure ladder (retries, fallbacks,
  escalation) is outside them: each attempt runs the chain again.
* ``after_model`` / ``aafter_model``: last to first, after the reply; updates as for
  ``before_model``.

Refused when the agent is built (:class:`~podium.errors.ConfigurationError`): the
agent-level hooks (``before_agent``, ``after_agent``: a podium agent's turn is a
pattern's business) and the tool-side ones (``wrap_tool_call`` and middleware that
brings ``tools``: every tool call goes through podium's executor -- use
:class:`~podium.middleware.Governed` with ``create_agent`` for the other direction).
An ``after_model`` hook may answer some of the reply's calls itself (error results,
as ``ToolCallLimitMiddleware`` does for calls over its limit): only the others run. It
may end the turn (``jump_to="end"``) once every call has a result and its last message
is a reply without calls; any other jump stops the run with the same error. A
middleware's state fields (``state_schema``) are added to the agent's loop state: they
last for the thread in ``create_agent_graph``
and for the agent's turn inside the other patterns (a member runs in private state).

``langchain`` is imported only when an agent has middleware.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, get_type_hints

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, ToolMessage
from langgraph.runtime import get_runtime

from podium.checkpoints._messages import merge_messages
from podium.errors import ConfigurationError

if TYPE_CHECKING:
    from langchain.agents.middleware import ModelRequest, ModelResponse

__all__ = ["Hooks", "check_middleware", "middleware_fields"]

REFUSED = ("before_agent", "after_agent", "wrap_tool_call")
"""Hooks podium does not run in its agents (each with its ``a``-prefixed twin)."""
LANGCHAIN_KEYS = frozenset({"messages", "jump_to", "structured_response"})
"""``AgentState`` keys of LangChain's that podium's loop state does not take over."""


def _overrides(middleware: Any, hook: str) -> bool:
    from langchain.agents.middleware import AgentMiddleware

    return getattr(type(middleware), hook, None) is not getattr(AgentMiddleware, hook)


def check_middleware(agent: str, middleware: object) -> tuple[Any, ...]:
    """Validate ``Agent(middleware=...)``; return it as a tuple.

    Raises:
        ConfigurationError: An item is not a LangChain ``AgentMiddleware``, two share a
            name, or one implements a hook podium does not run (module docs).
    """
    if isinstance(middleware, str | bytes) or not isinstance(middleware, Sequence):
        raise ConfigurationError(
            f"Agent {agent!r}: middleware must be a list of LangChain AgentMiddleware, got "
            f"{type(middleware).__name__}.",
            fix="Pass middleware=[PIIMiddleware(...), ModelCallLimitMiddleware(...)].",
        )
    items = tuple(middleware)
    if not items:
        return items
    from langchain.agents.middleware import AgentMiddleware

    names: set[str] = set()
    for m in items:
        if not isinstance(m, AgentMiddleware):
            raise ConfigurationError(
                f"Agent {agent!r}: middleware item {m!r} is not a LangChain AgentMiddleware.",
                fix="Pass instances of langchain.agents.middleware classes, or of your own "
                "AgentMiddleware subclass (decorators like @dynamic_prompt return one).",
            )
        for hook in REFUSED:
            if _overrides(m, hook) or _overrides(m, f"a{hook}"):
                where = "tool" if "tool" in hook else "agent"
                raise ConfigurationError(
                    f"Agent {agent!r}: middleware {m.name!r} implements {hook}, which podium "
                    "does not run in its agents: podium runs the model-side hooks "
                    "(before_model, after_model, wrap_model_call)"
                    + (
                        "; every tool call goes through podium's governed executor."
                        if where == "tool"
                        else "; an agent's turn is its pattern's business."
                    ),
                    fix="Remove it from Agent(middleware=...)"
                    + (
                        "; govern tools with Policy/grants (and podium.middleware.Governed "
                        "for LangChain's create_agent)."
                        if where == "tool"
                        else ", or do that work in a pipeline stage or before invoking."
                    ),
                )
        if list(getattr(m, "tools", None) or []):
            raise ConfigurationError(
                f"Agent {agent!r}: middleware {m.name!r} brings tools, which would run outside "
                "the agent's grants.",
                fix="Give the tools to Agent(tools=[...]) instead, where they are governed.",
            )
        if m.name in names:
            raise ConfigurationError(
                f"Agent {agent!r}: two middleware are named {m.name!r}.",
                fix="Each middleware may appear once (LangChain refuses duplicates too).",
            )
        names.add(m.name)
    return items


def middleware_fields(middleware: Sequence[Any]) -> dict[str, Any]:
    """The state fields the middleware declare (``state_schema``), beyond LangChain's own."""
    fields: dict[str, Any] = {}
    for m in middleware:
        schema = getattr(m, "state_schema", None)
        if schema is None:
            continue
        for key, annotation in get_type_hints(schema, include_extras=True).items():
            if key not in LANGCHAIN_KEYS:
                fields[key] = annotation
    return fields


class _Jump(Exception):
    """A ``before_model`` hook ended the turn."""


class Hooks:
    """The model-side hooks of an agent's middleware, run by the model step."""

    def __init__(self, agent: str, middleware: Sequence[Any]) -> None:
        self.agent = agent
        self.middleware = tuple(middleware)
        self.before = [m for m in self.middleware if self._has(m, "before_model")]
        self.after = [m for m in self.middleware if self._has(m, "after_model")]
        self.wrappers = [m for m in self.middleware if self._has(m, "wrap_model_call")]

    def __bool__(self) -> bool:
        return bool(self.middleware)

    @staticmethod
    def _has(m: Any, hook: str) -> bool:
        return _overrides(m, hook) or _overrides(m, f"a{hook}")

    def _sync(self, m: Any, hook: str) -> Callable[..., Any]:
        if not _overrides(m, hook):
            raise ConfigurationError(
                f"Agent {self.agent!r}: middleware {m.name!r} implements only a{hook}, and "
                "this run is synchronous.",
                fix=f"Run the graph with ainvoke/astream, or implement {hook} as well.",
            )
        return getattr(m, hook)  # type: ignore[no-any-return]

    # -- before / after ---------------------------------------------------------------
    def run_before(self, state: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], bool]:
        """Run ``before_model`` hooks: (state they leave, update to save, ended)."""
        view: dict[str, Any] = dict(state)
        update: dict[str, Any] = {}
        runtime = get_runtime()
        for m in self.before:
            result = self._sync(m, "before_model")(view, runtime)
            if self._apply(m, "before_model", result, view, update):
                return view, update, True
        return view, update, False

    async def arun_before(
        self, state: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any], bool]:
        """The asynchronous form of :meth:`run_before`."""
        view: dict[str, Any] = dict(state)
        update: dict[str, Any] = {}
        runtime = get_runtime()
        for m in self.before:
            if _overrides(m, "abefore_model"):
                result = await m.abefore_model(view, runtime)
            else:
                result = m.before_model(view, runtime)
            if self._apply(m, "before_model", result, view, update):
                return view, update, True
        return view, update, False

    def run_after(self, state: Mapping[str, Any], update: dict[str, Any]) -> dict[str, Any]:
        """Run ``after_model`` hooks (last to first) on the state with the step's update."""
        view = self._viewed(state, update)
        runtime = get_runtime()
        for m in reversed(self.after):
            self._apply(m, "after_model", self._sync(m, "after_model")(view, runtime), view, update)
        return update

    async def arun_after(self, state: Mapping[str, Any], update: dict[str, Any]) -> dict[str, Any]:
        """The asynchronous form of :meth:`run_after`."""
        view = self._viewed(state, update)
        runtime = get_runtime()
        for m in reversed(self.after):
            if _overrides(m, "aafter_model"):
                result = await m.aafter_model(view, runtime)
            else:
                result = m.after_model(view, runtime)
            self._apply(m, "after_model", result, view, update)
        return update

    @staticmethod
    def _viewed(state: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
        view = {**state, **{k: v for k, v in update.items() if k != "messages"}}
        view["messages"] = merge_messages(state.get("messages") or [], [update.get("messages")])
        return view

    def _apply(
        self,
        m: Any,
        hook: str,
        result: object,
        view: dict[str, Any],
        update: dict[str, Any],
    ) -> bool:
        """Fold a hook's result into ``view`` and ``update``; whether it ended the turn."""
        if result is None:
            return False
        if not isinstance(result, Mapping):
            raise ConfigurationError(
                f"Agent {self.agent!r}: middleware {m.name!r}.{hook} returned "
                f"{type(result).__name__}; podium takes a dict of state updates or None.",
                fix="Return {'messages': [...], ...} or None (a Command is not supported here).",
            )
        changes = dict(result)
        jump = changes.pop("jump_to", None)
        for key, value in changes.items():
            if key == "messages":
                written = value if isinstance(value, list) else [value]
                view["messages"] = merge_messages(view.get("messages") or [], [written])
                update["messages"] = [*(update.get("messages") or []), *written]
            else:
                view[key] = value
                update[key] = value
        if jump is None:
            return False
        if jump == "end" and hook == "before_model":
            return True
        if jump == "end" and _ends(view.get("messages") or []):
            return True  # every call answered and a closing reply: the loop ends by itself
        raise ConfigurationError(
            f"Agent {self.agent!r}: middleware {m.name!r}.{hook} asked to jump to {jump!r}; "
            "inside podium's model step only before_model may end the turn (jump_to='end'), "
            "or after_model with a closing reply after results for every call.",
            fix="Use a middleware that ends the turn before the model call, or podium's own "
            "limits (Agent(max_steps=...), Budget(model_calls=...)).",
        )

    # -- wrap_model_call --------------------------------------------------------------
    def request(
        self,
        model: Any,
        messages: list[AnyMessage],
        system: str,
        tools: Sequence[Any],
        state: Mapping[str, Any],
    ) -> ModelRequest[Any]:
        """The ``ModelRequest`` the wrappers see."""
        from langchain.agents.middleware import ModelRequest
        from langchain_core.messages import SystemMessage

        return ModelRequest(
            model=model,
            messages=list(messages),
            system_message=SystemMessage(system) if system else None,
            tool_choice=None,
            tools=list(tools),
            response_format=None,
            state=dict(state),  # type: ignore[arg-type]
            runtime=get_runtime(),
        )

    def call(
        self,
        request: ModelRequest[Any],
        innermost: Callable[[ModelRequest[Any]], ModelResponse[Any]],
    ) -> AIMessage:
        """Run the wrappers (the first outermost) around ``innermost``; the reply."""
        handler = innermost
        for m in reversed(self.wrappers):
            handler = _wrapped(self._sync(m, "wrap_model_call"), handler)
        return _reply(handler(request))

    async def acall(
        self,
        request: ModelRequest[Any],
        innermost: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> AIMessage:
        """The asynchronous form of :meth:`call`."""
        handler = innermost
        for m in reversed(self.wrappers):
            if _overrides(m, "awrap_model_call"):
                handler = _awrapped(m.awrap_model_call, handler)
            else:
                handler = _awrapped_sync(m.wrap_model_call, handler)
        return _reply(await handler(request))


def _ends(messages: Sequence[AnyMessage]) -> bool:
    """Whether ``messages`` end with a reply without calls, every earlier call answered."""
    if not messages or not isinstance(messages[-1], AIMessage) or messages[-1].tool_calls:
        return False
    answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    asked = {c["id"] for m in messages if isinstance(m, AIMessage) for c in m.tool_calls}
    return asked <= answered


def _response(result: Any) -> ModelResponse[Any]:
    """A wrapper's result as a ``ModelResponse`` (an ``AIMessage`` or extended one)."""
    from langchain.agents.middleware import ModelResponse
    from langchain.agents.middleware.types import ExtendedModelResponse

    if isinstance(result, ExtendedModelResponse):
        return result.model_response
    if isinstance(result, BaseMessage):
        return ModelResponse(result=[result])
    return result  # type: ignore[no-any-return]


def _wrapped(
    wrapper: Callable[..., Any], inner: Callable[[ModelRequest[Any]], ModelResponse[Any]]
) -> Callable[[ModelRequest[Any]], ModelResponse[Any]]:
    return lambda request: _response(wrapper(request, inner))


def _awrapped(
    wrapper: Callable[..., Awaitable[Any]],
    inner: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
) -> Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]]:
    async def call(request: ModelRequest[Any]) -> ModelResponse[Any]:
        return _response(await wrapper(request, inner))

    return call


def _awrapped_sync(
    wrapper: Callable[..., Any],
    inner: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
) -> Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]]:
    raise ConfigurationError(
        f"middleware {getattr(wrapper, '__self__', wrapper)!r} implements only wrap_model_call, "
        "and this run is asynchronous.",
        fix="Run the graph with invoke/stream, or implement awrap_model_call as well.",
    )


def _reply(response: ModelResponse[Any]) -> AIMessage:
    """The model's reply in a response (its last ``AIMessage``)."""
    for m in reversed(response.result):
        if isinstance(m, AIMessage):
            return m
    raise ConfigurationError(
        "A wrap_model_call middleware returned no AIMessage.",
        fix="Return the handler's ModelResponse (or an AIMessage).",
    )
