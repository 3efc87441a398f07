"""The read-only commands: ``threads``, ``pending``, ``trace``, ``cost``.

They read the SQLite file with the standard library, or the PostgreSQL database
(``--db postgresql://...``) with psycopg, and print with rich: no user module, no
LangGraph, no model SDK is imported, so they start in a fraction of a second and
work for every thread in the database, whoever ran it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from podium.checkpoints._urls import is_postgres_url, safe_url
from podium.cli._show import show_request
from podium.cli._workspace import Workspace
from podium.errors import ConfigurationError
from podium.observe._report import cost_report, render_cost, render_trace

__all__ = [
    "cmd_cost",
    "cmd_pending",
    "cmd_threads",
    "cmd_trace",
    "graph_flags",
    "location_flags",
    "opened",
]


def opened(args: argparse.Namespace) -> Workspace:
    """The workspace the options name (``--home``, ``--db``, ``$PODIUM_HOME``).

    ``--db`` is a SQLite file or a PostgreSQL URL (``postgresql://user:pw@host/db``).
    """
    home = Path(args.home or os.environ.get("PODIUM_HOME", ".podium"))
    if is_postgres_url(args.db):
        return Workspace(home, url=args.db)
    return Workspace(home, Path(args.db) if args.db else None)


def location_flags(args: argparse.Namespace) -> list[str]:
    """The options to repeat in commands we print, so they reach the same database.

    A PostgreSQL URL is repeated without its password (libpq finds it in
    ``PGPASSWORD`` or ``~/.pgpass``): the CLI never prints one.
    """
    flags: list[str] = []
    if args.home:
        flags += ["--home", args.home]
    if args.db:
        flags += ["--db", safe_url(args.db) if is_postgres_url(args.db) else args.db]
    return flags


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def cmd_pending(args: argparse.Namespace, console: Console) -> int:
    ws = opened(args)
    try:
        if args.thread:
            ws.thread(args.thread)  # unknown thread → clear error
        found = ws.pending(args.thread) if ws.exists() else []
        recorded = {t.thread_id for t in ws.threads() if t.source}
    finally:
        ws.close()
    if args.json:
        _print_json([{"thread": t, **r} for t, r in found])
        return 0
    if not found:
        console.print("no pending requests")
    for thread, request in found:
        show_request(console, thread, request, graph_flags(args, thread in recorded))
    return 0


def graph_flags(args: argparse.Namespace, recorded: bool) -> list[str]:
    """:func:`location_flags`, plus ``--graph`` for a thread whose graph is not recorded."""
    return location_flags(args) + ([] if recorded else ["--graph", "MODULE:ATTR"])


def _when(epoch: float | None) -> str:
    if not epoch:
        return "-"
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def cmd_threads(args: argparse.Namespace, console: Console) -> int:
    """List threads: status, runs, pending requests, size, and who holds a running one.

    A running thread's holder is the process whose run holds its lease
    (``host|pid|start time|nonce``) and since when; ``--json`` adds
    ``holder``, ``leased_since``, ``lease_until`` and ``lease_generation``.
    """
    ws = opened(args)
    try:
        records = {t.thread_id: t for t in ws.threads()}
        sizes = {s.thread_id: s for s in ws.sizes()}
        pending = ws.ledger().pending_approvals() if ws.exists() else {}
    finally:
        ws.close()
    rows: list[dict[str, Any]] = []
    for thread in sorted(set(records) | set(sizes), key=lambda t: _updated(records, t)):
        record = records.get(thread)
        size = sizes.get(thread)
        row: dict[str, Any] = (
            record.to_json() if record else {"thread": thread, "status": "unregistered"}
        )
        row.update(
            bytes=size.bytes if size else 0,
            checkpoints=size.checkpoints if size else 0,
            pending_approvals=pending.get(thread, 0) if row["status"] != "done" else 0,
        )
        rows.append(row)
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        console.print("no threads")
    for r in rows:
        held = (
            f"  held by {r['holder']} since {_when(r.get('leased_since'))}"
            if r.get("holder")
            else ""
        )
        console.print(
            f"{r['thread']:<24} {r.get('graph') or '?':<16} {r['status']:<9} "
            f"runs {r.get('runs', 0):>3}  pending {r['pending_approvals']}  "
            f"{r['checkpoints']:>4} ckpts {r['bytes']:>9} B  {_when(r.get('updated_at'))}{held}",
            highlight=False,
            markup=False,
        )
    return 0


def _updated(records: dict[str, Any], thread: str) -> float:
    record = records.get(thread)
    return float(record.updated_at) if record else 0.0


def cmd_trace(args: argparse.Namespace, console: Console) -> int:
    ws = opened(args)
    try:
        ws.thread(args.thread)
        events = ws.events(args.thread)
    finally:
        ws.close()
    if args.json:
        _print_json(events)
    else:
        render_trace(events, console, title=f"thread {args.thread}")
    return 0


_SINCE = re.compile(r"^(\d+)([smhd])$")


def since(value: str | None) -> float | None:
    """``--since``: a duration (``30m``, ``2h``, ``7d``) or an ISO date, as epoch seconds."""
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
            f"--since {value!r} is neither a duration (30m, 2h, 7d) nor an ISO date.",
            fix="Pass e.g. --since 2h or --since 2026-11-30T09:00.",
        ) from exc


def cmd_cost(args: argparse.Namespace, console: Console) -> int:
    ws = opened(args)
    try:
        if args.thread:
            ws.thread(args.thread)
        events = ws.events(args.thread, since(args.since))
    finally:
        ws.close()
    title = f"cost: {args.thread or 'all threads'}" + (f" since {args.since}" if args.since else "")
    if args.json:
        report = cost_report(events)
        _print_json(
            {
                "thread": args.thread,
                "since": args.since,
                "agents": {agent: asdict(line) for agent, line in report.items()},
            }
        )
        return 0
    render_cost(events, console, title=title)
    return 0
