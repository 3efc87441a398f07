"""The podium command: version, models, and the demo on the real local model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import podium
from podium.cli import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"podium {podium.__version__}"


def test_models_reports_default_and_local_status(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PODIUM_MODEL", raising=False)
    assert main(["models", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["default"] == "local"
    assert info["OPENAI_API_KEY"] == "not set"
    assert set(info["local"]) >= {"assembled", "verified", "server_running", "path"}
    assert info["local"]["server_running"] in (True, False)


def test_demo_with_missing_key_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PODIUM_HOME", str(tmp_path))
    assert main(["demo", "orders", "--model", "openai:gpt-4.1-mini"]) == 1
    err = capsys.readouterr().err
    assert "OPENAI_API_KEY, which is not set" in err


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: podium" in capsys.readouterr().out


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).with_name("podium")
    out = subprocess.run(
        [str(exe), "--version"], capture_output=True, text=True, check=True, env={**os.environ}
    )
    assert out.stdout.startswith("podium ")


@pytest.mark.local_model
def test_demo_answers_from_the_tool_on_the_local_model(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """End to end: ChatOpenAI → llama.cpp → JSON tool call → governed tool → answer.

    The request comes after the options (``podium demo NAME --json "request"``).
    """
    from podium.demos import DEFAULT_QUESTION

    monkeypatch.setenv("PODIUM_HOME", str(tmp_path))
    assert main(["demo", "orders", "--model", "local", "--json", DEFAULT_QUESTION]) == 0
    report = json.loads(capsys.readouterr().out)
    steps = report["steps"]
    assert steps[0] == '[order_desk] calls lookup_order({"order_id": "A-1002"})'
    assert steps[1].startswith("  [lookup_order] Order A-1002 for Alan Turing: shipped")
    assert report["status"] == "done"
    assert report["answer"]
    assert "2026-11-27" in report["answer"]
