"""resolve_model: specs, defaults and the errors users hit first."""

from __future__ import annotations

import re

import pytest
from langchain_openai import ChatOpenAI

from podium import ConfigurationError, MissingCredentialsError
from podium.models import describe_default, resolve_model
from podium.testing import ScriptedChatModel


def test_chat_model_passes_through() -> None:
    model = ScriptedChatModel(["x"])
    assert resolve_model(model) is model


def test_openai_needs_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(MissingCredentialsError, match="OPENAI_API_KEY, which is not set"):
        resolve_model("openai:gpt-4.1-mini")


def test_openai_honours_key_and_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    model = resolve_model("openai:my-model", max_tokens=7)
    assert isinstance(model, ChatOpenAI)
    assert model.model_name == "my-model"
    assert model.openai_api_base == "http://127.0.0.1:9/v1"
    assert model.openai_api_key is not None
    assert model.openai_api_key.get_secret_value() == "sk-test"
    assert model.max_tokens == 7


def test_base_url_without_key_uses_placeholder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    model = resolve_model("openai:served")
    assert isinstance(model, ChatOpenAI)
    assert model.openai_api_key is not None
    assert model.openai_api_key.get_secret_value() == "EMPTY"


@pytest.mark.parametrize("spec", ["gpt-4", "openai:", "anthropic:claude", ""])
def test_unknown_specs(spec: str) -> None:
    with pytest.raises(ConfigurationError, match=r"model"):
        resolve_model(spec)


def test_default_follows_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PODIUM_MODEL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert describe_default() == "local"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert describe_default() == "openai:gpt-4.1-mini"
    monkeypatch.setenv("PODIUM_MODEL", "openai:gpt-4o")
    assert describe_default() == "openai:gpt-4o"
    assert isinstance(resolve_model("default"), ChatOpenAI)


@pytest.mark.parametrize("value", ["scripted", "gpt-4o", "openai:", "anthropic:claude"])
def test_podium_model_takes_the_same_specs_everywhere(
    value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from podium import Agent
    from podium.cli import main
    from podium.graphs import create_agent_graph

    monkeypatch.setenv("PODIUM_MODEL", value)
    expected = f"PODIUM_MODEL={value!r} is not a model spec; allowed: 'local', "
    with pytest.raises(ConfigurationError, match="^" + re.escape(expected)) as raised:
        describe_default()
    with pytest.raises(ConfigurationError, match=re.escape(expected)):
        resolve_model()  # "default" in user code
    with pytest.raises(ConfigurationError, match=re.escape(expected)):
        create_agent_graph(Agent(name="a")).compile()  # an Agent's default model
    assert main(["models"]) == 1  # `podium models` refuses it the same way
    assert capsys.readouterr().err.strip() == f"podium: error: {raised.value}"
    if value == "scripted":
        assert "PODIUM_NOTEBOOKS=scripted" in str(raised.value)


@pytest.mark.parametrize("value", ["local", "openai:gpt-4o", "default", ""])
def test_podium_model_accepts_the_specs(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODIUM_MODEL", value)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert describe_default() == (value if value not in ("default", "") else "local")


def test_unreachable_server_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model server that is down stops the run with ModelUnavailableError."""
    import socket

    from podium import Agent, ModelUnavailableError
    from podium.graphs import create_agent_graph

    with socket.socket() as s:  # find a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    model = resolve_model("openai:down")
    model = model.model_copy(update={"max_retries": 0})
    app = create_agent_graph(Agent(name="a", model=model)).compile()
    with pytest.raises(
        ModelUnavailableError, match=f"could not reach its model at http://127.0.0.1:{port}"
    ):
        app.invoke({"messages": [("user", "hi")]})
