"""``refimpl table1``: the paper's Table 1 grid (methods x hidden nodes x seeds).

Writes into ``--out``: ``runs.csv`` (one row per finished run, appended as it
finishes: rerunning the same command skips finished runs and retries the
rest) and ``table1.md`` (error rate mean ± std per method x nodes, one table
per data set).  Runs go to local processes (``--jobs``) or to an existing
Dask cluster (``--scheduler``).  Hyper-parameters: see
:mod:`refimpl.experiments`.  No mathematics here.
"""
from __future__ import annotations

import json
import os
import shlex
import sys
import time

from ..datasets import PAPER_DATASETS
from ..io import atomic_write
from ._data import BUILTIN


def _data_path(text):
    name, sep, path = text.partition("=")
    if not sep or name not in PAPER_DATASETS or not path:
        import argparse

        raise argparse.ArgumentTypeError("expected NAME=PATH with NAME one of "
                                         f"{', '.join(PAPER_DATASETS)}, got {text!r}")
    return name, path


def register(subparsers, name="table1", help_text=None):
    from ..experiments import METHODS, PAPER_NODES

    p = subparsers.add_parser(name, help=help_text, description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", nargs="+", default=None, metavar="NAME",
                   help=f"data sets (default: the built-in {' '.join(BUILTIN)}; the paper's "
                        f"{' '.join(PAPER_DATASETS)} need --data-path)")
    p.add_argument("--data-path", action="append", type=_data_path, default=[],
                   metavar="NAME=PATH", help="local copy of a paper data set (repeatable)")
    p.add_argument("--nodes", nargs="+", type=int, default=None,
                   help=f"hidden-node counts (default: Table 1's {' '.join(map(str, PAPER_NODES))})")
    p.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="seeds (default: 0 1 2 3 4)")
    p.add_argument("--methods", nargs="+", default=None, choices=METHODS, metavar="METHOD",
                   help=f"rows (default: all of {' '.join(METHODS)})")
    p.add_argument("--jobs", type=int, default=None,
                   help="local worker processes (default: every CPU; 1 = in this process)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run on this Dask scheduler, e.g. tcp://host:8786, instead of local "
                        "processes (--jobs is then ignored; the 'dist' extra)")
    p.add_argument("--quick", action="store_true",
                   help="a reduced grid, under 5 minutes on 2 cores (iris, wine and digits, "
                        "nodes 20 40, 3 seeds, 20 epochs)")
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="per run; a run past it is stopped and shown as 'over time' "
                        "(default 1800, --quick 300: an OPTNET run on digits can take "
                        "a minute on a busy machine)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default 50, --quick 20)")
    p.add_argument("--lr", type=float, default=None, help="base learning rate (default 0.05)")
    p.add_argument("--no-lr-scaling", action="store_true",
                   help="keep the learning rate constant (default: Table 3's per-epoch "
                        "scaling, 0.1 for DEQ, DAG and OPTNET)")
    p.add_argument("--out", default="runs/table1", help="output folder (created)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def _settings(args):
    import dataclasses

    from ..experiments import QUICK, Settings

    base = QUICK["settings"] if args.quick else Settings()
    changes = {}
    if args.time_budget is not None:
        changes["time_budget"] = args.time_budget
    if args.epochs is not None:
        changes["epochs"] = args.epochs
    if args.lr is not None:
        changes["lr"] = args.lr
    if args.no_lr_scaling:
        changes["lr_scaling"] = False
    return dataclasses.replace(base, **changes)


def _command(args, datasets, nodes, seeds, methods):
    """The command line that reproduces this table (the effective grid spelled out)."""
    parts = ["refimpl", "table1"] + (["--quick"] if args.quick else [])
    parts += ["--datasets", *datasets, "--nodes", *map(str, nodes), "--seeds", *map(str, seeds)]
    if args.methods:
        parts += ["--methods", *methods]
    for flag, value in (("--time-budget", args.time_budget), ("--epochs", args.epochs),
                        ("--lr", args.lr)):
        if value is not None:
            parts += [flag, str(value)]
    if args.no_lr_scaling:
        parts.append("--no-lr-scaling")
    return " ".join(shlex.quote(p) for p in parts)


def run(args) -> int:
    from tqdm import tqdm

    from ..experiments import (METHODS, PAPER_NODES, QUICK, SweepError, grid, markdown_table,
                               run_sweep)

    quick = QUICK if args.quick else {}
    datasets = args.datasets or list(quick.get("datasets", BUILTIN))
    nodes = args.nodes or list(quick.get("nodes", PAPER_NODES))
    seeds = args.seeds if args.seeds is not None else list(quick.get("seeds", range(5)))
    methods = args.methods or list(METHODS)
    jobs = args.jobs if args.jobs is not None else (os.cpu_count() or 1)
    try:
        if jobs == 0 or jobs < -1:  # refused here, before --out is created
            raise ValueError(f"--jobs: expected a positive integer or -1 (every CPU), got {jobs}")
        settings = _settings(args)
        cells = grid(datasets, nodes, seeds, methods)
    except ValueError as exc:
        print(f"refimpl table1: {exc}", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    csv_path = os.path.join(args.out, "runs.csv")
    show = not args.quiet and sys.stderr.isatty()
    bar = tqdm(total=len(cells), unit="run", desc="table1", disable=not show)

    def progress(row, done, total):
        if done == 0:  # the start: the runs left after skipping finished ones
            bar.reset(total=total)
            return
        bar.update(1)
        if row is not None:
            bar.set_postfix_str(f"{row['dataset']} {row['method']} p={row['nodes']} "
                                f"s={row['seed']}: {row['status']}")

    t0 = time.perf_counter()
    failed = None
    try:
        res = run_sweep(cells, csv_path, settings, n_jobs=jobs, scheduler=args.scheduler,
                        data_paths=dict(args.data_path), progress=progress)
        rows, ran, skipped = res.rows, res.ran, res.skipped
    except SweepError as exc:
        failed = exc
        from ..experiments import read_runs

        keys = set(cells)
        rows = [r for r in read_runs(csv_path)
                if (r["dataset"], r["method"], r["nodes"], r["seed"]) in keys]
        ran, skipped = None, None
    except (ValueError, ImportError) as exc:
        bar.close()
        print(f"refimpl table1: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        bar.close()
        print(f"refimpl table1: interrupted; finished runs are in {csv_path} "
              f"(rerun the same command to continue)", file=sys.stderr)
        return 130
    bar.close()
    elapsed = time.perf_counter() - t0
    table = markdown_table(rows, methods=methods, nodes=nodes, datasets=datasets)
    command = _command(args, datasets, nodes, seeds, methods)
    header = (f"# Table 1 (reproduced structure)\n\nMade by `{command}`.\n\nSettings "
              f"{settings.fingerprint()}: `{json.dumps(settings.to_dict())}`\n\n")
    with atomic_write(os.path.join(args.out, "table1.md")) as fh:
        fh.write(header + table)
    print(table)
    if failed is not None:
        print(f"refimpl table1: {failed}; rerun to retry them", file=sys.stderr)
        return 1
    print(f"{ran} runs in {elapsed:.1f} s ({skipped} finished earlier); wrote "
          f"{csv_path} and {os.path.join(args.out, 'table1.md')}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    from refimpl.cli import OneLineParser

    _p = OneLineParser(prog="refimpl")
    _sub = _p.add_subparsers(parser_class=OneLineParser)
    register(_sub, "table1")
    sys.exit(run(_p.parse_args(["table1", *sys.argv[1:]])))
