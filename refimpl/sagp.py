r"""Self-Assembling Graph Perceptrons: S-Alg. 1 (training) and S-Alg. 2 (test).

A SAGP is a graph perceptron (:mod:`refimpl.perceptron`) on the S-Eq. 11 layout whose
hidden neurons and synapses carry masks, and whose set of hidden neurons H changes by
two rules, once per epoch: apoptosis (Rule 1) and growth (Rule 2).

Documented choices where the supplement is silent (its main-text Eq. 10-14, which define
the masks and AuxLoss, are not in the supplement; DESIGN.md section 8 fixes them):

- soft mask :math:`m^S = \mathrm{sigmoid}(\hat m / \alpha)` (alpha = temperature),
  hard mask :math:`m^H = [m^S > 0.5] = [\hat m > 0]`; the forward uses :math:`m^H`,
  the backward the straight-through estimator
  :math:`\partial m^H/\partial \hat m := \partial m^S/\partial \hat m = m^S(1-m^S)/\alpha`.
- :math:`\mathrm{AuxLoss} = \gamma_1 \,\mathrm{mean}_{i \in H} m^S_i
  + \gamma_2 \,\mathrm{mean}_{(j,i)} m^S_{ji}`, the second mean over every potential
  synapse between neurons of the current topology (blocks of S-Eq. 11); the loss is
  TaskLoss + AuxLoss (S-Alg. 1 line 20 writes a single gamma; Table 2 has gamma1, gamma2).
- Neuron masks exist for hidden neurons only and multiply the sender (S-Alg. 1 line 14,
  corrected to :math:`\sum_j m^H_j m^H_{ji} A_{ji} \hat x^l_j`); input neurons have
  mask 1.  The identity blocks of S-Eq. 11 are fixed, unmasked and untrained; input
  biases are fixed at 0.
- The rules run once at the start of every epoch (S-Alg. 1 lines 5-11), the mini-batch
  updates after them (lines 12-21).  "No neurons removed for N consecutive epochs" is
  read literally: a counter of consecutive epochs without removal (the current one
  included) is reset by a removal and not by a growth, so after N quiet epochs one
  neuron grows per epoch until a removal or |H|max grown neurons.
- All |H|max potential neurons own parameters from the start (the pseudo-code's
  numbering); a grown neuron starts from its initial parameters; removed indices are
  never reused.  Only the current topology is computed and updated.
- Initialization: synapse weights uniform in :math:`\pm 1/\sqrt{|I| + |H|_{max}}`
  (PyTorch ``Linear`` style with the largest possible fan-in), biases 0, mask logits
  ``mask_init`` (= 1, so every mask starts on).
- Optimizer: Adam (PyTorch defaults, betas 0.9/0.999, eps 1e-8) with L2 weight decay
  added to the gradients of the synapse weights and biases of the current topology.
- Classification loss: mean softmax cross-entropy of the readout z.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import numpy as np

from .activations import get_activation, sigmoid, softmax
from .perceptron import GPBatchNorm, SAGPLayout, gp_backward, gp_trace, sagp_layout

__all__ = [
    "ABLATIONS",
    "SAGPConfig",
    "SAGPGradients",
    "SAGPModel",
    "SAGPResult",
    "ablation_config",
    "apply_rules",
    "apoptosis_rule",
    "assembled_graph",
    "config_dict",
    "evaluate",
    "growth_rule",
    "hard_mask",
    "init_sagp",
    "input_out_degree",
    "sagp_loss_and_grad",
    "sagp_predict",
    "soft_mask",
    "synapse_count",
    "train_sagp",
]


# --------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class SAGPConfig:
    """Hyper-parameters of SAGP.

    The SAGP-specific defaults are the supplement's Table 2 (L = 3, alpha = 0.2,
    gamma1 = 0.05, gamma2 = 0.001, beta = 0.5, N = 10, |H|max = 128); swish is the
    default activation (supplement Sec. 3.3); ``batchnorm`` and ``dropout`` are the
    common hyper-parameters of its Table 3.  ``growth``, ``competition`` and
    ``apoptosis`` switch the three mechanisms of its Table 9 ablations.

    Attributes
    ----------
    steps : int
        L, the number of message-passing steps.
    alpha : float
        Temperature of the soft masks.
    gamma1, gamma2 : float
        Scales of the neuron and synapse terms of AuxLoss.
    beta : float
        Threshold of the apoptosis rule (Rule 1).
    patience : int
        N, the patience of the growth rule (Rule 2).
    h_max : int
        |H|max, the most hidden neurons that may ever grow.
    activation : str
    batchnorm : bool
    dropout : float
    lr, weight_decay : float
        Adam learning rate and L2 weight decay.
    batch_size : int
    growth, competition, apoptosis : bool
    output_self_loops : bool
        The output identity block of S-Eq. 11.
    mask_init : float
        Initial mask logits (> 0: masks start on).
    """

    steps: int = 3
    alpha: float = 0.2
    gamma1: float = 0.05
    gamma2: float = 0.001
    beta: float = 0.5
    patience: int = 10
    h_max: int = 128
    activation: str = "swish"
    batchnorm: bool = False
    dropout: float = 0.0
    lr: float = 0.01
    weight_decay: float = 0.0
    batch_size: int = 64
    growth: bool = True
    competition: bool = True
    apoptosis: bool = True
    output_self_loops: bool = False
    mask_init: float = 1.0

    def __post_init__(self):
        def _int(name, lo):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ValueError(f"{name}: expected an integer >= {lo}, got {v!r}")

        _int("steps", 1)
        _int("patience", 1)
        _int("h_max", 0)
        _int("batch_size", 1)
        for name in ("alpha", "lr"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"{name}: expected a finite number > 0, got {v!r}")
        for name in ("gamma1", "gamma2", "beta", "weight_decay"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"{name}: expected a finite number >= 0, got {v!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {self.dropout!r}")
        if not np.isfinite(self.mask_init):
            raise ValueError(f"mask_init: expected a finite number, got {self.mask_init!r}")
        get_activation(self.activation)  # raises ValueError naming 'activation'


#: The ablations of the supplement's Table 9 (Sec. 4.5), as config overrides.
ABLATIONS: dict[str, dict] = {
    "none": {},
    "no-growth": {"growth": False},  # start with |H|max neurons, growth rule off
    "no-competition": {"competition": False},  # no AuxLoss in the backward pass
    "no-apoptosis": {"apoptosis": False},  # apoptosis rule off
}


def ablation_config(config: SAGPConfig, name: str) -> SAGPConfig:
    """The configuration of one ablation of the supplement's Table 9 (Sec. 4.5).

    Parameters
    ----------
    config : SAGPConfig
    name : {"none", "no-growth", "no-competition", "no-apoptosis"}

    Returns
    -------
    SAGPConfig

    Raises
    ------
    ValueError
        If ``name`` is not an ablation.
    """
    if name not in ABLATIONS:
        raise ValueError(f"name: unknown ablation {name!r}; expected one of {sorted(ABLATIONS)}")
    return replace(config, **ABLATIONS[name])


# --------------------------------------------------------------------------- masks
def soft_mask(logits, alpha: float) -> np.ndarray:
    r"""Soft mask :math:`m^S = \mathrm{sigmoid}(\hat m / \alpha)` (S-Alg. 1 lines 5-6).

    Implements the soft half of the supplement's "Eq. (10)-(12)" (main text; the
    project's choice in DESIGN.md section 8).

    Parameters
    ----------
    logits : array
        The mask parameters :math:`\hat m`.
    alpha : float
        Temperature (Table 2: 0.2).

    Returns
    -------
    ndarray
        Values in (0, 1).
    """
    return sigmoid(np.asarray(logits, dtype=np.float64) / alpha)  # main-text Eq. (10), S-Alg. 1 line 5


def hard_mask(logits) -> np.ndarray:
    r"""Hard mask :math:`m^H = [m^S > 0.5] = [\hat m > 0]` as 0/1 floats (S-Alg. 1 lines 5-6).

    Computed from the sign of the logit, which is exact; thresholding the rounded soft
    mask would switch off logits within ~1e-16 * alpha of zero, where the sigmoid
    rounds to 0.5.

    Parameters
    ----------
    logits : array

    Returns
    -------
    ndarray
        0.0 or 1.0.
    """
    return (np.asarray(logits, dtype=np.float64) > 0.0).astype(np.float64)


def _ste(soft: np.ndarray, alpha: float) -> np.ndarray:
    """Straight-through derivative dm^H/dm^ := dm^S/dm^ = m^S (1 - m^S) / alpha."""
    return soft * (1.0 - soft) / alpha


# --------------------------------------------------------------------------- model
@dataclass
class SAGPModel:
    """Parameters and topology of a SAGP (S-Alg. 1 line 1 "trainable parameters").

    Attributes
    ----------
    layout : SAGPLayout
        S-Eq. 11 layout and numbering.
    steps, alpha, activation
        L, the mask temperature and sigma.
    A : (N, N) ndarray
        Synapse weights, ``A[j, i]`` = synapse j -> i (used on ``layout.trainable``).
    b : (N,) ndarray
        Biases (inputs fixed at 0).
    neuron_logits : (N,) ndarray
        :math:`\\hat m_i` (used for hidden neurons).
    synapse_logits : (N, N) ndarray
        :math:`\\hat m_{ji}` (used on ``layout.trainable``).
    alive : (N,) bool ndarray
        I and O always; hidden i iff i is in H.
    n_grown : int
        n of S-Alg. 1 (hidden neurons grown so far, the first one included).
    bn : GPBatchNorm or None
    """

    layout: SAGPLayout
    steps: int
    alpha: float
    activation: str
    A: np.ndarray
    b: np.ndarray
    neuron_logits: np.ndarray
    synapse_logits: np.ndarray
    alive: np.ndarray
    n_grown: int
    bn: GPBatchNorm | None = None

    @property
    def hidden_alive(self) -> np.ndarray:
        """Indices of H (sorted)."""
        h = self.layout.hidden
        return h[self.alive[h]]

    def copy(self) -> "SAGPModel":
        return copy.deepcopy(self)


def init_sagp(n_in: int, n_out: int, config: SAGPConfig, rng: np.random.Generator) -> SAGPModel:
    """A freshly initialized SAGP (S-Alg. 1 lines 1-3).

    H = {first hidden neuron} and n = 1 (lines 2-3); with ``config.growth`` off
    (ablation "w/o Growth") H holds all |H|max neurons from the start.  Initialization
    as in the module docstring.

    Parameters
    ----------
    n_in, n_out : int
        |I| and |O|.
    config : SAGPConfig
    rng : numpy.random.Generator

    Returns
    -------
    SAGPModel

    Raises
    ------
    ValueError
        On bad sizes.
    """
    layout = sagp_layout(n_in, config.h_max, n_out, output_self_loops=config.output_self_loops)
    N = layout.N
    k = 1.0 / np.sqrt(n_in + config.h_max)
    A = rng.uniform(-k, k, size=(N, N)) * layout.trainable
    alive = np.zeros(N, dtype=bool)
    alive[layout.inputs] = True
    alive[layout.outputs] = True
    n_grown = config.h_max if not config.growth else min(1, config.h_max)
    alive[layout.hidden[:n_grown]] = True  # S-Alg. 1 line 2: H = {|I| + 1}
    bn = None
    if config.batchnorm:
        where = np.zeros(N, dtype=bool)
        where[layout.hidden] = True
        rows = max(config.steps - 1, 1)
        bn = GPBatchNorm(np.ones(N), np.zeros(N), np.zeros((rows, N)), np.ones((rows, N)), where)
    return SAGPModel(
        layout=layout,
        steps=config.steps,
        alpha=config.alpha,
        activation=config.activation,
        A=A,
        b=np.zeros(N),
        neuron_logits=np.full(N, float(config.mask_init)),
        synapse_logits=np.where(layout.trainable, float(config.mask_init), 0.0),
        alive=alive,
        n_grown=int(n_grown),
        bn=bn,
    )


# --------------------------------------------------------------------------- masked graph
@dataclass
class _Masked:
    """The current topology, compacted to the alive neurons ``idx`` (I, H, O in order)."""

    idx: np.ndarray
    ix: tuple
    is_hidden: np.ndarray
    S: np.ndarray  # potential synapses (bool as float)
    Ac: np.ndarray
    soft_neuron: np.ndarray
    hard_neuron: np.ndarray
    soft_syn: np.ndarray
    hard_syn: np.ndarray
    A_eff: np.ndarray
    bn: GPBatchNorm | None


def _masked(model: SAGPModel) -> _Masked:
    lay = model.layout
    idx = np.flatnonzero(model.alive)
    ix = np.ix_(idx, idx)
    is_hidden = (idx >= lay.n_in) & (idx < lay.n_in + lay.h_max)
    S = lay.trainable[ix].astype(np.float64)
    Ac = model.A[ix]
    soft_neuron = np.where(is_hidden, soft_mask(model.neuron_logits[idx], model.alpha), 1.0)
    hard_neuron = np.where(is_hidden, hard_mask(model.neuron_logits[idx]), 1.0)
    soft_syn = soft_mask(model.synapse_logits[ix], model.alpha) * S
    hard_syn = hard_mask(model.synapse_logits[ix]) * S
    # S-Alg. 1 line 14 (corrected): h_i = b_i + sum_j m^H_j m^H_ji A_ji x_j, plus S-Eq. (11) identities
    A_eff = lay.fixed[ix] + hard_neuron[:, None] * hard_syn * Ac
    bn = None
    if model.bn is not None:
        bn = GPBatchNorm(
            model.bn.gamma[idx],
            model.bn.beta[idx],
            model.bn.running_mean[:, idx],
            model.bn.running_var[:, idx],
            is_hidden,
            model.bn.momentum,
            model.bn.eps,
        )
    return _Masked(idx, ix, is_hidden, S, Ac, soft_neuron, hard_neuron, soft_syn, hard_syn, A_eff, bn)


def assembled_graph(model: SAGPModel) -> tuple[np.ndarray, np.ndarray]:
    """The assembled network as a dense graph perceptron on all N indices (S-Alg. 2 lines 2-3).

    Folds the hard masks into the adjacency: ``A_eff[j, i] = fixed[j, i] +
    m^H_j m^H_ji A[j, i]`` for potential synapses between alive neurons, zero for every
    synapse touching a neuron not in H.  ``gp_forward(A_eff, b, x, steps,
    n_out=|O|)`` then equals :func:`sagp_predict` without batch norm.

    Parameters
    ----------
    model : SAGPModel

    Returns
    -------
    A_eff : (N, N) ndarray
    b : (N,) ndarray
        Biases, zero for neurons not in the topology.
    """
    m = _masked(model)
    N = model.layout.N
    A_eff = np.zeros((N, N))
    A_eff[m.ix] = m.A_eff
    b = np.where(model.alive, model.b, 0.0)
    return A_eff, b


def _effective_neurons(model: SAGPModel) -> np.ndarray:
    """(N,) bool: inputs, outputs, and hidden neurons in H whose hard mask is 1."""
    lay = model.layout
    eff = model.alive.copy()
    h = lay.hidden
    eff[h] &= hard_mask(model.neuron_logits[h]) > 0
    return eff


def _effective_synapses(model: SAGPModel) -> np.ndarray:
    """(N, N) bool: potential synapses with hard mask 1 between effective neurons."""
    eff = _effective_neurons(model)
    return (
        model.layout.trainable
        & (hard_mask(model.synapse_logits) > 0)
        & eff[:, None]
        & eff[None, :]
    )


def synapse_count(model: SAGPModel) -> int:
    """Number of synapses of the assembled topology (the "#Synapse" of Tables 9-10).

    Documented choice: a synapse counts when its hard mask is 1 and both ends are
    effective neurons (inputs, outputs, or hidden neurons in H with hard mask 1); the
    identity blocks of S-Eq. 11 are not synapses.

    Parameters
    ----------
    model : SAGPModel

    Returns
    -------
    int
    """
    return int(_effective_synapses(model).sum())


def input_out_degree(model: SAGPModel) -> np.ndarray:
    """Out-degree of every input neuron after assembly (feature importance, supplement Sec. 4.2-4.4).

    Counts the synapses of :func:`synapse_count` leaving each input neuron.

    Parameters
    ----------
    model : SAGPModel

    Returns
    -------
    (|I|,) int ndarray
    """
    n_in = model.layout.n_in
    return _effective_synapses(model)[:n_in].sum(axis=1).astype(np.int64)


# --------------------------------------------------------------------------- forward / backward
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
    trace = gp_trace(
        m.A_eff, b, X, model.steps, model.activation, n_out=model.layout.n_out, batchnorm=m.bn
    )
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
    trace = gp_trace(
        m.A_eff,
        b,
        X,
        model.steps,
        model.activation,
        n_out=lay.n_out,
        batchnorm=m.bn,
        training=training,
        dropout=dropout,
        dropout_where=m.is_hidden,
        rng=rng,
    )
    task, G = _cross_entropy(trace.z, y)  # S-Alg. 1 line 18
    g = gp_backward(m.A_eff, trace, G, batchnorm=m.bn)  # S-Alg. 1 line 21

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
        out.gamma[m.idx] = g.gamma
        out.beta[m.idx] = g.beta
        if training:
            out.running_mean = model.bn.running_mean.copy()
            out.running_var = model.bn.running_var.copy()
            out.running_mean[:, m.idx] = trace.running_mean
            out.running_var[:, m.idx] = trace.running_var
    return out


# --------------------------------------------------------------------------- rules
def apoptosis_rule(soft_neuron, alive, beta: float) -> np.ndarray:
    r"""Neurons removed by the apoptosis rule (Rule 1, S-Alg. 1 line 7).

    Implements :math:`H \leftarrow H \setminus \{ i \in H : m^S_i < \beta \cdot
    \mathrm{mean}_{j \in H} m^S_j \}` (strict inequality, mean over the current H).

    Parameters
    ----------
    soft_neuron : (n,) array
        Soft masks :math:`m^S_i`.
    alive : (n,) bool array
        Membership in H.
    beta : float
        Threshold (Table 2: 0.5).

    Returns
    -------
    (n,) bool ndarray
        True for the neurons to remove (a subset of ``alive``).

    Raises
    ------
    ValueError
        If the shapes differ or ``beta`` is negative.
    """
    soft = np.asarray(soft_neuron, dtype=np.float64)
    alive = np.asarray(alive, dtype=bool)
    if soft.shape != alive.shape or soft.ndim != 1:
        raise ValueError(f"alive: expected shape {soft.shape} like soft_neuron, got {alive.shape}")
    if not (np.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta: expected a finite number >= 0, got {beta!r}")
    if not alive.any():
        return np.zeros_like(alive)
    threshold = beta * soft[alive].mean()  # S-Alg. 1 line 7
    return alive & (soft < threshold)


def growth_rule(n_grown: int, quiet_epochs: int, patience: int, h_max: int) -> bool:
    """Whether one neuron grows this epoch (Rule 2, S-Alg. 1 line 8).

    Implements "if n < |H|max and no neurons are removed for N consecutive epochs".

    Parameters
    ----------
    n_grown : int
        n, the hidden neurons grown so far.
    quiet_epochs : int
        Consecutive epochs without a removal, the current one included.
    patience : int
        N.
    h_max : int
        |H|max.

    Returns
    -------
    bool
    """
    return n_grown < h_max and quiet_epochs >= patience  # S-Alg. 1 line 8


def apply_rules(model: SAGPModel, config: SAGPConfig, quiet: int) -> tuple[list, list, int]:
    """One epoch's self-assembly step, in place (S-Alg. 1 lines 5-11).

    Apoptosis (line 7, if ``config.apoptosis``) with the current soft neuron masks, then
    growth (lines 8-10, if ``config.growth``) of the next unused index |I| + n.

    Parameters
    ----------
    model : SAGPModel
        Modified in place (``alive``, ``n_grown``).
    config : SAGPConfig
    quiet : int
        Consecutive epochs without a removal before this one.

    Returns
    -------
    removed : list of int
        Indices removed this epoch.
    grown : list of int
        Index grown this epoch (empty or one).
    quiet : int
        The updated counter (0 after a removal, else ``quiet + 1``).
    """
    lay = model.layout
    h = lay.hidden
    removed: list[int] = []
    if config.apoptosis and h.size:
        soft = soft_mask(model.neuron_logits[h], model.alpha)  # S-Alg. 1 line 5
        dead = apoptosis_rule(soft, model.alive[h], config.beta)  # S-Alg. 1 line 7
        removed = [int(i) for i in h[dead]]
        model.alive[h[dead]] = False
    quiet = 0 if removed else quiet + 1
    grown: list[int] = []
    if config.growth and growth_rule(model.n_grown, quiet, config.patience, lay.h_max):
        new = lay.n_in + model.n_grown  # S-Alg. 1 lines 9-10: H = H u {|I| + n} (0-based)
        model.n_grown += 1
        model.alive[new] = True
        grown = [int(new)]
    return removed, grown, quiet


# --------------------------------------------------------------------------- optimizer
class _Adam:
    """Adam (Kingma & Ba 2015) with PyTorch's defaults and L2 weight decay in the gradient."""

    def __init__(self, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.lr, self.b1, self.b2, self.eps = lr, betas[0], betas[1], eps
        self.t = 0
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        c1 = 1.0 - self.b1**self.t
        c2 = 1.0 - self.b2**self.t
        for k, g in grads.items():
            if k not in self.m:
                self.m[k] = np.zeros_like(g)
                self.v[k] = np.zeros_like(g)
            m, v = self.m[k], self.v[k]
            m *= self.b1
            m += (1.0 - self.b1) * g
            v *= self.b2
            v += (1.0 - self.b2) * g * g
            params[k] -= self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)


# --------------------------------------------------------------------------- training
@dataclass
class SAGPResult:
    """Outcome of :func:`train_sagp`.

    Attributes
    ----------
    model : SAGPModel
        After the last epoch.
    best_model : SAGPModel
        At the epoch of lowest validation error (the last one without validation data).
    best_epoch : int
    history : list of dict
        One record per epoch: ``epoch``, ``n_hidden`` (|H|), ``n_grown`` (n),
        ``grown``, ``removed`` (counts this epoch), ``grown_ids``, ``removed_ids``,
        ``synapses``, ``task_loss``/``aux_loss`` (means over the epoch's mini-batches),
        ``train_loss``, ``train_error``, ``val_loss``, ``val_error``, ``test_loss``,
        ``test_error`` (S-Alg. 2 after the epoch; NaN when the split is missing).
    config : SAGPConfig
    """

    model: SAGPModel
    best_model: SAGPModel
    best_epoch: int
    history: list
    config: SAGPConfig


def train_sagp(
    X,
    y,
    *,
    config: SAGPConfig | None = None,
    epochs: int = 100,
    seed: int = 0,
    n_classes: int | None = None,
    validation: tuple | None = None,
    test: tuple | None = None,
    callback: Callable[[dict], None] | None = None,
) -> SAGPResult:
    """Train a self-assembling graph perceptron (S-Alg. 1).

    Implements S-Alg. 1: per epoch, soft/hard masks and the apoptosis and growth rules
    (lines 5-11), then shuffled mini-batches of forward with hard masks, TaskLoss +
    AuxLoss and an Adam step on the explicit gradients (lines 12-21); after each epoch
    the network is evaluated by S-Alg. 2 on the given splits and a history record is
    appended (and passed to ``callback``, which is how a caller shows progress).

    Parameters
    ----------
    X : (n, |I|) array
    y : (n,) int array
        Class labels in [0, n_classes).
    config : SAGPConfig, optional
        Defaults to :class:`SAGPConfig()` (Table 2).
    epochs : int
        The "until convergent" of line 22 is a fixed epoch budget.
    seed : int
        Seeds ``np.random.default_rng`` (initialization, shuffling, dropout).
    n_classes : int, optional
        |O|; defaults to ``y.max() + 1``.
    validation, test : (X, y), optional
    callback : callable, optional
        Called with each epoch's record.

    Returns
    -------
    SAGPResult

    Raises
    ------
    ValueError
        On bad shapes, labels or ``epochs``.
    """
    config = SAGPConfig() if config is None else config
    if not isinstance(config, SAGPConfig):
        raise ValueError(f"config: expected a SAGPConfig, got {type(config).__name__}")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"epochs: expected an integer >= 0, got {epochs!r}")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X: expected a 2-D (n, features) array, got shape {X.shape}")
    yy = np.asarray(y)
    if n_classes is None:
        if yy.size == 0 or not np.issubdtype(yy.dtype, np.integer):
            raise ValueError("y: expected non-empty integer class labels")
        n_classes = int(yy.max()) + 1
    X = _check_X(X, X.shape[1])
    y = _check_y(yy, X.shape[0], n_classes)
    splits = {}
    for name, split in (("val", validation), ("test", test)):
        if split is not None:
            Xs = _check_X(split[0], X.shape[1], name=f"{name} X")
            splits[name] = (Xs, _check_y(split[1], Xs.shape[0], n_classes, name=f"{name} y"))

    rng = np.random.default_rng(seed)
    model = init_sagp(X.shape[1], n_classes, config, rng)
    lay = model.layout
    opt = _Adam(config.lr)
    history: list[dict] = []
    best_model, best_epoch, best_err = model.copy(), 0, np.inf
    quiet = 0
    n = X.shape[0]
    for epoch in range(1, epochs + 1):
        removed, grown, quiet = apply_rules(model, config, quiet)  # S-Alg. 1 lines 5-11
        decay = lay.trainable & model.alive[:, None] & model.alive[None, :]
        decay_b = model.alive.copy()
        decay_b[lay.inputs] = False
        perm = rng.permutation(n)
        task_sum = aux_sum = 0.0
        n_batches = 0
        for s in range(0, n, config.batch_size):
            rows = perm[s : s + config.batch_size]
            g = sagp_loss_and_grad(
                model,
                X[rows],
                y[rows],
                gamma1=config.gamma1,
                gamma2=config.gamma2,
                competition=config.competition,
                training=True,
                dropout=config.dropout,
                rng=rng,
            )
            params = {
                "A": model.A,
                "b": model.b,
                "neuron_logits": model.neuron_logits,
                "synapse_logits": model.synapse_logits,
            }
            grads = {
                "A": g.A + config.weight_decay * model.A * decay,
                "b": g.b + config.weight_decay * model.b * decay_b,
                "neuron_logits": g.neuron_logits,
                "synapse_logits": g.synapse_logits,
            }
            if model.bn is not None:
                params["gamma"], params["beta"] = model.bn.gamma, model.bn.beta
                grads["gamma"], grads["beta"] = g.gamma, g.beta
                model.bn.running_mean[...] = g.running_mean
                model.bn.running_var[...] = g.running_var
            opt.step(params, grads)  # S-Alg. 1 line 21 (in place)
            task_sum += g.task_loss
            aux_sum += g.aux_loss
            n_batches += 1
        rec = {
            "epoch": epoch,
            "n_hidden": int(model.alive[lay.hidden].sum()),
            "n_grown": int(model.n_grown),
            "grown": len(grown),
            "removed": len(removed),
            "grown_ids": grown,
            "removed_ids": removed,
            "synapses": synapse_count(model),
            "task_loss": task_sum / max(n_batches, 1),
            "aux_loss": aux_sum / max(n_batches, 1),
        }
        rec["train_loss"], rec["train_error"] = evaluate(model, X, y)
        for name in ("val", "test"):
            if name in splits:
                rec[f"{name}_loss"], rec[f"{name}_error"] = evaluate(model, *splits[name])
            else:
                rec[f"{name}_loss"] = rec[f"{name}_error"] = float("nan")
        history.append(rec)
        crit = rec["val_error"] if "val" in splits else -epoch
        if crit < best_err:
            best_err, best_epoch, best_model = crit, epoch, model.copy()
        if callback is not None:
            callback(rec)
    return SAGPResult(model, best_model, best_epoch, history, config)


def config_dict(config: SAGPConfig) -> dict:
    """The configuration as a plain dict (for the history file)."""
    return asdict(config)
