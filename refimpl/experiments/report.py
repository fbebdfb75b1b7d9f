"""Reporting of Table 1 (Sec. 4.1): error rate mean +- std per method x nodes, as Markdown."""
from __future__ import annotations

import math

import numpy as np

from .domain import METHODS, OPEN_METHODS, STATUSES

__all__ = ["markdown_table", "summarize"]


def summarize(rows) -> list:
    """Error rate mean and standard deviation per (dataset, method, nodes)
    over the seeds (Table 1's "mean +- std").

    Returns a list of dicts with ``dataset, method, nodes, n, mean, std,
    status`` and ``counts`` (runs per status).  ``mean``/``std`` are over
    the "ok" runs (std with ddof=1, 0 for one run); ``status`` is "over
    time" when any run was over time, else "diverged" when any diverged,
    else "ok".
    """
    groups = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["method"], int(r["nodes"])), []).append(r)
    out = []
    for (d, m, p), rs in groups.items():
        counts = {s: sum(r["status"] == s for r in rs) for s in STATUSES}
        errs = np.array([r["error"] for r in rs if r["status"] == "ok"], dtype=float)
        status = "over time" if counts["over time"] else "diverged" if counts["diverged"] \
            else "ok"
        out.append({"dataset": d, "method": m, "nodes": p, "n": len(rs),
                    "mean": float(errs.mean()) if errs.size else math.nan,
                    "std": float(errs.std(ddof=1)) if errs.size > 1 else 0.0 if errs.size
                    else math.nan,
                    "status": status, "counts": counts})
    return out


def _cell_text(s, digits):
    if s is None:
        return ""
    if s["status"] == "over time":
        return "over time"
    if s["status"] == "diverged":
        bad = s["counts"]["diverged"]
        return f"diverged ({bad}/{s['n']})"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def markdown_table(rows, *, methods=METHODS, nodes=None, datasets=None, digits=3) -> str:
    """Table 1 as Markdown: one table per data set, methods x nodes, cells
    "mean ± std" of the test error rate over the seeds, "over time",
    "diverged (d/n)", "open" for the open rows, empty when not run."""
    summary = {(s["dataset"], s["method"], s["nodes"]): s for s in summarize(rows)}
    if datasets is None:
        datasets = list(dict.fromkeys(s[0] for s in summary))
    if nodes is None:
        nodes = sorted({s[2] for s in summary})
    parts = []
    for d in datasets:
        seeds = sorted({r["seed"] for r in rows if r["dataset"] == d})
        lines = [f"### {d} (test error rate, mean ± std over {len(seeds)} seed"
                 f"{'s' if len(seeds) != 1 else ''})", "",
                 "| Methods | " + " | ".join(str(p) for p in nodes) + " |",
                 "|---|" + "---|" * len(nodes)]
        for m in methods:
            if m in OPEN_METHODS:
                cells = ["open"] * len(nodes)
            else:
                cells = [_cell_text(summary.get((d, m, p)), digits) for p in nodes]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"
