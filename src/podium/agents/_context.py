"""Context policies: what an agent's model is sent, never what the thread keeps.

``Agent(context=ContextPolicy(max_tokens=4000))`` keeps each model call within a token
budget by sending the model the most recent part of the conversation; with
``summarizer=`` the older part is replaced, in what the model is sent, by a summary
another model wrote. The checkpointed history is never changed: the policy only
chooses the messages of one call. The rules (each one a peer's known failure):

* **A tool call and its result are kept or dropped together.** The conversation is cut
  into units -- an ``AIMessage`` with the ``ToolMessage`` objects answering its calls, or a
  single message -- and only whole units are sent, so no provider sees a result
  without its call or a call without its result (LangChain's SummarizationMiddleware
  cut between them: langchain #34282). The window starts at a user message when one
  fits, and always holds the newest unit, even alone over the budget.
* **Nothing is ever deleted.** A summary is not written into the history: it rides in
  the system prompt of the calls that need it. A summary call that fails (or returns
  nothing) falls back to trimming and the run goes on; the history is untouched
  (SummarizationMiddleware removed the messages before it knew the summary had
  worked: langchain #38867).
* **A summary is reused.** It is cached in the loop state's ``context`` key (the id
  of the last message it covers, and its text), so later calls send the cached summary
  plus the messages after it. When those no longer fit, the summary is extended with
  the messages that must go, and the window shrinks to ``keep`` of the budget, so one
  summary call serves several turns rather than one per call.

Tokens are estimated with LangChain-core's ``count_tokens_approximately`` (about four
characters a token, plus a few per message), over the system prompt, the summary and
the messages; tool schemas are not counted, so leave them room. LangChain-core's
``trim_messages`` is not used for the cut: it trims message by message, and returns
an empty list when the newest turn alone is over the budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.utils import count_tokens_approximately
from typing_extensions import TypedDict

from podium.errors import ConfigurationError

__all__ = ["SUMMARY_HEADER", "ContextCache", "ContextPlan", "ContextPolicy", "units"]

SUMMARY_HEADER = "Summary of the earlier conversation (older messages are not shown):"
"""How the summary is introduced in the system prompt."""

SUMMARIZE_PROMPT = (
    "You summarise a conversation for the assistant that continues it. Keep what it needs: "
    "facts, names, ids, numbers, decisions, what tools returned, and requests still open. "
    "Write plain prose, as short as you can."
)


class ContextCache(TypedDict):
    """The cached summary, in the loop state's ``context`` key."""

    upto: str
    """The id of the last message the summary covers."""
    text: str
    """The summary."""


@dataclass(frozen=True, kw_only=True)
class ContextPolicy:
    """What an agent's model is sent of a long conversation (module docs).

    Example:
        >>> from podium import Agent
        >>> from podium import ContextPolicy
        >>> Agent(name="desk", context=ContextPolicy(max_tokens=4000)).context.max_tokens
        4000
    """

    max_tokens: int
    """The budget of one model call: system prompt, summary and messages."""
    summarizer: str | BaseChatModel | None = None
    """A model (spec or object) that summarises the older messages; ``None`` trims."""
    keep: float = 0.5
    """After a summary, the share of ``max_tokens`` the recent messages fill (the rest
    is room for the turns to come before the next summary)."""

    def __post_init__(self) -> None:
        """Validate the fields."""
        if (
            not isinstance(self.max_tokens, int)
            or isinstance(self.max_tokens, bool)
            or self.max_tokens < 100
        ):
            raise ConfigurationError(
                f"ContextPolicy: max_tokens must be an integer of at least 100, got "
                f"{self.max_tokens!r}.",
                fix="Pass the model's context budget, e.g. ContextPolicy(max_tokens=4000).",
            )
        if not isinstance(self.keep, int | float) or not 0.1 <= self.keep <= 0.9:
            raise ConfigurationError(
                f"ContextPolicy: keep must be between 0.1 and 0.9, got {self.keep!r}.",
                fix="Leave keep=0.5 unless summaries come too often (lower) or too early.",
            )
        if self.summarizer is not None and not isinstance(self.summarizer, str | BaseChatModel):
            raise ConfigurationError(
                f"ContextPolicy: summarizer must be a model spec or a chat model, got "
                f"{type(self.summarizer).__name__}.",
                fix="Pass summarizer='openai:gpt-4.1-mini', 'local', a BaseChatModel, or None.",
            )


def units(messages: Sequence[AnyMessage]) -> list[list[AnyMessage]]:
    """The conversation cut into units: a call with its results, or a single message.

    A ``ToolMessage`` joins the unit of the ``AIMessage`` that asked for it, so a
    result is never separated from its call (results of parallel calls included).
    """
    found: list[list[AnyMessage]] = []
    asking: dict[str, list[AnyMessage]] = {}
    for m in messages:
        if isinstance(m, ToolMessage) and m.tool_call_id in asking:
            asking[m.tool_call_id].append(m)
            continue
        unit: list[AnyMessage] = [m]
        found.append(unit)
        if isinstance(m, AIMessage):
            for c in m.tool_calls:
                if c.get("id"):
                    asking[str(c["id"])] = unit
    return found


def _tokens(messages: Sequence[BaseMessage]) -> int:
    return int(count_tokens_approximately(list(messages))) if messages else 0


def _system_tokens(text: str) -> int:
    return _tokens([SystemMessage(text)]) if text else 0


@dataclass(frozen=True)
class ContextPlan:
    """What one model call is sent, and whether a summary must be written first."""

    window: list[AnyMessage]
    """The messages sent (whole units)."""
    summary: str | None
    """The summary sent before them (in the system prompt)."""
    summarize: list[AnyMessage]
    """Messages to fold into the summary first (empty: none)."""
    cache: ContextCache | None = None
    """The cache to save once the summary of ``summarize`` is written."""


def _fit(found: list[list[AnyMessage]], budget: int) -> int:
    """Index of the first unit of the newest run of units within ``budget``."""
    start, used = len(found), 0
    for i in range(len(found) - 1, -1, -1):
        cost = _tokens(found[i])
        if start < len(found) and used + cost > budget:
            break
        start, used = i, used + cost
    humans = [i for i in range(start, len(found)) if isinstance(found[i][0], HumanMessage)]
    return humans[0] if humans else start


def _flat(found: Sequence[list[AnyMessage]]) -> list[AnyMessage]:
    return [m for unit in found for m in unit]


def plan(
    policy: ContextPolicy,
    messages: Sequence[AnyMessage],
    cache: ContextCache | None,
    instructions: str,
) -> ContextPlan:
    """What to send: the messages after the cached summary, trimmed or summarised."""
    found = units(messages)
    summary = None
    after = 0
    if cache:
        ids = [unit[-1].id for unit in found]
        if cache.get("upto") in ids:  # the history the summary covers is still there
            after = ids.index(cache["upto"]) + 1
            summary = cache.get("text") or None
    rest = found[after:]
    room = policy.max_tokens - _system_tokens(instructions)
    shown = room - (_system_tokens(f"{SUMMARY_HEADER}\n{summary}") if summary else 0)
    if _tokens(_flat(rest)) <= shown:
        return ContextPlan(_flat(rest), summary, [])
    if policy.summarizer is None:
        return ContextPlan(_flat(rest[_fit(rest, shown) :]), summary, [])
    # room for the new summary (assume it may be as long as a fifth of the budget)
    start = _fit(rest, int(room * policy.keep))
    dropped = _flat(rest[:start])
    if not dropped:
        return ContextPlan(_flat(rest[start:]), summary, [])
    last = dropped[-1].id
    new_cache = ContextCache(upto=str(last), text="") if last is not None else None
    return ContextPlan(_flat(rest[start:]), summary, dropped, new_cache)


def fallback(policy: ContextPolicy, planned: ContextPlan, instructions: str) -> ContextPlan:
    """A failed summary: trim what would have been summarised and shown instead."""
    rest = units([*planned.summarize, *planned.window])
    room = policy.max_tokens - _system_tokens(instructions)
    if planned.summary:
        room -= _system_tokens(f"{SUMMARY_HEADER}\n{planned.summary}")
    return ContextPlan(_flat(rest[_fit(rest, room) :]), planned.summary, [])


def system_with(instructions: str, summary: str | None) -> str:
    """The system prompt with the summary appended."""
    if not summary:
        return instructions
    block = f"{SUMMARY_HEADER}\n{summary}"
    return f"{instructions}\n\n{block}" if instructions else block


def _render(m: BaseMessage) -> str:
    if isinstance(m, HumanMessage):
        return f"user: {m.text}"
    if isinstance(m, ToolMessage):
        return f"tool {m.name or ''} result: {m.text}"
    if isinstance(m, AIMessage):
        calls = "; ".join(f"called {c['name']}({c['args']})" for c in m.tool_calls)
        return f"assistant: {m.text}" + (f" [{calls}]" if calls else "")
    return f"{m.type}: {m.text}"


def summary_prompt(previous: str | None, messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """The summariser's input: the summary so far and the messages to fold in."""
    lines = "\n".join(_render(m) for m in messages)
    earlier = f"Summary so far:\n{previous}\n\n" if previous else ""
    return [
        SystemMessage(SUMMARIZE_PROMPT),
        HumanMessage(f"{earlier}Messages to add:\n{lines}\n\nWrite the updated summary."),
    ]


def summary_text(reply: Any) -> str:
    """The text of the summariser's reply ('' when it wrote none)."""
    text = reply.text if isinstance(reply, BaseMessage) else str(reply or "")
    return text.strip()
