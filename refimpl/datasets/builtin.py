"""scikit-learn's bundled real data sets (DESIGN.md sec. 11): no network needed."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from .base import Dataset, split_standardize

__all__ = ["BUILTIN_DATASETS", "load_builtin"]

#: scikit-learn's bundled data sets, in the order the commands list them.
BUILTIN_DATASETS = ("digits", "wine", "breast_cancer", "iris")


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

