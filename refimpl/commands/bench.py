"""``refimpl bench NAME``: run a benchmark script from ``benchmarks/``.

The benchmark scripts live outside the package (they time, they do no
mathematics); this command finds them next to the package in a source
checkout (``pip install -e .``).
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCHMARKS = {
    "scc": "bench_scc.py",
    "propagation": "bench_propagation.py",
    "digits": "bench_digits.py",
    "gpu": "gpu_check.py",
    "table1": "bench_table1_epoch.py",
    "training": "bench_training.py",
    "threads": "bench_threads.py",
    "gp_cost": "bench_gp_cost.py",
    "large": "bench_large.py",
}


def _bench_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "benchmarks"


def _run(args) -> int:
    path = _bench_dir() / BENCHMARKS[args.name]
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: the benchmark scripts are not installed with the package; "
            "run this from a source checkout (git clone + pip install -e .)")
    rest = list(args.rest)
    if args.backend is not None:
        rest = ["--backend", args.backend, *rest]
    spec = importlib.util.spec_from_file_location(f"refimpl_bench_{args.name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    argv0 = sys.argv[0] if sys.argv else None
    sys.argv[:1] = [f"refimpl bench {args.name}"]  # the usage line of the script's argparse
    try:
        return int(mod.main(rest) or 0)
    finally:
        if argv0 is None:
            del sys.argv[:1]
        else:
            sys.argv[0] = argv0


def register(subparsers, name, help_text):
    p = subparsers.add_parser(name, help=help_text,
                              description="Run a benchmark (ratios against peers in one process).")
    p.add_argument("--backend", default=None,
                   help="passed on as --backend to a benchmark that takes it (gpu)")
    p.add_argument("name", choices=sorted(BENCHMARKS), help="which benchmark")
    p.add_argument("rest", nargs="...", help="options passed to the benchmark (try --help)")
    p.set_defaults(func=_run)
    return p
