"""Index arrays of a schedule, built on the host once and uploaded once.

The graph kernels (pruning, Tarjan, the schedule) run in numba on the CPU
(DESIGN.md section 3).  For the generic path every index array a pass needs
is derived here from a :class:`refimpl.graph.Schedule` with NumPy, uploaded
to the target namespace and device once, and cached per (schedule,
namespace, device): a training step that keeps the schedule (e.g.
:meth:`PrunedGraph.with_weights`) reuses it, and only the edge weights
(``A.data``, one vector) travel per call.

Edge weights are read by ``take`` from ``A.data`` with one zero appended at
index ``nnz``: every padded slot of a table below points there.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import numpy as np

#: A level's edge block is multiplied as a dense (n_rows, hi - lo) matrix
#: gathered from ``A.data`` when that has at most this many times the
#: entries of the padded gather table (n_rows, max in-degree).
DENSE_RATIO = 4.0

_PLANS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


@dataclass
class Gather:
    """``dst[t0:t1] += sum over edges w * src[idx]`` on the device.

    kind "table": ``src_idx``, ``w_idx`` are (n, d) (padded with the row t0
    and the zero weight); kind "dense": ``w_idx`` is (n, hi - lo) and the
    product is ``W @ src[lo:hi]``.
    """

    kind: str
    t0: int
    t1: int
    width: int       # d (table) or hi - lo (dense)
    w_idx: object    # flat (n * width,) edge ids into A.data (nnz = the zero)
    src_idx: object = None  # flat (n * d,) source positions (table)
    lo: int = 0
    hi: int = 0


@dataclass
class GroupPlan:
    """One batched module solve: same-size modules at positions start:stop."""

    start: int
    stop: int
    size: int
    ids: np.ndarray
    nodes: np.ndarray
    block_idx: object  # (n_mod * q * q,) edge ids (nnz = zero) on the device

    @property
    def n_modules(self) -> int:
        return int(self.ids.shape[0])


@dataclass
class StepPlan:
    """A block of positions processed together (a level, or one module)."""

    start: int
    singleton_stop: int
    stop: int
    fwd: Gather | None
    bwd: Gather | None
    groups: list = field(default_factory=list)


@dataclass
class Plan:
    """Every device index array of one schedule, for one namespace/device."""

    order: object
    position: object
    steps: dict          # mode -> list of StepPlan
    whole_idx: object = None  # (p * p,) edge ids of A^T in positions, built on demand


def _gather(ptr, idx, edge, t0, t1, nnz, up):
    """The host-built gather of rows t0:t1 of a CSR over positions."""
    k0, k1 = int(ptr[t0]), int(ptr[t1])
    if k1 == k0:
        return None
    n = t1 - t0
    deg = np.diff(ptr[t0:t1 + 1]).astype(np.int64)
    d = int(deg.max())
    seg = idx[k0:k1]
    lo, hi = int(seg.min()), int(seg.max()) + 1
    rows = np.repeat(np.arange(n), deg)
    if n * (hi - lo) <= DENSE_RATIO * n * d:
        W = np.full((n, hi - lo), nnz, dtype=np.int64)
        W[rows, seg - lo] = edge[k0:k1]
        return Gather("dense", t0, t1, hi - lo, up(W.ravel()), lo=lo, hi=hi)
    slot = np.arange(k1 - k0) - np.repeat(ptr[t0:t1] - k0, deg)
    S = np.full((n, d), t0, dtype=np.int64)
    E = np.full((n, d), nnz, dtype=np.int64)
    S[rows, slot] = seg
    E[rows, slot] = edge[k0:k1]
    return Gather("table", t0, t1, d, up(E.ravel()), src_idx=up(S.ravel()))


def _group(grp, nnz, up):
    q = grp.size
    n = grp.n_modules
    B = np.full(n * q * q, nnz, dtype=np.int64)
    B[grp.flat] = grp.edge
    return GroupPlan(grp.start, grp.stop, q, grp.ids, grp.nodes, up(B))


def _sequential(S):
    out = []
    for m in range(S.n_modules):
        a, b = int(S.module_ptr[m]), int(S.module_ptr[m + 1])
        out.append((a, b, b, []) if b - a == 1 else (a, a, b, [S.module_group(m)]))
    return out


def _build_steps(S, mode, nnz, up):
    if mode == "levels":
        raw = [(L.start, L.singleton_stop, L.stop, L.modules) for L in S.levels]
    else:
        raw = _sequential(S)
    steps = []
    for start, sstop, stop, groups in raw:
        fwd = _gather(S.in_ptr, S.in_src, S.in_edge, start, stop, nnz, up)
        bwd = _gather(S.out_ptr, S.out_dst, S.out_edge, start, stop, nnz, up)
        steps.append(StepPlan(start, sstop, stop, fwd, bwd, [_group(g, nnz, up) for g in groups]))
    return steps


def get_plan(graph, xp, device, mode):
    """The cached :class:`Plan` of ``graph.schedule`` on (``xp``, ``device``),
    with the steps of ``mode`` ("levels", "sequential" or "whole")."""
    S = graph.schedule
    nnz = int(graph.A.nnz)
    per = _PLANS.setdefault(S, {})
    key = (xp.__name__, str(device), nnz)

    def up(a):
        return xp.asarray(a, device=device)

    plan = per.get(key)
    if plan is None:
        plan = Plan(order=up(S.order.astype(np.int64)),
                    position=up(S.position.astype(np.int64)), steps={})
        per[key] = plan
    if mode == "whole":
        if plan.whole_idx is None:
            p = S.p
            rows = np.repeat(np.arange(p), np.diff(graph.A.indptr))
            # A^T in positions: entry (position[i], position[j]) = w_ji = data[e].
            T = np.full(p * p, nnz, dtype=np.int64)
            T[S.position[graph.A.indices] * p + S.position[rows]] = np.arange(nnz)
            plan.whole_idx = up(T)
    elif mode not in plan.steps:
        plan.steps[mode] = _build_steps(S, mode, nnz, up)
    return plan
