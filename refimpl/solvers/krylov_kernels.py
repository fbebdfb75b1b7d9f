"""numba kernels of the GMRES cycle of :func:`refimpl.solvers.krylov.gmres` (NumPy arrays only).

They serve the module solves of DESIGN.md sec. 3 (Newton-Krylov on Eq. (3))
and sec. 4 (the adjoint Eq. (4), whose solution enters the gradient Eq. (6)).

The array-API code in :mod:`refimpl.solvers.krylov` does the Arnoldi
projections as batched matrix-vector products over the whole (n, B, k, q)
basis: every pass reads the basis from memory, and NumPy makes temporaries
for each.  Here one kernel call does one Arnoldi step for every column
(module m, sample b) of the batch in turn: the column's basis ``V[c]``
(k x q, 8 k q bytes: 240 KB at q = 1000, k = 30) is read once from memory
by the projection ``h = V^T w`` and stays in cache for the update
``w -= V h``, the second Gram-Schmidt pass when it is needed, the norms and
the normalization; the Givens rotations of the column's Hessenberg column
follow in the same call.  A column whose residual estimate is at its
tolerance is frozen there: the kernels skip its gather, orthogonalization,
rotations and scatter for the rest of the cycle (its basis stops growing).
The product with J, done by the caller between the kernel calls (e.g.
:func:`jacobian_product`), still runs over all B columns of every module
at each step; a frozen column's result is not read.  The arithmetic is
that of the array-API code (the same classical Gram-Schmidt with the same
per-column reorthogonalization test, the same rotations); only the order of
the floating-point sums (and fused multiply-adds) differ.

Layout: the basis is column-major, ``V[c, i, :]`` with ``c = m B + b``
(contiguous per column and vector); the vectors the sparse product reads
and writes are node-major ``(n, q, B)`` (the library's layout), gathered
and scattered inside the kernels.
"""
from __future__ import annotations

import numba
import numpy as np

__all__ = ["adjoint_product", "arnoldi_step", "gmres_start", "gmres_update", "jacobian_product"]

_TINY = 1e-300
#: Reassociation only (SIMD dot products); no assumption about NaN or inf.
FASTMATH = {"reassoc", "contract"}


#: Columns gathered from / scattered to the node-major (n, q, B) arrays
#: together: 8 float64 = one 64-byte cache line of a node's row.
_BLOCK = 8


@numba.njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def gmres_start(r, beta, tol, V, Vn, g, active, kcol):
    """Start a GMRES cycle (restarted GMRES, Saad & Schultz 1986, Alg. 4):
    ``v_0 = r / ||r||_2`` per column, written to ``V[:, 0]`` and node-major
    to ``Vn``; ``g = (beta, 0, ...)``; a column is active while
    ``beta > tol``.  Inputs r (n, q, B), beta (n, B), tol (n B,); outputs
    V (n B, m + 1, q), Vn (n, q, B), g (n B, m + 1), active (n B,) bool,
    kcol (n B,) int64 (steps taken, 0).  Returns the number of active columns.
    """
    n, q, B = r.shape
    na = 0
    inv = np.empty(_BLOCK)
    for mi in range(n):
        for b0 in range(0, B, _BLOCK):
            b1 = min(b0 + _BLOCK, B)
            for b in range(b0, b1):
                c = mi * B + b
                be = beta[mi, b]
                inv[b - b0] = 1.0 / be if be > _TINY else 0.0
                g[c, :] = 0.0
                g[c, 0] = be
                kcol[c] = 0
                active[c] = be > tol[c]
                if active[c]:
                    na += 1
            c0 = mi * B + b0
            for i in range(q):
                for b in range(b0, b1):
                    v = r[mi, i, b] * inv[b - b0]
                    V[c0 + b - b0, 0, i] = v
                    Vn[mi, i, b] = v
    return na


@numba.njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def arnoldi_step(j, W, V, Vn, R, cs, sn, g, tol, active, kcol, reorth):
    """Arnoldi step j of GMRES on every active column (classical Gram-Schmidt,
    a second pass where ``||w_after|| < reorth ||w_before||``, Kahan-Parlett /
    DGKS), then the Givens rotations of the new Hessenberg column.

    One step of restarted GMRES (Saad & Schultz 1986) in the module solves
    of DESIGN.md sec. 3 (the Newton-Krylov linear systems of Eq. (3)) and
    sec. 4 (the adjoint systems of Eq. (4), whose solutions the gradient
    Eq. (6) uses).

    ``W`` (n, q, B) is ``J v_j``.  Per active column c: ``h = V[c, :j+1] w``,
    ``w -= V[c, :j+1]^T h`` (twice when needed), ``h_{j+1} = ||w||``; a
    breakdown (``h_{j+1} <= 1e-14 ||h|| + tiny``: the Krylov space is
    invariant) leaves ``v_{j+1} = 0``.  ``V[c, j+1]`` and ``Vn[:, :, b]``
    receive ``v_{j+1}`` (an inactive column's entries are left as they are:
    nothing reads them); ``R[c, :j+1, j]`` the rotated column, ``cs, sn``
    (n B, m) the rotation, ``g`` (n B, m + 1) the rotated right side, whose
    ``|g[c, j+1]|`` is the column's residual estimate: the column stays
    active while it exceeds ``tol[c]``.  ``kcol[c]`` counts the column's
    steps.  Returns the number of active columns after the step.
    """
    n, q, B = W.shape
    h = np.empty(j + 2)
    d = np.empty(j + 1)
    was = np.empty(_BLOCK, dtype=np.bool_)
    na = 0
    for mi in range(n):
        for b0 in range(0, B, _BLOCK):
            b1 = min(b0 + _BLOCK, B)
            c0 = mi * B + b0
            any_active = False
            for b in range(b0, b1):
                was[b - b0] = active[c0 + b - b0]
                any_active = any_active or was[b - b0]
            if not any_active:
                continue
            for i in range(q):  # gather the block's w = J v_j
                for b in range(b0, b1):
                    if was[b - b0]:
                        V[c0 + b - b0, j + 1, i] = W[mi, i, b]
            for b in range(b0, b1):
                c = c0 + b - b0
                if was[b - b0]:
                    na += _arnoldi_column(j, V, c, R, cs, sn, g, tol, active, kcol, reorth,
                                          h, d)
            for i in range(q):  # scatter v_{j+1}
                for b in range(b0, b1):
                    if was[b - b0]:
                        Vn[mi, i, b] = V[c0 + b - b0, j + 1, i]
    return na


@numba.njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def _arnoldi_column(j, V, c, R, cs, sn, g, tol, active, kcol, reorth, h, d):
    """:func:`arnoldi_step` on column c, whose w is in ``V[c, j+1]``;
    returns 1 if the column stays active, else 0."""
    q = V.shape[2]
    w = V[c, j + 1]
    w0 = 0.0
    for i in range(q):
        w0 += w[i] * w[i]
    w0 = np.sqrt(w0)
    hn = _cgs_pass(V, c, j, w, h, d, True)
    if hn < reorth * w0:
        hn = _cgs_pass(V, c, j, w, h, d, False)
    hh = 0.0
    for k in range(j + 1):
        hh += h[k] * h[k]
    ok = hn > 1e-14 * np.sqrt(hh) + _TINY
    inv = 1.0 / hn if ok else 0.0
    for i in range(q):
        w[i] *= inv
    h[j + 1] = hn if ok else 0.0
    for k in range(j):  # the previous rotations
        t = cs[c, k] * h[k] + sn[c, k] * h[k + 1]
        h[k + 1] = -sn[c, k] * h[k] + cs[c, k] * h[k + 1]
        h[k] = t
    dd = np.sqrt(h[j] * h[j] + h[j + 1] * h[j + 1])
    if dd > 0:
        cc, ss = h[j] / dd, h[j + 1] / dd
    else:
        cc, ss = 1.0, 0.0
    cs[c, j] = cc
    sn[c, j] = ss
    h[j] = dd
    for k in range(j + 1):
        R[c, k, j] = h[k]
    g[c, j + 1] = -ss * g[c, j]
    g[c, j] = cc * g[c, j]
    kcol[c] = j + 1
    if abs(g[c, j + 1]) > tol[c]:
        return 1
    active[c] = False
    return 0


@numba.njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def _cgs_pass(V, c, j, w, h, d, first):
    """One classical Gram-Schmidt pass of w against ``V[c, :j+1]``: all the
    projections from the same w, then the update; the coefficients are
    added to h (set on the first pass); d (j + 1,) is scratch.  Returns ``||w||_2`` after it."""
    q = w.shape[0]
    for k in range(j + 1):
        vk = V[c, k]
        s = 0.0
        for i in range(q):
            s += vk[i] * w[i]
        d[k] = s
    for k in range(j + 1):
        vk = V[c, k]
        s = d[k]
        for i in range(q):
            w[i] -= s * vk[i]
        h[k] = s if first else h[k] + s
    hn = 0.0
    for i in range(q):
        hn += w[i] * w[i]
    return np.sqrt(hn)


@numba.njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def gmres_update(V, R, g, kcol, X):
    """End of a GMRES cycle: per column, back substitution ``R y = g`` on its
    ``kcol[c]`` steps (a zero diagonal, from a breakdown, gives ``y_i = 0``),
    then ``x += V[c, :k]^T y``, added into X (n, q, B) node-major.

    The least-squares update of restarted GMRES (Saad & Schultz 1986) in the
    module solves of DESIGN.md sec. 3 (Newton-Krylov steps on Eq. (3)) and
    sec. 4 (the adjoint Eq. (4), for the gradient Eq. (6))."""
    n, q, B = X.shape
    m = R.shape[1]
    y = np.empty(m)
    xb = np.zeros((_BLOCK, q))
    for mi in range(n):
        for b0 in range(0, B, _BLOCK):
            b1 = min(b0 + _BLOCK, B)
            c0 = mi * B + b0
            for b in range(b0, b1):
                c = c0 + b - b0
                xc = xb[b - b0]
                xc[:] = 0.0
                k = kcol[c]
                for i in range(k - 1, -1, -1):
                    acc = g[c, i]
                    for jj in range(i + 1, k):
                        acc -= R[c, i, jj] * y[jj]
                    dg = R[c, i, i]
                    y[i] = acc / dg if dg != 0.0 else 0.0
                for k2 in range(k):
                    vk = V[c, k2]
                    yk = y[k2]
                    for i in range(q):
                        xc[i] += yk * vk[i]
            for i in range(q):
                for b in range(b0, b1):
                    X[mi, i, b] += xb[b - b0, i]


@numba.njit(cache=True, error_model="numpy", inline="always")
def _csr_row(indptr, indices, data, i, X, acc):
    """``acc[b] = sum_k data[k] X[indices[k], b]`` over row i of a CSR matrix,
    in SciPy's order (ascending k): one row of the sparse products of Eq. (3)
    and Eq. (4) for every column b."""
    for b in range(acc.shape[0]):
        acc[b] = 0.0
    for k in range(indptr[i], indptr[i + 1]):
        j = indices[k]
        a = data[k]
        for b in range(acc.shape[0]):
            acc[b] += a * X[j, b]


@numba.njit(cache=True, error_model="numpy")
def jacobian_product(indptr, indices, data, q, s1, sc, D, V, DV, out):
    """``out = s1 * v - sc * A_SS^T (f'(x) * v)``: the (shifted) Jacobian of
    Eq. (3) applied to every column, with ``A_SS^T`` as CSR
    ``(indptr, indices, data)`` of shape (n q, n q) (block diagonal over the
    n modules of q nodes); V, D, out are (n q, B), s1 (n, B) the per-column
    factor on v (1 + the pseudo-time shift), DV (n q, B) scratch for
    ``f'(x) * v``.  The sums run in SciPy's order (ascending k per row), so
    the result is that of the NumPy expression with a SciPy product, to
    rounding of the last operation."""
    nq, B = V.shape
    for i in range(nq):
        for b in range(B):
            DV[i, b] = D[i, b] * V[i, b]
    acc = np.empty(B)
    for i in range(nq):
        mi = i // q
        _csr_row(indptr, indices, data, i, DV, acc)
        for b in range(B):
            out[i, b] = s1[mi, b] * V[i, b] - sc * acc[b]


@numba.njit(cache=True, error_model="numpy")
def adjoint_product(indptr, indices, data, D, U, out):
    """``out = u - f'(x) * (A_SS u)``: the transposed Jacobian of Eq. (3) (the
    operator of Eq. 4 on a module) in one pass, ``A_SS`` as CSR of shape
    (n q, n q); D, U, out (n q, B)."""
    nq, B = U.shape
    acc = np.empty(B)
    for i in range(nq):
        _csr_row(indptr, indices, data, i, U, acc)
        for b in range(B):
            out[i, b] = U[i, b] - D[i, b] * acc[b]
