"""The support desk in the other shapes: one agent, and a manager with specialists.

Same tools, same database, same policy (a refund over 100 waits for a human) as the
handoff desk of :mod:`podium.demos._support`, so the three can be compared case by
case with ``podium eval`` (see ``evals/support/``): is one well-instructed agent
enough, or do the desk's extra agents earn their tokens?

* :func:`build_support_agent` -- ``create_agent_graph`` of one agent holding all four
  tools (``lookup_order``, ``issue_refund``, ``send_email``, ``troubleshoot``).
* :func:`build_support_manager` -- ``create_manager_graph``: a lead delegates to
  ``billing`` and ``technical`` (the desk's own specialists) and answers the customer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from podium.agents import Agent
from podium.demos._support import (
    Models,
    create_support_db,
    model_for,
    support_policy,
    support_specialists,
    support_tools,
)
from podium.graphs import create_agent_graph, create_manager_graph
from podium.tools import GovernedGraph

__all__ = ["build_support_agent", "build_support_manager"]


def build_support_agent(home: Path, model: Models = "default") -> GovernedGraph[Any, Any, Any, Any]:
    """The support desk as one agent (``support``) with every tool, over ``home``'s database.

    ``model`` is the agent's model, or ``{"support": model}``.
    """
    path = create_support_db(home)
    agent = Agent(
        name="support",
        description="A shop's customer support: refunds and broken devices.",
        instructions=(
            "You are customer support for a shop. For a refund request: 1. lookup_order. "
            "2. issue_refund with the amount the customer asks for. 3. send_email to the "
            "customer saying the refund was made. 4. final_answer: tell the customer what "
            "was done. For a device that does not work: call troubleshoot for the product, "
            "then final_answer with the steps. Anything else: final_answer saying you can "
            "only help with orders, refunds and devices."
        ),
        model=model_for(model, "support"),
        tools=support_tools(path),
        max_steps=6,
        max_tokens=160,
    )
    return create_agent_graph(agent, policy=support_policy())


def build_support_manager(
    home: Path, model: Models = "default"
) -> GovernedGraph[Any, Any, Any, Any]:
    """The support desk as a manager (``support_lead``) over billing and technical.

    ``model`` is every agent's model, or ``{agent: model}`` for ``support_lead``,
    ``billing`` and ``technical``.
    """
    billing, technical = support_specialists(create_support_db(home), model)
    lead = Agent(
        name="support_lead",
        description="Answers customers, delegating to billing and technical.",
        instructions=(
            "You lead a shop's customer support and delegate. Refunds, money or charges "
            'go to billing: {"tool": "billing", "args": {"task": "<the customer\'s message, '
            'word for word>"}}. A device that does not work goes to technical: {"tool": '
            '"technical", "args": {"task": "<the customer\'s message, word for word>"}}. '
            "When the specialist answers, final_answer: tell the customer what was done. "
            "Anything else: final_answer saying you can only help with orders, refunds "
            "and devices."
        ),
        model=model_for(model, "support_lead"),
        max_tokens=160,
    )
    return create_manager_graph(
        lead,
        [billing, technical],
        policy=support_policy(),
        max_rounds=4,
        name="support_manager",
        description="A support lead delegating to billing and technical.",
    )
