"""Every data set by name (DESIGN.md sec. 13): ``load(name, path=None, seed=0, ...)``.

The one place that maps a name to its loader; the commands, the experiments and the
figures all call :func:`load`.
"""
from __future__ import annotations

from ..validation import check_int
from .base import Dataset
from .builtin import BUILTIN_DATASETS, load_builtin
from .synthetic import teacher_data
from .supplement import (SUPPLEMENT_DATASETS, load_amazon_computers, load_amazon_photo,
                         load_cifar10, load_esc50, load_fashion_mnist, load_fsdd)
from .uci import PAPER_DATASETS, load_codon, load_daily_sports, load_facebook, load_gas_drift

__all__ = ["DATASETS", "SYNTHETIC_DATASETS", "load"]

#: Synthetic generators by name (they take their sizes as keyword arguments).
SYNTHETIC_DATASETS = ("teacher",)
#: Every name :func:`load` knows: built-in, the paper's and the supplement's (local
#: copies), synthetic.
DATASETS = BUILTIN_DATASETS + PAPER_DATASETS + SUPPLEMENT_DATASETS + SYNTHETIC_DATASETS

_PAPER_LOADERS = {"codon": load_codon, "daily_sports": load_daily_sports,
                  "facebook": load_facebook, "gas_drift": load_gas_drift,
                  "fashion_mnist": load_fashion_mnist, "cifar10": load_cifar10,
                  "fsdd": load_fsdd, "esc50": load_esc50, "amazon_photo": load_amazon_photo,
                  "amazon_computers": load_amazon_computers}


def load(name, path=None, seed=0, **kwargs) -> Dataset:
    """A data set by name: built-in, the paper's (from a local copy) or synthetic.

    Implements DESIGN.md sec. 11 / 13: the single name-to-loader dispatch of the package.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`: ``"digits"``, ``"wine"``, ``"breast_cancer"``,
        ``"iris"`` (:func:`load_builtin`); ``"codon"``, ``"daily_sports"``,
        ``"facebook"``, ``"gas_drift"`` (the paper's, :func:`load_codon`, ...);
        ``"fashion_mnist"``, ``"cifar10"``, ``"fsdd"``, ``"esc50"``, ``"amazon_photo"``,
        ``"amazon_computers"`` (the supplement's, :mod:`refimpl.datasets.supplement`);
        ``"teacher"`` (:func:`teacher_data`, with ``n_samples``, ``n_in`` and
        ``n_classes`` given as keyword arguments).
    path : str or Path, optional
        The local copy of a paper or supplement data set (see :mod:`refimpl.datasets`);
        must be None
        for the built-in and synthetic ones.
    seed : int
        Seed of the split (and of the synthetic draw).
    **kwargs
        Passed on to the loader (``val_size``, ``test_size``, ``standardize``, ...).

    Returns
    -------
    Dataset

    Raises
    ------
    ValueError
        Unknown ``name``, ``seed`` not an integer >= 0, or ``path`` given for a data set
        that is not read from disk.
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"name: unknown data set {name!r}; choose from {', '.join(DATASETS)}")
    seed = check_int(seed, "seed")
    if name in _PAPER_LOADERS:
        return _PAPER_LOADERS[name](path, seed=seed, **kwargs)
    if path is not None:
        raise ValueError(f"path: the data set {name!r} is not read from disk, got {path!r}")
    if name == "teacher":
        return teacher_data(seed=seed, **kwargs)
    return load_builtin(name, seed=seed, **kwargs)
