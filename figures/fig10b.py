"""Paper Fig. 10b: running time vs average module size.

On the benchmark's modular graphs with a fixed node count (10 levels, about 3 edges per
node; ``benchmarks/bench_propagation.py``), the module sizes are drawn from 1..max_q
for growing max_q; one forward + backward pass of a batch of 64 is timed with the
level-batched and the sequential module solves (:func:`refimpl.forward` with Newton, the
paper's solver; best of a few runs).  The x axis is the measured mean module size
p / (number of modules).
"""
from __future__ import annotations

from _bench import machine, time_modes
from _figlib import maker, pyplot, read_csv, save, write_csv

NAME = "fig10b"
TITLE = "running time vs average module size"
MODES = (("levels", "level-batched modules"), ("sequential", "sequential modules"))
N_LEVELS = 10


def compute(ctx):
    p = 1000 if ctx.quick else 3000
    max_qs = (1, 2, 4, 8, 16, 32, 64) if ctx.quick else (1, 2, 4, 8, 16, 24, 32, 48, 64, 96)
    cols = {k: [] for k in ("max_q", "mean_module_size", "largest_module", "modules",
                            "seconds_levels", "seconds_sequential", "edges")}
    for mq in max_qs:
        ctx.progress(f"p={p} max_q={mq}")
        t, s = time_modes(p, N_LEVELS, mq, [m for m, _ in MODES],
                          repeat=5 if ctx.quick else 7)
        cols["max_q"].append(mq)
        for k in ("mean_module_size", "largest_module", "modules", "edges"):
            cols[k].append(s[k])
        for m, _ in MODES:
            cols[f"seconds_{m}"].append(t[m])
    meta = ctx.cache_key | {"nodes": p, "graph": f"benchmarks modular_graph(p, n_levels="
                            f"{N_LEVELS}, max_q)",
                            "batch": 64, "tol": 1e-8, "solver": "newton",
                            "timing": "best-of forward + backward seconds",
                            "machine": machine()}
    return write_csv(ctx.path(f"{NAME}.csv"), cols, meta)


def plot(ctx, data_path):
    cols, meta = read_csv(data_path)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    for (mode, label), marker in zip(MODES, "os"):
        ax.plot(cols["mean_module_size"], cols[f"seconds_{mode}"], marker=marker, ms=4,
                label=label)
    ax.set_xlabel("average module size p / (number of modules) (nodes)")
    ax.set_ylabel("forward + backward time, batch 64 (s)")
    ax.set_title(f"Paper Fig. 10b: {TITLE} (p = {meta['nodes']})", fontsize=9)
    ax.legend()
    fig.text(0.01, 0.01, f"modules of 1..max_q nodes in {N_LEVELS} levels; "
             f"Newton module solves, tol 1e-8; {meta['threads']} thread(s)",
             fontsize=7, color="0.4")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return save(fig, ctx, NAME)


make = maker(NAME, compute, plot, timing=True)
