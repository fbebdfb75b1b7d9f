"""The whole hidden graph as one implicit layer (the DEQ-style baseline).

Solves Eq. (3) for all p nodes at once, ``x = c + A^T f(x)``, by fixed-point
iteration with one sparse product per step, and its adjoint Eq. (4),
``u = f'(x) * (g Wm + A u)``, the same way.  It ignores the module
structure; :func:`refimpl.forward` with ``mode="whole"`` uses it
(:func:`solve_whole`, plain iteration or Anderson acceleration), and the
benchmarks compare the level-scheduled module solves against it.

Namespace-generic: NumPy arrays with a SciPy sparse ``A`` on the numba path;
the generic path (:mod:`refimpl.xp.propagate`) passes arrays of its
namespace (CuPy, ``array_api_strict``) with a dense ``A`` and the same code
runs there (only ``@``, elementwise arithmetic and ``max |.|`` of the
namespace are used).
"""
from __future__ import annotations

import array_api_compat
import numpy as np

from .anderson import _namespace, anderson_fixed_point
from .krylov import krylov_adjoint
from .result import GroupSolve, SolveStatus

#: The whole-graph solvers of ``forward(..., mode="whole", whole_method=...)``.
WHOLE_METHODS = ("anderson", "fixed_point")
#: Anderson's history depth in ``mode="whole"``.
ANDERSON_MEMORY = 5


def _converged(xp, new, old, atol, rtol):
    """``(err, converged)`` of a step: ``err = ||new - old||_inf`` and the
    stop test ``err <= atol + rtol ||new||_inf``, never true for a
    non-finite ``err`` or iterate (an overflowed iterate made the tolerance
    inf and ``inf <= inf`` passed)."""
    err = float(xp.max(xp.abs(new - old))) if new.size else 0.0
    scale = float(xp.max(xp.abs(new))) if new.size else 0.0
    return err, bool(np.isfinite(err) and np.isfinite(scale) and err <= atol + rtol * scale)


def _copy(xp, a):
    return a.copy() if xp is np else xp.asarray(a, copy=True)


def whole_graph_fixed_point(AT, CT, f, df, *, atol, rtol, max_iter):
    """Fixed point of Eq. (3) on the whole graph, node-major.

    ``AT`` is A^T as a sparse matrix (p, p) (``AT[i, j] = w_ji``), ``CT`` the
    (p, B) constant term.  Returns ``XT, FT, DFT, iterations, residual,
    converged``; the residual is ``||x_new - x||_inf`` of the last step,
    i.e. ``||r(x)||_inf`` of Eq. (3) at the returned x.
    """
    xp = _namespace(CT)
    XT = _copy(xp, CT)
    FT = f(XT)
    err = np.inf
    for it in range(1, max_iter + 1):
        XN = CT + AT @ FT  # Eq. (3)
        err, ok = _converged(xp, XN, XT, atol, rtol)
        if not np.isfinite(err):
            return XT, FT, df(XT), it, err, False
        if ok:
            return XT, FT, df(XT), it - 1, err, True
        XT = XN
        FT = f(XT)
    return XT, FT, df(XT), max_iter, err, False


def whole_graph_adjoint(A, DFT, GT, *, atol, rtol, max_iter):
    """Fixed point of the adjoint Eq. (4) on the whole graph, node-major.

    ``A`` (p, p) sparse with ``A[j, i] = w_ji``, ``DFT`` = f'(X)^T, ``GT`` =
    (G Wm)^T.  Iterates ``v <- G Wm + A (f'(x) * v)``; returns ``UT, VT,
    iterations, converged``.
    """
    xp = _namespace(GT)
    VT = _copy(xp, GT)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is detected below
        for it in range(1, max_iter + 1):
            UT = DFT * VT
            VN = GT + A @ UT  # Eq. (4)
            err, ok = _converged(xp, VN, VT, atol, rtol)
            VT = VN
            if ok:
                return DFT * VT, VT, it, True
            if not np.isfinite(err):  # diverged: no further step can converge
                return DFT * VT, VT, it, False
    return DFT * VT, VT, max_iter, False


def solve_whole_adjoint(A, DFT, GT, *, atol, rtol, max_iter):
    """The adjoint Eq. (4) on the whole graph: the plain iteration
    (:func:`whole_graph_adjoint`) and, where it does not converge, GMRES on
    ``J^T u = f'(x) * (G Wm)^T`` (:func:`refimpl.solvers.krylov.krylov_adjoint`,
    the whole graph as one module, then ``v = (G Wm)^T + A u``).

    The iteration converges only where ``A diag(f'(x))`` is a contraction;
    Anderson's forward can converge where it is not (a network scaled past
    the contractive regime), and the gradient is then still defined by
    Eq. (4) whenever J is nonsingular.  Returns ``UT, VT, status``
    (a :class:`SolveStatus`: CONVERGED, or the GMRES's worst column status).
    """
    UT, VT, _, ok = whole_graph_adjoint(A, DFT, GT, atol=atol, rtol=rtol, max_iter=max_iter)
    if ok:
        return UT, VT, SolveStatus.CONVERGED
    xp = array_api_compat.array_namespace(GT)
    U, status, _ = krylov_adjoint(xp, lambda V: (A @ V[0])[None, ...], DFT[None, ...],
                                  (DFT * GT)[None, ...], atol=atol, rtol=rtol)
    worst = int(xp.max(status)) if status.size else 0
    UT = U[0]
    return UT, GT + A @ UT, SolveStatus(worst)


def solve_whole(AT, CT, f, df, *, method, atol, rtol, max_iter):
    """Eq. (3) on the whole graph as one system (the DEQ baseline), node-major.

    ``method="anderson"``: :func:`refimpl.solvers.anderson.anderson_fixed_point`
    (memory :data:`ANDERSON_MEMORY`) on ``x -> c + A^T f(x)``;
    ``"fixed_point"``: :func:`whole_graph_fixed_point`.  Returns a
    :class:`GroupSolve` of one "module" of all p nodes (``x`` is (1, p, B)).
    """
    if method == "anderson":
        sol = anderson_fixed_point(lambda V: CT + AT @ f(V), CT, m=ANDERSON_MEMORY,
                                   atol=atol, rtol=rtol, max_iter=max_iter)  # Eq. (3)
        x, it, err, status = sol.x, sol.iterations, sol.residual, sol.status
    else:
        x, _, _, it, err, ok = whole_graph_fixed_point(AT, CT, f, df, atol=atol, rtol=rtol,
                                                      max_iter=max_iter)
        status = (SolveStatus.CONVERGED if ok else SolveStatus.NONFINITE
                  if not np.isfinite(err) else SolveStatus.MAX_ITERATIONS)
    return GroupSolve(x[None, ...], np.array([status], np.int8), np.array([it], np.int32),
                      np.array([err]))
