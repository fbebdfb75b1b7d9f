"""Timing helpers shared by the benchmarks and the timing figures (DESIGN.md sec. 12; no mathematics).

Report ratios measured in one process, not absolute times: these helpers give best-of-n
seconds per call and one line naming the machine.
"""
from __future__ import annotations

import os
import platform
import time

__all__ = ["best_time", "fmt_time", "machine", "markdown_table"]


def best_time(fn, *, repeat=5, min_total=0.2, max_number=1000):
    """Best-of-``repeat`` seconds per call (DESIGN.md sec. 12), each repeat looping enough calls
    to last about ``min_total / repeat`` seconds (like ``timeit``)."""
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    number = int(max(1, min(max_number, (min_total / repeat) / once)))
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - t0) / number)
    return best


def machine() -> str:
    """One line that states the machine the numbers were measured on (DESIGN.md sec. 12)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import numba
    import numpy
    import scipy

    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {numpy.__version__}, scipy {scipy.__version__}, numba {numba.__version__}"
    )


def fmt_time(t):
    """Seconds as a short string in us, ms or s (NaN as "-"; DESIGN.md sec. 12)."""
    if t != t:  # NaN
        return "-"
    if t < 1e-3:
        return f"{t * 1e6:.1f} us"
    if t < 1:
        return f"{t * 1e3:.2f} ms"
    return f"{t:.2f} s"


def markdown_table(header, rows):
    """A Markdown table of ``rows`` under ``header`` (the README's benchmark tables, DESIGN.md sec. 12)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
