"""Model prices, for the cost of each model call.

Where a model call's price comes from, first match wins:

1. **Overrides** -- ``prices=`` on a :class:`~podium.Budget` or a
   :class:`~podium.observe.RunLedgerHandler`: the model's name, or a dated name's
   undated prefix (``gpt-4.1-mini-2025-04-14`` → ``gpt-4.1-mini``).
2. **Free by definition** -- :data:`DEFAULT_PRICES`: the scripted test model
   (``ScriptedChatModel`` reports ``"scripted"``) and the embedded local model
   (``local``, served as ``qwen2.5-coder-0.5b-instruct``) cost 0. That is a known
   price, not a missing one; their tokens are still counted.
3. **genai-prices** -- the price data Pydantic maintains for pydantic-ai and Logfire
   (PyPI ``genai-prices``: about 2,300 models of 47 providers -- OpenAI, Anthropic,
   Google, Mistral, Groq, AWS Bedrock, Azure, DeepSeek, xAI, ... -- with tiered
   prices and cache-read/cache-write prices), matched by model name as the
   provider reports it. podium uses the snapshot bundled with the installed
   package and never fetches prices at run time (local-first): upgrade the package
   for new prices. It is imported on the first call that needs it (~0.3 s once),
   so ``import podium`` does not pay for its 1.6 MB table.

Anything else -- a self-hosted model behind ``OPENAI_BASE_URL``, a model newer than
the installed price data -- is **unpriced**: :func:`price_of` returns ``None``, the
run event says ``data["priced"] = False``, cost reports count it as unpriced, and a
cost budget refuses to run it (:class:`~podium.ConfigurationError`) instead of
counting it as free. Give such a model its price with ``prices={name: Price(...)}``
(``Price(0, 0)`` to declare it free).

Why genai-prices: it is kept up to date (releases track provider price changes,
monthly or faster), covers cached-token and tiered prices, is MIT-licensed, needs
only pydantic and httpx (both already podium dependencies), and is used in
production by pydantic-ai and Logfire. ``tokencost`` (AgentOps) has not been
released since 2025-08; LiteLLM's price map comes with a far larger package and
import; ``model-prices`` is a months-old single-author project.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_PRICES", "FREE_MODELS", "Price", "cost_of", "price_of"]


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    """Price of a million prompt tokens (cached ones included: an override has one
    input price)."""
    output: float
    """Price of a million generated tokens."""


FREE_MODELS = frozenset({"scripted", "local", "qwen2.5-coder-0.5b-instruct"})
"""Model names podium knows to be free: the scripted test model and the local model."""

DEFAULT_PRICES: Mapping[str, Price] = {name: Price(0.0, 0.0) for name in sorted(FREE_MODELS)}
"""The prices podium states itself: the free models (:data:`FREE_MODELS`). Every
other price comes from genai-prices (module docs); override with ``prices=``."""


def _override(name: str, table: Mapping[str, Price]) -> Price | None:
    price = table.get(name)
    if price is None:
        for known in sorted(table, key=len, reverse=True):
            if name.startswith(known.lower() + "-"):
                return table[known]
    return price


def _catalogue(
    name: str, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int
) -> float | None:
    """The price genai-prices' bundled data gives, or ``None`` for a model it lacks."""
    from genai_prices import Usage, calc_price  # lazily: a 1.6 MB table

    usage: dict[str, Any] = {"input_tokens": input_tokens, "output_tokens": output_tokens}
    if cache_read:
        usage["cache_read_tokens"] = cache_read
    if cache_write:
        usage["cache_write_tokens"] = cache_write
    try:
        return float(calc_price(Usage(**usage), name).total_price)
    except (LookupError, ValueError):
        return None


def price_of(
    model: str | None,
    input_tokens: int,
    output_tokens: int,
    prices: Mapping[str, Price] | None = None,
    *,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    free: bool = False,
) -> float | None:
    """Cost in USD of one model call, or ``None`` when the model has no known price.

    Args:
        model: The model's name as the provider reports it
            (``response_metadata["model_name"]``).
        input_tokens: Prompt tokens, cached ones included (LangChain's
            ``usage_metadata["input_tokens"]``).
        output_tokens: Generated tokens.
        prices: Overrides, USD per million tokens; they win over everything else.
        cache_read_tokens: Of ``input_tokens``, how many were read from the
            provider's prompt cache (``input_token_details["cache_read"]``).
        cache_write_tokens: Of ``input_tokens``, how many were written to it
            (``input_token_details["cache_creation"]``).
        free: The call went to a model known to be free (the local model, whatever
            name it reports).

    Returns:
        USD, or ``None`` if the model is unpriced (see the module docs).

    Example:
        >>> from podium.observe import Price, price_of
        >>> price_of("claude-3-5-sonnet-20241022", 1_000, 500)  # $3 and $15 per million
        0.0105
        >>> price_of("my-model", 1_000, 500) is None
        True
        >>> price_of("my-model", 1_000, 500, {"my-model": Price(1.0, 2.0)})
        0.002
    """
    name = (model or "").strip().lower()
    override = _override(name, {k.lower(): v for k, v in (prices or {}).items()})
    if override is not None:
        return (input_tokens * override.input + output_tokens * override.output) / 1_000_000
    if free or name in FREE_MODELS:
        return 0.0
    if not name:
        return None
    return _catalogue(name, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens)


def cost_of(
    model: str | None,
    input_tokens: int,
    output_tokens: int,
    prices: Mapping[str, Price] | None = None,
) -> float:
    """Cost in USD of one call, ``0.0`` when the model is unpriced.

    A sum of these undercounts whatever is unpriced: use :func:`price_of`, which
    says so (``None``), wherever that matters.
    """
    return price_of(model, input_tokens, output_tokens, prices) or 0.0
