"""The support demo for the LangGraph Server tests, on scripted models.

One server process serves every request, so each conversation's scripts run across
its runs and resumes, as a real model would answer them. A conversation is named by
the customer's first message, so the tests can drive several threads (or A2A
contexts) on one server in any order; within a conversation each agent has its own
script.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from customers import REFUND, REFUND_BY_A2A, REFUND_SUPERSEDED
from demo_helpers import ByAgent, call, calls
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.outputs import ChatResult
from pydantic import SkipValidation

import podium
from podium.demos import DEMOS, served_home

# the server must import the checkout under test, not whatever the venv has installed
SERVED_FROM = Path(podium.__file__).resolve()
if (expected := os.environ.get("PODIUM_EXPECT_SRC")) and not SERVED_FROM.is_relative_to(
    Path(expected).resolve()
):
    raise RuntimeError(f"served podium is {SERVED_FROM}, expected under {expected}")


def _desk(order: str, amount: int, *after: Any) -> dict[str, list[Any]]:
    """Triage hands over; billing looks the order up and asks to refund, then ``after``."""
    return {
        "triage": [calls(call("transfer_to_billing", {"reason": "a refund"}, "h1"))],
        "billing": [
            calls(call("lookup_order", {"order_id": order}, "b1")),
            calls(call("issue_refund", {"order_id": order, "amount": amount}, "b2")),
            *after,
        ],
    }


def _refunded(order: str, amount: int) -> tuple[Any, str]:
    return (
        calls(call("send_email", {"order_id": order, "message": "Refunded."}, "b3")),
        f"I refunded {amount} dollars on {order} and emailed you.",
    )


SCRIPTS: dict[str, dict[str, list[Any]]] = {
    REFUND: _desk("A-1002", 250, *_refunded("A-1002", 250)),
    REFUND_SUPERSEDED: _desk(
        "A-1003",
        120,
        "I did not refund A-1003.",  # after the superseded call's rejection
        "You paid 120 dollars for the wifi router on A-1003; nothing was refunded.",
    ),
    REFUND_BY_A2A: _desk("A-1003", 120, *_refunded("A-1003", 120)),
}


class ByConversation(ByAgent):
    """A :class:`ByAgent` script per conversation, chosen by its first human message."""

    conversations: Annotated[dict[str, ByAgent], SkipValidation]

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        first = next((m.text for m in messages if isinstance(m, HumanMessage)), "")
        if first not in self.conversations:
            raise AssertionError(f"no script for a conversation opened with {first!r}")
        return self.conversations[first]._generate(messages, stop, run_manager, **kwargs)


model = ByConversation(
    scripts={},
    conversations={first: ByAgent.of(scripts) for first, scripts in SCRIPTS.items()},
)
graph = DEMOS["support"].build(served_home(), model)  # PODIUM_HOME, else the default
