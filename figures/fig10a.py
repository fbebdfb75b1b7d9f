"""Paper Fig. 10a: merge probability p_merge vs module size q for several theta.

Lines: Eq. (16), ``refimpl.theory.merge_probability`` (p_merge = 1 - theta^q).
Markers: its Monte Carlo estimate, ``refimpl.theory.merge_probability_mc`` (the q
candidate edges drawn independently, an edge pruned with probability theta), with
binomial standard errors.
"""
from __future__ import annotations

import numpy as np

from _figlib import maker, pyplot, read_csv, save, write_csv

NAME = "fig10a"
TITLE = "merge probability vs module size (Eq. 16 and Monte Carlo)"
THETAS = (0.5, 0.8, 0.9, 0.95, 0.99)


def compute(ctx):
    from refimpl.theory import merge_probability, merge_probability_mc

    q_max = 40
    q_mc = (1, 2, 3, 5, 8, 12, 16, 20, 25, 30, 35, 40)
    n_trials = 20_000 if ctx.quick else 200_000
    rng = np.random.default_rng(0)
    cols = {k: [] for k in ("theta", "q", "p_merge", "p_merge_mc", "mc_se")}
    for theta in THETAS:
        ctx.progress(f"theta={theta}")
        for q in range(1, q_max + 1):
            p = merge_probability(theta, q)  # Eq. (16)
            if q in q_mc:
                mc = merge_probability_mc(theta, q, n_trials, rng)
                se = float(np.sqrt(mc * (1.0 - mc) / n_trials))  # binomial standard error
            else:
                mc = se = np.nan
            cols["theta"].append(theta)
            cols["q"].append(q)
            cols["p_merge"].append(p)
            cols["p_merge_mc"].append(mc)
            cols["mc_se"].append(se)
    meta = ctx.cache_key | {"n_trials": n_trials, "seed": 0,
                            "mc_se": "binomial standard error sqrt(p(1-p)/n)"}
    return write_csv(ctx.path(f"{NAME}.csv"), cols, meta)


def plot(ctx, data_path):
    cols, meta = read_csv(data_path)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    for i, theta in enumerate(np.unique(cols["theta"])):
        sel = cols["theta"] == theta
        color = f"C{i}"
        ax.plot(cols["q"][sel], cols["p_merge"][sel], color=color,
                label=rf"Eq. 16, $\theta$ = {theta:g}")
        mc = sel & np.isfinite(cols["p_merge_mc"])
        ax.errorbar(cols["q"][mc], cols["p_merge_mc"][mc], yerr=cols["mc_se"][mc], fmt="o",
                    ms=3, color=color, mfc="none")
    ax.plot([], [], "o", color="0.3", mfc="none", ms=3,
            label=f"Monte Carlo ({meta['n_trials']:,} trials)")
    ax.set_xlabel("module size q (nodes)")
    ax.set_ylabel(r"merge probability $p_{merge}$")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Paper Fig. 10a: {TITLE}", fontsize=9)
    ax.legend(loc="lower right", ncol=2)
    fig.tight_layout()
    return save(fig, ctx, NAME)


make = maker(NAME, compute, plot)
