"""Paper Fig. 2: test error of NMs, cyclic Forward-Forward and DARTS on binary versions
of the four classification tasks (Sec. 4.2).

Every dataset is turned into a binary task by ``refimpl.baselines.binary.binary_task``
(a seeded split of the classes into two groups; the same labels for every method).  NMs:
``refimpl.train.Trainer`` with NM regularization, best validation epoch (Alg. 2, 3).
Cyclic FF: ``refimpl.baselines.cff.CFFTrainer``; DARTS: ``refimpl.baselines.darts.
DartsSearch`` (search, discretize, retrain).  The paper's UCI datasets are read when a
local copy is found (``refimpl.datasets.load``); otherwise scikit-learn's bundled
digits, wine, breast cancer and iris stand in, and the title says so.
"""
from __future__ import annotations

import numpy as np

from _figlib import maker, pyplot, read_csv, save, write_csv

NAME = "fig2"
TITLE = "test error on binary tasks: NMs vs cyclic Forward-Forward vs DARTS"
METHODS = ("NMs&NM", "Cyclic FF", "DARTS")
#: (the paper's dataset, its bundled stand-in), names of ``refimpl.datasets.load``
PAIRS = (("codon", "digits"), ("gas_drift", "wine"), ("facebook", "breast_cancer"),
         ("daily_sports", "iris"))


def settings(quick):
    if quick:
        return dict(nodes=32, edges_per_node=3, alpha=1e-3, epochs=30, ff_epochs=30,
                    search_epochs=10, seeds=(0, 1, 2), split_seed=0)
    return dict(nodes=64, edges_per_node=4, alpha=1e-3, epochs=100, ff_epochs=100,
                search_epochs=30, seeds=(0, 1, 2), split_seed=0)


def datasets(seed):
    """The four tasks: the UCI copy where found, else the bundled stand-in."""
    from refimpl.datasets import load

    out = []
    for paper, bundled in PAIRS:
        try:
            out.append((load(paper, seed=seed), "uci"))
        except FileNotFoundError:
            out.append((load(bundled, seed=seed), "bundled"))
    return out


def compute(ctx):
    from refimpl.baselines.binary import binary_task
    from refimpl.baselines.cff import CFFTrainer
    from refimpl.baselines.darts import DartsSearch
    from refimpl.train import Trainer, TrainConfig, predict

    s = settings(ctx.quick)
    cols = {k: [] for k in ("dataset", "source", "method", "seed", "test_error",
                            "positive_rate")}
    for seed in s["seeds"]:
        for data, source in datasets(seed):
            d = binary_task(data, seed=s["split_seed"])
            ctx.progress(f"{d.name} seed {seed}")
            cfg = TrainConfig(nodes=s["nodes"], edges=s["edges_per_node"] * s["nodes"],
                              epochs=s["epochs"], reg="nm", alpha=s["alpha"], seed=seed)
            tr = Trainer(cfg, d.n_features, 2)
            tr.fit(d.X_train, d.y_train, d.X_val, d.y_val)
            tr.restore_best()
            preds = {"NMs&NM": predict(tr.net, d.X_test, tr.gamma)}
            ff = CFFTrainer(d.n_features, 2, epochs=s["ff_epochs"], seed=seed)
            ff.fit(d.X_train, d.y_train, d.X_val, d.y_val)
            ff.restore_best()
            preds["Cyclic FF"] = ff.predict(d.X_test)
            da = DartsSearch(d.n_features, 2, search_epochs=s["search_epochs"],
                             epochs=s["epochs"], seed=seed)
            da.fit(d.X_train, d.y_train, d.X_val, d.y_val)
            preds["DARTS"] = da.predict(d.X_test)
            for m in METHODS:
                cols["dataset"].append(data.name)
                cols["source"].append(source)
                cols["method"].append(m)
                cols["seed"].append(seed)
                cols["test_error"].append(float(np.mean(preds[m] != d.y_test)))
                cols["positive_rate"].append(float(np.mean(d.y_test)))
    meta = ctx.cache_key | {"settings": {k: list(v) if isinstance(v, tuple) else v
                                         for k, v in s.items()},
                            "binary": "seeded class split (refimpl.baselines.binary)",
                            "error": "test error at the best validation epoch"}
    return write_csv(ctx.path(f"{NAME}.csv"), cols, meta)


def plot(ctx, data_path):
    cols, meta = read_csv(data_path)
    names = list(dict.fromkeys(cols["dataset"]))
    bundled = sorted({n for n, s in zip(cols["dataset"], cols["source"]) if s == "bundled"})
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    width = 0.26
    top = 0.0
    for k, m in enumerate(METHODS):
        mean, lo, hi = [], [], []
        for n in names:
            e = cols["test_error"][(cols["dataset"] == n) & (cols["method"] == m)]
            mean.append(e.mean())
            lo.append(e.mean() - e.min())
            hi.append(e.max() - e.mean())
        x = np.arange(len(names)) + (k - 1) * width
        ax.bar(x, mean, width, yerr=[lo, hi], label=m, capsize=2)
        for xi, v in zip(x, mean):
            ax.text(xi, v, f"{v:.3f}", ha="center", va="bottom", fontsize=6)
        top = max(top, max(np.add(mean, hi)))
    ax.set_ylim(0, 1.3 * top)
    ax.set_xticks(range(len(names)), [f"{n}\n(binary)" for n in names])
    ax.set_ylabel("test error (fraction misclassified)")
    n_seeds = np.unique(cols["seed"]).size
    src = (f"bundled stand-ins ({', '.join(bundled)}): the paper's UCI copies are absent"
           if bundled else "the paper's UCI datasets")
    ax.set_title(f"Paper Fig. 2: {TITLE}\n{src}\nbars: mean of {n_seeds} seed"
                 f"{'s' if n_seeds > 1 else ''}, whiskers: min and max", fontsize=8)
    ax.legend(title="method", loc="upper center", ncols=3)
    fig.tight_layout()
    return save(fig, ctx, NAME)


make = maker(NAME, compute, plot)
