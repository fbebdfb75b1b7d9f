"""Benchmark: the threading policy (refimpl/threads.py) in one process.

On the propagation benchmark's modular graphs (deep: ~100 levels, wide: ~10
levels; B = 256, tolerance 1e-10), interleaved A/B/C/D, best of ``--repeat``:

- "no policy": ``forward`` / ``backward`` with the policy bypassed (their
  undecorated functions): numba and BLAS pools as the machine gives them;
- "policy": the library's default (``threads=None``);
- "threads=1" and "threads=<cores>": explicit settings.

Each setting times ``loss_and_grad`` (forward, loss, backward) and the
issue's symptom: a BLAS product ``F @ Wm.T`` right after a numba parallel
call (a Newton forward), next to the same product alone.  The threading
layer and OMP_WAIT_POLICY are fixed once per process (see the module
docstring of :mod:`refimpl.threads` for the per-process comparison).

Run ``python benchmarks/bench_threads.py`` or ``refimpl bench threads``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import fmt_time, machine, markdown_table  # noqa: E402
from bench_propagation import modular_graph  # noqa: E402

from refimpl import NMNetwork, backward, forward  # noqa: E402
from refimpl.graph import graph_from_mask  # noqa: E402
from refimpl.model import output_loss  # noqa: E402
from refimpl.threads import threads_policy  # noqa: E402


def _loss_and_grad(net, X0, T, g, raw, threads):
    fw = forward.__wrapped__ if raw else forward
    bw = backward.__wrapped__ if raw else backward
    kw = {} if raw else {"threads": threads}
    fwd = fw(net, X0, g, atol=1e-10, rtol=1e-10, **kw)
    _, G = output_loss(fwd.Z, T, net.output)
    bw(net, fwd, G, **kw)
    return fwd


def measure(p=1000, B=256, repeat=3, seed=0):
    rng = np.random.default_rng(seed)
    X0 = rng.standard_normal((B, 32))
    T = rng.integers(0, 10, B)
    cores = os.cpu_count() or 1
    settings = [("no policy", True, None), ("policy (default)", False, None),
                ("threads=1", False, 1), (f"threads={cores}", False, cores)]
    rows = []
    for regime, n_levels in (("deep", 100), ("wide", 10)):
        K, mask = modular_graph(p, n_levels, seed)
        net = NMNetwork(K, rng.standard_normal((p, 32)) / np.sqrt(32),
                        rng.standard_normal((10, p)) / np.sqrt(p))
        g = graph_from_mask(K, mask)
        best = {s[0]: [np.inf, np.inf, np.inf] for s in settings}
        fwd = _loss_and_grad(net, X0, T, g, False, None)  # compile / warm up
        F, Wm = fwd.F, net.Wm
        for _ in range(repeat):
            for name, raw, threads in settings:
                t0 = time.perf_counter()
                _loss_and_grad(net, X0, T, g, raw, threads)
                best[name][0] = min(best[name][0], time.perf_counter() - t0)
                # the symptom: a short BLAS product right after a numba parallel call
                fw = forward.__wrapped__ if raw else forward
                kw = {} if raw else {"threads": threads}
                ctx = threads_policy(threads) if not raw else _null()
                with ctx:
                    fw(net, X0[:64], g, atol=1e-10, rtol=1e-10, solver="newton", **kw)
                    t0 = time.perf_counter()
                    F @ Wm.T
                    best[name][1] = min(best[name][1], time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    F @ Wm.T
                    best[name][2] = min(best[name][2], time.perf_counter() - t0)
        for name, _, _ in settings:
            rows.append([regime, name, fmt_time(best[name][0]),
                         f"{best[name][0] / best['threads=1'][0]:.2f}",
                         fmt_time(best[name][1]), fmt_time(best[name][2])])
    return rows


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--p", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    print(f"machine: {machine()}")
    rows = measure(p=args.p, B=args.batch, repeat=args.repeat)
    print(markdown_table(["graph", "setting", "loss_and_grad", "/ threads=1",
                          "F @ Wm.T after numba", "F @ Wm.T alone"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
