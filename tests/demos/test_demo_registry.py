"""The demo registry: names, builds that keep side effects, resets."""

from __future__ import annotations

from pathlib import Path

import pytest
from demo_helpers import ByAgent, OpenDemo, call, calls
from langgraph.graph import StateGraph

import podium.demos
from podium.demos import DEMOS, Demo
from podium.testing import ScriptedChatModel


def test_registry_lists_every_demo() -> None:
    assert list(DEMOS) == ["orders", "support", "research", "ops", "data"]
    assert "Demo" in podium.demos.__all__
    assert "DEMOS" in podium.demos.__all__
    for name, demo in DEMOS.items():
        assert isinstance(demo, Demo)
        assert demo.name == name
        assert demo.title
        assert demo.default_request
    with pytest.raises(TypeError):
        DEMOS["x"] = DEMOS["orders"]  # type: ignore[index]


@pytest.mark.parametrize("name", list(DEMOS))
@pytest.mark.parametrize("model", ["local", "scripted"])
def test_build_is_cheap_and_uncompiled(
    name: str, model: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Building never starts a model: specs resolve on the first model call."""
    if name == "data":
        request.getfixturevalue("sandbox")  # its shell needs bubblewrap to be built
    spec = ScriptedChatModel([]) if model == "scripted" else model
    graph = DEMOS[name].build(tmp_path, spec)
    assert isinstance(graph, StateGraph)
    assert DEMOS[name].build(tmp_path, spec).compile() is not None  # again, same home
    assert all(rows == [] for rows in DEMOS[name].effects(tmp_path).values())


def test_rebuild_keeps_side_effects_and_reset_forgets_them(open_demo: OpenDemo) -> None:
    model = ByAgent.of(
        {
            "triage": [calls(call("transfer_to_billing", {"reason": "refund"}, "h1"))],
            "billing": [
                calls(call("issue_refund", {"order_id": "A-1001", "amount": 40}, "b1")),
                "Done.",
            ],
        }
    )
    process = open_demo("support", model)
    process.start("Refund 40 on A-1001.")
    demo, home = DEMOS["support"], process.home
    assert len(demo.effects(home)["refunds"]) == 1
    demo.build(home, "local")
    assert len(demo.effects(home)["refunds"]) == 1
    demo.reset(home)
    assert demo.effects(home) == {"refunds": [], "outbox": []}
    demo.build(home, "local")
    assert demo.effects(home) == {"refunds": [], "outbox": []}


def test_orders_demo_answers_from_its_tool(open_demo: OpenDemo) -> None:
    model = ScriptedChatModel(
        [calls(call("lookup_order", {"order_id": "A-1002"}, "o1")), "A-1002 has shipped."]
    )
    out = open_demo("orders", model).start()
    assert out["messages"][2].content.startswith("Order A-1002 for Alan Turing: shipped")
    assert DEMOS["orders"].effects(Path("/nonexistent")) == {}
