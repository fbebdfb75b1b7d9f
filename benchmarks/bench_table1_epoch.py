"""Per-epoch cost of each Table 1 method relative to NMs, measured in one process.

Every method of :data:`refimpl.experiments.METHODS` is built by
:func:`refimpl.experiments.make_trainer` with the Table 1 settings (Table 3:
SGD, momentum 0.5; k = 10 p edges for the graph methods) and trained for one
epoch from its initialization on ``--samples`` rows of the digits training
split (mini-batches of 32, no validation pass).  The methods are interleaved
and each is timed ``--repeat`` times (a fresh trainer, same seed each time);
the best time counts, and the table gives it relative to NMs's.  A warm-up
epoch of one mini-batch per method comes first (numba compiles once).

BLAS threads: 1 by default (``--threads``), as in ``refimpl table1``'s worker
processes; on a shared 2-core machine more threads made the OPTNET's batched
factorizations several times slower.

Run ``python benchmarks/bench_table1_epoch.py`` or ``refimpl bench table1``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import fmt_time, machine, markdown_table  # noqa: E402

from refimpl.datasets import load_builtin  # noqa: E402
from refimpl.experiments import METHODS, Settings, make_trainer  # noqa: E402


def epoch_seconds(method, p, data, n, settings):
    tr = make_trainer(method, p, 0, data.n_features, data.n_classes, settings)
    t0 = time.perf_counter()
    tr.fit(data.X_train[:n], data.y_train[:n], epochs=1)
    return time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, nargs="+", default=[100, 300])
    ap.add_argument("--samples", type=int, default=256,
                    help="training rows per epoch (default 256 = 8 mini-batches)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    args = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    data = load_builtin("digits", seed=0)
    settings = Settings()
    methods = list(dict.fromkeys(["NMs", *args.methods]))
    print(f"# one epoch of {args.samples} digits rows, batch 32, best of {args.repeat}, "
          f"{args.threads} BLAS thread(s)\n# {machine()}")
    rows = []
    with threadpool_limits(args.threads):
        for p in args.nodes:
            best = {m: float("inf") for m in methods}
            for m in methods:  # warm-up: numba compilation, caches
                epoch_seconds(m, p, data, 32, settings)
            for _ in range(args.repeat):
                for m in methods:  # interleaved
                    best[m] = min(best[m], epoch_seconds(m, p, data, args.samples, settings))
            for m in args.methods:
                rows.append([m, p, fmt_time(best[m]), f"{best[m] / best['NMs']:.3g}"])
    print(markdown_table(["method", "p", "epoch", "/ NMs"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
