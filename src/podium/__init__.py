"""podium: dependable multi-agent orchestration on LangGraph.

Import the pieces you need from the top level::

    from podium import Agent, PodiumError
    from podium.graphs import create_agent_graph
"""

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from podium._lazy import attach as _attach
from podium.errors import (
    AlreadyDecidedError,
    ApprovalError,
    ApproverNotAllowedError,
    BudgetExceededError,
    CallInProgressError,
    ConcurrencyError,
    ConfigurationError,
    CorruptDatabaseError,
    HumanUnavailableError,
    InvalidDecisionError,
    InvalidInputError,
    InvalidModelOutputError,
    LeaseLostError,
    LimitError,
    LocalModelError,
    MaxHandoffsExceededError,
    MaxRoundsExceededError,
    MaxStepsExceededError,
    MissingCredentialsError,
    ModelError,
    ModelFailedError,
    ModelUnavailableError,
    PendingRequestsError,
    PersistenceError,
    PodiumError,
    QuorumNotMetError,
    ReworkLimitError,
    SandboxUnavailableError,
    ThreadBusyError,
    ToolTimeoutError,
    ToolUnavailableError,
    UnknownRequestError,
    UnknownThreadError,
)

if TYPE_CHECKING:  # imported on first use (``import podium`` stays light)
    from podium.agents import Agent, Budget, ContextPolicy, FailurePolicy
    from podium.tools import ApprovalRequest, Decision, Policy, Rule

__getattr__, __dir__ = _attach(__name__)

try:
    __version__ = version("podium")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "Agent",
    "AlreadyDecidedError",
    "ApprovalError",
    "ApprovalRequest",
    "ApproverNotAllowedError",
    "Budget",
    "BudgetExceededError",
    "CallInProgressError",
    "ConcurrencyError",
    "ConfigurationError",
    "ContextPolicy",
    "CorruptDatabaseError",
    "Decision",
    "FailurePolicy",
    "HumanUnavailableError",
    "InvalidDecisionError",
    "InvalidInputError",
    "InvalidModelOutputError",
    "LeaseLostError",
    "LimitError",
    "LocalModelError",
    "MaxHandoffsExceededError",
    "MaxRoundsExceededError",
    "MaxStepsExceededError",
    "MissingCredentialsError",
    "ModelError",
    "ModelFailedError",
    "ModelUnavailableError",
    "PendingRequestsError",
    "PersistenceError",
    "PodiumError",
    "Policy",
    "QuorumNotMetError",
    "ReworkLimitError",
    "Rule",
    "SandboxUnavailableError",
    "ThreadBusyError",
    "ToolTimeoutError",
    "ToolUnavailableError",
    "UnknownRequestError",
    "UnknownThreadError",
    "__version__",
]
