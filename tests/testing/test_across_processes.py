"""The README's "One conversation across processes", run as it is printed.

The three files of that section are taken from README.md, written to a fresh folder
and run as two real processes (``python step1.py``, then ``python step2.py``); what
they print must be the output the README shows.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FILES = ("refund_desk.py", "step1.py", "step2.py")


def _section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("**One conversation across processes.**")
    return text[start : text.index("\n## ", start)]


def test_the_readme_drives_one_conversation_in_two_processes(tmp_path: Path) -> None:
    section = _section()
    blocks = {
        match.group(1): code
        for code in re.findall(r"```python\n(.*?)```", section, re.S)
        if (match := re.match(r"# (\S+\.py) -- ", code))
    }
    assert sorted(blocks) == sorted(FILES)
    for name, code in blocks.items():
        (tmp_path / name).write_text(code)
    [shown] = re.findall(r"```\n(\$ python step1\.py\n.*?)```", section, re.S)

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.pop("PODIUM_MODEL", None)
    printed = []
    for step in ("step1.py", "step2.py"):
        done = subprocess.run(
            [sys.executable, step], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-3000:]
        printed += [f"$ python {step}", *done.stdout.splitlines()]
    assert printed == shown.splitlines()
    # one thread in one file, the refund made once
    assert (tmp_path / "refunds.log").read_text() == "A-1 250.0\n"
    assert sorted(p.name for p in tmp_path.glob("*.sqlite")) == ["runs.sqlite"]
