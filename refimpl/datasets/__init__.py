r"""Datasets (DESIGN.md sec. 11): built-in data, loaders of the paper's four datasets, teachers.

:func:`load` takes any of them by name (``load("digits")``, ``load("codon", path)``).
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

from .base import DataQualityWarning, Dataset, split_standardize, stratified_split
from .builtin import BUILTIN_DATASETS, load_builtin
from .registry import DATASETS, SYNTHETIC_DATASETS, load
from .synthetic import teacher_data
from .uci import PAPER_DATASETS, load_codon, load_daily_sports, load_facebook, load_gas_drift

__all__ = [
    "BUILTIN_DATASETS",
    "DATASETS",
    "DataQualityWarning",
    "Dataset",
    "PAPER_DATASETS",
    "SYNTHETIC_DATASETS",
    "load",
    "load_builtin",
    "load_codon",
    "load_daily_sports",
    "load_facebook",
    "load_gas_drift",
    "split_standardize",
    "stratified_split",
    "teacher_data",
]
