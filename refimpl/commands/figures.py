"""``refimpl figures``: regenerate the papers' figures from the library.

The figure scripts live outside the package, in ``figures/`` (they plot, they do no
mathematics); this command finds them next to the package in a source checkout
(``pip install -e .``), like ``refimpl bench`` finds ``benchmarks/``, and says so in one
line when the package is installed without the checkout.  The scripts import the
library (the timing workloads from :mod:`refimpl.workloads`), never this command.  Each figure is
written as PNG (and PDF with ``--pdf``) with its data (CSV or NPZ) beside it; cached
data is re-plotted unless ``--redo`` is given.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path


def _figures_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "figures"


def _load_registry():
    path = _figures_dir() / "make_figures.py"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: the figure scripts are not installed with the package; "
            "run this from a source checkout (git clone + pip install -e .)")
    name = "refimpl_figures_make_figures"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``refimpl figures``."""
    p.add_argument("--out", default="figures/out", help="output folder (created; default "
                   "figures/out)")
    p.add_argument("--quick", action="store_true",
                   help="small sizes: every figure in a few minutes on 2 cores")
    p.add_argument("--only", action="append", metavar="NAME",
                   help="make only these figures (repeatable, or a comma list); "
                        "--list shows the names")
    p.add_argument("--redo", action="store_true",
                   help="recompute the data even when a cached data file exists")
    p.add_argument("--pdf", action="store_true", help="also write a PDF of every image")
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS and numba threads (default 1: timings stay meaningful on a "
                        "shared machine; recorded with the timing data)")
    p.add_argument("--list", action="store_true", help="list the figure names and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no file list")


def register(subparsers, name="figures", help_text=None):
    p = subparsers.add_parser(name, help=help_text, description=__doc__.split("\n\n")[0])
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    """Run ``refimpl figures``; returns the exit code."""
    try:
        reg = _load_registry()
    except FileNotFoundError as exc:
        print(f"refimpl figures: error: {exc}", file=sys.stderr)
        return 2
    if args.list:
        for name, (_, what) in reg.FIGURES.items():
            print(f"{name:15s} {what}")
        return 0
    try:
        names = reg.select(args.only)
        if args.threads < 1:
            raise ValueError(f"--threads: expected an integer >= 1, got {args.threads}")
    except ValueError as exc:
        print(f"refimpl figures: error: {exc}", file=sys.stderr)
        return 2
    show = not args.quiet and sys.stderr.isatty()
    log = None if args.quiet else print
    done = reg.make(names, args.out, quick=args.quick, redo=args.redo, pdf=args.pdf,
                    threads=args.threads, show_progress=show, log=log)
    if not args.quiet:
        total = sum(sec for _, sec in done.values())
        print(f"{len(done)} figure(s) in {total:.1f} s, written to {args.out}")
    return 0
