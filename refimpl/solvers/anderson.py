"""Anderson acceleration of a fixed-point iteration ``x = g(x)``, batched over samples.

For the DEQ baseline of Table 1 (DESIGN.md sec. 10): the whole hidden graph
as one implicit layer, ``x = c + A^T f(x)`` (Eq. 3 in node-major form),
solved by Anderson acceleration instead of plain iteration
(:func:`refimpl.solvers.whole.whole_graph_fixed_point`).  Each sample (a
column) has its own mixing coefficients.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .result import SolveStatus

__all__ = ["AndersonResult", "anderson_fixed_point"]


@dataclass
class AndersonResult:
    """Outcome of :func:`anderson_fixed_point` (the DEQ solve of Eq. 3, DESIGN.md sec. 10).

    Attributes
    ----------
    x : (n, B) array
        The last iterate x_k (the one whose residual is reported).
    converged : bool
        ``||g(x) - x||_inf <= atol + rtol ||x||_inf`` over the whole batch.
    status : SolveStatus
    iterations : int
        Evaluations of g after the first (= accelerated steps taken).
    residual : float
        ``||g(x) - x||_inf`` at the returned x.
    """

    x: np.ndarray
    converged: bool
    status: SolveStatus
    iterations: int
    residual: float


def anderson_fixed_point(g, x0, *, m=5, atol=1e-10, rtol=1e-10, max_iter=500, beta=1.0,
                         reg=1e-12):
    r"""Anderson acceleration (type II, depth ``m``) of ``x <- g(x)``.

    With residuals :math:`f_k = g(x_k) - x_k` and the differences of the last
    :math:`m_k = \min(m, k)` steps
    :math:`\Delta F_k = [f_{i+1} - f_i]`, :math:`\Delta X_k = [x_{i+1} - x_i]`,
    each sample b solves the small least-squares problem

    .. math::

        \gamma_k = \arg\min_\gamma \| f_k - \Delta F_k \gamma \|_2

        x_{k+1} = x_k + \beta f_k - (\Delta X_k + \beta \Delta F_k) \gamma_k

    (with ``beta = 1``: :math:`x_{k+1} = g(x_k) - \Delta G_k \gamma_k`).  The
    normal equations are regularized by ``reg`` times their trace.  ``m = 0``
    is the plain (damped) iteration.  The stop test ``max |f| <= atol + rtol max |x|``
    is over the whole batch and relative to ``x``: with an unbounded map and no fixed
    point, a run-away x can pass it (measured: |x| ~ 1e11-1e15 on a singular identity
    module, reported converged).

    Parameters
    ----------
    g : callable
        ``g(x) -> array`` of the shape of ``x``: the map, applied to the
        whole batch at once (column b = sample b).
    x0 : (n,) or (n, B) array
        Start; a 1-D start is one sample.  A NumPy array (or a list) runs on
        NumPy; an array of another array-API namespace (CuPy,
        ``array_api_strict``) runs in that namespace on its device, and
        ``g`` must return arrays of it.
    m : int
        History depth (>= 0).
    atol, rtol : float
        Stop when ``||g(x) - x||_inf <= atol + rtol ||x||_inf`` (over the batch).
    max_iter : int
        Accelerated steps at most.
    beta : float
        Mixing (damping) parameter in (0, 1].
    reg : float
        Tikhonov regularization of the least-squares problem, relative.

    Returns
    -------
    AndersonResult
        ``status`` is CONVERGED, MAX_ITERATIONS or NONFINITE.

    References
    ----------
    D. G. Anderson, "Iterative procedures for nonlinear integral equations",
    J. ACM 12 (1965); H. F. Walker and P. Ni, "Anderson acceleration for
    fixed-point iterations", SIAM J. Numer. Anal. 49 (2011), Sec. 3
    (the form used here); S. Bai, J. Z. Kolter, V. Koltun, "Deep
    equilibrium models", NeurIPS 2019 (its use for implicit layers).
    """
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 0:
        raise ValueError(f"m: expected an integer >= 0, got {m!r}")
    for name, v in (("atol", atol), ("rtol", rtol), ("reg", reg)):
        if not (np.isfinite(v) and v >= 0):
            raise ValueError(f"{name}: expected a finite number >= 0, got {v!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter: expected an integer >= 1, got {max_iter!r}")
    if not (0.0 < beta <= 1.0):
        raise ValueError(f"beta: expected a number in (0, 1], got {beta!r}")
    xp = _namespace(x0)
    if xp is np:
        x = np.array(x0, dtype=np.float64)
    else:  # the generic path: x0's namespace and device (DESIGN.md section 3)
        x = xp.asarray(x0, dtype=xp.float64, copy=True)
    single = x.ndim == 1
    if single:
        x = x[:, None]
    if x.ndim != 2:
        shape = np.shape(x0) if xp is np else tuple(x0.shape)
        raise ValueError(f"x0: expected shape (n,) or (n, B), got {shape}")
    if not bool(xp.all(xp.isfinite(x))):
        raise ValueError("x0: contains NaN or inf")
    n, B = x.shape
    dev = None if xp is np else _device(x)

    def G(v):
        out = g(v[:, 0] if single else v)
        out = np.asarray(out, dtype=np.float64) if xp is np else xp.astype(out, xp.float64)
        out = out[:, None] if single else out
        if tuple(out.shape) != (n, B):
            raise ValueError(f"g: returned shape {tuple(out.shape)}, expected {(n, B)}")
        return out

    def done(x, f):
        res = float(xp.max(xp.abs(f))) if f.size else 0.0
        tol = atol + rtol * (float(xp.max(xp.abs(x))) if x.size else 0.0)
        return res, res <= tol

    def result(x, ok, status, it, res):
        return AndersonResult(x[:, 0] if single else x, ok, status, it, res)

    # State arrays (a circular buffer of the last m differences):
    #   dX[i], dF[i] : (n, B) = x_{j+1} - x_j and f_{j+1} - f_j for a past step j
    #   k            : steps taken so far; the buffer holds min(m, k) columns
    if xp is np:
        dX = np.zeros((m, n, B))
        dF = np.zeros((m, n, B))
    else:
        dX = xp.zeros((m, n, B), dtype=xp.float64, device=dev)
        dF = xp.zeros((m, n, B), dtype=xp.float64, device=dev)
    gx = G(x)
    f = gx - x
    res, ok = done(x, f)
    for k in range(max_iter + 1):
        if not np.isfinite(res):
            return result(x, False, SolveStatus.NONFINITE, k, res)
        if ok:
            return result(x, True, SolveStatus.CONVERGED, k, res)
        if k == max_iter:
            break
        mk = min(m, k)
        step = beta * f
        if mk:
            step = step - _mixing(xp, dX[:mk, ...], dF[:mk, ...], f, beta, reg)
        x_new = x + step
        gx_new = G(x_new)
        f_new = gx_new - x_new
        if m:
            slot = k % m
            dX[slot, ...] = x_new - x
            dF[slot, ...] = f_new - f
        x, f = x_new, f_new
        res, ok = done(x, f)
    return result(x, False, SolveStatus.MAX_ITERATIONS, max_iter, res)


def _namespace(x0):
    """NumPy (the module itself) for host input, else the array's namespace
    (:func:`array_api_compat.array_namespace`)."""
    if isinstance(x0, (np.ndarray, np.generic, list, tuple, int, float)):
        return np
    import array_api_compat

    xp = array_api_compat.array_namespace(x0)
    return np if array_api_compat.is_numpy_namespace(xp) else xp


def _device(a):
    import array_api_compat

    return array_api_compat.device(a)


def _mixing(xp, DX, DF, f, beta, reg):
    """Anderson's correction ``(DX + beta DF) gamma`` with gamma from the
    regularized normal equations ``(DF^T DF + reg tr I) gamma = DF^T f``, per
    sample (Walker and Ni 2011, Sec. 3).  NumPy keeps the einsum contractions
    of the reference; other namespaces use batched matmul (same sums, another
    summation order)."""
    mk = DF.shape[0]
    if xp is np:
        M = np.einsum("ipb,jpb->bij", DF, DF)        # (B, mk, mk): dF^T dF
        rhs = np.einsum("ipb,pb->bi", DF, f)         # (B, mk):     dF^T f
        tr = np.trace(M, axis1=1, axis2=2)
        M += (reg * tr + np.finfo(float).tiny)[:, None, None] * np.eye(mk)
        gam = np.linalg.solve(M, rhs[..., None])[..., 0]  # (B, mk)
        return np.einsum("ipb,bi->pb", DX + beta * DF, gam)
    eye = xp.eye(mk, dtype=DF.dtype, device=_device(DF))
    DFb = xp.permute_dims(DF, (2, 0, 1))             # (B, mk, n)
    M = DFb @ xp.matrix_transpose(DFb)               # (B, mk, mk): dF^T dF
    rhs = DFb @ xp.matrix_transpose(f)[:, :, None]   # (B, mk, 1):  dF^T f
    tr = xp.sum(M * eye, axis=(1, 2))
    M = M + (reg * tr + float(np.finfo(float).tiny))[:, None, None] * eye
    gam = xp.linalg.solve(M, rhs)[..., 0]            # (B, mk)
    return xp.sum((DX + beta * DF) * xp.matrix_transpose(gam)[:, None, :], axis=0)
