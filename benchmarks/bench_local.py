"""8. End to end on the embedded local model: the support demo's wall time and tokens.

Runs ``podium.demos.DEMOS["support"]`` (falls back to the ``orders`` demo if the
registry has no ``support``) on ``model="local"`` with its default request, on a
fresh ``sqlite_saver``; a refund waiting for a human is approved at once. Starting
the llama.cpp server is timed apart. The baseline column is the time spent inside
model calls (from the run ledger's ``model`` events), so the ratio is wall time ÷
model time and the difference is everything podium and LangGraph do around them.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks._harness import Row, fmt_time, loadavg
from podium import runs
from podium.checkpoints import sqlite_saver
from podium.tools import Decision
from podium.tools._graph import event_store_for, run_ledger_for


def _build(home: Path) -> tuple[str, Any, str]:
    from podium.demos import DEMOS

    if "support" in DEMOS:
        demo = DEMOS["support"]
        return "support", demo.build(home, "local"), demo.default_request
    from podium.demos import DEFAULT_QUESTION, build_order_agent, create_orders_db
    from podium.graphs import create_agent_graph

    agent = build_order_agent(create_orders_db(home), "local")  # type: ignore[call-arg]
    return "orders", create_agent_graph(agent), DEFAULT_QUESTION


def run(quick: bool) -> list[Row]:
    if quick:
        return [Row("8", "Local model end to end (skipped in --quick)", "—", "—", None, "—", None)]
    from podium.agents._local import ensure_server

    load_before = loadavg()
    started = time.perf_counter()
    ensure_server()
    server_seconds = time.perf_counter() - started
    home = Path(tempfile.mkdtemp(prefix="podium-bench-local-"))
    name, graph, request = _build(home)
    saver = sqlite_saver(home / "runs.sqlite")
    app = graph.compile(checkpointer=saver)
    thread = f"bench-{uuid.uuid4().hex[:8]}"
    config: Any = {"configurable": {"thread_id": thread}}
    started = time.perf_counter()
    out = app.invoke({"messages": [("user", request)]}, config)
    approvals = 0
    while (pending := runs.pending(app, config)) and approvals < 5:
        out = runs.decide(app, config, {r.id: Decision.approve(by="bench") for r in pending})
        approvals += 1
    wall = time.perf_counter() - started
    handler = run_ledger_for(saver)
    if handler is not None:
        handler.flush()
    store = event_store_for(saver)
    events = store.events(thread) if store is not None else []
    model_events = [e for e in events if e["kind"] == "model"]
    model_seconds = sum((e["ended_at"] or e["started_at"]) - e["started_at"] for e in model_events)
    tokens_in = sum(int(e["input_tokens"] or 0) for e in model_events)
    tokens_out = sum(int(e["output_tokens"] or 0) for e in model_events)
    answer = str(out["messages"][-1].content)[:90].replace("|", "/").replace("\n", " ")
    saver.close()
    load_after = loadavg()
    return [
        Row(
            "8",
            f"Local model end to end: `{name}` demo on Qwen2.5-Coder-0.5B (default request"
            f"{', approvals given' if approvals else ''})",
            f"{fmt_time(wall)} wall, {tokens_in:,} tokens in / {tokens_out:,} out",
            f"{fmt_time(model_seconds)} in {len(model_events)} model calls",
            wall / model_seconds if model_seconds else None,
            "—",
            None,
            note=f"server start {fmt_time(server_seconds)}; {tokens_out / model_seconds:.1f} "
            f"tokens/s generated; load average {load_before[0]:.1f} before, "
            f"{load_after[0]:.1f} after; answer: {answer!r}"
            if model_seconds
            else "no model events recorded",
        )
    ]
