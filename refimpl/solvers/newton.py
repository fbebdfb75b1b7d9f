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

import numba
import numpy as np
from numba import prange

#: Activation codes understood by the kernels (see ``activations.py``).
ACT_CODES = {"tanh": 0, "sigmoid": 1, "swish": 2, "relu": 3, "identity": 4}


@numba.njit(cache=True, inline="always")
def _act(code, x):
    """f(x) and f'(x) for the activation ``code``."""
    if code == 0:
        t = math.tanh(x)
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


@numba.njit(cache=True, inline="always")
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
        if abs(acc) > rinf:
            rinf = abs(acc)
        if abs(x[a]) > xinf:
            xinf = abs(x[a])
    return math.sqrt(r2), rinf, xinf


@numba.njit(cache=True, inline="always")
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


@numba.njit(cache=True, inline="always")
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


@numba.njit(cache=True, inline="always")
def _lu_solve_transpose(LU, perm, rhs, work, out):
    """Solve J^T out = rhs given P J = L U  (J^T = U^T L^T P)."""
    q = LU.shape[0]
    for i in range(q):  # U^T z = rhs (lower triangular)
        acc = rhs[i]
        for j in range(i):
            acc -= LU[j, i] * work[j]
        work[i] = acc / LU[i, i]
    for i in range(q - 1, -1, -1):  # L^T w = z (unit upper triangular)
        acc = work[i]
        for j in range(i + 1, q):
            acc -= LU[j, i] * work[j]
        work[i] = acc
    for i in range(q):  # P out = w
        out[perm[i]] = work[i]


@numba.njit(cache=True)
def _newton(Ablk, sc, c, x, code, atol, rtol, max_iter, J, pm, fx, dfx, r, dx, xt):
    """Damped Newton on r(x) = x - c - sc A^T f(x) = 0 from x (updated in place).

    Each step solves J dx = -r with J = I - sc A^T diag(f'(x)) (LU with
    partial pivoting, kept in ``J, pm`` at the final x) and is damped by
    backtracking on ||r||_2 (Armijo, factor 1/2, at most 30 halvings).
    Returns (status, iterations, ||r||_inf): status 0 converged
    (``||r||_inf <= atol + rtol ||x||_inf``), 1 max_iter, 2 no decrease or
    singular J, 3 non-finite.
    """
    q = x.shape[0]
    it = 0
    rn2, rinf, xinf = _residual(Ablk, sc, c, x, fx, dfx, r, code)
    while True:
        if not (math.isfinite(rn2) and math.isfinite(xinf)):
            return 3, it, rinf
        # Jacobian at x: J[a, b] = delta_ab - sc A[b, a] f'(x_b); factor it.
        for a in range(q):
            for b in range(q):
                J[a, b] = -sc * Ablk[b, a] * dfx[b]
            J[a, a] += 1.0
        ok = _lu_factor(J, pm)
        if rinf <= atol + rtol * xinf:
            return (0 if ok else 2), it, rinf
        if it >= max_iter:
            return 1, it, rinf
        if not ok:
            return 2, it, rinf
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
            return 2, it, rinf
        for a in range(q):
            x[a] = xt[a]
        rn2, rinf, xinf = n2, ninf, nx


@numba.njit(cache=True, parallel=True)
def newton_group(blocks, C, X, code, atol, rtol, max_iter, LU, perm, iters, resid, status):
    """Solve Eq. (3) on every (module, sample) system of a same-size group.

    Parameters (all preallocated by the caller)
    ----------
    blocks : (n_mod, q, q)   A_SS of each module, ``blocks[m, a, b] = A[node a -> node b]``
    C : (n_mod, q, B)        c_S per sample (bias + upstream + input terms)
    X : (n_mod, q, B)        output: the solution (may share memory with C)
    LU : (n_mod, B, q, q), perm : (n_mod, B, q)   output: LU of J at the solution
    iters : (n_mod, B) int32, resid : (n_mod, B), status : (n_mod, B) int8   outputs

    Damped Newton (:func:`_newton`) from the fixed-point guess x = c.  When
    it stalls (a non-contractive module whose ||r|| has a non-root local
    minimum on the way), natural-parameter continuation takes over: solve
    x = c + s A^T f(x) for s = 1/n, 2/n, ..., 1 from s = 0 (where x = c),
    each from the previous solution, with n = 4, 16, 64.  Iterations count
    every Newton step taken.
    """
    n_mod, q, B = C.shape
    for idx in prange(n_mod * B):
        m = idx // B
        s = idx - m * B
        Ablk = blocks[m]
        c = np.empty(q)
        x = np.empty(q)
        fx = np.empty(q)
        dfx = np.empty(q)
        r = np.empty(q)
        dx = np.empty(q)
        xt = np.empty(q)
        J = LU[m, s]
        pm = perm[m, s]
        for a in range(q):
            c[a] = C[m, a, s]
            x[a] = c[a]  # start from the fixed-point guess x = c
        st, it, rinf = _newton(Ablk, 1.0, c, x, code, atol, rtol, max_iter, J, pm,
                               fx, dfx, r, dx, xt)
        total = it
        n_steps = 4
        while st != 0 and st != 3 and n_steps <= 64:
            for a in range(q):
                x[a] = c[a]
            for k in range(1, n_steps + 1):
                st, it, rinf = _newton(Ablk, k / n_steps, c, x, code, atol, rtol, max_iter,
                                       J, pm, fx, dfx, r, dx, xt)
                total += it
                if st != 0:
                    break
            n_steps *= 4
        for a in range(q):
            X[m, a, s] = x[a]
        iters[m, s] = total
        resid[m, s] = rinf
        status[m, s] = st


@numba.njit(cache=True, parallel=True)
def adjoint_group(LU, perm, RHS, U):
    """Solve ``J^T u = rhs`` for every (module, sample), reusing the LU of
    :func:`newton_group`.  RHS, U: (n_mod, q, B).  This is Eq. (4) on a module."""
    n_mod, q, B = RHS.shape
    for idx in prange(n_mod * B):
        m = idx // B
        s = idx - m * B
        rhs = np.empty(q)
        work = np.empty(q)
        out = np.empty(q)
        for a in range(q):
            rhs[a] = RHS[m, a, s]
        _lu_solve_transpose(LU[m, s], perm[m, s], rhs, work, out)
        for a in range(q):
            U[m, a, s] = out[a]
