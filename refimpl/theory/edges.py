"""Eq. (1) and Eq. (2): the edge counts of a DAG and of a complete graph with self-loops."""
from __future__ import annotations

from ..validation import check_int

__all__ = ["max_edges_dag", "max_edges_graph"]


def max_edges_dag(p):
    r"""Maximum number of edges of a DAG on ``p`` nodes, self-loops included.

    Implements Eq. (1) of the paper: under a topological order node ``i`` may
    receive an edge from each of its predecessors and from itself,

    .. math:: 1 + 2 + \dots + p = \frac{p (p + 1)}{2}.

    The count includes the ``p`` self-loops (the biases ``w_ii`` of Eq. 3);
    without them it is ``p (p - 1) / 2``.
    """
    p = check_int(p, "p")
    return p * (p + 1) // 2  # Eq. (1)


def max_edges_graph(p):
    r"""Maximum number of edges of a general directed graph on ``p`` nodes.

    Implements Eq. (2) of the paper: every ordered pair, self-loops included,

    .. math:: p^2 .
    """
    p = check_int(p, "p")
    return p * p  # Eq. (2)
