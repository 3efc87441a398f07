"""Fenced checkpoint writes: the lease check once, for every podium saver.

A checkpoint or a task's writes made by a run that holds its thread's lease (see
:mod:`podium.checkpoints._leases`) is written only while the thread's row in
``podium_threads`` still has the run's lease generation and owner, checked in the
same transaction as the write; a run that lost its thread writes nothing and gets
:class:`~podium.errors.LeaseLostError`. Writes without a lease (LangGraph's API used
directly, or a lease kept in another database) are LangGraph's own.

:class:`FencedWrites` (``put`` / ``put_writes``) and :class:`AsyncFencedWrites`
(``aput`` / ``aput_writes``) hold that logic -- find the run's lease, write through
the backend's fenced path, turn a refused write into the error that names the
thread's new holder -- for the SQLite and the Postgres savers alike. A backend
supplies only how a fenced write is made, and reports whether the lease held:

* SQLite (:mod:`podium.checkpoints._sqlite`): one ``INSERT ... SELECT ... WHERE
  EXISTS (fence)`` statement per write (:mod:`podium.checkpoints._sqlite_rows`);
* Postgres (:mod:`podium.checkpoints._postgres`): LangGraph's own pipelined write,
  inside a transaction that first reads the lease row ``FOR SHARE``.

The sync and async classes differ only in ``await`` (and in asking the
synchronous ledger for the error from a worker thread, off the event loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata

from podium.checkpoints._leases import Lease, lease_of

if TYPE_CHECKING:
    from podium.checkpoints._ledger import ToolLedger

__all__ = [
    "CHECKPOINT",
    "WRITES",
    "AsyncFencedWrites",
    "FencedWrites",
    "PutCheckpoint",
    "PutWrites",
    "next_config",
]

CHECKPOINT = "checkpoint"
"""What a refused ``put`` was (for :class:`~podium.errors.LeaseLostError`)."""
WRITES = "task's writes"
"""What a refused ``put_writes`` was."""


class PutCheckpoint(NamedTuple):
    """A ``put``'s arguments, as the backend's fenced write gets them."""

    config: RunnableConfig
    checkpoint: Checkpoint
    metadata: CheckpointMetadata
    new_versions: ChannelVersions


class PutWrites(NamedTuple):
    """A ``put_writes``' arguments, as the backend's fenced write gets them."""

    config: RunnableConfig
    writes: Sequence[tuple[str, Any]]
    task_id: str
    task_path: str


def next_config(config: RunnableConfig, checkpoint: Checkpoint) -> RunnableConfig:
    """The config ``put`` returns: the thread, namespace and the new checkpoint's id."""
    conf = config["configurable"]
    return {
        "configurable": {
            "thread_id": conf["thread_id"],
            "checkpoint_ns": conf["checkpoint_ns"],
            "checkpoint_id": checkpoint["id"],
        }
    }


class _Fence:
    podium_ledger: ToolLedger

    def _lease(self, config: RunnableConfig) -> Lease | None:
        return lease_of(config, self.podium_ledger.location)


class FencedWrites(_Fence):
    """``put`` / ``put_writes`` fenced by the run's lease (see the module docs).

    Mix in before LangGraph's saver; the backend implements :meth:`_fenced_put` and
    :meth:`_fenced_put_writes`.
    """

    def _fenced_put(self, lease: Lease, put: PutCheckpoint) -> bool:
        """Write the checkpoint if ``lease`` holds; whether it did."""
        raise NotImplementedError

    def _fenced_put_writes(self, lease: Lease, put: PutWrites) -> bool:
        """Write the task's writes if ``lease`` holds; whether it did."""
        raise NotImplementedError

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Save a checkpoint (fenced by the run's lease: see the module docs).

        Raises:
            LeaseLostError: If the run no longer holds its thread; nothing was written.
        """
        lease = self._lease(config)
        if lease is None:
            return super().put(config, checkpoint, metadata, new_versions)  # type: ignore[misc, no-any-return]
        if not self._fenced_put(lease, PutCheckpoint(config, checkpoint, metadata, new_versions)):
            raise self.podium_ledger.lost_lease_error(lease, CHECKPOINT)
        return next_config(config, checkpoint)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's writes (fenced by the run's lease: see the module docs).

        Raises:
            LeaseLostError: If the run no longer holds its thread; nothing was written.
        """
        lease = self._lease(config)
        if lease is None:
            super().put_writes(config, writes, task_id, task_path)  # type: ignore[misc]
        elif not self._fenced_put_writes(lease, PutWrites(config, writes, task_id, task_path)):
            raise self.podium_ledger.lost_lease_error(lease, WRITES)


class AsyncFencedWrites(_Fence):
    """``aput`` / ``aput_writes`` fenced by the run's lease: :class:`FencedWrites`, awaited.

    The backend implements :meth:`_afenced_put` and :meth:`_afenced_put_writes`, and
    may replace the unfenced writes (:meth:`_aput_unfenced`,
    :meth:`_aput_writes_unfenced`; LangGraph's by default).
    """

    async def _afenced_put(self, lease: Lease, put: PutCheckpoint) -> bool:
        """Write the checkpoint if ``lease`` holds; whether it did."""
        raise NotImplementedError

    async def _afenced_put_writes(self, lease: Lease, put: PutWrites) -> bool:
        """Write the task's writes if ``lease`` holds; whether it did."""
        raise NotImplementedError

    async def _aput_writes_unfenced(self, put: PutWrites) -> None:
        await super().aput_writes(*put)  # type: ignore[misc]

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Save a checkpoint (fenced by the run's lease: see the module docs).

        Raises:
            LeaseLostError: If the run no longer holds its thread; nothing was written.
        """
        lease = self._lease(config)
        if lease is None:
            return await super().aput(config, checkpoint, metadata, new_versions)  # type: ignore[misc, no-any-return]
        if not await self._afenced_put(
            lease, PutCheckpoint(config, checkpoint, metadata, new_versions)
        ):
            raise await asyncio.to_thread(self.podium_ledger.lost_lease_error, lease, CHECKPOINT)
        return next_config(config, checkpoint)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's writes (fenced by the run's lease: see the module docs).

        Raises:
            LeaseLostError: If the run no longer holds its thread; nothing was written.
        """
        lease = self._lease(config)
        if lease is None:
            await self._aput_writes_unfenced(PutWrites(config, writes, task_id, task_path))
        elif not await self._afenced_put_writes(
            lease, PutWrites(config, writes, task_id, task_path)
        ):
            raise await asyncio.to_thread(self.podium_ledger.lost_lease_error, lease, WRITES)
