# ruff: noqa: RUF001
"""13. Sandboxed environments: what a command and a file write cost through the tools.

* 13a: the shell tool running ``true`` in its bubblewrap sandbox (workspace set-up,
  ``prlimit``, bwrap's namespaces and mounts, output capture, the run event) against a
  plain ``subprocess.run(["true"])`` from the same process; target: ≤ 20 ms added per
  command. ``network="none"`` (the default: no proxy).
* 13b: ``write_file`` through the file tool (path walk with ``O_NOFOLLOW`` from the
  workspace's descriptor, size cap) against ``Path.write_text`` of the same 1 kB.

Both call the tool's ``invoke`` directly (no graph): the executor's own cost is row 1's.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks._harness import Row, fmt_time, interleave

CFG = {"configurable": {"thread_id": "bench"}}
TARGET_MS = 20.0


def _timed(action: object) -> float:
    started = time.perf_counter()
    action()  # type: ignore[operator]
    return time.perf_counter() - started


def run(quick: bool) -> list[Row]:
    from podium.environments import Workspace, file_tools, shell_tool
    from podium.errors import SandboxUnavailableError

    repeats = 5 if quick else 60
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(Path(tmp) / "workspaces")
        try:
            shell = shell_tool(ws)
        except SandboxUnavailableError as exc:
            shell = None
            reason = exc.message
        if shell is not None:
            stats = interleave(
                {
                    "sandboxed": lambda: _timed(lambda: shell.invoke({"command": "true"}, CFG)),
                    "plain": lambda: _timed(lambda: subprocess.run(["true"], check=True)),
                },
                repeats=repeats,
            )
            mine, base = stats["sandboxed"], stats["plain"]
            added = (mine.median - base.median) * 1e3
            rows.append(
                Row(
                    "13a",
                    "Sandboxed `true` through the shell tool vs `subprocess.run(['true'])`, "
                    "same process",
                    f"{fmt_time(mine.median)} ({fmt_time(mine.q1)}–{fmt_time(mine.q3)})",
                    f"{fmt_time(base.median)} ({fmt_time(base.q1)}–{fmt_time(base.q3)})",
                    mine.median / base.median,
                    f"≤ {TARGET_MS:g} ms added",
                    added <= TARGET_MS,
                    note=f"{added:.1f} ms added per command: prlimit and bwrap execs, user/"
                    "PID/network/IPC/UTS namespaces, the read-only mounts, a new /proc.",
                )
            )
        else:
            rows.append(
                Row(
                    "13a",
                    "Sandboxed `true` (bubblewrap unavailable)",
                    "-",
                    "-",
                    None,
                    "-",
                    None,
                    note=reason,
                )
            )
        write = next(t for t in file_tools(ws) if t.name == "write_file")
        direct = Path(tmp) / "direct.txt"
        content = "x" * 1000
        stats = interleave(
            {
                "tool": lambda: _timed(
                    lambda: write.invoke({"path": "data/out.txt", "content": content}, CFG)
                ),
                "direct": lambda: _timed(lambda: direct.write_text(content)),
            },
            repeats=repeats * 5,
        )
        mine, base = stats["tool"], stats["direct"]
        rows.append(
            Row(
                "13b",
                "1 kB `write_file` through the file tool vs `Path.write_text`",
                f"{fmt_time(mine.median)} ({fmt_time(mine.q1)}–{fmt_time(mine.q3)})",
                f"{fmt_time(base.median)} ({fmt_time(base.q1)}–{fmt_time(base.q3)})",
                mine.median / base.median,
                "info",
                None,
                note="The tool's cost is langchain's `BaseTool.invoke` (callbacks, input "
                "validation) plus the confined path walk; the write itself is the same.",
            )
        )
    return rows
