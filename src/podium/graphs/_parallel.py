"""The parallel pattern: fan out to N branches, each in private state, then join.

Graph: ``START → fan_out ⇢ <branch>… → join → END``. ``fan_out`` clears the last
turn's results and sends the conversation to every branch (or to the ones
``select`` picks) with one ``Send`` each, so each branch is its own task: branches
run concurrently (asyncio tasks under ``ainvoke``; under ``invoke``, LangGraph's
thread pool, which podium sizes to the number of branches -- see
:class:`~podium.tools.GovernedApp`), and an interrupt in one branch never re-runs a
sibling on resume -- finished siblings' writes are already saved. A branch sees only
the conversation, never another branch's work; its outcome (``ok``, ``error`` or
``timeout``) lands in ``branch_results``. ``join`` checks the quorum and combines the answers.

Run events: each branch's outcome is a ``branch`` span (its ``agent`` is the branch,
as its agents' paths start), then ``quorum`` (who succeeded, who failed and why,
how many were required, whether that was met) and ``join`` (the join kind, and how
the answer was chosen: the vote tally, winner, tie, scores). When a branch failed
and the quorum was still met, the answer ends with a note saying which failed and
why (``join_result["failed"]`` and the message's ``podium_failed`` metadata hold the
same; ``podium_answer`` keeps the answer without the note).

The state and the branch nodes are :mod:`podium.graphs._parallel_branch`; the join
node is :mod:`podium.graphs._parallel_join`; this module checks the options and
builds the graph.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from langchain_core.runnables import RunnableLambda
from langgraph.graph import END, START
from langgraph.types import Overwrite, Send

from podium.agents import Agent, Budget
from podium.agents._budget import (
    budget_binding,
)
from podium.agents._spec import validate_name
from podium.errors import ConfigurationError
from podium.graphs._joins import JoinFunction, resolve_join
from podium.graphs._members import (
    Member,
    all_tool_names,
    check_members,
    check_rule_names,
    describe,
    inventory,
    inventory_of,
    member_runnable,
    member_scope,
)
from podium.graphs._parallel_branch import BranchNode, BranchResult, ParallelState
from podium.graphs._parallel_join import JoinNode
from podium.tools import GovernedApp, GovernedGraph, Policy
from podium.tools._app import WIDTH_KEY

__all__ = ["BranchResult", "ParallelState", "create_parallel_graph"]

_RESERVED = ("fan_out", "join")


class _ParallelGraph(GovernedGraph[ParallelState, None, ParallelState, ParallelState]):
    """A parallel graph; ``compile`` also applies the factory's ``max_concurrency``."""

    podium_max_concurrency: int | None = None

    def compile(self, checkpointer: Any = None, **kwargs: Any) -> GovernedApp:
        """Compile as :meth:`GovernedGraph.compile`; bind ``max_concurrency`` as config."""
        compiled = super().compile(checkpointer, **kwargs)
        if self.podium_max_concurrency is None:
            return compiled
        return compiled.with_config({"max_concurrency": self.podium_max_concurrency})


def _check_options(
    names: Sequence[str],
    quorum: int | None,
    branch_timeout: float | None,
    select: object,
    max_concurrency: int | None,
    policy: object,
) -> None:
    for reserved in _RESERVED:
        if reserved in names:
            raise ConfigurationError(
                f"A branch is named {reserved!r}, which the parallel graph uses for its "
                f"own node; reserved names: {', '.join(_RESERVED)}.",
                fix="Rename the branch.",
            )
    if quorum is not None and (
        isinstance(quorum, bool) or not isinstance(quorum, int) or not 1 <= quorum <= len(names)
    ):
        raise ConfigurationError(
            f"quorum={quorum!r} is not allowed: it is how many branches must succeed, a whole "
            f"number from 1 to the number of branches ({len(names)}).",
            fix=f"Pass quorum=1..{len(names)}, or None to require every branch that runs.",
        )
    if branch_timeout is not None and (
        isinstance(branch_timeout, bool)
        or not isinstance(branch_timeout, int | float)
        or branch_timeout <= 0
    ):
        raise ConfigurationError(
            f"branch_timeout={branch_timeout!r} is not allowed; it is seconds per branch (> 0).",
            fix="Pass e.g. branch_timeout=30, or None for no limit.",
        )
    if select is not None and not callable(select):
        raise ConfigurationError(
            f"select={select!r} is not a function; it maps the state to branch names.",
            fix="Pass select=lambda state: ['branch_a', 'branch_b'], or None for every branch.",
        )
    if max_concurrency is not None and (
        isinstance(max_concurrency, bool)
        or not isinstance(max_concurrency, int)
        or max_concurrency < 1
    ):
        raise ConfigurationError(
            f"max_concurrency={max_concurrency!r} is not allowed; it is a positive integer.",
            fix="Pass e.g. max_concurrency=4, or None for no limit.",
        )
    if policy is not None and not isinstance(policy, Policy):
        raise ConfigurationError(
            f"policy must be a podium Policy, got {type(policy).__name__}.",
            fix="Pass Policy(rules=[Rule(...)]).",
        )


def _selector(
    select: Callable[[ParallelState], Sequence[str]] | None, names: Sequence[str]
) -> Callable[[ParallelState], list[Send]]:
    def route(state: ParallelState) -> list[Send]:
        chosen = list(names) if select is None else select(state)
        if isinstance(chosen, str) or not isinstance(chosen, Sequence):
            raise ConfigurationError(
                f"select returned {chosen!r}; it must return a list of branch names.",
                fix=f"Return a list drawn from: {', '.join(names)}.",
            )
        unknown = [c for c in chosen if c not in names]
        if unknown or not chosen or len(set(chosen)) != len(chosen):
            what = f"unknown branch(es) {unknown}" if unknown else f"{list(chosen)!r}"
            raise ConfigurationError(
                f"select returned {what}; it must return one or more distinct branch names.",
                fix=f"Return a non-empty list drawn from: {', '.join(names)}.",
            )
        request = list(state["messages"])
        usage = state.get("usage") or {}
        return [Send(n, {"messages": request, "usage": usage}) for n in names if n in chosen]

    return route


def create_parallel_graph(
    branches: Sequence[Member],
    *,
    join: Literal["concat", "vote"] | JoinFunction | Agent = "concat",
    quorum: int | None = None,
    branch_timeout: float | None = None,
    select: Callable[[ParallelState], Sequence[str]] | None = None,
    max_concurrency: int | None = None,
    policy: Policy | None = None,
    name: str | None = None,
    description: str = "",
    budget: Budget | None = None,
) -> GovernedGraph[ParallelState, None, ParallelState, ParallelState]:
    """Fan the conversation out to several branches at once, then join their answers.

    Each branch (an :class:`~podium.Agent` or any pattern graph) gets the
    conversation in private state -- never another branch's work -- and runs as its
    own task, concurrently with the others. Its outcome is recorded in
    ``branch_results`` (:class:`BranchResult`); a branch that raises or outlives
    ``branch_timeout`` counts as failed, which is not fatal while ``quorum``
    branches succeed. An approval inside one branch interrupts the run; on resume
    only that branch continues.

    Args:
        branches: The branches; names must be unique (a graph needs ``name=``).
        join: How answers become the final answer: ``"concat"`` (each answer under
            a ``## <branch>`` heading, in branch order); ``"vote"`` (the plurality
            answer after normalising each with :func:`~podium.graphs.ballot` --
            JSON canonicalised, text case-folded; a tie is reported in the answer
            and ``join_result``); ``best_of(scorer)``; a function
            ``{branch: answer} -> str`` (or a mapping with ``"answer"`` and details
            for ``join_result``); or an ``Agent`` that receives every branch's
            result and writes the answer. Joins see successful branches only.
        quorum: How many branches must succeed (default: every branch that runs;
            with ``select``, at most the number selected).
        branch_timeout: Seconds a branch may run before it counts as failed.
        select: ``state -> [branch names]`` chooses the branches each turn
            (default: all).
        max_concurrency: At most this many branches run at once (LangGraph's
            ``max_concurrency`` config, bound at compile; a value passed in the
            invoke config wins). Default: no limit -- every branch runs at once,
            under ``ainvoke`` as asyncio tasks and under ``invoke`` in a thread pool
            podium sizes to the number of branches (LangGraph's default pool has
            ``min(32, CPUs + 4)`` threads).
        policy: Applied to every tool call of every Agent branch and the synthesiser.
        name: The graph's name as a member elsewhere (and its compiled name).
        description: What it does, for managers and handoff peers choosing it.
        budget: What the whole run may use (:class:`~podium.Budget`), every
            branch's calls included. Branches run at once and see each other's
            usage only after they return, so together they may overshoot it.

    Returns:
        An uncompiled graph; compile it with ``.compile(checkpointer=...)``.

    Raises:
        ConfigurationError: No branches, duplicate or reserved names, a bad
            quorum, join, timeout or concurrency; at run time, ``select`` naming
            unknown branches.
        QuorumNotMetError: At run time, when fewer than ``quorum`` branches succeed.

    Example:
        >>> from podium import Agent
        >>> from podium.graphs import create_parallel_graph
        >>> from podium.testing import ScriptedChatModel
        >>> pros = Agent(name="pros", model=ScriptedChatModel(["Cheap."]))
        >>> cons = Agent(name="cons", model=ScriptedChatModel(["Slow."]))
        >>> app = create_parallel_graph([pros, cons]).compile()
        >>> print(app.invoke({"messages": [("user", "Trains?")]})["messages"][-1].content)
        ## pros
        Cheap.
        <BLANKLINE>
        ## cons
        Slow.
    """
    members = list(branches)
    names = check_members(members, "branches")
    if name is not None:
        validate_name(name, "graph")
    _check_options(names, quorum, branch_timeout, select, max_concurrency, policy)
    known = all_tool_names([*members, join])
    join_fn, kind = resolve_join(join, policy, known)

    graph = _ParallelGraph(ParallelState)
    graph.podium_name, graph.podium_description = name, description
    graph.podium_configurable = {
        **(budget_binding("create_parallel_graph", budget, name or "parallel") or {}),
        WIDTH_KEY: len(names),  # sync runs get a thread per branch (GovernedApp)
    }
    graph.podium_max_concurrency = max_concurrency

    def fan_out(state: ParallelState) -> dict[str, Any]:
        return {"branch_results": Overwrite({}), "join_result": {}}

    graph.add_node("fan_out", fan_out, metadata={"select": "run time"} if select else None)
    graph.add_edge(START, "fan_out")
    graph.add_conditional_edges("fan_out", _selector(select, names), names)
    nodes: dict[str, BranchNode] = {}
    for branch_name, member in zip(names, members, strict=True):
        node = nodes[branch_name] = BranchNode(
            branch_name,
            member_runnable(member, known_tools=known),
            branch_timeout,
            policy,
            inventory(member).effects,
            graph=name or "parallel",
            scope=member_scope(member),
        )
        graph.add_node(
            branch_name,
            RunnableLambda(node.invoke, afunc=node.ainvoke, name=branch_name),
            metadata={"timeout": f"{branch_timeout:g}s"} if branch_timeout else None,
        )
        graph.add_edge(branch_name, "join")
    joiner = JoinNode(join_fn, kind, names, quorum, name, policy, nodes)
    shown = {"join": kind, **({"quorum": quorum} if quorum is not None else {})}
    graph.add_node(
        "join", RunnableLambda(joiner.invoke, afunc=joiner.ainvoke, name="join"), metadata=shown
    )
    graph.add_edge("join", END)
    held = inventory_of([*members, *([join] if isinstance(join, Agent) else [])])
    check_rule_names("create_parallel_graph", policy, held)
    describe(graph, held)
    return graph
