"""Shared plumbing of the figure scripts: data caching and saving images.

No mathematics here (STYLE.md habit 6).  Every figure writes its data next to its
image, as CSV (columns, with ``# key: value`` metadata lines on top) or NPZ (arrays
plus a JSON ``__meta__`` entry).  The metadata records what the data depends on
(``quick``, and the thread count for timings); a maker re-plots from the cached data
when the file exists, its metadata matches, and ``--redo`` was not given.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

#: Resolution of the PNGs (small files: the committed images are under ~150 KB).
DPI = 110


@dataclass
class Context:
    """What every maker gets: where to write and how.

    Attributes
    ----------
    out_dir : str
        Output folder (created by the caller).
    quick : bool
        Small sizes, a few minutes for all figures on 2 cores.
    progress : callable(str)
        Reports a step (shown on the progress bar).
    redo : bool
        Recompute even when cached data exists.
    pdf : bool
        Also write a PDF of every image.
    threads : int
        BLAS and numba threads the run was limited to (recorded with timings).
    shared : dict
        In-process memo for data that two figures share (trained networks).
    """

    out_dir: str
    quick: bool = True
    progress: Callable[[str], None] = lambda msg: None
    redo: bool = False
    pdf: bool = False
    threads: int = 1
    shared: dict = field(default_factory=dict)
    cache_key: dict = field(default_factory=dict)

    def path(self, filename: str) -> str:
        return os.path.join(self.out_dir, filename)

    def key(self, **extra) -> dict:
        """The metadata a cached file must match to be reused."""
        return {"quick": bool(self.quick), **extra}


# ----------------------------------------------------------------------------- CSV
def write_csv(path: str, columns: dict, meta: dict) -> str:
    """Write equal-length ``columns`` (name -> sequence) with ``# key: value`` lines
    (JSON values) on top."""
    names = list(columns)
    cols = [np.asarray(columns[n]) for n in names]
    n = {c.shape[0] for c in cols}
    if len(n) > 1:
        raise ValueError(f"{path}: columns of different lengths {sorted(n)}")
    with open(path, "w", newline="") as fh:
        for k, v in meta.items():
            fh.write(f"# {k}: {json.dumps(v)}\n")
        w = csv.writer(fh)
        w.writerow(names)
        for row in zip(*cols):
            w.writerow([_fmt(v) for v in row])
    return path


def _fmt(v):
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, (np.integer, np.bool_)):
        return int(v)
    return v


def read_csv(path: str) -> tuple[dict, dict]:
    """Columns (numeric ones as float arrays, others as str arrays) and metadata."""
    meta, lines = {}, []
    with open(path, newline="") as fh:
        for line in fh:
            if line.startswith("# "):
                k, v = line[2:].split(": ", 1)
                meta[k] = json.loads(v)
            else:
                lines.append(line)
    rows = list(csv.reader(lines))
    header, body = rows[0], rows[1:]
    cols = {}
    for j, name in enumerate(header):
        vals = [r[j] for r in body]
        try:
            cols[name] = np.array([float(v) for v in vals])
        except ValueError:
            cols[name] = np.array(vals)
    return cols, meta


# ----------------------------------------------------------------------------- NPZ
def write_npz(path: str, arrays: dict, meta: dict) -> str:
    with open(path, "wb") as fh:
        np.savez_compressed(fh, __meta__=np.array(json.dumps(meta)), **arrays)
    return path


def read_npz(path: str) -> tuple[dict, dict]:
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
        meta = json.loads(str(z["__meta__"])) if "__meta__" in z.files else {}
    return arrays, meta


# ----------------------------------------------------------------------------- cache
def read_meta(path: str) -> dict:
    if path.endswith(".npz"):
        return read_npz(path)[1]
    return read_csv(path)[1]


def is_cached(ctx: Context, path: str, key: dict) -> bool:
    """True when ``path`` exists, ``--redo`` is off and its metadata matches ``key``."""
    if ctx.redo or not os.path.exists(path):
        return False
    try:
        meta = read_meta(path)
    except (OSError, ValueError, KeyError, IndexError):
        return False
    return all(meta.get(k) == v for k, v in key.items())


def maker(name: str, compute, plot, *, ext: str = "csv", timing: bool = False):
    """Build the ``make`` function of one figure.

    ``compute(ctx) -> data path`` runs the library and writes ``name.ext`` with
    ``ctx.cache_key`` in its metadata; ``plot(ctx, data path) -> image paths`` reads it
    back and draws.  ``make`` recomputes only when the cached data is missing, stale
    (``quick``, or the thread count for a ``timing`` figure, differs) or ``redo``.
    """

    def make(out_dir, quick=True, progress=None, *, redo=False, pdf=False, threads=1,
             shared=None):
        """Write the figure into ``out_dir``; return the paths written (data first)."""
        os.makedirs(out_dir, exist_ok=True)
        ctx = Context(out_dir=str(out_dir), quick=bool(quick),
                      progress=progress or (lambda msg: None), redo=redo, pdf=pdf,
                      threads=int(threads), shared={} if shared is None else shared)
        ctx.cache_key = ctx.key(threads=ctx.threads) if timing else ctx.key()
        data = ctx.path(f"{name}.{ext}")
        if not is_cached(ctx, data, ctx.cache_key):
            compute(ctx)
        return [data, *plot(ctx, data)]

    make.__name__ = f"make_{name}"
    return make


# ----------------------------------------------------------------------------- images
def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": DPI, "savefig.dpi": DPI, "font.size": 9,
                         "axes.titlesize": 10, "legend.fontsize": 8})
    return plt


def save(fig, ctx: Context, name: str) -> list[str]:
    """Write ``name.png`` (and ``name.pdf`` with ``ctx.pdf``); close the figure."""
    plt = pyplot()
    paths = [ctx.path(f"{name}.png")]
    fig.savefig(paths[0], dpi=DPI)
    if ctx.pdf:
        paths.append(ctx.path(f"{name}.pdf"))
        fig.savefig(paths[1])
    plt.close(fig)
    return paths
