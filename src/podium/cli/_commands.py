"""The CLI's commands: each takes parsed arguments and returns an exit status."""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
import uuid
from contextlib import nullcontext
from typing import Any, TypedDict

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.pregel import Pregel
from langgraph.types import StateSnapshot
from rich.console import Console

from podium import runs
from podium.checkpoints import Messages, prune
from podium.checkpoints._threads import source_of
from podium.cli._read import graph_flags, location_flags, opened
from podium.cli._render import describe, jsonable
from podium.cli._show import show_request
from podium.cli._workspace import Workspace
from podium.demos import DEMOS
from podium.errors import ConfigurationError, UnknownRequestError
from podium.models import describe_default, local_model_status
from podium.tools import ApprovalRequest, Decision

__all__ = ["COMMANDS"]


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
            show_request(console, thread, request.to_json(), extra)
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
    args: argparse.Namespace,
    console: Console,
    graph: str,
    title: str,
    request: str,
    prefix: str,
    model: str | None,
) -> int:
    thread = args.thread or f"{prefix}-{uuid.uuid4().hex[:8]}"
    ws = opened(args)
    try:
        ws.home.mkdir(parents=True, exist_ok=True)
        app = ws.compiled(ws.build(graph, model))  # validate first
        ledger = ws.ledger()
        if ledger.thread(thread) is not None or any(s.thread_id == thread for s in ws.sizes()):
            raise ConfigurationError(
                f"Thread {thread!r} already exists in {ws.where}.",
                fix=f"Use `podium resume {thread}` to continue it, or pick another --thread.",
            )
        ledger.record_source(
            thread, graph, source_path=source_of(graph), model=model, request=request
        )
        if not args.json:
            console.print(f"{title} (thread {thread})", markup=False, highlight=False)
            console.print(f"> {request}", markup=False)
        drive(
            app, thread, {"messages": [("user", request)]}, console, args.json, location_flags(args)
        )
    finally:
        ws.close()
    return 0


def cmd_demo(args: argparse.Namespace, console: Console) -> int:
    if args.name not in DEMOS:
        raise ConfigurationError(
            f"Unknown demo {args.name!r}.", fix=f"Pick one of: {', '.join(sorted(DEMOS))}."
        )
    demo = DEMOS[args.name]
    model = args.model if args.model != "default" else describe_default()
    title = f"podium demo {demo.name!r}: {demo.title} (model {model!r})"
    request = args.request or demo.default_request
    return _start(args, console, f"demo:{demo.name}", title, request, demo.name, model)


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    title = f"podium run {args.graph}"
    if args.model:
        # what agents declared with model="default" resolve to, in this process
        os.environ["PODIUM_MODEL"] = args.model
        title += f" (agents' 'default' model: {describe_default()!r})"
    return _start(args, console, args.graph, title, args.request, "run", args.model)


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
    ws = opened(args)
    try:
        app = ws.app(ws.thread(args.thread), args.graph)
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
        drive(app, args.thread, command, console, args.json, location_flags(args))
        runs.check_decisions(app, _config(args.thread), {request.id: decision})
    finally:
        ws.close()
    return 0


def cmd_resume(args: argparse.Namespace, console: Console) -> int:
    ws = opened(args)
    try:
        app = ws.app(ws.thread(args.thread), args.graph)
        runs.inspect(app, _config(args.thread))  # no saved state → clear error
        drive(app, args.thread, None, console, args.json, location_flags(args))
    finally:
        ws.close()
    return 0


class _History(TypedDict):
    messages: Messages


def _history(ws: Workspace, thread: str) -> list[BaseMessage]:
    """The thread's messages, rebuilt from the file without the thread's graph.

    podium's ``messages`` channel is stored as deltas; a graph with only that channel
    replays them. A thread of a plain LangGraph graph keeps its list whole.
    """
    from langgraph.graph import END, START, StateGraph

    # the reader has none of the thread's nodes: LangGraph's notes about them are noise
    logging.getLogger("langgraph").setLevel(logging.ERROR)
    config = _config(thread)
    reader = StateGraph(_History)
    reader.add_node("read", lambda state: {})
    reader.add_edge(START, "read")
    reader.add_edge("read", END)
    try:
        values = reader.compile(checkpointer=ws.saver()).get_state(config).values
        found = values.get("messages") if isinstance(values, dict) else None
    except Exception:  # not podium's channel: read the stored value as it is
        saved = ws.saver().get_tuple(config)
        found = saved.checkpoint["channel_values"].get("messages") if saved else None
    return [m for m in found or [] if isinstance(m, BaseMessage)]


def cmd_inspect(args: argparse.Namespace, console: Console) -> int:
    ws = opened(args)
    try:
        record = ws.thread(args.thread)
        messages = _history(ws, args.thread)
        pending = [r for _, r in ws.pending(args.thread)]
    finally:
        ws.close()
    data = {
        **record.to_json(),
        "pending": pending,
        "messages": jsonable(messages),
    }
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return 0
    console.print(
        f"thread {record.thread_id}: {data['status']} (graph {record.graph or '?'}, "
        f"{record.runs} runs" + (f", error: {record.error}" if record.error else "") + ")",
        highlight=False,
        markup=False,
    )
    for message in messages:
        line = describe(message)
        if line:
            console.print(f"  {line}", highlight=False, markup=False)
    for request in pending:
        show_request(console, record.thread_id, request, graph_flags(args, bool(record.source)))
    return 0


def cmd_prune(args: argparse.Namespace, console: Console) -> int:
    ws = opened(args)
    try:
        ws.thread(args.thread)
        result = prune(ws.saver(), args.thread, keep_last=args.keep_last)
    finally:
        ws.close()
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


COMMANDS = {
    "run": cmd_run,
    "models": cmd_models,
    "demo": cmd_demo,
    "approve": cmd_decide,
    "reject": cmd_decide,
    "respond": cmd_decide,
    "resume": cmd_resume,
    "inspect": cmd_inspect,
    "prune": cmd_prune,
}
