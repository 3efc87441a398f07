# ruff: noqa: RUF001
"""Run every benchmark and write ``benchmarks/REPORT.md``.

Usage (from the repository root)::

    .venv/bin/python -m benchmarks.run            # full run, ~10 min, rewrites REPORT.md
    .venv/bin/python -m benchmarks.run --quick    # tiny counts, no local model (< 60 s)
    .venv/bin/python -m benchmarks.run --only cpu,tokens --output /tmp/r.md

Every row compares podium with a baseline measured in the same run (interleaved
repeats, medians, IQR in parentheses). The machine's details and its load average
before and after each group are part of the report.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import importlib.metadata
import os
import platform
import re
import sqlite3
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path

from benchmarks._harness import Row, loadavg

ROOT = Path(__file__).resolve().parent.parent
GROUPS = (
    "cpu",
    "durable",
    "fanout",
    "storage",
    "concurrency",
    "tokens",
    "mcp",
    "local",
    "cli",
    "scaleout",
    "sandbox",
)
ROW_IDS = [
    "1a",
    "1b",
    "1c",
    "1d",
    "2a",
    "2b",
    "2c",
    "3a",
    "3b",
    "3c",
    "3d",
    "3e",
    "4",
    "4b",
    "5a0",
    "5b0",
    "5a1",
    "5b1",
    "5a2",
    "5b2",
    "5a3",
    "5b3",
    "6",
    "7a",
    "7b",
    "7c",
    "8",
    "9",
    "10a",
    "10b",
    "11a",
    "11b",
    "11c",
    "11d",
    "11e",
    "11f",
    "11g",
    "11h",
    "12a",
    "12b",
    "12c",
    "12d",
    "12e",
    "13a",
    "13b",
]
"""Every row the report has, in quick mode too (``tests/test_benchmarks_quick.py``)."""

TARGETS = {  # row id -> numeric target of the ratio, for "misses by"
    "1a": 1.10,
    "1b": 1.10,
    "1c": 1.10,
    "1d": 1.10,
    "2a": 2.0,
    "7a": 0.5,
    "7b": 0.5,
    "7c": 0.5,
    "9": 1.05,
    "3e": 1.2,
    "10a": 0.6,
    "10b": 0.75,
    "12a": 1.2,
    "12d": 1.1,
}

WHY = {
    "1": "Per-step CPU (sampled profile of the manager turn): podium's own code is ~15% of "
    "a step and no single item dominates -- the model step's bookkeeping (budget meter, "
    "failure-policy driver, re-binding tools and `merge_configs` tagging on every call) "
    "~45% of it, folding `usage` dicts ~17%, `emit` custom events through LangChain's "
    "callback manager ~13%, the executor's checks ~10%, `merge_messages` ~9%. On SQLite the "
    "run ledger (row 9) adds the rest.",
    "2": "Durable step: `SqliteSaver.put` and `put_writes` are separate transactions (≈2 "
    "commits a step, as stock), each with serialisation and Python around it: with the run "
    "ledger off, put ≈ 110 µs and put_writes ≈ 150 µs; with it on, its writer thread shares "
    "the file and the GIL (≈ 160 / 320 µs). A side-effecting tool adds 4 ledger statements "
    "(get, the tool's unsettled calls, claim, finish), each its own transaction on a second "
    "connection.",
    "3": "Fan-out is CPU-bound, not wait-bound: every branch is a subgraph run (own "
    "checkpoints, callbacks, model step), ~6-10 ms CPU each, and one process runs Python on "
    "one core at a time, so 100 branches cost ≥ 0.6-1 s whatever the 100 ms waits do. The "
    "hand-written raw fan-out with subgraphs is slower still (ratio column); ≤ 1.2× at 100 "
    "branches needs < 0.2 ms CPU a branch, i.e. branches that are not subgraphs. In 3c/3d the "
    "branches' tool has a side effect, so podium's plain `invoke` runs durable by default "
    '(`durability="sync"`: each branch step is on disk before the next, ≈ 300 branch-step '
    "commits contending for one SQLite file, plus the ledger), against the raw graph on "
    "LangGraph's default `\"async\"`; that is most of 3d's 1.26× → 1.77× since the last report.",
    "4": "Storage (200 turns, 1.2 MB): the messages as msgpack writes 1.3× (an AI message "
    "of 500 characters is 772 bytes); the one `messages` snapshot so far (every 250 updates, "
    "traded against the replay length of row 5a3) 0.9×; checkpoint blobs 1.4× (the user's "
    "input is stored again in each input checkpoint: 0.5×); LangGraph's row keys and "
    "primary-key indexes for 3 checkpoints and 4 writes a turn ≈ 1.4×; checkpoint metadata "
    "0.4×; `usage` writes 0.2×; run-ledger events 0.2×. All of that but the snapshot is "
    "LangGraph's SQLite schema: ≤ 3× needs a saver with its own leaner tables, or compressed "
    "payloads (zlib saves ~35% on English text, so ~4.5×; the benchmark's repeated lorem "
    "ipsum would compress 4× and flatter it).",
    "5": "Resume is deserialisation-bound. At 1,000 messages a `messages` snapshot is at hand "
    "(every 250 updates) and podium loads it ~2× faster than LangGraph's serializer "
    "(cached class + `model_construct`); at 998 messages (5a3/5b3) 248 updates are replayed: "
    "LangGraph's ancestor walk deserialises each of ~370 checkpoints and its writes, then "
    "`merge_messages` converts the stored input tuples (≈ 40 µs an update in all).",
    "7": "Tokens: the saving comes from specialists seeing only their task; the coordinator "
    "re-sends its history on every call on both sides, and podium's three delegation tools "
    "each carry a ~30-token description of `task` (241 vs 124 schema tokens a manager call).",
    "12": "MCP call (mcp-server-time answers in ~1 ms). Layer by layer on a quiet machine "
    "(one session, 9 interleaved samples of 200 calls): the bare `call_tool` 0.99 ms; with a "
    "read timeout +6 µs; podium's session link (reconnect watch) +17 µs; "
    "langchain-mcp-adapters' call and result conversion +25 µs; the hop from the caller's "
    "thread to the loop that owns the session and back +100 µs (a thread wake-up each way); "
    "langchain's `BaseTool.invoke` (callbacks, signature inspection, the ToolMessage) "
    "+100-190 µs; the executor's grant, JSON-schema check, policy and events +50 µs. None of "
    "it is MCP traffic. 12e is the floor: langchain-mcp-adapters' own tool, in the session's "
    "loop with no podium, is 1.1-1.3× the bare session, so 12a's ≤ 1.2× cannot be met by any "
    "MCP tool that is a langchain tool (the issue asks for langchain-mcp-adapters); what "
    "podium adds over that floor is 12c. The async path (12b) plans a call that needs no "
    "ledger on the caller's loop and hops only to the session's loop. A tool that does real "
    "work on the server shrinks every ratio toward 1.",
    "13": "Sandboxed command: most of the added time is bubblewrap creating the PID "
    "namespace and mounting a new /proc, then the read-only binds; `prlimit` (and, as root, "
    "`setpriv`) add one exec each. A command with a network route (`loopback`, an allow-list) "
    'also starts the filtering proxy, about 0.2 s more; `network="none"` needs none.',
    "9": "Run ledger: with a handler attached, LangChain builds callback managers and "
    "dispatches every event to it; the handler only appends to a deque, and the writer "
    "thread wakes every 0.2 s to insert the batch (rows built straight from the events).",
}


def machine() -> list[str]:
    """The machine's and the software's details, as report lines."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = []
    for pkg in (
        "langgraph",
        "langgraph-checkpoint",
        "langgraph-checkpoint-sqlite",
        "langchain-core",
        "langgraph-supervisor",
        "pydantic",
    ):
        try:
            versions.append(f"{pkg} {importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{pkg} (not installed)")
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        commit = f"{commit}{' + uncommitted changes in src/' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return [
        f"- CPU: {cpu}; {os.cpu_count()} logical cores ({usable} usable); memory {memory}",
        f"- OS: {platform.platform()}; Python {platform.python_version()}; "
        f"SQLite {sqlite3.sqlite_version}",
        f"- {', '.join(versions)}",
        f"- podium commit: {commit}",
    ]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(
    rows: list[Row],
    loads: list[tuple[str, tuple[float, ...], tuple[float, ...], float]],
    quick: bool,
    started: dt.datetime,
    seconds: float,
    failures: list[str],
) -> str:
    out = [
        "# podium benchmarks",
        "",
        f"Generated by `python3 scripts/dev.py bench` (`.venv/bin/python -m benchmarks.run"
        f"{' --quick' if quick else ''}`) on {started:%Y-%m-%d %H:%M} UTC in {seconds:.0f} s"
        f"{' — QUICK MODE: tiny counts, numbers are not meaningful' if quick else ''}.",
        "Each row: median (IQR) of interleaved podium/baseline samples from the same run; "
        "ratio = podium ÷ baseline. The machine is shared: read the load averages.",
        "",
        "## Machine",
        "",
        *machine(),
        "- load average (1/5/15 min) per group, before → after: "
        + "; ".join(
            f"{g} {b[0]:.1f}/{b[1]:.1f}/{b[2]:.1f} → {a[0]:.1f}/{a[1]:.1f}/{a[2]:.1f} ({s:.0f} s)"
            for g, b, a, s in loads
        ),
        "",
        "## Results",
        "",
        "| # | benchmark | podium | baseline | ratio | target | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: ROW_IDS.index(r.id) if r.id in ROW_IDS else 99):
        ratio = "—" if r.ratio is None else f"{r.ratio:.2f}×"
        out.append(
            f"| {r.id} | {_cell(r.title)} | {_cell(r.podium)} | {_cell(r.baseline)} | "
            f"{ratio} | {_cell(r.target)} | {r.verdict} |"
        )
    out += ["", "## Notes per row", ""]
    ordered = sorted(rows, key=lambda r: ROW_IDS.index(r.id) if r.id in ROW_IDS else 99)
    out += [f"- **{r.id}**: {r.note}" for r in ordered if r.note]
    misses = [r for r in ordered if r.ok is False]
    out += ["", "## Misses", ""]
    if not misses:
        out.append("None.")
    for r in misses:
        target = TARGETS.get(r.id)
        by = (
            f"{r.ratio:.2f}× against ≤ {target:g}× — misses by {(r.ratio / target - 1) * 100:.0f}%"
            if target and r.ratio
            else f"{r.podium} against {r.target}"
        )
        out.append(f"- **{r.id}** {r.title}: {by}.")
    causes = sorted({re.sub(r"\D.*", "", r.id) for r in misses}, key=int)  # "10a" -> "10"
    if misses:
        out += ["", "Why:", ""]
        out += [f"- ({c}) {WHY[c]}" for c in causes if c in WHY]
    if failures:
        out += ["", "## Failed groups", ""] + [f"- {f}" for f in failures]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts; skip the local model")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "REPORT.md")
    parser.add_argument("--only", default="", help=f"comma-separated groups: {','.join(GROUPS)}")
    args = parser.parse_args(argv)
    groups = list(dict.fromkeys(g for g in args.only.split(",") if g)) or list(GROUPS)
    unknown = set(groups) - set(GROUPS)
    if unknown:
        parser.error(f"unknown groups {sorted(unknown)}; choose from {', '.join(GROUPS)}")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*create_react_agent.*")
    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    rows: list[Row] = []
    loads: list[tuple[str, tuple[float, ...], tuple[float, ...], float]] = []
    failures: list[str] = []
    for group in groups:
        before, g0 = loadavg(), time.perf_counter()
        print(f"[bench] {group} ...", flush=True)
        try:
            module = importlib.import_module(f"benchmarks.bench_{group}")
            got = module.run(args.quick)
        except Exception:
            failures.append(f"{group}: {traceback.format_exc().strip().splitlines()[-1]}")
            traceback.print_exc()
            continue
        rows += got
        loads.append((group, before, loadavg(), time.perf_counter() - g0))
        for r in got:
            ratio = "" if r.ratio is None else f"  ratio {r.ratio:.2f}"
            print(f"  {r.id:4} {r.verdict:4} {r.podium} vs {r.baseline}{ratio}", flush=True)
    text = render(rows, loads, args.quick, started, time.perf_counter() - t0, failures)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"[bench] wrote {args.output}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
