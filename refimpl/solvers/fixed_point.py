"""The fixed-point iteration of the module equations (Eq. 3) and of their adjoint (Eq. 4).

``x <- c + A_SS^T f(x)`` on a group of same-size modules at once, and
``u <- rhs + f'(x) * (A_SS u)`` for the adjoint.  The products with A_SS
come in as functions, so a group stored as dense (n, q, q) blocks and a
large module stored as a sparse matrix are iterated by the same code.
"""
from __future__ import annotations

import numpy as np

from .result import GroupSolve, SolveStatus

__all__ = ["fixed_point_group", "fixed_point_adjoint_group"]

#: A module stops (NO_DECREASE) when, after this many iterations, its step grows.
STALL_AFTER = 10


def fixed_point_group(AT, C, f, *, atol, rtol, max_iter, give_up=False):
    """Solve Eq. (3) on a same-size group by the fixed-point iteration
    ``x <- c + A_SS^T f(x)``, from x = c.

    Converges when the module map is a contraction (``||A_SS|| max|f'| < 1``
    suffices).  A module stops with NO_DECREASE when, after
    :data:`STALL_AFTER` iterations, its step grows; with ``give_up=True``
    also when the observed rate ``step_k / step_{k-1}`` predicts that the
    tolerance will not be met within ``max_iter`` iterations.

    Parameters
    ----------
    AT : callable
        ``AT(V, idx)``: ``A_SS^T V`` for the modules ``idx`` (V is
        (len(idx), q, B)).
    C : (n, q, B) array
        The constant term c.
    f : callable
        The activation.

    Returns
    -------
    GroupSolve
        ``residual`` is ``||x_new - x||_inf``, i.e. ``||r(x)||_inf`` of
        Eq. (3) at the returned x; ``kept`` is None.
    """
    X = C.copy()
    n_mod = C.shape[0]
    iters = np.zeros(n_mod, dtype=np.int32)
    status = np.full(n_mod, SolveStatus.MAX_ITERATIONS, dtype=np.int8)
    resid = np.full(n_mod, np.inf)
    active = np.arange(n_mod)
    prev = np.full(n_mod, np.inf)
    for it in range(max_iter + 1):
        Xa = X[active]
        Xn = C[active] + AT(f(Xa), active)  # Eq. (3)
        R = np.abs(Xn - Xa).reshape(active.size, -1).max(axis=1)
        scale = np.abs(Xa).reshape(active.size, -1).max(axis=1)
        resid[active] = R
        iters[active] = it
        done = R <= atol + rtol * scale
        bad = ~np.isfinite(R)
        X[active] = np.where((done | bad)[:, None, None], Xa, Xn)
        status[active[done]] = SolveStatus.CONVERGED
        status[active[bad]] = SolveStatus.NONFINITE
        stalled = (~done) & (~bad) & (it >= STALL_AFTER) & (R >= prev[active])
        if give_up and it >= STALL_AFTER:
            with np.errstate(divide="ignore", invalid="ignore"):
                rate = R / prev[active]
                need = np.log((atol + rtol * scale) / R) / np.log(rate)
            stalled |= (~done) & (~bad) & (it + need > max_iter)
        status[active[stalled]] = SolveStatus.NO_DECREASE
        prev[active] = R
        active = active[~(done | bad | stalled)]
        if active.size == 0:
            break
    return GroupSolve(X, status, iters, resid)


def fixed_point_adjoint_group(A, DF, RHS, *, atol, rtol, max_iter):
    """Solve the module adjoint ``u = rhs + f'(x) * (A_SS u)`` by iteration,
    i.e. ``J^T u = f'(x) * v_ext`` with ``RHS = f'(x) * v_ext`` (Eq. 4).

    ``A(U)`` is ``A_SS U`` on (n, q, B) arrays.  Returns ``(U, converged)``.
    """
    U = RHS.copy()
    for _ in range(max_iter):
        Un = RHS + DF * A(U)  # Eq. (4) restricted to S
        delta = np.abs(Un - U).max() if U.size else 0.0
        U = Un
        if delta <= atol + rtol * (np.abs(U).max() if U.size else 0.0):
            return U, True
    return U, False
