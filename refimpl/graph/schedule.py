"""The level schedule of the neural modules (Alg. 1 lines 9-11 and 29-38).

Condensing the strongly connected components (the neural modules) of the
pruned graph gives a DAG.  :class:`Schedule` lays it out in **levels**: the
earliest topological generation of each module (sources are level 0; a
module's level is one more than the largest level of its predecessors), the
contract of networkx's ``topological_generations``.  Modules of one level do
not depend on each other, so they are solved together (the paper's parallel
computation, Sec. 3.6).

Layout ("schedule order").  Nodes are renumbered into *positions*: level by
level; inside a level the singleton modules first, then the larger modules
sorted by size (then by smallest node id), each module's nodes contiguous and
ascending.  Module ids follow the same order, so they are a topological
order: every edge between modules goes from a smaller id to a larger one.
All index arrays for the passes are expressed in positions, so a level, a
module and a group of same-size modules are each one contiguous slice of a
node-major array.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numba
import numpy as np
import scipy.sparse as sp

from ..validation import check_int
from .tarjan import strongly_connected_components

__all__ = ["Schedule", "Level", "ModuleGroup"]


@numba.njit(cache=True, nogil=True)
def _condense(indptr, indices, labels, n_comp):
    """Sizes, smallest nodes, levels and arc counts of the condensation.

    ``labels`` must be in reverse topological order (as Tarjan's are): for
    every edge u -> v, ``labels[u] >= labels[v]``.  Components are then
    visited from the largest label down, so each component's level is final
    before it is pushed to its successors: O(n + nnz).
    """
    n = indptr.shape[0] - 1
    size = np.zeros(n_comp, dtype=np.int32)
    min_node = np.full(n_comp, n, dtype=np.int32)
    for v in range(n):
        c = labels[v]
        size[c] += 1
        if v < min_node[c]:
            min_node[c] = v
    # Counting sort of the nodes by component.
    start = np.zeros(n_comp + 1, dtype=np.int64)
    for c in range(n_comp):
        start[c + 1] = start[c] + size[c]
    fill = start[:-1].copy()
    members = np.empty(n, dtype=np.int32)
    for v in range(n):
        c = labels[v]
        members[fill[c]] = v
        fill[c] += 1
    level = np.zeros(n_comp, dtype=np.int32)
    in_arcs = np.zeros(n_comp, dtype=np.int64)
    out_arcs = np.zeros(n_comp, dtype=np.int64)
    for c in range(n_comp - 1, -1, -1):
        nxt = level[c] + 1
        for k in range(start[c], start[c + 1]):
            v = members[k]
            for p in range(indptr[v], indptr[v + 1]):
                d = labels[indices[p]]
                if d != c:
                    if d > c:
                        return size, min_node, level, in_arcs, out_arcs, False
                    out_arcs[c] += 1
                    in_arcs[d] += 1
                    if level[d] < nxt:
                        level[d] = nxt
    return size, min_node, level, in_arcs, out_arcs, True


@numba.njit(cache=True, nogil=True)
def _module_order(size, min_node, level, n):
    """The components sorted by level, then size, then smallest node (the schedule's
    module order; ``np.lexsort((min_node, size, level))``) by three counting passes, O(n):
    smallest nodes are distinct node ids below ``n``, sizes at most ``n``."""
    n_comp = size.shape[0]
    by_node = np.full(n, -1, dtype=np.int64)
    for c in range(n_comp):
        by_node[min_node[c]] = c
    order = np.empty(n_comp, dtype=np.int64)
    k = 0
    for v in range(n):  # by smallest node
        if by_node[v] >= 0:
            order[k] = by_node[v]
            k += 1
    for key_is_level in (False, True):  # stable counting sorts: size, then level
        n_keys = n + 1
        if key_is_level:
            n_keys = 1
            for c in range(n_comp):
                n_keys = max(n_keys, level[c] + 1)
        start = np.zeros(n_keys + 1, dtype=np.int64)
        for c in range(n_comp):
            start[(level[c] if key_is_level else size[c]) + 1] += 1
        for i in range(n_keys):
            start[i + 1] += start[i]
        out = np.empty(n_comp, dtype=np.int64)
        for i in range(n_comp):
            c = order[i]
            key = level[c] if key_is_level else size[c]
            out[start[key]] = c
            start[key] += 1
        order = out
    return order


@numba.njit(cache=True, nogil=True)
def _layout(indptr, indices, module, module_ptr):
    """Positions, external in/out edges and within-module edges.

    ``module[v]`` is the (schedule-ordered) module of node v and
    ``module_ptr`` the first position of each module.  Returns
    ``order`` (node at each position), ``position`` (its inverse), the
    external edges as CSR over positions in both directions (``in_*``: the
    in-edges of each position from other modules, sources ascending;
    ``out_*``: the out-edges to other modules), and the within-module edges
    (``int_edge`` edge id, ``int_local`` = a * q + c for the edge from the
    module's a-th node to its c-th node), grouped by module via ``int_ptr``.
    """
    n = indptr.shape[0] - 1
    n_mod = module_ptr.shape[0] - 1
    order = np.empty(n, dtype=np.int32)
    position = np.empty(n, dtype=np.int32)
    fill = module_ptr[:-1].copy()
    for v in range(n):
        m = module[v]
        t = fill[m]
        order[t] = v
        position[v] = t
        fill[m] += 1
    # Count external edges per position (out and in) and internal per module.
    out_ptr = np.zeros(n + 1, dtype=np.int64)
    in_ptr = np.zeros(n + 1, dtype=np.int64)
    int_ptr = np.zeros(n_mod + 1, dtype=np.int64)
    for v in range(n):
        m = module[v]
        tv = position[v]
        for p in range(indptr[v], indptr[v + 1]):
            w = indices[p]
            if module[w] == m:
                int_ptr[m + 1] += 1
            else:
                out_ptr[tv + 1] += 1
                in_ptr[position[w] + 1] += 1
    for t in range(n):
        out_ptr[t + 1] += out_ptr[t]
        in_ptr[t + 1] += in_ptr[t]
    for m in range(n_mod):
        int_ptr[m + 1] += int_ptr[m]
    n_ext = out_ptr[n]
    out_dst = np.empty(n_ext, dtype=np.int32)
    out_edge = np.empty(n_ext, dtype=np.int64)
    in_src = np.empty(n_ext, dtype=np.int32)
    in_edge = np.empty(n_ext, dtype=np.int64)
    int_edge = np.empty(int_ptr[n_mod], dtype=np.int64)
    int_local = np.empty(int_ptr[n_mod], dtype=np.int64)  # a * q + c: past int32 from q = 46 341
    in_fill = in_ptr[:-1].copy()
    int_fill = int_ptr[:-1].copy()
    # Visiting sources in position order keeps each in-list ascending.
    for tv in range(n):
        v = order[tv]
        m = module[v]
        base = module_ptr[m]
        q = module_ptr[m + 1] - base
        k = out_ptr[tv]
        for p in range(indptr[v], indptr[v + 1]):
            w = indices[p]
            tw = position[w]
            if module[w] == m:
                s = int_fill[m]
                int_edge[s] = p
                int_local[s] = (tv - base) * q + (tw - base)
                int_fill[m] += 1
            else:
                out_dst[k] = tw
                out_edge[k] = p
                k += 1
                s = in_fill[tw]
                in_src[s] = tv
                in_edge[s] = p
                in_fill[tw] += 1
    return (order, position, in_ptr, in_src, in_edge, out_ptr, out_dst, out_edge,
            int_ptr, int_edge, int_local)


@dataclass(frozen=True)
class ModuleGroup:
    """Same-size modules of one level, solved in one batched call (Eq. (3)
    on each module, its adjoint Eq. (4) backward; DESIGN.md sec. 3).

    Attributes
    ----------
    size : int
        q, the number of nodes of each module (q >= 2).
    ids : (n_mod,) int array
        Module ids (schedule order).
    start, stop : int
        The positions of the group's nodes: ``stop - start = n_mod * q``;
        module ``ids[m]`` occupies positions ``start + m*q ... start + (m+1)*q - 1``.
    nodes : (n_mod, q) int array
        Node ids of each module, ascending.
    edge : (n_int,) int array
        Positions in ``A.data`` of the within-module edges.
    flat : (n_int,) int array
        Where each of those edges goes in the ``(n_mod, q, q)`` block stack,
        flattened: ``blocks[m, a, c] = A[nodes[m, a], nodes[m, c]]``.
    """

    size: int
    ids: np.ndarray
    start: int
    stop: int
    nodes: np.ndarray
    edge: np.ndarray
    flat: np.ndarray

    @property
    def n_modules(self) -> int:
        return int(self.ids.shape[0])

    def blocks(self, data):
        """The within-module blocks A_SS, shape (n_mod, q, q), from ``A.data``."""
        q = self.size
        out = np.zeros(self.n_modules * q * q, dtype=np.asarray(data).dtype)
        out[self.flat] = data[self.edge]
        return out.reshape(self.n_modules, q, q)


@dataclass(frozen=True)
class Level:
    """One topological generation of the condensation: the levels in which
    Eq. (3) is solved forward and Eq. (4) in reverse (DESIGN.md sec. 3).

    Attributes
    ----------
    index : int
        The level number (0 for sources).
    start, stop : int
        Positions of the level's nodes (``Schedule.order[start:stop]``).
    singleton_stop : int
        Positions ``start:singleton_stop`` are the singleton modules.
    nodes : (n,) int array
        Node ids of every node of the level, in schedule order.
    singletons : (n_s,) int array
        Node ids of the singleton modules (nodes on no cycle: no solve).
    modules : list of ModuleGroup
        The modules of size >= 2, grouped by size (ascending).
    """

    index: int
    start: int
    stop: int
    singleton_stop: int
    nodes: np.ndarray
    singletons: np.ndarray
    modules: list


class Schedule:
    """Levels of the condensation of a directed graph (Alg. 1 lines 9-11, 29-38).

    Build with :meth:`from_csr` (or get one from :func:`refimpl.prune`).  The
    graph is given as a CSR matrix whose row j lists the successors of node j
    (``A[j, i]`` = edge j -> i).  Construction is O(p + |E|) in numba plus a
    sort of the modules.

    Attributes
    ----------
    p : int
        Number of nodes.
    n_levels, n_modules : int
    labels : (p,) int32
        Module id of each node; ids are topologically ordered (every edge
        between modules goes from a smaller id to a larger one).
    module_sizes, module_level : (n_modules,) int32
    in_arcs, out_arcs : (n_modules,) int64
        InArc/OutArc of Alg. 1: edges entering/leaving each module.
    order, position : (p,) int32
        Node at each position and position of each node.
    level_ptr : (n_levels + 1,) int64
        ``order[level_ptr[l]:level_ptr[l + 1]]`` are the nodes of level l.
    module_ptr : (n_modules + 1,) int64
        ``order[module_ptr[m]:module_ptr[m + 1]]`` are the nodes of module m.
    level_module_ptr : (n_levels + 1,) int64
        Modules ``level_module_ptr[l]:level_module_ptr[l + 1]`` form level l.
    in_ptr, in_src, in_edge
        External in-edges (from other modules) of each position, CSR over
        positions: sources as positions (ascending), edge ids into ``A.data``.
        The forward pass of Eq. (3) reads them.
    out_ptr, out_dst, out_edge
        External out-edges of each position, for the adjoint of Eq. (4).
    levels : list of Level
        Built on first access (a 10^6-level chain would otherwise pay for
        10^6 Python objects it may never use).
    """

    def __init__(self, p, labels, sizes, levels_of_module, in_arcs, out_arcs, layout):
        self.p = int(p)
        self.labels = labels
        self.module_sizes = sizes
        self.module_level = levels_of_module
        self.in_arcs = in_arcs
        self.out_arcs = out_arcs
        (self.order, self.position, self.in_ptr, self.in_src, self.in_edge,
         self.out_ptr, self.out_dst, self.out_edge,
         self._int_ptr, self._int_edge, self._int_local) = layout
        self.n_modules = int(sizes.shape[0])
        self.module_ptr = np.zeros(self.n_modules + 1, dtype=np.int64)
        np.cumsum(sizes, out=self.module_ptr[1:])
        self.n_levels = int(levels_of_module[-1]) + 1 if self.n_modules else 0
        counts = np.bincount(levels_of_module, minlength=self.n_levels)
        self.level_module_ptr = np.zeros(self.n_levels + 1, dtype=np.int64)
        np.cumsum(counts, out=self.level_module_ptr[1:])
        self.level_ptr = self.module_ptr[self.level_module_ptr]

    # ------------------------------------------------------------------ build
    @classmethod
    def from_csr(cls, A, *, n_components=None, scc_labels=None):
        """Schedule of the graph ``A`` (CSR, row j = successors of node j).

        ``n_components, scc_labels`` may be passed when Tarjan has already run
        (labels must be in Tarjan's reverse topological order; their length, range
        and use of every id are checked, the partition itself is the caller's).
        Duplicate entries of ``A`` must have been summed (canonical CSR):
        edge ids index ``A.data``.
        """
        if not sp.issparse(A) or A.format != "csr":
            raise ValueError(f"A: expected a scipy CSR matrix, got {type(A).__name__}")
        if A.shape[0] != A.shape[1]:
            raise ValueError(f"A: expected a square matrix, got shape {A.shape}")
        if not A.has_canonical_format:
            raise ValueError("A: duplicate or unsorted entries; call A.sum_duplicates() first")
        indptr, indices = A.indptr, A.indices
        # an edge j -> j has no place in Eq. (3): K's diagonal is the bias b (prune and
        # graph_from_mask never store one; the module solvers would drop it silently)
        loops = np.flatnonzero(np.repeat(np.arange(A.shape[0]), np.diff(indptr)) == indices)
        if loops.size:
            j = int(indices[loops[0]])
            raise ValueError(f"A: has a self-loop at node {j} (and {loops.size - 1} more); the "
                             "diagonal of K is the bias b (Eq. 3), not an edge")
        if scc_labels is None:
            n_components, scc_labels = strongly_connected_components(indptr, indices, check=False)
        else:  # (the kernels index by them: a wrong count or length would write past arrays)
            p = A.shape[0]
            n_components = check_int(n_components, "n_components", 0)
            if n_components > p:
                raise ValueError(f"n_components: a graph of {p} nodes has at most {p}, got "
                                 f"{n_components}")
            scc_labels = np.asarray(scc_labels)
            if scc_labels.shape != (p,) or scc_labels.dtype.kind not in "iu":
                raise ValueError(f"scc_labels: expected {p} integer labels, got shape "
                                 f"{scc_labels.shape} of dtype {scc_labels.dtype}")
            if p and (scc_labels.min() < 0 or scc_labels.max() >= n_components
                      or not np.bincount(scc_labels, minlength=n_components).all()):
                raise ValueError(f"scc_labels: expected every id of 0..{n_components - 1} "
                                 "(n_components) to label at least one node, and no other")
            if not p and n_components:
                raise ValueError(f"n_components: a graph without nodes has 0, got "
                                 f"{n_components}")
            scc_labels = scc_labels.astype(np.int32)
        return cls._build(indptr, indices, int(n_components), scc_labels)

    @classmethod
    def _build(cls, indptr, indices, n_comp, scc_labels):
        p = indptr.shape[0] - 1
        size, min_node, level, in_arcs, out_arcs, ok = _condense(
            indptr, indices, scc_labels, n_comp
        )
        if not ok:
            raise ValueError("scc_labels: not in reverse topological order (use Tarjan's labels)")
        # Module order: level, then size (singletons first), then smallest node.
        perm = _module_order(size, min_node, level, p)
        rank = np.empty(n_comp, dtype=np.int32)
        rank[perm] = np.arange(n_comp, dtype=np.int32)
        labels = rank[scc_labels]
        sizes = size[perm]
        module_ptr = np.zeros(n_comp + 1, dtype=np.int64)
        np.cumsum(sizes, out=module_ptr[1:])
        layout = _layout(indptr, indices, labels, module_ptr)
        return cls(p, labels, sizes, level[perm], in_arcs[perm], out_arcs[perm], layout)

    # ------------------------------------------------------------ accessors
    @property
    def is_dag(self) -> bool:
        """True when every module is a singleton (no solve anywhere)."""
        return self.n_modules == self.p

    @property
    def max_module_size(self) -> int:
        return int(self.module_sizes.max()) if self.n_modules else 0

    def module_nodes(self, m):
        """Node ids of module ``m``, ascending."""
        return self.order[self.module_ptr[m]:self.module_ptr[m + 1]]

    def module_group(self, m) -> ModuleGroup:
        """Module ``m`` alone as a :class:`ModuleGroup` (one-module batches)."""
        return self._group(int(m), int(m) + 1)

    def _group(self, g0, g1) -> ModuleGroup:
        """Modules g0 .. g1 - 1 (same size, consecutive) as a :class:`ModuleGroup`."""
        q = int(self.module_sizes[g0])
        e0, e1 = self._int_ptr[g0], self._int_ptr[g1]
        local = self._int_local[e0:e1].astype(np.int64)
        if g1 - g0 > 1:  # module m's edges go to block m
            local += np.repeat(np.arange(g1 - g0, dtype=np.int64) * (q * q),
                               np.diff(self._int_ptr[g0:g1 + 1]))
        gs, ge = int(self.module_ptr[g0]), int(self.module_ptr[g1])
        return ModuleGroup(
            size=q,
            ids=np.arange(g0, g1, dtype=np.int64),
            start=gs,
            stop=ge,
            nodes=self.order[gs:ge].reshape(g1 - g0, q),
            edge=self._int_edge[e0:e1],
            flat=local,
        )

    @cached_property
    def levels(self) -> list:
        """The levels as :class:`Level` objects (built on first access)."""
        out = []
        sizes = self.module_sizes
        mod_ptr = self.level_module_ptr.tolist()
        node_ptr = self.level_ptr.tolist()
        # singletons per level: sizes ascend within a level, so they come first
        singles = np.bincount(self.module_level[sizes == 1], minlength=self.n_levels).tolist()
        for lev in range(self.n_levels):
            m0, m1 = mod_ptr[lev], mod_ptr[lev + 1]
            start, stop = node_ptr[lev], node_ptr[lev + 1]
            n_single = singles[lev]
            groups = []
            g0 = m0 + n_single
            while g0 < m1:
                q = int(sizes[g0])
                g1 = g0 + int(np.searchsorted(sizes[g0:m1], q, side="right"))
                groups.append(self._group(g0, g1))
                g0 = g1
            out.append(
                Level(
                    index=lev,
                    start=start,
                    stop=stop,
                    singleton_stop=start + n_single,
                    nodes=self.order[start:stop],
                    singletons=self.order[start:start + n_single],
                    modules=groups,
                )
            )
        return out

    def __repr__(self) -> str:
        return (
            f"Schedule(p={self.p}, n_levels={self.n_levels}, n_modules={self.n_modules}, "
            f"max_module_size={self.max_module_size})"
        )
