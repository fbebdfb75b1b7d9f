"""Thm. 3.2: shrinkage of the posterior mean and variance as the repulsion grows.

A seeded linear-Gaussian problem y = X w + eps (n = 40 samples, d = 5 inputs of one
node, noise delta = 0.5, prior scale tau = 1).  The repulsion of every input is
r_j = s * base_j with base = (1, 2, 4, 8, 16) (Eq. 10's r = z_i z_j / D grows with the
module sizes), and s sweeps 10^-2 .. 10^4.  For each s,
:func:`refimpl.theory.posterior` gives the mean and covariance of Eq. (13); the figure
shows each coefficient's posterior mean and standard deviation against s: both shrink
to 0 as r_j grows (the prior N(0, tau^2 / r_j) takes over), the larger base first.
"""
from __future__ import annotations

import numpy as np

from _figlib import maker, pyplot, read_csv, save, write_csv

NAME = "posterior"
TITLE = "Thm. 3.2: posterior shrinkage as the repulsion r grows"
N, D, DELTA, TAU = 40, 5, 0.5, 1.0
BASE = (1.0, 2.0, 4.0, 8.0, 16.0)
W_TRUE = (1.5, -1.0, 0.8, 2.0, -0.5)


def compute(ctx):
    from refimpl.theory import posterior

    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, D))
    y = X @ np.array(W_TRUE) + DELTA * rng.standard_normal(N)  # the data model of Thm. 3.2
    scales = np.logspace(-2, 4, 25 if ctx.quick else 61)
    cols = {k: [] for k in ("scale", "coef", "r", "mean", "std", "prior_std", "w_true")}
    for s in scales:
        r = s * np.array(BASE)
        mean, cov = posterior(X, y, r, DELTA, TAU)  # Eq. (13)
        for j in range(D):
            cols["scale"].append(s)
            cols["coef"].append(j)
            cols["r"].append(r[j])
            cols["mean"].append(mean[j])
            cols["std"].append(np.sqrt(cov[j, j]))
            cols["prior_std"].append(TAU / np.sqrt(r[j]))  # prior w_j ~ N(0, tau^2 / r_j)
            cols["w_true"].append(W_TRUE[j])
    meta = ctx.cache_key | {"n": N, "d": D, "delta": DELTA, "tau": TAU, "base": list(BASE),
                            "seed": 0, "r": "scale * base"}
    return write_csv(ctx.path(f"{NAME}.csv"), cols, meta)


def plot(ctx, data_path):
    c, meta = read_csv(data_path)
    plt = pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9.0, 3.6))
    for j in range(int(meta["d"])):
        sel = c["coef"] == j
        color = f"C{j}"
        lab = f"w_{j + 1} (r = {meta['base'][j]:g} s, true {c['w_true'][sel][0]:+.1f})"
        a1.plot(c["scale"][sel], c["mean"][sel], color=color, label=lab)
        a2.plot(c["scale"][sel], c["std"][sel], color=color, label=lab)
        a2.plot(c["scale"][sel], c["prior_std"][sel], ":", color=color, lw=0.8)
    a2.plot([], [], "k:", lw=0.8, label="prior std tau / sqrt(r_j)")
    a1.axhline(0, color="0.6", lw=0.6)
    for ax in (a1, a2):
        ax.set_xscale("log")
        ax.set_xlabel("repulsion scale s, r_j = base_j * s (dimensionless)")
    a2.set_yscale("log")
    a1.set_ylabel("posterior mean of w_j")
    a2.set_ylabel("posterior standard deviation of w_j")
    a1.set_title("(a) posterior mean (Eq. 13)", fontsize=9)
    a2.set_title("(b) posterior standard deviation (Eq. 13)", fontsize=9)
    a1.legend(fontsize=7)
    a2.legend(fontsize=7)
    fig.suptitle(f"{TITLE} (n = {meta['n']}, delta = {meta['delta']:g}, tau = "
                 f"{meta['tau']:g})", fontsize=10)
    fig.tight_layout()
    return save(fig, ctx, NAME)


make = maker(NAME, compute, plot)
