"""Profile one benchmark workload with pyinstrument; write the text profile.

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.profile fanout-async    # -> benchmarks/profiles/fanout-async.txt
    .venv/bin/python -m benchmarks.profile manager-sqlite --html

Workloads: manager-sqlite (row 1b), handoff-sqlite (1d), durable (2a),
fanout-async (3b), resume (5, 1,000 messages), storage (4).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyinstrument import Profiler
from pyinstrument.renderers import ConsoleRenderer

from benchmarks import _scenarios as S

OUT = Path(__file__).resolve().parent / "profiles"


def _manager_sqlite(home: Path) -> Callable[[], None]:
    from podium.checkpoints import sqlite_saver

    home.mkdir(parents=True, exist_ok=True)
    saver = sqlite_saver(home / "p.sqlite")
    app = S.podium_manager(60).compile(checkpointer=saver)

    def go() -> None:
        for _ in range(60):
            app.invoke(
                {"messages": [("user", S.USER)]}, {"configurable": {"thread_id": uuid.uuid4().hex}}
            )

    return go


def _handoff_sqlite(home: Path) -> Callable[[], None]:
    from podium.checkpoints import sqlite_saver

    home.mkdir(parents=True, exist_ok=True)
    saver = sqlite_saver(home / "p.sqlite")
    app = S.podium_handoff(60).compile(checkpointer=saver)

    def go() -> None:
        for _ in range(60):
            app.invoke(
                {"messages": [("user", S.USER)]}, {"configurable": {"thread_id": uuid.uuid4().hex}}
            )

    return go


def _durable(home: Path) -> Callable[[], None]:
    from podium.checkpoints import sqlite_saver

    home.mkdir(parents=True, exist_ok=True)
    saver = sqlite_saver(home / "p.sqlite")
    app = S.podium_loop(20, 5, read_only=False).compile(checkpointer=saver)

    def go() -> None:
        for _ in range(20):
            app.invoke(
                {"messages": [("user", S.USER)]},
                {"configurable": {"thread_id": uuid.uuid4().hex}},
                durability="sync",
            )

    return go


def _fanout_async(home: Path) -> Callable[[], None]:
    from benchmarks.bench_fanout import podium_fan
    from podium.checkpoints import async_sqlite_saver

    loop = asyncio.new_event_loop()
    home.mkdir(parents=True, exist_ok=True)
    saver = loop.run_until_complete(async_sqlite_saver(home / "p.sqlite"))
    app = podium_fan(100, False).compile(checkpointer=saver)

    def go() -> None:
        loop.run_until_complete(
            app.ainvoke({"messages": [("user", S.USER)]}, {"configurable": {"thread_id": "t"}})
        )

    return go


def _resume(home: Path) -> Callable[[], None]:
    from benchmarks.bench_storage import _chat, podium_chat, text
    from podium.checkpoints import sqlite_saver

    home.mkdir(parents=True, exist_ok=True)
    saver = sqlite_saver(home / "p.sqlite")
    app = podium_chat([S.reply(text(t, "assistant")) for t in range(500)]).compile(
        checkpointer=saver
    )
    _chat(app, "t", 500)

    def go() -> None:
        for _ in range(20):
            app.get_state({"configurable": {"thread_id": "t"}})

    return go


def _storage(home: Path) -> Callable[[], None]:
    from benchmarks.bench_storage import _chat, podium_chat, text
    from podium.checkpoints import sqlite_saver

    home.mkdir(parents=True, exist_ok=True)
    saver = sqlite_saver(home / "p.sqlite")
    app = podium_chat([S.reply(text(t, "assistant")) for t in range(200)]).compile(
        checkpointer=saver
    )
    return lambda: _chat(app, "t", 200)


WORKLOADS: dict[str, Callable[[Path], Callable[[], None]]] = {
    "manager-sqlite": _manager_sqlite,
    "handoff-sqlite": _handoff_sqlite,
    "durable": _durable,
    "fanout-async": _fanout_async,
    "resume": _resume,
    "storage": _storage,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=sorted(WORKLOADS))
    parser.add_argument("--html", action="store_true", help="also write an HTML profile")
    args = parser.parse_args(argv)
    setup = WORKLOADS[args.workload]
    home = Path(tempfile.mkdtemp(prefix="podium-profile-"))
    go = setup(home / "a")
    profiler = Profiler(interval=0.0005, async_mode="enabled")
    profiler.start()
    go()
    profiler.stop()
    # the same workload again under cProfile, for a flat "where does the time go" list
    go = setup(home / "b")
    flat = cProfile.Profile()
    flat.enable()
    go()
    flat.disable()
    listing = io.StringIO()
    pstats.Stats(flat, stream=listing).sort_stats("tottime").print_stats(30)
    OUT.mkdir(exist_ok=True)
    # library frames shown (podium's cost is mostly in LangGraph/LangChain calls it makes),
    # branches under 2% of the total pruned
    renderer = ConsoleRenderer(
        unicode=True,
        color=False,
        processor_options={"hide_regex": "(?!)", "filter_threshold": 0.02},
    )
    tree: Any = profiler.output(renderer)
    text = (
        f"# pyinstrument tree\n\n{tree}\n\n# cProfile, top 30 by own time\n\n{listing.getvalue()}"
    )
    (OUT / f"{args.workload}.txt").write_text(text)
    if args.html:
        (OUT / f"{args.workload}.html").write_text(profiler.output_html())
    print(listing.getvalue()[:8000])
    print(f"wrote {OUT / (args.workload + '.txt')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
