"""podium governance for LangChain v1 ``create_agent``: :class:`Governed` and :func:`govern`.

A ``create_agent`` user adopts podium's approvals and ledger without rewriting the
agent::

    from langchain.agents import create_agent
    from podium.checkpoints import sqlite_saver
    from podium.middleware import Governed, govern

    app = govern(create_agent(model, tools, middleware=[Governed(policy=policy)],
                              checkpointer=sqlite_saver("runs.sqlite"), name="billing"))

:class:`Governed` is an ``AgentMiddleware`` whose tool-call hook sends every tool
call through podium's one executor (:class:`~podium.tools._executor.GovernedExecutor`):
grants, argument checks, every policy in force, approvals through the one decision
core (an :class:`~podium.ApprovalRequest` interrupt, a :class:`~podium.Decision` to
resume), the exactly-once ledger (in the checkpointer's own file or database, found
from the run's config as podium's graphs find it), and run events. The cleared call
runs through ``create_agent``'s own tool node (the hook's ``handler``), so injected
arguments (``ToolRuntime``, ``InjectedState``) and the middleware listed after
``Governed`` behave as they do in LangChain -- inside the ledger's claim: a
``ToolRetryMiddleware`` after ``Governed`` retries the tool inside one claimed call,
one listed before it re-asks the executor, which returns the recorded result instead
of acting again. Its ``before_model`` hook shows the model the call that ran after a
human edited it (LangChain's ``add_messages`` history does not rewrite it, podium's
reducer does).

What the middleware alone gives a plain ``create_agent(...)`` app, and what needs
:func:`govern`:

* alone: grants, argument checks, the policy, approvals (``runs.pending`` /
  ``runs.decide`` / ``podium pending`` work on the thread), edits judged as new
  calls, exactly-once and in-doubt handling, and the policy/approval/refusal events.
* :func:`govern` adds what lives in podium's compiled graph (``GovernedApp``): runs
  durable by default (``durability="sync"`` when a tool can act -- without it a crash
  right after a side effect can make the model ask, and act, again), the thread
  registry (``podium threads``), input that cannot set ``jump_to`` or other internal
  keys, new input on a waiting thread refused instead of orphaning its calls, and
  the model- and tool-call events of the run ledger.
"""

from podium._middleware import Governed, RepeatedCallError, govern

__all__ = ["Governed", "RepeatedCallError", "govern"]
