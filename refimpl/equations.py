"""Eq. (3) and Eq. (4) assembled over the schedule's index arrays.

Arrays here are *node-major* and in *schedule positions* (see
:class:`refimpl.graph.Schedule`): row t of ``XT`` (shape (p, B)) holds node
``order[t]`` for every sample, so a level, a module, or a group of same-size
modules is one contiguous block of rows, and every gathered row is a
contiguous vector of B samples.
"""
from __future__ import annotations

import numba
import numpy as np

from .activations import _tanh_flat


@numba.njit(cache=True, nogil=True)
def gather_rows(ptr, idx, w, src, dst, t0, t1):
    """``dst[t] += sum_k w[k] * src[idx[k]]`` for ``k in ptr[t]:ptr[t+1]``, t in [t0, t1).

    With the in-edge lists (``in_ptr, in_src``) and ``src = FT`` this is the
    upstream term of Eq. (3), ``sum_{j not in S} w_ji f(x_j)``; with the
    out-edge lists (``out_ptr, out_dst``) and ``src = UT`` it is the
    downstream term of Eq. (4), ``sum_{i not in S} w_ji u_i``.
    """
    B = dst.shape[1]
    for t in range(t0, t1):
        row = dst[t]
        for k in range(ptr[t], ptr[t + 1]):
            wk = w[k]
            srow = src[idx[k]]
            for s in range(B):
                row[s] += wk * srow[s]


@numba.njit(cache=True, nogil=True)
def input_rows(W1):
    """The rows of ``W1`` with a nonzero (or NaN) entry, ascending: the nodes whose input
    term ``X0 W1^T`` of Eq. (3) is not zero.  The rows of ``np.any(W1 != 0, axis=1)``,
    each row's scan stopping at its first nonzero (one entry per row of a dense W1)."""
    p, n = W1.shape
    out = np.empty(p, dtype=np.int64)
    k = 0
    for j in range(p):
        for i in range(n):
            if W1[j, i] != 0.0:
                out[k] = j
                k += 1
                break
    return out[:k]


#: A level's edge block is multiplied as a dense matrix (BLAS) when it holds
#: at least this many edges and this fraction of its bounding block is filled.
DENSE_MIN_EDGES = 4096
DENSE_MIN_FILL = 0.25


def level_product(ptr, idx, w, src, dst, t0, t1):
    """``dst[t0:t1] += (edge block) @ src``: :func:`gather_rows` or, for a
    dense block (an MLP layer), one BLAS product over the bounding rows.

    With the in-edges and ``src = FT`` it is the upstream sum of Eq. (3) for
    the rows of a level; with the out-edges and ``src = UT``, the sum of
    Eq. (4) (DESIGN.md sec. 3 and 4).

    The edges of rows t0..t1 reach source rows ``idx`` in [lo, hi); when they
    fill at least :data:`DENSE_MIN_FILL` of that (t1 - t0) x (hi - lo)
    block, it is scattered into a dense matrix and multiplied at BLAS speed.
    Same sums, up to the order of the floating-point additions.
    """
    block = dense_block(ptr, idx, t0, t1)
    if block is not None:
        lo, hi = block
        k0, k1 = ptr[t0], ptr[t1]
        seg = idx[k0:k1]
        W = np.zeros((t1 - t0, hi - lo))
        rows = np.repeat(np.arange(t1 - t0), np.diff(ptr[t0:t1 + 1]))
        W[rows, seg - lo] = w[k0:k1]  # pairs are unique in a canonical graph
        dst[t0:t1] += W @ src[lo:hi]
        return
    gather_rows(ptr, idx, w, src, dst, t0, t1)


def dense_block(ptr, idx, t0, t1):
    """``(lo, hi)``, the source rows of a dense edge block of rows t0..t1 whose sum
    of Eq. (3) or (4) :func:`level_product` forms by BLAS (at least :data:`DENSE_MIN_EDGES`
    edges filling :data:`DENSE_MIN_FILL` of the bounding block), else None."""
    k0, k1 = ptr[t0], ptr[t1]
    n_edges = k1 - k0
    if n_edges >= DENSE_MIN_EDGES:
        seg = idx[k0:k1]
        lo, hi = int(seg.min()), int(seg.max()) + 1
        if n_edges >= DENSE_MIN_FILL * (hi - lo) * (t1 - t0):
            return lo, hi
    return None


@numba.njit(cache=True, nogil=True, error_model="numpy")
def tanh_rows(XT, FT, DFT, t0, t1):
    """``FT = tanh(XT)`` and ``DFT = 1 - FT^2`` on rows t0..t1 (f and f' of Eq. 3 and 4
    for tanh) with :func:`refimpl.activations.tanh_packed` (its flat loop), the values of
    ``activations.tanh_float64`` and of the activation's ``1 - t * t``."""
    B = XT.shape[1]
    for t in range(t0, t1):
        f, d = FT[t], DFT[t]
        _tanh_flat(XT[t], f)
        for s in range(B):
            d[s] = 1.0 - f[s] * f[s]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def singleton_steps_forward(ptr, idx, w, XT, FT, DFT, bounds):
    """Eq. (3) for a run of steps whose modules are all singletons (no solve), in
    order: for each ``(t0, t1)`` row of ``bounds``, the upstream sum
    :func:`gather_rows` into ``XT[t0:t1]``, then f and f' (tanh, :func:`tanh_rows`).
    One call instead of a few NumPy calls per step; the same values as
    :func:`level_product` (gather path) and :func:`tanh_rows` step by step."""
    for r in range(bounds.shape[0]):
        t0, t1 = bounds[r, 0], bounds[r, 1]
        gather_rows(ptr, idx, w, FT, XT, t0, t1)
        tanh_rows(XT, FT, DFT, t0, t1)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def singleton_steps_adjoint(ptr, idx, w, UT, VT, DFT, bounds):
    """Eq. (4) for a run of singleton steps, in reverse order of ``bounds``: the
    downstream sum :func:`gather_rows` into ``VT[t0:t1]`` (out-edges, ``src = UT``),
    then ``u = f'(x) v``; bit for bit :func:`level_product` (gather path) and
    ``UT[t0:t1] = DFT[t0:t1] * VT[t0:t1]`` step by step."""
    B = UT.shape[1]
    for r in range(bounds.shape[0] - 1, -1, -1):
        t0, t1 = bounds[r, 0], bounds[r, 1]
        gather_rows(ptr, idx, w, UT, VT, t0, t1)
        for t in range(t0, t1):
            u, d, v = UT[t], DFT[t], VT[t]
            for s in range(B):
                u[s] = d[s] * v[s]
