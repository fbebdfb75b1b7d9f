"""Alg. 1 on the generic path: forward Eq. (3), backward Eq. (4)-(8), losses.

Written once against an array-API namespace ``xp`` (STYLE.md habit 9): every
allocation uses ``xp`` and the input's device, nothing calls NumPy on the
arrays of a pass.  The schedule comes from the numba graph kernels on the
host; its index arrays come from :func:`refimpl.xp._plan.get_plan`, uploaded
once per schedule.  Per call only ``A.data``, the biases and ``W1``/``Wm``
travel to the device (they change every training step).

Internally (p, B) arrays are node-major in schedule positions, as in
:mod:`refimpl.propagate`; results come back in the row form of DESIGN.md
(one row per sample, columns in node order) as the *caller's* arrays: the
namespace and device of ``X0``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ..activations import get_activation, get_output
from ..backend import get_backend, to_numpy
from ..solvers.result import ConvergenceError, ForwardStatus, SolveStatus, _mark_nonfinite
from ..solvers.whole import WHOLE_METHODS, solve_whole, solve_whole_adjoint
from . import solvers as gs
from ._plan import get_plan

__all__ = ["forward", "backward", "loss_and_grad", "output_loss", "GenericForwardResult",
           "GenericGradients"]

SOLVERS = ("auto", "newton", "fixed_point")
MODES = ("levels", "sequential", "whole")


# --------------------------------------------------------------- boundary
@dataclass(frozen=True)
class _Boundary:
    """Where the caller's arrays live, and the compute namespace/device."""

    xp: object
    device: object
    caller_xp: object
    caller_device: object

    def back(self, a):
        """``a`` (compute namespace) as an array of the caller's namespace/device."""
        if self.caller_xp is self.xp and self.caller_device == self.device:
            return a
        host = to_numpy(a)
        if self.caller_xp is None:
            return host
        return self.caller_xp.asarray(host, device=self.caller_device)

    def up(self, a, dtype=None):
        """A host array (or the caller's) in the compute namespace, on its device."""
        import array_api_compat

        if isinstance(a, (np.ndarray, np.generic)):
            out = self.xp.asarray(a, device=self.device)
        elif array_api_compat.array_namespace(a) is self.xp:
            out = a
            if array_api_compat.device(a) != self.device:
                out = array_api_compat.to_device(a, self.device)
        else:
            out = self.xp.asarray(to_numpy(a), device=self.device)
        return out if dtype is None else self.xp.astype(out, dtype)


def _boundary(backend, X0):
    """Resolve the compute namespace from ``backend`` and the caller's from ``X0``."""
    import array_api_compat

    bk = get_backend(backend)
    xp = bk.xp
    if isinstance(X0, (np.ndarray, np.generic, list, tuple)):
        caller_xp, caller_dev = None, None
    else:
        caller_xp = array_api_compat.array_namespace(X0)
        caller_dev = array_api_compat.device(X0)
    if caller_xp is xp:
        device = caller_dev if bk.device is None else bk.device
    else:
        device = bk.device
        if device is None:
            device = array_api_compat.device(xp.empty(0))
    return _Boundary(xp, device, caller_xp, caller_dev)


def _check_X0(bd, X0, n_in, name="X0"):
    """X0 as a float64 (B, n_in) array of the compute namespace; ValueError naming it."""
    xp = bd.xp
    if isinstance(X0, (list, tuple)):
        X0 = np.asarray(X0)
    X = bd.up(X0)
    if X.ndim == 1:
        X = X[None, :]
    if X.ndim != 2 or X.shape[1] != n_in:
        raise ValueError(f"{name}: expected shape (B, {n_in}), got {tuple(X.shape)}")
    if not (xp.isdtype(X.dtype, "real floating") or xp.isdtype(X.dtype, "integral")):
        raise ValueError(f"{name}: expected real numbers, got dtype {X.dtype}")
    X = xp.astype(X, xp.float64)
    if X.shape[0] and not bool(xp.all(xp.isfinite(X))):
        raise ValueError(f"{name}: contains NaN or inf")
    return X


# ------------------------------------------------------------------ results
@dataclass
class _GroupRecord:
    plan: object
    blocks: object     # (n, q, q) A_SS on the device
    newton: np.ndarray  # (n,) bool: modules Newton solved (their J^T is solved)
    fixed: np.ndarray   # (n,) bool: modules the fixed point solved
    other: dict = field(default_factory=dict)  # registered stage name -> (n,) bool
    kept: object = None  # gs.KeptJacobians at the solution of the Newton-solved modules


@dataclass
class GenericForwardResult(ForwardStatus):
    """The solution of Eq. (3) on the generic path (fields as :class:`refimpl.ForwardResult`).

    ``X, F`` (B, p) and ``Z, Y`` (B, n_out) are arrays of the caller's
    namespace and device; ``status``, ``module_iterations``,
    ``module_residual`` (per module, maxima over samples),
    ``failed_modules`` and ``module_cond`` are host statistics.
    """

    net: object
    graph: object
    boundary: _Boundary
    X0: object
    XT: object
    FT: object
    DFT: object
    mode: str
    solver: str
    steps: list
    module_iterations: np.ndarray
    module_residual: np.ndarray
    status: SolveStatus = SolveStatus.CONVERGED
    failed_modules: list = field(default_factory=list)
    module_cond: np.ndarray | None = None
    whole_iterations: int = 0
    whole_method: str = "anderson"
    atol: float = 0.0
    rtol: float = 0.0
    max_iter: int = 0
    plan: object = None
    backend: str = ""

    @cached_property
    def _Zc(self):
        xp = self.boundary.xp
        Wm = self.boundary.up(self.net.Wm[:, self.graph.schedule.order])
        return xp.matrix_transpose(Wm @ self.FT)  # Z = f(X) Wm^T (Sec. 3.3)

    @cached_property
    def X(self):
        xp = self.boundary.xp
        return self.boundary.back(xp.take(self.XT, self.plan.position, axis=0).T)

    @cached_property
    def F(self):
        xp = self.boundary.xp
        return self.boundary.back(xp.take(self.FT, self.plan.position, axis=0).T)

    @cached_property
    def Z(self):
        return self.boundary.back(self._Zc)

    @cached_property
    def Y(self):
        return self.boundary.back(get_output(self.net.output)(self._Zc))


@dataclass
class GenericGradients:
    """Gradients Eq. (6)-(8) and the adjoints (fields as :class:`refimpl.Gradients`),
    arrays of the caller's namespace and device."""

    K: object
    W1: object
    Wm: object
    U: object
    V: object
    status: SolveStatus = SolveStatus.CONVERGED
    failed_modules: list = field(default_factory=list)


# ------------------------------------------------------------------ helpers
def _gather(xp, g, src, data):
    """Upstream (Eq. 3) or downstream (Eq. 4) sums of one step: (t1 - t0, B)."""
    n = g.t1 - g.t0
    if g.kind == "dense":
        W = xp.reshape(xp.take(data, g.w_idx), (n, g.width))
        return W @ src[g.lo:g.hi, :]
    B = src.shape[1]
    rows = xp.reshape(xp.take(src, g.src_idx, axis=0), (n, g.width, B))
    w = xp.reshape(xp.take(data, g.w_idx), (n, g.width, 1))
    return xp.sum(rows * w, axis=1)


def _upload_graph(bd, net, graph):
    """``A.data`` with a trailing zero, the biases and W1 in schedule positions."""
    order = graph.schedule.order
    data = np.concatenate([graph.A.data.astype(np.float64), np.zeros(1)])
    return bd.up(data), bd.up(graph.b[order]), bd.up(net.W1[order])


def _check_options(solver, mode, whole_method, atol, rtol, max_iter):
    if solver not in SOLVERS and solver not in gs.STAGES:
        raise ValueError(f"solver: expected one of {SOLVERS + tuple(gs.STAGES)}, got {solver!r}")
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    if whole_method not in WHOLE_METHODS:
        raise ValueError(f"whole_method: expected one of {WHOLE_METHODS}, got {whole_method!r}")
    for name, val in (("atol", atol), ("rtol", rtol)):
        if not (np.isfinite(val) and val >= 0):
            raise ValueError(f"{name}: must be finite and >= 0, got {val}")
    if int(max_iter) < 1:
        raise ValueError(f"max_iter: must be >= 1, got {max_iter}")


# ------------------------------------------------------------------ forward
def forward(net, X0, graph=None, *, backend=None, atol=1e-10, rtol=1e-10, max_iter=50,
            throw=True, solver="auto", mode="levels", whole_method="anderson",
            compute_cond=False):
    """Solve Eq. (3) module by module (Alg. 1 lines 9-24) on the generic path.

    .. math:: X = 1 b^T + f(X) A + X^0 W_1^T, \\qquad Z = f(X) W_m^T, \\quad Y = g(Z)

    Same parameters and results as :func:`refimpl.forward` (``backend`` as
    :func:`refimpl.get_backend` resolves it); ``mode="whole"`` runs the numba
    path's own :func:`refimpl.solvers.whole.solve_whole` (Anderson or the
    plain fixed point) on a dense A^T of the namespace.  Per level: the
    upstream term is one gather (or one dense product) over the level's
    in-edges, singletons are evaluated, and each group of same-size modules
    is solved by the stages of :func:`refimpl.xp.solvers.module_solver_stages`
    (batched dense Newton with ``xp.linalg.solve``, damping and
    continuation; or the fixed point).  For the Newton-solved modules the
    Jacobians at the solution are kept for the backward
    (:func:`refimpl.xp.solvers.keep_jacobians`: LU-factored where the
    namespace has a batched LU).
    """
    _check_options(solver, mode, whole_method, atol, rtol, max_iter)
    bd = _boundary(backend, X0)
    xp = bd.xp
    X0 = _check_X0(bd, X0, net.n_in)
    if graph is None:
        graph = net.prune()
    if graph.p != net.p:
        raise ValueError(f"graph: has {graph.p} nodes, the network has {net.p}")
    act = get_activation(net.activation)
    S = graph.schedule
    p, B = net.p, X0.shape[0]
    plan = get_plan(graph, xp, bd.device, mode)
    data, b, W1 = _upload_graph(bd, net, graph)
    XT = b[:, None] + W1 @ X0.T  # C = 1 b^T + X0 W1^T, node-major in positions
    FT = xp.zeros((p, B), dtype=xp.float64, device=bd.device)
    DFT = xp.zeros((p, B), dtype=xp.float64, device=bd.device)
    n_mod = S.n_modules
    res = GenericForwardResult(net=net, graph=graph, boundary=bd, X0=X0, XT=XT, FT=FT,
                               DFT=DFT, mode=mode, solver=solver, steps=[],
                               module_iterations=np.zeros(n_mod, dtype=np.int32),
                               module_residual=np.zeros(n_mod), atol=atol, rtol=rtol,
                               max_iter=int(max_iter), plan=plan, whole_method=whole_method,
                               backend=get_backend(backend).name)
    if mode == "whole":
        return _forward_whole(res, act, data, throw)
    for step in plan.steps[mode]:
        a, s, e = step.start, step.singleton_stop, step.stop
        if step.fwd is not None:
            XT[a:e, :] = XT[a:e, :] + _gather(xp, step.fwd, FT, data)  # Eq. (3) upstream
        if s > a:  # singletons: no solve
            FT[a:s, :] = act.f(XT[a:s, :])
            DFT[a:s, :] = act.derivative(XT[a:s, :], FT[a:s, :])
        rec = []
        for g in step.groups:
            rec.append(_solve_group(res, g, act, data, throw))
        res.steps.append((step, rec))
    finite_rows = to_numpy(xp.all(xp.isfinite(res.XT), axis=1))  # (as the numba path)
    if not finite_rows.all():
        _mark_nonfinite(res, finite_rows, throw)
    if compute_cond:
        res.module_cond = _module_cond(res)
    return res


def _solve_group(res, g, act, data, throw):
    """Solve Eq. (3) for one group in place in ``XT[g.start:g.stop]`` by its stages."""
    xp = res.boundary.xp
    XT, FT, DFT = res.XT, res.FT, res.DFT
    n, q, B = g.n_modules, g.size, XT.shape[1]
    blocks = xp.reshape(xp.take(data, g.block_idx), (n, q, q))
    AT = xp.permute_dims(blocks, (0, 2, 1))
    C = xp.reshape(XT[g.start:g.stop, :], (n, q, B))
    X = C
    it = np.zeros(n, dtype=np.int64)
    rr = np.zeros(n)
    st = np.zeros(n, dtype=np.int64)
    todo = np.ones(n, dtype=bool)
    newton = np.zeros(n, dtype=bool)
    fixed = np.zeros(n, dtype=bool)
    other = {}
    for stage in gs.module_solver_stages(q, n, B, res.solver, xp):
        if not todo.any():
            break
        if stage in ("fixed_point", "fixed_point_trial"):
            trial = stage == "fixed_point_trial"
            budget = (min(gs.AUTO_FP_ITER_PER_Q * q, 20 * res.max_iter) if trial
                      else 20 * res.max_iter)
            Xf, fit, fres, fst = gs.fixed_point_group(xp, AT, C, act.f, res.atol, res.rtol,
                                                     budget, give_up=trial)
            fit, fres, fst = to_numpy(fit), to_numpy(fres), to_numpy(fst)
            ok = (fst == 0) if trial else np.ones(n, dtype=bool)
            ok &= todo
            it[todo], rr[todo], st[todo] = fit[todo], fres[todo], fst[todo]
            X = xp.where(xp.asarray(ok, device=res.boundary.device)[:, None, None], Xf, X)
            fixed |= ok
            todo &= ~ok
        elif stage == "newton" or stage in gs.STAGES:
            solve = gs.newton_group if stage == "newton" else gs.STAGES[stage][0]
            mask = xp.asarray(todo, device=res.boundary.device)
            active = xp.broadcast_to(mask[:, None], (n, B))
            Xn, nst, nit, nres = solve(xp, AT, C, act, res.atol, res.rtol, res.max_iter,
                                       active)
            X = xp.where(mask[:, None, None], Xn, X)
            nst = to_numpy(xp.max(nst, axis=1)) if B else np.zeros(n, dtype=np.int64)
            nit = to_numpy(xp.max(nit, axis=1)) if B else np.zeros(n, dtype=np.int64)
            nres = to_numpy(xp.max(nres, axis=1)) if B else np.zeros(n)
            it[todo] += nit[todo]
            rr[todo], st[todo] = nres[todo], nst[todo]
            if stage == "newton":
                newton |= todo
            else:
                other[stage] = todo.copy()
            todo[:] = False
    XT[g.start:g.stop, :] = xp.reshape(X, (n * q, B))
    FT[g.start:g.stop, :] = act.f(XT[g.start:g.stop, :])
    DFT[g.start:g.stop, :] = act.derivative(XT[g.start:g.stop, :], FT[g.start:g.stop, :])
    kept = None
    if newton.any():  # J at the solution, kept (factored) for the adjoint Eq. (4)
        D = xp.reshape(DFT[g.start:g.stop, :], (n, q, B))
        kept = gs.keep_jacobians(
            xp, AT, xp.where(xp.asarray(newton, device=res.boundary.device)[:, None, None],
                             D, 0.0))
    res.module_iterations[g.ids] = it
    res.module_residual[g.ids] = rr
    bad = np.flatnonzero(st != SolveStatus.CONVERGED)
    if bad.size:
        res.status = max(res.status, SolveStatus(int(st.max())))
        res.failed_modules.extend(int(g.ids[m]) for m in bad)
        if throw:
            m = bad[0]
            raise ConvergenceError(g.ids[m], g.nodes[m], q, rr[m], it[m], st[m], res)
    return _GroupRecord(g, blocks, newton, fixed, other, kept)


def _forward_whole(res, act, data, throw):
    """mode="whole": Eq. (3) on all p nodes as one system (the DEQ baseline) by
    :func:`refimpl.solvers.whole.solve_whole`, the numba path's solver (Anderson
    or the plain fixed point, ``20 max_iter`` steps), on a dense ``A^T``
    gathered from ``A.data`` once."""
    xp = res.boundary.xp
    p = res.XT.shape[0]
    AT = xp.reshape(xp.take(data, res.plan.whole_idx), (p, p))
    sol = solve_whole(AT, res.XT, act.f, act.df, method=res.whole_method, atol=res.atol,
                      rtol=res.rtol, max_iter=20 * res.max_iter)
    XT = sol.x[0, ...]
    FT = act.f(XT)
    res.XT, res.FT, res.DFT = XT, FT, act.derivative(XT, FT)
    res.whole_iterations = int(sol.iterations[0])
    status = SolveStatus(int(sol.status[0]))
    if status != SolveStatus.CONVERGED:
        res.status = status
        res.failed_modules = list(range(res.graph.schedule.n_modules))
        if throw:
            raise ConvergenceError(-1, res.graph.schedule.order, p, sol.residual[0],
                                   sol.iterations[0], status, res)
    return res


def _module_cond(res):
    """max over samples of cond_2(J) per module (singular values by ``xp.linalg.svdvals``)."""
    xp = res.boundary.xp
    cond = np.zeros(res.graph.schedule.n_modules)
    B = res.XT.shape[1]
    for _, recs in res.steps:
        for r in recs:
            g = r.plan
            n, q = g.n_modules, g.size
            D = xp.reshape(res.DFT[g.start:g.stop, :], (n, q, B))
            s = xp.linalg.svdvals(gs.jacobians(xp, xp.permute_dims(r.blocks, (0, 2, 1)), D))
            cond[g.ids] = to_numpy(xp.max(s[..., 0] / s[..., -1], axis=1))
    return cond


# ----------------------------------------------------------------- backward
def backward(net, fwd, G, *, throw=True):
    """Gradients by the adjoint Eq. (4) and Eq. (6)-(8) (Alg. 1 lines 25-38), generic path.

    .. math::
        V = G W_m + (f'(X) \\odot V) A^T,\\quad U = f'(X) \\odot V \\quad (4)

        \\partial L/\\partial K_{ji} = f(x_j) u_i\\ (j \\ne i),\\quad
        \\partial L/\\partial K_{ii} = u_i \\quad (6)

        \\partial L/\\partial W_m = G^T f(X) \\quad (7),\\qquad
        \\partial L/\\partial W_1 = U^T X^0 \\quad (8)

    Reverse level order; per group ``J^T u = f'(x) * v_ext`` with the
    Jacobians the forward kept at its solution (Newton-solved modules:
    triangular solves on their LU factors, or one batched ``xp.linalg.solve``
    on the transposed stack; :func:`refimpl.xp.solvers.solve_kept_transposed`)
    or the adjoint fixed point (fixed-point-solved ones; J^T solve as fallback).
    ``G`` (B, n_out) = dL/dZ, in the caller's namespace or NumPy.  A failed
    adjoint solve raises :class:`ConvergenceError` naming the module; with
    ``throw=False`` the gradients carry ``status`` and ``failed_modules``
    instead.  Returns :class:`GenericGradients` in the caller's namespace
    and device.
    """
    bd = fwd.boundary
    xp = bd.xp
    B = fwd.X0.shape[0]
    G = bd.up(G, xp.float64) if not isinstance(G, (list, tuple)) else bd.up(np.asarray(G))
    if tuple(G.shape) != (B, net.n_out):
        raise ValueError(f"G: expected shape ({B}, {net.n_out}), got {tuple(G.shape)}")
    if not bool(xp.all(xp.isfinite(G))):
        raise ValueError("G: contains NaN or inf")
    graph = fwd.graph
    S = graph.schedule
    plan = fwd.plan
    p = S.p
    data = bd.up(np.concatenate([graph.A.data.astype(np.float64), np.zeros(1)]))
    Wm = bd.up(net.Wm[:, S.order])
    VT = xp.matrix_transpose(Wm) @ xp.matrix_transpose(G)  # (G Wm)^T in positions
    UT = xp.zeros((p, B), dtype=xp.float64, device=bd.device)
    DFT = fwd.DFT
    failures = []
    if fwd.mode == "whole":  # Eq. (4) on the whole graph, the numba path's solver
        A = xp.matrix_transpose(xp.reshape(xp.take(data, plan.whole_idx), (p, p)))
        UT, VT, st = solve_whole_adjoint(A, DFT, VT, atol=fwd.atol, rtol=fwd.rtol,
                                         max_iter=20 * fwd.max_iter)
        if not fwd.converged:  # the forward did not solve it: no valid adjoint either
            st = max(int(st), int(fwd.status), int(SolveStatus.NO_DECREASE))
        if st != SolveStatus.CONVERGED:  # every module (as the numba path), named -1
            err = ConvergenceError(-1, S.order, p, np.nan, 20 * fwd.max_iter, st, fwd)
            if throw:
                raise err
            status = SolveStatus(int(st))
            return _gradients(fwd, G, net, UT, VT, status, list(range(S.n_modules)))
    else:
        for step, recs in reversed(fwd.steps):
            a, s, e = step.start, step.singleton_stop, step.stop
            if step.bwd is not None:
                VT[a:e, :] = VT[a:e, :] + _gather(xp, step.bwd, UT, data)  # Eq. (4)
            if s > a:
                UT[a:s, :] = DFT[a:s, :] * VT[a:s, :]
            for r in recs:
                _adjoint_group(fwd, r, UT, VT, net, failures, throw)
    status = max((e.status for e in failures), default=SolveStatus.CONVERGED)
    return _gradients(fwd, G, net, UT, VT, status, [e.module for e in failures])


def _gradients(fwd, G, net, UT, VT, status, failed):
    """Eq. (6)-(8) from the adjoint U (in positions), and the gradients' record."""
    bd = fwd.boundary
    xp = bd.xp
    p = UT.shape[0]
    position = fwd.plan.position
    Un = xp.take(UT, position, axis=0)   # (p, B) = U^T, node order
    Fn = xp.take(fwd.FT, position, axis=0)
    dK = Fn @ xp.matrix_transpose(Un)   # Eq. (6): dL/dK[j, i] = sum_b f(x_j) u_i
    eye = xp.eye(p, dtype=xp.float64, device=bd.device)
    dK = dK * (1.0 - eye) + eye * xp.sum(Un, axis=1)[None, :]  # Eq. (6): bias, H_i = e_i
    dWm = xp.matrix_transpose(G) @ xp.matrix_transpose(Fn)     # Eq. (7)
    dW1 = Un @ fwd.X0                                          # Eq. (8)
    V = xp.matrix_transpose(xp.take(VT, position, axis=0))
    return GenericGradients(K=bd.back(dK), W1=bd.back(dW1), Wm=bd.back(dWm),
                            U=bd.back(xp.matrix_transpose(Un)), V=bd.back(V), status=status,
                            failed_modules=failed)


def _adjoint_group(fwd, r, UT, VT, net, failures, throw):
    """Eq. (4) on one group: ``J^T u = f'(x) * v_ext``, then ``V_S += A_SS U_S``."""
    bd = fwd.boundary
    xp = bd.xp
    g = r.plan
    n, q, B = g.n_modules, g.size, UT.shape[1]
    D = xp.reshape(fwd.DFT[g.start:g.stop, :], (n, q, B))
    RHS = D * xp.reshape(VT[g.start:g.stop, :], (n, q, B))
    AT = xp.permute_dims(r.blocks, (0, 2, 1))
    U = xp.zeros((n, q, B), dtype=xp.float64, device=bd.device)

    def check(Us, solved, status):
        """A module of ``solved`` whose U is not finite failed (a singular J
        gives NaN for its own systems only)."""
        fin = to_numpy(xp.all(xp.isfinite(Us), axis=(1, 2)))
        for m in np.flatnonzero(solved & ~fin):
            failures.append(ConvergenceError(g.ids[m], g.nodes[m], q, np.nan, 0, status, fwd))
            if throw:
                raise failures[-1]

    if r.newton.any():  # the forward's J at the solution (or its LU), transposed
        mask = xp.asarray(r.newton, device=bd.device)[:, None, None]
        Un = gs.solve_kept_transposed(xp, r.kept, RHS)
        check(Un, r.newton, SolveStatus.NO_DECREASE)  # singular J, as the numba path
        U = xp.where(mask, Un, U)
    for name, solved in r.other.items():  # a registered stage's own adjoint
        mask = xp.asarray(solved, device=bd.device)[:, None, None]
        Us = gs.STAGES[name][1](xp, AT, xp.where(mask, D, 0.0), xp.where(mask, RHS, 0.0),
                                fwd.atol, fwd.rtol)
        check(Us, solved, SolveStatus.MAX_ITERATIONS)
        U = xp.where(mask, Us, U)
    if r.fixed.any():
        mask = xp.asarray(r.fixed, device=bd.device)[:, None, None]
        Uf, ok = gs.fixed_point_adjoint(xp, r.blocks, xp.where(mask, D, 0.0),
                                        xp.where(mask, RHS, 0.0), fwd.atol, fwd.rtol,
                                        20 * fwd.max_iter)
        if not ok:  # J^T solve at the solution instead
            Uf = gs.newton_adjoint(xp, AT, xp.where(mask, D, 0.0), RHS)
            check(Uf, r.fixed, SolveStatus.NO_DECREASE)
        U = xp.where(mask, Uf, U)
    failed_fwd = set(fwd.failed_modules)
    named = {e.module for e in failures}
    for m in range(n):  # a module the forward did not solve: no valid adjoint (numba path)
        if int(g.ids[m]) in failed_fwd and int(g.ids[m]) not in named:
            st = max(int(fwd.status), int(SolveStatus.NO_DECREASE))
            failures.append(ConvergenceError(g.ids[m], g.nodes[m], q, np.nan, 0, st, fwd))
            if throw:
                raise failures[-1]
    UT[g.start:g.stop, :] = xp.reshape(U, (n * q, B))
    # Complete V on the module: V_S = v_ext + A_SS U_S.
    VT[g.start:g.stop, :] = VT[g.start:g.stop, :] + xp.reshape(r.blocks @ U, (n * q, B))


# ------------------------------------------------------------------- losses
def output_loss(Z, T, output, xp=None):
    """Mean loss and G = dL/dZ at the output g of Sec. 3.3 (Alg. 2 line 8), generic path.

    As :func:`refimpl.output_loss`: softmax cross-entropy with
    G = (softmax(Z) - T) / B; sigmoid binary cross-entropy; identity squared
    error ``mean_b 0.5 ||z - t||^2``.  ``Z`` and ``T`` in one namespace
    (``T`` may be integer class labels for softmax).  Returns ``(float, G)``.
    """
    import array_api_compat

    xp = array_api_compat.array_namespace(Z) if xp is None else xp
    dev = array_api_compat.device(Z)
    B, m = Z.shape
    if output == "softmax" and T.ndim == 1:
        if T.shape[0] != B or not xp.isdtype(T.dtype, "integral"):
            raise ValueError(f"T: expected {B} integer class labels or a ({B}, {m}) array, "
                             f"got shape {tuple(T.shape)} dtype {T.dtype}")
        if B and (bool(xp.min(T) < 0) or bool(xp.max(T) >= m)):
            raise ValueError(f"T: class labels must lie in [0, {m}), got range "
                             f"[{int(xp.min(T))}, {int(xp.max(T))}]")
        classes = xp.arange(m, dtype=T.dtype, device=dev)
        T = xp.astype(T[:, None] == classes[None, :], xp.float64)
    else:
        if T.ndim == 1 and m == 1:
            T = T[:, None]
        if tuple(T.shape) != (B, m):
            raise ValueError(f"T: expected shape ({B}, {m}), got {tuple(T.shape)}")
        T = xp.astype(T, xp.float64)
        if not bool(xp.all(xp.isfinite(T))):
            raise ValueError("T: contains NaN or inf")
    if output == "softmax":
        Zs = Z - xp.max(Z, axis=1, keepdims=True)
        logp = Zs - xp.log(xp.sum(xp.exp(Zs), axis=1, keepdims=True))
        loss = -xp.sum(T * logp) / B
        G = (get_output("softmax")(Z) - T) / B
    elif output == "sigmoid":
        loss = xp.sum(xp.logaddexp(xp.zeros_like(Z), Z) - T * Z) / B
        G = (get_output("sigmoid")(Z) - T) / B
    else:
        D = Z - T
        loss = 0.5 * xp.sum(D * D) / B
        G = D / B
    return float(loss), G


def loss_and_grad(net, X0, T, graph=None, *, backend=None, **forward_options):
    """Mean loss and its gradients (Alg. 2 lines 6-10) on the generic path:
    :func:`forward` (Eq. 3), :func:`output_loss`, :func:`backward` (Eq. 4-8).

    Returns ``(loss, GenericGradients, GenericForwardResult)``; arrays in the
    caller's namespace and device (those of ``X0``).
    """
    fwd = forward(net, X0, graph, backend=backend, **forward_options)
    bd = fwd.boundary
    Tx = bd.up(np.asarray(T) if isinstance(T, (list, tuple)) else T)
    loss, G = output_loss(fwd._Zc, Tx, net.output, bd.xp)
    return loss, backward(net, fwd, G), fwd
