"""Regenerate the papers' figures from the library: the registry and the driver.

Run ``refimpl figures --out DIR [--quick] [--only NAME] [--redo] [--pdf]``: the command
loads this file from the source checkout; nothing here imports the command back.
Every figure module in this folder defines
``make(out_dir, quick=True, progress=None, *, redo=False, pdf=False, threads=1,
shared=None) -> list of written paths`` (data file first); the modules call the
library, cache their data (CSV or NPZ) next to the image, and re-plot from it when it
is there (``--redo`` recomputes).  No mathematics here.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

#: name -> (module in this folder, one line: what it shows)
FIGURES: dict[str, tuple[str, str]] = {
    "fig2": ("fig2", "test error on binary tasks: NMs vs cyclic Forward-Forward vs DARTS"),
    "fig4a": ("fig4a", "running time vs node count (p <= 300): NM + NM reg. vs whole-graph solve"),
    "fig4b": ("fig4b", "running time vs node count (p <= 3000): level-batched vs sequential"),
    "fig8": ("fig8", "node classification: NMs (features, + neighbour mean) vs a 2-layer GCN"),
    "fig9": ("fig9", "test error vs alpha and k (heat map)"),
    "fig10a": ("fig10a", "p_merge vs module size q: Eq. 16 and Monte Carlo"),
    "fig10b": ("fig10b", "running time vs average module size"),
    "fig11": ("fig11", "trained adjacency reordered by module, modules boxed"),
    "fig12": ("fig12", "edge density, degree distribution, module sizes of learned graphs"),
    "thm33": ("thm33", "Thm. 3.3: E||grad||^2 vs T and the bound's shape"),
    "sagp_dynamics": ("sagp_dynamics", "SAGP |H|, synapses and losses vs epoch (digits)"),
    "sagp_outdegree": ("sagp_outdegree", "SAGP input out-degree image (digits)"),
    "posterior": ("posterior", "Thm. 3.2: posterior mean and variance shrink as r grows"),
}


def select(only) -> list[str]:
    """The figure names to make, in registry order.

    ``only``: None (all) or an iterable of names, each possibly a comma-separated list.
    Raises ValueError naming the unknown names and the valid ones.
    """
    if not only:
        return list(FIGURES)
    wanted = [n.strip() for item in only for n in str(item).split(",") if n.strip()]
    unknown = [n for n in wanted if n not in FIGURES]
    if unknown:
        raise ValueError(f"unknown figure name(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(FIGURES)}")
    if not wanted:
        raise ValueError(f"--only: no figure named; choose from {', '.join(FIGURES)}")
    return [n for n in FIGURES if n in wanted]


def module(name: str):
    """The figure module of ``name`` (this folder is put on ``sys.path``)."""
    if HERE not in sys.path:
        sys.path.insert(0, HERE)
    return importlib.import_module(FIGURES[name][0])


@contextlib.contextmanager
def limit_threads(n: int):
    """Limit BLAS (threadpoolctl) and numba to ``n`` threads inside the block."""
    import numba

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        blas = contextlib.nullcontext()
    else:
        blas = threadpool_limits(limits=n, user_api="blas")
    before = numba.get_num_threads()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        with blas:
            yield
    finally:
        numba.set_num_threads(before)


def make(names, out_dir, *, quick=False, redo=False, pdf=False, threads=1, show_progress=True,
         log=None):
    """Make the figures ``names`` into ``out_dir``; returns ``{name: (paths, seconds)}``.

    ``log(line)`` receives one line per finished figure.
    """
    from tqdm import tqdm

    os.makedirs(out_dir, exist_ok=True)
    shared: dict = {}
    done = {}
    bar = tqdm(total=len(names), unit="fig", desc="figures", disable=not show_progress,
               file=sys.stderr)
    try:
        with limit_threads(threads):
            for name in names:
                bar.set_postfix_str(name)

                def progress(msg, _name=name):
                    bar.set_postfix_str(f"{_name}: {msg}")

                t0 = time.perf_counter()
                paths = module(name).make(out_dir, quick, progress, redo=redo, pdf=pdf,
                                          threads=threads, shared=shared)
                done[name] = (paths, time.perf_counter() - t0)
                bar.update(1)
                if log is not None:
                    log(f"{name:15s} {done[name][1]:7.1f} s  "
                        + " ".join(os.path.basename(p) for p in paths))
    finally:
        bar.close()
    return done
