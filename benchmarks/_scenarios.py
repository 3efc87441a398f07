"""The workloads: podium's graphs and the equivalent hand-written raw-LangGraph graphs.

Both sides use the same :class:`~podium.testing.ScriptedChatModel` replies, the same
instructions and the same tools, so what differs is the orchestration only. Raw
graphs are what a LangGraph user writes by hand: ``MessagesState`` (``add_messages``),
a model node, ``ToolNode`` + ``tools_condition``, specialists as tools that invoke a
compiled subgraph, handoffs as tools returning ``Command(graph=Command.PARENT)``.
Every scripted message has its own id (``add_messages`` merges equal ids).
"""

from __future__ import annotations

import itertools
import sqlite3
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, NotRequired

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, InjectedToolCallId, StructuredTool
from langchain_core.tools import tool as lc_tool
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import InjectedState, ToolNode, tools_condition
from langgraph.types import Command

from podium import Agent
from podium.graphs import create_agent_graph, create_handoff_graph, create_manager_graph
from podium.testing import ScriptedChatModel
from podium.tools import tool as podium_tool

_ids = itertools.count(1)

USER = "I need help planning a three-day trip to Lisbon in May for two people. " * 2
TASK = "Find two flight options from Berlin to Lisbon on May 4th, returning May 7th."
ANSWER = "Option 1: TP 531 at 07:10, 240 EUR. Option 2: FR 1412 at 13:25, 95 EUR. " * 2
FINAL = "Here is your plan: flights TP 531 or FR 1412, and I can book either for you. " * 2
TOOL_RESULT = "Record R-1001: status active, owner Ada, last change 2026-05-01, 3 items. "
INSTRUCTIONS = "You are a careful assistant. Use your tools when they help; answer briefly."


def uid(prefix: str) -> str:
    """A process-unique message or tool-call id."""
    return f"{prefix}-{next(_ids)}"


def reply(content: str = "", calls: Sequence[tuple[str, dict[str, Any]]] = ()) -> AIMessage:
    """A scripted reply with its own id (and its tool calls' own ids)."""
    tool_calls = [{"name": n, "args": a, "id": uid("call")} for n, a in calls]
    return AIMessage(content, id=uid("ai"), tool_calls=tool_calls)


def model(script: Sequence[AIMessage | str], delay: float = 0.0) -> ScriptedChatModel:
    """A scripted model."""
    return ScriptedChatModel(list(script), delay=delay)


# -- savers -----------------------------------------------------------------------------
def stock_saver(path: Path, *, tuned: bool) -> SqliteSaver:
    """LangGraph's ``SqliteSaver``: as ``from_conn_string`` opens it, or with podium's
    pragmas (WAL, ``synchronous=NORMAL``, 30 s busy timeout) when ``tuned``."""
    conn = sqlite3.connect(path, check_same_thread=False, timeout=30.0 if tuned else 5.0)
    if tuned:
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    saver = SqliteSaver(conn)
    saver.setup()
    return saver


# -- raw LangGraph building blocks -------------------------------------------------------
def raw_agent(
    llm: ScriptedChatModel, tools: Sequence[BaseTool], instructions: str = INSTRUCTIONS
) -> StateGraph[Any, Any, Any, Any]:
    """The hand-written agent loop: model node, ``ToolNode``, ``tools_condition``."""
    bound: Any = llm.bind_tools(tools) if tools else llm

    def call_model(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
        return {
            "messages": [bound.invoke([SystemMessage(instructions), *state["messages"]], config)]
        }

    graph = StateGraph(MessagesState)
    graph.add_node("model", call_model)
    graph.add_edge(START, "model")
    if tools:
        graph.add_node("tools", ToolNode(list(tools)))
        graph.add_conditional_edges("model", tools_condition, ["tools", END])
        graph.add_edge("tools", "model")
    else:
        graph.add_edge("model", END)
    return graph


def raw_delegate(name: str, description: str, sub: Any) -> BaseTool:
    """A specialist as a tool that runs its compiled subgraph on the task."""

    def run(task: str, config: RunnableConfig) -> str:
        out = sub.invoke({"messages": [HumanMessage(task)]}, config)
        return str(out["messages"][-1].content)

    return StructuredTool.from_function(func=run, name=name, description=description)


class RawHandoffState(MessagesState):
    """The hand-written handoff graph's state."""

    active_agent: NotRequired[str]


def raw_transfer(target: str, description: str) -> BaseTool:
    """The LangGraph docs' handoff tool: ``Command(goto=target, graph=Command.PARENT)``."""

    @lc_tool(
        f"transfer_to_{target}",
        description=f"Hand the conversation over to {target}: {description}",
    )
    def transfer(
        reason: str,
        state: Annotated[MessagesState, InjectedState],
        tool_call_id: Annotated[str, InjectedToolCallId],
    ) -> Command[str]:
        done = ToolMessage(
            f"Transferred to {target}. Reason: {reason}",
            name=f"transfer_to_{target}",
            tool_call_id=tool_call_id,
        )
        return Command(
            goto=target,
            graph=Command.PARENT,
            update={"messages": [*state["messages"], done], "active_agent": target},
        )

    return transfer


# -- the workloads ------------------------------------------------------------------------
def manager_scripts(turns: int) -> tuple[list[AIMessage], list[AIMessage]]:
    """Per turn: the manager delegates once, the specialist answers, the manager answers."""
    boss = [
        r for _ in range(turns) for r in (reply("", [("flights", {"task": TASK})]), reply(FINAL))
    ]
    spec = [reply(ANSWER) for _ in range(turns)]
    return boss, spec


MANAGER_CALLS = 3  # model calls per manager turn
HANDOFF_CALLS = 2  # model calls per handoff turn


def podium_manager(turns: int) -> Any:
    boss, spec = manager_scripts(turns)
    manager = Agent(name="planner", instructions=INSTRUCTIONS, model=model(boss))
    flights = Agent(
        name="flights", description="Finds flights.", instructions=INSTRUCTIONS, model=model(spec)
    )
    return create_manager_graph(manager, [flights])


def raw_manager(turns: int) -> Any:
    boss, spec = manager_scripts(turns)
    sub = raw_agent(model(spec), []).compile(name="flights")
    return raw_agent(model(boss), [raw_delegate("flights", "Finds flights.", sub)])


def handoff_scripts(turns: int) -> tuple[list[AIMessage], list[AIMessage]]:
    """Per turn: triage transfers to billing, billing answers."""
    triage = [reply("", [("transfer_to_billing", {"reason": "a refund"})]) for _ in range(turns)]
    billing = [reply(FINAL) for _ in range(turns)]
    return triage, billing


def podium_handoff(turns: int) -> Any:
    t, b = handoff_scripts(turns)
    triage = Agent(name="triage", description="Routes.", instructions=INSTRUCTIONS, model=model(t))
    billing = Agent(
        name="billing", description="Refunds.", instructions=INSTRUCTIONS, model=model(b)
    )
    return create_handoff_graph(
        [triage, billing], default_agent="triage", routes={"triage": ["billing"]}
    )


def raw_handoff(turns: int) -> Any:
    t, b = handoff_scripts(turns)
    triage = raw_agent(model(t), [raw_transfer("billing", "Refunds.")]).compile(name="triage")
    billing = raw_agent(model(b), []).compile(name="billing")
    graph = StateGraph(RawHandoffState)
    graph.add_node("triage", triage, destinations=("billing",))
    graph.add_node("billing", billing)
    graph.add_conditional_edges(
        START, lambda s: s.get("active_agent") or "triage", ["triage", "billing"]
    )
    return graph


def loop_script(turns: int, tool_calls: int) -> list[AIMessage]:
    """Per turn: ``tool_calls`` rounds of one ``lookup`` call, then an answer."""
    out: list[AIMessage] = []
    for _ in range(turns):
        out += [reply("", [("lookup", {"record": "R-1001"})]) for _ in range(tool_calls)]
        out.append(reply(ANSWER))
    return out


def podium_lookup(read_only: bool) -> BaseTool:
    @podium_tool(read_only=read_only, idempotent=True)
    def lookup(record: str) -> str:
        """Look a record up."""
        return TOOL_RESULT

    return lookup


@lc_tool
def lookup(record: str) -> str:
    """Look a record up."""
    return TOOL_RESULT


def podium_loop(turns: int, tool_calls: int, *, read_only: bool = True) -> Any:
    agent = Agent(
        name="clerk",
        instructions=INSTRUCTIONS,
        model=model(loop_script(turns, tool_calls)),
        tools=[podium_lookup(read_only)],
        max_steps=tool_calls + 1,
    )
    return create_agent_graph(agent)


def raw_loop(turns: int, tool_calls: int) -> Any:
    return raw_agent(model(loop_script(turns, tool_calls)), [lookup])


def quiet_deprecations() -> None:
    """langgraph-supervisor builds on ``create_react_agent`` (deprecated in LangGraph 1.0)."""
    warnings.filterwarnings("ignore", message=".*create_react_agent.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
