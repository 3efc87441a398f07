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

from langchain_core.language_models import BaseChatModel

from podium.agents import Agent
from podium.demos._support import (
    create_support_db,
    support_policy,
    support_specialists,
    support_tools,
)
from podium.graphs import create_agent_graph, create_manager_graph
from podium.tools import GovernedGraph

__all__ = ["build_support_agent", "build_support_manager"]


def build_support_agent(
    home: Path, model: str | BaseChatModel = "default"
) -> GovernedGraph[Any, Any, Any, Any]:
    """The support desk as one agent with every tool, over the database under ``home``."""
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
        model=model,
        tools=support_tools(path),
        max_steps=6,
        max_tokens=160,
    )
    return create_agent_graph(agent, policy=support_policy())


def build_support_manager(
    home: Path, model: str | BaseChatModel = "default"
) -> GovernedGraph[Any, Any, Any, Any]:
    """The support desk as a manager (``support_lead``) over billing and technical."""
    billing, technical = support_specialists(create_support_db(home), model)
    lead = Agent(
        name="support_lead",
        description="Answers customers, delegating to billing and technical.",
        instructions=(
            "You lead a shop's customer support. Money, refunds, invoices or charges: "
            "call billing with the customer's request as the task. A device that does not "
            "work: call technical with the request as the task. Then final_answer: tell "
            "the customer what was done. Anything else: final_answer saying you can only "
            "help with orders, refunds and devices."
        ),
        model=model,
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
