"""Short channel versions for podium's SQLite savers (see :class:`CompactVersions`)."""

from __future__ import annotations

from typing import Any

__all__ = ["CompactVersions"]

_PREFIX = "+"
_DIGITS = 9
_LIMIT = 10**_DIGITS


class CompactVersions:
    """Short channel versions that stock LangGraph savers continue correctly.

    LangGraph's stock savers version channels as ``"<32-digit counter>.<random>"``
    (about 50 characters); the random part keeps Postgres's blob rows (keyed by
    version) apart across forks. SQLite stores each checkpoint's values inline, so a
    counter is enough: podium writes ``"+000000007"`` -- ``+`` and the counter in
    nine digits. That form is what makes a podium thread a LangGraph thread:

    * LangGraph compares versions with ``>`` and takes their ``max``, so every
      version of a thread must be of one type: strings, as the stock savers write
      (integers, which podium wrote before, made a stock saver's next version a
      string beside integers: ``TypeError: '>' not supported``);
    * the stock saver's next version after ``"+000000007"`` is
      ``int("+000000007") + 1`` in its own form, and ``+`` sorts below every digit, so
      each stock version sorts above every podium version: order is kept in both
      directions (podium → stock, stock → podium, and back);
    * among themselves, podium's fixed-width counters sort as numbers.

    A thread a stock saver started or continued (its newest versions in the stock
    form) keeps getting stock versions; a counter past nine digits does too. Each
    checkpoint stores about six versions, so a checkpoint is ~60 bytes larger than
    with bare integers and ~250 bytes smaller than with stock versions
    (``benchmarks/REPORT.md``, row 4b). Threads written by earlier podium builds
    (integer versions) continue with integers.
    """

    def get_next_version(self, current: Any, channel: None) -> Any:
        """The next channel version (see the class docs)."""
        if isinstance(current, int):  # a thread written with integer versions
            return current + 1
        if current is None or current.startswith(_PREFIX):
            following = (int(current) if current else 0) + 1
            if following < _LIMIT:
                return f"{_PREFIX}{following:0{_DIGITS}d}"
        return super().get_next_version(current, channel)  # type: ignore[misc]
