"""Agents: the :class:`Agent` spec, the agent loop, model resolution, JSON tool calling."""

from podium.agents._spec import Agent, ToolCalling

__all__ = ["Agent", "ToolCalling"]
