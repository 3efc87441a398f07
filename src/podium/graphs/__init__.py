"""Prebuilt orchestration graphs; every factory returns an uncompiled ``StateGraph``."""

from podium.graphs._agent import create_agent_graph

__all__ = ["create_agent_graph"]
