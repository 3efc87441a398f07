"""The shared ``messages`` channel: stored as deltas, so storage grows with what changed.

LangGraph's stock ``add_messages`` channel writes the whole history into every
checkpoint, so a long chat stores O(n²) bytes. podium's channel is LangGraph's
``DeltaChannel``: checkpoints keep only the new writes (plus a periodic snapshot) and
state is rebuilt by replaying them through :func:`merge_messages`.

Replay must reproduce state exactly, so the reducer is deterministic: a message
written without an ``id`` gets one derived from its position and content rather than
a random UUID (``add_messages`` would assign a fresh UUID on every replay).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from typing import Annotated, Any, cast

from langchain_core.messages import AnyMessage, BaseMessage, convert_to_messages
from langgraph.channels import DeltaChannel
from langgraph.graph.message import add_messages

__all__ = ["Messages", "merge_messages"]

_NS = uuid.UUID("6f1c3a52-7d0e-4b8e-9a57-0c2d7b9e5a11")


def _with_ids(current_len: int, write: Any) -> list[BaseMessage]:
    items = write if isinstance(write, list | tuple) else [write]
    out: list[BaseMessage] = []
    for i, m in enumerate(convert_to_messages(items)):
        if m.id is None:
            digest = hashlib.sha256(f"{m.type}\0{m.content!r}".encode()).hexdigest()[:16]
            m = m.model_copy(update={"id": str(uuid.uuid5(_NS, f"{current_len}:{i}:{digest}"))})
        out.append(m)
    return out


def merge_messages(current: Sequence[AnyMessage], writes: Sequence[Any]) -> list[AnyMessage]:
    """Apply a batch of message writes in order (``add_messages`` semantics).

    Deterministic and batching-invariant, as ``DeltaChannel`` requires: applying
    two batches one after the other equals applying their concatenation.

    Args:
        current: The messages so far.
        writes: Each a message, a list of messages, or anything ``add_messages`` takes
            (``("user", "hi")`` tuples, dicts, ``RemoveMessage``).

    Returns:
        The new list of messages.
    """
    merged: list[Any] = list(current)
    for write in writes:
        batch: list[Any] = _with_ids(len(merged), write)
        merged = cast(list[Any], add_messages(merged, batch))
    return merged


Messages = Annotated[list[AnyMessage], DeltaChannel(merge_messages, snapshot_frequency=100)]
"""The type of every podium graph's ``messages`` key."""
