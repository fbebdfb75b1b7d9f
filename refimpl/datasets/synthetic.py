"""Synthetic data labelled by a random sparse acyclic teacher network (DESIGN.md sec. 11)."""
from __future__ import annotations

import numpy as np

from .base import Dataset, split_standardize

__all__ = ["teacher_data"]


# --------------------------------------------------------------------------- teachers
def teacher_data(n_samples, n_in, n_classes, *, seed=0, p=32, k=4, noise=0.0,
                 val_size=0.15, test_size=0.15, standardize=True) -> Dataset:
    r"""Synthetic data labelled by a random sparse acyclic teacher network (DESIGN.md sec. 11).

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
