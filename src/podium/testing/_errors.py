"""Errors raised by podium's test doubles.

`podium.testing` depends only on langchain-core, so these errors do not derive from
`podium.PodiumError`. Script mistakes are test failures (`AssertionError` subclasses);
a reply that cannot serve as structured output is model misbehaviour and is reported
the way LangChain's own parsers report it (`OutputParserException`).
"""

from __future__ import annotations

from langchain_core.exceptions import OutputParserException


class ScriptExhaustedError(AssertionError):
    """The code under test called a `ScriptedChatModel` more often than scripted.

    The message says how many replies were scripted and shows the last input
    messages of the unexpected call, so the test author sees what the model was
    asked.
    """


class ScriptNotConsumedError(AssertionError):
    """`ScriptedChatModel.assert_consumed()` found scripted replies never requested.

    The message lists each unconsumed reply with its position in the script.
    """


class ScriptedOutputError(OutputParserException):
    """A scripted reply could not be turned into the requested structured output.

    Raised by the runnable returned from
    `ScriptedChatModel.with_structured_output`. The message names the script step,
    the failing stage (JSON parsing or schema validation) and what was expected.
    With `include_raw=True` the error is returned under `parsing_error` instead of
    raised, as with LangChain's chat models.
    """
