"""CUDA kernels for many tiny modules (q <= MAX_Q) on CuPy: one thread per (module, sample).

The generic path solves a group with batched ``xp.linalg.solve`` calls and
masks (:mod:`refimpl.xp.solvers`), several kernel launches and a host
synchronization per Newton step.  For the tiny modules that dominate pruned
networks (2..8 nodes) that overhead is most of the cost; here each CUDA
thread runs the whole module solve of DESIGN.md section 3 for one (module,
sample) pair in registers: damped Newton from x = c (backtracking on
``||r||_2``, Armijo 1e-4, at most 30 halvings, stop at ``||r||_inf <= atol +
rtol ||x||_inf``), then natural-parameter continuation (s = 1/n .. 1, n = 4,
16, 64) for the pairs it does not solve, as
:func:`refimpl.solvers.newton.newton_group` does on the CPU.  The adjoint
kernel factors J at the solution and solves ``J^T u = rhs`` (getrs on the
transpose) per thread.

Written with :mod:`numba.cuda`; the tests run the kernels under the CUDA
simulator (``NUMBA_ENABLE_CUDASIM=1``, a separate process, tiny sizes) and
compile them to PTX for sm_80 without a device (:func:`compile_ptx`,
tests/test_cuda_ptx.py; the device functions are inlined, see ``_device``),
and on a GPU CuPy arrays pass to them through ``__cuda_array_interface__``.
"""
from __future__ import annotations

import math

from numba import cuda, float64, int32

from ..solvers.newton import ACT_CODES as NEWTON_ACT_CODES
from ..solvers.newton import act_scalar

#: Largest module size the kernels take (their local arrays are MAX_Q long).
MAX_Q = 8
_MAX_Q2 = MAX_Q * MAX_Q
#: Activation codes (the numba CPU kernels').
ACT_CODES = NEWTON_ACT_CODES
THREADS = 128


def _device(fn):
    """``cuda.jit(device=True)`` whose calls numba inlines into the caller's IR.

    numba's typing of a call to a separately compiled device function asks
    the current device for its compute capability (a driver context), so a
    kernel that calls one cannot be compiled to PTX on a machine without a
    GPU.  Inlined at the Numba-IR level (``inline="always"``, read by numba's
    InlineInlinables pass from the dispatcher's target options; the built-in
    ``numba.cuda`` of numba 0.68 does not forward the keyword, so it is set
    here) no device function is compiled on its own, and
    :func:`numba.cuda.compile_ptx` needs only libNVVM.  The simulator's
    device functions have no target options and run as Python.
    """
    disp = cuda.jit(device=True)(fn)
    options = getattr(disp, "targetoptions", None)
    if options is not None:
        options["inline"] = "always"
    return disp


_act = _device(act_scalar)  # the CPU kernels' f, f' (exp-based tanh)


@_device
def _residual(blocks, m, q, sc, c, x, fx, dfx, r, code):
    """r = x - c - sc A^T f(x) (Eq. 3 on module m); returns the three norms."""
    for a in range(q):
        fx[a], dfx[a] = _act(code, x[a])
    r2 = 0.0
    rinf = 0.0
    xinf = 0.0
    for a in range(q):
        acc = 0.0
        for b in range(q):
            acc += blocks[m, b, a] * fx[b]
        v = x[a] - c[a] - sc * acc
        r[a] = v
        r2 += v * v
        # Python's max(rinf, |v|), written out: numba types the builtin max
        # through an overload that it compiles as a separate device function.
        if abs(v) > rinf:
            rinf = abs(v)
        if abs(x[a]) > xinf:
            xinf = abs(x[a])
    return math.sqrt(r2), rinf, xinf


@_device
def _factor(blocks, m, q, sc, dfx, J, pm):
    """J = I - sc A^T diag(f'(x)), LU with partial pivoting in place; False if singular."""
    for a in range(q):
        pm[a] = a
        for b in range(q):
            J[a * MAX_Q + b] = -sc * blocks[m, b, a] * dfx[b]
        J[a * MAX_Q + a] += 1.0
    for k in range(q):
        piv = k
        best = abs(J[k * MAX_Q + k])
        for i in range(k + 1, q):
            if abs(J[i * MAX_Q + k]) > best:
                best = abs(J[i * MAX_Q + k])
                piv = i
        if best == 0.0 or not math.isfinite(best):
            return False
        if piv != k:
            for j in range(q):
                t = J[k * MAX_Q + j]
                J[k * MAX_Q + j] = J[piv * MAX_Q + j]
                J[piv * MAX_Q + j] = t
            t2 = pm[k]
            pm[k] = pm[piv]
            pm[piv] = t2
        for i in range(k + 1, q):
            lik = J[i * MAX_Q + k] / J[k * MAX_Q + k]
            J[i * MAX_Q + k] = lik
            for j in range(k + 1, q):
                J[i * MAX_Q + j] -= lik * J[k * MAX_Q + j]
    return True


@_device
def _solve(J, pm, q, rhs, out):
    """J out = rhs from P J = L U."""
    for i in range(q):
        acc = rhs[pm[i]]
        for j in range(i):
            acc -= J[i * MAX_Q + j] * out[j]
        out[i] = acc
    for i in range(q - 1, -1, -1):
        acc = out[i]
        for j in range(i + 1, q):
            acc -= J[i * MAX_Q + j] * out[j]
        out[i] = acc / J[i * MAX_Q + i]


@_device
def _newton(blocks, m, q, sc, c, x, code, atol, rtol, max_iter, J, pm, fx, dfx, r, dx, xt):
    """Damped Newton on x - c - sc A^T f(x) = 0 from x; (status, iterations, ||r||_inf)."""
    it = 0
    rn2, rinf, xinf = _residual(blocks, m, q, sc, c, x, fx, dfx, r, code)
    while True:
        if not (math.isfinite(rn2) and math.isfinite(xinf)):
            return 3, it, rinf
        ok = _factor(blocks, m, q, sc, dfx, J, pm)
        if rinf <= atol + rtol * xinf:
            return (0 if ok else 2), it, rinf
        if it >= max_iter:
            return 1, it, rinf
        if not ok:
            return 2, it, rinf
        for a in range(q):
            r[a] = -r[a]
        _solve(J, pm, q, r, dx)
        t = 1.0
        accepted = False
        n2 = 0.0
        ninf = 0.0
        nx = 0.0
        for _ in range(31):
            for a in range(q):
                xt[a] = x[a] + t * dx[a]
            n2, ninf, nx = _residual(blocks, m, q, sc, c, xt, fx, dfx, r, code)
            if n2 <= (1.0 - 1e-4 * t) * rn2 or ninf <= atol + rtol * nx:
                accepted = True
                break
            t *= 0.5
        it += 1
        if not accepted:
            _residual(blocks, m, q, sc, c, x, fx, dfx, r, code)
            return 2, it, rinf
        for a in range(q):
            x[a] = xt[a]
        rn2 = n2
        rinf = ninf
        xinf = nx


@cuda.jit
def newton_kernel(blocks, C, X, iters, resid, status, code, atol, rtol, max_iter):
    """Eq. (3) on every (module, sample) pair of a group, one pair per thread.

    blocks (n, q, q) with ``blocks[m, a, b] = A[node a -> node b]``; C, X
    (n, q, B): c and the solution; iters, resid, status (n, B).  Damped
    Newton from x = c, then continuation (s = k/n, n = 4, 16, 64).
    """
    t = cuda.grid(1)
    n, q, B = C.shape
    if t >= n * B:
        return
    m = t // B
    s = t - m * B
    c = cuda.local.array(MAX_Q, dtype=float64)
    x = cuda.local.array(MAX_Q, dtype=float64)
    fx = cuda.local.array(MAX_Q, dtype=float64)
    dfx = cuda.local.array(MAX_Q, dtype=float64)
    r = cuda.local.array(MAX_Q, dtype=float64)
    dx = cuda.local.array(MAX_Q, dtype=float64)
    xt = cuda.local.array(MAX_Q, dtype=float64)
    J = cuda.local.array(_MAX_Q2, dtype=float64)
    pm = cuda.local.array(MAX_Q, dtype=int32)
    for a in range(q):
        c[a] = C[m, a, s]
        x[a] = c[a]
    st, total, rr = _newton(blocks, m, q, 1.0, c, x, code, atol, rtol, max_iter, J, pm, fx,
                            dfx, r, dx, xt)
    n_steps = 4
    while st != 0 and st != 3 and n_steps <= 64:
        for a in range(q):
            x[a] = c[a]
        for k in range(1, n_steps + 1):
            st, k_it, rr = _newton(blocks, m, q, k / n_steps, c, x, code, atol, rtol,
                                   max_iter, J, pm, fx, dfx, r, dx, xt)
            total += k_it
            if st != 0:
                break
        n_steps *= 4
    for a in range(q):
        X[m, a, s] = x[a]
    iters[m, s] = total
    resid[m, s] = rr
    status[m, s] = st


@cuda.jit
def adjoint_kernel(blocks, D, RHS, U):
    """Eq. (4) on every (module, sample) pair: factor J = I - A^T diag(f'(x))
    at the solution and solve ``J^T u = rhs`` (U^T, then L^T, then P)."""
    t = cuda.grid(1)
    n, q, B = RHS.shape
    if t >= n * B:
        return
    m = t // B
    s = t - m * B
    dfx = cuda.local.array(MAX_Q, dtype=float64)
    w = cuda.local.array(MAX_Q, dtype=float64)
    J = cuda.local.array(_MAX_Q2, dtype=float64)
    pm = cuda.local.array(MAX_Q, dtype=int32)
    for a in range(q):
        dfx[a] = D[m, a, s]
    if not _factor(blocks, m, q, 1.0, dfx, J, pm):
        for a in range(q):
            U[m, a, s] = math.nan
        return
    for i in range(q):  # U^T z = rhs
        acc = RHS[m, i, s]
        for j in range(i):
            acc -= J[j * MAX_Q + i] * w[j]
        w[i] = acc / J[i * MAX_Q + i]
    for i in range(q - 1, -1, -1):  # L^T v = z
        acc = w[i]
        for j in range(i + 1, q):
            acc -= J[j * MAX_Q + i] * w[j]
        w[i] = acc
    for i in range(q):  # P u = v
        U[m, pm[i], s] = w[i]


def kernel_signatures():
    """The argument types :func:`solve_stage` and :func:`adjoint_stage` launch
    :func:`newton_kernel` (Eq. 3) and :func:`adjoint_kernel` (Eq. 4) with:
    C-contiguous float64/int32 arrays (CuPy's, via ``__cuda_array_interface__``)
    and Python scalars (int64, float64).  Returns ``{name: (kernel, argtypes)}``."""
    from numba import types

    f3, f2, i2 = types.float64[:, :, ::1], types.float64[:, ::1], types.int32[:, ::1]
    return {
        "newton_kernel": (newton_kernel, (f3, f3, f3, i2, f2, i2, types.int64, types.float64,
                                          types.float64, types.int64)),
        "adjoint_kernel": (adjoint_kernel, (f3, f3, f3, f3)),
    }


def compile_ptx(cc=(8, 0)):
    """PTX of every kernel here (Eq. 3's :func:`newton_kernel`, Eq. 4's
    :func:`adjoint_kernel`) for compute capability ``cc``, without a GPU.

    Compiles each kernel's Python function with :func:`numba.cuda.compile_ptx`
    for :func:`kernel_signatures`' argument types; needs libNVVM (a CUDA
    toolkit or NVIDIA's ``nvidia-nvvm`` wheel) but no driver, because the
    device functions are inlined (see ``_device``).  Returns ``{name: ptx}``.
    """
    try:
        ok = len(cc) == 2 and all(int(v) == v >= 0 for v in cc) and cc[0] >= 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"cc must be a (major, minor) compute capability such as (8, 0), "
                         f"got {cc!r}")
    cc = (int(cc[0]), int(cc[1]))
    out = {}
    for name, (kernel, argtypes) in kernel_signatures().items():
        ptx, _ = cuda.compile_ptx(kernel.py_func, argtypes, cc=cc)
        out[name] = ptx
    return out


def _launch(kernel, n_threads, *args):
    kernel[(n_threads + THREADS - 1) // THREADS, THREADS](*args)


def solve_stage(xp, AT, C, act, atol, rtol, max_iter, active):
    """The stage "newton_cuda" of :mod:`refimpl.xp.solvers`: DESIGN.md
    section 3's module solve by :func:`newton_kernel` (same results as
    :func:`refimpl.xp.solvers.newton_group`, one thread per pair)."""
    import array_api_compat

    dev = array_api_compat.device(C)
    n, q, B = C.shape
    blocks = xp.asarray(xp.matrix_transpose(AT), copy=True)
    Cc = xp.asarray(C, copy=True)
    X = xp.empty((n, q, B), dtype=xp.float64, device=dev)
    iters = xp.zeros((n, B), dtype=xp.int32, device=dev)
    resid = xp.zeros((n, B), dtype=xp.float64, device=dev)
    status = xp.zeros((n, B), dtype=xp.int32, device=dev)
    if n * B:
        _launch(newton_kernel, n * B, blocks, Cc, X, iters, resid, status,
                ACT_CODES[act.name], float(atol), float(rtol), int(max_iter))
    return X, status, iters, resid


def adjoint_stage(xp, AT, D, RHS, atol, rtol):
    """The adjoint of the stage "newton_cuda": Eq. (4) on a module,
    ``J^T u = rhs`` per thread by :func:`adjoint_kernel` (NaN where J is singular)."""
    import array_api_compat

    n, q, B = RHS.shape
    U = xp.zeros((n, q, B), dtype=xp.float64, device=array_api_compat.device(RHS))
    if n * B:
        _launch(adjoint_kernel, n * B, xp.asarray(xp.matrix_transpose(AT), copy=True),
                xp.asarray(D, copy=True), xp.asarray(RHS, copy=True), U)
    return U
