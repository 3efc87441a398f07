"""The sandbox holds: real commands under real bubblewrap try to get out and are stopped.

Every test runs the shell tool's command in a real sandbox (no mock): reads of
secrets of the host, writes outside the workspace, escapes through ``..``,
absolute paths and planted symbolic links, and the limits (fork bomb, memory hog,
CPU spin, a timeout with children, 10 MB of output).
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from pathlib import Path

import pytest
from env_helpers import cfg, processes_with

from podium.environments import Limits, Workspace, file_tools, shell_tool

pytestmark = pytest.mark.sandbox


def run(tool: object, command: str, thread: str = "t1") -> str:
    return str(tool.invoke({"command": command}, cfg(thread)))  # type: ignore[attr-defined]


def exit_code(output: str) -> int | None:
    found = re.match(r"(?:\[UNSANDBOXED\] )?exit code (-?\d+)", output)
    return int(found.group(1)) if found else None


def test_a_command_runs_in_the_workspace_and_its_files_persist(sandbox: str, ws: Workspace) -> None:
    shell = shell_tool(ws)
    out = run(shell, "pwd; echo hello > note.txt; id -u")
    assert exit_code(out) == 0
    assert "/workspace" in out
    assert (ws.directory("t1") / "note.txt").read_text() == "hello\n"
    assert "hello" in run(shell, "cat note.txt")  # the next call, same thread: still there
    assert "No such file" in run(shell, "cat note.txt", thread="t2")  # another thread's is apart


def test_host_secrets_home_and_the_podium_database_are_out_of_reach(
    sandbox: str, ws: Workspace, home: Path
) -> None:
    db = home / "podium.sqlite"
    sqlite3.connect(db).execute("CREATE TABLE IF NOT EXISTS t (x)").connection.close()
    host_home = os.path.expanduser("~")
    shell = shell_tool(ws)
    out = run(
        shell,
        f"cat /etc/shadow; ls -a {host_home}; ls {home}; cat {db}; ls /root /home /run/user; ls /",
    )
    assert "Permission denied" in out  # /etc/shadow
    assert "root:" not in out
    for path in (host_home, str(home), str(db), "/root", "/home"):
        assert f"cannot access '{path}': No such file or directory" in out or (
            f"{path}: No such file or directory" in out
        ), path
    listing = out.split("\n")[-12:]
    assert "workspace" in listing
    assert "usr" in listing
    assert "root" not in listing


def test_paths_outside_the_workspace_are_refused_by_the_shell_and_the_file_tools(
    sandbox: str, ws: Workspace
) -> None:
    other = ws.ensure(ws.directory("other-thread")) / "private.txt"
    other.write_text("another thread's data")
    outside = ws.base.parent / "outside.txt"
    outside.write_text("host data")
    shell = shell_tool(ws)
    out = run(
        shell,
        f"cat ../other-thread/private.txt; cat {other}; cat {outside}; "
        f"ln -s {outside} planted; ln -s .. up; ln -s / rootlink; cat planted; "
        "cat up/other-thread/private.txt; ls rootlink/",
    )
    assert "another thread's data" not in out
    assert "host data" not in out
    # symbolic links the command planted lead nowhere in the sandbox, and file tools never follow
    tools = {t.name: t for t in file_tools(ws)}
    for path in (
        "planted",
        "up/other-thread/private.txt",
        "rootlink/etc/passwd",
        "../other-thread/private.txt",
        str(outside),
        "/etc/passwd",
        "~/x",
    ):
        answer = tools["read_file"].invoke({"path": path}, cfg())
        assert (
            (answer.startswith("Error:") and "refused" in answer)
            or "absolute" in answer
            or ("'..'" in answer)
        ), (path, answer)
    written = tools["write_file"].invoke({"path": "up/escape.txt", "content": "x"}, cfg())
    assert written.startswith("Error:")
    assert not (ws.base / "escape.txt").exists()
    assert tools["read_file"].invoke({"path": "/workspace/planted"}, cfg()).startswith("Error:")


def test_writes_outside_the_workspace_fail(sandbox: str, ws: Workspace) -> None:
    ws.ensure(ws.directory("t1"))
    before = sorted(str(p) for p in ws.base.parent.rglob("*"))
    out = run(
        shell_tool(ws),
        "echo x > /etc/podium-x; echo x > /usr/podium-x; echo x > /podium-x; "
        "echo x > ../podium-x; mkdir /proc/podium-x; echo x > /tmp/ok && echo tmp-ok",
    )
    assert out.count("Read-only file system") + out.count("Permission denied") >= 3, out
    assert "tmp-ok" in out  # the command's own /tmp works
    assert not Path("/etc/podium-x").exists()
    assert not Path("/usr/podium-x").exists()
    assert sorted(str(p) for p in ws.base.parent.rglob("*")) == before


def test_device_files_and_fifos_are_refused_by_the_file_tools(sandbox: str, ws: Workspace) -> None:
    run(shell_tool(ws), "mkfifo pipe")
    tools = {t.name: t for t in file_tools(ws)}
    started = time.monotonic()
    answer = tools["read_file"].invoke({"path": "pipe"}, cfg())
    assert "not a regular file" in answer
    assert time.monotonic() - started < 5  # opening a FIFO never hangs


def test_a_command_past_its_timeout_is_killed_with_its_children(
    sandbox: str, ws: Workspace
) -> None:
    shell = shell_tool(ws, limits=Limits(timeout=1.5))
    started = time.monotonic()
    out = run(shell, "sleep 1001 & (sleep 1002 &) ; sleep 1003; echo never")
    assert time.monotonic() - started < 10
    assert out.startswith("killed after")
    assert "every process it started" in out
    assert "never" not in out
    time.sleep(0.2)
    assert processes_with("1001") == processes_with("1002") == processes_with("1003") == []


def test_a_fork_bomb_is_stopped_by_the_process_limit(sandbox: str, ws: Workspace) -> None:
    shell = shell_tool(ws, limits=Limits(timeout=4, processes=48))
    started = time.monotonic()
    out = run(shell, "bomb() { bomb | bomb & }; bomb; sleep 1004")
    assert time.monotonic() - started < 15
    assert "process limit" in out
    time.sleep(0.2)
    assert processes_with("1004") == []


def test_a_memory_hog_is_stopped_by_the_memory_limit(sandbox: str, ws: Workspace) -> None:
    shell = shell_tool(ws, limits=Limits(memory=256 * 2**20))
    out = run(shell, "python3 -c 'b = bytearray(2 * 2**30); print(\"allocated\")'")
    assert "MemoryError" in out
    assert "allocated" not in out
    assert exit_code(out) == 1
    assert "memory limit" in out


def test_a_cpu_spin_is_stopped_by_the_cpu_limit(sandbox: str, ws: Workspace) -> None:
    shell = shell_tool(ws, limits=Limits(timeout=20, cpu_seconds=1))
    started = time.monotonic()
    out = run(shell, "python3 -c 'while True: pass'")
    assert time.monotonic() - started < 10
    assert exit_code(out) in (128 + 9, 128 + 24)  # SIGKILL or SIGXCPU
    assert "CPU limit" in out


def test_ten_megabytes_of_output_are_truncated_with_a_note(sandbox: str, ws: Workspace) -> None:
    shell = shell_tool(ws, limits=Limits(output=4000))
    out = run(shell, "head -c 10000000 /dev/zero | tr '\\0' a; echo; echo the-end")
    assert "output truncated: 10,000,009 bytes in all" in out
    assert len(out) < 4500
    assert out.rstrip().endswith("the-end")  # the tail is kept


def test_the_unsandboxed_opt_in_says_so(ws: Workspace) -> None:
    out = run(shell_tool(ws, sandbox="none"), "echo hi")
    assert out.startswith("[UNSANDBOXED] exit code 0")
