"""Acceptance run: NM networks vs scikit-learn's MLPClassifier on digits.

Mean +- standard deviation of the test error over seeds, on the same seeded
stratified splits (refimpl.datasets.load), and the seconds per
epoch.  NM: ``--nodes`` hidden nodes, ``--edges`` kept edges, SGD with
momentum 0.5, early stopping on the validation split; MLP:
``MLPClassifier(hidden_layer_sizes=(nodes,))`` with its defaults (Adam).

Run ``python benchmarks/bench_digits.py`` or ``refimpl bench digits``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import machine, markdown_table  # noqa: E402

from refimpl.datasets import load  # noqa: E402
from refimpl.train import Trainer, TrainConfig, predict  # noqa: E402


def run_nm(data, seed, **config):
    tr = Trainer(TrainConfig(seed=seed, **config), data.n_features, data.n_classes)
    t0 = time.perf_counter()
    hist = tr.fit(data.X_train, data.y_train, data.X_val, data.y_val)
    secs = (time.perf_counter() - t0) / len(hist)
    tr.restore_best()
    return float(np.mean(predict(tr.net, data.X_test, tr.gamma) != data.y_test)), secs, hist


def run_mlp(data, seed, nodes):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        m = MLPClassifier(hidden_layer_sizes=(nodes,), random_state=seed, max_iter=500)
        m.fit(data.X_train, data.y_train)
        secs = (time.perf_counter() - t0) / m.n_iter_
    return float(np.mean(m.predict(data.X_test) != data.y_test)), secs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--edges", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--patience", type=int, default=20)
    ap.add_argument("--regs", default="none,nm", help="NM variants to run (none, l2, nm)")
    args = ap.parse_args(argv)
    print(f"machine: {machine()}")
    names = {"none": "NM (no regularization)", "l2": "NM + L2 (alpha 1e-3)",
             "nm": "NM + NM regularization (alpha 1e-3)"}
    regs = args.regs.split(",")
    rows = {names[r]: [] for r in regs}
    rows[f"MLPClassifier(hidden_layer_sizes=({args.nodes},))"] = []
    secs = {k: [] for k in rows}
    extra = {}
    for seed in range(args.seeds):
        data = load(args.dataset, seed=seed)
        common = dict(nodes=args.nodes, edges=args.edges, epochs=args.epochs, lr=args.lr,
                      patience=args.patience)
        for reg in regs:
            name = names[reg]
            err, s, hist = run_nm(data, seed, reg=reg, alpha=1e-3, **common)
            rows[name].append(err)
            secs[name].append(s)
            extra.setdefault(name, []).append(hist[-1]["largest_module"])
        name = f"MLPClassifier(hidden_layer_sizes=({args.nodes},))"
        err, s = run_mlp(data, seed, args.nodes)
        rows[name].append(err)
        secs[name].append(s)
        print(f"  seed {seed} done", file=sys.stderr)
    table = [[name, f"{100 * np.mean(v):.2f} +- {100 * np.std(v):.2f}",
              f"{np.mean(secs[name]):.3f}",
              "-" if name not in extra else f"{np.mean(extra[name]):.0f}"]
             for name, v in rows.items()]
    print(f"{args.dataset}, {args.seeds} seeds, test error in percent; NM: nodes {args.nodes}, "
          f"edges {args.edges}, lr {args.lr}, up to {args.epochs} epochs, patience {args.patience}")
    print(markdown_table(["model", "test error %", "s / epoch", "largest module (last epoch)"],
                         table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
