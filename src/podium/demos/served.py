"""The demo graphs as LangGraph Server serves them (see ``langgraph.json``).

``langgraph dev`` (or a LangGraph Server deployment) imports this module and compiles
each uncompiled graph with its own checkpointer. Configuration comes from the
environment:

* ``PODIUM_HOME`` -- where the demos keep their business databases (default
  ``$XDG_DATA_HOME/podium/served``, i.e. ``~/.local/share/podium/served``: outside
  the project, see :func:`~podium.demos.served_home`);
* ``PODIUM_MODEL`` -- the model spec for every agent (default: ``default``);
* ``PODIUM_LEDGER`` -- where the exactly-once tool ledger lives (a SQLite path or a
  ``postgresql://`` URL). The server owns the checkpointer, so podium cannot put the
  ledger beside it; set this so approvals and exactly-once survive server restarts
  and are shared by every worker. Unset, each server process keeps it in memory.
  Keep a SQLite ledger outside the folder ``langgraph dev`` starts in (it watches
  that folder and logs every write to it), e.g.
  ``PODIUM_LEDGER=~/.local/share/podium/ledger.sqlite``; its folder is created.

Expose your own graphs the same way: a module with uncompiled podium graphs at top
level, listed under ``graphs`` in ``langgraph.json``.
"""

from __future__ import annotations

import os

from podium.demos._registry import DEMOS, served_home

__all__ = ["ops", "research", "support"]

_HOME = served_home()
_MODEL = os.environ.get("PODIUM_MODEL", "default")

support = DEMOS["support"].build(_HOME, _MODEL)
"""The support desk (handoff + approval)."""
research = DEMOS["research"].build(_HOME, _MODEL)
"""The research brief (pipeline + parallel)."""
ops = DEMOS["ops"].build(_HOME, _MODEL)
"""The ops manager (manager)."""
