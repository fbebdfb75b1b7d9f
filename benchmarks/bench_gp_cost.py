"""Supplement Table 11: training cost of a multi-layer connected graph perceptron vs an MLP.

The same task and the same network twice: an MLP (``refimpl.baselines.mlp``, layered
matrix products) and the graph perceptron that S-Thm. 1 builds from it
(``refimpl.perceptron.mlp_to_graph``: the MLP's layers as blocks of one N x N adjacency,
run by ``steps = L + 1`` message-passing steps of ``gp_trace`` / ``gp_backward``).  Both
start from the same parameters and take the same plain SGD steps on the same shuffled
mini-batches for a fixed number of epochs; the GP's gradient is restricted to the MLP's
blocks, so both remain the same function (the final training losses are printed as a
check that they agree to rounding).  What differs is the representation, and so the cost:
the GP multiplies by the whole N x N adjacency at every step.

Reported (one process, ``--repeat`` interleaved runs of each): seconds per training epoch,
the fastest and the median of all epochs (the fastest is the least disturbed by other
load on a shared machine), and the peak of traced Python memory (``tracemalloc``, which
sees NumPy's buffers) during training, measured in a separate run because tracing slows
the code.  The supplement's
numbers are on a GPU (RTX 4090, 1000 epochs); these are on the CPU with NumPy's default
BLAS threading.

Run ``python benchmarks/bench_gp_cost.py`` or ``refimpl bench gp_cost``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import machine, markdown_table  # noqa: E402

from refimpl.baselines.mlp import MLP, mlp_loss_and_grad  # noqa: E402
from refimpl.datasets import load  # noqa: E402
from refimpl.model import output_loss  # noqa: E402
from refimpl.perceptron import gp_backward, gp_trace, mlp_to_graph  # noqa: E402


def _layer_blocks(mlp):
    """Where the GP of S-Eq. 2 has parameters: the MLP's weight and bias blocks (not the
    fixed identity block of the inputs)."""
    ones_w = [np.ones_like(W) for W in mlp.weights]
    ones_b = [np.ones_like(c) for c in mlp.biases]
    A1, b1 = mlp_to_graph(ones_w, ones_b)
    n0 = mlp.n_in
    A1[np.arange(n0), np.arange(n0)] = 0.0            # the identity block is not trained
    return A1 != 0, b1 != 0


def train_mlp(mlp, X, y, epochs, batch, lr, seed, times):
    rng = np.random.default_rng(seed)
    params = mlp.params()
    for _ in range(epochs):
        t0 = time.perf_counter()
        order = rng.permutation(X.shape[0])
        for s in range(0, X.shape[0], batch):
            idx = order[s:s + batch]
            _, grads, _ = mlp_loss_and_grad(mlp, X[idx], y[idx])
            for k, g in grads.as_dict().items():
                params[k] -= lr * g
        times.append(time.perf_counter() - t0)
    return output_loss(_mlp_z(mlp, X), y, "softmax")[0]


def _mlp_z(mlp, X):
    from refimpl.baselines.mlp import mlp_forward

    return mlp_forward(mlp, X).Z


def train_gp(A, b, masks, X, y, steps, n_out, activation, epochs, batch, lr, seed, times):
    rng = np.random.default_rng(seed)
    mA, mb = masks
    for _ in range(epochs):
        t0 = time.perf_counter()
        order = rng.permutation(X.shape[0])
        for s in range(0, X.shape[0], batch):
            idx = order[s:s + batch]
            tr = gp_trace(A, b, X[idx], steps, activation, n_out=n_out)
            _, G = output_loss(tr.z, y[idx], "softmax")
            g = gp_backward(A, tr, G)
            A -= lr * (g.A * mA)
            b -= lr * (g.b * mb)
        times.append(time.perf_counter() - t0)
    z = gp_trace(A, b, X, steps, activation, n_out=n_out).z
    return output_loss(z, y, "softmax")[0]


def run_once(which, data, args, *, trace_memory=False):
    """Train one model from scratch; returns (final loss, per-epoch seconds or peak bytes)."""
    mlp = MLP.random(data.n_features, args.widths, data.n_classes, seed=args.seed,
                     activation=args.activation)
    X, y = data.X_train, data.y_train
    times = []
    if which == "gp":
        A, b = mlp_to_graph(mlp.weights, mlp.biases)
        masks = _layer_blocks(mlp)
        fn = lambda: train_gp(A, b, masks, X, y, len(args.widths) + 1, data.n_classes,  # noqa: E731
                              args.activation, args.epochs, args.batch_size, args.lr, args.seed,
                              times)
    else:
        fn = lambda: train_mlp(mlp, X, y, args.epochs, args.batch_size, args.lr, args.seed,  # noqa: E731
                               times)
    if trace_memory:
        tracemalloc.start()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        loss = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        return loss, peak
    return fn(), times


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="digits", help="a name of refimpl.datasets.load")
    ap.add_argument("--path", default=None, help="local copy for a data set read from disk")
    ap.add_argument("--widths", default="128,128", help="MLP hidden widths (comma separated)")
    ap.add_argument("--epochs", type=int, default=10, help="fixed epoch budget (Table 11: 1000)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--activation", default="swish")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved timing repeats (best of)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    args.widths = tuple(int(w) for w in args.widths.split(","))
    data = load(args.dataset, args.path, seed=args.seed)
    print(f"machine: {machine()}")
    sizes = (data.n_features, *args.widths, data.n_classes)
    print(f"data: {args.dataset}, {len(data.y_train)} training rows; MLP {sizes}; GP with "
          f"N = {sum(sizes)} neurons, {len(args.widths) + 1} steps; {args.epochs} epochs, "
          f"batch {args.batch_size}, SGD lr {args.lr}")
    epoch_times = {"mlp": [], "gp": []}
    losses = {}
    for _ in range(args.repeat):
        for which in ("mlp", "gp"):                      # interleaved A/B
            losses[which], t = run_once(which, data, args)
            epoch_times[which] += t
    best = {w: min(t) for w, t in epoch_times.items()}
    med = {w: float(np.median(t)) for w, t in epoch_times.items()}
    peak = {w: run_once(w, data, args, trace_memory=True)[1] for w in ("mlp", "gp")}
    rows = [[name, f"{best[w] * 1e3:.1f} ms", f"{med[w] * 1e3:.1f} ms",
             f"{peak[w] / 2**20:.2f} MiB", f"{losses[w]:.6f}"]
            for name, w in (("multi-layer connected GP", "gp"), ("MLP", "mlp"))]
    rows.append(["ratio GP / MLP", f"{best['gp'] / best['mlp']:.1f}x",
                 f"{med['gp'] / med['mlp']:.1f}x", f"{peak['gp'] / peak['mlp']:.1f}x", ""])
    print(markdown_table(["", "time / epoch (fastest)", "time / epoch (median)",
                          "peak traced memory", f"training loss after {args.epochs} epochs"],
                         rows))
    if not np.isclose(losses["gp"], losses["mlp"], rtol=1e-6, atol=1e-9):
        print("warning: the GP and the MLP ended at different losses: not the same model")
    return 0


if __name__ == "__main__":
    sys.exit(main())
