"""Fixtures for the evaluation tests: the demos' per-agent scripted model is shared."""

from __future__ import annotations

import sys
from pathlib import Path

# ``ByAgent`` (one ScriptedChatModel per agent) lives with the demo tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "demos"))
