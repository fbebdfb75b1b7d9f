"""Benchmark workloads shared by ``benchmarks/`` and the timing figures (DESIGN.md sec. 12).

:func:`modular_graph` builds the modular graph of the propagation benchmarks and of
Fig. 4b / 10b; :func:`time_fb` wraps one forward + backward pass for a timer.  Both
live in the package so that the figures and the benchmarks measure the same thing
without importing each other.
"""
from __future__ import annotations

import numpy as np

from .propagate import backward, forward

__all__ = ["modular_graph", "time_fb"]


def modular_graph(p, n_levels, seed, max_q=32, edges_per_node=3.0, weight=0.35):
    """K and its edge mask: modules of 1..max_q nodes (rings with chords) in
    ``n_levels`` levels, each module fed by modules of the previous level.

    The workload of the propagation benchmarks and of Fig. 4b / 10b (DESIGN.md
    sec. 12): a pruned graph whose condensation has ``n_levels`` levels.  ``K[j, i]``
    is edge j -> i (DESIGN.md sec. 2), weights ``weight * N(0, 1)`` on the mask, biases
    ``0.1 * N(0, 1)`` on the diagonal; everything is drawn from
    ``np.random.default_rng(seed)``.
    """
    rng = np.random.default_rng(seed)
    sizes = []
    while sum(sizes) < p:
        sizes.append(int(min(rng.integers(1, max_q + 1), p - sum(sizes))))
    perm = rng.permutation(p)
    mods, start = [], 0
    for q in sizes:
        mods.append(perm[start:start + q])
        start += q
    level = np.sort(rng.integers(0, n_levels, len(mods)))
    level[: min(n_levels, len(mods))] = np.arange(min(n_levels, len(mods)))  # every level used
    level = np.sort(level)
    mask = np.zeros((p, p), dtype=bool)
    for nodes in mods:  # a ring and chords inside each module
        q = len(nodes)
        if q > 1:
            mask[nodes, np.roll(nodes, -1)] = True
            for _ in range(q // 2):
                a, b = rng.choice(nodes, 2, replace=False)
                mask[a, b] = True
    by_level = [np.flatnonzero(level == l) for l in range(n_levels)]
    target = int(edges_per_node * p)
    for m, nodes in enumerate(mods):  # each module of level l >= 1 hears level l - 1
        lv = level[m]
        if lv == 0:
            continue
        src_mod = rng.choice(by_level[lv - 1])
        mask[rng.choice(mods[src_mod]), rng.choice(nodes)] = True
    n_edges = int(mask.sum())
    while n_edges < target:  # extra forward edges to later levels
        a, b = np.sort(rng.choice(len(mods), 2, replace=False))
        if level[a] < level[b]:
            j, i = rng.choice(mods[a]), rng.choice(mods[b])
            n_edges += not mask[j, i]
            mask[j, i] = True
    K = np.where(mask, weight * rng.standard_normal((p, p)), 0.0)
    np.fill_diagonal(K, 0.1 * rng.standard_normal(p))
    return K, mask


def time_fb(net, X0, G, graph, **kw):
    """A closure running one forward (Eq. 3, Alg. 1) and backward (Eq. 4-8) pass, to time."""
    def run():
        fwd = forward(net, X0, graph, **kw)
        backward(net, fwd, G)
    return run
