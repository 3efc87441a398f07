"""The shared ``messages`` channel: stored as deltas, so storage grows with what changed.

LangGraph's stock ``add_messages`` channel writes the whole history into every
checkpoint, so a long chat stores O(n²) bytes. podium's channel is LangGraph's
``DeltaChannel``: checkpoints keep only the new writes (plus a snapshot every
:data:`SNAPSHOT_EVERY` updates) and state is rebuilt by replaying them through
:func:`merge_messages`.

Replay must reproduce state exactly, so the reducer is deterministic: a message
written without an ``id`` gets one derived from its position and content rather than
a random UUID (``add_messages`` would assign a fresh UUID on every replay).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from typing import Annotated, Any, cast

from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    BaseMessageChunk,
    RemoveMessage,
    ToolMessage,
    convert_to_messages,
    message_chunk_to_message,
)
from langgraph.channels import DeltaChannel
from langgraph.graph.message import REMOVE_ALL_MESSAGES

__all__ = ["EDIT_ARTIFACT", "Messages", "edited_calls", "merge_messages"]

EDIT_ARTIFACT = "podium_edit"
"""The ``ToolMessage.artifact`` key recording a human's edit of a tool call:
``{"args": <what ran>, "from": <what the model asked>, "by": <who edited>}``.

When such a result joins the history, :func:`merge_messages` rewrites the tool
call's ``args`` in the ``AIMessage`` that asked for it (as LangChain's
HumanInTheLoopMiddleware does), so the model's next turn and every reader see the
call that ran next to its result; the original stays in the artifact."""

_NS = uuid.UUID("6f1c3a52-7d0e-4b8e-9a57-0c2d7b9e5a11")


def _with_ids(current_len: int, write: Any) -> list[BaseMessage]:
    items = write if isinstance(write, list) else [write]  # as add_messages: a tuple is one
    if all(isinstance(m, BaseMessage) and m.id is not None for m in items):
        return items  # the common case: nothing to convert
    out: list[BaseMessage] = []
    for i, (given, m) in enumerate(zip(items, convert_to_messages(items), strict=True)):
        if m.id is None:
            digest = hashlib.sha256(f"{m.type}\0{m.content!r}".encode()).hexdigest()[:16]
            new_id = str(uuid.uuid5(_NS, f"{current_len}:{i}:{digest}"))
            if m is given:  # the caller's message object: never mutate it
                m = m.model_copy(update={"id": new_id})
            else:  # built here from a tuple, str or dict
                m.id = new_id
        out.append(m)
    return out


def _apply_edit(merged: list[Any], result: ToolMessage) -> None:
    """Rewrite the asking ``AIMessage``'s call to the edited arguments (copy on write)."""
    edit = result.artifact.get(EDIT_ARTIFACT) if isinstance(result.artifact, dict) else None
    if not isinstance(edit, dict) or not isinstance(edit.get("args"), dict):
        return
    for i in range(len(merged) - 1, -1, -1):
        asked = merged[i]
        if isinstance(asked, AIMessage) and any(
            c.get("id") == result.tool_call_id for c in asked.tool_calls
        ):
            calls = [
                {**c, "args": edit["args"]} if c.get("id") == result.tool_call_id else c
                for c in asked.tool_calls
            ]
            if calls != asked.tool_calls:
                merged[i] = asked.model_copy(update={"tool_calls": calls})
            return


def edited_calls(messages: Sequence[AnyMessage]) -> list[AIMessage]:
    """The ``AIMessage`` objects whose tool calls an edit's result rewrites (same ids).

    For histories kept by another reducer (LangChain ``create_agent``'s
    ``add_messages``): writing these back replaces each asking message by id with
    the call that ran, as :func:`merge_messages` does when the result is written.
    """
    merged: list[Any] = list(messages)
    for m in messages:
        if isinstance(m, ToolMessage) and m.artifact:
            _apply_edit(merged, m)
    return [
        m
        for m, before in zip(merged, messages, strict=True)
        if m is not before and isinstance(m, AIMessage)
    ]


def merge_messages(current: Sequence[AnyMessage], writes: Sequence[Any]) -> list[AnyMessage]:
    """Apply a batch of message writes in order (``add_messages`` semantics).

    Deterministic and batching-invariant, as ``DeltaChannel`` requires: applying
    two batches one after the other equals applying their concatenation. Each
    write has exactly the effect of ``add_messages(messages, write)`` (replace by
    id, ``RemoveMessage``, ``REMOVE_ALL_MESSAGES``), but the id index is kept across
    the batch, so replaying k writes onto n messages costs O(n + k), not O(n * k).
    A tool result that records a human's edit (:data:`EDIT_ARTIFACT`) also rewrites
    the edited call in the ``AIMessage`` that asked for it.

    Args:
        current: The messages so far.
        writes: Each a message, a list of messages, or anything ``add_messages`` takes
            (``("user", "hi")`` tuples, dicts, ``RemoveMessage``).

    Returns:
        The new list of messages.

    Raises:
        ValueError: A ``RemoveMessage`` names an id that is not in the list.
    """
    merged: list[Any] = list(current)
    for m in merged:
        if m.id is None:  # as add_messages does for messages stored without an id
            m.id = str(uuid.uuid4())
    index = {m.id: i for i, m in enumerate(merged)}
    for write in writes:
        batch = [
            message_chunk_to_message(m) if isinstance(m, BaseMessageChunk) else m
            for m in _with_ids(len(merged), write)
        ]
        clear_at = max(
            (
                i
                for i, m in enumerate(batch)
                if isinstance(m, RemoveMessage) and m.id == REMOVE_ALL_MESSAGES
            ),
            default=None,
        )
        if clear_at is not None:
            merged = batch[clear_at + 1 :]
            index = {m.id: i for i, m in enumerate(merged)}
            continue
        removed: set[str] = set()
        for m in batch:
            at = index.get(m.id)
            if at is not None:
                if isinstance(m, RemoveMessage):
                    removed.add(cast(str, m.id))
                else:
                    removed.discard(cast(str, m.id))
                    merged[at] = m
            elif isinstance(m, RemoveMessage):
                raise ValueError(
                    f"Attempting to delete a message with an ID that doesn't exist ('{m.id}')"
                )
            else:
                index[m.id] = len(merged)
                merged.append(m)
            if isinstance(m, ToolMessage) and m.artifact:
                _apply_edit(merged, m)
        if removed:
            merged = [m for m in merged if m.id not in removed]
            index = {m.id: i for i, m in enumerate(merged)}
    return merged


SNAPSHOT_EVERY = 250
"""Updates of ``messages`` between full snapshots.

The trade-off: a snapshot stores the whole history once more (a chat of M messages
stores about M²/(2 x 250) messages in snapshots), and rebuilding state replays the
writes since the last snapshot (up to 249; ~15 ms at 1,000 messages on a 2-core
box, against ~7 ms when a snapshot is at hand). ``prune`` cuts at snapshots, so a
pruned thread keeps up to this many updates more than asked. LangGraph's default
is 100: twice the snapshot bytes, a shorter replay."""

Messages = Annotated[
    list[AnyMessage], DeltaChannel(merge_messages, snapshot_frequency=SNAPSHOT_EVERY)
]
"""The type of every podium graph's ``messages`` key."""
