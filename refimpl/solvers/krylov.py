"""Matrix-free Newton-Krylov solves of large neural modules (Eq. 3 and its adjoint Eq. 4).

For a module S with upstream values fixed (DESIGN.md sec. 3)

.. math::
    r(x) = x - c - A_{SS}^T f(x) = 0, \\qquad
    J v = v - A_{SS}^T (f'(x) \\odot v), \\qquad
    J^T u = u - f'(x) \\odot (A_{SS} u).

Nothing q x q is ever formed: every product with J (or J^T) is one sparse
product for all samples of the batch at once.  The arrays are node-major,
shape ``(n, q, B)`` (n same-size modules of q nodes, B samples): a
*column* ``[m, :, b]`` is one module's system for one sample, and every
reduction (inner products, norms, the stop test) is over axis 1, giving
``(n, B)`` arrays.  Each column has its own stop test: a column that is done
freezes (in GMRES its basis stops growing and its coefficients stay; in the
Newton loop its iterate and status stay) while the others go on, until every
column is done or the budget is spent.  What a frozen column still costs
depends on the path below: the sparse product with J always runs over all
B columns of every module.

Two paths run the same algorithm.  The array-API code is written against a
namespace ``xp`` (array-API calls only: ``sum, sqrt, abs, max, where,
zeros, isfinite, ...``) and receives the sparse product as a function: it
runs on CuPy with :mod:`cupyx.scipy.sparse`, on ``array_api_strict`` (the
tests), and on NumPy arrays that are not float64 (or with
``gmres(..., kernels=False)``); its Arnoldi coefficients are ``(n, B)``
arrays, the Givens rotations are vectorized over them, and a frozen
column's projections are still computed (on a zeroed vector).  Float64
NumPy arrays take the GMRES cycle in the numba kernels of
:mod:`refimpl.solvers.krylov_kernels` instead (one pass over each column's
basis per step; a frozen column's Arnoldi work is skipped), and when the
sparse product is a :class:`SparseProduct` of a float64 SciPy CSR matrix,
J and J^T are applied by the fused kernels (``jacobian_product``,
``adjoint_product``) rather than by the function given.  The two paths
agree to rounding (the order of the floating-point sums differs).

Preconditioning: none.  Measured on the benchmark's modules
(``benchmarks/bench_large.py``): a Neumann-polynomial preconditioner
(``M^{-1} = I + A^T D``, i.e. fixed-point sweeps) costs one more sparse
product per Krylov step and saves about as many steps as it costs, because
GMRES already builds the optimal polynomial in the same Krylov space; its
only gain would be fewer orthogonalizations, and for non-contractive modules
(spectral radius of ``A^T D`` near or above 1, the case this solver is for)
the Neumann polynomial makes the spectrum worse.  An incomplete
factorization is ruled out because J differs per sample (one ILU per
column would cost more than the solve).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .krylov_kernels import (adjoint_product, arnoldi_step, gmres_start, gmres_update,
                             jacobian_product)
from .result import SolveStatus

__all__ = ["KrylovOperator", "SparseProduct", "gmres", "newton_krylov", "krylov_adjoint",
           "xp_activation", "scipy_spmv"]

#: GMRES restart length (Krylov vectors per cycle).  30 is the usual choice;
#: the benchmark's modules (q = 200..3000) need 10-25 vectors per Newton
#: step at the forcing term below, so one cycle mostly suffices.
RESTART = 30
#: Reorthogonalize a column when ``||w_after|| < REORTH ||w_before||`` (the
#: DGKS test).  Kahan-Parlett's 1/sqrt(2) fired in 99.9 % of the column
#: steps on the benchmark's modules (85-88 % on the hard ones): ``J v_j``
#: keeps ``v_j``'s own component (about 1), whose removal is not a harmful
#: cancellation (it costs ~2 eps of orthogonality per step, where the test
#: guards against eps / REORTH).  With 0.1 (at most 10 eps per step) the
#: second pass never ran there, the iteration and product counts were the
#: same (q = 200..1000, scale 1 and 1.6), and fwd+bwd took 12-20 % less
#: (q = 1000, 3000).  The answers do not rest on orthogonality: every cycle
#: ends with the true residual, which the stop tests read.
REORTH = 0.1
#: The adjoint's restart length (:func:`krylov_adjoint`): one linear solve to
#: the full tolerance (40-60 products on the benchmark's modules), where
#: shorter cycles read less basis per step; the backward measured 0-40 %
#: faster than with 30 (q = 1000, 3000 at scale 1; 500, 1000 at scale 1.6;
#: one process, a loaded machine, so the spread is wide).
ADJOINT_RESTART = 15
#: Restart cycles per linear solve at most.
MAX_RESTARTS = 20
#: The smallest inexact-Newton forcing term: a linear solve stops when
#: ``||J dx + r||_2 <= eta ||r||_2`` (or well below the Newton stop test).
ETA = 1e-4
#: The forcing term's bounds: the first step's linear solve stops at
#: ``ETA_MAX ||r||`` (a rough direction suffices far from the solution),
#: later ones follow Eisenstat and Walker's choice 2
#: ``EW_GAMMA (||r_k|| / ||r_{k-1}||)^2`` but not below ``ETA``.
ETA_MAX = 0.5
EW_GAMMA = 0.9
STATS = {"matvecs": 0}
#: Continuation fallback: numbers of homotopy steps tried, in order.
CONTINUATION_STEPS = (4, 16)
#: Pseudo-transient continuation (Kelley & Keyes 1998, see
#: :func:`newton_krylov`): the first pseudo-time step tau_0 (the shift
#: 1 / tau_0 doubles J's identity part), the growth of ``||r||_2`` a step may
#: cause and still be taken, the factor on 1 / tau after a rejected step, the
#: shift at which a column gives up (NO_DECREASE), and the least shift a
#: rejection multiplies (the continuation's solves start at 1 / tau = 0).
#: Measured on the benchmark's modules (scale 1: 8 steps, 91 Krylov products
#: at q = 1000 against 6 Newton steps and 86 products with the line search).
PTC_TAU0 = 1.0
PTC_GROWTH = 2.0
PTC_REJECT = 10.0
PTC_MAX_SHIFT = 1e8
PTC_MIN_SHIFT = 1e-4


def xp_activation(xp, name):
    """``fd(x) -> (f(x), f'(x))`` for activation ``name`` written with ``xp``
    calls only (the activations of ``refimpl.activations``): the f of
    Eq. (3) and the f' of its Jacobian and of Eq. (4)."""
    if name == "tanh":
        def fd(x):
            t = xp.tanh(x)
            return t, 1.0 - t * t
    elif name in ("sigmoid", "swish"):
        def fd(x):
            e = xp.exp(-xp.abs(x))
            s = xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
            if name == "sigmoid":
                return s, s * (1.0 - s)
            return x * s, s + x * s * (1.0 - s)
    elif name == "relu":
        def fd(x):
            pos = x > 0
            return xp.where(pos, x, 0.0 * x), xp.where(pos, 1.0 + 0.0 * x, 0.0 * x)
    elif name == "identity":
        def fd(x):
            return x, 1.0 + 0.0 * x
    else:
        raise ValueError(f"activation: unknown activation {name!r}")
    return fd


class SparseProduct:
    """The product ``V -> M @ V`` on ``(n, q, B)`` arrays for a sparse (or
    dense) ``(n q, n q)`` matrix M, block diagonal over the n modules (the
    sparse product the Krylov solver is given, DESIGN.md sec. 3).  With a
    SciPy CSR matrix and NumPy float64 arrays, :func:`newton_krylov` and
    :func:`krylov_adjoint` apply J and J^T with it in one fused pass
    (:func:`refimpl.solvers.krylov_kernels.jacobian_product`)."""

    def __init__(self, M, n, q):
        self.M, self.n, self.q = M, n, q

    def __call__(self, V):
        n, q = self.n, self.q
        B = V.shape[2]
        return (self.M @ V.reshape(n * q, B)).reshape(n, q, B)

    def csr(self):
        """``(indptr, indices, data)`` when M is a float64 SciPy CSR matrix, else None."""
        M = self.M
        if getattr(M, "format", None) != "csr" or M.dtype != np.float64:
            return None
        return M.indptr, M.indices, M.data


def scipy_spmv(M, n, q):
    """A :class:`SparseProduct`: ``V -> M @ V`` on ``(n, q, B)`` arrays for a
    sparse (or dense) ``(n q, n q)`` matrix M (block diagonal over the n
    modules; Eq. 3's ``A_SS^T`` or Eq. 4's ``A_SS``)."""
    return SparseProduct(M, n, q)


def _fused(op, *arrays):
    """The CSR arrays of ``op`` when J can be applied by the fused kernels."""
    if not isinstance(op, SparseProduct) or not all(
            type(a) is np.ndarray and a.dtype == np.float64 for a in arrays):
        return None
    return op.csr()


@dataclass
class KrylovOperator:
    """What the adjoint of a Krylov-solved group reuses: the products with
    A_SS^T (forward, Eq. (3)) and A_SS (adjoint, Eq. (4)) and f'(x) at the
    solution (DESIGN.md sec. 3 and 4).

    Attributes
    ----------
    AT, A : callable
        ``V -> A_SS^T V`` and ``V -> A_SS V`` on (n, q, B) arrays.
    dfx : (n, q, B) array
        f'(x) at the solution.
    """

    AT: Callable
    A: Callable
    dfx: object = None


def _dot(a, b, xp):
    return xp.sum(a * b, axis=1)


def gmres(xp, matvec, b, tol, *, restart=None, max_restarts=None, kernels=None, work=None):
    """Restarted GMRES for ``J x = b`` on every column of an (n, q, B) batch.

    Implements the Krylov part of the module solves (DESIGN.md sec. 3;
    restarted GMRES, Saad & Schultz 1986): Arnoldi by classical
    Gram-Schmidt, repeated in a column when the projection removed more than
    ``1 - REORTH`` of its norm (Kahan's "twice is enough" test, DGKS; CGS2
    then), the basis of each column kept as an (n, B, k, q) array so that the
    projections are batched matrix-vector products (``xp.matmul``) and the
    coefficients of all columns are (n, B) arrays; Givens rotations
    vectorized over the columns; restarts every ``restart`` steps from the
    true residual, from x = 0.  A column is done when its residual estimate
    is at ``tol`` ((n, B) array): its basis stops growing there (its later
    coefficients are zero), and the others go on in lockstep until every
    column is done.  A Krylov breakdown (the new vector is zero: the space is
    invariant, the solution exact) leaves that column's later vectors zero
    and their coefficients out.

    ``kernels``: None (default) runs the cycle with the numba kernels of
    :mod:`refimpl.solvers.krylov_kernels` when the arrays are float64 NumPy
    arrays (the same arithmetic in another summation order, one pass over
    each column's basis per step instead of NumPy's temporaries), the
    array-API code otherwise; False forces the array-API code.  ``work``: a
    dict the kernels keep their buffers in between calls of the same shape
    (the Newton loop passes one, so that its solves reuse the basis memory
    instead of faulting in fresh pages every time).

    Returns
    -------
    x : (n, q, B) array
    resnorm : (n, B) array
        ``||b - J x||_2`` at the returned x.
    steps : int
        Products with J taken.
    """
    restart = RESTART if restart is None else restart
    max_restarts = MAX_RESTARTS if max_restarts is None else max_restarts
    if kernels is None:
        kernels = _numpy_float64(xp, b)
    if kernels:
        return _gmres_kernels(matvec, b, tol, restart, max_restarts, work)
    n, q, B = b.shape
    x = xp.zeros_like(b)
    r = b
    beta = xp.sqrt(_dot(r, r, xp))
    steps = 0
    tiny = 1e-300
    m = restart
    for _ in range(max_restarts):
        if not bool(xp.any(beta > tol)):
            break
        Vt = xp.zeros((n, B, m + 1, q), dtype=b.dtype, device=_device(b))
        Vt[:, :, 0, :] = xp.permute_dims(r / xp.where(beta > tiny, beta, 1.0)[:, None, :],
                                         (0, 2, 1))
        R = []  # columns of the rotated Hessenberg matrix, lists of (n, B)
        cs, sn = [], []
        g = [beta]
        for j in range(m):
            live = xp.abs(g[j]) > tol  # a done column's basis stops growing
            w = matvec(xp.permute_dims(Vt[:, :, j, :], (0, 2, 1)))
            steps += 1
            wt = xp.permute_dims(w, (0, 2, 1))  # (n, B, q)
            wt = xp.where(live[..., None], wt, 0.0 * wt)
            Vj = Vt[:, :, :j + 1, :]
            w0 = xp.sqrt(xp.sum(wt * wt, axis=2))
            hv = xp.matmul(Vj, wt[..., None])[..., 0]          # (n, B, j+1)
            wt = wt - xp.matmul(hv[..., None, :], Vj)[..., 0, :]
            hn = xp.sqrt(xp.sum(wt * wt, axis=2))
            again = hn < REORTH * w0  # cancellation: a second pass there (CGS2)
            if bool(xp.any(again)):
                d = xp.matmul(Vj, wt[..., None])[..., 0]
                d = xp.where(again[..., None], d, 0.0 * d)
                wt = wt - xp.matmul(d[..., None, :], Vj)[..., 0, :]
                hv = hv + d
                hn = xp.where(again, xp.sqrt(xp.sum(wt * wt, axis=2)), hn)
            ok = hn > 1e-14 * xp.sqrt(xp.sum(hv * hv, axis=2)) + tiny
            inv = xp.where(ok, 1.0 / xp.where(ok, hn, 1.0), 0.0 * hn)
            Vt[:, :, j + 1, :] = wt * inv[..., None]
            h = [hv[:, :, i] for i in range(j + 1)] + [xp.where(ok, hn, 0.0 * hn)]
            for i in range(j):  # the previous rotations
                t = cs[i] * h[i] + sn[i] * h[i + 1]
                h[i + 1] = -sn[i] * h[i] + cs[i] * h[i + 1]
                h[i] = t
            dd = xp.sqrt(h[j] * h[j] + h[j + 1] * h[j + 1])
            pos = dd > 0
            c = xp.where(pos, h[j] / xp.where(pos, dd, 1.0), 1.0 + 0.0 * dd)
            s = xp.where(pos, h[j + 1] / xp.where(pos, dd, 1.0), 0.0 * dd)
            cs.append(c)
            sn.append(s)
            h[j] = dd
            R.append(h[:j + 1])
            # A done column: h = 0, so c = 1, s = 0 and its g stays.
            g.append(xp.where(live, -s * g[j], 0.0 * g[j]))
            g[j] = c * g[j]
            if not bool(xp.any(xp.abs(g[j + 1]) > tol)):
                break
        k = len(R)
        y = [None] * k
        for i in range(k - 1, -1, -1):  # back substitution, R y = g
            acc = g[i]
            for jj in range(i + 1, k):
                acc = acc - R[jj][i] * y[jj]
            dii = R[i][i]
            nz = dii != 0
            y[i] = xp.where(nz, acc / xp.where(nz, dii, 1.0), 0.0 * acc)
        Y = xp.stack(y, axis=2)  # (n, B, k)
        x = x + xp.permute_dims(xp.matmul(Y[..., None, :], Vt[:, :, :k, :])[..., 0, :],
                                (0, 2, 1))
        r = b - matvec(x)
        steps += 1
        beta = xp.sqrt(_dot(r, r, xp))
    return x, beta, steps


def _numpy_float64(xp, a):
    return (getattr(xp, "__name__", "") in ("numpy", "array_api_compat.numpy")
            and type(a) is np.ndarray and a.dtype == np.float64)


def _gmres_kernels(matvec, b, tol, restart, max_restarts, work):
    """:func:`gmres` with the cycle in numba kernels (NumPy float64 arrays)."""
    n, q, B = b.shape
    N, m = n * B, restart
    key = (n, q, B, m)
    if work is None or work.get("key") != key:
        work = {} if work is None else work
        work.clear()
        work.update(key=key, V=np.empty((N, m + 1, q)), Vn=np.empty((n, q, B)),
                    R=np.zeros((N, m, m)), cs=np.zeros((N, m)), sn=np.zeros((N, m)),
                    g=np.zeros((N, m + 1)), active=np.zeros(N, dtype=np.bool_),
                    kcol=np.zeros(N, dtype=np.int64))
    V, Vn, R, cs, sn = work["V"], work["Vn"], work["R"], work["cs"], work["sn"]
    g, active, kcol = work["g"], work["active"], work["kcol"]
    b = np.ascontiguousarray(b)
    tolc = np.ascontiguousarray(np.broadcast_to(tol, (n, B)), dtype=np.float64).reshape(N)
    x = np.zeros_like(b)
    r = b
    beta = np.sqrt(np.einsum("nqb,nqb->nb", r, r))
    steps = 0
    for _ in range(max_restarts):
        if gmres_start(np.ascontiguousarray(r), beta, tolc, V, Vn, g, active, kcol) == 0:
            break
        for j in range(m):
            W = np.ascontiguousarray(matvec(Vn), dtype=np.float64)
            steps += 1
            if arnoldi_step(j, W, V, Vn, R, cs, sn, g, tolc, active, kcol, REORTH) == 0:
                break
        gmres_update(V, R, g, kcol, x)
        r = b - matvec(x)
        steps += 1
        beta = np.sqrt(np.einsum("nqb,nqb->nb", r, r))
    return x, beta, steps


def _device(a):
    return getattr(a, "device", None)


def _max1(a, xp):
    return xp.max(xp.abs(a), axis=1)


def _newton_loop(xp, AT, fd, C, X, sc, atol, rtol, max_iter, eta, restart, shift0):
    """Inexact Newton on ``x - c - sc A^T f(x) = 0`` from X, every column in
    lockstep (see :func:`newton_krylov`)."""
    x = X
    fx, dfx = fd(x)
    r = x - C - sc * AT(fx)  # Eq. (3) restricted to the module
    n, q, B = C.shape
    zero = xp.zeros((n, B), dtype=C.dtype, device=_device(C))
    status = xp.astype(zero, xp.int8) + int(SolveStatus.MAX_ITERATIONS)
    iters = xp.astype(zero, xp.int32)
    active = zero == 0
    r2 = xp.sqrt(_dot(r, r, xp))
    rinf = _max1(r, xp)
    etak = 0.0 * r2 + ETA_MAX
    r2_prev = r2
    shift = 0.0 * r2 + shift0  # 1 / tau per column
    work = {}  # the GMRES buffers, shared by the steps' solves
    fused = _fused(AT, C)
    for it in range(max_iter + 1):
        xinf = _max1(x, xp)
        stop = atol + rtol * xinf
        bad = active & ~(xp.isfinite(r2) & xp.isfinite(xinf))
        done = active & ~bad & (rinf <= stop)
        status = xp.where(bad, int(SolveStatus.NONFINITE), status)
        status = xp.where(done, int(SolveStatus.CONVERGED), status)
        active = active & ~(bad | done)
        if it == max_iter or not bool(xp.any(active)):
            break
        D = dfx
        rhs = xp.where(active[:, None, :], -r, 0.0 * r)

        if fused is not None:
            J = _fused_jacobian(fused, 1.0 + shift, sc, np.ascontiguousarray(D))
        else:
            def J(v, D=D, s1=1.0 + shift[:, None, :]):
                # the Jacobian of Eq. (3), matrix-free, plus the pseudo-time shift
                return s1 * v - sc * AT(D * v)

        # Linear tolerance: the forcing term, but never below a tenth of
        # the stop test (in 2-norm, sqrt(q) ||.||_inf bounds it).
        if it > 0:  # Eisenstat-Walker choice 2, with its safeguard
            ew = EW_GAMMA * (r2 / xp.where(r2_prev > 0, r2_prev, 1.0)) ** 2
            safe = EW_GAMMA * etak * etak
            ew = xp.where(safe > 0.1, xp.maximum(ew, safe), ew)
            etak = xp.minimum(xp.maximum(ew, 0.0 * ew + eta), 0.0 * ew + ETA_MAX)
        lin_tol = xp.maximum(etak * r2, 0.1 * stop)
        lin_tol = xp.where(active, lin_tol, 0.0 * lin_tol + float("inf"))
        dx, _, k = gmres(xp, J, rhs, lin_tol, restart=restart, work=work)
        STATS["matvecs"] += k
        # Pseudo-transient continuation: the full step, accepted where the
        # residual stays finite and grows by at most PTC_GROWTH; the
        # pseudo-time step follows SER (1/tau *= ||r_new|| / ||r||), a
        # rejected step is retried with 1/tau * PTC_REJECT.
        xt = x + dx
        ft, dft = fd(xt)
        rt = xt - C - sc * AT(ft)
        rt2 = xp.sqrt(_dot(rt, rt, xp))
        ok = active & xp.isfinite(rt2) & (rt2 <= PTC_GROWTH * r2)
        m3 = ok[:, None, :]
        x = xp.where(m3, xt, x)
        fx = xp.where(m3, ft, fx)
        dfx = xp.where(m3, dft, dfx)
        r = xp.where(m3, rt, r)
        ratio = rt2 / xp.where(r2 > 0, r2, 1.0)
        retry = PTC_REJECT * xp.maximum(shift, 0.0 * shift + PTC_MIN_SHIFT)
        shift = xp.where(ok, shift * ratio, xp.where(active, retry, shift))
        iters = iters + xp.astype(active, xp.int32)
        stuck = active & ~ok & (shift > PTC_MAX_SHIFT)
        status = xp.where(stuck, int(SolveStatus.NO_DECREASE), status)
        active = active & ~stuck
        r2_prev = xp.where(ok, r2, r2_prev)
        r2 = xp.where(ok, rt2, r2)
        rinf = _max1(r, xp)
    return x, dfx, status, iters, rinf


def newton_krylov(xp, AT, fd, C, X, *, atol, rtol, max_iter, eta=ETA, restart=None):
    """Solve Eq. (3) on a group of modules by Jacobian-free Newton-Krylov.

    Implements DESIGN.md sec. 3's large-module solve of
    ``r(x) = x - c - A_SS^T f(x) = 0``: inexact Newton steps solved by
    :func:`gmres` (one sparse product ``AT`` per Krylov step for all
    columns), globalized by pseudo-transient continuation (Kelley & Keyes,
    SIAM J. Numer. Anal. 35, 1998; "SER" step control): each column solves

    .. math::
        (\\tau^{-1} I + J) \\, dx = -r, \\qquad
        J v = v - A_{SS}^T (f'(x) \\odot v)

    and takes the full step where ``||r||_2`` stays finite and grows by at
    most :data:`PTC_GROWTH`; then ``1/tau *= ||r_new|| / ||r||`` (so the
    shift vanishes as r does and the end phase is Newton's), a rejected step
    is retried with ``1/tau`` times :data:`PTC_REJECT`.  The iteration follows
    the flow ``x' = -r(x)`` while far from a solution, which is what lets it
    converge on non-contractive modules where a line search on ``||r||``
    stalls in a local minimum (measured: the benchmark's "hard" module,
    scale 1.6, p = 200, B = 64, 36 steps and 1084 Krylov products; the
    Armijo line search it replaced needed 10 538 products and the
    continuation below).  ``1/tau_0 = 1`` (:data:`PTC_TAU0`) doubles J's
    identity part, which also makes the first linear systems easy.  The
    linear tolerance is Eisenstat and Walker's choice 2 forcing term
    (:data:`ETA`, :data:`ETA_MAX`) times ``||r||_2``, never below a tenth of
    the stop test.  A column stops when ``||r||_inf <= atol + rtol
    ||x||_inf`` (the Newton solver's test), with NO_DECREASE when
    ``1/tau`` passes :data:`PTC_MAX_SHIFT` (its steps keep being rejected).

    Known limitation: the test is relative to ``||x||``, so on a module with no
    solution and an unbounded f (identity, relu, swish) the iterate can run away until
    the test passes (measured: a singular identity module, ``|x|`` ~ 1e17 reported
    CONVERGED where Newton and the fixed point report failure).  A bounded f (tanh,
    sigmoid) keeps ``A_SS^T f(x)`` bounded, so a run-away x cannot satisfy it.

    Parameters
    ----------
    xp : array namespace
    AT : callable
        ``V -> A_SS^T V`` on (n, q, B) arrays.
    fd : callable
        ``x -> (f(x), f'(x))`` (see :func:`xp_activation`).
    C, X : (n, q, B) arrays
        The constant term c and the start (x = c is the fixed-point guess).
    atol, rtol, max_iter : the stop test and the Newton steps allowed.

    Columns that end with MAX_ITERATIONS or NO_DECREASE (the flow has no
    stable equilibrium there, e.g. a limit cycle) are solved again by
    natural-parameter continuation, as the dense Newton solver does:
    ``x = c + s A^T f(x)`` for s = 1/n, ..., 1 from x = c, each from the
    previous solution, with n = 4, then 16 (the samples with a failed column
    only, in lockstep; a column keeps the continuation's solution only if it
    converged).  There each solve starts from the previous solution with
    ``1/tau_0 = 0`` (plain Newton steps, to stay on the solution branch; a
    rejected step sets ``1/tau`` to at least :data:`PTC_MIN_SHIFT` times
    :data:`PTC_REJECT`).

    Returns
    -------
    x, dfx : (n, q, B) arrays
        The last iterate and f'(x) there.
    status : (n, B) int array of :class:`SolveStatus` values
        CONVERGED, MAX_ITERATIONS, NO_DECREASE (the steps kept being
        rejected) or NONFINITE.
    iterations : (n, B) int array
        Newton (pseudo-transient) steps per column, rejected ones included.
    residual : (n, B) array
        ``||r||_inf`` at x.
    """
    x, dfx, status, iters, res = _newton_loop(xp, AT, fd, C, X, 1.0, atol, rtol, max_iter,
                                              eta, restart, 1.0 / PTC_TAU0)
    for n_steps in CONTINUATION_STEPS:
        failed = ((status == int(SolveStatus.MAX_ITERATIONS))
                  | (status == int(SolveStatus.NO_DECREASE)))
        if not bool(xp.any(failed)):
            break
        # Only the samples (columns b) with a failed module are re-solved.
        fail_b = xp.any(failed, axis=0)
        cols = xp.nonzero(fail_b)[0]
        Cs = xp.take(C, cols, axis=2)
        y, total = Cs, xp.take(iters, cols, axis=1)
        for k in range(1, n_steps + 1):
            y, dfy, sty, ity, resy = _newton_loop(xp, AT, fd, Cs, y, k / n_steps, atol, rtol,
                                                  max_iter, eta, restart, 0.0)
            total = total + ity
        # Back to all B columns without a scatter: column b reads itself, or
        # (a re-solved one) its place in the appended block.
        B = fail_b.shape[0]
        pos = xp.cumulative_sum(xp.astype(fail_b, xp.int64)) - 1
        idx = xp.where(fail_b, B + pos, xp.arange(B, dtype=xp.int64, device=_device(C)))

        def back(full, part):
            return xp.take(xp.concat([full, part], axis=-1), idx, axis=full.ndim - 1)

        y, dfy, sty = back(x, y), back(dfx, dfy), back(status, sty)
        resy, total = back(res, resy), back(iters, total)
        take = failed & (sty == int(SolveStatus.CONVERGED))
        t3 = take[:, None, :]
        x, dfx = xp.where(t3, y, x), xp.where(t3, dfy, dfx)
        status, res = xp.where(take, sty, status), xp.where(take, resy, res)
        iters = xp.where(take, total, iters)
    return x, dfx, status, iters, res




def _fused_jacobian(csr, s1, sc, D):
    indptr, indices, data = csr
    n, q, B = D.shape
    D2 = D.reshape(n * q, B)
    DV = np.empty((n * q, B))

    def J(v):
        v = np.ascontiguousarray(v)
        out = np.empty_like(v)
        jacobian_product(indptr, indices, data, q, s1, sc, D2, v.reshape(n * q, B), DV,
                         out.reshape(n * q, B))
        return out
    return J


def _fused_adjoint(csr, D):
    indptr, indices, data = csr
    n, q, B = D.shape
    D2 = D.reshape(n * q, B)

    def JT(u):
        u = np.ascontiguousarray(u)
        out = np.empty_like(u)
        adjoint_product(indptr, indices, data, D2, u.reshape(n * q, B), out.reshape(n * q, B))
        return out
    return JT


def krylov_adjoint(xp, A, dfx, RHS, *, atol, rtol, restart=None, max_restarts=None):
    """Solve the module adjoint ``J^T u = rhs`` (Eq. 4 on a module) by GMRES.

    ``J^T u = u - f'(x) (A_SS u)`` is applied matrix-free with the
    transposed operator ``A`` (``V -> A_SS V``) and ``dfx = f'(x)`` at the
    forward solution; ``RHS = f'(x) * v_ext``.  A column is done when
    ``||J^T u - rhs||_2 <= (atol + rtol ||rhs||_inf)``; the returned
    status is CONVERGED or MAX_ITERATIONS (restarts exhausted) or NONFINITE,
    per column.  ``restart`` defaults to :data:`ADJOINT_RESTART`,
    ``max_restarts`` to as many cycles as give the forward's budget of
    ``MAX_RESTARTS * RESTART`` products.

    Returns
    -------
    U : (n, q, B) array
    status : (n, B) int array
    residual : (n, B) array
        ``||J^T u - rhs||_2``.
    """
    tol = atol + rtol * _max1(RHS, xp)
    restart = ADJOINT_RESTART if restart is None else restart
    if max_restarts is None:  # the forward's budget of Krylov products
        max_restarts = -(-MAX_RESTARTS * RESTART // restart)

    def JT(u):
        return u - dfx * A(u)  # the transposed Jacobian of Eq. (3)

    fused = _fused(A, dfx, RHS)
    if fused is not None:
        JT = _fused_adjoint(fused, np.ascontiguousarray(dfx))

    U, res, _ = gmres(xp, JT, RHS, tol, restart=restart, max_restarts=max_restarts)
    failed = xp.astype(~(res <= tol), xp.int8)  # CONVERGED = 0
    status = failed * int(SolveStatus.MAX_ITERATIONS)
    status = xp.where(xp.isfinite(res), status, int(SolveStatus.NONFINITE))
    return U, status, res
