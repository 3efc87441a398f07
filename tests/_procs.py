"""Run a test app in a new Python process and read the JSON line it prints last."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["run_app"]


def run_app(app: Path, *argv: str, expect_kill: bool = False) -> dict[str, Any]:
    """``python APP ARGV``: its last JSON line (``{}`` if none); asserts how it ended.

    Args:
        app: The script.
        argv: Its arguments.
        expect_kill: The app kills itself with SIGKILL (a crash point); otherwise it
            must exit 0.
    """
    proc = subprocess.run(
        [sys.executable, str(app), *argv], capture_output=True, text=True, timeout=120, check=False
    )
    if expect_kill:
        assert proc.returncode == -signal.SIGKILL, proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {}
