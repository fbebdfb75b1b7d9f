"""Paper Fig. 12 (and the metrics named in the caption of Fig. 9): connectivity
statistics of the learned graphs: edge density, degree distribution, module sizes.

The networks of ``_trained.py`` (NM regularization, one per built-in dataset).  Per
node: in-degree and out-degree in the pruned graph (``PrunedGraph.A``; the diagonal
holds biases and is never an edge) and the module it belongs to
(``PrunedGraph.labels``, ``schedule.module_sizes``).
"""
from __future__ import annotations

import numpy as np

from _figlib import maker, pyplot, read_csv, save, write_csv
from _trained import DATASETS, trained_graphs

NAME = "fig12"
TITLE = "connectivity statistics of the learned graphs"


def compute(ctx):
    graphs, training = trained_graphs(ctx)
    cols = {k: [] for k in ("dataset", "node", "in_degree", "out_degree", "module",
                            "module_size")}
    summary = {}
    for name, (g, err) in graphs.items():
        S = g.schedule
        cols["dataset"] += [name] * g.p
        cols["node"] += list(range(g.p))
        cols["in_degree"] += g.A.getnnz(axis=0).tolist()
        cols["out_degree"] += g.A.getnnz(axis=1).tolist()
        cols["module"] += g.labels.tolist()
        cols["module_size"] += S.module_sizes[g.labels].tolist()
        A = g.A.tocoo()
        inside = int(np.sum(g.labels[A.row] == g.labels[A.col]))  # edge within one module
        summary[name] = dict(nodes=g.p, edges=g.n_edges, edges_in_modules=inside,
                             edge_density=g.n_edges / (g.p * (g.p - 1)),
                             modules=int(np.sum(S.module_sizes > 1)),
                             largest_module=S.max_module_size, levels=S.n_levels,
                             test_error=err)
    meta = ctx.cache_key | {"summary": summary, "training": training,
                            "edge_density": "edges / (p (p - 1))"}
    return write_csv(ctx.path(f"{NAME}.csv"), cols, meta)


def plot(ctx, data_path):
    cols, meta = read_csv(data_path)
    summary = meta["summary"]
    names = [n for n in DATASETS if n in summary]
    plt = pyplot()
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(10.5, 3.5))
    # (a) edges inside modules and between modules
    x = np.arange(len(names))
    inside = np.array([summary[n]["edges_in_modules"] for n in names])
    between = np.array([summary[n]["edges"] for n in names]) - inside
    a1.bar(x, inside, color="C3", label="inside a module")
    a1.bar(x, between, bottom=inside, color="0.6", label="between modules (feed-forward)")
    for i, n in enumerate(names):
        a1.annotate(f"{summary[n]['edge_density']:.3f}", (i, summary[n]["edges"]),
                    ha="center", va="bottom", fontsize=7)
    a1.set_xticks(x, names, rotation=20, fontsize=7)
    a1.set_ylabel("edges (count)")
    a1.set_ylim(0, 1.4 * max(summary[n]["edges"] for n in names))
    a1.set_title("(a) edges (label: density edges / p(p-1))", fontsize=9)
    a1.legend(loc="upper center", fontsize=7)
    # (b) degree distribution
    deg = cols["in_degree"] + cols["out_degree"]
    bins = np.arange(0, deg.max() + 2) - 0.5
    for i, n in enumerate(names):
        sel = cols["dataset"] == n
        a2.hist(deg[sel], bins=bins, histtype="step", color=f"C{i}", label=n)
    a2.set_xlabel("total degree  in + out (edges)")
    a2.set_ylabel("number of nodes")
    a2.set_title("(b) degree distribution", fontsize=9)
    a2.legend()
    # (c) module-size histogram (modules of >= 2 nodes; singletons in the legend)
    sizes, labels = [], []
    for n in names:
        sel = cols["dataset"] == n
        _, first = np.unique(cols["module"][sel], return_index=True)
        q = cols["module_size"][sel][first]
        sizes.append(q[q >= 2])
        labels.append(f"{n} (+{int(np.sum(q == 1))} singletons)")
    p_max = int(max(summary[n]["nodes"] for n in names))
    a3.hist(sizes, bins=np.linspace(2, p_max, 17), stacked=True, label=labels,
            color=[f"C{i}" for i in range(len(names))])
    a3.set_xlabel("module size q (nodes)")
    a3.set_ylabel("modules (count)")
    a3.set_title("(c) module-size histogram (q >= 2)", fontsize=9)
    a3.legend()
    fig.suptitle(f"Paper Fig. 12: {TITLE} (NM regularization, p = "
                 f"{meta['training']['nodes']}, k = {meta['training']['edges_per_node']}p)",
                 fontsize=10)
    fig.tight_layout()
    return save(fig, ctx, NAME)


make = maker(NAME, compute, plot)
