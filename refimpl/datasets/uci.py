"""Loaders of the paper's four UCI / SNAP data sets from local copies (DESIGN.md sec. 11).

Each loader takes ``path``; when it is ``None`` it reads a per-dataset environment
variable, then ``$REFIMPL_DATA/<subfolder>`` (see :mod:`refimpl.datasets`).  Loaders do
I/O only; they print nothing and hold no global state.
"""
from __future__ import annotations

import csv
import json
import os
import re
import warnings
from pathlib import Path

import numpy as np

from .base import DataQualityWarning, Dataset, split_standardize

__all__ = ["PAPER_DATASETS", "load_codon", "load_daily_sports", "load_facebook",
           "load_gas_drift"]

#: The paper's data sets (Table 1), read from local copies only.
PAPER_DATASETS = ("codon", "daily_sports", "facebook", "gas_drift")


# --------------------------------------------------------------------------- local copies
def _locate(path, *, var, subfolder, expected, what, source) -> Path:
    """Resolve a data location: ``path``, else ``$var``, else ``$REFIMPL_DATA/subfolder``.

    Raises FileNotFoundError naming the expected content and both variables.
    """
    hint = (f"Put {expected} there and pass path=..., or set {var} to that location, "
            f"or set REFIMPL_DATA to a folder holding {subfolder}/ with {expected}. "
            f"The data ({what}) is published at {source}.")
    if path is not None:
        where = Path(path)
    elif os.environ.get(var):
        where = Path(os.environ[var])
    elif os.environ.get("REFIMPL_DATA"):
        where = Path(os.environ["REFIMPL_DATA"]) / subfolder
    else:
        raise FileNotFoundError(f"{what}: no path given and neither {var} nor REFIMPL_DATA "
                                f"is set. {hint}")
    if not where.exists():
        raise FileNotFoundError(f"{what}: {where} does not exist. {hint}")
    return where


def _require(folder: Path, filename: str, *, var, subfolder, what, source) -> Path:
    f = folder / filename
    if not f.is_file():
        raise FileNotFoundError(
            f"{what}: expected the file {f}. Pass path=... (the folder holding {filename}), "
            f"or set {var} to it, or set REFIMPL_DATA to a folder holding "
            f"{subfolder}/{filename}. The data is published at {source}.")
    return f


_CODON_SOURCE = "https://archive.ics.uci.edu/dataset/577/codon+usage"
_CODON_RE = re.compile(r"^[ACGU]{3}$")


def load_codon(path=None, *, seed=0, val_size=0.15, test_size=0.15, standardize=True,
               bad_rows="drop") -> Dataset:
    """UCI "Codon usage" (the paper's Codon dataset, Table 1), from a local ``codon_usage.csv``.

    Published format: a CSV with header ``Kingdom, DNAtype, SpeciesID, Ncodons,
    SpeciesName`` followed by the 64 codon columns (``UUU, UUC, ...``), one row per
    organism, codon entries being usage frequencies (5-decimal floats).  Features: the 64
    codon frequencies; target: ``Kingdom`` (the 11 three-letter codes arc, bct, phg, plm,
    pln, inv, vrt, mam, rod, pri, vrl), as in the paper's classification.

    Known quirk of the published file: a few rows carry non-numeric codon entries (species
    names whose comma survived, shifting the columns).  A row is malformed if it has the
    wrong number of fields, an empty Kingdom, or a codon entry that is not a finite float.

    Parameters
    ----------
    path : str or Path, optional
        ``codon_usage.csv`` itself or its folder; default ``$REFIMPL_CODON``, then
        ``$REFIMPL_DATA/codon_usage/``.
    seed, val_size, test_size, standardize
        See :func:`split_standardize`.
    bad_rows : {"drop", "raise"}
        "drop" (default) skips malformed rows and issues a :class:`DataQualityWarning`
        listing their line numbers; "raise" raises ValueError at the first one.

    Returns
    -------
    Dataset
    """
    if bad_rows not in ("drop", "raise"):
        raise ValueError(f"bad_rows must be 'drop' or 'raise', got {bad_rows!r}")
    kw = dict(var="REFIMPL_CODON", subfolder="codon_usage", what="Codon usage",
              source=_CODON_SOURCE)
    where = _locate(path, expected="codon_usage.csv", **kw)
    f = where if where.is_file() else _require(where, "codon_usage.csv", **kw)
    with open(f, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        if "Kingdom" not in header:
            raise ValueError(f"{f}: header has no 'Kingdom' column: {header[:6]}")
        codon_cols = [i for i, h in enumerate(header) if _CODON_RE.match(h)]
        if len(codon_cols) != 64:
            raise ValueError(f"{f}: expected 64 codon columns, found {len(codon_cols)}")
        k_col = header.index("Kingdom")
        rows, labels, bad = [], [], []
        for row in reader:
            line_no = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            try:
                if len(row) != len(header):
                    raise ValueError(f"{len(row)} fields, header has {len(header)}")
                if not row[k_col].strip():
                    raise ValueError("empty Kingdom")
                vals = [float(row[i]) for i in codon_cols]
                if not all(np.isfinite(vals)):
                    raise ValueError("non-finite codon frequency")
            except ValueError as exc:
                if bad_rows == "raise":
                    raise ValueError(f"{f}, line {line_no}: malformed row ({exc})") from exc
                bad.append(line_no)
                continue
            rows.append(vals)
            labels.append(row[k_col].strip())
    if bad:
        warnings.warn(f"{f}: dropped {len(bad)} malformed row(s) at line(s) {bad[:20]}",
                      DataQualityWarning, stacklevel=2)
    if not rows:
        raise ValueError(f"{f}: no valid data rows")
    return split_standardize(np.array(rows), np.array(labels), seed=seed, val_size=val_size,
                             test_size=test_size, standardize=standardize,
                             feature_names=[header[i] for i in codon_cols], name="codon")


_GAS_SOURCE = "https://archive.ics.uci.edu/dataset/224/gas+sensor+array+drift+dataset"


def _read_libsvm_batch(f: Path) -> tuple[list[int], list[dict[int, float]]]:
    """One ``batchN.dat``: lines ``label;concentration idx:value ...`` (or plain libsvm)."""
    labels, feats = [], []
    with open(f, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            tokens = line.split()
            if not tokens:
                continue
            try:
                labels.append(int(float(tokens[0].split(";")[0])))
                row = {}
                for tok in tokens[1:]:
                    idx, val = tok.split(":")
                    row[int(idx)] = float(val)
                if any(i < 1 for i in row):
                    raise ValueError("feature indices start at 1")
            except ValueError as exc:
                raise ValueError(f"{f}, line {line_no}: not in the libsvm format "
                                 f"'label;concentration idx:value ...' ({exc})") from exc
            feats.append(row)
    return labels, feats


def load_gas_drift(path=None, *, batches=range(1, 11), seed=0, val_size=0.15,
                   test_size=0.15, standardize=True) -> Dataset:
    """UCI "Gas sensor array drift" (the paper's Gas dataset, Table 1), from local ``batchN.dat``.

    Published format: ten files ``batch1.dat .. batch10.dat`` in libsvm format, one
    measurement per line, ``label;concentration 1:v1 2:v2 ... 128:v128`` (16 sensors x 8
    features); the class label before the semicolon is the gas, 1 Ethanol, 2 Ethylene,
    3 Ammonia, 4 Acetaldehyde, 5 Acetone, 6 Toluene.  A plain libsvm head without
    ``;concentration`` is accepted too.  Features: the dense vector of indices
    ``1 .. max index`` over the files read (absent indices are 0, as in libsvm); the
    concentration is not a feature.  Batches are pooled and split at random (this is not
    the drift protocol of training on early batches).

    Parameters
    ----------
    path : str or Path, optional
        Folder holding the batch files; default ``$REFIMPL_GAS_DRIFT``, then
        ``$REFIMPL_DATA/gas_drift/``.
    batches : iterable of int
        Batch numbers to read (each file must exist).
    seed, val_size, test_size, standardize
        See :func:`split_standardize`.

    Returns
    -------
    Dataset
        ``classes`` are the gas codes 1..6 found in the files.
    """
    kw = dict(var="REFIMPL_GAS_DRIFT", subfolder="gas_drift",
              what="Gas sensor array drift", source=_GAS_SOURCE)
    where = _locate(path, expected="batch1.dat .. batch10.dat", **kw)
    labels, feats = [], []
    for b in batches:
        lab, fe = _read_libsvm_batch(_require(where, f"batch{int(b)}.dat", **kw))
        labels += lab
        feats += fe
    if not labels:
        raise ValueError(f"{where}: the batch files hold no measurements")
    d = max((max(r) for r in feats if r), default=0)
    X = np.zeros((len(feats), d))
    for n, row in enumerate(feats):
        for idx, val in row.items():
            X[n, idx - 1] = val
    return split_standardize(X, np.array(labels, dtype=np.int64), seed=seed,
                             val_size=val_size, test_size=test_size, standardize=standardize,
                             feature_names=[f"f{i}" for i in range(1, d + 1)],
                             name="gas_drift")


_DSA_SOURCE = "the UCI Machine Learning Repository ('Daily and Sports Activities')"
_DSA_UNITS = ("T", "RA", "LA", "RL", "LL")          # torso, right/left arm, right/left leg
_DSA_SENSORS = ("xacc", "yacc", "zacc", "xgyro", "ygyro", "zgyro", "xmag", "ymag", "zmag")
_DSA_STATS = ("mean", "std", "min", "max")
_DSA_FILE = re.compile(r"^a(\d+)$"), re.compile(r"^p(\d+)$"), re.compile(r"^s(\d+)\.txt$")


def load_daily_sports(path=None, *, features="stats", seed=0, val_size=0.15,
                      test_size=0.15, standardize=True) -> Dataset:
    """UCI "Daily and Sports Activities" (the paper's Activity dataset, Table 1), from a local copy.

    Published format: a folder ``data/a01/p1/s01.txt .. data/a19/p8/s60.txt`` (19
    activities x 8 subjects x 60 five-second segments); each file holds 125 rows (25 Hz)
    x 45 comma-separated columns: 5 units (torso, right arm, left arm, right leg, left
    leg) x 9 sensors (x, y, z accelerometer, gyroscope, magnetometer).  Target: the
    activity number of the ``aNN`` folder.  Every segment found is read (all files must
    have the same shape); segments are split at random, not by subject.

    Parameters
    ----------
    path : str or Path, optional
        The folder holding ``data/`` (or ``data/`` itself); default
        ``$REFIMPL_DAILY_SPORTS``, then ``$REFIMPL_DATA/daily_sports/``.
    features : {"stats", "flatten"}
        "stats" (default): per column mean, std, min and max over the segment's rows
        (4 x 45 = 180 features, ordered column by column); "flatten": the raw segment,
        row-major (125 x 45 = 5625 features).
    seed, val_size, test_size, standardize
        See :func:`split_standardize`.

    Returns
    -------
    Dataset
        ``classes`` are the activity numbers (1..19).
    """
    if features not in ("stats", "flatten"):
        raise ValueError(f"features must be 'stats' or 'flatten', got {features!r}")
    kw = dict(var="REFIMPL_DAILY_SPORTS", subfolder="daily_sports",
              what="Daily and Sports Activities", source=_DSA_SOURCE)
    where = _locate(path, expected="data/a01/p1/s01.txt ...", **kw)
    root = where / "data" if (where / "data").is_dir() else where
    files = []
    for a in sorted(root.iterdir()) if root.is_dir() else ():
        ma = _DSA_FILE[0].match(a.name)
        if not (ma and a.is_dir()):
            continue
        for p in sorted(a.iterdir()):
            if _DSA_FILE[1].match(p.name) and p.is_dir():
                files += [(int(ma.group(1)), s) for s in sorted(p.iterdir())
                          if _DSA_FILE[2].match(s.name)]
    if not files:
        _require(root, "a01/p1/s01.txt", **kw)
    rows, shape = [], None
    for _, f in files:
        seg = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2)
        if shape is None:
            shape = seg.shape
        elif seg.shape != shape:
            raise ValueError(f"{f}: shape {seg.shape}, expected {shape} like the other segments")
        if features == "stats":
            seg = np.stack([seg.mean(0), seg.std(0), seg.min(0), seg.max(0)], axis=1)
        rows.append(seg.reshape(-1))
    cols = ([f"{u}_{s}" for u in _DSA_UNITS for s in _DSA_SENSORS] if shape[1] == 45
            else [f"c{j + 1}" for j in range(shape[1])])
    names = ([f"{c}_{st}" for c in cols for st in _DSA_STATS] if features == "stats"
             else [f"t{t}_{c}" for t in range(shape[0]) for c in cols])
    return split_standardize(np.array(rows), np.array([a for a, _ in files], dtype=np.int64),
                             seed=seed, val_size=val_size, test_size=test_size,
                             standardize=standardize, feature_names=names,
                             name="daily_sports")


_FB_SOURCE = ("the SNAP / UCI 'Facebook Large Page-Page Network' (MUSAE) archive, "
              "https://snap.stanford.edu/data/facebook-large-page-page-network.html")
_FB_FILES = ("musae_facebook_edges.csv", "musae_facebook_target.csv",
             "musae_facebook_features.json")


def load_facebook(path=None, *, n_features=None, degree=True, seed=0, val_size=0.15,
                  test_size=0.15, standardize=True) -> Dataset:
    """Facebook Large Page-Page network (MUSAE; the paper's Table 1), from a local copy.

    Published format (three files in one folder):

    - ``musae_facebook_edges.csv``: header ``id_1,id_2``, one undirected edge per row;
    - ``musae_facebook_target.csv``: header ``id,facebook_id,page_name,page_type``,
      one row per page; ``page_type`` (politician, government, tvshow, company) is the
      target;
    - ``musae_facebook_features.json``: ``{"id": [feature indices], ...}``.

    Features: the multi-hot vector of a page's feature indices, of dimension
    ``max index + 1`` (``n_features=None``) or hashed to ``n_features`` columns by
    ``index mod n_features`` (still 0/1), then, if ``degree``, one column
    ``log(1 + degree)`` from the edge list.  Rows follow the target file.

    Parameters
    ----------
    path : str or Path, optional
        The folder holding the three files; default ``$REFIMPL_FACEBOOK``, then
        ``$REFIMPL_DATA/facebook/``.
    n_features : int, optional
        Hashed multi-hot dimension; default the full dimension.
    degree : bool
        Append the log-degree column (the only use of the edge file; the edge file is
        read, and required, only then).
    seed, val_size, test_size, standardize
        See :func:`split_standardize`.

    Returns
    -------
    Dataset
        ``classes`` are the page types, sorted.
    """
    if n_features is not None and int(n_features) < 1:
        raise ValueError(f"n_features must be a positive int or None, got {n_features}")
    kw = dict(var="REFIMPL_FACEBOOK", subfolder="facebook",
              what="Facebook Large Page-Page", source=_FB_SOURCE)
    where = _locate(path, expected=", ".join(_FB_FILES), **kw)
    f_edges, f_target, f_feats = (_require(where, n, **kw) if (n != _FB_FILES[0] or degree)
                                  else None for n in _FB_FILES)
    with open(f_target, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = {"id", "page_type"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{f_target}: missing column(s) {sorted(missing)}")
        ids, labels = [], []
        for rec in reader:
            ids.append(int(rec["id"]))
            labels.append(rec["page_type"].strip())
    ids = np.array(ids, dtype=np.int64)
    if np.unique(ids).size != ids.size:
        raise ValueError(f"{f_target}: duplicate page ids")
    row_of = {int(i): r for r, i in enumerate(ids)}
    with open(f_feats, encoding="utf-8") as fh:
        lists = json.load(fh)
    feat_lists = [[int(j) for j in lists.get(str(i), ())] for i in ids]
    full = 1 + max((max(fl) for fl in feat_lists if fl), default=-1)
    d = full if n_features is None else int(n_features)
    X = np.zeros((ids.size, d + int(degree)))
    for r, fl in enumerate(feat_lists):
        if fl:
            X[r, np.asarray(fl, dtype=np.int64) % max(d, 1)] = 1.0
    names = [f"f{j}" if n_features is None else f"hash{j}" for j in range(d)]
    if degree:
        edges = np.loadtxt(f_edges, delimiter=",", skiprows=1, dtype=np.int64, ndmin=2)
        edges = edges.reshape(-1, 2)
        try:
            ends = np.array([row_of[int(v)] for v in edges.reshape(-1)], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(f"{f_edges}: edge end {exc} is not a page id of "
                             f"{f_target.name}") from exc
        X[:, d] = np.log1p(np.bincount(ends, minlength=ids.size))
        names.append("log1p_degree")
    return split_standardize(X, np.array(labels), seed=seed, val_size=val_size,
                             test_size=test_size, standardize=standardize,
                             feature_names=names, name="facebook")

