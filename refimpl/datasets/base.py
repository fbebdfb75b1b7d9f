"""The :class:`Dataset` container and the shared preprocessing (DESIGN.md sec. 11).

Every loader of :mod:`refimpl.datasets` ends in :func:`split_standardize`: a seeded
stratified train / validation / test split (:func:`stratified_split`) and a
standardization fitted on the training rows only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["DataQualityWarning", "Dataset", "split_standardize", "stratified_split"]


class DataQualityWarning(UserWarning):
    """A loader dropped malformed rows of a published file (it says which; DESIGN.md sec. 11)."""


# --------------------------------------------------------------------------- container
@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A classification dataset split into train, validation and test parts (DESIGN.md sec. 11).

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
    r"""Seeded stratified train / validation / test index split (numpy only; DESIGN.md sec. 11).

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


def _feature_scale(X):
    """The standard deviation of each column of ``X`` (the training rows), and 1 for a
    constant column (all values equal, whatever its std rounds to: 150 copies of 0.1 have
    std 2.5e-16, not 0), which then stays constant (0) after centring."""
    s = X.std(axis=0)
    return np.where((s > 0.0) & (np.ptp(X, axis=0) > 0.0), s, 1.0)


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
        mu, s = X_tr.mean(axis=0), _feature_scale(X_tr)
        X_tr, X_va, X_te = ((A - mu) / s for A in (X_tr, X_va, X_te))
    if feature_names is not None:
        feature_names = tuple(str(f) for f in feature_names)
    return Dataset(X_train=np.ascontiguousarray(X_tr), y_train=codes[tr],
                   X_val=np.ascontiguousarray(X_va), y_val=codes[va],
                   X_test=np.ascontiguousarray(X_te), y_test=codes[te],
                   classes=classes, feature_names=feature_names, name=name)

