"""Paper Fig. 4a: running time vs node count (p <= 300), neural modules vs one whole-graph solve.

Trains on scikit-learn's digits with Alg. 2 (``refimpl.train.Trainer``), for each node
count p and three models with the same edge budget k = 4p:

- NM + NM regularization (``mode="levels"``, ``reg="nm"``): the paper's method;
- NM without regularization (``mode="levels"``, ``reg="none"``): same solver, no
  regularizer, to separate the two effects;
- whole-graph solve (``mode="whole"``, ``reg="none"``): the same pruned hidden graph as
  one implicit layer solved by fixed-point iteration, the stand-in for the paper's DEQ in
  this figure.  It is not Table 1's DEQ (:mod:`refimpl.baselines.deq`: a dense p x p
  ``W``, no pruning), hence its label.

The running time is the shortest wall time of a training epoch after the first (the
Trainer's history records it; the minimum is the least disturbed by other processes);
the largest module of the last epoch is kept too.
"""
from __future__ import annotations

import numpy as np

from _figlib import maker, pyplot, read_csv, save, write_csv

NAME = "fig4a"
TITLE = "running time vs node count: NM with NM regularization vs a whole-graph solve"
MODELS = (  # (label, mode, reg)
    ("NM + NM reg.", "levels", "nm"),
    ("NM, no reg.", "levels", "none"),
    ("whole-graph solve (pruned graph)", "whole", "none"),
)


def compute(ctx):
    from refimpl.datasets import load
    from refimpl.solvers import ConvergenceError
    from refimpl.train import Trainer, TrainConfig

    nodes = (50, 100, 150, 200, 250, 300) if ctx.quick else tuple(range(25, 301, 25))
    epochs = 5 if ctx.quick else 8
    d = load("digits", seed=0)
    n_train = 512 if ctx.quick else d.X_train.shape[0]
    X, y = d.X_train[:n_train], d.y_train[:n_train]
    cols = {k: [] for k in ("model", "mode", "reg", "nodes", "edges", "seconds_per_epoch",
                            "largest_module", "levels", "train_error", "converged")}
    for p in nodes:
        for label, mode, reg in MODELS:
            ctx.progress(f"p={p} {label}")
            cfg = TrainConfig(nodes=p, edges=4 * p, epochs=epochs, batch_size=64, reg=reg,
                              alpha=1e-3, mode=mode, patience=None, seed=0)
            tr = Trainer(cfg, d.n_features, d.n_classes)
            try:
                hist = tr.fit(X, y)
                ok = True
            except (ConvergenceError, FloatingPointError):  # (TrainingDivergedError too)
                hist, ok = tr.history, False
            secs = [r["seconds"] for r in hist[1:]]
            last = hist[-1] if hist else {}
            cols["model"].append(label)
            cols["mode"].append(mode)
            cols["reg"].append(reg)
            cols["nodes"].append(p)
            cols["edges"].append(cfg.k)
            cols["seconds_per_epoch"].append(float(np.min(secs)) if secs else np.nan)
            cols["largest_module"].append(last.get("largest_module", -1))
            cols["levels"].append(last.get("levels", -1))
            cols["train_error"].append(last.get("train_error", np.nan))
            cols["converged"].append(int(ok))
    meta = ctx.cache_key | {
        "dataset": "digits", "train_samples": int(n_train), "epochs": epochs,
        "batch_size": 64, "edges": "4 * nodes", "alpha": 1e-3,
        "timing": "shortest seconds per training epoch, epochs 2..E"}
    return write_csv(ctx.path(f"{NAME}.csv"), cols, meta)


def plot(ctx, data_path):
    cols, meta = read_csv(data_path)
    plt = pyplot()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(8.4, 3.4))
    for (label, _, _), marker in zip(MODELS, "osD"):
        sel = cols["model"] == label
        ax.plot(cols["nodes"][sel], cols["seconds_per_epoch"][sel], marker=marker, ms=4,
                label=label)
        ax2.plot(cols["nodes"][sel], cols["largest_module"][sel], marker=marker, ms=4,
                 label=label)
    ax.set_xlabel("hidden nodes p")
    ax.set_ylabel("time per training epoch, best of epochs 2..E (s)")
    ax.set_title("(a) running time", fontsize=9)
    ax.legend()
    ax2.set_xlabel("hidden nodes p")
    ax2.set_ylabel("largest module after training (nodes)")
    ax2.set_title("(b) largest SCC (the whole-graph solve ignores it)", fontsize=9)
    fig.suptitle(f"Paper Fig. 4a: {TITLE}", fontsize=10)
    ax2.legend()
    fig.text(0.01, 0.01, f"digits, {meta['train_samples']} samples, k = 4p edges, "
             f"{meta['epochs']} epochs, {meta['threads']} thread(s)", fontsize=7, color="0.4")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return save(fig, ctx, NAME)


make = maker(NAME, compute, plot, timing=True)
