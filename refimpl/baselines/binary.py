r"""Binary versions of the classification tasks (the paper's Sec. 4.2, Fig. 2).

The paper compares NMs with the cyclic Forward-Forward algorithm and with DARTS "by
formulating the multi-class classification task as a binary classification task on the
four datasets"; it does not say how.  The project's documented choice, applied to every
method of Fig. 2 alike:

- the classes ``0 .. C-1`` are put in a seeded random order
  (``np.random.default_rng(seed).permutation(C)``);
- the first :math:`\lfloor C/2 \rfloor` classes of that order form the negative group
  (label 0), the others the positive group (label 1);
- a two-class task is left as it is (its labels already are 0/1).

A class split keeps the groups of about equal size when the classes are (digits: 5 vs
5 classes, wine and iris: 1 vs 2); one-vs-rest would give a 10 % positive rate on digits,
where a constant predictor already has 0.1 error.  The rows, the train / validation /
test split and the standardization are those of the source :class:`Dataset`: only the
labels change, so every method sees the same inputs.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..datasets import Dataset

__all__ = ["binary_class_split", "binary_task"]


def binary_class_split(n_classes, seed=0):
    """The positive group of classes of the binary task of Sec. 4.2 (documented choice).

    Parameters
    ----------
    n_classes : int
        C >= 2.
    seed : int
        Seeds the class order.

    Returns
    -------
    ndarray of bool, shape (n_classes,)
        ``positive[c]``: class ``c`` maps to label 1.  Exactly
        ``n_classes - n_classes // 2`` entries are True; for C = 2 it is ``[False, True]``.
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) \
            or n_classes < 2:
        raise ValueError(f"n_classes: expected an integer >= 2, got {n_classes!r}")
    positive = np.zeros(int(n_classes), dtype=bool)
    if n_classes == 2:
        positive[1] = True
        return positive
    order = np.random.default_rng(seed).permutation(int(n_classes))
    positive[order[n_classes // 2:]] = True
    return positive


def binary_task(data: Dataset, seed=0) -> Dataset:
    """``data`` with its labels mapped to the two groups of :func:`binary_class_split`.

    Implements the binary formulation of the classification tasks of Sec. 4.2 (Fig. 2);
    the same rows, splits and standardization, labels in {0, 1}.

    Parameters
    ----------
    data : Dataset
    seed : int
        Seeds the class split.

    Returns
    -------
    Dataset
        ``classes`` names the two groups by their source classes, e.g.
        ``["0|3|5", "1|2|4"]``; ``name`` gains the suffix ``"-binary"``.
    """
    if not isinstance(data, Dataset):
        raise ValueError(f"data: expected a Dataset, got {type(data).__name__}")
    positive = binary_class_split(data.n_classes, seed)
    groups = np.array(["|".join(str(c) for c in np.asarray(data.classes)[positive == g])
                       for g in (False, True)])
    lab = positive.astype(np.int64)
    return replace(data, y_train=lab[data.y_train], y_val=lab[data.y_val],
                   y_test=lab[data.y_test], classes=groups, name=f"{data.name}-binary")
