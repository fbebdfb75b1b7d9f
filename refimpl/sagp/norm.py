"""Batch norm and dropout of SAGP inside the message passing (supplement Table 3, Sec. 3.3).

The supplement names a "channel-wise activated BatchNorm" and dropout among its common
hyper-parameters without saying where they act; the choices are documented on
:class:`GPBatchNorm` and :class:`SAGPStepTransform`.  They enter the graph perceptron's
message passing (:func:`refimpl.perceptron.gp_trace`) through its
:class:`refimpl.perceptron.StepTransform` hook: batch norm before sigma, dropout after.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..perceptron import StepTransform

__all__ = ["GPBatchNorm", "SAGPStepTransform"]


@dataclass
class GPBatchNorm:
    """Channel-wise batch norm inside the message passing (supplement Table 3, Sec. 3.3).

    Documented choice (the supplement only names a "channel-wise activated
    BatchNorm"): the neurons selected by ``where`` (the hidden neurons) are normalized
    per neuron over the batch before sigma, at every step whose activation is used
    (steps 1 .. steps-1); the affine ``gamma``, ``beta`` are shared by all steps, the
    running statistics are kept per step (PyTorch conventions: momentum 0.1, biased
    variance for normalization, unbiased variance in the running average).

    Attributes
    ----------
    gamma, beta : (N,) ndarray
    running_mean, running_var : (steps - 1, N) ndarray
    where : (N,) bool ndarray
    momentum, eps : float
    """

    gamma: np.ndarray
    beta: np.ndarray
    running_mean: np.ndarray
    running_var: np.ndarray
    where: np.ndarray
    momentum: float = 0.1
    eps: float = 1e-5


class SAGPStepTransform(StepTransform):
    r"""Batch norm (before sigma) and inverted dropout (after sigma) for one pass of
    :func:`refimpl.perceptron.gp_trace` and its :func:`refimpl.perceptron.gp_backward`.

    Implements the supplement's Table 3 batch norm and dropout (S-Alg. 1 lines 12-17 and
    their adjoint in line 21).  One object per forward pass: it keeps the pass's caches,
    the updated running statistics (training) and the batch-norm gradients.

    Parameters
    ----------
    batchnorm : GPBatchNorm, optional
        Training mode uses batch statistics, otherwise the running statistics.
    training : bool
        Selects batch statistics and dropout.
    dropout : float in [0, 1)
        Inverted dropout on the activated values of the neurons in ``dropout_where``,
        applied in training only.  Documented choice: the supplement does not say where
        dropout acts.
    dropout_where : (N,) bool array, optional
        Required when dropout is active.
    rng : numpy.random.Generator, optional
        Required when dropout is active.

    Attributes
    ----------
    bn_cache : list of (normalized, 1/std) per step
    dropout_masks : list of (B, N) arrays per step (training with dropout)
    running_mean, running_var : ndarray or None
        The updated running statistics after a training pass with batch norm.
    dgamma, dbeta : (N,) ndarray or None
        Gradients of the batch-norm affine parameters, filled by the backward pass.

    Raises
    ------
    ValueError
        ``dropout`` out of range, or a missing ``rng`` / ``dropout_where``.
    """

    def __init__(self, batchnorm: GPBatchNorm | None = None, *, training: bool = False,
                 dropout: float = 0.0, dropout_where=None,
                 rng: np.random.Generator | None = None):
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout!r}")
        self.bn = batchnorm
        self.training = bool(training)
        self.dropout = float(dropout)
        self.use_dropout = self.training and self.dropout > 0.0
        if self.use_dropout:
            if rng is None:
                raise ValueError("rng: a numpy Generator is required when dropout is active")
            if dropout_where is None:
                raise ValueError("dropout_where: the neurons that drop out are required "
                                 "when dropout is active")
            dropout_where = np.asarray(dropout_where, dtype=bool)
        self.where_dropout = dropout_where
        self.rng = rng
        self.bn_cache: list = []
        self.dropout_masks: list = []
        self.running_mean = self.running_var = None
        self.dgamma = self.dbeta = None
        if batchnorm is not None:
            self.w = np.asarray(batchnorm.where, dtype=bool)
            N = self.w.shape[0]
            self.dgamma, self.dbeta = np.zeros(N), np.zeros(N)
            if self.training:
                self.running_mean = batchnorm.running_mean.copy()
                self.running_var = batchnorm.running_var.copy()

    def pre(self, l, H):
        """Batch norm of step ``l + 1``'s pre-activation (identity without batch norm)."""
        bn = self.bn
        if bn is None:
            return H
        w = self.w
        if w.shape != (H.shape[1],) or bn.running_mean.shape[0] <= l:
            raise ValueError(
                "batchnorm: where must have shape (N,) and the running statistics one row per step"
            )
        B = H.shape[0]
        P = H.copy()
        Hw = H[:, w]
        if self.training:
            mu = Hw.mean(axis=0)
            var = Hw.var(axis=0)
            m = bn.momentum
            self.running_mean[l, w] = (1 - m) * self.running_mean[l, w] + m * mu
            unbiased = var * B / (B - 1) if B > 1 else var
            self.running_var[l, w] = (1 - m) * self.running_var[l, w] + m * unbiased
        else:
            mu = bn.running_mean[l, w]
            var = bn.running_var[l, w]
        inv = 1.0 / np.sqrt(var + bn.eps)
        nh = (Hw - mu) * inv
        P[:, w] = bn.gamma[w] * nh + bn.beta[w]
        self.bn_cache.append((nh, inv))
        return P

    def post(self, l, X):
        """Inverted dropout of step ``l + 1``'s activated values (training only)."""
        if not self.use_dropout:
            return X
        B, N = X.shape
        keep = self.rng.random((B, N)) >= self.dropout
        D = np.where(self.where_dropout[None, :], keep / (1.0 - self.dropout), 1.0)
        self.dropout_masks.append(D)
        return X * D

    def pre_backward(self, l, dP):
        """dL/dH from dL/dP through batch norm; accumulates ``dgamma``, ``dbeta``."""
        bn = self.bn
        if bn is None:
            return dP
        w = self.w
        nh, inv = self.bn_cache[l]
        B = dP.shape[0]
        dPw = dP[:, w]
        self.dgamma[w] += (dPw * nh).sum(axis=0)
        self.dbeta[w] += dPw.sum(axis=0)
        dnh = dPw * bn.gamma[w]
        if self.training:  # batch statistics depend on the whole batch
            dHw = inv / B * (B * dnh - dnh.sum(axis=0) - nh * (dnh * nh).sum(axis=0))
        else:
            dHw = dnh * inv
        dP = dP.copy()
        dP[:, w] = dHw
        return dP

    def post_backward(self, l, dX):
        """dL/dx through the dropout mask of step ``l + 1``."""
        return dX * self.dropout_masks[l] if self.dropout_masks else dX
