"""The ``podium`` command.

Built on argparse: the standard library keeps ``podium --version`` fast and adds no
dependency; output formatting uses rich, which podium already needs for traces.

Every command that continues a run (``approve``, ``reject``, ``respond``,
``resume``) rebuilds the thread's graph in this new process and resumes it from the
SQLite file, exactly as a different machine sharing the file would.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rich.console import Console

import podium
from podium.cli._commands import COMMANDS
from podium.demos import DEMOS
from podium.errors import PodiumError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and documentation)."""
    parser = argparse.ArgumentParser(
        prog="podium", description="Dependable multi-agent orchestration on LangGraph."
    )
    parser.add_argument("--version", action="version", version=f"podium {podium.__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", help="workspace folder (default: $PODIUM_HOME or .podium)")
    common.add_argument("--db", help="SQLite file (default: HOME/podium.sqlite)")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("models", parents=[common], help="what 'default' resolves to")
    demo = sub.add_parser("demo", parents=[common], help="run a demo system")
    demo.add_argument(
        "name",
        nargs="?",
        default="support",
        choices=sorted(DEMOS),
        help="which demo (default: %(default)s)",
    )
    demo.add_argument("request", nargs="?", help="the user's request (default: the demo's)")
    demo.add_argument("--model", default="default", help="model spec (default: %(default)s)")
    demo.add_argument("--thread", help="thread id (default: NAME-<random>)")

    run = sub.add_parser("run", parents=[common], help="run your own graph on a new thread")
    run.add_argument(
        "graph", help="package.module:attribute -- an uncompiled graph or a function returning one"
    )
    run.add_argument("request", help="the user's request")
    run.add_argument("--model", default="default", help="recorded with the thread")
    run.add_argument("--thread", help="thread id (default: run-<random>)")

    for verb, helptext in (
        ("approve", "approve (or --edit) a pending request"),
        ("reject", "reject a pending request"),
        ("respond", "answer a request with a message instead"),
    ):
        p = sub.add_parser(verb, parents=[common], help=helptext)
        p.add_argument("thread")
        p.add_argument("request", nargs="?", help="request id (optional if only one)")
        p.add_argument("--by", help="who decides (default: $USER)")
        if verb == "approve":
            p.add_argument("--edit", help="run with these JSON arguments instead")
        if verb == "reject":
            p.add_argument("--reason", required=True, help="shown to the agent")
        if verb == "respond":
            p.add_argument("--message", required=True, help="given to the agent as the result")

    for verb, helptext in (
        ("resume", "continue a thread from its last checkpoint"),
        ("inspect", "state, next step and pending requests of a thread"),
        ("trace", "timeline of a thread from the run ledger"),
    ):
        sub.add_parser(verb, parents=[common], help=helptext).add_argument("thread")
    pending = sub.add_parser("pending", parents=[common], help="list pending requests")
    pending.add_argument("thread", nargs="?")
    sub.add_parser("threads", parents=[common], help="threads with size and pending requests")
    prune = sub.add_parser("prune", parents=[common], help="drop old checkpoints of a thread")
    prune.add_argument("thread")
    prune.add_argument("--keep-last", type=int, default=10, help="checkpoints to keep")
    cost = sub.add_parser("cost", parents=[common], help="tokens and cost by agent")
    cost.add_argument("thread", nargs="?")
    cost.add_argument("--since", help="30m, 2h, 7d or an ISO date")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``podium`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = 160  # tables for logs and pipes: wide enough for a trace row
    try:
        return COMMANDS[args.command](args, console)
    except PodiumError as exc:
        Console(stderr=True, highlight=False, soft_wrap=True).print(
            f"podium: error: {exc}", markup=False
        )
        return 1
    except KeyboardInterrupt:
        print("podium: interrupted; the thread is saved — `podium resume THREAD`", file=sys.stderr)
        return 130
