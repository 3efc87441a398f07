"""The ``podium`` command.

Built on argparse: the standard library keeps ``podium --version`` instant and adds no
dependency; the command set is small enough that a framework buys little.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage

import podium
from podium.demos import DEFAULT_QUESTION, build_order_agent, create_orders_db
from podium.errors import PodiumError
from podium.graphs import create_agent_graph
from podium.models import describe_default, local_model_status

__all__ = ["main"]

DEMOS = ("orders",)


def _home() -> Path:
    return Path(os.environ.get("PODIUM_HOME", ".podium"))


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _cmd_models(args: argparse.Namespace) -> int:
    status = local_model_status()
    info = {
        "default": describe_default(),
        "PODIUM_MODEL": os.environ.get("PODIUM_MODEL"),
        "OPENAI_API_KEY": "set" if os.environ.get("OPENAI_API_KEY") else "not set",
        "OPENAI_BASE_URL": os.environ.get("OPENAI_BASE_URL"),
        "local": status,
    }
    if args.json:
        _print_json(info)
        return 0
    print(f"default model : {info['default']}")
    print(f"PODIUM_MODEL  : {info['PODIUM_MODEL'] or '(not set)'}")
    print(f"OPENAI_API_KEY: {info['OPENAI_API_KEY']}")
    if info["OPENAI_BASE_URL"]:
        print(f"OPENAI_BASE_URL: {info['OPENAI_BASE_URL']}")
    print("local model   :")
    for key, value in status.items():
        print(f"  {key:<16}{value}")
    return 0


def _describe(message: Any) -> str | None:
    if isinstance(message, AIMessage):
        if message.tool_calls:
            calls = ", ".join(f"{c['name']}({json.dumps(c['args'])})" for c in message.tool_calls)
            return f"[{message.name}] calls {calls}"
        if message.invalid_tool_calls:
            return f"[{message.name}] made an unparseable tool call"
        return f"[{message.name}] answer: {message.text}"
    if isinstance(message, ToolMessage):
        marker = " (error)" if message.status == "error" else ""
        return f"[{message.name}]{marker} {message.text}"
    return None


def _cmd_demo(args: argparse.Namespace) -> int:
    home = _home()
    db = create_orders_db(home / "orders.sqlite")
    agent = build_order_agent(db, model=args.model)
    app = create_agent_graph(agent).compile()
    question = args.request or DEFAULT_QUESTION
    model_name = args.model if args.model != "default" else describe_default()
    if not args.json:
        print(f"podium demo 'orders': agent {agent.name!r} on model {model_name!r}")
        print(f"> {question}", flush=True)
    started = time.perf_counter()
    transcript: list[dict[str, Any]] = []
    tokens = {"input": 0, "output": 0}
    final: str | None = None
    request: Any = {"messages": [("user", question)]}
    for update in app.stream(request, stream_mode="updates"):
        for payload in update.values():
            for message in (payload or {}).get("messages", []):
                if isinstance(message, AIMessage) and message.usage_metadata:
                    tokens["input"] += message.usage_metadata["input_tokens"]
                    tokens["output"] += message.usage_metadata["output_tokens"]
                if isinstance(message, AIMessage) and not message.tool_calls:
                    final = message.text
                line = _describe(message)
                if line:
                    transcript.append({"type": message.type, "text": line})
                    if not args.json:
                        print(f"  {line}", flush=True)
    elapsed = time.perf_counter() - started
    if args.json:
        _print_json({"answer": final, "steps": transcript, "seconds": elapsed, "tokens": tokens})
    else:
        print(f"done in {elapsed:.1f} s, {tokens['input']} tokens in / {tokens['output']} out")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and documentation)."""
    parser = argparse.ArgumentParser(
        prog="podium", description="Dependable multi-agent orchestration on LangGraph."
    )
    parser.add_argument("--version", action="version", version=f"podium {podium.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    models = sub.add_parser("models", help="what 'default' resolves to; local model status")
    models.add_argument("--json", action="store_true", help="machine-readable output")
    models.set_defaults(func=_cmd_models)

    demo = sub.add_parser("demo", help="run a demo system")
    demo.add_argument("name", nargs="?", default="orders", choices=DEMOS, help="which demo")
    demo.add_argument("request", nargs="?", default=None, help="the user's request")
    demo.add_argument("--model", default="default", help="model spec (default: %(default)s)")
    demo.add_argument("--json", action="store_true", help="machine-readable output")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``podium`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code: int = args.func(args)
    except PodiumError as exc:
        print(f"podium: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("podium: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
