r"""Datasets (DESIGN.md sec. 11): built-in data, loaders of the paper's four datasets, teachers.

Three sources, all returned as a :class:`Dataset` (train / validation / test splits):

- :func:`load_builtin`: scikit-learn's bundled real data (digits, wine, breast cancer,
  iris); shipped inside scikit-learn, no network.  Needs the optional ``data`` extra.
- :func:`load_codon`, :func:`load_gas_drift`, :func:`load_daily_sports`,
  :func:`load_facebook`: the four datasets of the paper's Table 1, read from a local copy
  in their published formats (the build machines cannot download them).
- :func:`teacher_data`: labels of a random sparse acyclic teacher network, for controlled
  experiments.

Conventions (DESIGN.md sec. 2): float64 features, batches are rows, class labels are the
integers ``0 .. n_classes - 1``; ``Dataset.classes[y]`` maps them back to the original
label values.

Where the local copies are found
--------------------------------
Each loader takes ``path``; when it is ``None`` the loader reads a per-dataset
environment variable, then ``$REFIMPL_DATA/<subfolder>``:

=====================  ======================  ==================  ==========================
loader                 variable                subfolder           expected content
=====================  ======================  ==================  ==========================
load_codon             REFIMPL_CODON           codon_usage         ``codon_usage.csv``
load_gas_drift         REFIMPL_GAS_DRIFT       gas_drift           ``batch1.dat .. batch10.dat``
load_daily_sports      REFIMPL_DAILY_SPORTS    daily_sports        ``data/a01/p1/s01.txt ...``
load_facebook          REFIMPL_FACEBOOK        facebook            ``musae_facebook_*`` (3 files)
=====================  ======================  ==================  ==========================

A missing file raises :class:`FileNotFoundError` naming the expected location and the
variables.  Loaders do I/O only; they print nothing and hold no global state.
"""
from __future__ import annotations

import csv
import json
import os
import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
import numpy as np

__all__ = [
    "BUILTIN_DATASETS",
    "DataQualityWarning",
    "Dataset",
    "load_builtin",
    "load_codon",
    "load_daily_sports",
    "load_facebook",
    "load_gas_drift",
    "split_standardize",
    "stratified_split",
    "teacher_data",
]

BUILTIN_DATASETS = ("digits", "wine", "breast_cancer", "iris")


class DataQualityWarning(UserWarning):
    """A loader dropped malformed rows of a published file (it says which)."""


# --------------------------------------------------------------------------- container
@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A classification dataset split into train, validation and test parts.

    Attributes
    ----------
    X_train, X_val, X_test : ndarray of float64, shape (n_split, n_features)
        Features, standardized with the training statistics (see
        :func:`split_standardize`) unless the caller asked otherwise.
    y_train, y_val, y_test : ndarray of int64, shape (n_split,)
        Class indices in ``0 .. n_classes - 1``.
    classes : ndarray, shape (n_classes,)
        Original label values: ``classes[y]`` gives the label of the source data.
    feature_names : tuple of str or None
    name : str
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    classes: np.ndarray
    feature_names: tuple[str, ...] | None = None
    name: str = "custom"

    def __post_init__(self):
        d = self.X_train.shape[1] if self.X_train.ndim == 2 else None
        for part in ("train", "val", "test"):
            X, y = getattr(self, f"X_{part}"), getattr(self, f"y_{part}")
            if X.ndim != 2 or X.shape[1] != d:
                raise ValueError(f"X_{part}: expected shape (n, {d}), got {X.shape}")
            if y.shape != (X.shape[0],):
                raise ValueError(f"y_{part}: expected shape ({X.shape[0]},), got {y.shape}")
        if self.feature_names is not None and len(self.feature_names) != d:
            raise ValueError(f"feature_names: expected {d} names, got {len(self.feature_names)}")

    @property
    def n_features(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def n_classes(self) -> int:
        return int(len(self.classes))

    def __repr__(self) -> str:
        return (f"Dataset(name={self.name!r}, n_features={self.n_features}, "
                f"n_classes={self.n_classes}, n_train={len(self.y_train)}, "
                f"n_val={len(self.y_val)}, n_test={len(self.y_test)})")


# --------------------------------------------------------------------------- splitting
def stratified_split(y, *, seed=0, val_size=0.15, test_size=0.15):
    r"""Seeded stratified train / validation / test index split (numpy only).

    Per class c with :math:`n_c` rows (shuffled with ``rng``), the test part takes
    :math:`t_c = \lfloor n_c\,\mathrm{test\_size} + 1/2 \rfloor` rows and the validation
    part :math:`\lfloor n_c(\mathrm{test\_size} + \mathrm{val\_size}) + 1/2\rfloor - t_c`
    (rounding the cumulative fractions), the rest is training.  So every class count of
    every split is within one row of :math:`n_c` times the split's fraction, and split sizes
    equal the requested fractions up to half a row per class.  A class of one row goes to
    training while ``test_size + val_size < 1/2``.

    Parameters
    ----------
    y : array_like, shape (n,)
        Labels of any type that :func:`numpy.unique` can sort.
    seed : int
        Seed of ``np.random.default_rng``; the same seed gives the same split.
    val_size, test_size : float
        Fractions in [0, 1) with ``val_size + test_size < 1``.

    Returns
    -------
    train, val, test : ndarray of int64
        Disjoint row indices covering ``range(n)``, each in a seeded random order.
    """
    val_size, test_size = float(val_size), float(test_size)
    if not (0.0 <= val_size < 1.0 and 0.0 <= test_size < 1.0 and val_size + test_size < 1.0):
        raise ValueError("val_size and test_size must lie in [0, 1) with "
                         f"val_size + test_size < 1, got {val_size} and {test_size}")
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y: expected a 1-D array, got shape {y.shape}")
    rng = np.random.default_rng(seed)
    _, codes = np.unique(y, return_inverse=True)
    parts = ([], [], [])
    for c in range(int(codes.max()) + 1 if codes.size else 0):
        rows = rng.permutation(np.flatnonzero(codes == c))
        n_c = rows.size
        n_test = int(np.floor(n_c * test_size + 0.5))
        n_test_val = int(np.floor(n_c * (test_size + val_size) + 0.5))
        parts[2].append(rows[:n_test])
        parts[1].append(rows[n_test:n_test_val])
        parts[0].append(rows[n_test_val:])
    return tuple(rng.permutation(np.concatenate(p).astype(np.int64)) if p
                 else np.zeros(0, np.int64) for p in parts)


def _encode(y, classes=None) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes 0..C-1 of labels ``y`` and the label values ``classes``."""
    if classes is None:
        classes, codes = np.unique(y, return_inverse=True)
        return codes.astype(np.int64).reshape(-1), classes
    classes = np.asarray(classes)
    index = {v: i for i, v in enumerate(classes.tolist())}
    uniq, inv = np.unique(y, return_inverse=True)
    unknown = [v for v in uniq.tolist() if v not in index]
    if unknown:
        raise ValueError(f"labels {unknown[:5]} are not in classes {classes.tolist()}")
    lut = np.array([index[v] for v in uniq.tolist()], dtype=np.int64)
    return lut[inv.reshape(-1)], classes


def split_standardize(X, y, *, seed=0, val_size=0.15, test_size=0.15, standardize=True,
                      classes=None, feature_names=None, name="custom") -> Dataset:
    r"""Split ``(X, y)`` with :func:`stratified_split` and standardize with train statistics.

    Implements the preprocessing of DESIGN.md sec. 11: every loader ends here.  The
    standardization

    .. math::

        x \mapsto (x - \mu_{train}) / s_{train}, \qquad
        s_{train} = \mathrm{std}_{train}(x) \text{ (ddof 0), or 1 where it is 0}

    is fitted on the training rows only and applied unchanged to validation and test rows
    (no information from them leaks into training).  A feature that is constant on the
    training rows is only centred: it is divided by 1, not by 0.

    Parameters
    ----------
    X : array_like, shape (n, n_features)
        Finite features.
    y : array_like, shape (n,)
        Labels of any sortable type; mapped to ``0 .. n_classes - 1`` in sorted order.
    seed, val_size, test_size
        See :func:`stratified_split`.
    standardize : bool
        False returns the raw features (split only).
    classes : array_like, optional
        The full, ordered label set (for labels that may be absent from ``y``); default
        the sorted unique labels of ``y``.
    feature_names : sequence of str, optional
    name : str

    Returns
    -------
    Dataset
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if X.ndim != 2:
        raise ValueError(f"X: expected a 2-D array (n, n_features), got shape {X.shape}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y: expected shape ({X.shape[0]},) to match X, got {y.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("X: contains NaN or infinite values")
    codes, classes = _encode(y, classes)
    tr, va, te = stratified_split(codes, seed=seed, val_size=val_size, test_size=test_size)
    X_tr, X_va, X_te = X[tr], X[va], X[te]
    if standardize and tr.size:
        mu = X_tr.mean(axis=0)
        s = X_tr.std(axis=0)
        s = np.where(s > 0.0, s, 1.0)                  # constant feature: divide by 1
        X_tr, X_va, X_te = ((A - mu) / s for A in (X_tr, X_va, X_te))
    if feature_names is not None:
        feature_names = tuple(str(f) for f in feature_names)
    return Dataset(X_train=np.ascontiguousarray(X_tr), y_train=codes[tr],
                   X_val=np.ascontiguousarray(X_va), y_val=codes[va],
                   X_test=np.ascontiguousarray(X_te), y_test=codes[te],
                   classes=classes, feature_names=feature_names, name=name)


# --------------------------------------------------------------------------- built-in data
def load_builtin(name, *, seed=0, val_size=0.15, test_size=0.15) -> Dataset:
    """scikit-learn's bundled real datasets (DESIGN.md sec. 11), split and standardized.

    Parameters
    ----------
    name : {"digits", "wine", "breast_cancer", "iris"}
        ``load_digits`` (1797 x 64, 10 classes), ``load_wine`` (178 x 13, 3),
        ``load_breast_cancer`` (569 x 30, 2), ``load_iris`` (150 x 4, 3).
    seed, val_size, test_size
        See :func:`split_standardize`.

    Returns
    -------
    Dataset
        Class codes equal scikit-learn's targets; ``classes`` holds its ``target_names``.

    Raises
    ------
    ImportError
        scikit-learn is not installed (``pip install -e ".[data]"``).
    ValueError
        Unknown ``name``.
    """
    if name not in BUILTIN_DATASETS:
        raise ValueError(f"unknown built-in dataset {name!r}; choose one of {BUILTIN_DATASETS}")
    try:
        from sklearn import datasets as skd
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("the built-in datasets need scikit-learn: install the 'data' "
                          'extra (pip install -e ".[data]")') from exc
    bunch = getattr(skd, f"load_{name}")()
    target = np.asarray(bunch.target, dtype=np.int64)
    names = np.asarray(bunch.target_names)
    ds = split_standardize(bunch.data, target, seed=seed, val_size=val_size,
                           test_size=test_size, classes=np.arange(len(names)),
                           feature_names=getattr(bunch, "feature_names", None), name=name)
    return replace(ds, classes=names)


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
    """UCI "Codon usage" (the paper's Codon dataset), from a local ``codon_usage.csv``.

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
    """UCI "Gas sensor array drift" (the paper's Gas dataset), from local ``batchN.dat``.

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
    """UCI "Daily and Sports Activities" (the paper's Activity dataset), from a local copy.

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
    """Facebook Large Page-Page network (MUSAE), node classification from a local copy.

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


# --------------------------------------------------------------------------- teachers
def teacher_data(n_samples, n_in, n_classes, *, seed=0, p=32, k=4, noise=0.0,
                 val_size=0.15, test_size=0.15, standardize=True) -> Dataset:
    r"""Synthetic classification data labelled by a random sparse acyclic teacher network.

    The teacher is a random DAG on ``n_in`` inputs and ``p`` hidden nodes (tanh), kept
    inside this module so that the data does not depend on the code it tests.  Hidden
    node ``i`` (in topological order) draws ``min(k, n_in + i)`` distinct predecessors
    among the inputs and the earlier hidden nodes, with weights
    :math:`\mathcal N(0, 1/k_i)` and bias :math:`\mathcal N(0, 0.25)`:

    .. math::

        x_i = \tanh\Big(\sum_{j \in \mathrm{pred}(i)} w_{ji}\, x_j + b_i\Big),
        \qquad z = W^m x_{hidden}, \quad W^m_{oi} \sim \mathcal N(0, 1/p).

    Inputs are standard normal.  Each logit column is z-scored over the drawn sample
    (which sets the output biases so the classes come out roughly balanced), the label
    is its argmax, and a fraction ``noise`` of the labels is replaced by uniformly drawn
    classes (label noise; the replacement may equal the clean label).  The inputs and the
    clean labels do not depend on ``noise`` (the split does: it is stratified on the
    returned labels).

    Parameters
    ----------
    n_samples, n_in, n_classes : int
        ``n_classes >= 2``.
    seed : int
        One ``np.random.default_rng(seed)`` draws the teacher, the inputs, the noise and
        the split: the same seed gives identical data.
    p : int
        Hidden nodes of the teacher.
    k : int
        In-degree of each hidden node (sparsity of the teacher graph).
    noise : float in [0, 1]
        Label-noise fraction.
    val_size, test_size, standardize
        See :func:`split_standardize`.

    Returns
    -------
    Dataset
        ``classes`` is ``arange(n_classes)`` even if a class is drawn for no sample.
    """
    n_samples, n_in, n_classes, p, k = map(int, (n_samples, n_in, n_classes, p, k))
    if n_samples < 1 or n_in < 1 or n_classes < 2 or p < 1 or k < 1:
        raise ValueError("need n_samples >= 1, n_in >= 1, n_classes >= 2, p >= 1, k >= 1")
    if not 0.0 <= noise <= 1.0:
        raise ValueError(f"noise must lie in [0, 1], got {noise}")
    rng = np.random.default_rng(seed)
    V = np.empty((n_samples, n_in + p))                # node values, inputs first
    V[:, :n_in] = rng.standard_normal((n_samples, n_in))
    for i in range(n_in, n_in + p):
        pred = rng.choice(i, size=min(k, i), replace=False)
        w = rng.standard_normal(pred.size) / np.sqrt(pred.size)
        V[:, i] = np.tanh(V[:, pred] @ w + 0.5 * rng.standard_normal())
    Wm = rng.standard_normal((n_classes, p)) / np.sqrt(p)
    Z = V[:, n_in:] @ Wm.T
    Z = (Z - Z.mean(0)) / np.where(Z.std(0) > 0, Z.std(0), 1.0)
    y = Z.argmax(axis=1)
    split_seed = int(rng.integers(2**31))
    flip = rng.random(n_samples) < noise
    y[flip] = rng.integers(0, n_classes, size=int(flip.sum()))
    return split_standardize(V[:, :n_in], y, seed=split_seed,
                             val_size=val_size, test_size=test_size,
                             standardize=standardize, classes=np.arange(n_classes),
                             feature_names=[f"x{j}" for j in range(n_in)],
                             name=f"teacher(p={p}, k={k}, seed={seed})")
