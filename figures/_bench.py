"""Timing drivers of Fig. 4b and Fig. 10b.

The graph builder (``modular_graph``: modules of 1..max_q nodes, rings with chords,
wired in ``n_levels`` levels), the forward + backward closure (``time_fb``) and the
timer (``best_time``) are the package's (:mod:`refimpl.workloads`,
:mod:`refimpl.timing`), shared with ``benchmarks/``, so the figures and ``refimpl bench
propagation`` measure the same thing.  No mathematics here.
"""
from __future__ import annotations

import numpy as np

from refimpl.timing import best_time, machine  # noqa: F401  (machine: used by the figures)
from refimpl.workloads import modular_graph, time_fb


def time_modes(p, n_levels, max_q, modes, *, solver="newton", batch=64, n_in=16, n_out=10,
               tol=1e-8, seed=0, repeat=5, min_total=0.3):
    """Seconds of one forward + backward pass (best of ``repeat``) per ``mode`` on the
    benchmark's modular graph, and the graph's statistics.

    ``solver="newton"`` by default: the paper's module solver (Sec. 3.3), whose cost
    grows with the module size (the library's "auto" hands modules above 8 nodes to a
    fixed-point iteration first).

    Returns ``(times, stats)``: ``times[mode]`` in seconds; ``stats`` holds the level
    count, the module count, the mean and largest module size and the edge count.
    """
    from refimpl import NMNetwork
    from refimpl.graph import graph_from_mask

    rng = np.random.default_rng(seed)
    K, mask = modular_graph(p, n_levels, seed, max_q=max_q)
    net = NMNetwork(K, rng.standard_normal((p, n_in)) / np.sqrt(n_in),
                    rng.standard_normal((n_out, p)) / np.sqrt(p))
    g = graph_from_mask(K, mask)
    X0 = rng.standard_normal((batch, n_in))
    G = rng.standard_normal((batch, n_out)) / batch
    kw = dict(atol=tol, rtol=tol, solver=solver)
    times = {}
    for mode in modes:
        run = time_fb(net, X0, G, g, mode=mode, **kw)
        run()  # warm up (numba kernels load from the cache)
        times[mode] = best_time(run, repeat=repeat, min_total=min_total)
    S = g.schedule
    stats = dict(levels=S.n_levels, modules=S.n_modules,
                 mean_module_size=p / S.n_modules, largest_module=S.max_module_size,
                 edges=g.n_edges)
    return times, stats
