"""Agents: the :class:`Agent` spec, its loop, models, failure policy and budgets."""

from podium.agents._budget import Budget, Usage
from podium.agents._context import ContextPolicy
from podium.agents._failure import FailurePolicy, is_transient
from podium.agents._spec import Agent, ToolCalling

__all__ = [
    "Agent",
    "Budget",
    "ContextPolicy",
    "FailurePolicy",
    "ToolCalling",
    "Usage",
    "is_transient",
]
