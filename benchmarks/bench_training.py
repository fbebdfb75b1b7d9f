"""Benchmark: where one training epoch's time goes (issue 12).

One epoch of ``refimpl train --dataset digits`` (the same seeded split,
TrainConfig defaults: B = 32, k = 10 p edges, SGD momentum 0.5, validation
forward at the end of the epoch) at p = 300, 1000, 3000 hidden nodes, with
``--reg none`` and ``--reg nm``, split into the parts of Alg. 2:

- solves: the forward and adjoint module solves (``loss_and_grad`` and the
  end-of-epoch validation forward, minus the dL/dK product);
- dL/dK: the dense (p, B) x (B, p) product of Eq. (6), re-timed on the same
  values in backward's layout right after each backward, the faster of two
  replays (the replays are not counted in the epoch; a stall that hit the
  product inside backward stays in "solves");
- update: the optimizer step on K, W1, Wm; by default (``Trainer.fused_pass``) one
  compiled pass over K that also applies the NM proximal step (Thm. 3.1) and
  collects the next pruning's candidates, so both are in this column;
- pruning: top-k selection (among those candidates), Tarjan and the schedule
  (Alg. 2 lines 5, 13);
- regularization: the NM proximal step (Thm. 3.1) when it is a pass of its own
  (``--separate`` adds rows with ``Trainer.fused_pass = False``, the reference
  path), and the explicit ``reg_step="thm31"`` term;
- other: the rest of the epoch (batching, bookkeeping).

The parts are timed by wrapping the Trainer's methods from outside (no timing
code in the library).  Next to the epoch: the dense-gradient floor, the p^2
work per batch the algorithm cannot avoid (one (p, B) x (B, p) product into a
new array, as backward does it, and one read-and-write pass over K), measured
inside the epoch after every batch on its own arrays (the dL/dK replay and a
replayed ``K *= 1.0``, each the faster of two, not counted in the epoch), so
that the epoch and its floor see the same load.  Default threading as a user
gets it (:mod:`refimpl.threads`: one thread for numba and BLAS).  ``--repeat n``
runs every setting n times, interleaved, and reports the fastest epoch (with
its floor).  ``--passes`` times the per-batch passes over the p x p arrays
alone (the floor argument of issue 12).

Run ``python benchmarks/bench_training.py`` or ``refimpl bench training``;
``--quick`` runs a tiny size for the tests.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import best_time, fmt_time, machine, markdown_table  # noqa: E402

import refimpl.train as train_mod  # noqa: E402
from refimpl.datasets import load_builtin  # noqa: E402
from refimpl.optim import Optimizer  # noqa: E402
from refimpl.threads import threads_policy  # noqa: E402
from refimpl.train import Trainer, TrainConfig  # noqa: E402

PARTS = ("solves", "dL/dK", "update", "pruning", "regularization", "other")


class _Clock:
    """Accumulates seconds per part; ``excluded`` is time spent on replays.  A wrapped
    call inside another one (the regularizer inside the update's separate-pass path)
    counts for its own part only."""

    def __init__(self):
        self.t = dict.fromkeys(PARTS, 0.0)
        self.excluded = 0.0
        self.floor = 0.0  # seconds of the floor's replays
        self._inner = [0.0]  # seconds of wrapped calls inside the running one

    def wrap(self, part, fn):
        def timed(*args, **kwargs):
            self._inner.append(0.0)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                dt = time.perf_counter() - t0
                self.t[part] += dt - self._inner.pop()
                self._inner[-1] += dt
        return timed


def epoch_parts(data, p, reg, seed=0, warm_epochs=0, fused_pass=True):
    """Seconds of one epoch of Alg. 2, split into :data:`PARTS` (``fused_pass``:
    :attr:`Trainer.fused_pass`, False for the separate passes)."""
    config = TrainConfig(nodes=p, reg=reg, epochs=warm_epochs + 1, patience=None, seed=seed)
    tr = Trainer(config, data.n_features, data.n_classes)
    tr.fused_pass = fused_pass
    if warm_epochs:
        tr.fit(data.X_train, data.y_train, data.X_val, data.y_val, epochs=warm_epochs)
    clock = _Clock()
    orig_lag, orig_fwd = train_mod.loss_and_grad, train_mod.forward

    def loss_and_grad(*args, **kwargs):
        t0 = time.perf_counter()
        out = orig_lag(*args, **kwargs)
        t_all = time.perf_counter() - t0
        _, grads, fwd = out
        # replay Eq. (6)'s product on the same values, in backward's layout: (p, B)
        # C-contiguous F^T and U^T, the output a new C-contiguous (p, p) array
        Fn, Un = np.ascontiguousarray(fwd.F.T), np.ascontiguousarray(grads.U.T)
        t_dk, t_replays = np.inf, 0.0
        for _ in range(2):  # the faster of two: a page-fault stall of the kernel's
            t1 = time.perf_counter()  # memory compaction can hit any new 72 MB array
            dK = Fn @ Un.T
            np.fill_diagonal(dK, Un.sum(axis=1))
            del dK
            dt = time.perf_counter() - t1
            t_dk, t_replays = min(t_dk, dt), t_replays + dt
        K = args[0].K  # the floor's pass over K: K *= 1.0 (exact, K unchanged)
        t_pass = np.inf
        for _ in range(2):
            t1 = time.perf_counter()
            np.multiply(K, 1.0, out=K)
            dt = time.perf_counter() - t1
            t_pass, t_replays = min(t_pass, dt), t_replays + dt
        clock.excluded += t_replays
        clock.floor += t_dk + t_pass
        clock.t["dL/dK"] += t_dk
        clock.t["solves"] += t_all - t_dk
        return out

    tr.prune = clock.wrap("pruning", tr.prune)
    tr._reg_shrink = clock.wrap("regularization", tr._reg_shrink)
    tr._reg_gradient = clock.wrap("regularization", tr._reg_gradient)
    tr._update = clock.wrap("update", tr._update)
    train_mod.loss_and_grad = loss_and_grad
    train_mod.forward = clock.wrap("solves", orig_fwd)
    try:
        t0 = time.perf_counter()
        tr.fit(data.X_train, data.y_train, data.X_val, data.y_val, epochs=1)
        total = time.perf_counter() - t0 - clock.excluded
    finally:
        train_mod.loss_and_grad, train_mod.forward = orig_lag, orig_fwd
    clock.t["other"] = max(0.0, total - sum(v for k, v in clock.t.items() if k != "other"))
    return total, clock.t, clock.floor, tr.history[-1]


def pass_rows(nodes, repeat=9, B=32):
    """The per-batch passes over the dense p x p arrays, each alone on the same arrays,
    interleaved in one process, best of ``repeat``: the floor argument of issue 12.
    Rows [p, pass, time, passes over K] (time / one read-and-write pass over K)."""
    from refimpl.graph import prune
    from refimpl.graph.prune import _collect_above, candidate_capacity, candidate_threshold
    from refimpl.optim import _sgd_fused
    from refimpl.regularization import _nm_rate_kernel, nm_repulsion_sparse
    from refimpl.train import _update_pass

    rows = []
    for p in nodes:
        rng = np.random.default_rng(0)
        K0, G = rng.standard_normal((p, p)), rng.standard_normal((p, p))
        M, K = np.zeros((p, p)), np.empty((p, p))
        Fn, Un = rng.standard_normal((p, B)), rng.standard_normal((p, B))
        graph = prune(K0, k=10 * p)
        z, indptr, indices, d = nm_repulsion_sparse(graph)
        z = rng.integers(1, 60, p).astype(float)  # modules of several sizes
        t = candidate_threshold(graph.gamma)
        idx = np.empty(candidate_capacity(10 * p), dtype=np.int64)
        vals = np.empty(idx.size)
        lr, alpha, mu = 0.05, 1e-3, 0.5
        sgd = (M, M, False, mu, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, lr, 1e-8)
        passes = {
            "dL/dK product, into a new array (as backward)": lambda: Fn @ Un.T,
            "dL/dK product, into a kept buffer": lambda: np.matmul(Fn, Un.T, out=K),
            "one pass over K (read, write)": lambda: np.multiply(K, 1.0, out=K),
            "SGD step alone (read G, K, M; write K, M)":
                lambda: _sgd_fused(K.reshape(-1), M.reshape(-1), G.reshape(-1), mu, lr),
            "fused pass: SGD + NM proximal + candidate scan":
                lambda: _update_pass(K, G, *sgd, z, indptr, indices, d, alpha, np.empty(p),
                                     np.zeros(-(-p // 8) * 8, dtype=np.uint8), t, idx,
                                     vals),
            "separate NM proximal pass (nm_proximal's kernel)":
                lambda: _nm_rate_kernel(K, z, indptr, indices, d, alpha, lr, True,
                                        np.empty(d.size), K),
            "separate candidate scan (prune's first scan)":
                lambda: _collect_above(K, t, idx, vals),
        }
        times = {name: [] for name in passes}
        with threads_policy():
            for _ in range(repeat):
                for name, fn in passes.items():
                    np.copyto(K, K0)  # the same values for every pass and repeat
                    M.fill(0.0)
                    t0 = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - t0)
        one = min(times["one pass over K (read, write)"])
        for name, ts in times.items():
            rows.append([p, name, fmt_time(min(ts)), f"{min(ts) / one:.1f}"])
    return rows


def fused_update_rows(nodes, repeat=7):
    """The optimizer step on K alone: the fused pass (``Optimizer(fused=True)``, the
    default) against the NumPy expressions (``fused=False``), interleaved in one
    process, best of ``repeat``; rows [p, kind, fused, NumPy, ratio]."""
    rng = np.random.default_rng(0)
    rows = []
    for p in nodes:
        K0, g = rng.standard_normal((p, p)), rng.standard_normal((p, p))
        for kind in ("sgd", "adam"):
            runs = {}
            for fused in (True, False):
                opt = Optimizer(kind, 0.1, shapes={"K": (p, p)}, fused=fused)
                runs[fused] = (opt, {"K": K0.copy()}, [])
                opt.step(runs[fused][1], {"K": g})  # compile / warm up
            for _ in range(repeat):
                for fused in (True, False):
                    opt, params, ts = runs[fused]
                    t0 = time.perf_counter()
                    opt.step(params, {"K": g})
                    ts.append(time.perf_counter() - t0)
            tf, tn = min(runs[True][2]), min(runs[False][2])
            rows.append([p, kind, fmt_time(tf), fmt_time(tn), f"{tn / tf:.1f}x"])
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, nargs="+", default=[300, 1000, 3000])
    ap.add_argument("--reg", nargs="+", default=["none", "nm"], choices=("none", "l2", "nm"))
    ap.add_argument("--warm-epochs", type=int, default=0,
                    help="epochs trained before the timed one (default 0: the first epoch)")
    ap.add_argument("--quick", action="store_true", help="one tiny size (p = 40), for tests")
    ap.add_argument("--separate", action="store_true",
                    help="also time the separate passes (Trainer.fused_pass = False: update, "
                         "proximal step and pruning scan each a pass over K)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of each epoch (a fresh trainer each, interleaved over the "
                         "settings); the fastest is reported, with its floor (default 3)")
    ap.add_argument("--passes", action="store_true",
                    help="time only the per-batch passes over p x p arrays, each alone "
                         "(the floor argument)")
    ap.add_argument("--fused-update", action="store_true",
                    help="time only the optimizer step on K, fused vs NumPy (issue 12)")
    args = ap.parse_args(argv)
    nodes = [40] if args.quick else args.nodes
    print(f"machine: {machine()}")
    if args.passes:
        print(markdown_table(["p", "pass", "time", "passes over K"],
                             pass_rows([200] if args.quick else args.nodes)))
        return 0
    if args.fused_update:
        with threads_policy(None):
            print(markdown_table(["p", "optimizer", "fused", "NumPy", "NumPy / fused"],
                                 fused_update_rows(nodes)))
        return 0
    data = load_builtin("digits", seed=0)
    epoch_parts(data, 20, "nm")  # compile the kernels (cached) outside the timings
    rows = []
    for p in nodes:
        settings = [(reg, fused) for reg in args.reg
                    for fused in ((True, False) if args.separate else (True,))]
        best = {}
        for _ in range(1 if args.quick else max(1, args.repeat)):
            for reg, fused in settings:  # interleaved: load changes hit every setting
                run = epoch_parts(data, p, reg, fused_pass=fused, warm_epochs=args.warm_epochs)
                if (reg, fused) not in best or run[0] < best[reg, fused][0]:
                    best[reg, fused] = run
                print(f"  done: p={p} reg={reg} fused={fused}: {run[0]:.2f} s", file=sys.stderr)
        for reg, fused in settings:
            total, parts, floor, rec = best[reg, fused]
            house = sum(parts[k] for k in ("update", "pruning", "regularization", "other"))
            rows.append([p, reg if fused else f"{reg} (separate)", fmt_time(total)]
                        + [f"{100 * parts[k] / total:.0f} %" for k in PARTS]
                        + [f"{100 * house / total:.0f} %", fmt_time(floor),
                           f"{total / floor:.1f}x", rec["largest_module"]])
    print(markdown_table(["p", "reg", "epoch"] + list(PARTS)
                         + ["all but solves, dL/dK", "floor", "epoch/floor", "largest module"],
                         rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
