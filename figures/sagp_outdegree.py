"""Supplement Fig. 7 (Sec. 4.2): the out-degree of the input neurons, on digits.

After the SAGP run of ``_sagp_run.py``, each pixel of the 8x8 digits is an input
neuron; its out-degree (``refimpl.sagp.input_out_degree``: synapses of the assembled
topology leaving it) is shown as an image, next to example digits with only the
pixels of out-degree >= the median kept (the top half, ties kept), as in the
supplement's Fig. 7 (which keeps the top 50% or 70%).
"""
from __future__ import annotations

import numpy as np

from _figlib import maker, pyplot, read_csv, save, write_csv
from _sagp_run import sagp_run

NAME = "sagp_outdegree"
TITLE = "SAGP input out-degree on digits"
SHAPE = (8, 8)
N_EXAMPLES = 3


def compute(ctx):
    from sklearn.datasets import load_digits

    from refimpl.sagp import input_out_degree, synapse_count

    result, s = sagp_run(ctx)
    deg = input_out_degree(result.model)
    images = load_digits().images[:N_EXAMPLES].reshape(N_EXAMPLES, -1)  # raw pixels 0..16
    rows, cols_ = np.unravel_index(np.arange(deg.size), SHAPE)
    cols = {"pixel": np.arange(deg.size), "row": rows, "col": cols_, "out_degree": deg}
    for i in range(N_EXAMPLES):
        cols[f"example{i}"] = images[i]
    last = result.history[-1]
    meta = ctx.cache_key | s | {"n_hidden": last["n_hidden"],
                                "synapses": synapse_count(result.model),
                                "test_error": last["test_error"],
                                "examples": "load_digits().images[:3], raw 0..16"}
    return write_csv(ctx.path(f"{NAME}.csv"), cols, meta)


def plot(ctx, data_path):
    c, meta = read_csv(data_path)
    deg = np.zeros(SHAPE)
    deg[c["row"].astype(int), c["col"].astype(int)] = c["out_degree"]
    keep = deg >= np.quantile(deg, 0.5)  # top 50% of pixels by out-degree
    plt = pyplot()
    fig, axes = plt.subplots(1, 1 + N_EXAMPLES, figsize=(9.0, 2.9),
                             gridspec_kw={"width_ratios": [1.25] + [1] * N_EXAMPLES})
    im = axes[0].imshow(deg, cmap="viridis")
    fig.colorbar(im, ax=axes[0], label="out-degree (synapses)")
    axes[0].set_title("out-degree of each pixel", fontsize=9)
    for i, ax in enumerate(axes[1:]):
        img = np.zeros(SHAPE)
        img[c["row"].astype(int), c["col"].astype(int)] = c[f"example{i}"]
        ax.imshow(np.where(keep, img, np.nan), cmap="gray_r", vmin=0, vmax=16)
        ax.imshow(np.where(keep, np.nan, 1.0), cmap="Reds", vmin=0, vmax=2, alpha=0.5)
        ax.set_title(f"digit {i}: pixels of out-degree >= median", fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("pixel column")
    axes[0].set_ylabel("pixel row")
    from matplotlib.patches import Patch

    fig.legend(handles=[Patch(fc="salmon", alpha=0.6, label="dropped (low out-degree)"),
                        Patch(fc="0.2", label="kept pixel, shade = intensity (0..16)")],
               loc="lower right", ncol=2, fontsize=7)
    fig.suptitle(f"Supplement Fig. 7: {TITLE} ({meta['epochs']} epochs, |H| = "
                 f"{meta['n_hidden']}, {meta['synapses']} synapses, test error "
                 f"{meta['test_error']:.3f})", fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return save(fig, ctx, NAME)


make = maker(NAME, compute, plot)
