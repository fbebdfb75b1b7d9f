"""Layer 1: the pruned graph, its strongly connected components and levels."""
from .tarjan import strongly_connected_components
from .schedule import Schedule, Level, ModuleGroup
from .prune import PrunedGraph, graph_from_mask, prune, prune_top_k_incremental

__all__ = [
    "strongly_connected_components",
    "Schedule",
    "Level",
    "ModuleGroup",
    "PrunedGraph",
    "prune",
    "graph_from_mask",
    "prune_top_k_incremental",
]
