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
from podium.observe import DEFAULT_PRICES, Price, cost_of

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
    """The scope's label: ``run:<graph>``, ``agent:<name>`` or ``delegation:<name>:<call>``."""
    what: str
    """The scope in words, for messages."""
    budget: Budget
    """The budget as configured."""
    exceeded: dict[str, dict[str, float]]
    """``{limit: {"used": ..., "limit": ...}}`` for every exhausted limit."""
    limits: dict[str, float] = field(default_factory=dict)
    """Every effective limit of the scope (configured plus extensions)."""

    def describe(self) -> str:
        """E.g. ``the run's budget (output_tokens: 1020 of 1000 used)``."""
        parts = ", ".join(
            f"{name}: {_fmt(v['used'])} of {_fmt(v['limit'])} used"
            for name, v in self.exceeded.items()
        )
        return f"{self.what} ({parts})"


def _fmt(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) and not value.is_integer() else f"{value:.0f}"


def _used(totals: Totals, name: Limit, now: float) -> float:
    if name == "tokens":
        return float(totals["input_tokens"] + totals["output_tokens"])
    if name == "seconds":
        return now - totals["started_at"] if totals["started_at"] else 0.0
    return float(totals[name])


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
        budgets = [g["budget"] for g in self.grants] + [b for _, b in self.runs]
        self.prices: dict[str, Price] = dict(DEFAULT_PRICES)
        for b in [*budgets, *([budget] if budget else [])]:
            self.prices.update(b.prices or {})

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
        for label, budget in self.runs:
            scopes.append(_Scope(f"run:{label}", f"the run's budget ({label})", budget, total))
        return scopes

    def exhausted(self, delta: Usage | None = None, now: float | None = None) -> Exhaustion | None:
        """The first budget (innermost first) with a limit used up, if any."""
        usage = add_usage(self.base, delta)
        at = time.time() if now is None else now
        extended = usage.get("extended") or {}
        for scope in self._scopes(usage):
            extra = extended.get(scope.label) or {}
            limits: dict[str, float] = {}
            exceeded: dict[str, dict[str, float]] = {}
            for name in LIMITS:
                configured = scope.budget.limit(name)
                if configured is None:
                    continue
                limit = configured + extra.get(name, 0.0)
                limits[name] = limit
                used = _used(scope.used, name, at)
                if used >= limit or math.isclose(used, limit):
                    exceeded[name] = {"used": used, "limit": limit}
            if exceeded:
                return Exhaustion(scope.label, scope.what, scope.budget, exceeded, limits)
        return None

    def record(
        self, reply: AIMessage | None, *, started_at: float, model: str | None = None
    ) -> Usage:
        """The usage of one model attempt (``reply`` is ``None`` for a failed one)."""
        usage: Mapping[str, Any] = (reply.usage_metadata if reply is not None else None) or {}
        name = model
        if reply is not None:
            name = str(reply.response_metadata.get("model_name") or model or "")
        inp = int(usage.get("input_tokens", 0))
        out = int(usage.get("output_tokens", 0))
        totals = Totals(
            input_tokens=inp,
            output_tokens=out,
            cost=cost_of(name, inp, out, self.prices),
            model_calls=1,
            started_at=started_at,
        )
        return Usage(total=totals, agents={self.agent: totals.copy()})


def extension(exhaustion: Exhaustion, new_limits: Mapping[str, Any] | None) -> dict[str, float]:
    """The extra amounts a human's decision grants.

    Args:
        exhaustion: The budget that ran out.
        new_limits: ``None`` for *approve* (each exhausted limit grows by its
            configured amount); else the edited limits ``{limit: new value}``.

    Raises:
        ValueError: For an unknown limit name or a value that is not a number.
    """
    if new_limits is None:
        out: dict[str, float] = {}
        for name in exhaustion.exceeded:
            configured = exhaustion.budget.limit(cast(Limit, name)) or 0.0
            used = exhaustion.exceeded[name]["used"]
            # one more allowance; at least enough to make room again
            out[name] = max(configured, used - exhaustion.exceeded[name]["limit"] + 1)
        return out
    extra: dict[str, float] = {}
    for name, value in new_limits.items():
        if name not in LIMITS or isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(
                f"edited limits must map limit names ({', '.join(LIMITS)}) to numbers; "
                f"got {name!r}: {value!r}"
            )
        current = exhaustion.limits.get(name, exhaustion.budget.limit(name) or 0.0)
        extra[name] = float(value) - current
    return extra
