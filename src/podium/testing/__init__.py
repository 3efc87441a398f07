"""Public test doubles for code built on podium and LangGraph.

`ScriptedChatModel` replays a script of replies, records every call, and fails
loudly on unexpected or unconsumed steps. This package depends only on
langchain-core and pydantic, never on the rest of podium.
"""

from podium.testing._errors import (
    ScriptedOutputError,
    ScriptExhaustedError,
    ScriptNotConsumedError,
)
from podium.testing._scripted import ScriptedCall, ScriptedChatModel

__all__ = [
    "ScriptExhaustedError",
    "ScriptNotConsumedError",
    "ScriptedCall",
    "ScriptedChatModel",
    "ScriptedOutputError",
]
