"""Paper Fig. 8a: NMs against a GNN on the Facebook page-page graph (Appendix G.2).

A two-layer GCN (``refimpl.baselines.gcn.GCNTrainer``) on the graph, against NMs with
NM regularization (``refimpl.train.Trainer``) on the node features alone and on the
features plus the mean of the neighbours' features
(``refimpl.baselines.graph_data.neighbour_mean``).  The graph is the Facebook copy when
``refimpl.baselines.graph_data.load_facebook_graph`` finds one; otherwise a seeded
stochastic block model stands in (``sbm_graph``), and the title says so.
"""
from __future__ import annotations

import numpy as np

from _figlib import maker, pyplot, read_csv, save, write_csv

NAME = "fig8"
TITLE = "NMs vs a two-layer GCN on node classification"
METHODS = ("GCN", "NMs (features)", "NMs (features + neighbour mean)")


def settings(quick):
    if quick:
        return dict(n_nodes=400, nodes=32, edges_per_node=3, alpha=1e-3, epochs=30,
                    seeds=(0, 1, 2))
    return dict(n_nodes=1000, nodes=64, edges_per_node=4, alpha=1e-3, epochs=100,
                seeds=(0, 1, 2))


def graph(seed, n_nodes):
    from refimpl.baselines.graph_data import load_facebook_graph, sbm_graph

    try:
        return load_facebook_graph(seed=seed), "facebook"
    except FileNotFoundError:
        return sbm_graph(n_nodes=n_nodes, seed=seed), "sbm"


def compute(ctx):
    from refimpl.baselines.gcn import GCNTrainer
    from refimpl.baselines.graph_data import neighbour_mean, node_dataset
    from refimpl.train import Trainer, TrainConfig, predict

    s = settings(ctx.quick)
    cols = {k: [] for k in ("graph", "method", "seed", "test_error", "n_edges")}
    info = {}
    for seed in s["seeds"]:
        g, source = graph(seed, s["n_nodes"])
        info = {"graph": source, "n_nodes": int(g.X.shape[0]),
                "n_features": int(g.X.shape[1]), "n_classes": g.n_classes}
        test = g.y[g.nodes_test]
        ctx.progress(f"GCN seed {seed}")
        gcn = GCNTrainer(g.X.shape[1], g.n_classes, seed=seed)
        gcn.fit(g.adjacency, g.X, g.y, g.nodes_train, g.nodes_val)
        errs = {"GCN": float(np.mean(gcn.predict()[g.nodes_test] != test))}
        for m, X in (("NMs (features)", g.X),
                     ("NMs (features + neighbour mean)",
                      np.hstack([g.X, neighbour_mean(g.adjacency, g.X)]))):
            ctx.progress(f"{m} seed {seed}")
            d = node_dataset(g, X)
            cfg = TrainConfig(nodes=s["nodes"], edges=s["edges_per_node"] * s["nodes"],
                              epochs=s["epochs"], reg="nm", alpha=s["alpha"], seed=seed)
            tr = Trainer(cfg, d.n_features, d.n_classes)
            tr.fit(d.X_train, d.y_train, d.X_val, d.y_val)
            tr.restore_best()
            errs[m] = float(np.mean(predict(tr.net, d.X_test, tr.gamma) != d.y_test))
        for m in METHODS:
            cols["graph"].append(source)
            cols["method"].append(m)
            cols["seed"].append(seed)
            cols["test_error"].append(errs[m])
            cols["n_edges"].append(int(g.adjacency.nnz // 2))
    meta = ctx.cache_key | info | {"settings": {k: list(v) if isinstance(v, tuple) else v
                                                for k, v in s.items()},
                                   "error": "test error at the best validation epoch"}
    return write_csv(ctx.path(f"{NAME}.csv"), cols, meta)


def plot(ctx, data_path):
    cols, meta = read_csv(data_path)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 3.9))
    errs = [cols["test_error"][cols["method"] == m] for m in METHODS]
    mean = [e.mean() for e in errs]
    whiskers = [[e.mean() - e.min() for e in errs], [e.max() - e.mean() for e in errs]]
    bars = ax.bar(range(len(METHODS)), mean, yerr=whiskers, capsize=3,
                  color=["tab:gray", "tab:blue", "tab:green"])
    for b, v in zip(bars, mean):
        ax.text(b.get_x() + b.get_width() / 2, v, f"{v:.3f}", ha="center", va="bottom",
                fontsize=7)
    ax.set_xticks(range(len(METHODS)), ["GCN (2 layers)", "NMs: features",
                                        "NMs: features +\nneighbour mean"])
    ax.set_ylabel("test error (fraction misclassified)")
    n_seeds = np.unique(cols["seed"]).size
    src = ("Facebook page-page graph" if meta["graph"] == "facebook" else
           "Facebook copy absent: stochastic block model stand-in")
    edges = np.unique(cols["n_edges"])
    edges = (f"{int(edges[0])}" if edges.size == 1
             else f"{int(edges.min())}-{int(edges.max())}")
    ax.set_title(f"Paper Fig. 8a: {TITLE}\n{src}, {meta['n_nodes']} nodes, {edges} edges\n"
                 f"bars: mean of {n_seeds} seed{'s' if n_seeds > 1 else ''}, "
                 f"whiskers: min and max", fontsize=8)
    # three labelled bars: the tick labels are the legend
    fig.tight_layout()
    return save(fig, ctx, NAME)


make = maker(NAME, compute, plot)
