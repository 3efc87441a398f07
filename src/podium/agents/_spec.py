"""The :class:`Agent` specification: who an agent is, what it may do, and its limits."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool
from langchain_core.tools import tool as as_tool
from pydantic import BaseModel

from podium.agents._budget import Budget
from podium.agents._context import ContextPolicy
from podium.agents._failure import FailurePolicy
from podium.errors import ConfigurationError
from podium.observe import price_of
from podium.tools._mcp import MCPServer, mcp_tools

__all__ = ["NAME_PATTERN", "Agent", "Instructions", "ToolCalling", "validate_name"]

Instructions = str | Callable[[Any, Any], str]
"""The system prompt, or a function ``(state, config) -> str`` called before each
model call (the agent's loop state and the run's ``RunnableConfig``)."""

ToolCalling = Literal["native", "json", "auto"]
"""How an agent asks its model for tool calls (see :class:`Agent`)."""

NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,47}$")
"""Agent and tool names: a letter, then letters, digits, ``_`` or ``-`` (48 at most).

The bound keeps ``transfer_to_<name>`` within the 64 characters model APIs allow
for tool names.
"""


def validate_name(name: object, what: str) -> str:
    """Check that ``name`` is a usable agent, stage or tool name.

    Args:
        name: The candidate name.
        what: What is being named, for the error message (``"agent"``, ``"stage"``).

    Returns:
        The name, unchanged.

    Raises:
        ConfigurationError: If the name is not a string matching :data:`NAME_PATTERN`.
    """
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ConfigurationError(
            f"Invalid {what} name {name!r}: names start with a letter and contain only "
            "letters, digits, '_' or '-', at most 48 characters.",
            fix=f"Rename the {what}, e.g. {_suggest(name)!r}.",
        )
    return name


def _suggest(name: object) -> str:
    text = re.sub(r"[^A-Za-z0-9_-]+", "_", str(name)).strip("_-") or "agent"
    if not text[0].isalpha():
        text = f"a_{text}"
    return text[:48]


def _check_instructions(agent: str, instructions: object) -> None:
    """Refuse instructions that are neither text nor a ``(state, config)`` function."""
    if isinstance(instructions, str):
        return
    if not callable(instructions):
        raise ConfigurationError(
            f"Agent {agent!r}: instructions must be a string or a function (state, config) -> "
            f"str, got {type(instructions).__name__}.",
            fix="Pass instructions='...' or instructions=lambda state, config: '...'.",
        )
    try:
        inspect.signature(instructions).bind(None, None)
    except TypeError:
        raise ConfigurationError(
            f"Agent {agent!r}: the instructions function {instructions!r} cannot be called "
            "as instructions(state, config).",
            fix="Define it with two parameters: def instructions(state, config) -> str.",
        ) from None
    except ValueError:  # no signature to read (a builtin): called as is
        return


def _to_tools(item: object, agent: str) -> list[BaseTool]:
    if isinstance(item, MCPServer):  # the server's tools (its session opens now)
        return mcp_tools(item)
    return [_to_tool(item, agent)]


def _to_tool(item: object, agent: str) -> BaseTool:
    if isinstance(item, BaseTool):
        return item
    if callable(item):
        if not getattr(item, "__doc__", None):
            raise ConfigurationError(
                f"Tool {getattr(item, '__name__', item)!r} of agent {agent!r} has no docstring; "
                "the model needs a description to know when to call it.",
                fix="Add a docstring, or decorate it with @podium.tools.tool(description=...).",
            )
        return as_tool(item)
    raise ConfigurationError(
        f"Agent {agent!r} was given {item!r} as a tool; tools are langchain BaseTool objects "
        "or plain functions with a docstring, or MCP servers (podium.tools.MCPServer).",
        fix="Pass a function or a @podium.tools.tool-decorated function.",
    )


@dataclass(frozen=True, kw_only=True)
class Agent:
    """An agent: a model with instructions, granted tools and limits.

    An ``Agent`` is a frozen description; graphs are built from it with
    :func:`podium.graphs.create_agent_graph` or any pattern factory.

    Example:
        >>> from podium import Agent
        >>> Agent(name="billing", description="Refunds and invoices").name
        'billing'
    """

    name: str
    """Unique name within a graph; also names the node and, in a manager, the tool."""
    description: str = ""
    """One line that tells a manager or a handoff peer when to choose this agent."""
    instructions: Instructions = ""
    """The system prompt: how the agent should work. A function ``(state, config) ->
    str`` is called before each model call with the agent's loop state (its
    ``messages``, ``usage``, ...) and the run's config (``config["configurable"]``
    carries per-run values such as a user id), for instructions that depend on them."""
    model: str | BaseChatModel = "default"
    """``"default"``, ``"local"``, ``"openai:<model>"`` or a chat model object."""
    tools: Sequence[BaseTool | Callable[..., Any] | MCPServer] = field(default_factory=tuple)
    """The agent's **grants**: the only tools it can ever run. Functions are wrapped
    with langchain's ``@tool``; their docstring is the description. An
    :class:`~podium.tools.MCPServer` grants every tool it offers (or its ``include=``
    list), as :func:`~podium.tools.mcp_tools` builds them."""
    max_steps: int = 10
    """Model calls allowed per turn before the run stops with
    :class:`~podium.errors.MaxStepsExceededError`."""
    tool_calling: ToolCalling = "auto"
    """``"native"`` uses the provider's tool calling; ``"json"`` asks for a
    JSON-schema-constrained choice ``{tool, args}`` and converts it to standard tool
    calls (for small or local models); ``"auto"`` is ``"json"`` for the local model
    and ``"native"`` otherwise."""
    max_tokens: int | None = None
    """Upper bound on tokens generated per model call (``None``: the model's default)."""
    failure: FailurePolicy | None = None
    """What to do when the model fails: retries, fallback models, an alternate agent,
    a human (:class:`~podium.FailurePolicy`), and model/tool timeouts. ``None``: no
    retries by podium (an unreachable server raises
    :class:`~podium.errors.ModelUnavailableError`, other errors propagate)."""
    budget: Budget | None = None
    """What this agent may use over the whole run (:class:`~podium.Budget`), checked
    before each of its model calls, besides any run or delegation budget."""
    parallel_tool_calls: bool | None = None
    """Whether one reply may call several tools, which then run in parallel. With
    JSON tool calling, ``True`` also accepts ``{"calls": [{"tool", "args"}, ...]}``
    (``None``/``False``: one call per reply); with native tool calling, ``False`` asks
    the provider for one call per reply (``None``/``True``: the provider's default).
    A manager graph sets ``True`` for its manager unless this is ``False``."""
    output: type[BaseModel] | None = None
    """The final answer's type: a JSON object of this pydantic model. With JSON tool
    calling the grammar constrains the answer to the model's schema (small models
    cannot get its shape wrong); a pipeline ``Stage(output=...)`` sets it for its
    agent. Native tool calling leaves the answer to the prompt; the pipeline still
    validates it."""
    middleware: Sequence[Any] = field(default_factory=tuple)
    """LangChain v1 ``AgentMiddleware`` objects whose model-side hooks (``before_model``,
    ``after_model``, ``wrap_model_call``, ``@dynamic_prompt``) run in this agent's model
    step, in every pattern: ``PIIMiddleware``, ``ModelCallLimitMiddleware``,
    ``ContextEditingMiddleware``... Agent-level and tool-side hooks are refused when the
    agent is built (see :mod:`podium.agents._middleware`)."""
    context: ContextPolicy | None = None
    """What the model is sent of a long conversation: trimmed to a token budget, or
    older turns summarised (:class:`~podium.agents.ContextPolicy`); the stored history
    stays whole. ``None``: the whole conversation."""

    def __post_init__(self) -> None:
        """Validate fields and normalise ``tools`` to a tuple of ``BaseTool``."""
        validate_name(self.name, "agent")
        _check_instructions(self.name, self.instructions)
        if self.context is not None and not isinstance(self.context, ContextPolicy):
            raise ConfigurationError(
                f"Agent {self.name!r}: context must be a podium ContextPolicy, got "
                f"{type(self.context).__name__}.",
                fix="Pass context=ContextPolicy(max_tokens=4000) (podium.agents).",
            )
        if self.middleware:
            from podium.agents._middleware import check_middleware

            object.__setattr__(self, "middleware", check_middleware(self.name, self.middleware))
        elif not isinstance(self.middleware, Sequence) or isinstance(self.middleware, str):
            raise ConfigurationError(
                f"Agent {self.name!r}: middleware must be a list of LangChain AgentMiddleware, "
                f"got {self.middleware!r}.",
                fix="Pass middleware=[...] or leave it empty.",
            )
        if not isinstance(self.max_steps, int) or self.max_steps < 1:
            raise ConfigurationError(
                f"Agent {self.name!r}: max_steps must be a positive integer, got "
                f"{self.max_steps!r}.",
                fix="Pass max_steps=10 (the default) or another positive integer.",
            )
        if self.tool_calling not in ("native", "json", "auto"):
            raise ConfigurationError(
                f"Agent {self.name!r}: tool_calling={self.tool_calling!r} is not one of "
                "'native', 'json', 'auto'.",
                fix="Use tool_calling='auto' unless you know the model's tool calling works.",
            )
        if not isinstance(self.model, str | BaseChatModel):
            raise ConfigurationError(
                f"Agent {self.name!r}: model must be a string such as 'local' or "
                f"'openai:gpt-4.1-mini', or a langchain BaseChatModel; got {self.model!r}.",
                fix="Pass model='default' to use OPENAI_API_KEY when set, else the local model.",
            )
        if self.failure is not None and not isinstance(self.failure, FailurePolicy):
            raise ConfigurationError(
                f"Agent {self.name!r}: failure must be a podium FailurePolicy, got "
                f"{type(self.failure).__name__}.",
                fix="Pass failure=FailurePolicy(retries=2, fallbacks=[...]).",
            )
        if self.parallel_tool_calls not in (None, True, False):
            raise ConfigurationError(
                f"Agent {self.name!r}: parallel_tool_calls must be True, False or None, got "
                f"{self.parallel_tool_calls!r}.",
                fix="Leave it None unless the agent should (not) call several tools at once.",
            )
        if self.output is not None and not (
            isinstance(self.output, type) and issubclass(self.output, BaseModel)
        ):
            raise ConfigurationError(
                f"Agent {self.name!r}: output={self.output!r} is not a pydantic model class.",
                fix="Pass a BaseModel subclass, or output=None for a text answer.",
            )
        if self.budget is not None and not isinstance(self.budget, Budget):
            raise ConfigurationError(
                f"Agent {self.name!r}: budget must be a podium Budget, got "
                f"{type(self.budget).__name__}.",
                fix="Pass budget=Budget(output_tokens=2000).",
            )
        if self.budget is not None and self.budget.cost is not None:
            self._check_priced(self.budget)
        if self.failure is not None and self.failure.alternate == self.name:
            raise ConfigurationError(
                f"Agent {self.name!r} names itself as its alternate.",
                fix="Name another agent of the handoff graph, or leave alternate=None.",
            )
        tools = tuple(t for item in self.tools for t in _to_tools(item, self.name))
        seen: set[str] = set()
        for t in tools:
            if t.name in seen:
                raise ConfigurationError(
                    f"Agent {self.name!r} lists tool {t.name!r} twice.",
                    fix="Each tool name may appear once in an agent's tools.",
                )
            seen.add(t.name)
        object.__setattr__(self, "tools", tools)

    def _check_priced(self, budget: Budget) -> None:
        """Refuse a cost budget over a named model with no known price (at build time).

        Only ``"openai:<name>"`` specs name their model here; any other model is
        checked at its first call (:meth:`podium.agents._meter.Meter.refuse_unpriced`).
        """
        specs = [self.model, *(self.failure.fallbacks if self.failure else ())]
        for spec in specs:
            if not (isinstance(spec, str) and spec.startswith("openai:")):
                continue
            name = spec.removeprefix("openai:").strip()
            if name and price_of(name, 0, 0, budget.prices) is None:
                raise ConfigurationError(
                    f"Agent {self.name!r} has a cost limit (budget cost={budget.cost:g}), but "
                    f"its model {spec!r} has no known price, so its calls would count as $0 "
                    "and the limit could never be reached.",
                    fix=f"Give its price in USD per million tokens: Budget(cost=..., prices="
                    f"{{{name!r}: Price(input=..., output=...)}}) (Price(0, 0) if it is free; "
                    "Price is podium.observe.Price), or limit tokens instead of cost.",
                )

    @property
    def tool_names(self) -> tuple[str, ...]:
        """Names of the granted tools, in declaration order."""
        return tuple(t.name for t in self.granted_tools)

    @property
    def granted_tools(self) -> tuple[BaseTool, ...]:
        """The granted tools as ``BaseTool`` objects."""
        return tuple(t for t in self.tools if isinstance(t, BaseTool))
