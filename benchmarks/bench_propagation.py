"""Benchmark: forward + backward through neural modules vs its peers.

Regimes (DESIGN.md sec. 12; issue "forward and backward"): p = 3000 hidden
nodes, B = 256, tanh, tolerance 1e-10, modules of 1..32 nodes with ~3p edges,
wired as a deep DAG (~100 levels) or a wide one (~10 levels of >= 20
modules).  Measured in one process, best of a few runs:

1. the whole-graph fixed point + adjoint fixed point on the same sparse graph (DEQ-style),
2. the sequential per-module mode (one module at a time, Fig. 4b's baseline),
3. one sparse product over all edges (the floor: reading every edge once),
4. for a layered 784-256-256-10 graph, a dense NumPy MLP forward + backward.

Run ``python benchmarks/bench_propagation.py`` or ``refimpl bench propagation``.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import best_time, fmt_time, machine, markdown_table  # noqa: E402

from refimpl import NMNetwork, forward  # noqa: E402
from refimpl.graph import graph_from_mask  # noqa: E402
from refimpl.workloads import modular_graph, time_fb  # noqa: E402


def propagation_rows(p=3000, B=256, n_in=32, n_out=10, tol=1e-10, seed=0, repeat=3,
                     progress=None):
    rng = np.random.default_rng(seed)
    X0 = rng.standard_normal((B, n_in))
    G = rng.standard_normal((B, n_out)) / B
    rows = []
    for name, n_levels in (("deep (~100 levels)", 100), ("wide (~10 levels)", 10)):
        K, mask = modular_graph(p, n_levels, seed)
        net = NMNetwork(K, rng.standard_normal((p, n_in)) / np.sqrt(n_in),
                        rng.standard_normal((n_out, p)) / np.sqrt(p))
        g = graph_from_mask(K, mask)
        S = g.schedule
        kw = dict(atol=tol, rtol=tol)
        fwd = forward(net, X0, g, **kw)  # warm up (compiled / cached kernels)
        t_fwd = best_time(lambda: forward(net, X0, g, **kw), repeat=repeat, min_total=1.0)
        t_lev = best_time(time_fb(net, X0, G, g, **kw), repeat=repeat, min_total=1.0)
        t_seq = best_time(time_fb(net, X0, G, g, mode="sequential", **kw), repeat=repeat,
                          min_total=1.0)
        t_whole = best_time(time_fb(net, X0, G, g, mode="whole", whole_method="fixed_point",
                                    **kw), repeat=repeat, min_total=1.0)
        t_anderson = best_time(time_fb(net, X0, G, g, mode="whole", **kw), repeat=repeat,
                               min_total=1.0)
        AT = g.A.T.tocsr()
        FT = np.ascontiguousarray(fwd.F.T)
        t_floor = best_time(lambda: AT @ FT, repeat=5, min_total=0.5)
        sizes = S.module_sizes
        rows.append(dict(
            regime=name, levels=S.n_levels, modules=int((sizes > 1).sum()),
            max_q=int(sizes.max()), edges=g.n_edges, newton=int(fwd.iterations),
            t_fwd=t_fwd, t_lev=t_lev, t_seq=t_seq, t_whole=t_whole, t_anderson=t_anderson,
            t_floor=t_floor,
            whole_iters=int(forward(net, X0, g, mode="whole", whole_method="fixed_point",
                                    **kw).iterations),
            anderson_iters=int(forward(net, X0, g, mode="whole", **kw).iterations)))
        if progress:
            progress(name)
    return rows


def mlp_rows(widths=(784, 256, 256, 10), B=256, seed=0, repeat=5):
    """A layered graph shaped like the MLP vs the dense NumPy MLP."""
    rng = np.random.default_rng(seed)
    n_in, hidden, n_out = widths[0], list(widths[1:-1]), widths[-1]
    Ws = [rng.standard_normal((a, b)) / np.sqrt(a) for a, b in zip(widths[:-1], widths[1:])]
    bs = [0.1 * rng.standard_normal(b) for b in widths[1:-1]]
    p = sum(hidden)
    offs = np.cumsum([0] + hidden)
    K = np.zeros((p, p))
    for l in range(len(hidden) - 1):
        K[offs[l]:offs[l + 1], offs[l + 1]:offs[l + 2]] = Ws[l + 1]
    K[np.diag_indices(p)] = np.concatenate(bs)
    W1 = np.zeros((p, n_in))
    W1[: hidden[0]] = Ws[0].T
    Wm = np.zeros((n_out, p))
    Wm[:, offs[-2]:] = Ws[-1].T
    net = NMNetwork(K, W1, Wm, output="identity")
    mask = K != 0
    np.fill_diagonal(mask, False)
    g = graph_from_mask(K, mask)
    X0 = rng.standard_normal((B, n_in))
    G = rng.standard_normal((B, n_out)) / B

    def mlp_forward():
        H = [X0]
        for W, b in zip(Ws[:-1], bs):
            H.append(np.tanh(H[-1] @ W + b))
        return H, H[-1] @ Ws[-1]

    def mlp_fb():
        H, Z = mlp_forward()
        grads = [H[-1].T @ G]
        D = G @ Ws[-1].T
        for l in range(len(Ws) - 2, -1, -1):
            D = D * (1.0 - H[l + 1] ** 2)
            grads.append(H[l].T @ D)
            if l:
                D = D @ Ws[l].T
        return grads

    forward(net, X0, g)
    t_nm_f = best_time(lambda: forward(net, X0, g), repeat=repeat, min_total=1.0)
    t_nm_fb = best_time(time_fb(net, X0, G, g), repeat=repeat, min_total=1.0)
    t_mlp_f = best_time(mlp_forward, repeat=repeat, min_total=1.0)
    t_mlp_fb = best_time(mlp_fb, repeat=repeat, min_total=1.0)
    return dict(t_nm_f=t_nm_f, t_nm_fb=t_nm_fb, t_mlp_f=t_mlp_f, t_mlp_fb=t_mlp_fb,
                levels=g.schedule.n_levels, edges=g.n_edges)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--p", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    print(f"machine: {machine()}")
    rows = propagation_rows(p=args.p, B=args.batch, repeat=args.repeat,
                            progress=lambda s: print(f"  done: {s}", file=sys.stderr))
    table = []
    for r in rows:
        table.append([r["regime"], r["levels"], r["modules"], r["max_q"], r["edges"],
                      fmt_time(r["t_lev"]), fmt_time(r["t_whole"]), f"{r['t_whole'] / r['t_lev']:.1f}x",
                      fmt_time(r["t_anderson"]), f"{r['t_anderson'] / r['t_lev']:.1f}x",
                      fmt_time(r["t_seq"]), f"{r['t_seq'] / r['t_lev']:.1f}x",
                      fmt_time(r["t_fwd"]), f"{r['t_fwd'] / r['t_floor']:.1f}x"])
    print(markdown_table(
        ["regime", "levels", "modules (q>1)", "max q", "edges", "NM fwd+bwd",
         "(1) whole-graph FP", "(1)/NM", "(1') Anderson", "(1')/NM", "(2) sequential", "(2)/NM",
         "NM fwd", "fwd/(3) floor"],
        table))
    print("whole-graph iterations (fixed point / Anderson): "
          + ", ".join(f"{r['regime']}: {r['whole_iters']} / {r['anderson_iters']}" for r in rows))
    m = mlp_rows(B=args.batch)
    print()
    print(markdown_table(
        ["784-256-256-10, B=%d" % args.batch, "NM (layered K)", "dense NumPy MLP", "NM/MLP"],
        [["forward", fmt_time(m["t_nm_f"]), fmt_time(m["t_mlp_f"]), f"{m['t_nm_f'] / m['t_mlp_f']:.2f}"],
         ["forward + backward", fmt_time(m["t_nm_fb"]), fmt_time(m["t_mlp_fb"]),
          f"{m['t_nm_fb'] / m['t_mlp_fb']:.2f}"]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
