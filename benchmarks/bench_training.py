"""Benchmark: where one training epoch's time goes (issue 12).

One epoch of ``refimpl train --dataset digits`` (the same seeded split,
TrainConfig defaults: B = 32, k = 10 p edges, SGD momentum 0.5, validation
forward at the end of the epoch) at p = 300, 1000, 3000 hidden nodes, with
``--reg none`` and ``--reg nm``, split into the parts of Alg. 2:

- solves: the forward and adjoint module solves (``loss_and_grad`` and the
  end-of-epoch validation forward, minus the dL/dK product);
- dL/dK: the (p, B) x (B, p) product of Eq. (6).  By default
  (``Trainer.blocked_grad``) the update pass forms it in row blocks of
  ``GRAD_BLOCK_ROWS`` into a kept buffer: after each update the same blocked
  products (F[j0:j1] @ U.T into a kept block, and the diagonal) are replayed
  alone on the same factors, the faster of two replays, and that time is moved
  from "update" to "dL/dK".  With the dense dL/dK (``--dense-grad`` rows, and
  the separate passes) it is the product into a new array in backward's
  layout, replayed right after each backward and moved from "solves" (a stall
  that hit the product inside backward stays in "solves").  Replays are not
  counted in the epoch;
- update: the optimizer step on K, W1, Wm; by default (``Trainer.fused_pass``) one
  compiled pass over K that also applies the NM proximal step (Thm. 3.1) and
  collects the next pruning's candidates, so both are in this column (minus
  the blocked products, see dL/dK);
- pruning: top-k selection (among those candidates), Tarjan and the schedule
  (Alg. 2 lines 5, 13);
- regularization: the NM proximal step (Thm. 3.1) when it is a pass of its own
  (``--separate`` adds rows with ``Trainer.fused_pass = False``, the reference
  path), and the explicit ``reg_step="thm31"`` term;
- other: the rest of the epoch (batching, bookkeeping).

The parts are timed by wrapping the Trainer's methods from outside (no timing
code in the library).  Next to the epoch: the dense-gradient floor, the p^2
work per batch the algorithm cannot avoid (the (p, B) x (B, p) product, in
row blocks into a kept buffer, and one read-and-write pass over K), measured
inside the epoch after every batch on its own arrays (a blocked-product replay
and a replayed ``K *= 1.0``, each the faster of two, not counted in the epoch),
so that the epoch and its floor see the same load.  ``--dense-grad`` adds rows
with ``Trainer.blocked_grad = False`` (backward's dense dL/dK, the previous
default).  Default threading as a user
gets it (:mod:`refimpl.threads`: one thread for numba and BLAS).  ``--repeat n``
runs every setting n times, interleaved, and reports the fastest epoch (with
its floor), and the least and largest epoch/floor ratio over the runs (each run's
epoch against the floor measured inside it).  ``--passes`` times the per-batch
passes over the p x p arrays alone (the floor argument of issue 12).  ``--batches N``
also lists the fastest run's epoch by mini-batch: the first N one by one, the median of
the others, and the end of the epoch (validation forward, best-epoch snapshot), each
with the floor measured inside it (where a first epoch's extra time goes).

The kernels are compiled (or loaded from numba's cache) before the timed runs, by one
untimed epoch at p = 300 per regularization and setting: a first epoch in a fresh process also pays
those loads once, which is not the epoch's work.

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


def _blocked_product(F, U, buf):
    """The trainer's dL/dK in row blocks (:func:`refimpl.train._update_blocked`'s BLAS
    calls and diagonal) into the kept ``buf``, without the update."""
    p = F.shape[0]
    blk = buf.shape[0]
    UT, flat, diag = U.T, buf.reshape(-1), U.sum(axis=1)
    for j0 in range(0, p, blk):
        j1 = min(p, j0 + blk)
        np.matmul(F[j0:j1], UT, out=buf[:j1 - j0])
        flat[j0:j0 + (j1 - j0) * (p + 1):p + 1] = diag[j0:j1]


def _best_of_two(fn):
    """(the faster of two timed calls, their sum)."""
    ts = []
    for _ in range(2):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts), sum(ts)


def epoch_parts(data, p, reg, seed=0, warm_epochs=0, fused_pass=True, blocked_grad=True):
    """Seconds of one epoch of Alg. 2, split into :data:`PARTS` (``fused_pass``:
    :attr:`Trainer.fused_pass`, False for the separate passes; ``blocked_grad``:
    :attr:`Trainer.blocked_grad`, False for backward's dense dL/dK).  Returns
    ``(seconds, parts, floor, record, batches)``; ``batches``: per mini-batch
    ``(seconds, parts, floor, largest module)``, in order."""
    config = TrainConfig(nodes=p, reg=reg, epochs=warm_epochs + 1, patience=None, seed=seed)
    tr = Trainer(config, data.n_features, data.n_classes)
    tr.fused_pass, tr.blocked_grad = fused_pass, blocked_grad
    if warm_epochs:
        tr.fit(data.X_train, data.y_train, data.X_val, data.y_val, epochs=warm_epochs)
    clock = _Clock()
    orig_lag = train_mod.loss_and_grad
    orig_fwd, orig_update = train_mod.forward, tr._update
    buf = np.empty((min(p, train_mod.GRAD_BLOCK_ROWS), p))

    def floor_pass(K):  # the floor's pass over K: K *= 1.0 (exact, K unchanged)
        t_pass, t_rep = _best_of_two(lambda: np.multiply(K, 1.0, out=K))
        clock.excluded += t_rep
        clock.floor += t_pass

    def loss_and_grad(*args, **kwargs):
        if kwargs.get("grad_K") == "factors":  # blocked: dL/dK is timed inside the update
            return loss_and_grad_factors(*args, **kwargs)
        t0 = time.perf_counter()
        out = orig_lag(*args, **kwargs)
        t_all = time.perf_counter() - t0
        _, grads, fwd = out
        # replay Eq. (6)'s product on the same values, in backward's layout: (p, B)
        # C-contiguous F^T and U^T, the output a new C-contiguous (p, p) array (the
        # faster of two: a page-fault stall of the kernel's memory compaction can hit
        # any new 72 MB array)
        Fn, Un = np.ascontiguousarray(fwd.F.T), np.ascontiguousarray(grads.U.T)

        def dense():
            dK = Fn @ Un.T
            np.fill_diagonal(dK, Un.sum(axis=1))

        t_dk, t_rep = _best_of_two(dense)
        t_blk, t_rep2 = _best_of_two(lambda: _blocked_product(Fn, Un, buf))
        clock.excluded += t_rep + t_rep2
        clock.floor += t_blk
        floor_pass(args[0].K)
        clock.t["dL/dK"] += t_dk
        clock.t["solves"] += t_all - t_dk
        return out

    def factors(*args, **kwargs):
        out = orig_lag(*args, **kwargs)
        tr._bench_factors = out[1].K_factors
        return out

    loss_and_grad_factors = clock.wrap("solves", factors)

    timed_update = clock.wrap("update", orig_update)

    def update(graph, gK, grads):
        timed_update(graph, gK, grads)
        if gK is None:  # blocked: the products inside the pass, replayed alone
            F, U = tr._bench_factors
            t_blk, t_rep = _best_of_two(lambda: _blocked_product(F, U, buf))
            clock.excluded += t_rep
            clock.floor += t_blk
            floor_pass(tr.net.K)
            clock.t["dL/dK"] += t_blk  # moved from the update pass that contains them
            clock.t["update"] -= t_blk

    orig_prune, orig_batch, batches = tr.prune, tr.train_batch, []

    def prune():
        graph = orig_prune()
        tr._bench_graph = graph
        return graph

    def train_batch(X, y):  # the batch's share of every part (replays not counted)
        parts0, floor0, excluded0 = dict(clock.t), clock.floor, clock.excluded
        t0 = time.perf_counter()
        out = orig_batch(X, y)
        dt = time.perf_counter() - t0 - (clock.excluded - excluded0)
        batches.append((dt, {k: clock.t[k] - parts0[k] for k in PARTS},
                        clock.floor - floor0, tr._bench_graph.schedule.max_module_size))
        return out

    tr.prune = clock.wrap("pruning", prune)
    tr.train_batch = train_batch
    tr._reg_shrink = clock.wrap("regularization", tr._reg_shrink)
    tr._reg_gradient = clock.wrap("regularization", tr._reg_gradient)
    tr._update = update
    train_mod.loss_and_grad = loss_and_grad
    train_mod.forward = clock.wrap("solves", orig_fwd)
    try:
        t0 = time.perf_counter()
        tr.fit(data.X_train, data.y_train, data.X_val, data.y_val, epochs=1)
        total = time.perf_counter() - t0 - clock.excluded
    finally:
        train_mod.loss_and_grad, train_mod.forward = orig_lag, orig_fwd
    clock.t["other"] = max(0.0, total - sum(v for k, v in clock.t.items() if k != "other"))
    return total, clock.t, clock.floor, tr.history[-1], batches


def batch_rows(run, first):
    """Rows [batch, time, parts..., floor, time / floor, largest module] of an
    :func:`epoch_parts` run: its first ``first`` mini-batches one by one, the median of
    the batches after them (per column), and the end of the epoch (what is not in a
    batch: the validation forward, the best-epoch snapshot, the record)."""
    total, _, floor, _, batches = run
    shown = PARTS[:4]  # solves, dL/dK, update, pruning

    def row(label, dt, parts, fl, largest):
        return ([label, fmt_time(dt)] + [fmt_time(parts[k]) for k in shown]
                + [fmt_time(fl), f"{dt / fl:.2f}x" if fl > 0 else "-", largest])

    rows = [row(str(i), *b) for i, b in enumerate(batches[:first])]
    rest = batches[first:]
    if rest:
        med = lambda xs: float(np.median(xs))  # noqa: E731
        rows.append(row(f"median of {first}-{len(batches) - 1}", med([b[0] for b in rest]),
                        {k: med([b[1][k] for b in rest]) for k in shown},
                        med([b[2] for b in rest]), int(med([b[3] for b in rest]))))
    rows.append(["end of epoch", fmt_time(total - sum(b[0] for b in batches))]
                + ["-"] * len(shown)
                + [fmt_time(floor - sum(b[2] for b in batches)), "-", "-"])
    return rows


def pass_rows(nodes, repeat=9, B=32):
    """The per-batch passes over the dense p x p arrays, each alone on the same arrays,
    interleaved in one process, best of ``repeat``: the floor argument of issue 12.
    Rows [p, pass, time, passes over K] (time / one read-and-write pass over K)."""
    from refimpl.graph import prune
    from refimpl.graph.prune import _collect_above, candidate_capacity, candidate_threshold
    from refimpl.optim import _sgd_fused
    from refimpl.regularization import _nm_rate_kernel, nm_repulsion_sparse
    from refimpl.train import GRAD_BLOCK_ROWS, _update_blocked, _update_pass

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
        buf = np.empty((min(p, GRAD_BLOCK_ROWS), p))
        tail = lambda: (z, indptr, indices, d, alpha, np.empty(p),  # noqa: E731
                        np.zeros(-(-p // 8) * 8, dtype=np.uint8), t, idx, vals)
        passes = {
            "dL/dK product, into a new array (as backward)": lambda: Fn @ Un.T,
            "dL/dK product, into a kept buffer": lambda: np.matmul(Fn, Un.T, out=K),
            f"dL/dK product in row blocks of {buf.shape[0]}, into a kept block":
                lambda: _blocked_product(Fn, Un, buf),
            "one pass over K (read, write)": lambda: np.multiply(K, 1.0, out=K),
            "SGD step alone (read G, K, M; write K, M)":
                lambda: _sgd_fused(K.reshape(-1), M.reshape(-1), G.reshape(-1), mu, lr),
            "fused pass: SGD + NM proximal + candidate scan":
                lambda: _update_pass(K, G, *sgd, z, indptr, indices, d, alpha, np.empty(p),
                                     np.zeros(-(-p // 8) * 8, dtype=np.uint8), t, idx,
                                     vals),
            "fused pass with dL/dK in row blocks (the products included)":
                lambda: _update_blocked(K, (Fn, Un), None, buf, sgd, tail()),
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
    ap.add_argument("--dense-grad", action="store_true",
                    help="also time backward's dense dL/dK (Trainer.blocked_grad = False) "
                         "with the fused pass")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of each epoch (a fresh trainer each, interleaved over the "
                         "settings); the fastest is reported, with its floor (default 3)")
    ap.add_argument("--passes", action="store_true",
                    help="time only the per-batch passes over p x p arrays, each alone "
                         "(the floor argument)")
    ap.add_argument("--batches", type=int, default=0, metavar="N",
                    help="also list the fastest run's first N mini-batches one by one, the "
                         "median of the others and the end of the epoch (where a first "
                         "epoch's extra time goes)")
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
    # Compile (or load from numba's cache) the kernels outside the timings: an epoch at
    # p = 300 per regularization goes through the paths the larger runs take (singleton
    # runs, Newton groups, fixed-point and Krylov modules); p = 20 had left six kernels
    # to load inside the first timed epoch at p = 3000.
    modes = ["blocked"] + ["dense"] * args.dense_grad + ["separate"] * args.separate
    for reg in args.reg:
        for mode in modes:
            epoch_parts(data, 20 if args.quick else 300, reg, fused_pass=mode != "separate",
                        blocked_grad=mode == "blocked")
    rows, per_batch = [], []
    for p in nodes:
        settings = [(reg, mode) for reg in args.reg for mode in modes]
        best, ratios = {}, {}
        for _ in range(1 if args.quick else max(1, args.repeat)):
            for reg, mode in settings:  # interleaved: load changes hit every setting
                run = epoch_parts(data, p, reg, fused_pass=mode != "separate",
                                  blocked_grad=mode == "blocked",
                                  warm_epochs=args.warm_epochs)
                if (reg, mode) not in best or run[0] < best[reg, mode][0]:
                    best[reg, mode] = run
                ratios.setdefault((reg, mode), []).append(run[0] / run[2])
                print(f"  done: p={p} reg={reg} {mode}: {run[0]:.2f} s", file=sys.stderr)
        for reg, mode in settings:
            total, parts, floor, rec, _ = best[reg, mode]
            house = sum(parts[k] for k in ("update", "pruning", "regularization", "other"))
            label = {"blocked": reg, "dense": f"{reg} (dense dL/dK)",
                     "separate": f"{reg} (separate)"}[mode]
            rows.append([p, label, fmt_time(total)]
                        + [f"{100 * parts[k] / total:.0f} %" for k in PARTS]
                        + [f"{100 * house / total:.0f} %", fmt_time(floor),
                           f"{total / floor:.2f}x",
                           f"{min(ratios[reg, mode]):.2f}-{max(ratios[reg, mode]):.2f}x",
                           rec["largest_module"]])
            if args.batches > 0:
                per_batch.append((p, label, batch_rows(best[reg, mode], args.batches)))
    print(markdown_table(["p", "reg", "epoch"] + list(PARTS)
                         + ["all but solves, dL/dK", "floor", "epoch/floor",
                            "epoch/floor, all runs", "largest module"], rows))
    for p, label, table in per_batch:
        print(f"\np = {p}, {label}: the fastest run's epoch by mini-batch")
        print(markdown_table(["batch", "time"] + list(PARTS[:4])
                             + ["floor", "time / floor", "largest module"], table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
