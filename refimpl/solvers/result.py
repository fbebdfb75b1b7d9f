"""Solver statuses, their messages, the result of a batched group solve, and
:class:`ConvergenceError`.

Every module solver (Newton, fixed point, Newton-Krylov, the whole-graph
solves) reports its outcome with the statuses named here, and a batched solve
of a group of same-size modules returns one :class:`GroupSolve`.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

__all__ = ["SolveStatus", "GroupSolve", "ConvergenceError", "ForwardStatus"]


class SolveStatus(enum.IntEnum):
    """Outcome of a module solve (one code per sample and module).

    Larger is worse: the status of a module is the maximum over its samples.
    ``NEEDS_DAMPING`` is internal to the Newton kernel (a sample whose full
    step failed the line search continues alone with damping); no solver
    returns it.
    """

    CONVERGED = 0
    MAX_ITERATIONS = 1
    NO_DECREASE = 2
    NONFINITE = 3
    NEEDS_DAMPING = 4

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_MESSAGES = {
    SolveStatus.CONVERGED: "converged",
    SolveStatus.MAX_ITERATIONS: "reached the maximum number of iterations",
    SolveStatus.NO_DECREASE: "the solver stopped making progress (dense Newton: the line search found "
    "no decrease or the Jacobian was singular; Newton-Krylov: the pseudo-transient steps kept being "
    "rejected; fixed point: the step grew): the module may have no solution near the start",
    SolveStatus.NONFINITE: "a non-finite value appeared",
    SolveStatus.NEEDS_DAMPING: "the full Newton step failed; damped Newton continues (internal)",
}

#: The statuses as plain integers, for the numba kernels (compile-time constants).
CONVERGED = int(SolveStatus.CONVERGED)
MAX_ITERATIONS = int(SolveStatus.MAX_ITERATIONS)
NO_DECREASE = int(SolveStatus.NO_DECREASE)
NONFINITE = int(SolveStatus.NONFINITE)
NEEDS_DAMPING = int(SolveStatus.NEEDS_DAMPING)


@dataclass
class GroupSolve:
    """Outcome of one batched solve of Eq. (3) on n same-size modules.

    Attributes
    ----------
    x : (n, q, B) array
        The last iterate of every (module, sample) system.
    status : (n,) int8 array
        :class:`SolveStatus` per module, the worst over its samples.
    iterations : (n,) int32 array
        Iterations per module, the maxima over the samples.
    residual : (n,) array
        Final ``||r||_inf`` per module, the maxima over the samples.
    kept : object or None
        What the adjoint solve reuses: the LU factors of the Newton solve
        (:class:`refimpl.solvers.newton.NewtonFactor`), the operator of the
        Krylov solve (:class:`refimpl.solvers.krylov.KrylovOperator`), or
        None (fixed point).
    """

    x: np.ndarray
    status: np.ndarray
    iterations: np.ndarray
    residual: np.ndarray
    kept: object = None

    @classmethod
    def from_samples(cls, x, status, iterations, residual, kept=None):
        """Reduce (n, B) per-sample statistics to per-module ones (worst sample)."""
        n = x.shape[0]
        if x.shape[-1] == 0:
            return cls(x, np.zeros(n, np.int8), np.zeros(n, np.int32), np.zeros(n), kept)
        return cls(x, np.asarray(status).max(axis=1).astype(np.int8),
                   np.asarray(iterations).max(axis=1).astype(np.int32),
                   np.asarray(residual).max(axis=1), kept)


class ConvergenceError(RuntimeError):
    """A neural-module solve failed.

    Attributes
    ----------
    module : int
        Id of the (first) failed module in schedule order; -1 for the whole graph
        (``mode="whole"``, forward and backward).
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
        what = "the whole graph" if self.module < 0 else f"neural module {self.module}"
        super().__init__(
            f"{what} (size {self.size}, nodes {shown}{more}) failed: "
            f"{self.status.message}; residual {self.residual:.3e} after "
            f"{self.iterations} iterations"
        )



def _mark_nonfinite(res, finite_rows, throw):
    """After a forward (Eq. 3, either path): the modules with a node whose value is NaN or
    inf (``finite_rows``: a host bool per position, False there), other than those already
    failed (solved modules report their own: no solve looks at a singleton's value), marked
    NONFINITE in ``res.status`` and ``res.failed_modules``; with ``throw``, a
    :class:`ConvergenceError` for the first."""
    S = res.graph.schedule
    rows = np.flatnonzero(~finite_rows)
    mods = sorted({int(S.labels[S.order[r]]) for r in rows} - set(res.failed_modules))
    if not mods:
        return
    res.status = max(res.status, SolveStatus.NONFINITE)
    res.failed_modules.extend(mods)
    if throw:
        nodes = S.module_nodes(mods[0])
        raise ConvergenceError(mods[0], nodes, len(nodes), np.nan, 0, SolveStatus.NONFINITE,
                               res)

class ForwardStatus:
    """``converged`` and ``iterations`` of a forward pass (Alg. 1), shared by the
    numba path's and the generic path's result types; the class using it has
    ``status``, ``mode``, ``whole_iterations`` and ``module_iterations``."""

    @property
    def converged(self) -> bool:
        return self.status == SolveStatus.CONVERGED

    @property
    def iterations(self) -> int:
        """Largest iteration count of any module (or of the whole-graph solve)."""
        if self.mode == "whole":
            return self.whole_iterations
        return int(self.module_iterations.max()) if self.module_iterations.size else 0
