"""The data desk: a CSV in the workspace, a sandboxed command over it, a human approves."""

from __future__ import annotations

import pytest
from demo_helpers import ByAgent, OpenDemo, call, calls

from podium.demos import DEMOS
from podium.demos._data import COMMAND
from podium.tools import Decision

pytestmark = pytest.mark.sandbox


def _script(*, resumed: bool, then: str | None = None) -> ByAgent:
    first = [
        calls(call("export_orders", {}, "e1")),
        calls(call("shell", {"command": COMMAND}, "s1")),
    ]
    return ByAgent.of(
        {
            "data_desk": (
                ["The orders total 495."] if resumed else [*first, *([then] if then else [])]
            )
        }
    )


def test_the_command_waits_for_a_human_then_runs_once_in_the_sandbox(
    sandbox: str, open_demo: OpenDemo
) -> None:
    first = open_demo("data", _script(resumed=False))
    out = first.start()
    assert "__interrupt__" in out
    [request] = first.pending()
    assert (request.agent, request.tool, request.args) == (
        "data_desk",
        "shell",
        {"command": COMMAND},
    )
    assert (first.home / "workspaces" / "demo-1" / "orders.csv").read_text().count("\n") == 5
    assert DEMOS["data"].effects(first.home) == {"totals": []}  # nothing ran yet
    first.close()

    second = open_demo("data", _script(resumed=True))
    final = second.decide(request, Decision.approve(by="analyst"))
    [result] = [m.content for m in final["messages"] if m.type == "tool" and m.name == "shell"]
    assert str(result).startswith("exit code 0")
    assert "total 495" in str(result)
    assert final["messages"][-1].content == "The orders total 495."
    assert DEMOS["data"].effects(second.home) == {
        "totals": [{"thread": "demo-1", "content": "total 495"}]
    }
    DEMOS["data"].reset(second.home)
    assert DEMOS["data"].effects(second.home) == {"totals": []}


def test_the_human_can_edit_the_command(sandbox: str, open_demo: OpenDemo) -> None:
    first = open_demo("data", _script(resumed=False, then="5 lines."))
    first.start()
    [request] = first.pending()
    edited = "wc -l < orders.csv | tee total.txt"
    final = first.decide(request, Decision.edit({"command": edited}, by="analyst"))
    assert "5" in [str(m.content) for m in final["messages"] if m.type == "tool"][-1]
    assert DEMOS["data"].effects(first.home)["totals"][0]["content"] == "5"
