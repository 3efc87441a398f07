"""The podium error taxonomy.

Every error podium raises on purpose derives from :class:`PodiumError`. The
hierarchy follows the four questions a user asks when something stops:

* :class:`ConfigurationError` -- *I built or configured something wrong*
  (invalid names, unknown routes, a missing API key, no sandbox for a shell
  tool). Raised at build time where possible.
* :class:`ModelError` -- *the model or its server misbehaved* (a server that
  is down, output that does not fit the required schema).
* :class:`LimitError` -- *a limit I set tripped* (steps, handoffs, budgets).
* :class:`ApprovalError` -- *a human decision or resume was not acceptable*
  (unknown thread or request, malformed decision).
* :class:`PersistenceError` -- *stored state is unusable* (corrupt database).
* :class:`ConcurrencyError` -- *someone else is acting on the same thread* (a
  call another worker is running, a run that holds the thread, a run that lost it).
* :class:`ToolUnavailableError` -- *the service behind a tool is down* (an MCP
  server that cannot be reached); the run stops and resumes once it is back.

Messages say what is wrong, what is allowed, and how to fix it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "AlreadyDecidedError",
    "ApprovalError",
    "ApproverNotAllowedError",
    "BudgetExceededError",
    "CallInProgressError",
    "ConcurrencyError",
    "ConfigurationError",
    "CorruptDatabaseError",
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
    "QuorumNotMetError",
    "ReworkLimitError",
    "SandboxUnavailableError",
    "ThreadBusyError",
    "ToolTimeoutError",
    "ToolUnavailableError",
    "UnknownRequestError",
    "UnknownThreadError",
]


class PodiumError(Exception):
    """Root of every error podium raises deliberately.

    Args:
        message: What is wrong (and, where useful, what is allowed).
        fix: How to fix it; appended to the message as ``Fix: ...``.
    """

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(f"{message} Fix: {fix}" if fix else message)


class ConfigurationError(PodiumError):
    """Something was built or configured wrong; raised before any run starts."""


class MissingCredentialsError(ConfigurationError):
    """A model needs credentials (such as ``OPENAI_API_KEY``) that are not set."""


class SandboxUnavailableError(ConfigurationError):
    """No sandbox can be started for a shell command (bubblewrap missing or blocked).

    podium never runs such a command unsandboxed instead; the message says how to
    install bubblewrap (or how to opt out explicitly with ``sandbox="none"``).
    """


class ModelError(PodiumError):
    """The model, or the server behind it, did not behave as required."""


class ModelUnavailableError(ModelError):
    """The model server could not be reached, did not start, or stopped."""


class LocalModelError(ModelUnavailableError):
    """The embedded local model could not be assembled, verified or started."""


class ModelFailedError(ModelError):
    """A model call failed for good, after the agent's failure policy.

    Its :class:`~podium.FailurePolicy` used up the retries and fallbacks with nobody
    to escalate to, or a human aborted the escalation. When every attempt failed
    with a transient error (timeout, 429, 5xx, connection),
    :class:`ModelUnavailableError` is raised instead.
    """


class InvalidModelOutputError(ModelError):
    """The model's output did not fit the schema it was required to follow."""


class LimitError(PodiumError):
    """A limit configured by the user tripped (steps, handoffs, budgets)."""


class BudgetExceededError(LimitError):
    """A :class:`~podium.Budget` with ``on_exhausted="raise"`` ran out before a model call."""


class MaxStepsExceededError(LimitError):
    """An agent used all of its ``max_steps`` model calls without answering."""


class MaxRoundsExceededError(LimitError):
    """A manager used all of its ``max_rounds`` model calls in one turn without answering."""


class MaxHandoffsExceededError(LimitError):
    """Agents handed off more than ``max_handoffs`` times in one user turn (a ping-pong)."""


class QuorumNotMetError(LimitError):
    """Fewer parallel branches succeeded than the graph's ``quorum`` requires."""


class ReworkLimitError(LimitError):
    """A pipeline sent work back to an earlier stage more than ``max_rework`` times."""


class ApprovalError(PodiumError):
    """A decision or resume was rejected; nothing was changed and nothing ran."""


class ApproverNotAllowedError(ApprovalError):
    """The person named in ``Decision.by`` may not decide this request."""


class UnknownThreadError(ApprovalError):
    """The thread named in a resume or decision has no stored state."""


class UnknownRequestError(ApprovalError):
    """A decision names a request that is unknown, stale, or no longer pending."""


class AlreadyDecidedError(UnknownRequestError):
    """A decision arrived for a request that already has one; the first decision binds.

    Raised for a second decision, and for the loser of two decisions made at the same
    moment. Nothing ran because of the refused decision; :attr:`recorded` is the
    decision that stands, and :attr:`result` (when the run was resumed) the graph's
    output, which reflects the recorded decision.
    """

    def __init__(
        self,
        message: str,
        *,
        fix: str | None = None,
        recorded: dict[str, object] | None = None,
        result: object = None,
    ) -> None:
        super().__init__(message, fix=fix)
        self.recorded = recorded
        self.result = result


class HumanUnavailableError(ApprovalError, ValueError):
    """A run needs a human's decision but cannot pause for one; nothing ran.

    A run without a checkpointer (a graph compiled with ``checkpointer=False``, or a
    stateless LangGraph Server run such as its ``/mcp`` endpoint) could never be
    resumed, so a request made there could never be decided: podium refuses to make
    it. Also a ``ValueError``, so LangGraph Server shows its message to the client.
    """


class InvalidDecisionError(ApprovalError):
    """A decision is malformed or not allowed.

    Wrong type, missing fields, or edited arguments that the tool's schema or the
    policy refuses.
    """


class PendingRequestsError(ApprovalError, ValueError):
    """New input arrived on a thread that waits for a human; it was refused.

    :attr:`requests` lists the pending :class:`~podium.ApprovalRequest` objects.
    It is also a ``ValueError`` (the input does not fit the thread's state), which
    LangGraph Server needs to show a run's error message to its client instead of
    "An internal error occurred".
    """

    def __init__(
        self, message: str, *, fix: str | None = None, requests: Sequence[Any] = ()
    ) -> None:
        super().__init__(message, fix=fix)
        self.requests = list(requests)


class InvalidInputError(PodiumError, ValueError):
    """The input of a run sets what the graph keeps internal, or routes it; nothing ran.

    Routing state, counters and usage are podium's; so is where a run goes
    (``Command(goto=...)``). Also a ``ValueError``, so LangGraph Server shows its
    message to the client (see :class:`PendingRequestsError`).
    """


class PersistenceError(PodiumError):
    """Stored state cannot be used as it is."""


class CorruptDatabaseError(PersistenceError):
    """A database file is corrupt, empty where state was expected, or foreign."""


class ConcurrencyError(PodiumError):
    """Another worker is acting on the same thread at the same moment."""


class CallInProgressError(ConcurrencyError):
    """A tool call is being run by another worker and has not finished yet.

    Nothing ran twice; resuming later returns its recorded result.
    """


class ThreadBusyError(ConcurrencyError):
    """Another run holds the thread (podium runs one run per thread at a time).

    Raised before the refused run did anything: nothing changed. :attr:`holder` is
    the process that holds the thread (``host|pid|start time|nonce``), :attr:`since`
    when it took it (epoch seconds), :attr:`waited` how long this run waited for it
    (``configurable["podium_multitask"] = "enqueue"``; 0 under the default
    ``"reject"``).
    """

    def __init__(
        self,
        message: str,
        *,
        fix: str | None = None,
        thread: str = "",
        holder: str | None = None,
        since: float | None = None,
        waited: float = 0.0,
    ) -> None:
        super().__init__(message, fix=fix)
        self.thread = thread
        self.holder = holder
        self.since = since
        self.waited = waited


class LeaseLostError(ConcurrencyError):
    """This run lost its thread: its lease expired and another run took the thread over.

    The process stopped renewing its lease (it was paused, or too busy to heartbeat)
    past the lease's expiry, and another run took the thread. The write that raised
    this -- a checkpoint, a task's writes, a tool call's start, a request for a
    human -- was refused, in the same transaction that checked the lease, so this
    run wrote nothing over the run that owns the thread now (fencing).
    """


class ToolUnavailableError(PodiumError):
    """The service behind a tool (an MCP server) could not be reached.

    Raised by a tool, it stops the run instead of becoming a tool message: the
    model cannot fix a server that is down. Everything before the call is saved,
    so ``app.invoke(None, config)`` resumes the run once the service is back.
    :attr:`reached` says whether the call may have reached the service: if not,
    the governed executor releases the call's ledger claim (the resume runs it
    afresh); if so, a side-effecting call stays *in doubt* (the resume re-runs an
    idempotent tool and asks a human about any other).
    :func:`podium.agents.is_transient` counts it as transient.
    """

    def __init__(
        self, message: str, *, fix: str | None = None, server: str = "", reached: bool = False
    ) -> None:
        super().__init__(message, fix=fix)
        self.server = server
        self.reached = reached


class ToolTimeoutError(ToolUnavailableError, TimeoutError):
    """A tool's service did not answer within the call's timeout.

    The governed executor tells the model and keeps a side-effecting call *in
    doubt* (it may still take effect on the server), exactly as for
    ``FailurePolicy(tool_timeout=...)``; the tool does not run again in the thread
    until a human settles it. :attr:`seconds` is the timeout.
    """

    def __init__(
        self, message: str, *, fix: str | None = None, server: str = "", seconds: float = 0.0
    ) -> None:
        super().__init__(message, fix=fix, server=server, reached=True)
        self.seconds = seconds
