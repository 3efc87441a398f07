"""The benchmark harness works: ``python -m benchmarks.run --quick`` makes every row.

Only the harness is checked -- quick mode's counts are far too small for the numbers
to mean anything, so nothing here asserts on timings.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_quick_mode_produces_every_row(tmp_path: Path) -> None:
    pytest.importorskip("langgraph_supervisor")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.run import ROW_IDS

    report = tmp_path / "REPORT.md"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--output", str(report)],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = report.read_text()
    assert "## Machine" in text
    assert "load average" in text
    for row in ROW_IDS:
        assert f"\n| {row} |" in text, f"row {row} missing from the quick report:\n{text}"
    assert "## Failed groups" not in text
