"""A worker process for the thread-lease tests: sends one message to a thread.

Usage: python lease_worker.py DB THREAD TEXT [--start-at EPOCH] [--multitask STRATEGY]
           [--delay SECONDS] [--wait-refused DIR N] [--stop-in model|policy]
           [--effects FILE] [--die-after-saves N] [--meet DIR N]

DB is a SQLite file or a postgresql:// URL. The run is the README's plain call,
``app.invoke({"messages": [("user", TEXT)]}, config)`` (``--multitask`` adds
``configurable["podium_multitask"]``). The model answers the last question with
"answer to <question> by <pid>"; a question starting with ``act:`` first calls the
side-effecting ``note`` tool, which appends a row (pid, text) to the ``--effects``
SQLite file. Points where the process stops itself with SIGSTOP, once, so a test can
let its lease expire and SIGCONT it: ``model`` (inside the model call, before it
returns) and ``policy`` (in the policy check of the ``note`` call, before the ledger
records its start). ``--wait-refused DIR N``: the model returns only once N marker
files are in DIR (a refused worker writes one), so no run can end before the others
were refused. ``--meet DIR N``: the model writes a marker in DIR and returns only
once N markers are there (N runs are inside their model call at once).
``--die-after-saves N``: SIGKILL this process right after its Nth
checkpoint write (``put`` or ``put_writes``) returned. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import signal
import sqlite3
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from podium import Agent, ConcurrencyError, Policy, Rule
from podium.checkpoints import postgres_saver, sqlite_saver
from podium.graphs import create_agent_graph
from podium.tools import tool

STOPPED: set[str] = set()


def stop_once(point: str, wanted: str | None) -> None:
    if point == wanted and point not in STOPPED:
        STOPPED.add(point)
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGSTOP)


SAVES = [0]


def dying(write: Any, after: int) -> Any:
    """``write``, and SIGKILL this process once ``after`` writes returned."""

    def counted(*args: Any, **kwargs: Any) -> Any:
        done = write(*args, **kwargs)
        SAVES[0] += 1
        if SAVES[0] == after:
            os.kill(os.getpid(), signal.SIGKILL)
        return done

    return counted


class EchoModel(BaseChatModel):
    """Answers the last question; ``act:`` questions first call ``note``."""

    delay: float = 0.0
    stop_in: str | None = None
    wait_dir: str | None = None
    wait_count: int = 0
    meet_dir: str | None = None
    meet_count: int = 0

    @property
    def _llm_type(self) -> str:
        return "echo"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        question = next(m for m in reversed(messages) if isinstance(m, HumanMessage))
        text = str(question.content)
        after = messages[messages.index(question) + 1 :]
        if text.startswith("act:") and not any(isinstance(m, ToolMessage) for m in after):
            call = {"name": "note", "args": {"text": text}, "id": f"call-{uuid.uuid4().hex[:8]}"}
            reply = AIMessage("", tool_calls=[call], id=f"ai-{uuid.uuid4()}")
        else:
            reply = AIMessage(f"answer to {text} by {os.getpid()}", id=f"ai-{uuid.uuid4()}")
        time.sleep(self.delay)
        if self.meet_dir:
            (Path(self.meet_dir) / str(os.getpid())).touch()
            self.wait_dir, self.wait_count = self.meet_dir, self.meet_count
        if self.wait_dir:
            deadline = time.monotonic() + 60
            while len(list(Path(self.wait_dir).glob("*"))) < self.wait_count:
                if time.monotonic() > deadline:
                    raise TimeoutError("the other workers did not arrive")
                time.sleep(0.01)
        stop_once("model", self.stop_in)
        return ChatResult(generations=[ChatGeneration(message=reply)])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("db")
    p.add_argument("thread")
    p.add_argument("text")
    p.add_argument("--start-at", type=float, default=0.0)
    p.add_argument("--multitask", default="")
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--wait-refused", nargs=2, default=None)
    p.add_argument("--stop-in", choices=["model", "policy"], default=None)
    p.add_argument("--effects", default="")
    p.add_argument("--die-after-saves", type=int, default=0)
    p.add_argument("--meet", nargs=2, default=None)
    a = p.parse_args()
    # a worker stuck for a minute prints every thread's stack to stderr (the test shows it)
    faulthandler.dump_traceback_later(60, exit=False)

    @tool
    def note(text: str) -> str:
        """Write a note (a side effect, counted in the effects file)."""
        with sqlite3.connect(a.effects, timeout=30) as db:
            db.execute("CREATE TABLE IF NOT EXISTS effects (pid INTEGER, text TEXT)")
            db.execute("INSERT INTO effects VALUES (?, ?)", (os.getpid(), text))
        return f"noted {text}"

    def checked(args: dict[str, Any]) -> bool:
        stop_once("policy", a.stop_in)
        return True

    model = EchoModel(delay=a.delay, stop_in=a.stop_in)
    if a.wait_refused:
        model.wait_dir, model.wait_count = a.wait_refused[0], int(a.wait_refused[1])
    if a.meet:
        model.meet_dir, model.meet_count = a.meet[0], int(a.meet[1])
    agent = Agent(name="clerk", model=model, tools=[note])
    policy = Policy(rules=[Rule(tool="note", action="allow", when=checked)])
    is_url = a.db.startswith("postgresql://")
    saver: Any = postgres_saver(a.db, pool_size=4) if is_url else sqlite_saver(a.db)
    if a.die_after_saves:
        for name in ("put", "put_writes"):
            setattr(saver, name, dying(getattr(saver, name), a.die_after_saves))
    app = create_agent_graph(agent, policy=policy).compile(checkpointer=saver)
    config: Any = {"configurable": {"thread_id": a.thread}}
    if a.multitask:
        config["configurable"]["podium_multitask"] = a.multitask
    if a.start_at:
        time.sleep(max(0.0, a.start_at - time.time()))
    started = time.monotonic()
    out: dict[str, Any] = {"pid": os.getpid(), "text": a.text, "ok": False}
    try:
        result = app.invoke({"messages": [("user", a.text)]}, config)
        out.update(ok=True, messages=[[m.type, m.content] for m in result["messages"]])
    except ConcurrencyError as exc:
        out.update(error_type=type(exc).__name__, error=str(exc))
        out.update(holder=getattr(exc, "holder", None), since=getattr(exc, "since", None))
        if a.wait_refused:
            (Path(a.wait_refused[0]) / str(os.getpid())).touch()
    finally:
        out["seconds"] = time.monotonic() - started
        saver.close()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
