"""The research-brief demo: parallel researchers → typed facts → validation → gated report.

A pipeline (``create_pipeline_graph``) of four stages over a small shipped corpus
(``podium/demos/corpus/*.txt``, one document per heating option of a fictional town):

1. ``research`` -- a parallel team (``create_parallel_graph``), one researcher per
   document, each with a single ``read_document`` tool whose ``doc_id`` is an enum of
   exactly its document and a typed answer (``Notes``: two claims); the branches'
   notes are concatenated.
2. ``extract`` -- an agent stage with ``output=Brief``: the notes become typed facts,
   claims keyed by their source document.
3. ``validate`` -- a function stage: a claim is kept only if it holds a number, every
   number in it and most of its words occur in its document. Too few supported claims
   send the work back to ``extract`` with the reasons (:class:`~podium.graphs.Rework`,
   bounded by the pipeline's ``max_rework``).
4. ``write_report`` -- an action stage: a human approves (or edits) the validated
   facts, then the report is written to ``<home>/reports/brief.md`` and recorded in the
   ``reports`` table, once (the gate's exactly-once record).
"""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from podium.agents import Agent
from podium.demos._db import connect, create_db, drop_tables, read_tables
from podium.graphs import Rework, Stage, StageInput, create_parallel_graph, create_pipeline_graph
from podium.tools import GovernedGraph, ToolTraits

__all__ = [
    "DEFAULT_REQUEST",
    "DOCUMENTS",
    "Brief",
    "Notes",
    "build_research_brief",
    "check_facts",
    "read_corpus",
    "research_effects",
    "reset_research",
]

DEFAULT_REQUEST = (
    "Write a short brief for Northvale's council on heating options: heat pumps, district "
    "heating and solar thermal. Use the facts in our documents."
)
DB_NAME = "research.sqlite"
EFFECT_TABLES = ("reports",)
MIN_FACTS = 2
"""Fewer supported facts than this send the work back to ``extract``."""

DOCUMENTS: dict[str, str] = {
    "heat_pumps": "heat pumps",
    "district_heating": "district heating",
    "solar_thermal": "solar thermal",
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL, title TEXT NOT NULL,
    facts INTEGER NOT NULL, body TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);
"""


Claim = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9 ,.;:'%()/-]{20,160}$",
        description="One sentence from the document, with its number.",
    ),
]
"""One plain sentence: 20 to 160 characters of a small alphabet, so the grammar stops
a small model from drifting into another script or writing a bare topic name."""


class Notes(BaseModel):
    """A researcher's findings in its document."""

    facts: Annotated[list[Claim], Field(min_length=2, max_length=2)]


class Brief(BaseModel):
    """The typed facts a report is written from: claims keyed by their source document.

    One field per document makes the source part of the shape: the model fills each
    document's list in turn and cannot attribute a claim to a source by mistake.
    """

    heat_pumps: Annotated[list[Claim], Field(max_length=2)]
    district_heating: Annotated[list[Claim], Field(max_length=2)]
    solar_thermal: Annotated[list[Claim], Field(max_length=2)]

    def claims(self) -> list[tuple[str, str]]:
        """Every ``(document, claim)`` pair, in document order."""
        return [(doc, claim) for doc in DOCUMENTS for claim in getattr(self, doc)]


@cache
def read_corpus() -> dict[str, str]:
    """The shipped documents, by id."""
    root = files("podium.demos").joinpath("corpus")
    return {doc: root.joinpath(f"{doc}.txt").read_text(encoding="utf-8") for doc in DOCUMENTS}


def _reader(doc: str) -> BaseTool:
    def read_document(doc_id: str) -> str:
        text = read_corpus().get(doc_id)
        if text is None:  # pragma: no cover - the schema allows only this document
            return f"There is no document {doc_id!r}."
        title, *lines = [line.strip() for line in text.splitlines() if line.strip()]
        return f"{title}\n" + "\n".join(f"- {line}" for line in lines)

    class Args(BaseModel):
        doc_id: Literal[doc] = Field(description="The document to read.")  # type: ignore[valid-type]

    built = StructuredTool.from_function(
        func=read_document,
        name="read_document",
        description=f"Read the document about {DOCUMENTS[doc]}.",
        args_schema=Args,
    )
    built.metadata = {"podium": ToolTraits(risk="low", read_only=True)}
    return built


def _researcher(doc: str, model: str | BaseChatModel) -> Agent:
    return Agent(
        name=doc,
        description=f"Researches {DOCUMENTS[doc]}.",
        instructions=(
            f"You research {DOCUMENTS[doc]} for a report. Call read_document. Then "
            "final_answer with the two sentences of the document that hold the most "
            "important numbers, copied word for word."
        ),
        model=model,
        tools=[_reader(doc)],
        output=Notes,
        max_steps=3,
        max_tokens=200,
    )


_NUMBER = re.compile(r"\d[\d,.]*")
_WORD = re.compile(r"[a-z]{4,}")


def _numbers(text: str) -> set[str]:
    return {n.rstrip(".,").replace(",", "") for n in _NUMBER.findall(text)}


def check_facts(brief: Brief) -> tuple[Brief, list[str]]:
    """Keep the supported claims; say why the others are not.

    A claim is supported when it holds a number, every number in it occurs in its
    document, at least half of its words (four letters or more) do, and it does not
    repeat another.
    """
    corpus = read_corpus()
    kept: dict[str, list[str]] = {doc: [] for doc in DOCUMENTS}
    problems: list[str] = []
    for doc, claim in brief.claims():
        text = corpus[doc].lower()
        missing = sorted(_numbers(claim) - _numbers(text))
        words = set(_WORD.findall(claim.lower()))
        if not _numbers(claim):
            problems.append(f"{claim[:40]!r} has no number from {doc}")
        elif missing:
            problems.append(f"{', '.join(missing)} is not in {doc}")
        elif len({w for w in words if w in text}) * 2 < len(words):
            problems.append(f"{claim[:40]!r}... is not from {doc}")
        elif claim in kept[doc]:
            problems.append(f"{doc} repeats a claim")
        else:
            kept[doc].append(claim)
    return Brief.model_validate(kept), problems


def _validate(inp: StageInput) -> Brief | Rework:
    brief = inp.previous
    if not isinstance(brief, Brief):  # pragma: no cover - the pipeline validates it
        brief = Brief.model_validate(brief)
    kept, problems = check_facts(brief)
    if len(kept.claims()) < MIN_FACTS:
        problems.append(f"only {len(kept.claims())} supported; at least {MIN_FACTS} needed")
        return Rework(
            to="extract",
            feedback="Copy claims word for word from each document's notes. Problems: "
            + "; ".join(problems)
            + ".",
        )
    return kept


def _render(brief: Brief) -> str:
    lines = ["# Heating options for Northvale", ""]
    for doc, label in DOCUMENTS.items():
        claims = getattr(brief, doc)
        if claims:
            lines += [f"## {label.capitalize()}", *(f"- {c}" for c in claims), ""]
    lines.append("Sources: " + ", ".join(f"corpus/{d}.txt" for d in DOCUMENTS))
    return "\n".join(lines) + "\n"


def _writer(home: Path) -> Any:
    def write_report(inp: StageInput) -> str:
        brief = inp.previous
        if not isinstance(brief, Brief):  # pragma: no cover - the pipeline validates it
            brief = Brief.model_validate(brief)
        body = _render(brief)
        out = home / "reports" / "brief.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(body, encoding="utf-8")
        with connect(home / DB_NAME) as db:
            db.execute(
                "INSERT INTO reports (path, title, facts, body) VALUES (?, ?, ?, ?)",
                (str(out), "Heating options for Northvale", len(brief.claims()), body),
            )
        return f"Report written to {out} with {len(brief.claims())} facts."

    return write_report


def reset_research(home: Path) -> None:
    """Forget written reports (rows and the file)."""
    drop_tables(home / DB_NAME, EFFECT_TABLES)
    (home / "reports" / "brief.md").unlink(missing_ok=True)


def research_effects(home: Path) -> dict[str, list[dict[str, Any]]]:
    """The reports written."""
    return read_tables(home / DB_NAME, EFFECT_TABLES)


def build_research_brief(
    home: Path, model: str | BaseChatModel = "default"
) -> GovernedGraph[Any, Any, Any, Any]:
    """The research pipeline, writing its report under ``home``."""
    create_db(home / DB_NAME, _SCHEMA)
    team = create_parallel_graph(
        [_researcher(doc, model) for doc in DOCUMENTS],
        name="researchers",
        description="One researcher per document.",
    )
    extractor = Agent(
        name="extractor",
        description="Turns research notes into typed facts.",
        instructions=(
            "Turn the research notes into the brief: for each document, copy its two most "
            "important claims word for word from that document's notes."
        ),
        model=model,
        max_steps=2,
        max_tokens=400,
    )
    return create_pipeline_graph(
        [
            Stage("research", team),
            Stage("extract", extractor, output=Brief),
            Stage("validate", _validate, output=Brief, rework_to="extract"),
            Stage("write_report", _writer(home), action=True),
        ],
        max_rework=2,
        name="research_brief",
        description="Researches the corpus and writes a validated brief.",
    )
