"""The budget meter: every budget in scope of a model step, checked before each call.

See :mod:`podium.agents._budget` for where usage lives and which budgets apply.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig

from podium.agents._budget import (
    BUDGET_KEY_PREFIX,
    GRANTS_KEY,
    LIMITS,
    OUTER_KEY,
    Budget,
    Limit,
    Totals,
    Usage,
    add_usage,
    zero,
)
from podium.errors import ConfigurationError
from podium.observe import DEFAULT_PRICES, Price, price_of

__all__ = ["Exhaustion", "Meter", "extension"]


@dataclass(frozen=True)
class _Scope:
    label: str
    what: str
    budget: Budget
    used: Totals


@dataclass(frozen=True)
class Exhaustion:
    """A budget that ran out: which one, and which limits."""

    label: str
    """The scope's label: ``run:<graph>#<digest>``, ``agent:<name>`` or
    ``delegation:<name>:<call>``; extensions are stored under it."""
    what: str
    """The scope in words, for messages."""
    budget: Budget
    """The budget as configured."""
    exceeded: dict[str, dict[str, float]]
    """``{limit: {"used": ..., "limit": ...}}`` for every exhausted limit."""
    limits: dict[str, float] = field(default_factory=dict)
    """Every effective limit of the scope (configured plus extensions)."""
    used: dict[str, float] = field(default_factory=dict)
    """What is used of every limit in :attr:`limits`, when it ran out."""

    def describe(self) -> str:
        """E.g. ``the run's budget (output_tokens: 1020 of 1000 used)``."""
        parts = ", ".join(
            f"{name}: {_fmt(v['used'])} of {_fmt(v['limit'])} used"
            for name, v in self.exceeded.items()
        )
        return f"{self.what} ({parts})"


def _fmt(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) and not value.is_integer() else f"{value:.0f}"


def _reached(used: float, limit: float) -> bool:
    return used >= limit or math.isclose(used, limit)


def _used(totals: Totals, name: Limit, now: float) -> float:
    if name == "tokens":
        return float(totals["input_tokens"] + totals["output_tokens"])
    if name == "seconds":
        return now - totals["started_at"] if totals["started_at"] else 0.0
    return float(totals[name])


def budget_prices(config: RunnableConfig, own: Budget | None) -> dict[str, Price]:
    """The prices the budgets in force state (``Budget(prices=)``).

    Later ones win: the enclosing graphs' member grants, the run's budgets, then the
    agent's own. The meter prices calls with them, and so does the run ledger (the
    model step passes them in the call's metadata).
    """
    conf = config.get("configurable") or {}
    grants: Sequence[Mapping[str, Any]] = conf.get(GRANTS_KEY) or ()
    runs = [v for k, v in sorted(conf.items()) if k.startswith(BUDGET_KEY_PREFIX)]
    prices: dict[str, Price] = {}
    for b in [*(g["budget"] for g in grants), *runs, *([own] if own else [])]:
        if isinstance(b, Budget):
            prices.update(b.prices or {})
    return prices


class Meter:
    """Every budget in scope of one model step, and the usage to check them against.

    Args:
        agent: The agent making the calls.
        budget: The agent's own budget.
        config: The node's config (run budgets, grants, enclosing usage).
        state_usage: The node's state ``usage``.
    """

    def __init__(
        self,
        agent: str,
        budget: Budget | None,
        config: RunnableConfig,
        state_usage: Usage | None,
    ) -> None:
        conf = dict(config.get("configurable") or {})
        self.agent = agent
        self.base = add_usage(conf.get(OUTER_KEY), state_usage)
        self.runs = sorted(
            (k.removeprefix(BUDGET_KEY_PREFIX), v)
            for k, v in conf.items()
            if k.startswith(BUDGET_KEY_PREFIX) and isinstance(v, Budget)
        )
        self.grants: Sequence[Mapping[str, Any]] = conf.get(GRANTS_KEY) or ()
        self.own = budget
        self.prices: dict[str, Price] = {**DEFAULT_PRICES, **budget_prices(config, budget)}
        self.unpriced: str | None = None
        """The model of the last call recorded, if it has no known price."""

    def _scopes(self, usage: Usage) -> list[_Scope]:
        total = usage.get("total") or zero()
        scopes = []
        for grant in reversed(self.grants):
            base = grant["base"]
            used = Totals(
                input_tokens=total["input_tokens"] - int(base.get("input_tokens", 0)),
                output_tokens=total["output_tokens"] - int(base.get("output_tokens", 0)),
                cost=total["cost"] - float(base.get("cost", 0.0)),
                model_calls=total["model_calls"] - int(base.get("model_calls", 0)),
                started_at=float(grant["started_at"]),
            )
            name = str(grant["label"]).split(":")[1]
            what = f"the delegation budget of {name!r}"
            scopes.append(_Scope(str(grant["label"]), what, grant["budget"], used))
        if self.own is not None:
            mine = (usage.get("agents") or {}).get(self.agent) or zero()
            what = f"agent {self.agent!r}'s budget"
            scopes.append(_Scope(f"agent:{self.agent}", what, self.own, mine))
        for key, budget in self.runs:
            name = key.split("#", 1)[0]  # the graph's name; the digest keeps scopes apart
            scopes.append(_Scope(f"run:{key}", f"the run's budget ({name})", budget, total))
        return scopes

    def exhausted(self, delta: Usage | None = None, now: float | None = None) -> Exhaustion | None:
        """The first budget (innermost first) with a limit used up, if any."""
        usage = add_usage(self.base, delta)
        at = time.time() if now is None else now
        extended = usage.get("extended") or {}
        for scope in self._scopes(usage):
            extra = extended.get(scope.label) or {}
            limits: dict[str, float] = {}
            spent: dict[str, float] = {}
            exceeded: dict[str, dict[str, float]] = {}
            for name in LIMITS:
                configured = scope.budget.limit(name)
                if configured is None:
                    continue
                limit = configured + extra.get(name, 0.0)
                limits[name] = limit
                used = spent[name] = _used(scope.used, name, at)
                if _reached(used, limit):
                    exceeded[name] = {"used": used, "limit": limit}
            if exceeded:
                return Exhaustion(scope.label, scope.what, scope.budget, exceeded, limits, spent)
        return None

    def record(
        self,
        reply: AIMessage | None,
        *,
        started_at: float,
        model: str | None = None,
        free: bool = False,
    ) -> Usage:
        """The usage of one model attempt (``reply`` is ``None`` for a failed one).

        Its cost comes from :func:`podium.observe.price_of` (the budgets' ``prices``
        first); ``free`` marks a call to the local model. A reply from a model with
        no known price costs 0 here and sets :attr:`unpriced`.
        """
        usage: Mapping[str, Any] = (reply.usage_metadata if reply is not None else None) or {}
        name = model
        if reply is not None:
            name = str(reply.response_metadata.get("model_name") or model or "")
        inp = int(usage.get("input_tokens", 0))
        out = int(usage.get("output_tokens", 0))
        details: Mapping[str, Any] = usage.get("input_token_details") or {}
        cost = (
            price_of(
                name,
                inp,
                out,
                self.prices,
                cache_read_tokens=int(details.get("cache_read") or 0),
                cache_write_tokens=int(details.get("cache_creation") or 0),
                free=free,
            )
            if reply is not None
            else 0.0
        )
        self.unpriced = (name or "(unnamed)") if cost is None else None
        totals = Totals(
            input_tokens=inp,
            output_tokens=out,
            cost=cost or 0.0,
            model_calls=1,
            started_at=started_at,
        )
        return Usage(total=totals, agents={self.agent: totals.copy()})

    def refuse_unpriced(self) -> None:
        """Raise if the last call's model has no price while a cost budget applies.

        Its cost would count as 0, so the budget could never trip: a silent zero.

        Raises:
            ConfigurationError: Naming the model, the budgets and how to price it.
        """
        if self.unpriced is None:
            return
        limited = [s.what for s in self._scopes(Usage()) if s.budget.cost is not None]
        if not limited:
            return
        model = self.unpriced
        raise ConfigurationError(
            f"Agent {self.agent!r} runs under a cost limit ({'; '.join(limited)}), but its "
            f"model {model!r} has no known price, so its calls would count as $0 and the "
            "limit could never be reached.",
            fix=f"Give its price in USD per million tokens: Budget(cost=..., prices="
            f"{{{model!r}: Price(input=..., output=...)}}) (Price(0, 0) if it is free; "
            "Price is podium.observe.Price), or limit tokens instead of cost.",
        )


def extension(exhaustion: Exhaustion, new_limits: Mapping[str, Any] | None) -> dict[str, float]:
    """The extra amounts a human's decision grants.

    An edit sets new limits for the exhausted scope. It is refused (and the human
    asked again, with the reason) unless every value is a finite number above
    what is already used of that limit and every exhausted limit gets a new value:
    anything else would leave the budget used up, so the run would stop and ask
    again at once. To stop, reject; to answer instead, respond. Only limits the
    budget sets can be edited (an extension grows a configured limit).

    Args:
        exhaustion: The budget that ran out.
        new_limits: ``None`` for *approve* (each exhausted limit grows by its
            configured amount); else the edited limits ``{limit: new value}``.

    Returns:
        ``{limit: extra amount}`` to add to the scope's limits.

    Raises:
        ValueError: For an empty edit, a name that is not a limit of this budget,
            a value that is not a finite number (NaN, infinity, a bool, a string),
            a value not above what is used, or an exhausted limit left out.
    """
    if new_limits is None:
        out: dict[str, float] = {}
        for name in exhaustion.exceeded:
            configured = exhaustion.budget.limit(cast(Limit, name)) or 0.0
            used = exhaustion.exceeded[name]["used"]
            # one more allowance; at least enough to make room again
            out[name] = max(configured, used - exhaustion.exceeded[name]["limit"] + 1)
        return out
    example = ", ".join(
        f'"{n}": {_fmt(v["used"] + (exhaustion.budget.limit(cast(Limit, n)) or 1.0))}'
        for n, v in exhaustion.exceeded.items()
    )
    if not isinstance(new_limits, Mapping) or not new_limits:
        raise ValueError(f"an edit sets new limits, e.g. {{{example}}}; got {new_limits!r}")
    extra: dict[str, float] = {}
    for name, value in new_limits.items():
        if name not in LIMITS:
            raise ValueError(
                f"{name!r} is not a limit; limits are {', '.join(LIMITS)} (e.g. {{{example}}})"
            )
        if name not in exhaustion.limits:
            raise ValueError(
                f"this budget sets no {name} limit, so it cannot be edited; it limits "
                f"{', '.join(exhaustion.limits)} (e.g. {{{example}}})"
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} must be a number, got {value!r} (e.g. {{{example}}})")
        if not math.isfinite(value):
            raise ValueError(
                f"{name}={value!r} is not a finite number, and a limit must be one "
                f"(e.g. {{{example}}}); to stop the run, reject instead"
            )
        used = exhaustion.used.get(name, exhaustion.exceeded.get(name, {}).get("used", 0.0))
        if _reached(used, float(value)):
            raise ValueError(
                f"{name}={_fmt(float(value))} is not above the {_fmt(used)} already used, so "
                f"the budget would stay used up (e.g. {{{example}}}); to stop, reject instead"
            )
        extra[name] = float(value) - exhaustion.limits[name]
    left = [name for name in exhaustion.exceeded if name not in extra]
    if left:
        raise ValueError(
            f"{', '.join(left)} is used up and the edit leaves it as it is; give every "
            f"exhausted limit a new value above what is used (e.g. {{{example}}})"
        )
    return extra
