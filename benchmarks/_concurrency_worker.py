"""One of the processes of benchmark 6: runs ``steps`` turns on a shared SQLite file.

Started by a ``forkserver`` that has imported podium and LangGraph once, so the
processes start in milliseconds. Each opens its own saver, compiles, waits at the
barrier (so all start together), runs, and puts one dict on the queue: start, end,
turns done, and the errors it met (lock errors counted apart).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks import _scenarios as S
from benchmarks.bench_storage import podium_chat, raw_chat
from podium.checkpoints import sqlite_saver


def work(side: str, path: Path, steps: int, ready: Any, results: Any) -> None:
    replies = [S.reply(S.ANSWER) for _ in range(steps)]
    saver: Any
    if side == "podium":
        saver = sqlite_saver(path, integrity_check=False)
        app = podium_chat(replies).compile(checkpointer=saver)
    else:
        saver = S.stock_saver(path, tuned=False)
        app = raw_chat(replies).compile(checkpointer=saver)
    ready.wait()
    done, locked, other = 0, 0, []
    start = time.time()
    for _ in range(steps):
        config = {"configurable": {"thread_id": uuid.uuid4().hex}}
        try:
            app.invoke({"messages": [("user", S.USER)]}, config)
            done += 1
        except Exception as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                locked += 1
            else:
                other.append(f"{type(exc).__name__}: {exc}"[:200])
    end = time.time()
    results.put({"start": start, "end": end, "done": done, "locked": locked, "errors": other})
