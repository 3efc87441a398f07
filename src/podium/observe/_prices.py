"""Model prices, for the cost of each model call."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["DEFAULT_PRICES", "Price", "cost_of"]


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    """Price of a million prompt tokens."""
    output: float
    """Price of a million generated tokens."""


DEFAULT_PRICES: Mapping[str, Price] = {
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "o4-mini": Price(1.10, 4.40),
    "scripted": Price(0.0, 0.0),
    "qwen2.5-coder-0.5b-instruct": Price(0.0, 0.0),
}
"""List prices at the time of writing; override per call site with ``prices=``.
Local and scripted models cost 0 (their tokens are still counted)."""


def cost_of(
    model: str | None,
    input_tokens: int,
    output_tokens: int,
    prices: Mapping[str, Price] | None = None,
) -> float:
    """Cost in USD of one call; unknown models cost 0 (and are reported as unpriced).

    A dated model name (``gpt-4.1-mini-2025-04-14``) falls back to its undated prefix.
    """
    table = {**DEFAULT_PRICES, **(prices or {})}
    name = (model or "").lower()
    price = table.get(name)
    if price is None:
        for known in sorted(table, key=len, reverse=True):
            if name.startswith(known + "-"):
                price = table[known]
                break
    if price is None:
        return 0.0
    return (input_tokens * price.input + output_tokens * price.output) / 1_000_000
