"""GPU check: the CuPy path against the CPU path, then Fig. 4a/4b-style timings.

One self-contained script (``refimpl bench gpu`` or ``python
benchmarks/gpu_check.py``):

1. **Checks** (on a GPU): on the propagation benchmark's graphs (modules of
   1..32 nodes wired as a deep and a wide DAG, :func:`refimpl.workloads.modular_graph`) and a
   giant module (one strongly connected component), forward + loss +
   backward on the backend agree with the numba CPU path: X to 1e-9 (abs),
   gradients K, W1, Wm to rtol 1e-8, module statuses equal.
2. **Timings** (forward + backward, median of ``--repeat`` runs after one
   warm-up, device synchronized): the modules of a level solved together
   ("levels", Fig. 4b's parallel computation) vs one module at a time
   ("sequential", its baseline) vs the whole graph as one implicit layer
   (the DEQ baseline: "whole", the plain fixed point, and "anderson",
   Anderson acceleration), for the CPU path and the backend, p up to
   ``--p`` (3000) and B = ``--batch`` (256).

Writes ``gpu_check.json`` and ``gpu_check.md`` into ``--out`` and prints the
table.  Exit status 1 when a check fails.  A time guard skips the remaining
timings (marked "skipped") once ``--budget`` seconds (default 420: under 8
minutes with the checks) have passed.

``--dry-run`` runs the same script on the CPU stand-in (the generic path on
NumPy arrays, or ``--backend array_api_strict``) at tiny sizes; the test
suite runs it.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

import refimpl
from refimpl import NMNetwork
from refimpl.backend import get_backend, to_numpy
from refimpl.graph import graph_from_mask
from refimpl.timing import fmt_time, machine, markdown_table
from refimpl.workloads import modular_graph

X_ATOL = 1e-9
G_RTOL = 1e-8


def giant_module(q, seed, weight=0.35, chords=3):
    """K and mask of one strongly connected module of q nodes: a ring plus
    ``chords`` random edges per node, weights ``weight / sqrt(degree)``
    (contractive on average)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((q, q), dtype=bool)
    nodes = rng.permutation(q)
    mask[nodes, np.roll(nodes, -1)] = True
    for _ in range(chords):
        a, b = rng.integers(0, q, q), rng.integers(0, q, q)
        mask[a, b] = True
    np.fill_diagonal(mask, False)
    K = np.where(mask, weight / np.sqrt(chords + 1) * rng.standard_normal((q, q)), 0.0)
    np.fill_diagonal(K, 0.1 * rng.standard_normal(q))
    return K, mask


def cases(p, giant_q, seed):
    """(name, K, mask) of the checked and timed graphs."""
    out = []
    for name, n_levels in (("deep", max(2, min(100, p // 30))),
                           ("wide", max(2, min(10, p // 300)))):
        K, mask = modular_graph(p, n_levels, seed)
        out.append((f"{name} p={p}", K, mask))
    K, mask = giant_module(giant_q, seed)
    out.append((f"giant module q={giant_q}", K, mask))
    return out


def _sync(bk):
    if bk.name == "cupy":  # pragma: no cover - GPU only
        import cupy

        cupy.cuda.runtime.deviceSynchronize()


def _device_name(bk):
    if bk.name == "cupy":  # pragma: no cover - GPU only
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        return props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return f"CPU stand-in ({bk.name})"


def check_case(name, net, g, X0, T, bk, dev_X0, dev_T, tol):
    """Forward + loss + backward on the CPU path and the backend; agreement row."""
    opts = dict(atol=tol, rtol=tol, throw=False)
    f0 = refimpl.forward(net, X0, g, **opts)
    l0, g0, _ = refimpl.loss_and_grad(net, X0, T, g, atol=tol, rtol=tol)
    f1 = refimpl.forward(net, dev_X0, g, backend=bk, **opts)
    l1, g1, _ = refimpl.loss_and_grad(net, dev_X0, dev_T, g, backend=bk, atol=tol, rtol=tol)
    dx = float(np.max(np.abs(to_numpy(f1.X) - f0.X)))
    rel = 0.0
    ok_grad = True
    for field in ("K", "W1", "Wm"):
        a, b = to_numpy(getattr(g1, field)), getattr(g0, field)
        err = np.abs(a - b)
        bound = G_RTOL * np.abs(b) + 1e-12
        ok_grad &= bool(np.all(err <= bound))
        rel = max(rel, float(np.max(err / (np.abs(b) + 1e-300))) if err.size else 0.0)
    same_status = (f0.status == f1.status and f0.failed_modules == f1.failed_modules)
    ok = dx <= X_ATOL and ok_grad and same_status
    S = g.schedule
    return dict(case=name, ok=bool(ok), max_abs_dX=dx, max_rel_dgrad=rel,
                loss_diff=abs(l1 - l0), status_cpu=int(f0.status), status_backend=int(f1.status),
                levels=S.n_levels, modules=int((S.module_sizes > 1).sum()),
                max_q=S.max_module_size, edges=g.n_edges)


def time_fb(net, g, X0, G, backend, repeat, sync, **kw):
    """Median seconds of forward + backward (after one warm-up run)."""
    def run():
        fwd = refimpl.forward(net, X0, g, backend=backend, **kw)
        refimpl.backward(net, fwd, G)
        sync()

    run()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default=None,
                    help="backend to check (default: cupy; with --dry-run numpy-generic)")
    ap.add_argument("--dry-run", action="store_true",
                    help="CPU stand-in at tiny sizes (what the test suite runs)")
    ap.add_argument("--p", type=int, default=None, help="nodes of the modular graphs (3000)")
    ap.add_argument("--giant", type=int, default=None, help="size of the giant module (1500)")
    ap.add_argument("--batch", type=int, default=None, help="B (256)")
    ap.add_argument("--repeat", type=int, default=None, help="timed runs per cell (3)")
    ap.add_argument("--budget", type=float, default=420.0,
                    help="seconds after which the remaining timings are skipped")
    ap.add_argument("--tol", type=float, default=1e-12, help="module solve tolerance")
    ap.add_argument("--out", default="runs/gpu_check", help="output folder")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    dry = args.dry_run
    p = args.p or (48 if dry else 3000)
    giant = args.giant or (20 if dry else 1500)
    B = args.batch or (6 if dry else 256)
    repeat = args.repeat or (1 if dry else 3)
    bk = get_backend(args.backend or ("numpy-generic" if dry else "cupy"))
    if not bk.generic:
        ap.error("--backend: the numba path is the reference; choose cupy, numpy-generic "
                 "or array_api_strict")
    xp = bk.xp
    t_start = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    n_in, n_out = 16, 10
    X0 = rng.standard_normal((B, n_in))
    T = rng.integers(0, n_out, B)
    G = rng.standard_normal((B, n_out)) / B
    dX0, dT, dG = (xp.asarray(a, device=bk.device) for a in (X0, T, G))
    sync = lambda: _sync(bk)  # noqa: E731
    report = dict(date=time.strftime("%Y-%m-%d"), machine=machine(), device=_device_name(bk),
                  backend=bk.name, dry_run=dry, p=p, giant=giant, batch=B, repeat=repeat,
                  tol=args.tol, checks=[], timings=[])
    nets = []
    for name, K, mask in cases(p, giant, args.seed):
        q = K.shape[0]
        net = NMNetwork(K, rng.standard_normal((q, n_in)) / np.sqrt(n_in),
                        rng.standard_normal((n_out, q)) / np.sqrt(q))
        g = graph_from_mask(K, mask)
        nets.append((name, net, g))
        row = check_case(name, net, g, X0, T, bk, dX0, dT, args.tol)
        report["checks"].append(row)
        print(f"check {name}: {'ok' if row['ok'] else 'FAILED'} (max |dX| "
              f"{row['max_abs_dX']:.1e}, max rel d grad {row['max_rel_dgrad']:.1e})",
              file=sys.stderr)
    kw = dict(atol=1e-10, rtol=1e-10)
    for name, net, g in nets:
        for mode, extra in (("levels", {}), ("sequential", {}),
                            ("whole", dict(whole_method="fixed_point")),
                            ("anderson", dict(whole_method="anderson"))):
            row = dict(case=name, mode=mode)
            for label, backend, x, gg, s in (("cpu", "numpy", X0, G, lambda: None),
                                             ("backend", bk, dX0, dG, sync)):
                if time.perf_counter() - t_start > args.budget:
                    row[label] = None
                    continue
                try:
                    row[label] = time_fb(net, g, x, gg, backend, repeat, s,
                                         mode="whole" if mode == "anderson" else mode,
                                         **extra, **kw)
                except refimpl.ConvergenceError as exc:
                    row[label] = None
                    row[f"{label}_error"] = str(exc)
            report["timings"].append(row)
    report["seconds"] = time.perf_counter() - t_start
    md = render(report)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "gpu_check.json"), "w") as fh:
        json.dump(report, fh, indent=1)
    with open(os.path.join(args.out, "gpu_check.md"), "w") as fh:
        fh.write(md + "\n")
    print(md)
    return 0 if all(r["ok"] for r in report["checks"]) else 1


def render(report):
    """The Markdown report: checks, then timings with ratios."""
    def t(v):
        return "skipped" if v is None else fmt_time(v)

    def ratio(a, b):
        return "-" if a is None or b is None else f"{a / b:.2f}x"

    head = (f"{report['date']}, {report['device']} (backend {report['backend']}), "
            f"{report['machine']}; B = {report['batch']}, median of {report['repeat']}"
            + (", DRY RUN (CPU stand-in, tiny sizes)" if report["dry_run"] else ""))
    checks = markdown_table(
        ["graph", "levels", "modules (q>1)", "max q", "edges", "max abs dX", "max rel d grad",
         "statuses", "ok"],
        [[r["case"], r["levels"], r["modules"], r["max_q"], r["edges"],
          f"{r['max_abs_dX']:.1e}", f"{r['max_rel_dgrad']:.1e}",
          f"{r['status_cpu']}/{r['status_backend']}", "yes" if r["ok"] else "NO"]
         for r in report["checks"]])
    by = {(r["case"], r["mode"]): r for r in report["timings"]}
    rows = []
    for case in dict.fromkeys(r["case"] for r in report["timings"]):
        lv, sq, wh = by[(case, "levels")], by[(case, "sequential")], by[(case, "whole")]
        an = by[(case, "anderson")]
        rows.append([case, t(lv["cpu"]), t(lv["backend"]), ratio(lv["cpu"], lv["backend"]),
                     t(sq["backend"]), ratio(sq["backend"], lv["backend"]),
                     t(wh["backend"]), ratio(wh["backend"], lv["backend"]),
                     t(an["backend"]), ratio(an["backend"], lv["backend"]),
                     t(sq["cpu"]), t(wh["cpu"]), t(an["cpu"])])
    timings = markdown_table(
        ["graph (fwd+bwd)", "CPU levels", "backend levels", "CPU/backend",
         "backend sequential", "sequential/levels", "backend whole (fixed point)",
         "whole/levels", "backend whole (Anderson)", "Anderson/levels",
         "CPU sequential", "CPU whole", "CPU Anderson"], rows)
    return f"{head}\n\n{checks}\n\n{timings}"


if __name__ == "__main__":
    sys.exit(main())
