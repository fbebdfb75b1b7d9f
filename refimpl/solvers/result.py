"""Solver status codes, their messages, and :class:`ConvergenceError`.

Exit codes of every module solve are mapped to statuses here, in one place.
"""
from __future__ import annotations

import enum


class SolveStatus(enum.IntEnum):
    """Outcome of a module solve (one code per sample and module)."""

    CONVERGED = 0
    MAX_ITERATIONS = 1
    NO_DECREASE = 2
    NONFINITE = 3

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_MESSAGES = {
    SolveStatus.CONVERGED: "converged",
    SolveStatus.MAX_ITERATIONS: "reached the maximum number of iterations",
    SolveStatus.NO_DECREASE: "the residual stopped decreasing (Newton line search or fixed-point iteration): "
    "the module may have no solution near the start",
    SolveStatus.NONFINITE: "a non-finite value appeared",
}


class ConvergenceError(RuntimeError):
    """A neural-module solve failed.

    Attributes
    ----------
    module : int
        Id of the (first) failed module in schedule order.
    nodes : array
        Its node ids.
    size : int
        Its number of nodes q.
    residual : float
        The largest final residual ``||r||_inf`` over the samples.
    iterations : int
        The largest iteration count over the samples.
    status : SolveStatus
    result : object
        The forward result with every array computed so far (for inspection).
    """

    def __init__(self, module, nodes, size, residual, iterations, status, result=None):
        self.module = int(module)
        self.nodes = nodes
        self.size = int(size)
        self.residual = float(residual)
        self.iterations = int(iterations)
        self.status = SolveStatus(status)
        self.result = result
        shown = list(map(int, nodes[:8]))
        more = "..." if len(nodes) > 8 else ""
        super().__init__(
            f"neural module {self.module} (size {self.size}, nodes {shown}{more}) failed: "
            f"{self.status.message}; residual {self.residual:.3e} after "
            f"{self.iterations} iterations"
        )
