"""The support demo for the LangGraph Server test, on per-agent scripted models.

One server process serves every request, so each agent's script runs across the
run and its resume, as a real model would answer them.
"""

from __future__ import annotations

import os
from pathlib import Path

from demo_helpers import ByAgent, call, calls

from podium.demos import DEMOS

model = ByAgent.of(
    {
        "triage": [calls(call("transfer_to_billing", {"reason": "a refund"}, "h1"))],
        "billing": [
            calls(call("lookup_order", {"order_id": "A-1002"}, "b1")),
            calls(call("issue_refund", {"order_id": "A-1002", "amount": 250}, "b2")),
            calls(call("send_email", {"order_id": "A-1002", "message": "Refunded."}, "b3")),
            "I refunded 250 dollars on A-1002 and emailed you.",
        ],
    }
)
graph = DEMOS["support"].build(Path(os.environ["PODIUM_HOME"]), model)
