"""The fixed-point iteration of the module equations (Eq. 3) and of their adjoint (Eq. 4).

``x <- c + A_SS^T f(x)`` on a group of same-size modules at once, and
``u <- rhs + f'(x) * (A_SS u)`` for the adjoint.  The products with A_SS
come in as functions, so a group stored as dense (n, q, q) blocks and a
large module stored as a sparse matrix are iterated by the same code.

The same iterations also run as numba kernels (:func:`fixed_point_kernel`,
:func:`fixed_point_adjoint_kernel`): one call per group (the forward's
fixed-point groups of a level, of different sizes, in one call:
:func:`solve_fixed_point_rows`), looping over each
module's edges (its nonzero block entries) only, tanh by :func:`tanh_packed`
(row loops that LLVM packs into SIMD code; the Newton kernel's libm-exp
tanh is scalar); :mod:`refimpl.propagate` uses them for the groups stored
as dense blocks.  The NumPy functions stay the reference
(``tests/test_fixed_point.py`` checks equal statuses, iteration counts and
iterates) and serve the sparse-stored (Krylov-size) modules.
"""
from __future__ import annotations

from dataclasses import dataclass

import array_api_compat
import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

from ..activations import _tanh_flat, _tanh_packed, tanh_packed  # noqa: F401 (re-exported)
from .newton import _act, _code
from .result import CONVERGED, MAX_ITERATIONS, NO_DECREASE, NONFINITE, GroupSolve, SolveStatus

__all__ = ["fixed_point_group", "fixed_point_adjoint_group", "module_edges",
           "solve_fixed_point", "solve_fixed_point_rows", "solve_fixed_point_adjoint",
           "fixed_point_kernel",
           "fixed_point_adjoint_kernel", "FixedPointSolve"]

#: A module stops (NO_DECREASE) when, after this many iterations, its step grows.
STALL_AFTER = 10


@dataclass
class FixedPointSolve(GroupSolve):
    """A :class:`GroupSolve` of the fixed-point kernel (Eq. (3) on a group of
    modules, DESIGN.md sec. 3), with ``f`` = f(x)
    and ``df`` = f'(x) (each (n, q, B)) at the returned iterate ``x``: the
    kernel has them from its last sweep, so the forward need not evaluate
    the activation again on these modules."""

    f: np.ndarray | None = None
    df: np.ndarray | None = None


def fixed_point_group(AT, C, f, *, atol, rtol, max_iter, give_up=False):
    """Solve Eq. (3) on a same-size group by the fixed-point iteration
    ``x <- c + A_SS^T f(x)``, from x = c.

    Converges when the module map is a contraction (``||A_SS|| max|f'| < 1``
    suffices).  The stop test of a module is over its whole batch: ``max |x_new - x|
    <= atol + rtol max |x|``, both maxima over the module's nodes and all B samples, so a
    sample of large values loosens the test for the others in its batch (Newton and
    Krylov test each sample on its own).  A module stops with NO_DECREASE when, after
    :data:`STALL_AFTER` iterations, its step grows; with ``give_up=True``
    also when the observed rate ``step_k / step_{k-1}`` predicts that the
    tolerance will not be met within ``max_iter`` iterations.

    Parameters
    ----------
    AT : callable
        ``AT(V, idx)``: ``A_SS^T V`` for the modules ``idx`` (V is
        (len(idx), q, B)).
    C : (n, q, B) array
        The constant term c.
    f : callable
        The activation.

    Returns
    -------
    GroupSolve
        ``residual`` is ``||x_new - x||_inf``, i.e. ``||r(x)||_inf`` of
        Eq. (3) at the returned x; ``kept`` is None.
    """
    X = C.copy()
    n_mod = C.shape[0]
    iters = np.zeros(n_mod, dtype=np.int32)
    status = np.full(n_mod, SolveStatus.MAX_ITERATIONS, dtype=np.int8)
    resid = np.full(n_mod, np.inf)
    active = np.arange(n_mod)
    prev = np.full(n_mod, np.inf)
    for it in range(max_iter + 1):
        Xa = X[active]
        Xn = C[active] + AT(f(Xa), active)  # Eq. (3)
        R = np.abs(Xn - Xa).reshape(active.size, -1).max(axis=1)
        scale = np.abs(Xa).reshape(active.size, -1).max(axis=1)
        resid[active] = R
        iters[active] = it
        done = R <= atol + rtol * scale
        bad = ~np.isfinite(R)
        X[active] = np.where((done | bad)[:, None, None], Xa, Xn)
        status[active[done]] = SolveStatus.CONVERGED
        status[active[bad]] = SolveStatus.NONFINITE
        stalled = (~done) & (~bad) & (it >= STALL_AFTER) & (R >= prev[active])
        if give_up and it >= STALL_AFTER:
            with np.errstate(divide="ignore", invalid="ignore"):
                rate = R / prev[active]
                need = np.log((atol + rtol * scale) / R) / np.log(rate)
            stalled |= (~done) & (~bad) & (it + need > max_iter)
        status[active[stalled]] = SolveStatus.NO_DECREASE
        prev[active] = R
        active = active[~(done | bad | stalled)]
        if active.size == 0:
            break
    return GroupSolve(X, status, iters, resid)


def fixed_point_adjoint_group(A, DF, RHS, *, atol, rtol, max_iter):
    """Solve the module adjoint ``u = rhs + f'(x) * (A_SS u)`` by iteration,
    i.e. ``J^T u = f'(x) * v_ext`` with ``RHS = f'(x) * v_ext`` (Eq. 4).

    ``A(U)`` is ``A_SS U`` on (n, q, B) arrays of any array-API namespace
    (the generic path's :func:`refimpl.xp.solvers.fixed_point_adjoint` runs
    this iteration too).  Returns ``(U, converged)``.
    """
    xp = array_api_compat.array_namespace(RHS)
    U = xp.asarray(RHS, copy=True)
    for _ in range(max_iter):
        Un = RHS + DF * A(U)  # Eq. (4) restricted to S
        delta = float(xp.max(xp.abs(Un - U))) if U.size else 0.0
        umax = float(xp.max(xp.abs(Un))) if U.size else 0.0
        U = Un
        if not (delta < np.inf and umax < np.inf):  # NaN or overflow: failed
            return U, False
        if delta <= atol + rtol * umax:
            return U, True
    return U, False


# ----------------------------------------------------------------------------
# numba kernels: the same iterations, one call per group
# ----------------------------------------------------------------------------


def module_edges(blocks):
    """The nonzero entries of a block stack as per-module edge lists: the
    within-module edges ``A_SS`` that the kernels' sweeps of Eq. (3) (and of
    its adjoint Eq. (4)) read (DESIGN.md sec. 3).

    Parameters
    ----------
    blocks : (n, q, q) array
        ``blocks[m, a, c]`` = weight of edge a -> c of module m.

    Returns
    -------
    ptr : (n + 1,) int64, src, dst : (n_edges,) int64, w : (n_edges,) float64
        Module m's edges are ``ptr[m]:ptr[m + 1]``, edge ``e`` going
        ``src[e] -> dst[e]`` (local node indices) with weight ``w[e]``,
        sorted by target within a module (the kernel's output row stays in
        cache).
    """
    blocks = np.asarray(blocks, dtype=np.float64)
    if blocks.ndim != 3 or blocks.shape[1] != blocks.shape[2]:
        raise ValueError(f"blocks: expected shape (n, q, q), got {blocks.shape}")
    m, c, a = np.nonzero(blocks.transpose(0, 2, 1))  # by module, then target node
    ptr = np.zeros(blocks.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(m, minlength=blocks.shape[0]), out=ptr[1:])
    return ptr, a.astype(np.int64), c.astype(np.int64), blocks[m, a, c]



#: The bits of a float64 but its sign: ``_bits(x) & _ABS`` is |x|'s bit pattern.
_ABS = 0x7FFFFFFFFFFFFFFF
#: The bit pattern of +inf: ``_bits(x) & _ABS >= _INF`` iff x is inf or NaN.
_INF = 0x7FF0000000000000


@intrinsic
def _bits(typingctx, x):
    """The IEEE-754 bit pattern of a float64 as an int64 (a bitcast).

    For the kernels' max-reductions: on non-negative doubles (``& _ABS``) the
    bit patterns are ordered as the values, and every NaN's lies above +inf's,
    so an integer max over them is the exact float max with NaN propagated,
    and LLVM packs it into SIMD code (a float max with Python's NaN rules
    stays a scalar loop)."""
    if x != types.float64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def _from_bits(typingctx, b):
    """The float64 whose IEEE-754 bit pattern is the int64 ``b`` (the inverse of :func:`_bits`)."""
    if b != types.int64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@numba.njit(cache=True, inline="always", error_model="numpy")
def _act_row(code, xr, fr):
    """fr[s] = f(xr[s]) over a contiguous row (Eq. 3's f); tanh by
    :func:`tanh_packed` in a loop of its own, which LLVM packs."""
    if code == 0:
        _tanh_flat(xr, fr)
    else:
        for s in range(xr.shape[0]):
            fr[s] = _act(code, xr[s])[0]


@numba.njit(cache=True, inline="always")
def _check_local(src, dst, e0, e1, q):
    """Refuse a module whose edges ``e0:e1`` leave its q nodes (the kernels index
    its rows with the local indices, and numba does not check indices)."""
    for e in range(e0, e1):
        if src[e] < 0 or src[e] >= q or dst[e] < 0 or dst[e] >= q:
            raise ValueError("edges: a module's edge leaves its nodes (local index >= size)")


@numba.njit(cache=True, error_model="numpy")
def fixed_point_kernel(ptr, src, dst, w, mods, rows, sizes, max_iter, C, X, F, DF, code, atol,
                       rtol, give_up, write_failed, iters, resid, status):
    """The iteration of :func:`fixed_point_group` (Eq. 3) on modules given by
    their edge lists (dense-block or sparse-stored groups alike), each at its
    own rows of node-major (rows, B) arrays: the modules of one group, or
    those of several groups of different sizes (one call per level, see
    :func:`solve_fixed_point_rows`).

    Module k has ``sizes[k]`` nodes at rows ``rows[k] .. rows[k] + sizes[k] - 1``
    of ``C`` (the constant term c, (n_rows, B)), its edges are
    ``ptr[mods[k]]:ptr[mods[k] + 1]`` of (src, dst, w) with local node
    indices, sorted by target (:func:`module_edges`; zero block entries are
    never touched; unsorted edges raise ValueError), and it may take
    ``max_iter[k]`` steps.  Each module iterates ``x <- c + A_SS^T f(x)``
    from x = c with the same stop test, statuses, stall rule and rate-based
    give-up as :func:`fixed_point_group`, f evaluated row by row by
    :func:`_act_row` (tanh by :func:`tanh_packed`, in SIMD code).  One
    iteration is one sweep over the target nodes: node c's new value
    ``c_c + sum_a w_ac f(x_a)`` is summed in place (the edges into c are
    contiguous), then its step ``|x_c^new - x_c|`` (max-reductions over the
    bit patterns, :func:`_bits`: exact, NaN-propagating and packed into SIMD
    code, against 0.9 ns per value for the former float max) and, in a loop
    of its own that LLVM packs, ``f(x_c^new)`` are taken while the row is in
    cache (against the former fused loop with the libm-exp tanh: NM forward
    of ``refimpl bench propagation --regime deep`` 72 ms against 95 ms).
    f(x) and f(x^new) live in two buffers, so f at the returned iterate is
    never recomputed; on a step that the last two steps' rate predicts to
    be the last, f(x^new) is left out of the sweep (and taken in a pass of
    its own if the module goes on after all), so a module that stops after
    ``it`` steps usually evaluates f ``it + 1`` times (at x_0 .. x_it), the
    least the iteration needs.
    Outputs (preallocated): X, F = f(X), DF = f'(X) at the modules' rows
    (other rows are not touched), iters (n_k,) int32, resid (n_k,), status
    (n_k,) int8.  X may be C itself (module k's rows of C are read only
    while module k iterates); with ``write_failed=False`` the rows of X, F,
    DF of a module that does not converge are left as they are (C's values
    stay there for the next solver when X is C).
    """
    n_k = mods.shape[0]
    B = C.shape[1]
    q_max = 0
    for k in range(n_k):
        q_max = max(q_max, sizes[k])
    x = np.empty((q_max, B))  # rows 0 .. q - 1 hold module k's iterate
    fx = np.empty((q_max, B))
    xn = np.empty((q_max, B))
    fxn = np.empty((q_max, B))
    for k in range(n_k):
        m = mods[k]
        r0, q = rows[k], sizes[k]
        e0, e1 = ptr[m], ptr[m + 1]
        _check_local(src, dst, e0, e1, q)
        for a in range(q):
            for s in range(B):
                x[a, s] = C[r0 + a, s]
            _act_row(code, x[a], fx[a])
        st = MAX_ITERATIONS
        prev = np.inf
        prev2 = np.inf
        tol_prev = 0.0
        R = np.inf
        it = 0
        for it in range(max_iter[k] + 1):
            # Is this step predicted to be the last (the last two steps' rate
            # brings it within the tolerance)?  Then f at the new iterate is
            # left out of the sweep and taken only if the module goes on: f
            # at the accepted iterate is not computed at all.
            last = prev < prev2 and prev * (prev / prev2) <= tol_prev
            Rb = 0  # the bits of max |x_new - x| and of max |x| (see _bits)
            Sb = 0
            e = e0
            for c in range(q):
                xr = xn[c]
                cr = C[r0 + c]
                if e < e1 and dst[e] == c:  # Eq. (3): x_c = c_c + sum_a w_ac f(x_a)
                    wa = w[e]
                    fa = fx[src[e]]
                    for s in range(B):  # (the first edge with c: no separate copy of c)
                        xr[s] = cr[s] + wa * fa[s]
                    e += 1
                else:
                    for s in range(B):
                        xr[s] = cr[s]
                while e < e1 and dst[e] == c:
                    wa = w[e]
                    fa = fx[src[e]]
                    for s in range(B):
                        xr[s] += wa * fa[s]
                    e += 1
                xo = x[c]
                for s in range(B):  # the step: integer max over the bits (packed; NaN wins)
                    Rb = max(Rb, _bits(xr[s] - xo[s]) & _ABS)
                    Sb = max(Sb, _bits(xo[s]) & _ABS)
                if not last:  # f at the new iterate, while the row is in cache
                    _act_row(code, xr, fxn[c])
            if e != e1:
                raise ValueError("edges: a module's edges must be sorted by target node")
            R = _from_bits(Rb)  # exactly max |x_new - x|: NaN if some step is NaN
            scale = _from_bits(Sb)
            tol = atol + rtol * scale
            if R <= tol:
                st = CONVERGED
                break
            if not np.isfinite(R):
                st = NONFINITE
                break
            if last:  # mispredicted: f at the new iterate after all
                for a in range(q):
                    _act_row(code, xn[a], fxn[a])
            x, xn = xn, x  # x takes the new iterate, fx its f (no copies)
            fx, fxn = fxn, fx
            stalled = it >= STALL_AFTER and R >= prev
            if give_up and it >= STALL_AFTER and not stalled:
                # the tolerance would need log(tol / R) / log(rate) more steps
                rate = R / prev
                if tol <= 0.0:
                    num = -np.inf
                else:
                    num = np.log(tol / R)
                den = np.log(rate)
                if den != 0.0 and it + num / den > max_iter[k]:
                    stalled = True
            if stalled:
                st = NO_DECREASE
                break
            prev2 = prev
            prev = R
            tol_prev = tol
        iters[k] = it
        resid[k] = R
        status[k] = st
        if st != CONVERGED and not write_failed:
            continue
        for a in range(q):
            for s in range(B):
                X[r0 + a, s] = x[a, s]
                F[r0 + a, s] = fx[a, s]
                if code == 0:  # tanh' = 1 - tanh^2
                    DF[r0 + a, s] = 1.0 - fx[a, s] * fx[a, s]
                else:
                    DF[r0 + a, s] = _act(code, x[a, s])[1]


@numba.njit(cache=True, error_model="numpy")
def fixed_point_adjoint_kernel(ptr, src, dst, w, mods, DF, RHS, atol, rtol, max_iter, U):
    """The iteration of :func:`fixed_point_adjoint_group` (Eq. 4 on the
    modules), ``u <- rhs + f'(x) * (A_SS u)``, all modules in lockstep with
    the group-wide stop test of the NumPy version.  Edge lists as in
    :func:`fixed_point_kernel`; DF, RHS (n_k, q, B); output U (n_k, q, B).
    Returns True when converged within ``max_iter`` steps.
    """
    n_k, q, B = RHS.shape
    for k in range(n_k):
        _check_local(src, dst, ptr[mods[k]], ptr[mods[k] + 1], q)
    Ua = np.empty_like(RHS)  # the iterates alternate between U and Ua (no copies)
    for k in range(n_k):
        for a in range(q):
            for s in range(B):
                U[k, a, s] = RHS[k, a, s]
    u, un = U, Ua
    ok = False
    for _ in range(max_iter):
        db = 0  # the bits of max |u_new - u| and of max |u_new| (see _bits)
        ub = 0
        for k in range(n_k):
            m = mods[k]
            for a in range(q):
                for s in range(B):
                    un[k, a, s] = 0.0
            for e in range(ptr[m], ptr[m + 1]):  # (A_SS u)_a += w_ac u_c
                wa = w[e]
                ur = u[k, dst[e]]
                unr = un[k, src[e]]
                for s in range(B):
                    unr[s] += wa * ur[s]
            for a in range(q):
                ur, unr, dr, rr = u[k, a], un[k, a], DF[k, a], RHS[k, a]
                for s in range(B):
                    v = rr[s] + dr[s] * unr[s]
                    unr[s] = v
                    db = max(db, _bits(v - ur[s]) & _ABS)  # integer max: packed, NaN wins
                    ub = max(ub, _bits(v) & _ABS)
        u, un = un, u
        if db >= _INF or ub >= _INF:  # some step or iterate NaN or inf: failed (inf
            break                     # passed the test below once: inf <= atol + rtol * inf)
        if _from_bits(db) <= atol + rtol * _from_bits(ub):
            ok = True
            break
    if u is not U:  # the last iterate is in the scratch buffer
        U[:] = u
    return ok


def _edges_and_mods(edges, n, mods):
    ptr, src, dst, w = edges
    mods = np.arange(n, dtype=np.int64) if mods is None else np.asarray(mods, dtype=np.int64)
    if mods.shape != (n,):
        raise ValueError(f"mods: expected shape ({n},), got {mods.shape}")
    if n and (mods.min() < 0 or mods.max() >= ptr.size - 1):
        raise ValueError(f"mods: module indices must lie in [0, {ptr.size - 1})")
    return ptr, src, dst, w, mods


def _outputs(out, C, new):
    """The x, f(x), f'(x) arrays of a fixed-point solve (Eq. 3): ``out`` checked to be
    three C-contiguous float64 arrays shaped like C, or three ``new(C)``."""
    if out is None:
        return new(C), new(C), new(C)
    for name, a in zip(("X", "F", "DF"), out):
        if (not isinstance(a, np.ndarray) or a.shape != C.shape or a.dtype != np.float64
                or not a.flags.c_contiguous):
            raise ValueError(f"out: {name} must be a C-contiguous float64 array of shape "
                             f"{C.shape}")
    return tuple(out)


def solve_fixed_point(edges, C, *, activation="tanh", atol=1e-10, rtol=1e-10, max_iter=1000,
                      give_up=False, mods=None, out=None, write_failed=True):
    """Solve Eq. (3) on a group of modules with :func:`fixed_point_kernel`
    (their edge lists: dense-block and sparse-stored groups alike).

    The numba counterpart of :func:`fixed_point_group` (the NumPy reference:
    same iterates, stop test, statuses and iteration counts).

    Parameters
    ----------
    edges : tuple
        ``(ptr, src, dst, w)`` from :func:`module_edges` (or built from the
        graph's edge list).
    C : (n_k, q, B) array
        The constant term c of the modules ``mods``.
    activation : str
        One of :data:`refimpl.solvers.newton.ACT_CODES`.
    atol, rtol, max_iter, give_up
        As in :func:`fixed_point_group`.
    mods : (n_k,) int array, optional
        The module of each row of C (default ``arange(n_k)``).
    out : tuple of three (n_k, q, B) arrays, optional
        C-contiguous float64 arrays for x, f(x), f'(x) (default: new
        arrays); the first may be C itself (solved in place).
    write_failed : bool
        With False, the ``out`` rows of the modules that do not converge
        are not written (in place: they keep C, for the next solver).

    Returns
    -------
    FixedPointSolve
        A :class:`GroupSolve` that also carries f and f' at the returned x.
    """
    C = np.ascontiguousarray(C, dtype=np.float64)
    if C.ndim != 3:
        raise ValueError(f"C: expected shape (n, q, B), got {C.shape}")
    if int(max_iter) < 0:
        raise ValueError(f"max_iter: must be >= 0, got {max_iter}")
    n, q, B = C.shape
    X, F, DF = _outputs(out, C, np.empty_like)
    flat = lambda a: a.reshape(n * q, B)  # noqa: E731 (views: module k at rows k q ..)
    sol = solve_fixed_point_rows(edges, flat(C), np.arange(n) * q, np.full(n, q),
                                 activation=activation, atol=atol, rtol=rtol,
                                 max_iter=int(max_iter), give_up=give_up, mods=mods,
                                 out=(flat(X), flat(F), flat(DF)), write_failed=write_failed)
    return FixedPointSolve(X, sol.status, sol.iterations, sol.residual, f=F, df=DF)


def solve_fixed_point_rows(edges, C, rows, sizes, *, activation="tanh", atol=1e-10, rtol=1e-10,
                           max_iter=1000, give_up=False, mods=None, out=None, write_failed=True):
    """Solve Eq. (3) on modules of any sizes, each at its own rows of
    node-major (n_rows, B) arrays, in one :func:`fixed_point_kernel` call:
    :func:`solve_fixed_point` for the modules of several groups at once (the
    forward's fixed-point groups of a level, :func:`refimpl.propagate.forward`).

    Parameters
    ----------
    edges : tuple
        ``(ptr, src, dst, w)`` as in :func:`solve_fixed_point` (local node
        indices within each module, sorted by target).
    C : (n_rows, B) array
        The constant term c; module k's is rows ``rows[k] .. rows[k] + sizes[k] - 1``.
    rows, sizes : (n_k,) int arrays
        Each module's first row and its number of nodes (the modules' rows
        must not overlap: each is solved in place independently).
    max_iter : int or (n_k,) int array
        Steps allowed, for all modules or per module.
    activation, atol, rtol, give_up, mods, write_failed
        As in :func:`solve_fixed_point`.
    out : tuple of three (n_rows, B) arrays, optional
        For x, f(x), f'(x) (default: new arrays, zero outside the modules'
        rows); the first may be C itself.  Only the modules' rows are written.

    Returns
    -------
    FixedPointSolve
        x, f, f' as the (n_rows, B) ``out`` arrays; status, iterations,
        residual per module.
    """
    C = np.ascontiguousarray(C, dtype=np.float64)
    if C.ndim != 2:
        raise ValueError(f"C: expected shape (n_rows, B), got {C.shape}")
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    sizes = np.ascontiguousarray(sizes, dtype=np.int64)
    n = rows.shape[0]
    if rows.shape != (n,) or sizes.shape != (n,):
        raise ValueError(f"rows, sizes: expected equal (n_k,) shapes, got {rows.shape}, "
                         f"{sizes.shape}")
    if n and (rows.min() < 0 or sizes.min() < 1 or (rows + sizes).max() > C.shape[0]):
        raise ValueError(f"rows, sizes: the modules' rows must lie in [0, {C.shape[0]})")
    by_row = np.argsort(rows, kind="stable")
    if n > 1 and np.any(rows[by_row][1:] < (rows + sizes)[by_row][:-1]):
        raise ValueError("rows, sizes: the modules' rows overlap")
    if np.ndim(max_iter) == 0:
        budget = np.full(n, int(max_iter), dtype=np.int64)
    else:
        budget = np.ascontiguousarray(max_iter, dtype=np.int64)
    if budget.shape != (n,):
        raise ValueError(f"max_iter: expected an int or shape ({n},), got {budget.shape}")
    if n and budget.min() < 0:
        raise ValueError(f"max_iter: must be >= 0, got {max_iter}")
    ptr, src, dst, w, mods = _edges_and_mods(edges, n, mods)
    X, F, DF = _outputs(out, C, np.zeros_like)
    iters = np.zeros(n, dtype=np.int32)
    resid = np.zeros(n)
    status = np.zeros(n, dtype=np.int8)
    fixed_point_kernel(ptr, src, dst, w, mods, rows, sizes, budget, C, X, F, DF,
                       _code(activation), float(atol), float(rtol), bool(give_up),
                       bool(write_failed), iters, resid, status)
    return FixedPointSolve(X, status, iters, resid, f=F, df=DF)


def solve_fixed_point_adjoint(edges, DF, RHS, *, atol=1e-10, rtol=1e-10, max_iter=1000,
                              mods=None):
    """Solve the module adjoint of Eq. (4), ``u = rhs + f'(x) * (A_SS u)``,
    with :func:`fixed_point_adjoint_kernel` (the numba counterpart of
    :func:`fixed_point_adjoint_group`).  Returns ``(U, converged)``."""
    RHS = np.ascontiguousarray(RHS, dtype=np.float64)
    DF = np.ascontiguousarray(DF, dtype=np.float64)
    if RHS.ndim != 3 or DF.shape != RHS.shape:
        raise ValueError(f"DF, RHS: expected equal (n, q, B) shapes, got {DF.shape}, {RHS.shape}")
    ptr, src, dst, w, mods = _edges_and_mods(edges, RHS.shape[0], mods)
    U = np.empty_like(RHS)
    ok = fixed_point_adjoint_kernel(ptr, src, dst, w, mods, DF, RHS, float(atol), float(rtol),
                                    int(max_iter), U)
    return U, bool(ok)
