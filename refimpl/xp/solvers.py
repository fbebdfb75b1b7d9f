"""Module solvers of the generic path, written once against an array-API namespace.

Arrays of a group of ``n`` same-size modules are (n, q, B) (nodes of a
module, then samples), as in :mod:`refimpl.solvers.newton`; ``AT`` is the
stack of transposed blocks, ``AT[m, a, b] = A[node b -> node a]``.  The
per-sample Jacobians ``J = I - sc A^T diag(f'(x))`` are stacked as
(n, B, q, q) and solved by ``xp.linalg.solve`` in one batched call.  At
the solution they are kept for the adjoint (:class:`KeptJacobians`): as LU
factors where the namespace has a batched LU (:func:`batched_lu`: CuPy's
cupyx where its LU takes stacks; SciPy stands in for it in the tests), else
as the stack, whose transpose the adjoint solves with ``xp.linalg.solve``.

The damped Newton (Armijo backtracking on ``||r||_2``, factor 1/2, at most
30 halvings) and the natural-parameter continuation fallback
(``x = c + s A^T f(x)`` for s = 1/n, ..., 1, n = 4, 16, 64) follow
:func:`refimpl.solvers.newton.newton_group`, vectorized over every
(module, sample) pair with masks instead of per-sample loops.

:func:`module_solver_stages` is the strategy hook: it names the stages a
group goes through ("fixed_point_trial", "fixed_point", "newton"); a
matrix-free Krylov stage registers itself in :data:`STAGES`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..solvers.fixed_point import fixed_point_adjoint_group

#: Status codes (as :class:`refimpl.solvers.SolveStatus`).
CONVERGED, MAX_ITERATIONS, NO_DECREASE, NONFINITE = 0, 1, 2, 3

#: solver="auto": modules of up to this many nodes go straight to Newton;
#: larger ones first try the fixed point (as the numba path does).
AUTO_NEWTON_MAX_Q = 8
#: ... for at most AUTO_FP_ITER_PER_Q * q steps.
AUTO_FP_ITER_PER_Q = 10
#: ... and from this size the modules the fixed point does not finish go to
#: the Newton-Krylov stage (where registered).  The three cutoffs are the
#: numba path's (:mod:`refimpl.propagate`; tests/test_xp.py checks they agree).
AUTO_KRYLOV_MIN_Q = 96


def module_solver_stages(q, n_modules, batch, solver, xp=None):
    """The solver strategy of one group: the stages, in order, that solve it.

    Implements DESIGN.md section 3's choice of module solver on the generic
    path.  "newton": batched dense damped Newton with continuation;
    "fixed_point": the fixed-point iteration for every module (20 x
    ``max_iter`` steps); "auto": Newton for ``q <= AUTO_NEWTON_MAX_Q``,
    otherwise a fixed-point trial (``AUTO_FP_ITER_PER_Q * q`` steps, given up
    early when its rate cannot make it) whose unfinished modules go to
    Newton.  On CuPy with a working :mod:`numba.cuda` (a GPU and libNVVM:
    :func:`numba_cuda_usable`), modules of up to
    :data:`refimpl.xp.cuda_tiny.MAX_Q` (8) nodes ("newton" or "auto") go to
    the stage "newton_cuda" (:mod:`refimpl.xp.cuda_tiny`: one CUDA thread per
    module and sample; ``REFIMPL_CUDA_TINY=0`` turns it off);
    with the matrix-free Newton-Krylov solver of
    :mod:`refimpl.solvers.krylov` registered as the stage "krylov", modules
    of at least :data:`AUTO_KRYLOV_MIN_Q` nodes that the fixed-point trial
    does not finish go to it, as on the numba path.
    """
    if solver in ("newton", "auto") and _tiny_kernels(xp, q):
        return ("newton_cuda",)
    if solver == "newton":
        return ("newton",)
    if solver == "fixed_point":
        return ("fixed_point",)
    if solver == "auto":
        if q <= AUTO_NEWTON_MAX_Q:
            return ("newton",)
        if "krylov" in STAGES and q >= AUTO_KRYLOV_MIN_Q:
            return ("fixed_point_trial", "krylov")
        return ("fixed_point_trial", "newton")
    if solver in STAGES:
        return (solver,)
    raise ValueError(f"solver: no stage {solver!r} on the generic path; known: "
                     f"{sorted(('auto', 'newton', 'fixed_point', *STAGES))}")


#: Extra stages by name (the Krylov hook): ``name -> (solve, adjoint)`` with
#: ``solve(xp, AT, C, act, atol, rtol, max_iter, active) -> (X, status,
#: iterations, ||r||_inf)`` as :func:`newton_group` and ``adjoint(xp, AT, D,
#: RHS, atol, rtol) -> U`` solving ``J^T u = rhs`` (NaN where it fails).
STAGES: dict = {}


def _norms(xp, R, X):
    """Per-sample ||r||_2, ||r||_inf and ||x||_inf over the module axis (n, B)."""
    return (xp.sqrt(xp.sum(R * R, axis=1)), xp.max(xp.abs(R), axis=1),
            xp.max(xp.abs(X), axis=1))


def _evaluate(xp, AT, C, X, sc, act):
    """f(x), f'(x), r = x - c - sc A^T f(x) (Eq. 3 on the module) and its norms."""
    F = act.f(X)
    D = act.derivative(X, F)
    R = X - C - sc * (AT @ F)  # Eq. (3)
    return (F, D, R) + _norms(xp, R, X)


def jacobians(xp, AT, D, sc=1.0):
    """Stacked Newton Jacobians of Eq. (3) on a module (DESIGN.md section 3),
    J = I - sc A^T diag(f'(x)) per (module, sample): (n, B, q, q)."""
    q = AT.shape[-1]
    eye = xp.eye(q, dtype=AT.dtype, device=_device(AT))
    DT = xp.permute_dims(D, (0, 2, 1))  # (n, B, q)
    return eye - sc * AT[:, None, :, :] * DT[:, :, None, :]


def _device(a):
    import array_api_compat

    return array_api_compat.device(a)


def batched_solve(xp, J, R):
    """The Newton step of DESIGN.md section 3 (and the adjoint's J^T solve):
    solve J x = r for stacked (..., q, q) and (..., q); a singular matrix
    gives a NaN solution for its system only (NumPy's solve raises for the
    whole stack, CuPy returns non-finite values: both end here as NaN)."""
    try:
        return xp.linalg.solve(J, R[..., None])[..., 0]
    except Exception:  # a singular matrix somewhere in the stack (NumPy)
        d = xp.linalg.det(J)
        bad = (d == 0.0) | ~xp.isfinite(d)
        eye = xp.eye(J.shape[-1], dtype=J.dtype, device=_device(J))
        X = xp.linalg.solve(xp.where(bad[..., None, None], eye, J), R[..., None])[..., 0]
        return xp.where(bad[..., None], xp.nan, X)


def damped_newton(xp, AT, C, X, sc, act, atol, rtol, max_iter, active):
    """Damped Newton on ``x - c - sc A^T f(x) = 0`` for the (module, sample)
    pairs where ``active`` (n, B); the others keep ``X``.

    Implements the per-sample phase of :func:`refimpl.solvers.newton.newton_group`
    (Alg. 1's module solve, DESIGN.md section 3) in lockstep: per pair
    ``J dx = -r``, then backtracking ``x + t dx``, t = 1, 1/2, ... (31 tries)
    until ``||r||_2`` decreases by the Armijo factor ``1 - 1e-4 t`` or the
    stop test ``||r||_inf <= atol + rtol ||x||_inf`` holds.  Returns
    ``X, status, iterations, ||r||_inf``, each per pair (status: 0
    converged, 1 max_iter, 2 no decrease or singular J, 3 non-finite).
    """
    F, D, R, rn2, rinf, xinf = _evaluate(xp, AT, C, X, sc, act)
    st = xp.ones(active.shape, dtype=xp.int32, device=_device(X))
    its = xp.zeros(active.shape, dtype=xp.int32, device=_device(X))
    for it in range(max_iter + 1):
        bad = active & ~(xp.isfinite(rn2) & xp.isfinite(xinf))
        st = xp.where(bad, NONFINITE, st)
        active = active & ~bad
        conv = active & (rinf <= atol + rtol * xinf)
        st = xp.where(conv, CONVERGED, st)
        active = active & ~conv
        if it == max_iter or not bool(xp.any(active)):
            st = xp.where(active, MAX_ITERATIONS, st)
            break
        J = jacobians(xp, AT, D, sc)
        eye = xp.eye(J.shape[-1], dtype=J.dtype, device=_device(J))
        J = xp.where(active[:, :, None, None], J, eye)
        dx = batched_solve(xp, J, -xp.permute_dims(R, (0, 2, 1)))  # J dx = -r
        singular = active & ~xp.all(xp.isfinite(dx), axis=-1)
        st = xp.where(singular, NO_DECREASE, st)
        active = active & ~singular
        dx = xp.permute_dims(xp.where(active[:, :, None], dx, 0.0), (0, 2, 1))
        t = xp.ones(active.shape, dtype=X.dtype, device=_device(X))
        pending = active
        for _ in range(31):
            Xt = X + t[:, None, :] * dx
            Ft, Dt, Rt, n2, ninf, nx = _evaluate(xp, AT, C, Xt, sc, act)
            ok = pending & ((n2 <= (1.0 - 1e-4 * t) * rn2) | (ninf <= atol + rtol * nx))
            ok3 = ok[:, None, :]
            X, F, D, R = (xp.where(ok3, Xt, X), xp.where(ok3, Ft, F),
                          xp.where(ok3, Dt, D), xp.where(ok3, Rt, R))
            rn2, rinf, xinf = xp.where(ok, n2, rn2), xp.where(ok, ninf, rinf), xp.where(ok, nx, xinf)
            pending = pending & ~ok
            if not bool(xp.any(pending)):
                break
            t = xp.where(pending, 0.5 * t, t)
        its = its + xp.astype(active, xp.int32)
        st = xp.where(pending, NO_DECREASE, st)
        active = active & ~pending
    return X, st, its, rinf


def newton_group(xp, AT, C, act, atol, rtol, max_iter, active):
    """Solve Eq. (3) on every active (module, sample) pair of a group from x = c.

    Implements :func:`refimpl.solvers.newton.newton_group` on the generic
    path: :func:`damped_newton` from the fixed-point guess x = c, and for
    the pairs it does not solve (a non-contractive module whose ``||r||``
    has a non-root local minimum, or ``max_iter``) natural-parameter
    continuation: ``x = c + s A^T f(x)`` for s = 1/n, ..., 1 from x = c,
    each stage from the previous solution, n = 4, 16, 64.  Returns
    ``X, status, iterations, ||r||_inf`` per pair (n, B).
    """
    X, st, its, rinf = damped_newton(xp, AT, C, C, 1.0, act, atol, rtol, max_iter, active)
    todo = active & (st != CONVERGED) & (st != NONFINITE)
    for n_steps in (4, 16, 64):
        if not bool(xp.any(todo)):
            break
        Xc = xp.where(todo[:, None, :], C, X)
        alive = todo
        for k in range(1, n_steps + 1):
            Xc, sk, ik, rk = damped_newton(xp, AT, C, Xc, k / n_steps, act, atol, rtol,
                                           max_iter, alive)
            its = its + xp.where(alive, ik, 0)
            st = xp.where(alive, sk, st)
            rinf = xp.where(alive, rk, rinf)
            alive = alive & (sk == CONVERGED)
            if not bool(xp.any(alive)):
                break
        X = xp.where(todo[:, None, :], Xc, X)
        todo = todo & (st != CONVERGED) & (st != NONFINITE)
    return X, st, its, rinf


def newton_adjoint(xp, AT, D, RHS):
    """Solve ``J^T u = rhs`` per (module, sample) with J at the solution
    (Eq. 4 on a module; ``RHS = f'(x) * v_ext``), all (n, q, B)."""
    J = jacobians(xp, AT, D)
    U = batched_solve(xp, xp.matrix_transpose(J), xp.permute_dims(RHS, (0, 2, 1)))
    return xp.permute_dims(U, (0, 2, 1))


@dataclass
class KeptJacobians:
    """The Newton Jacobians ``J = I - A^T diag(f'(x))`` of a group at the
    forward's solution, kept for the adjoint Eq. (4) as the numba path keeps
    its LU factors (DESIGN.md section 3: the backward reuses the forward's
    factorization).

    Either ``lu, piv`` (the factors of a batched LU, ``linalg`` the module
    whose ``lu_solve`` applies them: :func:`batched_lu`) or ``J`` itself
    (n, B, q, q) where the namespace has no batched LU; then the adjoint
    solves the transposed stack with ``xp.linalg.solve``.
    """

    J: object = None
    lu: object = None
    piv: object = None
    linalg: object = None


#: The module to try, per kind of namespace, for the adjoint's LU reuse
#: (:func:`batched_lu`): CuPy's cupyx.  NumPy is left out on purpose: SciPy's
#: batched ``lu_factor`` loops over the stack in Python, slower than keeping
#: J and one C-level ``numpy.linalg.solve`` for the many tiny systems here;
#: the tests add ``"numpy": "scipy.linalg"`` as the CPU stand-in of cupyx.
LU_CANDIDATES = {"cupy": "cupyx.scipy.linalg"}
_LU_MODULES: dict = {}


def batched_lu(xp):
    """The module whose ``lu_factor``/``lu_solve(trans=1)`` factor stacks of
    matrices in the namespace ``xp``, or None (the capability check of the
    adjoint's LU reuse, DESIGN.md section 3).

    The candidate is :data:`LU_CANDIDATES`' entry for the namespace's kind
    ("cupy", "numpy"); it is probed once on a (2, 1, 2, 2) stack, including a
    transposed solve.  A module whose functions take 2-D matrices only
    (CuPy 14's cusolver getrf/getrs wrappers) fails the probe, and the
    forward keeps J itself.
    """
    import importlib

    import array_api_compat

    kind = ("cupy" if array_api_compat.is_cupy_namespace(xp) else
            "numpy" if array_api_compat.is_numpy_namespace(xp) else None)
    name = LU_CANDIDATES.get(kind)
    key = (xp.__name__, name)
    if key in _LU_MODULES:
        return _LU_MODULES[key]
    linalg = None
    if name is not None:
        try:
            linalg = importlib.import_module(name)
            J = xp.asarray([[[[2.0, 1.0], [0.0, 1.0]]], [[[1.0, 0.0], [3.0, 1.0]]]])
            lu, piv = linalg.lu_factor(J, check_finite=False)
            b = xp.ones((2, 1, 2, 1), dtype=xp.float64)
            u = linalg.lu_solve((lu, piv), b, trans=1, check_finite=False)
            res = xp.matrix_transpose(J) @ u - b  # J^T u = b
            if tuple(u.shape) != (2, 1, 2, 1) or float(xp.max(xp.abs(res))) > 1e-12:
                linalg = None
        except Exception:
            linalg = None
    _LU_MODULES[key] = linalg
    return linalg


def keep_jacobians(xp, AT, D):
    """J at the solution per (module, sample) (:func:`jacobians`, Eq. 3's
    Newton matrix), factored by :func:`batched_lu` where the namespace has
    one; :func:`solve_kept_transposed` solves the adjoint Eq. (4) with it."""
    J = jacobians(xp, AT, D)
    linalg = batched_lu(xp)
    if linalg is None:
        return KeptJacobians(J=J)
    import warnings

    with warnings.catch_warnings():  # a singular J: its solve is NaN below
        warnings.simplefilter("ignore")
        lu, piv = linalg.lu_factor(J, check_finite=False)
    return KeptJacobians(lu=lu, piv=piv, linalg=linalg)


def solve_kept_transposed(xp, kept, RHS):
    """``J^T u = rhs`` per (module, sample) with the forward's kept Jacobians
    (Eq. 4 on a module, ``RHS = f'(x) * v_ext``), all (n, q, B): triangular
    solves on the LU factors (getrs on the transpose), or ``xp.linalg.solve``
    on the transposed stack; NaN for a singular J's system only."""
    R = xp.permute_dims(RHS, (0, 2, 1))  # (n, B, q)
    if kept.lu is None:
        U = batched_solve(xp, xp.matrix_transpose(kept.J), R)
    else:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            U = kept.linalg.lu_solve((kept.lu, kept.piv), R[..., None], trans=1,
                                     check_finite=False)[..., 0]
        U = xp.where(xp.all(xp.isfinite(U), axis=-1)[..., None], U, xp.nan)
    return xp.permute_dims(U, (0, 2, 1))


def fixed_point_group(xp, AT, C, f, atol, rtol, max_iter, give_up=False):
    """Solve Eq. (3) on a group by ``x <- c + A_SS^T f(x)`` from x = c.

    Implements :func:`refimpl.equations.fixed_point_group` on the generic
    path (per module: stop on ``||x_new - x||_inf <= atol + rtol ||x||_inf``;
    status 2 when after 10 steps the step grows, or with ``give_up`` when
    the observed rate predicts more than ``max_iter`` steps).  Returns
    ``X, iterations, residual, status``, the last three per module (n,).
    """
    dev = _device(C)
    n = C.shape[0]
    X = C
    iters = xp.zeros(n, dtype=xp.int32, device=dev)
    status = xp.ones(n, dtype=xp.int32, device=dev)
    resid = xp.full(n, math.inf, dtype=C.dtype, device=dev)
    prev = xp.full(n, math.inf, dtype=C.dtype, device=dev)
    active = xp.ones(n, dtype=xp.bool, device=dev)
    for it in range(max_iter + 1):
        Xn = C + AT @ f(X)  # Eq. (3)
        R = xp.max(xp.abs(Xn - X), axis=(1, 2))
        scale = xp.max(xp.abs(X), axis=(1, 2))
        resid = xp.where(active, R, resid)
        iters = xp.where(active, it, iters)
        tol = atol + rtol * scale
        done = R <= tol
        bad = ~xp.isfinite(R)
        X = xp.where((active & ~(done | bad))[:, None, None], Xn, X)
        status = xp.where(active & done, CONVERGED, status)
        status = xp.where(active & bad, NONFINITE, status)
        live = ~done & ~bad
        stalled = live & (it >= 10) & (R >= prev)
        if give_up and it >= 10:
            rate = R / xp.where(prev > 0, prev, 1.0)
            ok = (rate > 0) & (rate < 1) & (R > 0)
            need = xp.where(ok, xp.log(xp.maximum(tol, 1e-300) / xp.where(ok, R, 1.0))
                            / xp.log(xp.where(ok, rate, 0.5)), -math.inf)
            stalled = stalled | (live & (it + need > max_iter))
        status = xp.where(active & stalled, NO_DECREASE, status)
        prev = xp.where(active, R, prev)
        active = active & ~(done | bad | stalled)
        if not bool(xp.any(active)):
            break
    return X, iters, resid, status


def fixed_point_adjoint(xp, blocks, D, RHS, atol, rtol, max_iter):
    """Solve ``u = f'(x) * (rhs' + A_SS u)`` by iteration, i.e. ``J^T u =
    f'(x) * v_ext`` with ``RHS = f'(x) * v_ext`` (Eq. 4 on a module):
    :func:`refimpl.solvers.fixed_point.fixed_point_adjoint_group` with the
    blocks' products in ``xp``.  Returns ``U, ok``."""
    return fixed_point_adjoint_group(lambda U: blocks @ U, D, RHS, atol=atol, rtol=rtol,
                                     max_iter=max_iter)


def _register_krylov():
    """Register the engine's namespace-generic Newton-Krylov solver
    (:mod:`refimpl.solvers.krylov`, DESIGN.md section 3's large-module
    solve) as the stage "krylov", with the dense blocks' products as its
    operators; a no-op where that module does not exist."""
    try:
        from ..solvers import krylov as nk
    except ImportError:
        return

    def solve(xp, AT, C, act, atol, rtol, max_iter, active):
        def fd(x):
            fx = act.f(x)
            return fx, act.derivative(x, fx)

        x, _, st, it, res = nk.newton_krylov(xp, lambda V: AT @ V, fd, C, C, atol=atol,
                                             rtol=rtol, max_iter=max_iter)
        return x, xp.astype(st, xp.int32), xp.astype(it, xp.int32), res

    def adjoint(xp, AT, D, RHS, atol, rtol):
        A = xp.matrix_transpose(AT)
        U, st, _ = nk.krylov_adjoint(xp, lambda V: A @ V, D, RHS, atol=atol, rtol=rtol)
        return xp.where((st == 0)[:, None, :], U, xp.nan)

    STAGES.setdefault("krylov", (solve, adjoint))


_register_krylov()


#: Environment variable for the tiny-module CUDA kernels: "1" forces them on
#: any namespace (with ``NUMBA_ENABLE_CUDASIM=1`` the tests run them on NumPy
#: arrays in the CUDA simulator), "0" turns them off; unset, CuPy uses them
#: when :func:`numba.cuda.is_available` (else the batched dense Newton).
TINY_ENV = "REFIMPL_CUDA_TINY"
_NUMBA_CUDA: list = []


def numba_cuda_usable():
    """Can :mod:`refimpl.xp.cuda_tiny` run here (the stage "newton_cuda" of
    DESIGN.md section 3's module solve)?  numba.cuda must see a GPU
    (:func:`numba.cuda.is_available`) *and* find libNVVM, which compiles the
    kernels at their first launch: a machine with a driver but no CUDA
    toolkit (CuPy from pip) has the first without the second, and then the
    batched dense Newton solves the tiny modules instead."""
    try:
        from numba import cuda

        if not cuda.is_available():
            return False
        from numba.cuda.cudadrv import nvvm

        return bool(nvvm.is_available())
    except Exception:
        return False


def _tiny_kernels(xp, q):
    """Use :mod:`refimpl.xp.cuda_tiny` for a group of q-node modules?"""
    import os

    if xp is None or q > 8:
        return False
    setting = os.environ.get(TINY_ENV, "")
    if setting == "0":
        return False
    if setting != "1":
        import array_api_compat

        if not array_api_compat.is_cupy_namespace(xp):
            return False
        if not _NUMBA_CUDA:  # pragma: no cover - GPU machines only
            _NUMBA_CUDA.append(numba_cuda_usable())
        if not _NUMBA_CUDA[0]:  # pragma: no cover
            return False
    if "newton_cuda" not in STAGES:
        from .cuda_tiny import MAX_Q, adjoint_stage, solve_stage

        if q > MAX_Q:
            return False
        STAGES["newton_cuda"] = (solve_stage, adjoint_stage)
    return True
