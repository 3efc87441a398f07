# ruff: noqa: RUF001, RUF002
"""4. Storage after a long chat, 4b. channel versions, 5. resume latency at 0 … 1,000 messages.

Storage: 200 turns, each a 500-character user message and a 500-character reply,
through podium's ``create_agent_graph`` on ``sqlite_saver`` and through the
hand-written raw agent (``add_messages``) on LangGraph's stock ``SqliteSaver``.
Storage is the database file's growth (after a WAL checkpoint, so the WAL is
folded in; for podium it includes the run ledger's events, which live in the
same file) divided by the raw message bytes (200 × 2 × 500).

Versions (4b): the same podium chat on ``sqlite_saver`` three ways, interleaved --
podium's channel versions (``"+000000007"``), LangGraph's stock form
(``"<32 digits>.<random>"``, the baseline) and bare integers (podium's earlier form,
which stock savers could not continue) -- reporting the mean checkpoint blob and
the wall time of a turn.

Resume: a thread whose history holds N messages (built by real turns), then the
wall time of ``get_state`` and of a new turn's set-up -- from ``invoke`` until the
model is called (a callback on ``on_chat_model_start``). Each measured turn runs on
its own copy of the thread (copied in SQL before the clock starts: the head
checkpoint and, for podium, its ancestors back to the last delta snapshot), so it
continues from a head with exactly N messages, as the next turn of a real chat
does. (Forking from a past checkpoint instead would make LangGraph write a full
snapshot of every delta channel into the fork's first checkpoint.)
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite import SqliteSaver

from benchmarks import _scenarios as S
from benchmarks._harness import Row, fmt_stats, interleave, ratio_row
from podium import Agent
from podium.checkpoints import sqlite_saver
from podium.checkpoints._messages import SNAPSHOT_EVERY
from podium.checkpoints._sqlite import PodiumSqliteSaver
from podium.graphs import create_agent_graph

CHARS = 500


def text(turn: int, who: str) -> str:
    head = f"{who} turn {turn}: "
    return (head + "lorem ipsum dolor sit amet " * 40)[:CHARS]


def podium_chat(replies: list[AIMessage]) -> Any:
    return create_agent_graph(
        Agent(name="chat", instructions=S.INSTRUCTIONS, model=S.model(replies), max_steps=1)
    )


def raw_chat(replies: list[AIMessage]) -> Any:
    return S.raw_agent(S.model(replies), [])


def _file_bytes(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    return path.stat().st_size


def _chat(app: Any, thread: str, turns: int, first: int = 0) -> None:
    config: RunnableConfig = {"configurable": {"thread_id": thread}}
    for t in range(first, first + turns):
        app.invoke({"messages": [("user", text(t, "user"))]}, config)


def storage(quick: bool) -> Row:
    turns = 10 if quick else 200
    home = Path(tempfile.mkdtemp(prefix="podium-bench-storage-"))
    replies = [S.reply(text(t, "assistant")) for t in range(turns)]
    grown: dict[str, int] = {}
    for side in ("podium", "stock"):
        path = home / f"{side}.sqlite"
        if side == "podium":
            saver: Any = sqlite_saver(path)
            app = podium_chat(replies).compile(checkpointer=saver)
        else:
            saver = S.stock_saver(path, tuned=False)
            app = raw_chat([r.model_copy() for r in replies]).compile(checkpointer=saver)
        empty = _file_bytes(path)
        _chat(app, "chat", turns)
        if side == "podium":
            from podium.tools._graph import run_ledger_for

            handler = run_ledger_for(saver)
            if handler is not None:
                handler.flush()
        grown[side] = _file_bytes(path) - empty
        if side == "podium":
            saver.close()
        else:
            saver.conn.close()
    raw = turns * 2 * CHARS
    p, s = grown["podium"] / raw, grown["stock"] / raw
    return Row(
        "4",
        f"Storage after {turns} turns (2 × 500-char messages a turn) ÷ raw message bytes",
        f"{p:.1f}× ({grown['podium'] / 1e6:.2f} MB)",
        f"{s:.1f}× ({grown['stock'] / 1e6:.2f} MB)",
        p / s,
        "≤ 3×",
        None if quick else p <= 3,
        note="baseline: `add_messages` + stock `SqliteSaver`; file growth after a WAL checkpoint",
    )


def _versions_as(saver: PodiumSqliteSaver, form: str) -> PodiumSqliteSaver:
    """``saver`` numbering channel versions in ``form`` (podium's own is the default)."""

    def stock(current: Any, channel: None) -> Any:
        return SqliteSaver.get_next_version(saver, current, channel)

    def integers(current: Any, channel: None) -> Any:
        return (current or 0) + 1

    if form != "podium":
        saver.get_next_version = stock if form == "stock" else integers  # type: ignore[method-assign]
    return saver


def versions(quick: bool) -> Row:
    turns, repeats = (5, 2) if quick else (20, 9)
    home = Path(tempfile.mkdtemp(prefix="podium-bench-versions-"))
    forms = ("podium", "stock", "integers")
    savers = {f: _versions_as(sqlite_saver(home / f"{f}.sqlite"), f) for f in forms}
    sizes: dict[str, list[float]] = {f: [] for f in forms}

    def case(form: str) -> Callable[[], float]:
        saver = savers[form]

        def sample() -> float:
            replies = [S.reply(text(t, "assistant")) for t in range(turns)]
            app = podium_chat(replies).compile(checkpointer=saver)
            thread = uuid.uuid4().hex
            start = time.perf_counter()
            _chat(app, thread, turns)
            elapsed = (time.perf_counter() - start) / turns
            with saver.lock:
                count, total = saver.conn.execute(
                    "SELECT count(*), sum(length(checkpoint)) FROM checkpoints WHERE thread_id = ?",
                    (thread,),
                ).fetchone()
            sizes[form].append(total / count)
            return elapsed

        return sample

    stats = interleave({f: case(f) for f in forms}, repeats=repeats)
    for saver in savers.values():
        saver.close()
    size = {f: sum(v) / len(v) for f, v in sizes.items()}
    row = ratio_row(
        "4b",
        "Channel versions: a chat turn's wall time on `sqlite_saver`, podium's "
        "`+000000007` vs LangGraph's stock `<32 digits>.<random>` form",
        stats["podium"],
        stats["stock"],
        target=None,
        note=f"mean checkpoint blob: podium {size['podium']:.0f} B, stock form "
        f"{size['stock']:.0f} B, bare integers (podium's earlier form, which stock "
        f"savers cannot continue) {size['integers']:.0f} B at "
        f"{fmt_stats(stats['integers'])} a turn",
    )
    row.podium += f"; {size['podium']:.0f} B a checkpoint"
    row.baseline += f"; {size['stock']:.0f} B"
    return row


class _Stamp(BaseCallbackHandler):
    run_inline = True

    def __init__(self) -> None:
        self.at: float | None = None

    def on_chat_model_start(self, *args: Any, **kwargs: Any) -> None:
        if self.at is None:
            self.at = time.perf_counter()


def _copy_head(saver: Any, thread: str) -> str:
    """Copy ``thread``'s head (and what rebuilding it needs) to a new thread; its id."""
    head = saver.get_tuple({"configurable": {"thread_id": thread}})
    counters = (head.metadata or {}).get("counters_since_delta_snapshot") or {}
    depth = 1 + max((steps for _, steps in counters.values()), default=0)
    copy = uuid.uuid4().hex
    with saver.lock, saver.conn:
        ids = [
            row[0]
            for row in saver.conn.execute(
                "SELECT checkpoint_id FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = '' "
                "ORDER BY checkpoint_id DESC LIMIT ?",
                (thread, depth),
            )
        ]
        marks = ", ".join("?" for _ in ids)
        saver.conn.execute(
            "INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, "
            "parent_checkpoint_id, type, checkpoint, metadata) SELECT ?, checkpoint_ns, "
            "checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata FROM checkpoints "
            f"WHERE thread_id = ? AND checkpoint_ns = '' AND checkpoint_id IN ({marks})",
            (copy, thread, *ids),
        )
        saver.conn.execute(
            "INSERT INTO writes (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, "
            "idx, channel, type, value) SELECT ?, checkpoint_ns, checkpoint_id, task_id, "
            "task_path, idx, channel, type, value FROM writes "
            f"WHERE thread_id = ? AND checkpoint_ns = '' AND checkpoint_id IN ({marks})",
            (copy, thread, *ids),
        )
    return copy


def resume(quick: bool) -> list[Row]:
    # 1,000 messages land on a ``messages`` snapshot (every 250 updates); 998 are the
    # longest replay at that size (248 writes after the last snapshot).
    longest = 4 * SNAPSHOT_EVERY - 2
    sizes = (0, 10, 40, 38) if quick else (0, 100, 1000, longest)
    repeats = 2 if quick else 15
    home = Path(tempfile.mkdtemp(prefix="podium-bench-resume-"))
    savers = {
        "podium": sqlite_saver(home / "podium.sqlite"),
        "stock": S.stock_saver(home / "stock.sqlite", tuned=False),
    }
    builders: dict[str, Callable[[list[AIMessage]], Any]] = {
        "podium": podium_chat,
        "stock": raw_chat,
    }
    rows: list[Row] = []
    for i, size in enumerate(sizes):
        turns = size // 2
        measured = repeats + 1
        base: dict[str, RunnableConfig] = {}
        apps: dict[str, Any] = {}
        for side in ("podium", "stock"):
            replies = [S.reply(text(t, "assistant")) for t in range(turns + 2 * measured)]
            app = builders[side](replies).compile(checkpointer=savers[side])
            thread = uuid.uuid4().hex
            _chat(app, thread, turns)
            config: RunnableConfig = {"configurable": {"thread_id": thread}}
            state = app.get_state(config)
            if len(state.values.get("messages", [])) != size:
                raise RuntimeError(f"{side}: built {len(state.values['messages'])} messages")
            base[side] = state.config if size else config
            apps[side] = app
            if size:  # a copy resumes with exactly the same history
                copy: RunnableConfig = {
                    "configurable": {"thread_id": _copy_head(savers[side], thread)}
                }
                if app.get_state(copy).values["messages"] != state.values["messages"]:
                    raise RuntimeError(f"{side}: the copied thread does not rebuild the same state")

        def get_state(side: str, apps: Any = apps, base: Any = base) -> Callable[[], float]:
            def sample() -> float:
                start = time.perf_counter()
                apps[side].get_state(base[side])
                return time.perf_counter() - start

            return sample

        def setup(
            side: str, apps: Any = apps, base: Any = base, size: int = size
        ) -> Callable[[], float]:
            def sample() -> float:
                stamp = _Stamp()
                thread = uuid.uuid4().hex
                if size:
                    thread = _copy_head(savers[side], base[side]["configurable"]["thread_id"])
                config: RunnableConfig = {
                    "configurable": {"thread_id": thread},
                    "callbacks": [stamp],
                }
                start = time.perf_counter()
                apps[side].invoke({"messages": [("user", text(size, "user"))]}, config)
                assert stamp.at is not None
                return stamp.at - start

            return sample

        stats = interleave(
            {
                "get:podium": get_state("podium"),
                "get:stock": get_state("stock"),
                "setup:podium": setup("podium"),
                "setup:stock": setup("stock"),
            },
            repeats=repeats,
        )
        target = 0.010 if size == 1000 else None  # (quick mode: no verdict)
        where = f"{size} messages of history"
        if not quick and size == longest:
            replay = size - 3 * SNAPSHOT_EVERY
            where += f" ({replay} updates after the last snapshot: the longest replay)"
        for kind, label, letter in (
            ("get", "`get_state`", "a"),
            ("setup", "next-turn set-up (invoke → model call)", "b"),
        ):
            row = ratio_row(
                f"5{letter}{i}",
                f"Resume latency at {where}: {label}",
                stats[f"{kind}:podium"],
                stats[f"{kind}:stock"],
                target=None,
                note="baseline: `add_messages` + stock `SqliteSaver`",
            )
            if target is not None:
                row.target = "≤ 10 ms"
                row.ok = stats[f"{kind}:podium"].median <= target
            rows.append(row)
    for side, saver in savers.items():
        if side == "podium":
            saver.close()
        else:
            saver.conn.close()
    return rows


def run(quick: bool) -> list[Row]:
    return [storage(quick), versions(quick), *resume(quick)]
