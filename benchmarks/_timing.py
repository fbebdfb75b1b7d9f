"""Timing helpers of the benchmark scripts: the package's :mod:`refimpl.timing` (kept here so
that ``from _timing import ...`` in a benchmark script keeps working)."""
from refimpl.timing import best_time, fmt_time, machine, markdown_table  # noqa: F401
