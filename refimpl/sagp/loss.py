"""SAGP forward (S-Alg. 2), TaskLoss + AuxLoss and the explicit backward (S-Alg. 1 lines 12-21)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..activations import softmax
from ..perceptron import gp_backward, gp_trace
from .masks import ste as _ste
from .model import SAGPModel, _masked
from .norm import SAGPStepTransform

__all__ = ["SAGPGradients", "evaluate", "sagp_loss_and_grad", "sagp_predict"]


def _check_X(X, n_in: int, name: str = "X") -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != n_in:
        raise ValueError(f"{name}: expected shape (B, {n_in}), got {X.shape}")
    if X.shape[0] < 1:
        raise ValueError(f"{name}: expected at least one sample")
    if not np.isfinite(X).all():
        raise ValueError(f"{name}: entries must be finite")
    return X


def _check_y(y, n: int, n_out: int, name: str = "y") -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name}: expected {n} integer class labels, got shape {y.shape} dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= n_out):
        raise ValueError(f"{name}: labels must lie in [0, {n_out}), got [{y.min()}, {y.max()}]")
    return y.astype(np.int64)


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


def _cross_entropy(z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy and its gradient dL/dz."""
    B = z.shape[0]
    zs = z - z.max(axis=1, keepdims=True)
    logp = zs - np.log(np.exp(zs).sum(axis=1, keepdims=True))
    loss = -logp[np.arange(B), y].mean()
    G = softmax(z)
    G[np.arange(B), y] -= 1.0
    return float(loss), G / B


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
        loss, _ = _cross_entropy(z, y[s : s + batch_size])
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
    (line 18), AuxLoss (line 19, the project's choice, see the module docstring), Loss =
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
    task, G = _cross_entropy(trace.z, y)  # S-Alg. 1 line 18
    g = gp_backward(m.A_eff, trace, G)  # S-Alg. 1 line 21

    # Through A_eff = fixed + m^H_j m^H_ji A_ji (the fixed identity blocks are constants).
    dAeff = g.A * m.S
    dAc = dAeff * m.hard_neuron[:, None] * m.hard_syn
    d_hard_syn = dAeff * m.hard_neuron[:, None] * m.Ac
    d_hard_neuron = (dAeff * m.hard_syn * m.Ac).sum(axis=1)
    # Straight-through: d m^H / d m^ := d m^S / d m^.
    d_syn_logit = d_hard_syn * _ste(m.soft_syn, model.alpha) * m.S
    d_neuron_logit = np.where(m.is_hidden, d_hard_neuron * _ste(m.soft_neuron, model.alpha), 0.0)

    aux = 0.0
    if competition:  # S-Alg. 1 line 19 (AuxLoss, main-text Eq. 14; DESIGN.md section 8)
        n_h = int(m.is_hidden.sum())
        n_s = float(m.S.sum())
        if n_h > 0:
            aux += gamma1 * m.soft_neuron[m.is_hidden].mean()
            d_neuron_logit += np.where(
                m.is_hidden, gamma1 / n_h * _ste(m.soft_neuron, model.alpha), 0.0
            )
        if n_s > 0:
            aux += gamma2 * m.soft_syn.sum() / n_s
            d_syn_logit += gamma2 / n_s * _ste(m.soft_syn, model.alpha) * m.S

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

