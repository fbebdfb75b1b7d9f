"""Paper Fig. 9: prediction error vs the NM regularization strength alpha and the edge
budget k (heat map), on a built-in dataset.

For each (alpha, k) a network is trained with Alg. 2 and NM regularization
(``refimpl.train.Trainer``, ``reg="nm"``); the error is the test error (Alg. 3,
``refimpl.train.predict``) at the epoch of lowest validation error, averaged over the
seeds.  The paper shows one heat map per UCI dataset; the UCI files are not bundled,
so this uses scikit-learn's digits.
"""
from __future__ import annotations

import numpy as np

from _figlib import maker, pyplot, read_csv, save, write_csv

NAME = "fig9"
TITLE = "test error vs NM regularization alpha and edges kept k"


def settings(quick):
    if quick:
        return dict(dataset="digits", nodes=32, alphas=(1e-4, 1e-3, 1e-2, 1e-1),
                    k_per_node=(1, 2, 4, 8), epochs=12, seeds=(0,))
    return dict(dataset="digits", nodes=64, alphas=(1e-5, 1e-4, 1e-3, 1e-2, 1e-1),
                k_per_node=(1, 2, 4, 8, 16), epochs=60, seeds=(0, 1, 2))


def compute(ctx):
    from refimpl.datasets import load
    from refimpl.train import Trainer, TrainConfig, predict

    s = settings(ctx.quick)
    p = s["nodes"]
    cols = {k: [] for k in ("alpha", "k", "seed", "test_error", "val_error", "epochs_run",
                            "largest_module")}
    for seed in s["seeds"]:
        d = load(s["dataset"], seed=seed)
        for alpha in s["alphas"]:
            for kp in s["k_per_node"]:
                ctx.progress(f"seed {seed} alpha={alpha:g} k={kp * p}")
                cfg = TrainConfig(nodes=p, edges=kp * p, epochs=s["epochs"], reg="nm",
                                  alpha=alpha, patience=10, seed=seed)
                tr = Trainer(cfg, d.n_features, d.n_classes)
                tr.fit(d.X_train, d.y_train, d.X_val, d.y_val)
                tr.restore_best()
                pred = predict(tr.net, d.X_test, tr.gamma)
                cols["alpha"].append(alpha)
                cols["k"].append(kp * p)
                cols["seed"].append(seed)
                cols["test_error"].append(float(np.mean(pred != d.y_test)))
                cols["val_error"].append(tr.best_val)
                cols["epochs_run"].append(tr.epoch)
                cols["largest_module"].append(tr.prune().schedule.max_module_size)
    meta = ctx.cache_key | {"dataset": s["dataset"], "nodes": p, "epochs": s["epochs"],
                            "patience": 10, "reg": "nm",
                            "error": "test error at the best validation epoch"}
    return write_csv(ctx.path(f"{NAME}.csv"), cols, meta)


def plot(ctx, data_path):
    cols, meta = read_csv(data_path)
    alphas = np.unique(cols["alpha"])
    ks = np.unique(cols["k"])
    grid = np.full((alphas.size, ks.size), np.nan)
    for i, a in enumerate(alphas):
        for j, k in enumerate(ks):
            grid[i, j] = np.mean(cols["test_error"][(cols["alpha"] == a) & (cols["k"] == k)])
    n_seeds = np.unique(cols["seed"]).size
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.4, 4.0))
    im = ax.imshow(grid, origin="lower", cmap="viridis_r", aspect="auto")
    for i in range(alphas.size):
        for j in range(ks.size):
            ax.text(j, i, f"{grid[i, j]:.3f}", ha="center", va="center", fontsize=7,
                    color="w" if grid[i, j] > np.nanmean(grid) else "k")
    ax.set_xticks(range(ks.size), [f"{int(k)}" for k in ks])
    ax.set_yticks(range(alphas.size), [f"{a:g}" for a in alphas])
    ax.set_xlabel(f"edges kept k (of {meta['nodes']} x {meta['nodes'] - 1} possible)")
    ax.set_ylabel("NM regularization alpha (dimensionless)")
    ax.set_title(f"Paper Fig. 9: {TITLE}\n({meta['dataset']}, p = {meta['nodes']}, "
                 f"mean of {n_seeds} seed{'s' if n_seeds > 1 else ''})", fontsize=9)
    fig.colorbar(im, ax=ax, label="test error (fraction misclassified)")
    # A heat map has no lines to label: the colour bar is its legend.
    fig.tight_layout()
    return save(fig, ctx, NAME)


make = maker(NAME, compute, plot)
