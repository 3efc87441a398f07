"""Governed tools: the decorator, MCP servers, policies, approvals, the exactly-once ledger."""

from typing import TYPE_CHECKING

from podium._lazy import attach as _attach

if TYPE_CHECKING:
    from podium.tools._app import GovernedApp
    from podium.tools._approvals import ApprovalRequest, Decision
    from podium.tools._decorator import Risk, ToolTraits, tool, traits_of
    from podium.tools._executor import GovernedExecutor, idempotency_key
    from podium.tools._graph import GovernedGraph, ledger_for
    from podium.tools._mcp import MCPServer, mcp_tools
    from podium.tools._memory import memory_tools
    from podium.tools._policy import Policy, PolicyDecision, Rule

__getattr__, __dir__ = _attach(__name__)

__all__ = [
    "ApprovalRequest",
    "Decision",
    "GovernedApp",
    "GovernedExecutor",
    "GovernedGraph",
    "MCPServer",
    "Policy",
    "PolicyDecision",
    "Risk",
    "Rule",
    "ToolTraits",
    "idempotency_key",
    "ledger_for",
    "mcp_tools",
    "memory_tools",
    "tool",
    "traits_of",
]
