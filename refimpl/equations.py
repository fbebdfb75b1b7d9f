"""Eq. (3) and Eq. (4) assembled over the schedule's index arrays.

Arrays here are *node-major* and in *schedule positions* (see
:class:`refimpl.graph.Schedule`): row t of ``XT`` (shape (p, B)) holds node
``order[t]`` for every sample, so a level, a module, or a group of same-size
modules is one contiguous block of rows, and every gathered row is a
contiguous vector of B samples.
"""
from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def gather_rows(ptr, idx, w, src, dst, t0, t1):
    """``dst[t] += sum_k w[k] * src[idx[k]]`` for ``k in ptr[t]:ptr[t+1]``, t in [t0, t1).

    With the in-edge lists (``in_ptr, in_src``) and ``src = FT`` this is the
    upstream term of Eq. (3), ``sum_{j not in S} w_ji f(x_j)``; with the
    out-edge lists (``out_ptr, out_dst``) and ``src = UT`` it is the
    downstream term of Eq. (4), ``sum_{i not in S} w_ji u_i``.
    """
    B = dst.shape[1]
    for t in range(t0, t1):
        row = dst[t]
        for k in range(ptr[t], ptr[t + 1]):
            wk = w[k]
            srow = src[idx[k]]
            for s in range(B):
                row[s] += wk * srow[s]


#: A level's edge block is multiplied as a dense matrix (BLAS) when it holds
#: at least this many edges and this fraction of its bounding block is filled.
DENSE_MIN_EDGES = 4096
DENSE_MIN_FILL = 0.25


def level_product(ptr, idx, w, src, dst, t0, t1):
    """``dst[t0:t1] += (edge block) @ src``: :func:`gather_rows` or, for a
    dense block (an MLP layer), one BLAS product over the bounding rows.

    The edges of rows t0..t1 reach source rows ``idx`` in [lo, hi); when they
    fill at least :data:`DENSE_MIN_FILL` of that (t1 - t0) x (hi - lo)
    block, it is scattered into a dense matrix and multiplied at BLAS speed.
    Same sums, up to the order of the floating-point additions.
    """
    k0, k1 = ptr[t0], ptr[t1]
    n_edges = k1 - k0
    if n_edges >= DENSE_MIN_EDGES:
        seg = idx[k0:k1]
        lo, hi = int(seg.min()), int(seg.max()) + 1
        if n_edges >= DENSE_MIN_FILL * (hi - lo) * (t1 - t0):
            W = np.zeros((t1 - t0, hi - lo))
            rows = np.repeat(np.arange(t1 - t0), np.diff(ptr[t0:t1 + 1]))
            W[rows, seg - lo] = w[k0:k1]  # pairs are unique in a canonical graph
            dst[t0:t1] += W @ src[lo:hi]
            return
    gather_rows(ptr, idx, w, src, dst, t0, t1)


def module_residual(blocks, C, X, f):
    """Residual of Eq. (3) on a stack of modules: ``X - C - A_SS^T f(X)``.

    ``blocks`` (n_mod, q, q), ``C`` and ``X`` (n_mod, q, B).
    """
    return X - C - np.matmul(blocks.transpose(0, 2, 1), f(X))  # Eq. (3)


def fixed_point_group(blocks, C, f, *, atol, rtol, max_iter, give_up=False):
    """Solve Eq. (3) on a same-size group by the fixed-point iteration
    ``x <- c + A_SS^T f(x)`` (batched matrix products), from x = c.

    Converges when the module map is a contraction (``||A_SS|| max|f'| < 1``
    suffices).  A module stops with status 2 when, after 10 iterations, its
    step grows; with ``give_up=True`` also when the observed rate
    ``step_k / step_{k-1}`` predicts that the tolerance will not be met
    within ``max_iter`` iterations.  Returns
    ``X, iterations (n_mod,), residual (n_mod,), status (n_mod,)`` with the
    statuses of :class:`refimpl.solvers.SolveStatus`.
    """
    AT = np.ascontiguousarray(blocks.transpose(0, 2, 1))
    X = C.copy()
    n_mod = C.shape[0]
    iters = np.zeros(n_mod, dtype=np.int32)
    status = np.ones(n_mod, dtype=np.int8)
    resid = np.full(n_mod, np.inf)
    active = np.arange(n_mod)
    prev = np.full(n_mod, np.inf)
    for it in range(max_iter + 1):
        Xa = X[active]
        Xn = C[active] + np.matmul(AT[active], f(Xa))  # Eq. (3)
        R = np.abs(Xn - Xa).reshape(active.size, -1).max(axis=1)
        scale = np.abs(Xa).reshape(active.size, -1).max(axis=1)
        resid[active] = R
        iters[active] = it
        done = R <= atol + rtol * scale
        bad = ~np.isfinite(R)
        X[active] = np.where((done | bad)[:, None, None], Xa, Xn)
        status[active[done]] = 0
        status[active[bad]] = 3
        stalled = (~done) & (~bad) & (it >= 10) & (R >= prev[active])
        if give_up and it >= 10:
            with np.errstate(divide="ignore", invalid="ignore"):
                rate = R / prev[active]
                need = np.log((atol + rtol * scale) / R) / np.log(rate)
            stalled |= (~done) & (~bad) & (it + need > max_iter)
        status[active[stalled]] = 2
        prev[active] = R
        active = active[~(done | bad | stalled)]
        if active.size == 0:
            break
    return X, iters, resid, status


def fixed_point_adjoint_group(blocks, DF, RHS, *, atol, rtol, max_iter):
    """Solve the module adjoint ``u = f'(x) * (rhs' + A_SS u)`` by iteration,
    i.e. ``J^T u = f'(x) * v_ext`` with ``RHS = f'(x) * v_ext`` (Eq. 4)."""
    U = RHS.copy()
    for _ in range(max_iter):
        Un = RHS + DF * np.matmul(blocks, U)  # Eq. (4) restricted to S
        delta = np.abs(Un - U).max() if U.size else 0.0
        U = Un
        if delta <= atol + rtol * (np.abs(U).max() if U.size else 0.0):
            return U, True
    return U, False
