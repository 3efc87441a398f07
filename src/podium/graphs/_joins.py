"""How a parallel graph joins its branches' answers: concat, vote, best-of, or a function.

A join is a function of the successful branches' answers, ``{branch: answer}`` in
branch order, that returns the final answer -- a ``str``, or a mapping with an
``"answer"`` key plus any JSON-serialisable details, which the graph records in its
``join_result`` state key. The built-in joins return such mappings so a caller (or a
test) can see how the answer was chosen.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from langgraph.pregel import Pregel

from podium.agents import Agent
from podium.errors import ConfigurationError
from podium.graphs._members import member_runnable
from podium.tools import Policy

__all__ = [
    "JoinFunction",
    "ballot",
    "best_of",
    "concat",
    "final_answer",
    "plain_answer",
    "resolve_join",
    "vote",
]

JoinFunction = Callable[[Mapping[str, str]], "str | Mapping[str, Any]"]
"""A join: successful answers ``{branch: answer}`` in branch order → the final answer
(a ``str``, or a mapping with ``"answer"`` and details)."""

_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n(?P<body>.*?)\n?```\s*$", re.DOTALL)


def final_answer(output: Any) -> str:
    """The text of the last AI message in a member's output (``""`` if there is none)."""
    messages = output.get("messages", []) if isinstance(output, Mapping) else []
    for message in reversed(messages):
        if isinstance(message, AIMessage):
            return message.text
    last = messages[-1] if messages else None
    return last.text if isinstance(last, BaseMessage) else ""


def plain_answer(output: Any) -> str:
    """:func:`final_answer` without the notes a parallel graph adds about failed branches.

    A parallel graph whose branches partly failed ends its answer with a note for the
    user and keeps the answer itself in the message's ``podium_answer`` metadata; a
    consumer that parses the answer (a pipeline stage with an ``output`` model) reads
    that instead.
    """
    messages = output.get("messages", []) if isinstance(output, Mapping) else []
    for message in reversed(messages):
        if isinstance(message, AIMessage):
            plain = message.response_metadata.get("podium_answer")
            return plain if isinstance(plain, str) else message.text
    return final_answer(output)


def strip_fences(text: str) -> str:
    """Remove one surrounding Markdown code fence (```json ... ```), if present."""
    stripped = text.strip()
    found = _FENCE.match(stripped)
    return found.group("body").strip() if found else stripped


def _normalise_text(text: str) -> str:
    return " ".join(text.casefold().split()).rstrip(".!")


def ballot(answer: str) -> str:
    r"""The normalised form of an answer, as ``join="vote"`` counts it.

    An answer that parses as JSON (optionally inside a code fence) counts as its
    canonical JSON (sorted keys, no whitespace), so ``{"a": 1, "b": 2}`` and
    ``{"b":2,"a":1}`` are the same vote; a JSON string, or text that is not JSON,
    counts case-folded with whitespace collapsed and a trailing ``.``/``!`` dropped,
    so ``"Yes."`` and ``"yes"`` are the same vote.

    Example:
        >>> ballot('```json\n{"b": 2, "a": 1}\n```') == ballot('{"a":1,"b":2}')
        True
        >>> ballot("  Paris. ")
        'paris'
    """
    text = strip_fences(answer)
    try:
        value = json.loads(text)
    except ValueError:
        return _normalise_text(text)
    if isinstance(value, str):
        return _normalise_text(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def concat(answers: Mapping[str, str]) -> dict[str, Any]:
    """Label each branch's answer with its name and join them in branch order."""
    text = "\n\n".join(f"## {name}\n{answer.strip()}" for name, answer in answers.items())
    return {"answer": text, "included": list(answers)}


def vote(answers: Mapping[str, str]) -> dict[str, Any]:
    """The answer most branches agree on, after normalising each (see :func:`ballot`).

    The ballot with the most votes wins (a plurality; ``majority`` says whether it
    also has more than half). The winning answer is the first winning branch's
    original text. When two or more ballots share the top count the vote is a
    **tie**: ``winner`` is ``None``, ``tie`` is ``True`` and the answer lists the
    tied candidates with their branches.
    """
    votes: dict[str, list[str]] = {}
    for name, answer in answers.items():
        votes.setdefault(ballot(answer), []).append(name)
    top = max((len(v) for v in votes.values()), default=0)
    leaders = [b for b, names in votes.items() if len(names) == top]
    details: dict[str, Any] = {"votes": votes, "counted": len(answers)}
    if len(leaders) != 1:
        listing = "; ".join(
            f"{answers[votes[b][0]].strip()!r} ({', '.join(votes[b])})" for b in leaders
        )
        return {
            **details,
            "answer": f"No majority: the branches tied {top}-{top} between {listing}.",
            "winner": None,
            "tie": True,
            "majority": False,
        }
    winner = leaders[0]
    return {
        **details,
        "answer": answers[votes[winner][0]].strip(),
        "winner": winner,
        "tie": False,
        "majority": top * 2 > len(answers),
    }


class _BestOf:
    """The join built by :func:`best_of`."""

    def __init__(self, scorer: Callable[[str], float]) -> None:
        self.scorer = scorer
        self.__name__ = f"best_of({getattr(scorer, '__name__', 'scorer')})"

    def __call__(self, answers: Mapping[str, str]) -> dict[str, Any]:
        scores = {name: float(self.scorer(answer)) for name, answer in answers.items()}
        best_name, best_score = None, -math.inf
        for name, score in scores.items():
            if score > best_score:  # ties keep the earlier branch
                best_name, best_score = name, score
        answer = answers[best_name].strip() if best_name is not None else ""
        return {"answer": answer, "winner": best_name, "scores": scores}


def best_of(scorer: Callable[[str], float]) -> JoinFunction:
    """A join that keeps the answer ``scorer`` rates highest.

    Args:
        scorer: Rates one answer; higher is better. Ties go to the branch listed first.

    Returns:
        A join for ``create_parallel_graph(..., join=best_of(scorer))``; it records
        ``winner`` and every branch's score in ``join_result``.

    Example:
        >>> pick = best_of(len)
        >>> pick({"short": "ok", "long": "a fuller answer"})["winner"]
        'long'
    """
    if not callable(scorer):
        raise ConfigurationError(
            f"best_of needs a function answer -> score, got {scorer!r}.",
            fix="Pass e.g. best_of(lambda answer: len(answer)).",
        )
    return _BestOf(scorer)


_BUILTIN_JOINS: dict[str, JoinFunction] = {"concat": concat, "vote": vote}


def resolve_join(
    join: object, policy: Policy | None, known: set[str]
) -> tuple[JoinFunction | Pregel[Any, Any, Any, Any], str]:
    """The join function (or compiled synthesiser) for ``join=``, and its kind's name.

    Raises:
        ConfigurationError: For anything but a built-in name, a function or an Agent.
    """
    if isinstance(join, str) and join in _BUILTIN_JOINS:
        return _BUILTIN_JOINS[join], join
    if isinstance(join, Agent):
        return member_runnable(join, known_tools=known), "synthesiser"
    if callable(join) and not isinstance(join, str):
        return join, str(getattr(join, "__name__", "custom"))
    fix = "Use join='concat', join='vote', join=best_of(scorer), a function, or an Agent."
    if join == "best_of":
        fix = "Pass join=best_of(scorer), where scorer rates an answer (higher is better)."
    raise ConfigurationError(
        f"Unknown join {join!r}; allowed: 'concat', 'vote', best_of(scorer), a function "
        "{branch: answer} -> answer, or a synthesiser Agent.",
        fix=fix,
    )
