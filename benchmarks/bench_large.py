"""Benchmark: one large neural module, forward + backward, Newton-Krylov vs its peers.

The networks trained without NM regularization form one giant module
(issue 11): ``NMNetwork.random(64, p, 10, k=10p)`` is a single strongly
connected component of all p nodes.  For p = q = 200, 500, 1000, 3000,
B = 256, tanh, tolerance 1e-10, forward + backward, measured in one process
(interleaved, best of ``--repeat``):

1. ``solver="krylov"``: matrix-free Newton-Krylov (GMRES), adjoint by GMRES on J^T;
2. ``solver="newton"``: dense per-sample LU Newton, timed on ``--dense-batch``
   samples and scaled linearly to B (its cost is per sample); skipped
   (``-``) where those samples would take more than ``--dense-limit``
   seconds by the q^3 law from the previous size, and on the "hard" rows;
3. ``mode="whole"``: the whole graph as one implicit layer, Anderson
   acceleration (memory 5) forward and the adjoint fixed point backward
   (the same system here: the graph is one module);
4. the plain whole-graph fixed point (status only).

``scale`` makes the module non-contractive in at least one row
(``max_i sum_j |A_ji| > 1``); the "hard" rows use a larger scale, where the
fixed point (and possibly Anderson) fails and Newton-Krylov must still
converge.  ``--crossover`` measures the ``solver="auto"`` crossover between
dense Newton, the fixed point and Krylov on small single-module graphs.

Run ``python benchmarks/bench_large.py`` or ``refimpl bench large``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import fmt_time, machine, markdown_table  # noqa: E402

from refimpl import NMNetwork, backward, forward  # noqa: E402

TOL = dict(atol=1e-10, rtol=1e-10)


def case(p, B, scale, seed=0):
    """The single-module network, its pruned graph, a batch and dL/dZ."""
    net = NMNetwork.random(64, p, 10, k=10 * p, seed=seed, scale=scale)
    g = net.prune()
    rng = np.random.default_rng(seed + 1)
    X0 = rng.standard_normal((B, 64))
    G = rng.standard_normal((B, 10)) / B
    return net, g, X0, G


def fwd_bwd(net, g, X0, G, **kw):
    """Seconds of one forward + backward and the forward's status name."""
    t0 = time.perf_counter()
    fwd = forward(net, X0, g, throw=False, **TOL, **kw)
    if fwd.converged:
        backward(net, fwd, G, throw=False)
    return time.perf_counter() - t0, fwd.status.name, fwd.iterations


def large_rows(sizes, B, dense_batch, repeat, scales, dense_limit, progress=print):
    rows = []
    t_dense_prev = None  # (q, seconds per sample)
    for scale, label in scales:
        for p in sizes:
            net, g, X0, G = case(p, B, scale)
            A = g.A
            row_sum = float(np.abs(A).sum(axis=0).max())  # max_i sum_j |A_ji|
            nb = min(dense_batch, B)
            run_dense = label == "default" and dense_limit > 0  # hard rows: convergence only
            if run_dense and t_dense_prev is not None:
                q0, t0 = t_dense_prev
                run_dense = nb * t0 * (p / q0) ** 3 <= dense_limit  # q^3 law
            methods = {
                "krylov": (X0, G, dict(solver="krylov")),
                "anderson": (X0, G, dict(mode="whole")),
                "fixed point": (X0, G, dict(mode="whole", whole_method="fixed_point")),
            }
            if run_dense:
                methods["dense LU"] = (X0[:nb], G[:nb], dict(solver="newton"))
            best = {k: np.inf for k in methods}
            info = {}
            for r in range(repeat):  # interleaved
                for name, (x0, gg, kw) in methods.items():
                    if name == "fixed point" and r > 0:
                        continue  # its status is what the table shows
                    t, status, its = fwd_bwd(net, g, x0, gg, **kw)
                    best[name] = min(best[name], t)
                    info[name] = (status, its)
            if run_dense:
                best["dense LU"] *= B / nb  # per-sample cost, scaled to B
                if label == "default":
                    t_dense_prev = (p, best["dense LU"] / B)
            rows.append(dict(p=p, scale=scale, label=label, row_sum=row_sum,
                             modules=g.schedule.n_modules, max_q=g.schedule.max_module_size,
                             edges=g.n_edges, best=best, info=info, dense_batch=nb))
            progress(f"p={p} scale={scale}: " + ", ".join(
                f"{k} {fmt_time(v)} {info[k][0]}" for k, v in best.items()))
    return rows


def crossover_rows(sizes, B, repeat, scale=1.0):
    """solver='auto' candidates on single-module graphs of q nodes."""
    rows = []
    for q in sizes:
        net, g, X0, G = case(q, B, scale, seed=2)
        cands = {"newton": {}, "fixed point, then newton": {}, "krylov": {}}
        best = {k: np.inf for k in cands}
        from refimpl import propagate

        for _ in range(repeat):
            t, _, _ = fwd_bwd(net, g, X0, G, solver="newton")
            best["newton"] = min(best["newton"], t)
            old = (propagate.AUTO_NEWTON_MAX_Q, propagate.AUTO_KRYLOV_MIN_Q)
            propagate.AUTO_NEWTON_MAX_Q, propagate.AUTO_KRYLOV_MIN_Q = 1, 10 ** 9
            try:
                t, _, _ = fwd_bwd(net, g, X0, G, solver="auto")
            finally:
                propagate.AUTO_NEWTON_MAX_Q, propagate.AUTO_KRYLOV_MIN_Q = old
            best["fixed point, then newton"] = min(best["fixed point, then newton"], t)
            t, _, _ = fwd_bwd(net, g, X0, G, solver="krylov")
            best["krylov"] = min(best["krylov"], t)
        rows.append(dict(q=g.schedule.max_module_size, best=best))
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[200, 500, 1000, 3000])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--dense-batch", type=int, default=8,
                    help="samples the dense-LU Newton is timed on (scaled to --batch)")
    ap.add_argument("--dense-limit", type=float, default=60.0,
                    help="skip dense LU where its --dense-batch samples would take longer "
                         "(seconds, extrapolated by q^3 from the previous size)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--hard-scale", type=float, default=1.6)
    ap.add_argument("--hard-sizes", type=int, nargs="*", default=[500, 1000])
    ap.add_argument("--crossover", action="store_true",
                    help="measure the solver='auto' crossovers instead")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (for the tests)")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.batch, args.dense_batch, args.repeat = [40], 8, 4, 1
        args.hard_sizes = [40]
    print(f"machine: {machine()}")
    if args.crossover:
        sizes = [12, 24, 48] if args.quick else [16, 32, 64, 128, 256]
        rows = crossover_rows(sizes, args.batch, args.repeat)
        print(markdown_table(["q", "newton", "fixed point, then newton", "krylov"],
                             [[r["q"]] + [fmt_time(r["best"][k]) for k in
                                          ("newton", "fixed point, then newton", "krylov")]
                              for r in rows]))
        return 0
    scales = [(args.scale, "default")] + ([(args.hard_scale, "hard")] if args.hard_sizes else [])
    rows = []
    for scale, label in scales:
        sizes = args.sizes if label == "default" else args.hard_sizes
        rows += large_rows(sizes, args.batch, args.dense_batch, args.repeat, [(scale, label)],
                           args.dense_limit, progress=lambda s: print(f"  done: {s}",
                                                                      file=sys.stderr))
    table = []
    for r in rows:
        b, info = r["best"], r["info"]
        tk = b["krylov"]
        dense = b.get("dense LU", np.nan)
        and_ok = info["anderson"][0] == "CONVERGED"
        table.append([
            r["p"], f"{r['scale']:g} ({r['label']})", f"{r['row_sum']:.2f}", r["edges"],
            f"{fmt_time(tk)} ({info['krylov'][0].lower()}, {info['krylov'][1]} it)",
            fmt_time(dense) if dense == dense else "-",
            f"{dense / tk:.0f}x" if dense == dense else "-",
            f"{fmt_time(b['anderson'])} ({info['anderson'][0].lower()}, {info['anderson'][1]} it)",
            f"{tk / b['anderson']:.2f}" if and_ok else "-",
            info["fixed point"][0].lower(),
        ])
    print(markdown_table(
        ["p = q", "scale", "max row sum", "edges", "Krylov fwd+bwd", "dense LU fwd+bwd",
         "dense/Krylov", "Anderson fwd+bwd", "Krylov/Anderson", "fixed point"], table))
    print(f"B = {args.batch}, tanh, tol 1e-10; dense LU timed on {args.dense_batch} samples and "
          f"scaled to B; best of {args.repeat}, interleaved")
    return 0


if __name__ == "__main__":
    sys.exit(main())
