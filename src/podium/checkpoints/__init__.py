"""Persistence: the delta-stored messages channel and tuned checkpointers."""

from podium.checkpoints._messages import Messages, merge_messages

__all__ = ["Messages", "merge_messages"]
