"""Benchmark: numba Tarjan vs scipy and networkx SCC; prune + Schedule.

Run with ``python benchmarks/bench_scc.py`` or ``refimpl bench scc``.
All ratios are measured in one process; times are best-of-5.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import best_time, fmt_time, machine, markdown_table  # noqa: E402

from refimpl import prune, strongly_connected_components  # noqa: E402
from refimpl.graph import Schedule  # noqa: E402


def random_digraph(n, degree, seed):
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n, dtype=np.int32), degree)
    cols = rng.integers(0, n, size=n * degree, dtype=np.int32)
    A = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n))
    A.sum_duplicates()
    return A


def path_graph(n, closed):
    src = np.arange(n if closed else n - 1, dtype=np.int32)
    dst = ((src + 1) % n).astype(np.int32)
    return sp.csr_matrix((np.ones(src.size), (src, dst)), shape=(n, n))


def cold_compile_seconds():
    """Seconds to import and JIT-compile the kernels with an empty cache."""
    code = (
        "import time, numpy as np; t=time.perf_counter();"
        "from refimpl import prune; prune(np.eye(3) + 1.0, k=2);"
        "print(time.perf_counter()-t)"
    )
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, NUMBA_CACHE_DIR=d)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True)
    return float(out.stdout.strip())


def run(sizes=(1_000, 10_000, 100_000, 1_000_000), nx_max=100_000, degree=5, seed=0,
        progress=None):
    import networkx as nx

    cases = [(f"random n={n:.0e}, out-degree {degree}", lambda n=n: random_digraph(n, degree, seed), n)
             for n in sizes]
    cases += [("chain n=1e+06", lambda: path_graph(1_000_000, False), 1_000_000),
              ("cycle n=1e+06", lambda: path_graph(1_000_000, True), 1_000_000)]
    strongly_connected_components(np.array([0, 1]), np.array([0]))  # warm (compiled/cached)
    rows = []
    for name, make, n in cases:
        A = make()
        t_nb = best_time(lambda: strongly_connected_components(A.indptr, A.indices))
        t_sp = best_time(lambda: connected_components(A, directed=True, connection="strong"))
        n_nb, lab = strongly_connected_components(A.indptr, A.indices)
        n_sp, _ = connected_components(A, directed=True, connection="strong")
        assert n_nb == n_sp, name
        if n <= nx_max:
            G = nx.from_scipy_sparse_array(A, create_using=nx.DiGraph)
            t_nx = best_time(lambda: sum(1 for _ in nx.strongly_connected_components(G)),
                             repeat=3, min_total=0.1)
        else:
            t_nx = float("nan")
        rows.append([name, n_nb, fmt_time(t_nb), fmt_time(t_sp), fmt_time(t_nx),
                     f"{t_nb / t_sp:.2f}", "-" if t_nx != t_nx else f"{t_nb / t_nx:.4f}"])
        if progress:
            progress(name)
    # prune + Schedule at the paper's scale.
    p = 3000
    K = np.random.default_rng(seed).standard_normal((p, p))
    prune(K, k=5 * p)
    t_prune = best_time(lambda: prune(K, k=5 * p), repeat=5, min_total=1.0)
    g = prune(K, k=5 * p)
    t_sched = best_time(lambda: Schedule.from_csr(g.A), repeat=5, min_total=0.5)
    t_scc_g = best_time(lambda: connected_components(g.A, connection="strong"))
    extra = [
        ["prune + Schedule, p=3000, k=5p (dense K)", fmt_time(t_prune)],
        ["  of which Schedule.from_csr (Tarjan + levels + layout)", fmt_time(t_sched)],
        ["  scipy SCC alone on the same graph", fmt_time(t_scc_g)],
    ]
    return rows, extra


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="sizes up to 1e5 only")
    ap.add_argument("--no-compile", action="store_true", help="skip the cold-compile timing")
    args = ap.parse_args(argv)
    sizes = (1_000, 10_000, 100_000) if args.quick else (1_000, 10_000, 100_000, 1_000_000)
    print(f"machine: {machine()}")
    if not args.no_compile:
        print(f"cold import + JIT compile of the graph kernels: {cold_compile_seconds():.2f} s "
              "(once per machine: cache=True)")
    rows, extra = run(sizes=sizes, progress=lambda s: print(f"  done: {s}", file=sys.stderr))
    print(markdown_table(["graph", "SCCs", "numba Tarjan", "scipy", "networkx",
                          "numba/scipy", "numba/networkx"], rows))
    print()
    print(markdown_table(["step", "time"], extra))
    return 0


if __name__ == "__main__":
    sys.exit(main())
