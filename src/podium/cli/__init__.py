"""The ``podium`` command.

Built on argparse: the standard library keeps start-up fast and adds no dependency.
Each subcommand parses with ``parse_intermixed_args``, so options may come anywhere
on the line (``podium demo support --json "my request"``). Every command that
prints takes ``--json``; any refusal exits with status 1.

Every command reads ``--db``: a SQLite file, or a PostgreSQL URL
(``postgresql://user:pw@host/db``: the database a ``postgres_saver`` or a
``PODIUM_LEDGER`` URL writes; psycopg is imported only then). Read-only commands
(``threads``, ``pending``, ``trace``, ``cost``) read the database with the standard
library (or psycopg) and never import LangGraph or the user's code; ``inspect``
rebuilds the history with LangGraph but without the user's code.
``eval`` (:mod:`podium.cli._eval`) runs a dataset of cases through graphs and
compares them; it imports pydantic-evals and the graphs only when it runs.
Commands that continue a run (``approve``, ``reject``, ``respond``, ``resume``)
rebuild the thread's graph in this new process -- from what was recorded when it
started, or ``--graph`` -- and resume it from the database, exactly as a different
machine sharing the database would.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from rich.console import Console

import podium
from podium.cli._eval import add_parser as add_eval_parser
from podium.errors import PodiumError

__all__ = ["build_parser", "main"]

DEMO_NAMES = ("data", "ops", "orders", "research", "support")
"""The demos (checked against :data:`podium.demos.DEMOS` by the tests)."""

_READ_ONLY = frozenset({"threads", "pending", "trace", "cost"})


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and documentation)."""
    parser = argparse.ArgumentParser(
        prog="podium", description="Dependable multi-agent orchestration on LangGraph."
    )
    parser.add_argument("--version", action="version", version=f"podium {podium.__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", help="workspace folder (default: $PODIUM_HOME or .podium)")
    common.add_argument(
        "--db",
        help="SQLite file or postgresql://user:pw@host/db URL (default: HOME/podium.sqlite)",
    )
    common.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("models", parents=[common], help="what 'default' resolves to")
    demo = sub.add_parser("demo", parents=[common], help="run a demo system")
    demo.add_argument(
        "name",
        nargs="?",
        default="support",
        choices=DEMO_NAMES,
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
    run.add_argument(
        "--model", help="what agents declared with model='default' use (sets PODIUM_MODEL)"
    )
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
        p.add_argument("--graph", help="module:attr of the thread's graph, if not recorded")
        if verb == "approve":
            p.add_argument("--edit", help="run with these JSON arguments instead")
        if verb == "reject":
            p.add_argument("--reason", required=True, help="shown to the agent")
        if verb == "respond":
            p.add_argument("--message", required=True, help="given to the agent as the result")

    resume = sub.add_parser("resume", parents=[common], help="continue a thread")
    resume.add_argument("thread")
    resume.add_argument("--graph", help="module:attr of the thread's graph, if not recorded")
    for verb, helptext in (
        ("inspect", "status, history and pending requests of a thread"),
        ("trace", "timeline of a thread from the run ledger"),
    ):
        sub.add_parser(verb, parents=[common], help=helptext).add_argument("thread")
    pending = sub.add_parser("pending", parents=[common], help="list pending requests")
    pending.add_argument("thread", nargs="?")
    sub.add_parser(
        "threads",
        parents=[common],
        help="threads: status, who holds a running one, size, pending requests",
    )
    prune = sub.add_parser("prune", parents=[common], help="drop old checkpoints of a thread")
    prune.add_argument("thread")
    prune.add_argument("--keep-last", type=int, default=10, help="checkpoints to keep")
    cost = sub.add_parser("cost", parents=[common], help="tokens and cost by agent")
    cost.add_argument("thread", nargs="?")
    cost.add_argument("--since", help="30m, 2h, 7d or an ISO date")
    add_eval_parser(sub, common)
    return parser


def _command(name: str) -> Callable[[argparse.Namespace, Console], int]:
    """The function running ``name``; read-only commands never import LangGraph."""
    if name == "eval":
        from podium.cli._eval import cmd_eval

        return cmd_eval
    module = "podium.cli._read" if name in _READ_ONLY else "podium.cli._commands"
    if name in _READ_ONLY:
        return getattr(importlib.import_module(module), f"cmd_{name}")  # type: ignore[no-any-return]
    commands: dict[str, Callable[[argparse.Namespace, Console], int]]
    commands = importlib.import_module(module).COMMANDS
    return commands[name]


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse with options anywhere: the subcommand's own intermixed parse."""
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if argv and argv[0] in subparsers.choices:
        args: argparse.Namespace = subparsers.choices[argv[0]].parse_intermixed_args(argv[1:])
        args.command = argv[0]
        return args
    return parser.parse_args(argv)  # help, --version, or a clear "invalid choice"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``podium`` command; returns the exit status."""
    parser = build_parser()
    args = _parse(parser, list(sys.argv[1:] if argv is None else argv))
    if not args.command:
        parser.print_help()
        return 2
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = 160  # tables for logs and pipes: wide enough for a trace row
    try:
        return _command(args.command)(args, console)
    except PodiumError as exc:
        Console(stderr=True, highlight=False, soft_wrap=True).print(
            f"podium: error: {exc}", markup=False
        )
        return 1
    except KeyboardInterrupt:
        print("podium: interrupted; the thread is saved — `podium resume THREAD`", file=sys.stderr)
        return 130
