"""Paper Fig. 11: adjacency of trained networks reordered by module, each module boxed.

The networks of ``_trained.py`` (NM regularization, one per built-in dataset).  Nodes
are put in schedule order (``PrunedGraph.schedule.order``: modules by level, the nodes
of a module together), so every edge between modules lies above the diagonal and each
neural module (strongly connected component, size >= 2) is a diagonal block; the boxes
are ``schedule.module_ptr``.  Entry (row j, column i) is |w_ji| of edge j -> i.
"""
from __future__ import annotations

import numpy as np

from _figlib import maker, pyplot, read_npz, save, write_npz
from _trained import DATASETS, trained_graphs

NAME = "fig11"
TITLE = "trained adjacency reordered by neural module"


def compute(ctx):
    graphs, training = trained_graphs(ctx)
    arrays, summary = {}, {}
    for name, (g, err) in graphs.items():
        A = g.A.tocoo()
        S = g.schedule
        arrays[f"{name}_src"] = A.row.astype(np.int32)
        arrays[f"{name}_dst"] = A.col.astype(np.int32)
        arrays[f"{name}_weight"] = A.data.astype(np.float32)
        arrays[f"{name}_position"] = S.position.astype(np.int32)
        arrays[f"{name}_module_ptr"] = S.module_ptr.astype(np.int32)
        summary[name] = dict(nodes=g.p, edges=g.n_edges, test_error=err,
                             levels=S.n_levels, largest_module=S.max_module_size)
    meta = ctx.cache_key | {"datasets": list(graphs), "summary": summary,
                            "training": training,
                            "layout": "rows = source j, columns = target i, schedule order"}
    return write_npz(ctx.path(f"{NAME}.npz"), arrays, meta)


def plot(ctx, data_path):
    arrays, meta = read_npz(data_path)
    plt = pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle

    names = [n for n in DATASETS if n in meta["datasets"]]
    fig, axes = plt.subplots(2, 2, figsize=(7.2, 7.8), layout="constrained")
    for ax, name in zip(axes.flat, names):
        info = meta["summary"][name]
        p = info["nodes"]
        pos = arrays[f"{name}_position"]
        ptr = arrays[f"{name}_module_ptr"]
        n_mod = 0
        for m in range(ptr.size - 1):
            q = int(ptr[m + 1] - ptr[m])
            if q >= 2:
                n_mod += 1
                ax.add_patch(Rectangle((ptr[m] - 0.5, ptr[m] - 0.5), q, q, fc="C3",
                                       alpha=0.15, ec="C3", lw=1.2))
        # Entry (row j, column i) of the reordered matrix: edge j -> i.
        ax.plot(pos[arrays[f"{name}_dst"]], pos[arrays[f"{name}_src"]], "s", ms=1.6,
                color="k", mew=0)
        ax.set_xlim(-0.5, p - 0.5)
        ax.set_ylim(p - 0.5, -0.5)
        ax.set_aspect("equal")
        ax.set_title(f"{name}: {n_mod} module(s) >= 2 nodes, largest "
                     f"{info['largest_module']},\n{info['levels']} levels, "
                     f"test error {info['test_error']:.3f}", fontsize=8)
        ax.set_xlabel("target node i (schedule order)")
        ax.set_ylabel("source node j (schedule order)")
    fig.legend(handles=[Line2D([], [], ls="", marker="s", ms=4, color="k",
                               label="edge j -> i of the pruned graph"),
                        Patch(fc="C3", alpha=0.3, ec="C3",
                              label="neural module (SCC of >= 2 nodes)")],
               loc="outside lower center", ncol=2)
    t = meta["training"]
    fig.suptitle(f"Paper Fig. 11: {TITLE}\n(NM regularization, p = {t['nodes']}, "
                 f"k = {t['edges_per_node'] * t['nodes']} edges)", fontsize=10)
    return save(fig, ctx, NAME)


make = maker(NAME, compute, plot, ext="npz")
