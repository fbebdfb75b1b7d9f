r"""Datasets (DESIGN.md sec. 11): built-in data, loaders of the paper's four datasets, teachers.

:func:`load` takes any of them by name (``load("digits")``, ``load("codon", path)``).
Three sources, all returned as a :class:`Dataset` (train / validation / test splits):

- :func:`load_builtin`: scikit-learn's bundled real data (digits, wine, breast cancer,
  iris); shipped inside scikit-learn, no network.  Needs the optional ``data`` extra.
- :func:`load_codon`, :func:`load_gas_drift`, :func:`load_daily_sports`,
  :func:`load_facebook`: the four datasets of the paper's Table 1, read from a local copy
  in their published formats (the build machines cannot download them).
- :func:`load_fashion_mnist`, :func:`load_cifar10`, :func:`load_fsdd`, :func:`load_esc50`,
  :func:`load_amazon_photo`, :func:`load_amazon_computers`: the six datasets of the
  supplement's Table 1, from local copies, with its partitions
  (:mod:`refimpl.datasets.supplement`; the audio ones need the ``audio`` extra).
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
load_fashion_mnist     REFIMPL_FASHION_MNIST   fashion_mnist       ``*-idx?-ubyte.gz`` (4 files)
load_cifar10           REFIMPL_CIFAR10         cifar10             ``cifar-10-batches-py/``
load_fsdd              REFIMPL_FSDD            fsdd                ``recordings/*.wav``
load_esc50             REFIMPL_ESC50           esc50               ``audio/``, ``meta/esc50.csv``
load_amazon_photo      REFIMPL_AMAZON          amazon              ``amazon_electronics_photo.npz``
load_amazon_computers  REFIMPL_AMAZON          amazon              ``amazon_electronics_computers.npz``
=====================  ======================  ==================  ==========================

A missing file raises :class:`FileNotFoundError` naming the expected location and the
variables.  Loaders do I/O only; they print nothing and hold no global state.
"""
from __future__ import annotations

from .base import DataQualityWarning, Dataset, split_standardize, stratified_split
from .builtin import BUILTIN_DATASETS, load_builtin
from .registry import DATASETS, SYNTHETIC_DATASETS, load
from .supplement import (SUPPLEMENT_DATASETS, GraphDataset, audio_features, load_amazon,
                         load_amazon_computers, load_amazon_photo, load_cifar10, load_esc50,
                         load_fashion_mnist, load_fsdd, present_datasets)
from .synthetic import teacher_data
from .uci import PAPER_DATASETS, load_codon, load_daily_sports, load_facebook, load_gas_drift

__all__ = [
    "BUILTIN_DATASETS",
    "DATASETS",
    "DataQualityWarning",
    "Dataset",
    "GraphDataset",
    "PAPER_DATASETS",
    "SUPPLEMENT_DATASETS",
    "SYNTHETIC_DATASETS",
    "audio_features",
    "load",
    "load_amazon",
    "load_amazon_computers",
    "load_amazon_photo",
    "load_builtin",
    "load_cifar10",
    "load_codon",
    "load_daily_sports",
    "load_esc50",
    "load_facebook",
    "load_fashion_mnist",
    "load_fsdd",
    "load_gas_drift",
    "present_datasets",
    "split_standardize",
    "stratified_split",
    "teacher_data",
]
