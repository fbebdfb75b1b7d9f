"""SAGP forward (S-Alg. 2), TaskLoss + AuxLoss and the explicit backward (S-Alg. 1 lines 12-21)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..model import output_loss
from ..validation import check_labels as _check_y
from ..validation import check_samples as _check_X
from ..perceptron import gp_backward, gp_trace
from .masks import sparse_loss, ste as _ste
from .model import SAGPModel, _masked
from .norm import SAGPStepTransform


def _softmax_cross_entropy(z, y):
    """Mean softmax cross-entropy and dL/dz (the package's one: :func:`refimpl.model.output_loss`)."""
    return output_loss(z, y, "softmax")

__all__ = ["SAGPGradients", "evaluate", "sagp_loss_and_grad", "sagp_predict"]


def sagp_predict(model: SAGPModel, X) -> np.ndarray:
    r"""Outputs z of an assembled SAGP on a batch (S-Alg. 2).

    Implements S-Alg. 2: hard neuron and synapse masks (lines 2-3), :math:`\hat x^0 =
    [x; 0]` (line 4), L message-passing steps over the neurons I, H, O (lines 5-8),
    readout :math:`z = [h^L_i]_{i \in O}` (line 9).  Batch norm, if any, uses its
    running statistics; dropout is off.

    Parameters
    ----------
    model : SAGPModel
    X : (B, |I|) array

    Returns
    -------
    z : (B, |O|) ndarray

    Raises
    ------
    ValueError
        If ``X`` has the wrong shape or non-finite entries.
    """
    X = _check_X(X, model.layout.n_in)
    m = _masked(model)
    b = model.b[m.idx]
    tf = SAGPStepTransform(m.bn) if m.bn is not None else None
    trace = gp_trace(m.A_eff, b, X, model.steps, model.activation, n_out=model.layout.n_out,
                     transform=tf)
    return trace.z


def evaluate(model: SAGPModel, X, y, *, batch_size: int = 4096) -> tuple[float, float]:
    """Mean cross-entropy and error rate of S-Alg. 2 on a data set (S-Alg. 2 line 10).

    Parameters
    ----------
    model : SAGPModel
    X : (n, |I|) array
    y : (n,) int array
    batch_size : int
        Rows per forward pass (memory only; batch norm is in evaluation mode).

    Returns
    -------
    loss, error : float
    """
    X = _check_X(X, model.layout.n_in)
    y = _check_y(y, X.shape[0], model.layout.n_out)
    total, wrong = 0.0, 0
    for s in range(0, X.shape[0], batch_size):
        z = sagp_predict(model, X[s : s + batch_size])
        loss, _ = _softmax_cross_entropy(z, y[s : s + batch_size])
        total += loss * z.shape[0]
        wrong += int((z.argmax(axis=1) != y[s : s + batch_size]).sum())
    return total / X.shape[0], wrong / X.shape[0]


@dataclass
class SAGPGradients:
    """Loss values and full-size gradients of one mini-batch (S-Alg. 1 lines 18-21).

    Every array has the shape of the matching :class:`SAGPModel` field and is zero
    outside the current topology.
    """

    task_loss: float
    aux_loss: float
    A: np.ndarray
    b: np.ndarray
    neuron_logits: np.ndarray
    synapse_logits: np.ndarray
    gamma: np.ndarray | None = None
    beta: np.ndarray | None = None
    running_mean: np.ndarray | None = field(default=None, repr=False)
    running_var: np.ndarray | None = field(default=None, repr=False)

    @property
    def loss(self) -> float:
        return self.task_loss + self.aux_loss


def sagp_loss_and_grad(
    model: SAGPModel,
    X,
    y,
    *,
    gamma1: float = 0.05,
    gamma2: float = 0.001,
    competition: bool = True,
    training: bool = True,
    dropout: float = 0.0,
    rng: np.random.Generator | None = None,
) -> SAGPGradients:
    r"""Loss and gradients of one mini-batch (S-Alg. 1 lines 5-6 and 12-21).

    Forward with hard masks (lines 12-17), TaskLoss = mean softmax cross-entropy of z
    (line 18), AuxLoss (line 19: gamma1 and gamma2 times :func:`~refimpl.sagp.masks.sparse_loss` of the
    soft neuron and synapse masks, the project's choice, see the package docstring), Loss =
    TaskLoss + AuxLoss (line 20), and the explicit backward (line 21): through the
    unrolled message passing (:func:`refimpl.perceptron.gp_backward`), then through the
    masked adjacency :math:`A^{eff}_{ji} = m^H_j m^H_{ji} A_{ji}` with the
    straight-through estimator for the hard masks.

    Parameters
    ----------
    model : SAGPModel
    X : (B, |I|) array
    y : (B,) int array
    gamma1, gamma2 : float
        AuxLoss scales (Table 2).
    competition : bool
        Include AuxLoss (False: ablation "w/o Competition").
    training : bool
        Batch statistics for batch norm and dropout.
    dropout : float
        Dropout probability on the hidden neurons (training only).
    rng : numpy.random.Generator, optional
        For dropout.

    Returns
    -------
    SAGPGradients

    Raises
    ------
    ValueError
        On bad shapes or labels.
    """
    lay = model.layout
    X = _check_X(X, lay.n_in)
    y = _check_y(y, X.shape[0], lay.n_out)
    m = _masked(model)
    b = model.b[m.idx]
    tf = SAGPStepTransform(m.bn, training=training, dropout=dropout,
                           dropout_where=m.is_hidden, rng=rng)
    trace = gp_trace(m.A_eff, b, X, model.steps, model.activation, n_out=lay.n_out,
                     transform=tf)
    task, G = _softmax_cross_entropy(trace.z, y)  # S-Alg. 1 line 18
    g = gp_backward(m.A_eff, trace, G)  # S-Alg. 1 line 21

    # Through A_eff = fixed + m^H_j m^H_ji A_ji (the fixed identity blocks are constants).
    dAeff = g.A * m.S
    dAc = dAeff * m.hard_neuron[:, None] * m.hard_syn
    d_hard_syn = dAeff * m.hard_neuron[:, None] * m.Ac
    d_hard_neuron = (dAeff * m.hard_syn * m.Ac).sum(axis=1)
    # Straight-through: d m^H / d m^ := d m^S / d m^.
    d_syn_logit = d_hard_syn * _ste(m.soft_syn) * m.S
    d_neuron_logit = np.where(m.is_hidden, d_hard_neuron * _ste(m.soft_neuron), 0.0)

    aux = 0.0
    if competition:  # S-Alg. 1 line 19: AuxLoss = gamma1 SparseLoss(m^S_i) + gamma2 SparseLoss(m^S_ij)
        if m.is_hidden.any():
            v, dv = sparse_loss(m.soft_neuron[m.is_hidden], model.alpha)
            aux += gamma1 * v
            d_neuron_logit[m.is_hidden] += gamma1 * dv * _ste(m.soft_neuron[m.is_hidden])
        on = m.S > 0
        if on.any():
            v, dv = sparse_loss(m.soft_syn[on], model.alpha)
            aux += gamma2 * v
            d_syn_logit[on] += gamma2 * dv * _ste(m.soft_syn[on])

    N = lay.N
    dA = np.zeros((N, N))
    dA[m.ix] = dAc
    db = np.zeros(N)
    db[m.idx] = g.b
    db[lay.inputs] = 0.0  # input biases are fixed at 0
    dnl = np.zeros(N)
    dnl[m.idx] = d_neuron_logit
    dsl = np.zeros((N, N))
    dsl[m.ix] = d_syn_logit
    out = SAGPGradients(float(task), float(aux), dA, db, dnl, dsl)
    if model.bn is not None:
        out.gamma = np.zeros(N)
        out.beta = np.zeros(N)
        out.gamma[m.idx] = tf.dgamma
        out.beta[m.idx] = tf.dbeta
        if training:
            out.running_mean = model.bn.running_mean.copy()
            out.running_var = model.bn.running_var.copy()
            out.running_mean[:, m.idx] = tf.running_mean
            out.running_var[:, m.idx] = tf.running_var
    return out

