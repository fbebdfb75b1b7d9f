"""A SAGP's parameters and topology, and the current topology with its masks folded in
(S-Alg. 1 lines 1-3 and 12-17, S-Alg. 2 lines 2-3)."""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from .config import SAGPConfig
from .layout import SAGPLayout, sagp_layout
from .masks import hard_mask, soft_mask
from .norm import GPBatchNorm

__all__ = ["SAGPModel", "assembled_graph", "init_sagp", "input_out_degree", "synapse_count"]


@dataclass
class SAGPModel:
    """Parameters and topology of a SAGP (S-Alg. 1 line 1 "trainable parameters").

    Attributes
    ----------
    layout : SAGPLayout
        S-Eq. 11 layout and numbering.
    steps, alpha, activation
        L, the SparseLoss temperature (:func:`~refimpl.sagp.masks.sparse_loss`) and sigma.
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
    soft_neuron = np.where(is_hidden, soft_mask(model.neuron_logits[idx]), 1.0)
    hard_neuron = np.where(is_hidden, hard_mask(model.neuron_logits[idx]), 1.0)
    soft_syn = soft_mask(model.synapse_logits[ix]) * S
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


