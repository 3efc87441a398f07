"""The CLI's commands: each takes parsed arguments and returns an exit status."""

from __future__ import annotations

import argparse
import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.pregel import Pregel
from langgraph.types import StateSnapshot
from rich.console import Console

from podium import runs
from podium.checkpoints import prune, thread_sizes
from podium.cli._render import describe, jsonable, show_request
from podium.cli._threads import Workspace
from podium.demos import DEMOS
from podium.errors import ConfigurationError, UnknownRequestError
from podium.models import describe_default, local_model_status
from podium.observe import render_cost, render_trace
from podium.tools import ApprovalRequest, Decision

__all__ = ["COMMANDS"]


def _workspace(args: argparse.Namespace) -> Workspace:
    home = Path(args.home or os.environ.get("PODIUM_HOME", ".podium"))
    return Workspace(home, Path(args.db) if args.db else None)


def _location_flags(args: argparse.Namespace) -> list[str]:
    flags: list[str] = []
    if args.home:
        flags += ["--home", args.home]
    if args.db:
        flags += ["--db", args.db]
    return flags


@contextmanager
def _opened(args: argparse.Namespace) -> Iterator[Workspace]:
    ws = _workspace(args)
    try:
        yield ws
    finally:
        ws.close()


def _config(thread: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread}}


def _messages_in(update: Any) -> list[BaseMessage]:
    values = update if isinstance(update, dict) else getattr(update, "update", None)
    if not isinstance(values, dict):
        return []
    found = values.get("messages") or []
    return [m for m in found if isinstance(m, BaseMessage)]


def _key(message: BaseMessage) -> str:
    """Identity for display: a subgraph's message reappears in its parent under a new id."""
    calls = getattr(message, "tool_calls", None) or []
    return json.dumps(
        [
            message.type,
            getattr(message, "name", None),
            message.text,
            [(c["name"], c["args"]) for c in calls],
        ],
        default=str,
    )


def _known_messages(app: Pregel[Any, Any, Any, Any], config: RunnableConfig) -> list[BaseMessage]:
    """Messages already shown for this thread, including paused subgraphs' own."""
    found: list[BaseMessage] = []
    pending = [app.get_state(config, subgraphs=True)]
    while pending:
        snapshot = pending.pop()
        values = snapshot.values if isinstance(snapshot.values, dict) else {}
        found += [m for m in values.get("messages") or [] if isinstance(m, BaseMessage)]
        pending += [t.state for t in snapshot.tasks if isinstance(t.state, StateSnapshot)]
    return found


def drive(
    app: Pregel[Any, Any, Any, Any],
    thread: str,
    payload: Any,
    console: Console,
    as_json: bool,
    extra: list[str],
) -> dict[str, Any]:
    """Run (or resume) a thread, showing progress; report where it stopped."""
    config = _config(thread)
    seen: set[str] = {_key(m) for m in _known_messages(app, config)}
    steps: list[str] = []
    started = time.perf_counter()
    quiet = as_json or not console.is_terminal
    status = nullcontext() if quiet else console.status("the agents are working...")
    with status:
        for item in app.stream(payload, config, stream_mode="updates", subgraphs=True):
            chunk: Any = item[1] if isinstance(item, tuple) else item
            for node, update in (chunk if isinstance(chunk, dict) else {}).items():
                if node.startswith("__"):
                    continue
                for message in _messages_in(update):
                    key = _key(message)
                    if key in seen:
                        continue
                    seen.add(key)
                    line = describe(message)
                    if line:
                        steps.append(line)
                        if not as_json:
                            console.print(line, highlight=False, markup=False)
    info = runs.inspect(app, config)
    messages = info.values.get("messages") or []
    answer = next(
        (m.text for m in reversed(messages) if isinstance(m, AIMessage) and not m.tool_calls), None
    )
    report = {
        "thread": thread,
        "status": "waiting" if info.pending else "done",
        "pending": [r.to_json() for r in info.pending],
        "answer": answer if not info.pending else None,
        "seconds": round(time.perf_counter() - started, 2),
        "steps": steps,
    }
    if as_json:
        print(json.dumps(report, indent=2, default=str))
    else:
        for request in info.pending:
            show_request(console, thread, request, extra)
        if not info.pending:
            console.print(f"\ndone in {report['seconds']} s (thread {thread})", highlight=False)
    return report


# -- commands ------------------------------------------------------------------------
def cmd_models(args: argparse.Namespace, console: Console) -> int:
    info = {
        "default": describe_default(),
        "PODIUM_MODEL": os.environ.get("PODIUM_MODEL"),
        "OPENAI_API_KEY": "set" if os.environ.get("OPENAI_API_KEY") else "not set",
        "OPENAI_BASE_URL": os.environ.get("OPENAI_BASE_URL"),
        "local": local_model_status(),
    }
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    console.print(f"default model : {info['default']}", highlight=False)
    console.print(f"PODIUM_MODEL  : {info['PODIUM_MODEL'] or '(not set)'}", highlight=False)
    console.print(f"OPENAI_API_KEY: {info['OPENAI_API_KEY']}", highlight=False)
    if info["OPENAI_BASE_URL"]:
        console.print(f"OPENAI_BASE_URL: {info['OPENAI_BASE_URL']}", highlight=False)
    console.print("local model   :")
    for key, value in local_model_status().items():
        console.print(f"  {key:<16}{value}", highlight=False)
    return 0


def _start(
    args: argparse.Namespace, console: Console, graph: str, title: str, request: str, prefix: str
) -> int:
    thread = args.thread or f"{prefix}-{uuid.uuid4().hex[:8]}"
    model = args.model if args.model != "default" else describe_default()
    with _opened(args) as ws:
        ws.home.mkdir(parents=True, exist_ok=True)
        app = ws.build(graph, model).compile(checkpointer=ws.saver())  # validate first
        if any(e.thread_id == thread for e in ws.entries()):
            raise ConfigurationError(
                f"Thread {thread!r} already exists in {ws.db}.",
                fix=f"Use `podium resume {thread}` to continue it, or pick another --thread.",
            )
        ws.register(thread, graph, model, request)
        if not args.json:
            console.print(f"{title} (model {model!r}, thread {thread})", markup=False)
            console.print(f"> {request}", markup=False)
        drive(
            app,
            thread,
            {"messages": [("user", request)]},
            console,
            args.json,
            _location_flags(args),
        )
    return 0


def cmd_demo(args: argparse.Namespace, console: Console) -> int:
    demo = DEMOS[args.name]
    title = f"podium demo {demo.name!r}: {demo.title}"
    return _start(
        args, console, f"demo:{demo.name}", title, args.request or demo.default_request, demo.name
    )


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    return _start(args, console, args.graph, f"podium run {args.graph}", args.request, "run")


def _pick(requests: list[ApprovalRequest], wanted: str | None, thread: str) -> ApprovalRequest:
    if wanted:
        for request in requests:
            if request.id == wanted:
                return request
        ids = ", ".join(r.id for r in requests) or "none"
        raise UnknownRequestError(
            f"Request {wanted!r} is not pending on thread {thread!r}. Pending: {ids}.",
            fix=f"Run `podium pending {thread}`.",
        )
    if len(requests) == 1:
        return requests[0]
    if not requests:
        raise UnknownRequestError(
            f"Thread {thread!r} has no pending requests.",
            fix=f"Run `podium inspect {thread}` to see its state.",
        )
    ids = ", ".join(r.id for r in requests)
    raise UnknownRequestError(
        f"Thread {thread!r} has {len(requests)} pending requests ({ids}); say which.",
        fix=f"Run `podium approve {thread} REQUEST_ID ...`.",
    )


def cmd_decide(args: argparse.Namespace, console: Console) -> int:
    by = args.by or os.environ.get("USER") or "cli"
    if args.command == "approve":
        if args.edit:
            try:
                edited = json.loads(args.edit)
            except json.JSONDecodeError as exc:
                raise ConfigurationError(
                    f"--edit is not valid JSON ({exc.msg} at position {exc.pos}).",
                    fix="Pass the new arguments as a JSON object, e.g. --edit '{\"amount\": 80}'.",
                ) from exc
            decision = Decision.parse({"action": "edit", "args": edited, "by": by})
        else:
            decision = Decision.approve(by=by)
    elif args.command == "reject":
        decision = Decision.reject(args.reason, by=by)
    else:
        decision = Decision.parse({"action": "respond", "message": args.message, "by": by})
    with _opened(args) as ws:
        app = ws.app(ws.entry(args.thread))
        pending = runs.pending(app, _config(args.thread))
        if args.request and args.request not in {r.id for r in pending}:
            # let runs explain (unknown, stale, already decided, another thread)
            runs.resume_command(app, _config(args.thread), {args.request: decision})
        request = _pick(pending, args.request, args.thread)
        command = runs.resume_command(app, _config(args.thread), {request.id: decision})
        if not args.json:
            console.print(
                f"{decision.action} {request.id} ({request.tool}) by {by}; resuming "
                f"thread {args.thread}",
                highlight=False,
                markup=False,
            )
        drive(app, args.thread, command, console, args.json, _location_flags(args))
        runs.check_decisions(app, _config(args.thread), {request.id: decision})
    return 0


def cmd_resume(args: argparse.Namespace, console: Console) -> int:
    with _opened(args) as ws:
        app = ws.app(ws.entry(args.thread))
        runs.inspect(app, _config(args.thread))  # unknown thread → clear error
        drive(app, args.thread, None, console, args.json, _location_flags(args))
    return 0


def cmd_pending(args: argparse.Namespace, console: Console) -> int:
    with _opened(args) as ws:
        entries = [ws.entry(args.thread)] if args.thread else ws.entries()
        found: list[tuple[str, ApprovalRequest]] = []
        for entry in entries:
            app = ws.app(entry)
            found += [(entry.thread_id, r) for r in runs.pending(app, _config(entry.thread_id))]
        if args.json:
            print(json.dumps([{"thread": t, **r.to_json()} for t, r in found], indent=2))
            return 0
        if not found:
            console.print("no pending requests")
        for thread, request in found:
            show_request(console, thread, request, _location_flags(args))
    return 0


def cmd_inspect(args: argparse.Namespace, console: Console) -> int:
    with _opened(args) as ws:
        entry = ws.entry(args.thread)
        info = runs.inspect(ws.app(entry), _config(args.thread))
        messages = info.values.get("messages") or []
        data = {
            "thread": info.thread_id,
            "graph": entry.graph,
            "model": entry.model,
            "step": info.step,
            "next": list(info.next),
            "status": "waiting" if info.pending else ("running" if info.next else "done"),
            "pending": [r.to_json() for r in info.pending],
            "messages": jsonable(messages),
        }
        if args.json:
            print(json.dumps(data, indent=2, default=str))
            return 0
        console.print(
            f"thread {info.thread_id}: {data['status']} (graph {entry.graph}, model "
            f"{entry.model}, step {info.step}, next {list(info.next) or '-'})",
            highlight=False,
            markup=False,
        )
        for message in messages:
            line = describe(message)
            if line:
                console.print(f"  {line}", highlight=False, markup=False)
        for request in info.pending:
            show_request(console, info.thread_id, request, _location_flags(args))
    return 0


def cmd_threads(args: argparse.Namespace, console: Console) -> int:
    with _opened(args) as ws:
        entries = {e.thread_id: e for e in ws.entries()}
        sizes = thread_sizes(ws.saver()) if entries else []
        rows = [
            {
                "thread": s.thread_id,
                "graph": entries[s.thread_id].graph if s.thread_id in entries else "?",
                "bytes": s.bytes,
                "checkpoints": s.checkpoints,
                "last_step": s.last_step,
                "updated_at": s.updated_at,
                "pending_approvals": s.pending_approvals,
            }
            for s in sizes
        ]
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    if not rows:
        console.print("no threads")
    for r in rows:
        console.print(
            f"{r['thread']:<24} {r['graph']:<16} {r['bytes']:>9} B "
            f"{r['checkpoints']:>4} ckpts  step {r['last_step']}  pending "
            f"{r['pending_approvals']}",
            highlight=False,
            markup=False,
        )
    return 0


def cmd_prune(args: argparse.Namespace, console: Console) -> int:
    with _opened(args) as ws:
        ws.entry(args.thread)
        result = prune(ws.saver(), args.thread, keep_last=args.keep_last)
    if args.json:
        print(
            json.dumps({"thread": result.thread_id, "kept": result.kept, "deleted": result.deleted})
        )
    else:
        console.print(
            f"thread {result.thread_id}: kept {result.kept} checkpoints, deleted {result.deleted}",
            highlight=False,
        )
    return 0


_SINCE = re.compile(r"^(\d+)([smhd])$")


def _since(value: str | None) -> float | None:
    if not value:
        return None
    match = _SINCE.match(value)
    if match:
        scale = {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
        return time.time() - int(match.group(1)) * scale
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError as exc:
        raise ConfigurationError(
            f"--since {value!r} is neither a duration (30m, 2h, 7d) nor an ISO date."
        ) from exc


def _events(ws: Workspace, thread: str | None, since: float | None) -> list[dict[str, Any]]:
    entries = ws.entries()
    if not entries:
        return []
    app = ws.app(entries[-1]) if thread is None else ws.app(ws.entry(thread))
    return runs.events(app, _config(thread) if thread else None, since=since)


def cmd_trace(args: argparse.Namespace, console: Console) -> int:
    with _opened(args) as ws:
        ws.entry(args.thread)
        events = _events(ws, args.thread, None)
    if args.json:
        print(json.dumps(events, indent=2, default=str))
    else:
        render_trace(events, console, title=f"thread {args.thread}")
    return 0


def cmd_cost(args: argparse.Namespace, console: Console) -> int:
    with _opened(args) as ws:
        if args.thread:
            ws.entry(args.thread)
        events = _events(ws, args.thread, _since(args.since))
    render_cost(
        events,
        console,
        title=f"cost: {args.thread or 'all threads'}"
        + (f" since {args.since}" if args.since else ""),
    )
    return 0


COMMANDS = {
    "run": cmd_run,
    "models": cmd_models,
    "demo": cmd_demo,
    "approve": cmd_decide,
    "reject": cmd_decide,
    "respond": cmd_decide,
    "resume": cmd_resume,
    "pending": cmd_pending,
    "inspect": cmd_inspect,
    "threads": cmd_threads,
    "prune": cmd_prune,
    "trace": cmd_trace,
    "cost": cmd_cost,
}
