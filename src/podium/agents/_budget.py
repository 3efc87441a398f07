"""Budgets: what a run, an agent or a delegation may spend, and the usage checked against it.

**Where usage lives.** Every podium graph's state has a ``usage`` key
(:class:`Usage`, summed by the reducer :func:`add_usage`): tokens in and out, cost,
model calls and the time of the first call, in total and per agent, plus any
extensions a human granted. A model step writes what its call used. A pattern node
that runs a member (a specialist, a handoff peer, a branch, a stage) folds the
member's ``usage`` into its own state when the member returns, so the top-level
state of a thread holds the whole run's usage -- specialists' private runs included.

**What a model step sees.** Before every model call (retries and fallbacks
included) the step adds what the enclosing graphs have used (passed down in the
config by :func:`member_config`) to its own state's usage and checks every budget
in scope:

* ``budget=`` of any ``create_*_graph`` factory: the whole run (thread), every
  nested member included; nested graphs' budgets apply as well, each in its own
  scope ``run:<graph name>#<digest of the budget>`` -- so a stage named like its
  pipeline keeps its own limit (see :func:`budget_binding`);
* ``Agent(budget=...)``: everything that agent used in the run;
* a manager's ``specialist_budget``: one delegation, from its start.

Parallel branches (and parallel delegations) run at the same time and do not see
each other's usage until they return, so together they can overshoot a budget by
what the concurrent calls use. A call that starts within a budget may end beyond
it (output length is not known in advance); the next call is refused.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass, is_dataclass
from typing import Annotated, Any, Literal, cast

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import merge_configs
from langgraph.channels import DeltaChannel
from typing_extensions import TypedDict

from podium.errors import ConfigurationError
from podium.observe import Price

__all__ = [
    "BUDGET_KEY_PREFIX",
    "GRANTS_KEY",
    "LIMITS",
    "OUTER_KEY",
    "Budget",
    "Limit",
    "OnExhausted",
    "Totals",
    "Usage",
    "UsageChannel",
    "UsageSink",
    "add_usage",
    "budget_binding",
    "budget_digest",
    "collect_usage",
    "grant_config",
    "is_limit_value",
    "member_config",
    "report_usage",
    "usage_of",
    "zero",
]

SINKS_KEY = "__podium_usage_sinks"
"""``configurable`` key: the :class:`UsageSink` objects of the members running now."""

Limit = Literal["input_tokens", "output_tokens", "tokens", "cost", "model_calls", "seconds"]
"""The quantities a :class:`Budget` can limit."""
LIMITS: tuple[Limit, ...] = (
    "input_tokens",
    "output_tokens",
    "tokens",
    "cost",
    "model_calls",
    "seconds",
)
OnExhausted = Literal["stop", "escalate", "raise"]
"""What happens when a budget runs out (see :attr:`Budget.on_exhausted`)."""

BUDGET_KEY_PREFIX = "podium_budget:"
"""``configurable`` keys under which compiled graphs carry their run budgets."""
OUTER_KEY = "podium_outer_usage"
"""``configurable`` key: the usage of the enclosing graphs (see :func:`member_config`)."""
GRANTS_KEY = "podium_grants"
"""``configurable`` key: the delegation budgets in force (see :func:`grant_config`)."""


def is_limit_value(value: object) -> bool:
    """Whether ``value`` can be a limit: a finite, non-negative int or float (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and value >= 0


@dataclass(frozen=True, kw_only=True)
class Budget:
    """Limits on model use, checked before every model call.

    Example:
        >>> Budget(output_tokens=2_000, cost=0.05, on_exhausted="escalate").on_exhausted
        'escalate'
    """

    input_tokens: int | None = None
    """Prompt tokens, summed over calls."""
    output_tokens: int | None = None
    """Generated tokens, summed over calls."""
    tokens: int | None = None
    """Prompt plus generated tokens."""
    cost: float | None = None
    """USD, priced by :func:`podium.observe.price_of`: ``prices`` first, then the free
    models (local and scripted: 0, their tokens count), then genai-prices. A model
    with no known price is refused under a cost limit (``ConfigurationError`` when an
    ``"openai:<name>"`` agent is built, else at its first call) -- never counted as
    free; give it a price in ``prices``."""
    model_calls: int | None = None
    """Requests sent to a model; every retry and fallback attempt counts."""
    seconds: float | None = None
    """Wall-clock seconds since the first model call in scope (for a run: the thread's
    first call; for an agent: its first call; for a delegation: its start). Time
    spent waiting for a human counts; a human can extend it on escalation."""
    on_exhausted: OnExhausted = "stop"
    """``"stop"``: end the agent's turn with a final ``AIMessage`` that names the limit
    (``response_metadata["podium_stop"] == "budget"``); ``"escalate"``: ask a human
    (an :class:`~podium.ApprovalRequest` of kind ``escalation``, tool ``budget``):
    approve grants one more allowance (each exhausted limit grows by its configured
    amount), edit sets new limits (``args={"output_tokens": 5000}``), reject stops
    as ``"stop"`` does, respond stops with the human's message as the answer;
    ``"raise"``: raise :class:`~podium.errors.BudgetExceededError`."""
    prices: Mapping[str, Price] | None = None
    """Prices that win over podium's (USD per million tokens), by model name as the
    provider reports it; ``Price(0, 0)`` declares a model free."""

    def __post_init__(self) -> None:
        """Check every limit is a finite non-negative number and ``on_exhausted`` is known."""
        for name in LIMITS:
            value = getattr(self, name)
            if value is None:
                continue
            if not is_limit_value(value):
                raise ConfigurationError(
                    f"Budget({name}={value!r}): limits are finite non-negative numbers (int or "
                    "float; not NaN, infinity or a bool), or None for no limit.",
                    fix=f"Pass e.g. Budget({name}=1000), or leave {name} out to not limit it.",
                )
        if all(getattr(self, n) is None for n in LIMITS):
            raise ConfigurationError(
                "Budget() sets no limit.",
                fix=f"Set at least one of {', '.join(LIMITS)}, or pass budget=None.",
            )
        if self.on_exhausted not in ("stop", "escalate", "raise"):
            raise ConfigurationError(
                f"Budget(on_exhausted={self.on_exhausted!r}) is not 'stop', 'escalate' or 'raise'.",
                fix="Use 'stop' (end cleanly), 'escalate' (ask a human) or 'raise'.",
            )

    def limit(self, name: Limit) -> float | None:
        """The configured limit for ``name`` (``None``: unlimited)."""
        value: float | None = getattr(self, name)
        return value

    def as_json(self) -> dict[str, float]:
        """The limits that are set, as JSON."""
        return {n: v for n in LIMITS if (v := self.limit(n)) is not None}


class Totals(TypedDict):
    """What was used: one scope's counters."""

    input_tokens: int
    """Prompt tokens."""
    output_tokens: int
    """Generated tokens."""
    cost: float
    """USD."""
    model_calls: int
    """Requests sent (failed attempts included)."""
    started_at: float
    """Epoch seconds of the first model call (``0``: none yet)."""


class Usage(TypedDict, total=False):
    """A graph state's ``usage`` value."""

    total: Totals
    """Everything used in this graph's state (members' runs folded in)."""
    agents: dict[str, Totals]
    """The same, per agent name."""
    extended: dict[str, dict[str, float]]
    """Extensions granted by humans: ``{scope label: {limit: extra amount}}`` (scope
    labels: ``run:<graph>#<digest>``, ``agent:<name>``, ``delegation:<name>:<call>``)."""


def zero() -> Totals:
    """Counters at zero."""
    return Totals(input_tokens=0, output_tokens=0, cost=0.0, model_calls=0, started_at=0.0)


def _add(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> Totals:
    out = zero()
    starts = []
    for part in (a, b):
        if not part:
            continue
        out["input_tokens"] += int(part.get("input_tokens", 0))
        out["output_tokens"] += int(part.get("output_tokens", 0))
        out["cost"] += float(part.get("cost", 0.0))
        out["model_calls"] += int(part.get("model_calls", 0))
        if part.get("started_at"):
            starts.append(float(part["started_at"]))
    out["started_at"] = min(starts) if starts else 0.0
    return out


def add_usage(current: Usage | None, update: Usage | None) -> Usage:
    """The reducer of the ``usage`` key: sums counters, keeps the earliest start."""
    a, b = current or Usage(), update or Usage()
    agents = {
        name: _add((a.get("agents") or {}).get(name), (b.get("agents") or {}).get(name))
        for name in {**(a.get("agents") or {}), **(b.get("agents") or {})}
    }
    extended: dict[str, dict[str, float]] = {}
    for part in (a.get("extended") or {}, b.get("extended") or {}):
        for label, extra in part.items():
            slot = extended.setdefault(label, {})
            for name, amount in extra.items():
                slot[name] = slot.get(name, 0.0) + float(amount)
    out = Usage(total=_add(a.get("total"), b.get("total")))
    if agents:
        out["agents"] = agents
    if extended:
        out["extended"] = extended
    return out


def fold_usage(current: Usage | None, updates: Sequence[Usage | None]) -> Usage:
    """:func:`add_usage` over a batch of updates (the ``usage`` channel's reducer)."""
    out = current or Usage()
    for update in updates:
        out = add_usage(out, update)
    return out


UsageChannel = Annotated[Usage, DeltaChannel(fold_usage, snapshot_frequency=100)]
"""The type of every podium graph's ``usage`` key.

A ``DeltaChannel``: checkpoints store each model call's usage once (as a write),
not the running totals in every checkpoint."""


def budget_digest(budget: Budget) -> str:
    """A short digest of what ``budget`` says: its limits, ``on_exhausted`` and prices.

    The same definition gives the same digest in every process (no salted hashing),
    so a run resumed elsewhere finds the extensions a human granted.
    """
    prices = {
        model: list(astuple(price)) if is_dataclass(price) else repr(price)
        for model, price in sorted((budget.prices or {}).items())
    }
    spec = {
        "limits": {name: float(value) for name, value in budget.as_json().items()},
        "on_exhausted": budget.on_exhausted,
        "prices": prices,
    }
    text = json.dumps(spec, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def budget_binding(factory: str, budget: object, label: str) -> dict[str, Any] | None:
    """Validate a factory's ``budget=`` and return what its compiled graph carries.

    The graph carries its budget under ``podium_budget:<label>#<digest>``, where the
    digest is :func:`budget_digest`. Graphs nest (a pipeline named ``team`` whose
    stage is an agent graph named ``team``) and a member runs with its own
    ``configurable`` merged with its parent's, so a key of the name alone would let
    the outer budget replace the inner one. With the digest, two budgets share a key
    only when they have the same name and say the same thing -- and then they are
    one limit on the same quantity (a run budget counts the whole thread), so
    sharing the key, and the extensions humans grant under it, changes nothing. The
    key depends only on the definition, so it is the same in every process.

    Args:
        factory: The factory's name, for the error message.
        budget: The ``budget=`` argument.
        label: Names the budget (the graph's name); the scope ``run:<label>#<digest>``
            keeps extensions apart from other budgets'.

    Raises:
        ConfigurationError: If ``budget`` is not a :class:`Budget` or ``None``.
    """
    if budget is None:
        return None
    if not isinstance(budget, Budget):
        raise ConfigurationError(
            f"{factory}: budget must be a podium Budget, got {type(budget).__name__}.",
            fix="Pass budget=Budget(tokens=50_000, cost=0.50), or leave it out.",
        )
    return {f"{BUDGET_KEY_PREFIX}{label}#{budget_digest(budget)}": budget}


def usage_of(output: object) -> Usage:
    """The ``usage`` of a member's output state (empty when it has none)."""
    found = output.get("usage") if isinstance(output, Mapping) else None
    return cast(Usage, found) if isinstance(found, Mapping) else Usage()


def _configurable(config: RunnableConfig | None) -> dict[str, Any]:
    return dict((config or {}).get("configurable") or {})


def member_config(config: RunnableConfig, state_usage: Usage | None) -> RunnableConfig:
    """The config to run a member with: the enclosing usage passed down.

    Call it in any node that runs a member graph, with the node's state ``usage``;
    fold the member's output back with ``{"usage": usage_of(output)}``.
    """
    outer = add_usage(_configurable(config).get(OUTER_KEY), state_usage)
    return merge_configs(config, {"configurable": {OUTER_KEY: outer}})


class UsageSink:
    """Collects the usage of every model call made while one member runs.

    A member that fails returns no state, so its usage would be lost with it; the
    node that ran it folds :attr:`usage` instead. Every model call reports to every
    sink in scope, so a sink sees its member's nested members too.
    """

    def __init__(self) -> None:
        self._usage = Usage()
        self._lock = threading.Lock()

    def add(self, delta: Usage) -> None:
        """Count one model call's usage."""
        with self._lock:
            self._usage = add_usage(self._usage, delta)

    @property
    def usage(self) -> Usage:
        """What the member's model calls used so far."""
        with self._lock:
            return self._usage


def collect_usage(config: RunnableConfig) -> tuple[RunnableConfig, UsageSink]:
    """A member config with a new :class:`UsageSink` in scope, and the sink."""
    sink = UsageSink()
    sinks = (*(_configurable(config).get(SINKS_KEY) or ()), sink)
    return merge_configs(config, {"configurable": {SINKS_KEY: sinks}}), sink


def report_usage(config: RunnableConfig | None, delta: Usage) -> None:
    """Report one model call's usage to every sink in scope (see :class:`UsageSink`)."""
    for sink in _configurable(config).get(SINKS_KEY) or ():
        if isinstance(sink, UsageSink):
            sink.add(delta)


def grant_config(
    config: RunnableConfig, label: str, budget: Budget, started_at: float
) -> RunnableConfig:
    """Add a delegation's sub-budget to a member config (after :func:`member_config`).

    Args:
        config: The member config.
        label: A label unique to this delegation (extensions are stored under it).
        budget: What the delegation may use, from its start.
        started_at: When the delegation started (for ``seconds``), stable on resume.
    """
    conf = _configurable(config)
    base = (conf.get(OUTER_KEY) or {}).get("total") or zero()
    grant = {"label": label, "budget": budget, "base": dict(base), "started_at": started_at}
    grants = [*(conf.get(GRANTS_KEY) or ()), grant]
    return merge_configs(config, {"configurable": {GRANTS_KEY: grants}})
