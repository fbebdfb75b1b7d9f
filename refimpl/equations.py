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
    k0, k1 = ptr[t0], ptr[t1]
    n_edges = k1 - k0
    if n_edges >= DENSE_MIN_EDGES:
        seg = idx[k0:k1]
        lo, hi = int(seg.min()), int(seg.max()) + 1
        if n_edges >= DENSE_MIN_FILL * (hi - lo) * (t1 - t0):
            W = np.zeros((t1 - t0, hi - lo))
            rows = np.repeat(np.arange(t1 - t0), np.diff(ptr[t0:t1 + 1]))
            W[rows, seg - lo] = w[k0:k1]  # pairs are unique in a canonical graph
            dst[t0:t1] += W @ src[lo:hi]
            return
    gather_rows(ptr, idx, w, src, dst, t0, t1)
