"""Alg. 1: the forward pass (Eq. 3) and the backward pass (Eq. 4-8) over the schedule.

Forward (Alg. 1 lines 9-24): the steps of the schedule (its levels, or one
module at a time) are walked in order; in each step the upstream term of
Eq. (3) is gathered from earlier steps, the singleton nodes (on no cycle) are
evaluated directly, and the modules are solved together, one batched solve
per group of same-size modules, by the solver that :data:`STRATEGIES` picks
(the groups whose strategy starts with the fixed point: one kernel call for
all of them, :class:`_Batch`).  A run of consecutive steps with singletons only
is one kernel call (:func:`refimpl.equations.singleton_steps_forward` for tanh
where the packed tanh is the faster one, :func:`_fused_tanh`; the adjoint's
:func:`refimpl.equations.singleton_steps_adjoint` always), except steps whose
edge block :func:`refimpl.equations.level_product` multiplies by BLAS.
Backward (Alg. 1 lines 25-38): the adjoint Eq. (4) is walked in reverse step
order, each module with the adjoint of the solver that solved it (the kept LU
factors, the kept Krylov operator, or the adjoint fixed point), then the
parameter gradients Eq. (6)-(8) are formed.  The solvers live in
:mod:`refimpl.solvers`; this file only walks the schedule.

Node-major schedule-position arrays
-----------------------------------
Every (p, B) array here has one *row per schedule position* and one column
per sample: row t holds node ``order[t]`` (``Schedule.order``; node i is at
row ``position[i]``).  A level, a module, and a group of same-size modules
are then contiguous blocks of rows (module ``ids[m]`` of a group occupies
rows ``start + m q ... start + (m + 1) q - 1``, so a group's rows reshape to
(n_mod, q, B) without a copy), and every gathered row is a contiguous vector
of B samples.

- ``XT``  (p, B): node values X^T.  Before a step it holds the constant term
  c = b + X0 W1^T; the step adds the upstream term of Eq. (3) and solves.
- ``FT``  (p, B): f(X)^T, written as each step finishes.
- ``DFT`` (p, B): f'(X)^T, for the backward.
- ``VT``  (p, B): V^T = (dL/df(X))^T.  Starts as (G Wm)^T; each step adds the
  downstream term of Eq. (4) and, for modules, ``A_SS U_S``.
- ``UT``  (p, B): U^T = (dL/dX)^T = f'(X)^T * V^T.

Results are returned in the row form of DESIGN.md (one row per sample,
columns in node order): ``ForwardResult.X = XT[position].T``.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from functools import cached_property

import array_api_compat.numpy as xnp
import numpy as np
import scipy.sparse as sp

from . import activations
from .activations import ACTIVATIONS, get_activation, get_output
from .backend import is_reference
from .equations import (dense_block, input_rows, level_product, singleton_steps_adjoint,
                        singleton_steps_forward, tanh_rows)
from .solvers.fixed_point import (FixedPointSolve, fixed_point_group, solve_fixed_point,
                                  solve_fixed_point_adjoint, solve_fixed_point_rows)
from .solvers.krylov import (KrylovOperator, krylov_adjoint, newton_krylov, scipy_spmv,
                             xp_activation)
from .solvers.newton import (ACT_CODES, _newton_in_place, factor_jacobian, solve_adjoint,
                             solve_newton)
from .solvers.result import (ConvergenceError, ForwardStatus, GroupSolve, SolveStatus,
                             _mark_nonfinite)
from .solvers.whole import WHOLE_METHODS, solve_whole, solve_whole_adjoint
from .threads import with_threads
from .validation import as_float_array, check_int

__all__ = ["forward", "backward", "ForwardResult", "Gradients", "SolveOptions", "check_input"]

SOLVERS = ("auto", "newton", "fixed_point", "krylov")
MODES = ("levels", "sequential", "whole")

#: solver="auto": modules of up to this many nodes go straight to Newton
#: (a q x q LU per sample is cheap and Newton is robust); larger ones first
#: try the fixed-point iteration (one kernel call per level for all such
#: groups, see :func:`refimpl.solvers.fixed_point.solve_fixed_point_rows`).
#: Re-measured with the threading policy (:mod:`refimpl.threads`) and the
#: fixed-point kernel in place: forward + backward, interleaved A/B in one
#: process, best of 3, p = 3000, B = 256, tol 1e-10, the three regimes of
#: ``refimpl bench propagation`` (deep / wide / weak modules), 2-core VM
#: shared with other jobs (load ~3), time relative to 8: Newton up to 16
#: nodes 0.98 / 1.05 / 1.43, up to 32 nodes 2.85 / 1.71 / 2.32, up to 12
#: 1.07 / 1.05 / 1.10, up to 4 1.28 / 1.04 / 1.47.  (The issue's 0.64-0.73x
#: for Newton up to 32 was against the NumPy fixed point, 2-3x slower per
#: step than the kernel.)  Re-measured after the kernel returned f, f' and
#: solved in place (same setup, best of 5, load 2.3-2.5), forward + backward
#: relative to 8 on deep / wide / weak: Newton for no module (fixed point
#: from q = 2) 1.03 / 1.00 / 1.04, up to 4 1.02 / 0.99 / 0.99, up to 12
#: 1.00 / 1.25 / 1.01, up to 16 1.05 / 1.03 / 1.06; the forward alone
#: 1.00-1.06 of 8 everywhere: flat from 1 to 12 within the noise (but for
#: the one 1.25),
#: so 8 stays.
AUTO_NEWTON_MAX_Q = 8
#: ... for at most AUTO_FP_ITER_PER_Q * q steps (about the cost of Newton's
#: ~6 dense q x q factorizations per sample, counting the BLAS product's
#: higher speed), giving up early on a module whose observed rate predicts
#: it will not finish in time; those are solved by Newton.
AUTO_FP_ITER_PER_Q = 10
#: solver="auto": modules of at least this many nodes are stored sparse
#: (never as q x q blocks) and solved by the fixed point first, then by the
#: matrix-free Newton-Krylov method where it does not finish; smaller ones
#: fall back to the dense Newton.  Measured with ``benchmarks/bench_large.py
#: --crossover`` (single-module graphs, forward + backward, B = 256, tanh,
#: tol 1e-10, one process, 2-core VM shared with other jobs): dense Newton
#: against Krylov 9 / 44 ms at q = 32, 48 / 109 ms at q = 64, 297 / 186 ms
#: at q = 128, 2.2 s / 0.37 s at q = 256: the crossover lies between 64 and
#: 128.  Where the fixed point converges it is cheaper than both (56 ms at
#: q = 128; 1.5-3.5x faster than Krylov at q = 200..1000 in ``bench large``),
#: and a divergent one is abandoned after about 10 steps.  Re-measured with
#: the Krylov solver's numba kernels (the same command, best of 3): dense
#: Newton against Krylov 12 / 36 ms at q = 32, 64 / 32 ms at q = 64, 529 / 58
#: ms at q = 128, so the Newton/Krylov crossover is now between 32 and 64;
#: the fixed point stays 1.3-2.8x faster than Krylov where it converges
#: (q = 128..3000).  The constant is not re-tuned: lowering it would also
#: store modules of 48..95 nodes sparse, which moves their fixed-point trial
#: off the dense-block numba kernels.
AUTO_KRYLOV_MIN_Q = 96
#: Fixed-point iterations allowed per Newton iteration (``max_iter``).
FP_ITER_FACTOR = 20


@dataclass(frozen=True)
class SolveOptions:
    """How :func:`forward` solves Eq. (3) (and :func:`backward` Eq. 4).

    Attributes
    ----------
    atol, rtol : float
        Module stop test ``||r||_inf <= atol + rtol ||x||_inf``.
    max_iter : int
        Newton iterations per module (fixed-point iterations:
        ``FP_ITER_FACTOR`` times this).
    solver : {"auto", "newton", "fixed_point", "krylov"}
    mode : {"levels", "sequential", "whole"}
    whole_method : {"anderson", "fixed_point"}
    """

    atol: float = 1e-10
    rtol: float = 1e-10
    max_iter: int = 50
    solver: str = "auto"
    mode: str = "levels"
    whole_method: str = "anderson"

    def __post_init__(self):
        if self.solver not in SOLVERS:
            raise ValueError(f"solver: expected one of {SOLVERS}, got {self.solver!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode: expected one of {MODES}, got {self.mode!r}")
        if self.whole_method not in WHOLE_METHODS:
            raise ValueError(f"whole_method: expected 'anderson' or 'fixed_point', "
                             f"got {self.whole_method!r}")
        for name in ("atol", "rtol"):
            val = getattr(self, name)
            if not (np.isfinite(val) and val >= 0):
                raise ValueError(f"{name}: must be finite and >= 0, got {val}")
        check_int(self.max_iter, "max_iter", 1)  # 1.5 is refused, not truncated to 1

    @property
    def fp_max_iter(self) -> int:
        return FP_ITER_FACTOR * int(self.max_iter)


#: The generic (array-API) path's entry points for ``backend=`` other than
#: "numpy": ``{"forward": refimpl.xp.forward, "backward": refimpl.xp.backward}``,
#: filled by ``refimpl/__init__.py`` (refimpl.xp sits beside this module in the
#: layer table, so this module does not import it).
GENERIC: dict = {}


def check_input(X0, n_in, name="X0"):
    """``X0`` as a float64 (B, n_in) array (a single sample (n_in,) becomes
    one row); raises ValueError naming the problem.  X0 is the input of
    Eq. (3), entering as ``X0 W1^T`` (DESIGN.md sec. 2 and 3)."""
    X0 = np.asarray(X0)
    return as_float_array(X0[None, :] if X0.ndim == 1 else X0, name, (None, n_in))


# ----------------------------------------------------------------------------
# solver choice: a strategy is the sequence of stages a group goes through
# ----------------------------------------------------------------------------


def _auto_strategy(q):
    if q <= AUTO_NEWTON_MAX_Q:
        return ("newton",)
    if q < AUTO_KRYLOV_MIN_Q:
        return ("fixed_point_trial", "newton")
    return ("fixed_point_trial", "krylov")


#: solver -> (q -> the stages of a group of q-node modules).  Each stage
#: solves the modules the previous one left; only the last stage's failures
#: are failures ("fixed_point_trial" gives up early and passes its modules on).
STRATEGIES = {
    "auto": _auto_strategy,
    "newton": lambda q: ("newton",),
    "fixed_point": lambda q: ("fixed_point",),
    "krylov": lambda q: ("krylov",),
}


#: id(group) -> (weak reference to the group, its edge structure); an entry
#: leaves with its group.
_EDGE_STRUCTURE: dict = {}


def _edge_structure(grp):
    """``(ptr, src, dst, edge)`` of a group's within-module edges, by module
    then target node (the fixed-point kernel sums each target's row in one
    go): module m's edges are ``ptr[m]:ptr[m + 1]``, going ``src -> dst``
    (local node indices), with weights ``A.data[edge]``.  It depends on the
    schedule only, so it is computed once per group object (the weights are
    gathered at every call: training changes them)."""
    key = id(grp)
    hit = _EDGE_STRUCTURE.get(key)
    if hit is not None and hit[0]() is grp:
        return hit[1]
    q, n = grp.size, grp.n_modules
    m, local = np.divmod(np.asarray(grp.flat, dtype=np.int64), q * q)
    a, c = np.divmod(local, q)
    o = np.lexsort((a, c, m))
    m, a, c = m[o], a[o], c[o]
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(m, minlength=n), out=ptr[1:])
    struct = (ptr, a, c, np.asarray(grp.edge)[o])
    _EDGE_STRUCTURE[key] = (weakref.ref(grp, lambda _, key=key: _EDGE_STRUCTURE.pop(key, None)),
                            struct)
    return struct


class ModuleOperator:
    """A_SS of the modules of a group: dense (n, q, q) blocks for the dense
    solvers, or one block-diagonal sparse (CSR) matrix of shape (n q, n q)
    for the Krylov solver; each is built only when a solver asks for it.
    ``AT`` is the within-module product of Eq. (3), ``A`` that of Eq. (4)
    (DESIGN.md sec. 3 and 4)."""

    def __init__(self, grp, data, sparse):
        self.group = grp
        self.data = data
        self.sparse = bool(sparse)
        self.n, self.q = grp.n_modules, grp.size

    @cached_property
    def blocks(self):
        """(n, q, q): ``blocks[m, a, c]`` = weight of edge a -> c of module m."""
        return self.group.blocks(self.data)

    @cached_property
    def csr(self):
        """The block-diagonal A_SS as CSR: row ``m q + a``, column ``m q + c``
        (built from the cached :func:`_edge_structure`)."""
        ptr, a, c, edge = _edge_structure(self.group)
        q, nq = self.q, self.n * self.q
        m = np.repeat(np.arange(self.n, dtype=np.int64), np.diff(ptr))
        return sp.csr_matrix((self.data[edge], (m * q + a, m * q + c)), shape=(nq, nq))

    @cached_property
    def edges(self):
        """The modules' edges as per-module lists ``(ptr, src, dst, w)``
        (:func:`refimpl.solvers.fixed_point.module_edges`), for the kernels."""
        ptr, a, c, edge = _edge_structure(self.group)
        return ptr, a, c, np.ascontiguousarray(self.data[edge], dtype=np.float64)

    @cached_property
    def csr_T(self):
        return self.csr.T.tocsr()

    def _sparse_product(self, M, V, idx):
        n, q = self.n, self.q
        B = V.shape[-1]
        if idx is None or idx.size == n:
            return (M @ V.reshape(n * q, B)).reshape(V.shape)
        full = np.zeros((n, q, B))
        full[idx] = V
        return (M @ full.reshape(n * q, B)).reshape(n, q, B)[idx]

    def products(self, idx):
        """``A_SS^T`` and ``A_SS`` of the modules ``idx`` as
        :class:`refimpl.solvers.krylov.SparseProduct` s (their own CSR
        blocks, for the fused Jacobian kernels of the Krylov solver)."""
        n, q = self.n, self.q
        if idx.size == n and np.array_equal(idx, np.arange(n)):
            MT, M = self.csr_T, self.csr
        else:
            rows = (np.asarray(idx)[:, None] * q + np.arange(q)).ravel()
            MT, M = self.csr_T[rows][:, rows].tocsr(), self.csr[rows][:, rows].tocsr()
        return scipy_spmv(MT, idx.size, q), scipy_spmv(M, idx.size, q)

    def AT(self, V, idx=None):
        """``A_SS^T V`` for the modules ``idx`` (default all); V (len(idx), q, B)."""
        if self.sparse:
            return self._sparse_product(self.csr_T, V, idx)
        blocks = self.blocks if idx is None else self.blocks[idx]
        return np.matmul(blocks.transpose(0, 2, 1), V)

    def A(self, U, idx=None):
        """``A_SS U`` for the modules ``idx`` (default all)."""
        if self.sparse:
            return self._sparse_product(self.csr, U, idx)
        blocks = self.blocks if idx is None else self.blocks[idx]
        return np.matmul(blocks, U)


@dataclass
class _Context:
    """What the stages need besides the group: the options and the activation."""

    opts: SolveOptions
    act: object

    @cached_property
    def fd(self):
        return xp_activation(xnp, self.act.name)


def _stage_newton(op, C, idx, ctx):
    o = ctx.opts
    return solve_newton(op.blocks[idx], C, activation=ctx.act.name, atol=o.atol, rtol=o.rtol,
                        max_iter=o.max_iter)


def _fp_budget(q, opts, trial):
    """Fixed-point steps allowed to a module of q nodes (q may be an array)."""
    return np.minimum(AUTO_FP_ITER_PER_Q * q, opts.fp_max_iter) if trial else opts.fp_max_iter


def _stage_fixed_point(op, C, idx, ctx, trial=False, out=None):
    o = ctx.opts
    budget = int(_fp_budget(op.q, o, trial))
    # The numba kernel over the modules' edge lists, for dense-block and
    # sparse-stored (Krylov-size) groups alike; the NumPy reference
    # fixed_point_group for activations the kernels do not know.  Against
    # SciPy's sparse product in the NumPy loop, forward + backward of one
    # large module took 0.77x (q = 500, 249 000 edges, B = 256), 0.84x
    # (q = 1000, 10 000 edges, B = 256), 0.88x (q = 3000, 30 000 edges, B = 64)
    # and 0.94x (training's loss_and_grad, q = 3000, B = 32, where the dense
    # dL/dK product is a third); one process, interleaved, best of 3-5, one
    # thread, 2-core Xeon VM.  The kernel's row-wise sweep (issue 12) made the
    # difference: the older kernel had lost at q = 500 (2.1 s against 1.2 s).
    if ctx.act.name in ACT_CODES:
        # out: solved in place in XT, FT, DFT; a trial leaves C on the modules it passes on.
        return solve_fixed_point(op.edges, C, activation=ctx.act.name, atol=o.atol,
                                 rtol=o.rtol, max_iter=budget, give_up=trial, mods=idx,
                                 out=out, write_failed=not trial)
    return fixed_point_group(lambda V, a: op.AT(V, idx[a]), C, ctx.act.f, atol=o.atol,
                             rtol=o.rtol, max_iter=budget, give_up=trial)


def _stage_krylov(op, C, idx, ctx):
    o = ctx.opts
    AT, A = op.products(idx)
    x, dfx, st, it, res = newton_krylov(xnp, AT, ctx.fd, C, C.copy(), atol=o.atol, rtol=o.rtol,
                                        max_iter=o.max_iter)
    kept = KrylovOperator(AT=AT, A=A, dfx=dfx)
    return GroupSolve.from_samples(x, st, it, res, kept)


#: stage name -> solver of Eq. (3) on the modules ``idx`` of a group.
STAGES = {
    "newton": _stage_newton,
    "fixed_point": _stage_fixed_point,
    "fixed_point_trial": lambda op, C, idx, ctx, out=None: _stage_fixed_point(op, C, idx, ctx,
                                                                               True, out),
    "krylov": _stage_krylov,
}
#: Stages that accept ``out=(X, F, DF)`` and may solve a whole group in place.
IN_PLACE = ("fixed_point", "fixed_point_trial")


@dataclass(frozen=True)
class Step:
    """A block of positions processed together: a level, or one module
    (the level order of Eq. (3)'s solve, DESIGN.md sec. 3).

    Positions ``start:singleton_stop`` are singletons (no solve);
    ``groups`` are the :class:`refimpl.graph.ModuleGroup` s of the rest.
    """

    start: int
    singleton_stop: int
    stop: int
    groups: tuple


@dataclass
class SolvedPart:
    """Modules ``idx`` (indices into the group) solved by stage ``method``
    (Eq. (3)), with what its adjoint (Eq. (4)) reuses (``kept``)."""

    method: str
    idx: np.ndarray
    kept: object = None


@dataclass
class GroupRecord:
    """One batched group solve of the forward (Eq. (3)), kept for the
    backward (Eq. (4))."""

    group: object
    op: ModuleOperator
    parts: list

    start = property(lambda self: self.group.start)
    stop = property(lambda self: self.group.stop)
    size = property(lambda self: self.group.size)
    ids = property(lambda self: self.group.ids)

    def _by(self, *methods):
        idx = [p.idx for p in self.parts if p.method in methods]
        return np.concatenate(idx) if idx else np.arange(0)

    @property
    def newton(self):
        """Modules (indices into the group) solved by dense Newton."""
        return self._by("newton")

    @property
    def fixed(self):
        """Modules solved by the fixed-point iteration."""
        return self._by("fixed_point", "fixed_point_trial")

    @property
    def krylov(self):
        """Modules solved by Newton-Krylov."""
        return self._by("krylov")


@dataclass
class StepRecord:
    """A :class:`Step` of the forward and the records of its group solves
    (Eq. (3) per module, replayed in reverse for Eq. (4))."""

    step: Step
    groups: list = field(default_factory=list)

    start = property(lambda self: self.step.start)
    singleton_stop = property(lambda self: self.step.singleton_stop)
    stop = property(lambda self: self.step.stop)


def _solve_group(grp, data, XT, FT, DFT, ctx, first=None):
    """Solve Eq. (3) for one group in place in ``XT[grp.start:grp.stop]``
    through the stages of its strategy, and fill ``FT``, ``DFT`` there with
    f(x), f'(x) (from the fixed-point kernel where it solved the module, by
    the activation otherwise); returns ``(GroupRecord, status, iterations,
    residual)`` with (n_mod,) arrays.  ``first``: ``(status, iterations,
    residual)`` of the first stage (an in-place fixed point), already run on
    the whole group by the level's batch (:class:`_Batch`)."""
    q, n = grp.size, grp.n_modules
    stages = STRATEGIES[ctx.opts.solver](q)
    op = ModuleOperator(grp, data, sparse="krylov" in stages)
    B = XT.shape[1]
    g0, g1 = grp.start, grp.stop
    view = XT[g0:g1].reshape(n, q, B)
    act = ctx.act
    if stages == ("newton",) and first is None and act.name in ACT_CODES:
        # Newton alone (auto's small modules): the loop below in a few calls, solved in place
        o = ctx.opts
        sol = _newton_in_place(op.blocks, view.copy(), view, ACT_CODES[act.name],
                               float(o.atol), float(o.rtol), int(o.max_iter))
        FT[g0:g1] = act.f(XT[g0:g1])
        DFT[g0:g1] = act.derivative(XT[g0:g1], FT[g0:g1])
        record = GroupRecord(grp, op, [SolvedPart("newton", np.arange(n), sol.kept)])
        return record, sol.status, sol.iterations, sol.residual
    fview, dfview = FT[g0:g1].reshape(n, q, B), DFT[g0:g1].reshape(n, q, B)
    valued = np.zeros(n, bool)  # f, f' already filled by the solver
    it = np.zeros(n, dtype=np.int32)
    res = np.zeros(n)
    st = np.zeros(n, dtype=np.int8)
    parts = []
    left = np.arange(n)
    for k, name in enumerate(stages):
        if left.size == n:
            C = view
            kw = {"out": (view, fview, dfview)} if name in IN_PLACE else {}
        else:
            C, kw = np.ascontiguousarray(view[left]), {}
        if k == 0 and first is not None:
            sol = FixedPointSolve(view, *first, f=fview, df=dfview)
        else:
            sol = STAGES[name](op, C, left, ctx, **kw)
        it[left] += sol.iterations
        res[left], st[left] = sol.residual, sol.status
        last = k == len(stages) - 1
        keep = np.ones(left.size, bool) if last else sol.status == SolveStatus.CONVERGED
        if keep.any():
            kept_idx = left[keep]
            has_f = getattr(sol, "f", None) is not None  # FixedPointSolve: f(x), f'(x) at x
            if sol.x is not view:  # (in place: already there)
                view[kept_idx] = sol.x[keep]
                if has_f:
                    fview[kept_idx] = sol.f[keep]
                    dfview[kept_idx] = sol.df[keep]
            valued[kept_idx] = has_f
            parts.append(SolvedPart(name, kept_idx, sol.kept))
        left = left[~keep]
        if left.size == 0:
            break
    if not valued.any():
        FT[g0:g1] = act.f(XT[g0:g1])
        DFT[g0:g1] = act.derivative(XT[g0:g1], FT[g0:g1])
    elif not valued.all():
        rest = np.flatnonzero(~valued)
        fview[rest] = act.f(view[rest])
        dfview[rest] = act.derivative(view[rest], fview[rest])
    return GroupRecord(grp, op, parts), st, it, res


#: (stage name, ids of the groups) -> (weak references to the groups, their _Batch);
#: an entry leaves with its first group.
_BATCHES: dict = {}


@dataclass(frozen=True)
class _Batch:
    """The groups of a step whose first stage is the same in-place fixed point
    (``name``), solved by one :func:`solve_fixed_point_rows` call (Eq. (3) on
    every module of them, modules of different sizes alike): the per-group
    Python of :func:`_solve_group` is left to the groups where the fixed
    point does not converge.  Module k of the batch (group ``grp``'s modules
    are ``mod_ptr[j]:mod_ptr[j + 1]``, ``j = at[id(grp)]``; the batch holds
    no reference to the groups) is module ``ids[k]``, at rows
    ``rows[k] ..`` of the node-major arrays, ``sizes[k]`` nodes, with edges
    ``ptr[k]:ptr[k + 1]`` of (src, dst), weights ``A.data[edge]``."""

    name: str
    at: dict  # id(group) -> j
    mod_ptr: np.ndarray
    ids: np.ndarray
    rows: np.ndarray
    sizes: np.ndarray
    ptr: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    edge: np.ndarray
    budgets: dict = field(default_factory=dict)

    @classmethod
    def of(cls, name, groups):
        """The batch of ``groups`` (cached per group tuple: it depends on the schedule only)."""
        key = (name, tuple(id(g) for g in groups))
        hit = _BATCHES.get(key)
        if hit is not None and all(r() is g for r, g in zip(hit[0], groups)):
            return hit[1]
        structs = [_edge_structure(g) for g in groups]
        n = np.array([g.n_modules for g in groups], dtype=np.int64)
        mod_ptr = np.zeros(len(groups) + 1, dtype=np.int64)
        np.cumsum(n, out=mod_ptr[1:])
        ptr = np.zeros(int(mod_ptr[-1]) + 1, dtype=np.int64)
        for j, (p, *_) in enumerate(structs):
            ptr[mod_ptr[j] + 1:mod_ptr[j + 1] + 1] = p[1:] + ptr[mod_ptr[j]]
        cat = lambda i: np.ascontiguousarray(np.concatenate([st[i] for st in structs]),
                                             dtype=np.int64)
        batch = cls(
            name, {id(g): j for j, g in enumerate(groups)}, mod_ptr,
            np.concatenate([g.ids for g in groups]).astype(np.int64),
            np.concatenate([g.start + g.size * np.arange(g.n_modules) for g in groups]
                           ).astype(np.int64),
            np.repeat([g.size for g in groups], n).astype(np.int64),
            ptr, cat(1), cat(2), cat(3))
        refs = [weakref.ref(g) for g in groups]
        refs[0] = weakref.ref(groups[0], lambda _, key=key, d=_BATCHES: d.pop(key, None))
        _BATCHES[key] = (refs, batch)
        return batch

    def solve(self, data, XT, FT, DFT, ctx):
        """Eq. (3) on all the batch's modules, in place in XT, FT, DFT (a
        trial leaves C on the modules it does not finish, as
        :func:`_stage_fixed_point`)."""
        o, trial = ctx.opts, self.name == "fixed_point_trial"
        w = np.ascontiguousarray(data[self.edge], dtype=np.float64)
        key = (o.fp_max_iter, trial, AUTO_FP_ITER_PER_Q)  # the budgets (the constant may be tuned)
        budget = self.budgets.get(key)
        if budget is None:
            budget = np.zeros_like(self.sizes) + _fp_budget(self.sizes, o, trial)
            self.budgets[key] = budget
        return solve_fixed_point_rows((self.ptr, self.src, self.dst, w), XT, self.rows,
                                      self.sizes, activation=ctx.act.name, atol=o.atol,
                                      rtol=o.rtol, max_iter=budget, give_up=trial,
                                      out=(XT, FT, DFT), write_failed=not trial)


def _batches(groups, ctx):
    """The step's :class:`_Batch` es: its groups whose strategy starts with an
    in-place fixed point on dense-stored modules (those of a Krylov strategy
    are stored sparse and keep the per-group path), one batch per stage name."""
    if ctx.act.name not in ACT_CODES:
        return ()
    by = {}
    strategy = STRATEGIES[ctx.opts.solver]
    for grp in groups:
        stages = strategy(grp.size)
        if stages[0] in IN_PLACE and "krylov" not in stages:
            by.setdefault(stages[0], []).append(grp)
    return tuple(_Batch.of(name, gs) for name, gs in by.items())


# ----------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------


@dataclass
class ForwardResult(ForwardStatus):
    """The solution of Eq. (3) and what the backward pass needs.

    Attributes
    ----------
    X, F : (B, p) arrays
        Node values (pre-activation) at the solution and f(X).
    Z, Y : (B, n_out) arrays
        Output pre-activation ``Z = f(X) Wm^T`` and ``Y = g(Z)``.
    XT, FT, DFT : (p, B) arrays
        X, f(X), f'(X) node-major in schedule positions (module docstring).
    options : SolveOptions
        How it was solved (``solver``, ``mode``, ``atol`` ... read through).
    steps : list of StepRecord
        The steps of the schedule and their group solves (for the backward).
    converged : bool
        True when every module solve met its tolerance.
    status : SolveStatus
        The worst status over all modules.
    module_iterations, module_residual : (n_modules,) arrays
        Newton (or fixed-point, or Newton-Krylov) iterations and final
        ``||r||_inf`` of each module, the maxima over the samples (0 for
        singletons).
    module_cond : (n_modules,) array or None
        max over samples of cond_2(J) per module (``compute_cond=True``).
    failed_modules : list of int
    """

    net: object
    graph: object
    X0: np.ndarray
    XT: np.ndarray
    FT: np.ndarray
    DFT: np.ndarray
    options: SolveOptions
    steps: list
    module_iterations: np.ndarray
    module_residual: np.ndarray
    status: SolveStatus = SolveStatus.CONVERGED
    failed_modules: list = field(default_factory=list)
    #: ``backward(..., grad_K="factors")``: ``(F, U)``, both (p, B) C-contiguous in node
    #: order (``F = f(X)^T``, ``U = dL/dX^T``), and ``K`` is None: dL/dK of Eq. (6) is
    #: ``F @ U.T`` with its diagonal replaced by ``U.sum(axis=1)`` (the biases), never
    #: formed (the trainer forms it in row blocks, :func:`refimpl.train._update_pass`).
    K_factors: tuple | None = None
    module_cond: np.ndarray | None = None
    whole_iterations: int = 0

    mode = property(lambda self: self.options.mode)
    solver = property(lambda self: self.options.solver)
    atol = property(lambda self: self.options.atol)
    rtol = property(lambda self: self.options.rtol)
    max_iter = property(lambda self: self.options.max_iter)

    @cached_property
    def X(self):
        return self.XT[self.graph.schedule.position].T

    @cached_property
    def F(self):
        return self.FT[self.graph.schedule.position].T

    @cached_property
    def Z(self):
        Wm = self.net.Wm[:, self.graph.schedule.order]
        return (Wm @ self.FT).T  # Z = f(X) Wm^T (Sec. 3.3)

    @cached_property
    def Y(self):
        return get_output(self.net.output)(self.Z)


@dataclass
class Gradients:
    """Gradients of the loss w.r.t. the parameters (Eq. 6-8), and the adjoints.

    ``K`` is dense (p, p): ``K[j, i] = f(x_j) u_i`` for j != i (every entry,
    pruned ones included: the feedback that lets pruned edges grow back) and
    ``K[i, i] = sum_b u_i`` (the bias).  With ``backward(..., grad_K="factors")`` ``K`` is None
    and ``K_factors`` holds its two (p, B) factors instead.  ``U = dL/dX`` and ``V = dL/df(X)``
    are (B, p).  ``status`` is the worst status of the adjoint solves and
    ``failed_modules`` the modules whose adjoint did not converge (with
    ``backward(..., throw=False)``; otherwise a failure raises).
    """

    K: np.ndarray
    W1: np.ndarray
    Wm: np.ndarray
    U: np.ndarray
    V: np.ndarray
    status: SolveStatus = SolveStatus.CONVERGED
    failed_modules: list = field(default_factory=list)
    #: ``backward(..., grad_K="factors")``: ``(F, U)``, both (p, B) C-contiguous in node
    #: order (``F = f(X)^T``, ``U = dL/dX^T``), and ``K`` is None: dL/dK of Eq. (6) is
    #: ``F @ U.T`` with its diagonal replaced by ``U.sum(axis=1)`` (the biases), never
    #: formed (the trainer forms it in row blocks, :func:`refimpl.train._update_pass`).
    K_factors: tuple | None = None


# ----------------------------------------------------------------------------
# forward
# ----------------------------------------------------------------------------


def _fused_tanh(act, XT):
    """Whether the singletons' f and f' (Eq. 3, 4) go through the compiled
    :func:`refimpl.equations.tanh_rows`, in runs of singleton steps with their
    upstream sums (:func:`refimpl.equations.singleton_steps_forward`): for tanh on
    float64 wherever the packed tanh is the faster one
    (:func:`refimpl.activations.packed_tanh_is_faster`), then at every size, in every
    mode, so that the singletons' f and f' are the same bits in "levels" and
    "sequential" (the solved modules' f is the activation's, which picks its tanh by
    the group's size); elsewhere NumPy's tanh by the activation, as before.  Only the
    library's own tanh activation (not a user's Activation of that name)."""
    return (act is ACTIVATIONS["tanh"] and activations._PACKED_TANH
            and XT.dtype == np.float64 and XT.flags.c_contiguous)


def _segments(steps, ptr, idx, runs=True):
    """The steps in order as ``(k0, k1, bounds)``: a run of consecutive steps
    ``k0 .. k1 - 1`` without module groups whose edge blocks take the gather path of
    :func:`refimpl.equations.level_product` (:func:`refimpl.equations.dense_block` is
    None), ``bounds`` their (start, stop) rows as an int64 (n, 2) array; or one step
    ``k0`` (``k1 = k0 + 1``) to walk on its own, ``bounds`` None (every step so with
    ``runs`` False)."""
    out, k, n = [], 0, len(steps)
    while k < n:
        end = k
        while (runs and end < n and not steps[end].groups
               and dense_block(ptr, idx, steps[end].start, steps[end].stop) is None):
            end += 1
        if end > k:
            out.append((k, end, np.array([(st.start, st.stop) for st in steps[k:end]],
                                         dtype=np.int64).reshape(-1, 2)))
            k = end
        else:
            out.append((k, k + 1, None))
            k += 1
    return out


def _steps(S, mode):
    """The schedule's steps: its levels, or (``"sequential"``) one module at a time."""
    if mode == "levels":
        return [Step(L.start, L.singleton_stop, L.stop, tuple(L.modules)) for L in S.levels]
    steps = []
    for m in range(S.n_modules):
        a, b = int(S.module_ptr[m]), int(S.module_ptr[m + 1])
        steps.append(Step(a, b, b, ()) if b - a == 1 else Step(a, a, b, (S.module_group(m),)))
    return steps


@with_threads  # threads=: refimpl.threads.threads_policy
def forward(net, X0, graph=None, *, atol=1e-10, rtol=1e-10, max_iter=50, throw=True,
            solver="auto", mode="levels", whole_method="anderson", compute_cond=False,
            backend="numpy"):
    """Solve Eq. (3) of the paper module by module (Alg. 1 lines 9-24).

    .. math:: X = 1 b^T + f(X) A + X^0 W_1^T, \\qquad Z = f(X) W_m^T, \\quad Y = g(Z)

    Parameters
    ----------
    net : NMNetwork
    X0 : (B, n_in) or (n_in,) array
    graph : PrunedGraph, optional
        The pruned graph; default ``net.prune()``.
    atol, rtol : float
        Module stop test ``||r||_inf <= atol + rtol ||x||_inf``.
    max_iter : int
        Newton (or Newton-Krylov) iterations per module (fixed-point
        iterations: 20x this).
    throw : bool
        Raise :class:`ConvergenceError` on the first failed module; with
        False the result carries ``status`` and ``failed_modules`` and the
        downstream values are computed from the unconverged iterates.
    solver : {"auto", "newton", "fixed_point", "krylov"}
        Module solver (:data:`STRATEGIES`).  "newton": damped Newton with
        continuation on dense q x q Jacobians (keeps the LU the backward
        reuses).  "fixed_point": iterate ``x <- c + A_SS^T f(x)``, one numba
        kernel call per level (per group for sparse-stored modules) over the
        modules' edges (sparse products for
        sparse-stored modules; converges for contractive modules only; the
        adjoint iterates likewise).  "krylov": matrix-free Newton-Krylov
        (:func:`refimpl.solvers.krylov.newton_krylov`: GMRES on
        ``J v = v - A_SS^T (f'(x) v)``, one sparse product per step for the
        whole batch; the module is stored sparse, never as a q x q block).
        "auto": Newton for modules of up to :data:`AUTO_NEWTON_MAX_Q` nodes;
        larger modules first try the fixed point (up to
        ``AUTO_FP_ITER_PER_Q * q`` steps, at most 20 ``max_iter``,
        abandoned early when the observed rate cannot make it), and those
        it does not finish go to Newton (below :data:`AUTO_KRYLOV_MIN_Q`
        nodes) or to Newton-Krylov (from it on; those modules are stored
        sparse).
    mode : {"levels", "sequential", "whole"}
        "levels": the modules of a level are solved together (the paper's
        parallel computation).  "sequential": one module at a time, in
        topological order (the paper's Fig. 4b baseline).  "whole": one
        implicit system for all nodes, no modules (the DEQ baseline,
        :func:`refimpl.solvers.whole.solve_whole`).
    whole_method : {"anderson", "fixed_point"}
        The solver of ``mode="whole"``: Anderson acceleration (memory 5) or
        the plain fixed-point iteration.
    compute_cond : bool
        Also record max cond_2(J) per module (costly: a dense SVD per sample).
    backend : str, array-API namespace module or Backend
        ``"numpy"``: this numba path.  Anything else (``"cupy"``,
        ``array_api_strict``, ...; see :func:`refimpl.get_backend`) runs the
        generic path :func:`refimpl.xp.forward`, whose results are arrays of
        the caller's namespace and device (``mode="whole"`` there needs
        ``whole_method="fixed_point"``).
    threads : int or None
        numba and BLAS threads inside the call (:func:`refimpl.threads.threads_policy`;
        None: one each, or ``REFIMPL_THREADS``).

    Returns
    -------
    ForwardResult
    """
    if not is_reference(backend):
        return GENERIC["forward"](net, X0, graph, backend=backend, atol=atol, rtol=rtol,
                                  max_iter=max_iter, throw=throw, solver=solver, mode=mode,
                                  whole_method=whole_method, compute_cond=compute_cond)
    opts = SolveOptions(atol=atol, rtol=rtol, max_iter=max_iter, solver=solver,
                        mode=mode, whole_method=whole_method)
    X0 = check_input(X0, net.n_in)
    if graph is None:
        graph = net.prune()
    if graph.p != net.p:
        raise ValueError(f"graph: has {graph.p} nodes, the network has {net.p}")
    act = get_activation(net.activation)
    S = graph.schedule
    order = S.order
    p, B = net.p, X0.shape[0]
    data = graph.A.data

    # Constant term C = 1 b^T + X0 W1^T, node-major in positions.
    rows = input_rows(net.W1)  # nodes with input edges
    if rows.size == p:
        XT = net.W1[order] @ X0.T  # Eq. (3): X0 W1^T, in positions
        XT += graph.b[order][:, None]
    else:
        XT = np.empty((p, B))
        XT[:] = graph.b[order][:, None]
        if rows.size:
            XT[S.position[rows]] += net.W1[rows] @ X0.T

    n_mod = S.n_modules
    mod_it = np.zeros(n_mod, dtype=np.int32)
    mod_res = np.zeros(n_mod)
    res = ForwardResult(net=net, graph=graph, X0=X0, XT=XT, FT=np.empty_like(XT),
                        DFT=np.empty_like(XT), options=opts, steps=[],
                        module_iterations=mod_it, module_residual=mod_res)
    FT, DFT = res.FT, res.DFT

    if mode == "whole":  # the DEQ baseline: one implicit layer
        Ao = graph.A.T.tocsr()[order][:, order]  # A^T in positions
        sol = solve_whole(Ao, XT.copy(), act.f, act.df, method=whole_method, atol=atol,
                          rtol=rtol, max_iter=opts.fp_max_iter)
        XT[:] = sol.x[0]
        FT[:] = act.f(XT)
        DFT[:] = act.derivative(XT, FT)
        res.whole_iterations = int(sol.iterations[0])
        if sol.status[0] != SolveStatus.CONVERGED:
            res.status = SolveStatus(int(sol.status[0]))
            res.failed_modules = list(range(n_mod))
            if throw:
                raise ConvergenceError(-1, order, p, sol.residual[0], sol.iterations[0],
                                       sol.status[0], res)
        return res

    ctx = _Context(opts, act)
    in_w = data[S.in_edge]
    fused = _fused_tanh(act, XT)
    steps = _steps(S, mode)
    for k0, k1, bounds in _segments(steps, S.in_ptr, S.in_src, runs=fused):
        if bounds is not None:  # singleton steps: Eq. (3) and f, f' in one kernel call
            singleton_steps_forward(S.in_ptr, S.in_src, in_w, XT, FT, DFT, bounds)
            res.steps.extend(StepRecord(st) for st in steps[k0:k1])
            continue
        step = steps[k0]
        level_product(S.in_ptr, S.in_src, in_w, FT, XT, step.start, step.stop)  # Eq. (3)
        record = StepRecord(step)
        a, b = step.start, step.singleton_stop
        if b > a and fused:  # singletons: no solve
            tanh_rows(XT, FT, DFT, a, b)
        elif b > a:
            FT[a:b] = act.f(XT[a:b])
            DFT[a:b] = act.derivative(XT[a:b], FT[a:b])
        # The fixed-point groups of the step in one kernel call per stage name
        # (the modules are independent); then each group in order, the per-group
        # path only where the fixed point did not converge.
        # (Not in "sequential" mode: its one-module groups are built afresh at every
        # forward, Schedule.module_group, so their batches would be too.)
        batched = []
        for bt in _batches(step.groups, ctx) if mode == "levels" else ():
            sol = bt.solve(data, XT, FT, DFT, ctx)
            mod_it[bt.ids] = sol.iterations
            mod_res[bt.ids] = sol.residual
            batched.append((bt, sol))
        for grp in step.groups:
            name, first = None, None
            for bt, sol in batched:
                j = bt.at.get(id(grp))
                if j is not None:
                    a, b = bt.mod_ptr[j], bt.mod_ptr[j + 1]
                    name, first = bt.name, (sol.status[a:b], sol.iterations[a:b],
                                            sol.residual[a:b])
            if first is not None and not first[0].any():  # all converged: solved in place
                record.groups.append(GroupRecord(grp, ModuleOperator(grp, data, sparse=False),
                                                 [SolvedPart(name, np.arange(grp.n_modules))]))
                continue
            rec, st, it, rr = _solve_group(grp, data, XT, FT, DFT, ctx, first)
            mod_it[grp.ids] = it
            mod_res[grp.ids] = rr
            record.groups.append(rec)
            bad = np.flatnonzero(st) if st.any() else ()  # CONVERGED is 0
            if len(bad):
                res.status = max(res.status, SolveStatus(int(st.max())))
                res.failed_modules.extend(int(grp.ids[m]) for m in bad)
                if throw:
                    m = bad[0]
                    raise ConvergenceError(grp.ids[m], grp.nodes[m], grp.size, rr[m], it[m],
                                           st[m], res)
        res.steps.append(record)
    finite_rows = np.isfinite(XT).all(axis=1)  # (an overflow or a NaN weight shows here)
    if not finite_rows.all():
        _mark_nonfinite(res, finite_rows, throw)
    if compute_cond:
        res.module_cond = _module_cond(res)
    return res


def _module_cond(res):
    cond = np.zeros(res.graph.schedule.n_modules)
    B = res.XT.shape[1]
    for step in res.steps:
        for g in step.groups:
            q, n = g.size, g.group.n_modules
            D = res.DFT[g.start:g.stop].reshape(n, q, B).transpose(0, 2, 1)  # (n, B, q)
            AT = g.op.blocks.transpose(0, 2, 1)[:, None]  # (n, 1, q, q)
            J = np.eye(q) - AT * D[:, :, None, :]
            cond[g.ids] = np.linalg.cond(J).max(axis=1)
    return cond


# ----------------------------------------------------------------------------
# backward
# ----------------------------------------------------------------------------


def _adjoint_newton(rec, part, RHS, D, X, opts, act):
    """J^T u = rhs with the forward's LU factors; NO_DECREASE for a module whose U is not
    finite (a singular J, as the factor path and the generic path report it)."""
    U = solve_adjoint(part.kept, RHS)
    bad = ~np.isfinite(U.reshape(U.shape[0], -1)).all(axis=1)
    return U, np.where(bad, SolveStatus.NO_DECREASE, SolveStatus.CONVERGED).astype(np.int8)


def _adjoint_krylov(rec, part, RHS, D, X, opts, act):
    U, st, _ = krylov_adjoint(xnp, part.kept.A, part.kept.dfx, RHS, atol=opts.atol,
                              rtol=opts.rtol)
    return U, st.max(axis=1) if st.size else np.zeros(part.idx.size, np.int8)


def _adjoint_fixed_point(rec, part, RHS, D, X, opts, act):
    """``u = f'(x) (v_ext + A_SS u)`` by iteration; when it does not converge
    (a module that is contractive at the solution only for the forward),
    J^T u = rhs is solved directly: by Krylov for sparse-stored modules, by
    factoring J at x* otherwise."""
    idx, op = part.idx, rec.op
    # the numba kernel for every group (it needs f'(x), not f; see _stage_fixed_point)
    U, ok = solve_fixed_point_adjoint(op.edges, D, RHS, atol=opts.atol, rtol=opts.rtol,
                                      max_iter=opts.fp_max_iter, mods=idx)
    if ok:
        return U, np.zeros(idx.size, np.int8)
    if op.sparse:
        kept = KrylovOperator(AT=lambda V: op.AT(V, idx), A=lambda V: op.A(V, idx), dfx=D)
        return _adjoint_krylov(rec, SolvedPart("krylov", idx, kept), RHS, D, X, opts, act)
    factor, singular = factor_jacobian(op.blocks[idx], X, activation=act.name)
    st = np.where(singular, SolveStatus.NO_DECREASE, SolveStatus.CONVERGED).astype(np.int8)
    return solve_adjoint(factor, RHS), st


#: stage name -> its adjoint: (U, status per module) of J^T u = f'(x) * v_ext.
ADJOINTS = {
    "newton": _adjoint_newton,
    "krylov": _adjoint_krylov,
    "fixed_point": _adjoint_fixed_point,
    "fixed_point_trial": _adjoint_fixed_point,
}


@with_threads  # threads=: refimpl.threads.threads_policy
def backward(net, fwd, G, *, throw=True, backend=None, grad_K="dense"):
    """Gradients by the adjoint of Eq. (4) and Eq. (6)-(8) (Alg. 1 lines 25-38).

    .. math::
        V = G W_m + (f'(X) \\odot V) A^T,\\quad U = f'(X) \\odot V \\quad (4)

        \\partial L/\\partial K_{ji} = f(x_j) u_i\\ (j \\ne i),\\quad
        \\partial L/\\partial K_{ii} = u_i \\quad (6)

        \\partial L/\\partial W_m = G^T f(X) \\quad (7),\\qquad
        \\partial L/\\partial W_1 = U^T X^0 \\quad (8)

    V is the gradient with respect to the *activated* values f(X) (the
    paper's "gradient of node", see proofs/errata.md).  Modules are solved
    in reverse level order with ``J^T u = f'(x) * v_ext`` by the adjoint of
    the solver that solved them (:data:`ADJOINTS`: the forward's LU factors,
    its Krylov operator transposed, or the adjoint fixed point).  Gradients
    are summed over the batch.

    Parameters
    ----------
    net : NMNetwork
    fwd : ForwardResult
    G : (B, n_out) array
        dL/dZ.
    throw : bool
        Raise :class:`ConvergenceError` naming the module when an adjoint
        solve fails; with False the gradients carry ``status`` and
        ``failed_modules`` and are computed from the unconverged adjoints.
    backend : optional
        Ignored: the backend is the forward's (a result of the generic path
        is passed on to :func:`refimpl.xp.backward`).
    grad_K : {"dense", "factors"}
        ``"dense"`` (default): ``.K`` is the dense (p, p) dL/dK of Eq. (6).
        ``"factors"``: ``.K`` is None and ``.K_factors = (F, U)`` (each (p, B),
        node order) with dL/dK = ``F @ U.T``, diagonal ``U.sum(axis=1)``: the
        rank-B factors of Eq. (6), for a caller that forms dL/dK in row blocks
        (the trainer's update pass) instead of as a 72 MB array at p = 3000.
        Only on the NumPy path.
    """
    if grad_K not in ("dense", "factors"):
        raise ValueError(f"grad_K: expected 'dense' or 'factors', got {grad_K!r}")
    if not isinstance(fwd, ForwardResult):
        if grad_K != "dense":
            raise ValueError("grad_K: 'factors' is only available on the NumPy path")
        return GENERIC["backward"](net, fwd, G, throw=throw)
    G = np.asarray(G, dtype=np.float64)
    B = fwd.X0.shape[0]
    if G.shape != (B, net.n_out):
        raise ValueError(f"G: expected shape ({B}, {net.n_out}), got {G.shape}")
    if not np.isfinite(G).all():
        raise ValueError("G: contains NaN or inf")
    opts = fwd.options
    act = get_activation(net.activation)
    graph = fwd.graph
    S = graph.schedule
    order, position = S.order, S.position
    data = graph.A.data
    VT = net.Wm[:, order].T @ G.T  # (G Wm)^T in positions
    UT = np.zeros_like(VT)
    DFT = fwd.DFT
    status, failed = SolveStatus.CONVERGED, []

    def fail(module, nodes, size, iterations, st):
        nonlocal status
        status = max(status, SolveStatus(int(st)))
        failed.append(int(module))
        if throw:
            raise ConvergenceError(module, nodes, size, np.nan, iterations, st, fwd)

    if fwd.mode == "whole":
        Ao = graph.A[order][:, order].tocsr()
        UT_, VT_, st = solve_whole_adjoint(Ao, DFT, VT, atol=opts.atol, rtol=opts.rtol,
                                           max_iter=opts.fp_max_iter)
        if not fwd.converged:  # the forward did not solve it: no valid adjoint either
            st = max(int(st), int(fwd.status), int(SolveStatus.NO_DECREASE))
        if st != SolveStatus.CONVERGED:  # one system: every module, named -1 (as forward)
            status = max(status, SolveStatus(int(st)))
            failed.extend(range(S.n_modules))
            if throw:
                raise ConvergenceError(-1, order, S.p, np.nan, opts.fp_max_iter, st, fwd)
        UT, VT = UT_, VT_
    else:
        out_w = data[S.out_edge]
        recs = fwd.steps
        failed_fwd = set(int(m) for m in fwd.failed_modules)
        for k0, _, bounds in reversed(_segments(recs, S.out_ptr, S.out_dst)):
            if bounds is not None:  # singleton steps: Eq. (4) in one kernel call
                singleton_steps_adjoint(S.out_ptr, S.out_dst, out_w, UT, VT, DFT, bounds)
                continue
            rs = recs[k0]
            level_product(S.out_ptr, S.out_dst, out_w, UT, VT, rs.start, rs.stop)  # Eq. (4)
            a, b = rs.start, rs.singleton_stop
            UT[a:b] = DFT[a:b] * VT[a:b]
            for rec in rs.groups:
                n, q = rec.group.n_modules, rec.size
                g0, g1 = rec.start, rec.stop
                D = DFT[g0:g1].reshape(n, q, B)
                RHS = D * VT[g0:g1].reshape(n, q, B)  # f'(x) * v_ext
                Uv = UT[g0:g1].reshape(n, q, B)
                X = fwd.XT[g0:g1].reshape(n, q, B)
                for part in rec.parts:
                    i = part.idx
                    if i.size == n and part.method != "krylov":  # the whole group: no copies
                        args = (RHS, D, X)
                    else:
                        args = (np.ascontiguousarray(RHS[i]), np.ascontiguousarray(D[i]),
                                np.ascontiguousarray(X[i]))
                    U, st = ADJOINTS[part.method](rec, part, *args, opts, act)
                    if failed_fwd:  # a module the forward did not solve: no valid adjoint
                        for j in range(i.size):
                            if st[j] == 0 and int(rec.ids[i[j]]) in failed_fwd:
                                st[j] = max(int(fwd.status), SolveStatus.NO_DECREASE)
                    if i.size == n:
                        Uv[...] = U
                    else:
                        Uv[i] = U
                    for j in np.flatnonzero(st) if st.any() else ():  # CONVERGED is 0
                        m = i[j]
                        fail(rec.ids[m], rec.group.nodes[m], q, 0, st[j])
                # Complete V on the module: V_S = v_ext + A_SS U_S.
                VT[g0:g1] += rec.op.A(Uv).reshape(n * q, B)
    # Back to node order (rows = nodes).
    Un = UT[position]          # (p, B) = U^T
    Fn = fwd.FT[position]      # (p, B) = F^T
    factors, dK = None, None
    if grad_K == "factors":
        factors = (np.ascontiguousarray(Fn), Un)  # Eq. (6) as F @ U.T, diagonal U.sum(1)
    else:
        dK = Fn @ Un.T             # Eq. (6): dL/dK[j, i] = sum_b f(x_j) u_i
        np.fill_diagonal(dK, Un.sum(axis=1))  # Eq. (6): H_i has 1 at i (bias)
    dWm = G.T @ Fn.T           # Eq. (7)
    dW1 = Un @ fwd.X0          # Eq. (8)
    return Gradients(K=dK, W1=dW1, Wm=dWm, U=Un.T, V=VT[position].T, status=status,
                     failed_modules=failed, K_factors=factors)
