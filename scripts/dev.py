#!/usr/bin/env python3
"""Set up podium's development environment from nothing but python3, then run a task.

Usage:
    python3 scripts/dev.py demo ["question"]   # run the demo on the local model
    python3 scripts/dev.py test [pytest args]  # ruff + mypy + the whole test suite
    python3 scripts/dev.py lint                # ruff + mypy only
    python3 scripts/dev.py bench [--quick]     # regenerate benchmarks/REPORT.md
    python3 scripts/dev.py setup               # only create/refresh .venv

Set-up is idempotent: a private venv ``.uv/`` holds uv (installed from PyPI with pip),
and ``uv sync --frozen --extra local`` creates ``.venv`` exactly as ``uv.lock`` says.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".uv"
VENV = ROOT / ".venv"


def _run(cmd: list[str], **kw: object) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.call(cmd, cwd=ROOT, **kw)  # type: ignore[call-overload]


def setup() -> None:
    """Create the tool venv with uv, then sync the project venv from uv.lock."""
    uv = TOOLS / "bin" / "uv"
    if not uv.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(TOOLS)
        if _run([str(TOOLS / "bin" / "python"), "-m", "pip", "install", "-q", "uv>=0.5"]):
            sys.exit("could not install uv from PyPI; check the network to the package index")
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(VENV)}
    sync = [str(uv), "sync", "--frozen", "--extra", "local", "--extra", "plot", "--quiet"]
    if _run(sync, env=env):
        sys.exit("uv sync failed; see the output above")


def main(argv: list[str]) -> int:
    """Entry point."""
    task, rest = (argv[0], argv[1:]) if argv else ("help", [])
    bin_ = VENV / "bin"
    if task == "setup":
        setup()
        return 0
    if task == "demo":
        setup()
        return _run([str(bin_ / "podium"), "demo", *rest])
    if task in ("test", "lint"):
        setup()
        for cmd in (
            [str(bin_ / "ruff"), "check", "src", "tests", "scripts", "notebooks", "benchmarks"],
            [
                str(bin_ / "ruff"),
                "format",
                "--check",
                "src",
                "tests",
                "scripts",
                "notebooks",
                "benchmarks",
            ],
            [str(bin_ / "mypy")],
        ):
            if code := _run(cmd):
                return code
        if task == "lint":
            return 0
        return _run([str(bin_ / "python"), "-m", "pytest", *rest])
    if task == "bench":
        setup()
        return _run([str(bin_ / "python"), "-m", "benchmarks.run", *rest])
    print(__doc__)
    return 0 if task in ("help", "-h", "--help") else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
