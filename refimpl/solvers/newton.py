"""Batched damped Newton for the module equations, and their adjoint solves.

For a module S with upstream values fixed the equations are (DESIGN.md sec. 3)

.. math::
    r(x_S) = x_S - c_S - A_{SS}^T f(x_S) = 0, \\qquad
    J(x_S) = I - A_{SS}^T \\operatorname{diag}(f'(x_S)),

one q-vector system per sample.  The kernel below solves all samples of all
same-size modules of a level at once (``prange`` over (module, sample)
pairs), each with an in-place partially pivoted LU of its q x q Jacobian,
which it keeps: the adjoint of Eq. (4), ``J^T u = f'(x) * v_ext``, reuses the
factorization at the solution.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
from numba import prange

from .result import (CONVERGED, MAX_ITERATIONS, NEEDS_DAMPING, NO_DECREASE, NONFINITE,
                     GroupSolve)

#: Activation codes understood by the kernels (see ``activations.py``).
ACT_CODES = {"tanh": 0, "sigmoid": 1, "swish": 2, "relu": 3, "identity": 4}


def act_scalar(code, x):
    """f(x) and f'(x) for the activation ``code`` (one scalar; the f of
    Eq. (3), the f' of its Jacobian and of Eq. (4)): the plain-Python
    source that the CPU kernels compile with numba (``_act`` below) and the CUDA
    kernels of :mod:`refimpl.xp.cuda_tiny` compile as a device function."""
    if code == 0:
        # tanh through one exp (4x faster than math.tanh here, and it
        # vectorizes); absolute error <= 4e-16, far below any solve tolerance.
        e = math.exp(-2.0 * abs(x))
        t = (1.0 - e) / (1.0 + e)
        if x < 0:
            t = -t
        return t, 1.0 - t * t
    if code == 1 or code == 2:
        if x >= 0:
            s = 1.0 / (1.0 + math.exp(-x))
        else:
            e = math.exp(x)
            s = e / (1.0 + e)
        if code == 1:
            return s, s * (1.0 - s)
        return x * s, s + x * s * (1.0 - s)
    if code == 3:
        if x > 0:
            return x, 1.0
        return 0.0, 0.0
    return x, 1.0


_act = numba.njit(cache=True, inline="always")(act_scalar)


@numba.njit(cache=True)
def _residual(Ablk, sc, c, x, fx, dfx, r, code):
    """Fill fx, dfx and r = x - c - sc A^T f(x) (Eq. 3 on the module, sc = 1;
    0 < sc < 1 on the homotopy path); return (||r||_2, ||r||_inf, ||x||_inf)."""
    q = x.shape[0]
    for a in range(q):
        fx[a], dfx[a] = _act(code, x[a])
    r2 = 0.0
    rinf = 0.0
    xinf = 0.0
    for a in range(q):
        acc = 0.0
        for b in range(q):
            acc += Ablk[b, a] * fx[b]  # Eq. (3): sum over senders b of A[b, a] f(x_b)
        acc = x[a] - c[a] - sc * acc
        r[a] = acc
        r2 += acc * acc
        if abs(acc) > rinf or acc != acc:  # (NaN kept: a NaN residual is not 0)
            rinf = abs(acc)
        if abs(x[a]) > xinf:
            xinf = abs(x[a])
    return math.sqrt(r2), rinf, xinf


@numba.njit(cache=True)
def _lu_factor(J, perm):
    """In-place LU with partial pivoting: rows of J become P J = L U.
    ``perm[i]`` is the original row now at row i.  Returns False if singular."""
    q = J.shape[0]
    for i in range(q):
        perm[i] = i
    for k in range(q):
        piv = k
        best = abs(J[k, k])
        for i in range(k + 1, q):
            v = abs(J[i, k])
            if v > best:
                best = v
                piv = i
        if best == 0.0 or not math.isfinite(best):
            return False
        if piv != k:
            for j in range(q):
                tmp = J[k, j]
                J[k, j] = J[piv, j]
                J[piv, j] = tmp
            t = perm[k]
            perm[k] = perm[piv]
            perm[piv] = t
        inv = 1.0 / J[k, k]
        for i in range(k + 1, q):
            lik = J[i, k] * inv
            J[i, k] = lik
            if lik != 0.0:
                for j in range(k + 1, q):
                    J[i, j] -= lik * J[k, j]
    return True


@numba.njit(cache=True)
def _lu_solve(LU, perm, rhs, out):
    """Solve J out = rhs given P J = L U."""
    q = LU.shape[0]
    for i in range(q):
        acc = rhs[perm[i]]
        for j in range(i):
            acc -= LU[i, j] * out[j]
        out[i] = acc
    for i in range(q - 1, -1, -1):
        acc = out[i]
        for j in range(i + 1, q):
            acc -= LU[i, j] * out[j]
        out[i] = acc / LU[i, i]


@numba.njit(cache=True)
def _newton(Ablk, sc, c, x, code, atol, rtol, max_iter, J, pm, fx, dfx, r, dx, xt):
    """Damped Newton on r(x) = x - c - sc A^T f(x) = 0 from x (updated in place).

    Each step solves J dx = -r with J = I - sc A^T diag(f'(x)) (LU with
    partial pivoting, kept in ``J, pm`` at the final x) and is damped by
    backtracking on ||r||_2 (Armijo, factor 1/2, at most 30 halvings).
    Returns (status, iterations, ||r||_inf): CONVERGED
    (``||r||_inf <= atol + rtol ||x||_inf``), MAX_ITERATIONS, NO_DECREASE
    (no decrease or singular J) or NONFINITE (:mod:`.result`).
    """
    q = x.shape[0]
    it = 0
    rn2, rinf, xinf = _residual(Ablk, sc, c, x, fx, dfx, r, code)
    while True:
        if not (math.isfinite(rn2) and math.isfinite(xinf)):
            return NONFINITE, it, rinf
        # Jacobian at x: J[a, b] = delta_ab - sc A[b, a] f'(x_b); factor it.
        for a in range(q):
            for b in range(q):
                J[a, b] = -sc * Ablk[b, a] * dfx[b]
            J[a, a] += 1.0
        ok = _lu_factor(J, pm)
        if rinf <= atol + rtol * xinf:
            return (CONVERGED if ok else NO_DECREASE), it, rinf
        if it >= max_iter:
            return MAX_ITERATIONS, it, rinf
        if not ok:
            return NO_DECREASE, it, rinf
        for a in range(q):
            r[a] = -r[a]
        _lu_solve(J, pm, r, dx)
        t = 1.0
        accepted = False
        n2 = ninf = nx = 0.0
        for _ in range(31):
            for a in range(q):
                xt[a] = x[a] + t * dx[a]
            n2, ninf, nx = _residual(Ablk, sc, c, xt, fx, dfx, r, code)
            if n2 <= (1.0 - 1e-4 * t) * rn2 or ninf <= atol + rtol * nx:
                accepted = True
                break
            t *= 0.5
        it += 1
        if not accepted:
            _residual(Ablk, sc, c, x, fx, dfx, r, code)
            return NO_DECREASE, it, rinf
        for a in range(q):
            x[a] = xt[a]
        rn2, rinf, xinf = n2, ninf, nx


#: Samples per task of the batched kernels: each task runs one module on
#: CHUNK samples in lockstep, the innermost loops running over samples
#: (contiguous, SIMD); tasks run in parallel (prange).
CHUNK = 64


@numba.njit(cache=True, inline="always")
def _task(task, n_ch, B):
    """Module m and samples s0 .. s0 + nb - 1 of a (module, chunk) task."""
    m = task // n_ch
    s0 = (task - m * n_ch) * CHUNK
    return m, s0, min(B, s0 + CHUNK) - s0


@numba.njit(cache=True)
def _residual_batch(Ablk, c, x, fx, dfx, r, rn2, rinf, xinf, code):
    """Eq. (3) on a module for nb samples at once (arrays (q, nb), samples
    last): fx, dfx, r = x - c - A^T f(x) and the per-sample norms."""
    q, nb = x.shape
    for a in range(q):
        for s in range(nb):
            fx[a, s], dfx[a, s] = _act(code, x[a, s])
    for s in range(nb):
        rn2[s] = 0.0
        rinf[s] = 0.0
        xinf[s] = 0.0
    for a in range(q):
        for s in range(nb):
            r[a, s] = x[a, s] - c[a, s]
        for b in range(q):
            w = Ablk[b, a]
            if w != 0.0:
                for s in range(nb):
                    r[a, s] -= w * fx[b, s]  # Eq. (3): sum over senders b of A[b, a] f(x_b)
        for s in range(nb):
            v = r[a, s]
            rn2[s] += v * v
            if abs(v) > rinf[s] or v != v:  # (NaN kept: a NaN residual is not 0)
                rinf[s] = abs(v)
            if abs(x[a, s]) > xinf[s]:
                xinf[s] = abs(x[a, s])
    for s in range(nb):
        rn2[s] = math.sqrt(rn2[s])


@numba.njit(cache=True)
def _lu_factor_batch(J, pm, singular):
    """LU with partial pivoting of nb matrices J[:, :, s] at once (P J = L U
    per sample; ``pm[i, s]`` = original row at row i).  The elimination runs
    with samples innermost; pivot search and row swaps are per sample."""
    q, _, nb = J.shape
    for i in range(q):
        for s in range(nb):
            pm[i, s] = i
    for s in range(nb):
        singular[s] = False
    for k in range(q):
        for s in range(nb):
            piv = k
            best = abs(J[k, k, s])
            for i in range(k + 1, q):
                v = abs(J[i, k, s])
                if v > best:
                    best = v
                    piv = i
            if best == 0.0 or not math.isfinite(best):
                singular[s] = True
                J[k, k, s] = 1.0  # keep the other samples' arithmetic finite
            elif piv != k:
                for j in range(q):
                    tmp = J[k, j, s]
                    J[k, j, s] = J[piv, j, s]
                    J[piv, j, s] = tmp
                t = pm[k, s]
                pm[k, s] = pm[piv, s]
                pm[piv, s] = t
        for i in range(k + 1, q):
            for s in range(nb):
                J[i, k, s] = J[i, k, s] / J[k, k, s]
            for j in range(k + 1, q):
                for s in range(nb):
                    J[i, j, s] -= J[i, k, s] * J[k, j, s]


@numba.njit(cache=True)
def _lu_solve_batch(LU, pm, rhs, out):
    """Solve J out = rhs for nb samples given P J = L U."""
    q, _, nb = LU.shape
    for i in range(q):
        for s in range(nb):
            out[i, s] = rhs[pm[i, s], s]
        for j in range(i):
            for s in range(nb):
                out[i, s] -= LU[i, j, s] * out[j, s]
    for i in range(q - 1, -1, -1):
        for j in range(i + 1, q):
            for s in range(nb):
                out[i, s] -= LU[i, j, s] * out[j, s]
        for s in range(nb):
            out[i, s] /= LU[i, i, s]


@numba.njit(cache=True, parallel=True)
def newton_group(blocks, C, X, code, atol, rtol, max_iter, LU, perm, iters, resid, status):
    """Solve Eq. (3) on every (module, sample) system of a same-size group.

    Parameters (all preallocated by the caller; samples last throughout)
    ----------
    blocks : (n_mod, q, q)   A_SS of each module, ``blocks[m, a, b] = A[node a -> node b]``
    C : (n_mod, q, B)        c_S per sample (bias + upstream + input terms)
    X : (n_mod, q, B)        in: the starting guess (x = c unless the caller
                             has a better one); out: the solution
    LU : (n_mod, q, q, B), perm : (n_mod, q, B)   output: LU of J at the solution
    iters : (n_mod, B) int32, resid : (n_mod, B), status : (n_mod, B) int8   outputs

    Newton from the guess in X.  Lockstep phase: CHUNK
    samples at once (innermost loops over samples), per sample
    J = I - A^T diag(f'(x)) factored with partial pivoting and the full step
    dx = -J^{-1} r taken while it passes the Armijo test on ||r||_2; a
    sample stops when ``||r||_inf <= atol + rtol ||x||_inf`` (DESIGN.md
    sec. 3) and keeps its x and LU.  Per-sample phase: a sample whose full
    step fails (or one of the last eighth of stragglers) continues alone
    with damped Newton (:func:`_newton`: backtracking, factor 1/2, at most
    30 halvings); if that fails too (a non-contractive module whose ||r||
    has a non-root local minimum on the way, or ``max_iter``), by
    natural-parameter continuation: solve x = c + s A^T f(x) for
    s = 1/n, ..., 1 from s = 0 (where x = c), each from the previous
    solution, with n = 4, 16, 64.  Status (:mod:`.result`): CONVERGED,
    MAX_ITERATIONS, NO_DECREASE (no decrease or singular J) or NONFINITE;
    NEEDS_DAMPING marks the samples that leave the lockstep phase.
    """
    n_mod, q, B = C.shape
    n_ch = (B + CHUNK - 1) // CHUNK
    for task in prange(n_mod * n_ch):
        m, s0, nb = _task(task, n_ch, B)
        Ablk = blocks[m]
        c = np.empty((q, nb))
        x = np.empty((q, nb))
        for a in range(q):
            for s in range(nb):
                c[a, s] = C[m, a, s0 + s]
                x[a, s] = X[m, a, s0 + s]  # the start (the caller's guess; x = c by default)
        fx = np.empty((q, nb))
        dfx = np.empty((q, nb))
        r = np.empty((q, nb))
        dx = np.empty((q, nb))
        xt = np.empty((q, nb))
        J = np.empty((q, q, nb))
        pm = np.empty((q, nb), dtype=np.int32)
        rn2 = np.empty(nb)
        rinf = np.empty(nb)
        xinf = np.empty(nb)
        n2 = np.empty(nb)
        ninf = np.empty(nb)
        nx = np.empty(nb)
        singular = np.empty(nb, dtype=np.bool_)
        active = np.ones(nb, dtype=np.bool_)
        st = np.full(nb, MAX_ITERATIONS, dtype=np.int8)
        its = np.zeros(nb, dtype=np.int32)
        _residual_batch(Ablk, c, x, fx, dfx, r, rn2, rinf, xinf, code)
        # Lockstep phase: full Newton steps (t = 1) for every sample at once.
        # A sample whose full step fails the Armijo test, or the last few
        # stragglers, leave it (NEEDS_DAMPING) for the per-sample phase below.
        for it in range(max_iter + 1):
            # Jacobian at x for every sample (stopped ones are unchanged), factored.
            for a in range(q):
                for b in range(q):
                    w = -Ablk[b, a]
                    for s in range(nb):
                        J[a, b, s] = w * dfx[b, s]
                for s in range(nb):
                    J[a, a, s] += 1.0
            _lu_factor_batch(J, pm, singular)
            n_active = 0
            for s in range(nb):
                if not active[s]:
                    continue
                if not (math.isfinite(rn2[s]) and math.isfinite(xinf[s])):
                    st[s] = NONFINITE
                    active[s] = False
                elif rinf[s] <= atol + rtol * xinf[s]:
                    st[s] = NO_DECREASE if singular[s] else CONVERGED
                    active[s] = False
                elif it == max_iter:
                    st[s] = MAX_ITERATIONS
                    active[s] = False
                elif singular[s]:
                    st[s] = NO_DECREASE
                    active[s] = False
                else:
                    n_active += 1
            if n_active * 8 <= nb:
                for s in range(nb):
                    if active[s]:
                        st[s] = NEEDS_DAMPING
                        active[s] = False
                break
            for a in range(q):
                for s in range(nb):
                    r[a, s] = -r[a, s]
            _lu_solve_batch(J, pm, r, dx)
            for a in range(q):
                for s in range(nb):
                    xt[a, s] = x[a, s] + (dx[a, s] if active[s] else 0.0)
            _residual_batch(Ablk, c, xt, fx, dfx, r, n2, ninf, nx, code)
            for s in range(nb):
                if not active[s]:
                    continue
                its[s] += 1
                if n2[s] <= (1.0 - 1e-4) * rn2[s] or ninf[s] <= atol + rtol * nx[s]:
                    for a in range(q):
                        x[a, s] = xt[a, s]
                    rn2[s] = n2[s]
                    rinf[s] = ninf[s]
                    xinf[s] = nx[s]
                else:  # needs damping: finish alone
                    st[s] = NEEDS_DAMPING
                    active[s] = False
        # Per-sample phase: damped Newton from the current x, then continuation.
        cs = np.empty(q)
        xs = np.empty(q)
        fs = np.empty(q)
        dfs = np.empty(q)
        rs = np.empty(q)
        dxs = np.empty(q)
        xts = np.empty(q)
        Js = np.empty((q, q))
        pms = np.empty(q, dtype=np.int32)
        for s in range(nb):
            if st[s] == CONVERGED or st[s] == NONFINITE:
                continue
            for a in range(q):
                cs[a] = c[a, s]
                xs[a] = x[a, s]
            sst = NEEDS_DAMPING
            total = its[s]
            rr = rinf[s]
            if st[s] == NEEDS_DAMPING:
                sst, k_it, rr = _newton(Ablk, 1.0, cs, xs, code, atol, rtol,
                                        max(1, max_iter - total), Js, pms, fs, dfs, rs, dxs, xts)
                total += k_it
            n_steps = 4
            while sst != CONVERGED and sst != NONFINITE and n_steps <= 64:
                for a in range(q):
                    xs[a] = cs[a]
                for k in range(1, n_steps + 1):
                    sst, k_it, rr = _newton(Ablk, k / n_steps, cs, xs, code, atol, rtol,
                                            max_iter, Js, pms, fs, dfs, rs, dxs, xts)
                    total += k_it
                    if sst != CONVERGED:
                        break
                n_steps *= 4
            st[s] = sst
            its[s] = total
            rinf[s] = rr
            for a in range(q):
                x[a, s] = xs[a]
                pm[a, s] = pms[a]
                for b in range(q):
                    J[a, b, s] = Js[a, b]
        for a in range(q):
            for s in range(nb):
                X[m, a, s0 + s] = x[a, s]
                perm[m, a, s0 + s] = pm[a, s]
            for b in range(q):
                for s in range(nb):
                    LU[m, a, b, s0 + s] = J[a, b, s]
        for s in range(nb):
            iters[m, s0 + s] = its[s]
            resid[m, s0 + s] = rinf[s]
            status[m, s0 + s] = st[s]


@numba.njit(cache=True, parallel=True)
def adjoint_group(LU, perm, RHS, U):
    """Solve ``J^T u = rhs`` for every (module, sample), reusing the LU of
    :func:`newton_group` (J^T = U^T L^T P).  RHS, U: (n_mod, q, B).  This
    is Eq. (4) on a module."""
    n_mod, q, B = RHS.shape
    n_ch = (B + CHUNK - 1) // CHUNK
    for task in prange(n_mod * n_ch):
        m, s0, nb = _task(task, n_ch, B)
        w = np.empty((q, nb))
        for i in range(q):  # U^T z = rhs (lower triangular)
            for s in range(nb):
                w[i, s] = RHS[m, i, s0 + s]
            for j in range(i):
                for s in range(nb):
                    w[i, s] -= LU[m, j, i, s0 + s] * w[j, s]
            for s in range(nb):
                w[i, s] /= LU[m, i, i, s0 + s]
        for i in range(q - 1, -1, -1):  # L^T v = z (unit upper triangular)
            for j in range(i + 1, q):
                for s in range(nb):
                    w[i, s] -= LU[m, j, i, s0 + s] * w[j, s]
        for i in range(q):  # P u = v
            for s in range(nb):
                U[m, perm[m, i, s0 + s], s0 + s] = w[i, s]


@numba.njit(cache=True)
def factor_group(blocks, X, code, LU, perm, singular):
    """LU of the module Jacobians ``J = I - A_SS^T diag(f'(x))`` at given x.

    blocks (n_mod, q, q), X (n_mod, q, B); outputs LU (n_mod, q, q, B),
    perm (n_mod, q, B) int32, singular (n_mod, B) bool (preallocated).  The
    factorization :func:`adjoint_group` needs for Eq. (4) at a solution
    found without Newton (the fixed point).
    """
    n_mod, q, B = X.shape
    J = np.empty((q, q, B))
    pm = np.empty((q, B), dtype=np.int32)
    sing = np.empty(B, dtype=np.bool_)
    dfx = np.empty((q, B))
    for m in range(n_mod):
        for a in range(q):
            for s in range(B):
                _, dfx[a, s] = _act(code, X[m, a, s])
        for a in range(q):
            for b in range(q):
                w = -blocks[m, b, a]
                for s in range(B):
                    J[a, b, s] = w * dfx[b, s]
            for s in range(B):
                J[a, a, s] += 1.0
        _lu_factor_batch(J, pm, sing)
        LU[m] = J
        perm[m] = pm
        singular[m] = sing


@dataclass
class NewtonFactor:
    """The LU factors of J at the solution, per (module, sample): what the
    adjoint of Eq. (4) reuses.  ``LU`` (n, q, q, B), ``perm`` (n, q, B)."""

    LU: np.ndarray
    perm: np.ndarray


def _check_group(blocks, X, name="C"):
    blocks = np.asarray(blocks, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    if blocks.ndim != 3 or blocks.shape[1] != blocks.shape[2]:
        raise ValueError(f"blocks: expected shape (n, q, q), got {blocks.shape}")
    if X.ndim != 3 or X.shape[:2] != blocks.shape[:2]:
        raise ValueError(f"{name}: expected shape ({blocks.shape[0]}, {blocks.shape[1]}, B), "
                         f"got {X.shape}")
    return np.ascontiguousarray(blocks), np.ascontiguousarray(X)


def _code(activation):
    if activation not in ACT_CODES:
        raise ValueError(f"activation: the compiled solvers know {sorted(ACT_CODES)}, got "
                         f"{activation!r}; a custom activation's modules are solved by "
                         "solver='fixed_point' or mode='whole'")
    return ACT_CODES[activation]


def solve_newton(blocks, C, X=None, *, activation="tanh", atol=1e-10, rtol=1e-10,
                 max_iter=50):
    """Solve Eq. (3) on a group of same-size modules with the batched Newton
    kernel :func:`newton_group` (validates, allocates, reduces).

    Parameters
    ----------
    blocks : (n, q, q) array
        A_SS per module, ``blocks[m, a, b]`` = weight of edge a -> b.
    C : (n, q, B) array
        The constant term c_S per module and sample.
    X : (n, q, B) array, optional
        The start; default x = c (the fixed-point guess).
    activation : str
        One of :data:`ACT_CODES`.
    atol, rtol, max_iter
        Stop test ``||r||_inf <= atol + rtol ||x||_inf`` and Newton steps.

    Returns
    -------
    GroupSolve
        ``kept`` is the :class:`NewtonFactor` of J at the returned x.
    """
    code = _code(activation)
    blocks, C = _check_group(blocks, C)
    X = C.copy() if X is None else _check_group(blocks, X, "X")[1].copy()
    for name, val in (("atol", atol), ("rtol", rtol)):
        if not (np.isfinite(val) and val >= 0):
            raise ValueError(f"{name}: must be finite and >= 0, got {val}")
    if int(max_iter) < 1:
        raise ValueError(f"max_iter: must be >= 1, got {max_iter}")
    return _newton_in_place(blocks, C, X, code, float(atol), float(rtol), int(max_iter))


def _newton_in_place(blocks, C, X, code, atol, rtol, max_iter):
    """:func:`solve_newton` without its checks, the solution written into ``X``: the
    forward's path for a group Newton solves alone (its arguments come from a checked
    :class:`refimpl.propagate.SolveOptions` and the group's own arrays).  ``blocks``
    (n, q, q), ``C`` and ``X`` (n, q, B) C-contiguous float64, C and X distinct; ``code``
    from :data:`ACT_CODES`.  Returns the :class:`GroupSolve` of Eq. (3) with ``x = X``."""
    n, q, B = C.shape
    LU = np.empty((n, q, q, B))
    perm = np.empty((n, q, B), dtype=np.int32)
    iters = np.empty((n, B), dtype=np.int32)
    resid = np.empty((n, B))
    status = np.empty((n, B), dtype=np.int8)
    newton_group(blocks, C, X, code, atol, rtol, max_iter, LU, perm, iters, resid, status)
    return GroupSolve.from_samples(X, status, iters, resid, NewtonFactor(LU, perm))


def factor_jacobian(blocks, X, *, activation="tanh"):
    """The LU factors of ``J = I - A_SS^T diag(f'(x))`` at the given x
    (:func:`factor_group`); Eq. (3)'s Jacobian for the adjoint Eq. (4).

    Returns ``(NewtonFactor, singular)`` with ``singular`` an (n,) bool array
    (some sample's J is singular).
    """
    code = _code(activation)
    blocks, X = _check_group(blocks, X, "X")
    n, q, B = X.shape
    LU = np.empty((n, q, q, B))
    perm = np.empty((n, q, B), dtype=np.int32)
    singular = np.empty((n, B), dtype=np.bool_)
    factor_group(blocks, X, code, LU, perm, singular)
    return NewtonFactor(LU, perm), singular.any(axis=1) if B else np.zeros(n, bool)


def solve_adjoint(factor, RHS):
    """Solve ``J^T u = rhs`` (Eq. 4 on each module) with the kept LU factors
    (:func:`adjoint_group`).  RHS (n, q, B); returns U of the same shape."""
    RHS = np.ascontiguousarray(RHS, dtype=np.float64)
    if RHS.shape != factor.perm.shape:
        raise ValueError(f"RHS: expected shape {factor.perm.shape}, got {RHS.shape}")
    U = np.empty_like(RHS)
    adjoint_group(factor.LU, factor.perm, RHS, U)
    return U
