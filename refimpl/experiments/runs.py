"""The runs file of a Table 1 sweep (Sec. 4.1): one CSV row per finished cell, appended and
fsynced at once, read back typed (rows cut short by a crash are skipped)."""
from __future__ import annotations

import csv
import math
import os

__all__ = ["COLUMNS", "read_runs"]

#: Columns of the runs CSV (one row per finished cell).
COLUMNS = ("dataset", "method", "nodes", "seed", "status", "error", "val_error",
           "train_loss", "epochs", "seconds", "iterations", "residual", "edges", "modules",
           "largest_module", "lr", "settings", "finished_at", "message")
_INT = ("nodes", "seed", "epochs", "edges", "modules", "largest_module")
_FLOAT = ("error", "val_error", "train_loss", "seconds", "iterations", "residual", "lr")


def _parse(row):
    out = dict(row)
    for k in _INT:
        out[k] = int(out[k])
    for k in _FLOAT:
        out[k] = float(out[k]) if out[k] not in ("", None) else math.nan
    return out


def _repair(path):
    """Drop a last line cut short by a crash (no newline), so appends stay valid."""
    with open(path, "rb") as fh:
        data = fh.read()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with open(path, "wb") as fh:
            fh.write(data[:cut])
            fh.flush()
            os.fsync(fh.fileno())


def read_runs(path) -> list:
    """The rows of a Table 1 runs CSV (typed; rows cut short by a crash are skipped)."""
    if not os.path.exists(path):
        return []
    rows = []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is not None and tuple(reader.fieldnames) != COLUMNS:
            raise ValueError(f"path: {path} is not a Table 1 runs file (columns "
                             f"{reader.fieldnames})")
        for row in reader:
            if None in row.values() or None in row:
                continue  # incomplete or overlong line
            try:
                rows.append(_parse(row))
            except ValueError:
                continue
    return rows


class _RowWriter:
    """Appends rows to the CSV, one flushed and fsynced line per finished run."""

    def __init__(self, path):
        self.path = path
        new = not os.path.exists(path) or os.path.getsize(path) == 0
        self.fh = open(path, "a", newline="")
        self.writer = csv.DictWriter(self.fh, fieldnames=COLUMNS, lineterminator="\n")
        if new:
            self.writer.writeheader()
            self._sync()

    def _sync(self):
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def write(self, row):
        self.writer.writerow({k: _fmt(row[k]) for k in COLUMNS})
        self._sync()

    def close(self):
        self.fh.close()


def _fmt(v):
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)
    return v
