"""Networks trained with NM regularization on the built-in datasets (Fig. 11 and 12).

The paper shows the learned structures on its four UCI datasets (codon usage, gas,
Facebook, activity); those files are not bundled, so the four datasets bundled with
scikit-learn stand in for them.  Each network is trained with Alg. 2 and NM
regularization (``refimpl.train.Trainer``), the best validation epoch is restored and
its pruned graph (the trained gamma) is returned.  Trained once per process and shared
by the two figures (``ctx.shared``).  No mathematics here.
"""
from __future__ import annotations

from refimpl.datasets import BUILTIN_DATASETS as DATASETS


def settings(quick):
    return dict(nodes=64 if quick else 128, edges_per_node=3, alpha=1e-3,
                epochs=15 if quick else 80, patience=10, seed=0)


def trained_graphs(ctx):
    """``({dataset: (PrunedGraph, test_error)}, settings)`` for :data:`DATASETS`."""
    key = ("trained_graphs", ctx.quick)
    if key in ctx.shared:
        return ctx.shared[key]
    import numpy as np

    from refimpl import prune
    from refimpl.datasets import load
    from refimpl.train import Trainer, TrainConfig, predict

    s = settings(ctx.quick)
    out = {}
    for name in DATASETS:
        ctx.progress(f"training on {name}")
        d = load(name, seed=s["seed"])
        cfg = TrainConfig(nodes=s["nodes"], edges=s["edges_per_node"] * s["nodes"],
                          epochs=s["epochs"], reg="nm", alpha=s["alpha"],
                          patience=s["patience"], seed=s["seed"])
        tr = Trainer(cfg, d.n_features, d.n_classes)
        tr.fit(d.X_train, d.y_train, d.X_val, d.y_val)
        tr.restore_best()
        err = float(np.mean(predict(tr.net, d.X_test, tr.gamma) != d.y_test))
        out[name] = (prune(tr.net.K, gamma=tr.gamma), err)
    ctx.shared[key] = (out, s)
    return ctx.shared[key]
