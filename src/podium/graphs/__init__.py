"""Prebuilt orchestration graphs; every factory returns an uncompiled ``StateGraph``."""

from podium.graphs._agent import create_agent_graph
from podium.graphs._handoff import HandoffState, History, create_handoff_graph
from podium.graphs._joins import ballot, best_of
from podium.graphs._manager import ManagerState, create_manager_graph
from podium.graphs._parallel import BranchResult, ParallelState, create_parallel_graph
from podium.graphs._pipeline import create_pipeline_graph
from podium.graphs._stage import PipelineState, Rework, Stage, StageInput, StageRecord

__all__ = [
    "BranchResult",
    "HandoffState",
    "History",
    "ManagerState",
    "ParallelState",
    "PipelineState",
    "Rework",
    "Stage",
    "StageInput",
    "StageRecord",
    "ballot",
    "best_of",
    "create_agent_graph",
    "create_handoff_graph",
    "create_manager_graph",
    "create_parallel_graph",
    "create_pipeline_graph",
]
