"""Model resolution: ``"openai:<name>"``, ``"local"``, ``"default"`` or a chat model object."""

from __future__ import annotations

import os

from langchain_core.language_models import BaseChatModel
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from podium.agents._local import create_local_chat_model
from podium.errors import ConfigurationError, MissingCredentialsError

__all__ = ["check_model_spec", "describe_default", "is_local_model", "resolve_model"]

_DEFAULT_OPENAI_MODEL = "gpt-4.1-mini"
_ALLOWED = "'default', 'local', 'openai:<model name>' or a langchain BaseChatModel"


def describe_default() -> str:
    """Return the spec that ``"default"`` resolves to right now.

    ``PODIUM_MODEL`` wins when set; otherwise ``openai:gpt-4.1-mini`` when
    ``OPENAI_API_KEY`` is set, else ``local``. ``PODIUM_MODEL`` takes exactly the
    string specs :func:`resolve_model` takes, everywhere it is read (agents,
    ``podium models``, ``podium run``, served graphs): ``local`` or
    ``openai:<name>``.

    ``scripted`` is not a spec: a :class:`~podium.testing.ScriptedChatModel` replays
    a script that only code can give (``Agent(model=ScriptedChatModel([...]))``), and
    each agent needs its own. The notebooks switch to their scripts with
    ``PODIUM_NOTEBOOKS=scripted``.

    Raises:
        ConfigurationError: If ``PODIUM_MODEL`` is set to anything else.
    """
    chosen = os.environ.get("PODIUM_MODEL", "").strip()
    if chosen and chosen != "default":
        if chosen != "local" and not (chosen.startswith("openai:") and chosen[7:].strip()):
            scripted = chosen.lower() == "scripted"
            raise ConfigurationError(
                f"PODIUM_MODEL={chosen!r} is not a model spec; allowed: 'local', "
                "'openai:<model name>' or 'default'."
                + (
                    " A scripted model needs its script in code, so it has no spec."
                    if scripted
                    else ""
                ),
                fix=(
                    "Unset PODIUM_MODEL; in code pass Agent(model=ScriptedChatModel([...])); "
                    "the notebooks replay their scripts with PODIUM_NOTEBOOKS=scripted."
                    if scripted
                    else "Set PODIUM_MODEL=local or PODIUM_MODEL=openai:gpt-4.1-mini, or unset it."
                ),
            )
        return chosen
    return f"openai:{_DEFAULT_OPENAI_MODEL}" if os.environ.get("OPENAI_API_KEY") else "local"


def check_model_spec(spec: str | BaseChatModel) -> None:
    """Validate a model spec without starting or contacting anything.

    Args:
        spec: The spec to check.

    Raises:
        ConfigurationError: If the spec has an unknown form.
        MissingCredentialsError: If an OpenAI model is asked for without a key.
    """
    if isinstance(spec, BaseChatModel):
        return
    if not isinstance(spec, str):
        raise ConfigurationError(f"Model spec {spec!r} is not one of {_ALLOWED}.")
    if spec == "default":
        spec = describe_default()
    if spec == "local":
        return
    if spec.startswith("openai:"):
        if not spec.removeprefix("openai:").strip():
            raise ConfigurationError(
                f"Model spec {spec!r} has no model name after 'openai:'.",
                fix="Write e.g. 'openai:gpt-4.1-mini'.",
            )
        if not os.environ.get("OPENAI_API_KEY") and not os.environ.get("OPENAI_BASE_URL"):
            raise MissingCredentialsError(
                f"Model {spec!r} needs the environment variable OPENAI_API_KEY, which is not set.",
                fix="Export OPENAI_API_KEY=sk-..., or set OPENAI_BASE_URL to an "
                "OpenAI-compatible server (vLLM, Ollama, llama.cpp), or use model='local'.",
            )
        return
    raise ConfigurationError(
        f"Unknown model spec {spec!r}; allowed: {_ALLOWED}.",
        fix="Use 'local' for the embedded model, or 'openai:<name>' with OPENAI_API_KEY.",
    )


def resolve_model(
    spec: str | BaseChatModel = "default",
    *,
    max_tokens: int | None = None,
    max_retries: int | None = None,
) -> BaseChatModel:
    """Turn a model spec into a chat model.

    * a ``BaseChatModel`` is returned as it is;
    * ``"openai:<name>"`` is ``ChatOpenAI(model=<name>)``; it honours
      ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` (so vLLM, Ollama and llama.cpp
      servers work). With a base URL and no key, the placeholder key ``"EMPTY"``
      is sent, as those servers expect;
    * ``"local"`` starts (once per process) the embedded llama.cpp server with
      Qwen2.5-Coder-0.5B-Instruct and talks to it through ``ChatOpenAI``;
    * ``"default"`` is ``PODIUM_MODEL`` when set, else OpenAI when
      ``OPENAI_API_KEY`` is set, else ``"local"``.

    Args:
        spec: The model spec.
        max_tokens: Upper bound on generated tokens per call, where the model takes one.
        max_retries: Retries of the OpenAI client itself (``None``: its default, 2).
            Agents with a :class:`~podium.FailurePolicy` pass ``0``: the policy
            retries, with backoff, budget checks and run events.

    Returns:
        A chat model.

    Raises:
        ConfigurationError: For an unknown spec.
        MissingCredentialsError: For OpenAI without ``OPENAI_API_KEY``.
        LocalModelError: If the local model cannot be assembled or started.

    Example:
        >>> from podium.models import resolve_model
        >>> from podium.testing import ScriptedChatModel
        >>> m = ScriptedChatModel(["hi"])
        >>> resolve_model(m) is m
        True
    """
    check_model_spec(spec)
    if isinstance(spec, BaseChatModel):
        return spec
    if spec == "default":
        spec = describe_default()
    if spec == "local":
        return create_local_chat_model(max_tokens=max_tokens)
    key = os.environ.get("OPENAI_API_KEY") or "EMPTY"
    return ChatOpenAI(
        model=spec.removeprefix("openai:").strip(),
        api_key=SecretStr(key),
        base_url=os.environ.get("OPENAI_BASE_URL") or None,
        max_tokens=max_tokens,
        max_retries=max_retries,
        metadata={"podium_model": spec},
    )


def is_local_model(model: BaseChatModel) -> bool:
    """Whether ``model`` is podium's embedded local model (it prefers JSON tool calling)."""
    return (model.metadata or {}).get("podium_model") == "local"
