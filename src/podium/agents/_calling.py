"""How the model step makes one model call: models, instructions, context, tools, middleware.

:class:`ModelCalls` is a base of :class:`~podium.agents._step.ModelStep`: it resolves
the agent's model chain once, builds what a call is sent (the instructions, text or a
function of the state; the context policy's window and summary, a summary call if one
is due; the granted tools, bound natively or as a JSON choice for local models) and
runs one attempt through the middleware's ``wrap_model_call`` chain. The attempt
loop, budgets and failure policy are :mod:`podium.agents._step`'s.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Mapping, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import merge_configs
from langchain_core.tools import BaseTool

from podium.agents._context import (
    ContextCache,
    ContextPlan,
    fallback,
    plan,
    summary_prompt,
    summary_text,
    system_with,
)
from podium.agents._failure import FailurePolicy
from podium.agents._meter import budget_prices
from podium.agents._middleware import Hooks
from podium.agents._models import is_local_model, resolve_model
from podium.agents._spec import Agent
from podium.agents._step_needs import Call, Failed, Need, Prompt, Summarize
from podium.agents._structured import (
    choice_response_format,
    parse_choice,
    render_for_json,
    repeated_call,
)
from podium.errors import ConfigurationError
from podium.observe import emit
from podium.observe._events import PRICES_METADATA

__all__ = ["ModelCalls", "Update"]

Update = dict[str, Any]


class ModelCalls:
    """One model call of an agent's step (see the module docs)."""

    agent: Agent
    policy: FailurePolicy | None
    specs: list[str | BaseChatModel]
    hooks: Hooks | None
    _models: list[BaseChatModel | None]
    _summarizer: BaseChatModel | None
    _lock: threading.Lock

    def model(self, index: int = 0) -> BaseChatModel:
        """The ``index``-th model of the chain (``0``: the agent's own), resolved once."""
        with self._lock:
            found = self._models[index]
            if found is None:
                found = resolve_model(
                    self.specs[index],
                    max_tokens=self.agent.max_tokens,
                    max_retries=0 if self.policy is not None else None,
                )
                self._models[index] = found
            return found

    def _json_mode(self, model: BaseChatModel) -> bool:
        mode = self.agent.tool_calling
        return mode == "json" or (mode == "auto" and is_local_model(model))

    def _bind(
        self,
        index: int,
        messages: list[AnyMessage],
        system: str,
        model: BaseChatModel | None = None,
        tools: Sequence[Any] | None = None,
    ) -> tuple[Any, list[Any], bool]:
        model = model or self.model(index)
        granted = list(self.agent.granted_tools)
        if tools is not None:  # a middleware's choice: a subset of the grants
            names = {t.name for t in tools if isinstance(t, BaseTool)}
            granted = [t for t in granted if t.name in names]
        if self._json_mode(model):
            # a repeated identical call means the answer is already in the history:
            # only final_answer is offered (the grammar enforces it)
            output, parallel = self.agent.output, self.agent.parallel_tool_calls is True
            offered = [] if repeated_call(messages) else granted
            fmt = choice_response_format(offered, output, parallel=parallel)
            prompt = render_for_json(system, messages, granted, output, parallel=parallel)
            return model.bind(response_format=fmt), prompt, True
        head = [SystemMessage(system)] if system else []
        runnable: Any = model
        if granted and self.agent.parallel_tool_calls is False:
            runnable = model.bind_tools(granted, parallel_tool_calls=False)
        elif granted:
            runnable = model.bind_tools(granted)
        return runnable, [*head, *messages], False

    def _instructions(self, state: Mapping[str, Any], config: RunnableConfig) -> str:
        given = self.agent.instructions
        if isinstance(given, str):
            return given
        text = given(state, config)
        if not isinstance(text, str):
            raise ConfigurationError(
                f"Agent {self.agent.name!r}: its instructions function returned "
                f"{type(text).__name__}, not a string.",
                fix="Return the system prompt as a str from instructions(state, config).",
            )
        return text

    def _prompt(
        self, view: Mapping[str, Any], config: RunnableConfig, early: Update
    ) -> Generator[Need, object, Prompt]:
        """Instructions and the context policy: what the model calls of this step see."""
        messages: list[AnyMessage] = list(view.get("messages") or [])
        system = self._instructions(view, config)
        policy = self.agent.context
        if policy is None:
            return Prompt(messages, system, view)
        planned = plan(policy, messages, view.get("context"), system)
        if planned.summarize:
            asked = summary_prompt(planned.summary, planned.summarize)
            outcome = yield Summarize(self.summarizer(), asked, self._tagged(config))
            text = "" if isinstance(outcome, Failed) else summary_text(outcome)
            if text and planned.cache is not None:
                early["context"] = ContextCache(upto=planned.cache["upto"], text=text)
                planned = ContextPlan(planned.window, text, [])
            else:  # trim instead; the history is untouched either way
                error = outcome.error if isinstance(outcome, Failed) else "an empty summary"
                emit(
                    "fallback",
                    {"agent": self.agent.name, "name": "summary", "error": str(error)},
                    config,
                )
                planned = fallback(policy, planned, system)
        return Prompt(planned.window, system_with(system, planned.summary), view)

    def summarizer(self) -> BaseChatModel:
        """The context policy's summary model, resolved once."""
        policy = self.agent.context
        with self._lock:
            if self._summarizer is None:
                spec = policy.summarizer if policy and policy.summarizer else self.specs[0]
                self._summarizer = resolve_model(spec)
            return self._summarizer

    def invoke_model(self, call: Call) -> Any:
        """One attempt: through the middleware's ``wrap_model_call`` chain, if any."""
        if self.hooks is None or not self.hooks.wrappers:
            return self._once(call, None)
        request = self._request(call)
        return self.hooks.call(request, lambda req: _response(self._once(call, req)))

    async def ainvoke_model(self, call: Call) -> Any:
        """:meth:`invoke_model`, awaited."""
        if self.hooks is None or not self.hooks.wrappers:
            return await self._aonce(call, None)
        request = self._request(call)

        async def innermost(req: Any) -> Any:
            return _response(await self._aonce(call, req))

        return await self.hooks.acall(request, innermost)

    def middleware(self) -> Hooks:
        """The agent's middleware hooks (only asked for when it has middleware)."""
        if self.hooks is None:
            raise ConfigurationError(
                f"Agent {self.agent.name!r} has no middleware, yet a middleware step ran.",
                fix="Report this as a podium bug, with the agent's definition.",
            )
        return self.hooks

    def _request(self, call: Call) -> Any:
        prompt = call.prompt
        model = self.model(call.index)
        tools = self.agent.granted_tools
        return self.middleware().request(model, prompt.messages, prompt.system, tools, prompt.state)

    def _bound(self, call: Call, request: Any) -> tuple[Any, list[Any], bool]:
        if request is None:
            return self._bind(call.index, call.prompt.messages, call.prompt.system)
        system = request.system_message.text if request.system_message is not None else ""
        return self._bind(call.index, request.messages, system, request.model, request.tools)

    def _once(self, call: Call, request: Any) -> Any:
        runnable, prompt, json_mode = self._bound(call, request)
        reply = runnable.invoke(prompt, call.config)
        return parse_choice(reply) if json_mode and isinstance(reply, AIMessage) else reply

    async def _aonce(self, call: Call, request: Any) -> Any:
        runnable, prompt, json_mode = self._bound(call, request)
        reply = await runnable.ainvoke(prompt, call.config)
        return parse_choice(reply) if json_mode and isinstance(reply, AIMessage) else reply

    def _tagged(self, config: RunnableConfig) -> RunnableConfig:
        """The call's config: its agent, and the budgets' prices for the run ledger."""
        metadata: dict[str, Any] = {"podium_agent": self.agent.name}
        prices = budget_prices(config, self.agent.budget)
        if prices:
            metadata[PRICES_METADATA] = {n: [p.input, p.output] for n, p in prices.items()}
        return merge_configs(config, {"metadata": metadata})


def _response(reply: Any) -> Any:
    """One attempt's reply as the ``ModelResponse`` a ``wrap_model_call`` handler returns."""
    from langchain.agents.middleware import ModelResponse

    return ModelResponse(result=[reply])
