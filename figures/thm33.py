"""Thm. 3.3 study: the empirical E||grad f||^2 vs the iteration count T, with the bound's shape.

Calls :func:`refimpl.theory.thm33_study` (DPF-style training with top-k pruning of an
L2-regularized logistic regression, step c / sqrt(T), expectation over independent
mini-batch streams) and plots, against T on log-log axes: the measured average squared
gradient norm with its standard error, the fitted Eq. (14) shape
C G sqrt(L Delta / T) + floor, the bound the proof's argument gives with the measured
pruning error, and the paper's last line (pruning error replaced by ||w0 - w~0||^2).
"""
from __future__ import annotations

from _figlib import maker, pyplot, read_csv, save, write_csv

NAME = "thm33"
TITLE = r"Thm. 3.3: E$\|\nabla f\|^2$ vs iterations T and the bound's shape"
COLUMNS = ("T", "step", "grad_sq", "grad_sq_se", "grad_sq_pruned", "prune_err_sq",
           "prune_err_sq_max", "fit", "bound", "bound_paper")
SCALARS = ("L", "G", "G0", "f0", "f_star", "prune_err0", "c", "C_rate", "floor", "C_prune",
           "fit_rel_err")


def compute(ctx):
    from refimpl.theory import thm33_study

    ctx.progress("thm33_study")
    if ctx.quick:
        s = thm33_study(T_values=(25, 50, 100, 200, 400, 800, 1600), seed=0, n_repeats=8)
    else:
        s = thm33_study(T_values=(25, 50, 100, 200, 400, 800, 1600, 3200, 6400), seed=0,
                        n_repeats=32)
    cols = {k: getattr(s, k) for k in COLUMNS}
    meta = ctx.cache_key | {k: float(getattr(s, k)) for k in SCALARS} | {
        "objective": "L2-regularized logistic regression, top-k pruning (DPF)"}
    return write_csv(ctx.path(f"{NAME}.csv"), cols, meta)


def plot(ctx, data_path):
    c, meta = read_csv(data_path)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.8, 5.0))
    ax.errorbar(c["T"], c["grad_sq"], yerr=c["grad_sq_se"], fmt="o", ms=4, color="C0",
                label=r"measured $\frac{1}{T+1}\sum_t E\|\nabla f(w_t)\|^2$")
    ax.plot(c["T"], c["fit"], "-", color="C0",
            label=f"fit C G sqrt(L Delta/T) + floor (C = {meta['C_rate']:.2f}, "
                  f"floor = {meta['floor']:.2g})")
    ax.plot(c["T"], c["bound"], "--", color="C1",
            label="bound of the argument (measured pruning error)")
    ax.plot(c["T"], c["bound_paper"], ":", color="C2",
            label=r"paper's last line ($\|w_0-\tilde w_0\|^2$)")
    ax.axhline(meta["floor"], color="0.5", lw=0.8, label="fitted floor (pruning term)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("iterations T (step size c / sqrt(T))")
    ax.set_ylabel(r"average squared gradient norm $\|\nabla f\|^2$")
    ax.set_title(TITLE, fontsize=9)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=2)
    fig.tight_layout()
    return save(fig, ctx, NAME)


make = maker(NAME, compute, plot)
