"""Persistence: the delta-stored messages channel and tuned checkpointers."""

from podium.checkpoints._ledger import ApprovalRecord, CallRecord, ToolLedger, args_hash
from podium.checkpoints._messages import Messages, merge_messages
from podium.checkpoints._sqlite import (
    PodiumSqliteSaver,
    Synchronous,
    check_database_file,
    sqlite_saver,
)

__all__ = [
    "ApprovalRecord",
    "CallRecord",
    "Messages",
    "PodiumSqliteSaver",
    "Synchronous",
    "ToolLedger",
    "args_hash",
    "check_database_file",
    "merge_messages",
    "sqlite_saver",
]
