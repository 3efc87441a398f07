"""Policies: which tool calls run, which are refused, and which wait for a human."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from podium.errors import ConfigurationError
from podium.tools._decorator import ToolTraits

__all__ = ["Action", "Governance", "Policy", "PolicyDecision", "Rule"]

Action = Literal["allow", "deny", "approve", "escalate"]
_ACTIONS: tuple[Action, ...] = ("allow", "deny", "approve", "escalate")


def _as_set(value: str | Sequence[str] | None, what: str) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return frozenset({value})
    items = frozenset(value)
    if not all(isinstance(v, str) for v in items):
        raise ConfigurationError(f"Rule {what}= must be a string or a list of strings.")
    return items


@dataclass(frozen=True, kw_only=True)
class Rule:
    """One policy rule: a match and an action. Unset match fields match anything.

    Example:
        >>> Rule(tool="issue_refund", action="approve", when=lambda a: a["amount"] > 100)
        ... # doctest: +ELLIPSIS
        Rule(action='approve', tool='issue_refund', ...)
    """

    action: Action
    """``allow`` runs the call; ``deny`` refuses it (the model is told why); ``approve``
    waits for a human :class:`~podium.Decision`; ``escalate`` hands the call to a human
    as an escalation (same decisions, flagged for attention)."""
    tool: str | Sequence[str] | None = None
    """Tool name(s) this rule applies to."""
    agent: str | Sequence[str] | None = None
    """Agent name(s) this rule applies to."""
    risk: str | Sequence[str] | None = None
    """Risk tier(s) this rule applies to (``low``, ``medium``, ``high``)."""
    when: Callable[[dict[str, Any]], bool] | None = field(default=None, compare=False)
    """A predicate over the call's arguments; the rule applies only when it is true.
    A predicate that raises makes the rule apply as ``deny`` (fail closed)."""
    reason: str = ""
    """Shown to the human (and to the model on ``deny``)."""
    approvers: Sequence[str] | None = None
    """Who may decide requests from this rule (values of ``Decision.by``); ``None``
    means the policy's ``approvers``."""

    def __post_init__(self) -> None:
        """Validate the action and normalise the match fields."""
        if self.action not in _ACTIONS:
            raise ConfigurationError(
                f"Rule action {self.action!r} is not one of {', '.join(_ACTIONS)}.",
                fix="Use action='allow', 'deny', 'approve' or 'escalate'.",
            )
        if self.when is not None and not callable(self.when):
            raise ConfigurationError("Rule when= must be a function of the arguments dict.")

    @property
    def tool_names(self) -> frozenset[str] | None:
        """The tool names this rule names (``None``: any tool)."""
        return _as_set(self.tool, "tool")

    @property
    def agent_names(self) -> frozenset[str] | None:
        """The agent names this rule names (``None``: any agent)."""
        return _as_set(self.agent, "agent")

    def matches(self, *, agent: str, tool: str, risk: str, args: dict[str, Any]) -> bool:
        """Whether this rule applies (ignoring ``when``, see :meth:`Policy.decide`)."""
        for allowed, value in (
            (_as_set(self.tool, "tool"), tool),
            (_as_set(self.agent, "agent"), agent),
            (_as_set(self.risk, "risk"), risk),
        ):
            if allowed is not None and value not in allowed:
                return False
        return True


@dataclass(frozen=True)
class PolicyDecision:
    """The outcome of :meth:`Policy.decide` for one call (recorded in the run ledger)."""

    action: Action
    """What happens to the call."""
    reason: str
    """Why: the rule's reason, or a description of the match."""
    rule: int | None
    """Index of the matching rule, or ``None`` for the default."""
    approvers: tuple[str, ...] | None
    """Who may decide, for ``approve`` and ``escalate``."""


@dataclass(frozen=True, kw_only=True)
class Policy:
    """Rules applied to every tool call of every agent; the first match wins.

    Example:
        >>> p = Policy(rules=[Rule(tool="issue_refund", action="approve",
        ...                        when=lambda a: a["amount"] > 100)])
        >>> p.decide(agent="billing", tool="issue_refund", traits=ToolTraits(),
        ...          args={"amount": 250}).action
        'approve'
    """

    rules: Sequence[Rule] = ()
    """Evaluated in order; the first rule that matches decides."""
    default: Action = "allow"
    """The action when no rule matches."""
    approvers: Sequence[str] | None = None
    """Who may decide any request (``None``: anyone who says who they are)."""
    approval_timeout: timedelta | None = None
    """How long a request stays open; a later decision counts as a rejection."""

    def __post_init__(self) -> None:
        """Validate the default action and the rules."""
        if self.default not in _ACTIONS:
            raise ConfigurationError(
                f"Policy default {self.default!r} is not one of {', '.join(_ACTIONS)}."
            )
        object.__setattr__(self, "rules", tuple(self.rules))
        for r in self.rules:
            if not isinstance(r, Rule):
                raise ConfigurationError(f"Policy rules must be Rule objects, got {r!r}.")

    def decide(
        self, *, agent: str, tool: str, traits: ToolTraits, args: Mapping[str, Any]
    ) -> PolicyDecision:
        """Decide what happens to one tool call."""
        plain = dict(args)
        for index, rule in enumerate(self.rules):
            if not rule.matches(agent=agent, tool=tool, risk=traits.risk, args=plain):
                continue
            if rule.when is not None:
                try:
                    applies = bool(rule.when(plain))
                except Exception as exc:
                    return PolicyDecision(
                        "deny",
                        f"policy rule {index} could not be evaluated "
                        f"({type(exc).__name__}: {exc}); refused to be safe",
                        index,
                        None,
                    )
                if not applies:
                    continue
            approvers = rule.approvers if rule.approvers is not None else self.approvers
            return PolicyDecision(
                rule.action,
                rule.reason or f"policy rule {index} ({rule.action} {tool})",
                index,
                tuple(approvers) if approvers is not None else None,
            )
        approvers = tuple(self.approvers) if self.approvers is not None else None
        return PolicyDecision(self.default, f"policy default ({self.default})", None, approvers)


ALLOW_ALL = Policy()
"""The policy used when none is given: every granted, well-formed call runs."""

_STRICTNESS: dict[Action, int] = {"allow": 0, "approve": 1, "escalate": 2, "deny": 3}


@dataclass(frozen=True)
class Governance:
    """The policies in force for one call.

    The enclosing graphs' policies (outermost first), then the member's own.

    Composition only adds restrictions: every policy decides the call, and the
    strictest answer wins (``deny`` > ``escalate`` > ``approve`` > ``allow``), so an
    outer deny cannot be loosened inside and a member's stricter rule still applies.
    Who may decide is what *every* policy allows (the intersection of their
    approvers); a request expires at the earliest of their ``approval_timeout``.
    """

    policies: tuple[Policy, ...] = ()
    """Outermost first."""

    def decide(
        self, *, agent: str, tool: str, traits: ToolTraits, args: Mapping[str, Any]
    ) -> PolicyDecision:
        """Decide one call under every policy in force (see the class docs)."""
        verdicts = [
            p.decide(agent=agent, tool=tool, traits=traits, args=args) for p in self.policies
        ]
        if not verdicts:
            return PolicyDecision("allow", "no policy (allow)", None, None)
        strictest = max(verdicts, key=lambda v: _STRICTNESS[v.action])  # first on ties
        if strictest.action not in ("approve", "escalate"):
            return strictest
        approvers = _intersect(
            v.approvers if v.action in ("approve", "escalate") else _tuple(p.approvers)
            for p, v in zip(self.policies, verdicts, strict=True)
        )
        if approvers == ():
            return PolicyDecision(
                "deny",
                f"{strictest.reason}; but no approver is allowed by every policy in force "
                "(their approvers= lists do not overlap), so nobody could decide it",
                strictest.rule,
                None,
            )
        return PolicyDecision(strictest.action, strictest.reason, strictest.rule, approvers)

    @property
    def approvers(self) -> tuple[str, ...] | None:
        """Who may decide a request that no rule names (``None``: anyone)."""
        return _intersect(_tuple(p.approvers) for p in self.policies)

    @property
    def approval_timeout(self) -> timedelta | None:
        """The shortest ``approval_timeout`` in force."""
        timeouts = [p.approval_timeout for p in self.policies if p.approval_timeout is not None]
        return min(timeouts) if timeouts else None

    def inner(self, policy: Policy | None) -> Governance:
        """These policies plus ``policy`` (a member's own), innermost last."""
        if policy is None or any(policy is p for p in self.policies):
            return self
        return Governance((*self.policies, policy))


def _tuple(value: Sequence[str] | None) -> tuple[str, ...] | None:
    return tuple(value) if value is not None else None


def _intersect(groups: Iterable[tuple[str, ...] | None]) -> tuple[str, ...] | None:
    found: tuple[str, ...] | None = None
    for group in groups:
        if group is None:
            continue
        found = group if found is None else tuple(a for a in found if a in group)
    return found
