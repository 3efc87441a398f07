"""A top-level run's (or state update's) hold on its thread: registry row, lease, status.

:class:`Registration` is one run's row in the thread registry, which is its thread's
lease (:mod:`podium.tools._lease`): taken before the run reads the thread, released
with the status the run leaves (running, waiting, done, error, stopped).
:class:`StateUpdate` takes the thread the same way for ``update_state`` and refuses
an update the thread cannot take. Used by :class:`~podium.tools._app.GovernedApp`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, cast

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig

from podium.checkpoints._leases import LEASE_KEY
from podium.checkpoints._ledger import ToolLedger
from podium.checkpoints._threads import ThreadStatus
from podium.errors import PendingRequestsError, ThreadBusyError
from podium.observe._events import RunLedgerHandler
from podium.tools._approvals import ApprovalRequest
from podium.tools._lease import Claimant, Multitask, Taken, release

__all__ = ["Registration", "StateUpdate", "request_text", "waiting_for_human", "with_lease"]


def waiting_for_human(
    thread: object,
    still_open: Mapping[str, tuple[ApprovalRequest, str]],
    why: str,
    fix: str,
) -> PendingRequestsError:
    """The refusal of a write to a thread whose requests wait for a human."""
    listing = "; ".join(
        f"{r.id} ({r.agent} wants {r.tool}, {r.kind})" for r, _ in still_open.values()
    )
    return PendingRequestsError(
        f"Thread {thread!r} is waiting for a human: {listing}. {why}, so it was refused; "
        "nothing changed.",
        fix=fix,
        requests=[r for r, _ in still_open.values()],
    )


class StateUpdate:
    """One ``update_state`` of a top-level thread: its lease, and the checks under it."""

    def __init__(
        self,
        registration: Registration | None,
        config: RunnableConfig,
        still_open: Callable[[str], Mapping[str, tuple[ApprovalRequest, str]]],
    ) -> None:
        """One state update.

        Args:
            registration: The thread's (``None``: not a top-level thread).
            config: The update's config.
            still_open: The thread's requests still waiting for a human, by request id.
        """
        conf = config.get("configurable") or {}
        given = LEASE_KEY in conf  # a run that holds the thread updates it itself
        self.registration = None if given else registration
        self.config = config
        self.still_open = still_open
        self.status: ThreadStatus = "done"

    def take(self) -> RunnableConfig:
        """Take the thread, check it can be updated; the config carrying the lease."""
        registration = self.registration
        if registration is None:  # not a top-level thread: nothing to take
            return self.config
        thread = registration.thread
        seen = registration.ledger.thread(thread)
        if seen is not None and seen.status not in ("running", "new"):
            self.status = seen.status
        if seen is not None and seen.owner and registration.claimant(None)._free(seen):
            # checked before taking the thread: the next run must still find it to finish
            raise ThreadBusyError(
                f"Thread {thread!r}: its last run did not end (its process {seen.owner} "
                "stopped mid-run), so its state is not settled; the state update was "
                "refused and nothing changed.",
                fix="Finish that run first (app.invoke(None, config), runs.resume or "
                "`podium resume THREAD`), then update the state.",
                thread=thread,
                holder=seen.owner,
                since=seen.leased_at,
            )
        leased = registration.take(None, self.config)
        try:
            self._check(registration)
        except BaseException as exc:
            self.ended(exc)
            raise
        return leased

    def _check(self, registration: Registration) -> None:
        thread = registration.thread
        if not registration.ledger.pending_approvals_of(thread):
            return
        still_open = self.still_open(thread)
        if still_open:
            raise waiting_for_human(
                thread,
                still_open,
                "A state update would leave those calls without an answer (a forged tool "
                "result is not a decision)",
                "Decide them first (runs.decide, or `podium approve|reject|respond`; "
                "Decision.respond gives a call the result you meant to write), then update "
                "the state.",
            )

    def ended(self, error: BaseException | None) -> None:
        """Let the thread go, its status as it was (``waiting`` when refused for that)."""
        registration = self.registration
        if registration is None or registration.taken is None:
            return
        status: ThreadStatus = "waiting" if isinstance(error, PendingRequestsError) else self.status
        release(registration.ledger, registration.taken, status, counted=False)
        registration.taken = None


class Registration:
    """One top-level run's row in the thread registry, which is its thread's lease."""

    def __init__(
        self,
        ledger: ToolLedger,
        thread: str,
        graph: str,
        description: str | None,
        run_ledgers: list[RunLedgerHandler],
        how: Multitask,
    ) -> None:
        self.ledger = ledger
        self.thread = thread
        self.graph = graph
        self.description = description
        self.run_ledgers = run_ledgers
        self.how = how
        self.interrupted = False
        self.running = False
        """Whether a LangGraph run streamed (a run refused before it ran does not count)."""
        self.taken: Taken | None = None

    @property
    def recovers(self) -> bool:
        """The thread was taken from a run whose process is gone (it never ended)."""
        return self.taken is not None and self.taken.recovers

    def claimant(self, value: Any) -> Claimant:
        """Who asks for the thread: this run, with ``value`` as its request."""
        return Claimant(
            self.ledger,
            self.thread,
            self.how,
            graph=self.graph,
            description=self.description or None,
            request=request_text(value),
        )

    def take(self, value: Any, config: RunnableConfig) -> RunnableConfig:
        """Take the thread's lease (or wait, or refuse); the run's config carrying it."""
        self.taken = self.claimant(value).take()
        return with_lease(config, self.taken)

    async def atake(self, value: Any, config: RunnableConfig) -> RunnableConfig:
        """:meth:`take` without blocking the event loop."""
        self.taken = await self.claimant(value).atake()
        return with_lease(config, self.taken)

    def saw(self, chunk: Any) -> None:
        """Note an interrupt in a streamed chunk (any stream mode, with subgraphs or not)."""
        self.running = True
        if not self.interrupted:
            last = chunk[-1] if isinstance(chunk, tuple) and chunk else chunk
            self.interrupted = isinstance(last, Mapping) and "__interrupt__" in last

    def ended(self, error: BaseException | None) -> None:
        """Release the lease, with how the run ended as the thread's status."""
        if self.taken is None:
            return
        status: ThreadStatus
        if error is None:
            waiting = self.interrupted or self.ledger.pending_approvals_of(self.thread) > 0
            status = "waiting" if waiting else "done"
        elif isinstance(error, PendingRequestsError):  # refused: the thread still waits
            status = "waiting"
        elif isinstance(error, (GeneratorExit, KeyboardInterrupt, asyncio.CancelledError)):
            status = "stopped"
        else:
            status = "error"
        message = f"{type(error).__name__}: {error}" if status == "error" else None
        for handler in self.run_ledgers:  # the run's events are stored when it returns
            handler.flush()
        counted = self.running or not isinstance(error, PendingRequestsError)
        release(self.ledger, self.taken, status, message, counted=counted)


def with_lease(config: RunnableConfig, taken: Taken) -> RunnableConfig:
    """The run's config, carrying its lease (by which its writes are fenced)."""
    if not taken.leased:
        return config
    conf = {**(config.get("configurable") or {}), LEASE_KEY: taken.lease}
    return cast(RunnableConfig, {**config, "configurable": conf})


def request_text(value: Any) -> str | None:
    """The text of new input's last message (``None`` for a resume)."""
    if not isinstance(value, Mapping):
        return None
    messages = value.get("messages")
    if isinstance(messages, (str, BaseMessage, tuple, Mapping)):
        messages = [messages]
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if isinstance(last, BaseMessage):
        return last.text
    if isinstance(last, tuple) and len(last) == 2:
        return str(last[1])
    if isinstance(last, Mapping):
        return str(last.get("content", ""))
    return str(last)
