"""Evaluation: datasets of cases, checks, and patterns compared side by side.

``podium eval DATASET --graph A --graph B`` (or :func:`evaluate`) runs every case
on every graph, each on a fresh thread, answers approval requests with the case's
scripted decisions, and scores the final answer, the tool trajectory, the governance
outcomes and the limits; the numbers come from podium's run ledger. Datasets,
evaluator plumbing, concurrency, repeats and per-case reports are pydantic-evals';
podium adds the graph runner, the trajectory/governance/limit checks, the
ledger-backed metrics, the side-by-side comparison and the regression check.

Why pydantic-evals: it is maintained (with pydantic-ai), small (four packages more),
and good at what it covers; its own trajectory checks read pydantic-ai's OpenTelemetry
spans, so the LangGraph ones are podium's. agentevals (LangChain's trajectory matcher)
was not taken: unreleased since 2025-07, it pulls in ``langchain`` and ``openevals``,
and its whole-list match modes lack "in this order, others between" and "not called".

Nothing here is imported by ``import podium``; pydantic-evals loads on first use.

Example:
    >>> from podium.eval import evaluate, load_dataset  # doctest: +SKIP
    >>> results = evaluate(load_dataset("evals/support/cases.yaml"),  # doctest: +SKIP
    ...                    {"single": build_support_agent, "desk": build_support_desk})
    >>> results.render(console)  # doctest: +SKIP
"""

from typing import TYPE_CHECKING

from podium._lazy import attach as _attach

if TYPE_CHECKING:
    from podium.eval._answers import JsonSchema, Judge, PythonCheck, Regex
    from podium.eval._checks import (
        ApprovalRequested,
        MaxCost,
        MaxModelCalls,
        MaxTokens,
        NoApprovalRequested,
        NoEscalation,
        NoRefusal,
        NoUnapprovedRuns,
        Status,
        ToolCalled,
        ToolNotCalled,
        ToolsInOrder,
        ToolsSubset,
    )
    from podium.eval._dataset import CaseInputs, ScriptedDecision, load_dataset
    from podium.eval._evaluate import GraphSource, evaluate
    from podium.eval._render import plot_comparison, render_results
    from podium.eval._results import (
        CaseResult,
        EvalResults,
        GraphSummary,
        Tolerance,
        wilson_interval,
    )
    from podium.eval._run import RunRecord, ToolCall, run_case

__getattr__, __dir__ = _attach(__name__)

__all__ = [
    "ApprovalRequested",
    "CaseInputs",
    "CaseResult",
    "EvalResults",
    "GraphSource",
    "GraphSummary",
    "JsonSchema",
    "Judge",
    "MaxCost",
    "MaxModelCalls",
    "MaxTokens",
    "NoApprovalRequested",
    "NoEscalation",
    "NoRefusal",
    "NoUnapprovedRuns",
    "PythonCheck",
    "Regex",
    "RunRecord",
    "ScriptedDecision",
    "Status",
    "Tolerance",
    "ToolCall",
    "ToolCalled",
    "ToolNotCalled",
    "ToolsInOrder",
    "ToolsSubset",
    "evaluate",
    "load_dataset",
    "plot_comparison",
    "render_results",
    "run_case",
    "wilson_interval",
]
