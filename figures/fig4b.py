"""Paper Fig. 4b: running time vs node count (p <= 3000), level-batched vs sequential modules.

On the benchmark's modular graphs (modules of 1..16 nodes wired in 10 levels, about 3
edges per node; ``benchmarks/bench_propagation.py``), one forward + backward pass of a
batch of 64 through :func:`refimpl.forward` / :func:`refimpl.backward` with

- ``mode="levels"``: the same-size modules of a level solved together (batched Newton,
  the paper's "parallel" neural modules);
- ``mode="sequential"``: one module at a time in topological order (the paper's
  "neural modules without parallelization").

Newton module solves (the paper's solver); best of a few runs (``benchmarks/_timing.py``'s
``best_time``).
"""
from __future__ import annotations

from _bench import machine, time_modes
from _figlib import maker, pyplot, read_csv, save, write_csv

NAME = "fig4b"
TITLE = "running time vs node count: level-batched vs sequential modules"
MODES = (("levels", "level-batched modules (parallel)"), ("sequential", "sequential modules"))
N_LEVELS, MAX_Q = 10, 16


def compute(ctx):
    nodes = (250, 500, 1000, 2000, 3000) if ctx.quick else (250, 500, 750, 1000, 1500, 2000,
                                                             2500, 3000)
    cols = {k: [] for k in ("nodes", "seconds_levels", "seconds_sequential", "speedup",
                            "levels", "modules", "largest_module", "edges")}
    for p in nodes:
        ctx.progress(f"p={p}")
        t, s = time_modes(p, N_LEVELS, MAX_Q, [m for m, _ in MODES],
                          repeat=5 if ctx.quick else 7)
        cols["nodes"].append(p)
        cols["seconds_levels"].append(t["levels"])
        cols["seconds_sequential"].append(t["sequential"])
        cols["speedup"].append(t["sequential"] / t["levels"])
        for k in ("levels", "modules", "largest_module", "edges"):
            cols[k].append(s[k])
    meta = ctx.cache_key | {"graph": f"benchmarks modular_graph(p, n_levels={N_LEVELS}, "
                                     f"max_q={MAX_Q})",
                            "batch": 64, "tol": 1e-8, "solver": "newton",
                            "timing": "best-of forward + backward seconds",
                            "machine": machine()}
    return write_csv(ctx.path(f"{NAME}.csv"), cols, meta)


def plot(ctx, data_path):
    cols, meta = read_csv(data_path)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    for (mode, label), marker in zip(MODES, "os"):
        ax.plot(cols["nodes"], cols[f"seconds_{mode}"], marker=marker, ms=4, label=label)
    for x, y, s in zip(cols["nodes"], cols["seconds_sequential"], cols["speedup"]):
        ax.annotate(f"{s:.1f}x", (x, y), textcoords="offset points", xytext=(0, 5),
                    ha="center", fontsize=7, color="0.3")
    ax.set_xlabel("hidden nodes p")
    ax.set_ylabel("forward + backward time, batch 64 (s)")
    ax.plot([], [], ls="", label="n.nx = speed-up, sequential / batched")
    ax.set_title("Paper Fig. 4b: running time vs node count,\n"
                 "level-batched vs sequential neural modules", fontsize=9)
    ax.legend()
    fig.text(0.01, 0.01, f"modules of 1..{MAX_Q} nodes in {N_LEVELS} levels; "
             f"Newton module solves, tol 1e-8; {meta['threads']} thread(s)",
             fontsize=7, color="0.4")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return save(fig, ctx, NAME)


make = maker(NAME, compute, plot, timing=True)
