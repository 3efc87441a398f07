"""Run a dataset through one or more graphs: pydantic-evals drives, podium records.

For each graph, ``pydantic_evals.Dataset.evaluate`` runs the cases (``repeat``
times each, ``concurrency`` at once) and applies the evaluators; podium supplies
the task -- one case on a fresh thread of the graph, in the evaluation's own SQLite
file for that graph (``OUT/<label>.sqlite``: checkpoints, ledger, run events,
thread registry, so ``podium trace THREAD --db OUT/<label>.sqlite`` shows any case)
-- and gives the evaluators the answer as output and the run record as
``ctx.attributes["run"]``.

Interrupt-safe: each finished case is appended to ``OUT/cases.jsonl`` at once, and
the evaluation runs on a daemon thread while the caller's thread waits, so Ctrl-C
returns at once with the finished cases (``EvalResults.interrupted``); cases not
yet started are skipped, and one in flight is dropped.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import tempfile
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langgraph.graph import StateGraph
from pydantic_evals import Case, CaseLifecycle, Dataset, increment_eval_metric, set_eval_attribute
from pydantic_evals.reporting import EvaluationReport, ReportCase, ReportCaseFailure

from podium._loading import import_object
from podium.checkpoints import sqlite_saver
from podium.errors import ConfigurationError
from podium.eval._dataset import Approvals, CaseInputs, load_dataset
from podium.eval._results import CaseResult, EvalResults
from podium.eval._run import RunRecord, run_case

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = ["GraphSource", "evaluate"]

GraphSource = StateGraph[Any] | Callable[..., StateGraph[Any]] | str
"""An uncompiled graph, a function returning one, or ``package.module:attr`` naming
either. A function may take a folder (``home``, a ``Path``: fresh for every case
run, for the graph's own data -- the demos' builders take it) and a keyword
``case`` (the pydantic-evals ``Case``)."""

_CASE: ContextVar[Case[CaseInputs, str, Any] | None] = ContextVar("podium_eval_case", default=None)


class _Stopped(Exception):
    """The evaluation was interrupted before this case started."""


@dataclass
class _Graph:
    label: str
    source: str
    target: Any
    takes_home: bool
    takes_case: bool

    def build(self, home: Path, case: Case[CaseInputs, str, Any] | None) -> StateGraph[Any]:
        if isinstance(self.target, StateGraph):
            return self.target
        kwargs = {"case": case} if self.takes_case else {}
        if self.takes_home:
            home.mkdir(parents=True, exist_ok=True)
            built = self.target(home, **kwargs)
        else:
            built = self.target(**kwargs)
        if not isinstance(built, StateGraph):
            raise ConfigurationError(
                f"Graph {self.label!r} ({self.source}) returned a {type(built).__name__}, "
                "not an uncompiled StateGraph.",
                fix="Return podium's create_*_graph result; the evaluation compiles it on "
                "its own SQLite file.",
            )
        return built


def _graph(label: str, source: GraphSource) -> _Graph:
    shown = source if isinstance(source, str) else getattr(source, "__qualname__", label)
    target = import_object(source, what="--graph") if isinstance(source, str) else source
    if isinstance(target, StateGraph):
        return _Graph(label, str(shown), target, False, False)
    if not callable(target):
        raise ConfigurationError(
            f"Graph {label!r} ({shown}) is a {type(target).__name__}, not an uncompiled "
            "StateGraph or a function returning one.",
            fix="Point at podium's create_*_graph result, or a function returning it.",
        )
    params = inspect.signature(target).parameters
    positional = [
        p
        for p in params.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "case"
    ]
    return _Graph(label, str(shown), target, bool(positional), "case" in params)


def _graphs(graphs: Mapping[str, GraphSource] | Sequence[GraphSource]) -> list[_Graph]:
    if isinstance(graphs, Mapping):
        items = list(graphs.items())
    else:
        items = []
        for source in graphs:
            if isinstance(source, str):
                label, sep, spec = source.partition("=")
                if not sep:
                    label, spec = source.rpartition(":")[2] or source, source
                items.append((label, spec))
            else:
                items.append((getattr(source, "__name__", f"graph{len(items) + 1}"), source))
    labels = [label for label, _ in items]
    if not items or len(set(labels)) != len(labels):
        raise ConfigurationError(
            f"Graphs to evaluate need distinct labels; got {labels or 'none'}.",
            fix="Name them: --graph single=pkg.mod:build_one --graph desk=pkg.mod:build_desk.",
        )
    return [_graph(label, source) for label, source in items]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:60] or "case"


class _Collector:
    """Turns each finished case into a :class:`CaseResult`, at once and on disk."""

    def __init__(
        self, results: EvalResults, out: Path, stop: threading.Event, on_result: Any
    ) -> None:
        self.results = results
        self.stop = stop
        self.on_result = on_result
        self.lock = threading.Lock()
        self.path = out / "cases.jsonl"
        self.finished: dict[str, list[Any]] = {}

    def add(
        self, label: str, item: ReportCase[Any, Any, Any] | ReportCaseFailure[Any, Any, Any]
    ) -> None:
        if self.stop.is_set():
            return
        result = _case_result(label, item)
        with self.lock:
            self.results.cases.append(result)
            self.finished.setdefault(label, []).append(item)
            with self.path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(result.to_json(), default=str) + "\n")
        if self.on_result is not None:
            self.on_result(result)


def _case_result(
    label: str, item: ReportCase[Any, Any, Any] | ReportCaseFailure[Any, Any, Any]
) -> CaseResult:
    metadata = item.metadata if isinstance(item.metadata, dict) else {}
    category = metadata.get("category")
    base: dict[str, Any] = {
        "graph": label,
        "case": item.source_case_name or item.name,
        "run": item.name,
        "category": str(category) if category is not None else None,
    }
    if isinstance(item, ReportCaseFailure):
        return CaseResult(
            **base, passed=False, status="error", details={"error": item.error_message}
        )
    record = item.attributes.get("run")
    assertions = {
        name: {"value": bool(r.value), "reason": r.reason or ""}
        for name, r in item.assertions.items()
    }
    failures = [f"{f.name}: {f.error_message}" for f in item.evaluator_failures]
    status = record.status if isinstance(record, RunRecord) else "error"
    return CaseResult(
        **base,
        passed=status != "error" and all(a["value"] for a in assertions.values()) and not failures,
        status=status,
        assertions=assertions,
        scores={n: float(r.value) for n, r in item.scores.items()},
        labels={n: str(r.value) for n, r in item.labels.items()},
        evaluator_errors=failures,
        details=record.to_json() if isinstance(record, RunRecord) else {},
        record=record if isinstance(record, RunRecord) else None,
    )


def _run_graph(
    dataset: Dataset[CaseInputs, str, Any],
    graph: _Graph,
    out: Path,
    collector: _Collector,
    *,
    repeat: int,
    concurrency: int,
    approvals: Approvals,
) -> None:
    saver = sqlite_saver(out / f"{_slug(graph.label)}.sqlite")
    compiled: dict[str, Any] = {}
    stop = collector.stop

    def task(inputs: CaseInputs) -> str:
        if stop.is_set():
            raise _Stopped("interrupted before this case started")
        case = _CASE.get()
        thread_id = f"{_slug(case.name if case and case.name else 'case')}-{uuid.uuid4().hex[:8]}"
        home = out / _slug(graph.label) / thread_id
        if isinstance(graph.target, StateGraph):
            if "app" not in compiled:
                compiled["app"] = graph.target.compile(checkpointer=saver)
            app = compiled["app"]
        else:
            app = graph.build(home, case).compile(checkpointer=saver)
        record = run_case(app, inputs, thread_id, approvals=approvals)
        set_eval_attribute("run", record)
        for name, value in record.metrics().items():
            increment_eval_metric(name, value)
        return record.answer

    class Lifecycle(CaseLifecycle[CaseInputs, str, Any]):
        async def setup(self) -> None:
            _CASE.set(self.case)

        async def teardown(self, result: Any) -> None:
            if result is not None and not (
                isinstance(result, ReportCaseFailure) and "_Stopped" in result.error_message
            ):
                collector.add(graph.label, result)

    try:
        asyncio.run(
            dataset.evaluate(
                task,
                name=graph.label,
                task_name=graph.label,
                max_concurrency=concurrency,
                progress=False,
                repeat=repeat,
                lifecycle=Lifecycle,
            )
        )
    finally:  # every case has finished or was skipped by now
        saver.close()


def evaluate(
    dataset: Dataset[CaseInputs, str, Any] | str | Path,
    graphs: Mapping[str, GraphSource] | Sequence[GraphSource],
    *,
    repeat: int = 1,
    concurrency: int = 1,
    approvals: Approvals = "wait",
    out: str | Path | None = None,
    progress: Progress | None = None,
    on_result: Callable[[CaseResult], None] | None = None,
    model: str | None = None,
) -> EvalResults:
    """Run every case of ``dataset`` on every graph and score it.

    Args:
        dataset: A dataset from :func:`load_dataset`, or the path of one.
        graphs: ``{label: graph}``, or a list of graphs (``"label=pkg.mod:attr"`` or
            ``"pkg.mod:attr"``, labelled by the attribute). See :data:`GraphSource`.
        repeat: Runs per case (for variance on sampled models).
        concurrency: Cases run at once, per graph.
        approvals: What answers a request no scripted decision matches: ``wait``
            (the case ends waiting), ``approve`` or ``reject``.
        out: The folder for the SQLite files, ``cases.jsonl`` and ``results.json``
            (default: a new temporary folder).
        progress: A rich ``Progress`` to advance (one task per graph).
        on_result: Called with each case result as it finishes.
        model: Recorded in the results as the model used (the CLI's ``--model``).

    Returns:
        The results; ``interrupted`` if Ctrl-C stopped it (finished cases are kept).

    Raises:
        ConfigurationError: A graph cannot be loaded or built, labels repeat, or
            ``repeat``/``concurrency`` are below 1.
    """
    if repeat < 1 or concurrency < 1:
        raise ConfigurationError(
            f"repeat and concurrency must be at least 1 (got {repeat} and {concurrency}).",
            fix="Pass --repeat N and --concurrency N with N >= 1.",
        )
    loaded = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    entries = _graphs(graphs)
    folder = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="podium-eval-"))
    folder.mkdir(parents=True, exist_ok=True)
    results = EvalResults(
        dataset=loaded.name,
        graphs={g.label: g.source for g in entries},
        repeat=repeat,
        model=model,
        out=str(folder),
    )
    stop = threading.Event()
    tasks = {
        g.label: progress.add_task(g.label, total=len(loaded.cases) * repeat)
        for g in entries
        if progress is not None
    }

    def finished(result: CaseResult) -> None:
        if progress is not None:
            progress.advance(tasks[result.graph])
        if on_result is not None:
            on_result(result)

    collector = _Collector(results, folder, stop, finished)
    for graph in entries:
        failure: list[BaseException] = []

        def work(graph: _Graph = graph, failure: list[BaseException] = failure) -> None:
            try:
                _run_graph(
                    loaded,
                    graph,
                    folder,
                    collector,
                    repeat=repeat,
                    concurrency=concurrency,
                    approvals=approvals,
                )
            except BaseException as exc:  # handed to the caller's thread
                failure.append(exc)

        worker = threading.Thread(target=work, name=f"podium-eval-{graph.label}", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.1)
        except KeyboardInterrupt:
            stop.set()
            results.interrupted = True
            break
        if failure:
            raise failure[0]
    results.reports = {
        label: EvaluationReport(
            name=label,
            cases=[i for i in items if isinstance(i, ReportCase)],
            failures=[i for i in items if isinstance(i, ReportCaseFailure)],
            dataset_name=loaded.name,
        )
        for label, items in collector.finished.items()
    }
    results.save(folder / "results.json")
    return results
