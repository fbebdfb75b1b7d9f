r"""Cyclic Forward-Forward (Yang et al. 2024), the comparison of the paper's Sec. 4.2 / Fig. 2.

A *cyclic neural network* (Yang et al., "Beyond directed acyclic computation graph with
cyclic neural network", arXiv:2402.03332 / 2402.13041) is a predefined directed graph whose
nodes are small computational neurons (here: one fully connected layer with ReLU) and
whose edges, cycles included, pass a neuron's output to its successors.  Activations go
around the graph for a fixed number of synchronous steps; every neuron is trained by its
own Forward-Forward loss (Hinton 2022), with no gradient between neurons.  The paper's
Appendix D reads the fixed number of steps as a truncated fixed-point iteration of the
equilibrium that NMs solve exactly.

The model, for a batch ``X`` (B, n0) and a candidate label ``c`` per row:

.. math::

    e &= [X,\; s\,\mathrm{onehot}(c)] \quad\text{(label embedded in the input, Hinton's FF)}\\
    h_i^0 &= 0,\qquad m_i^t = \frac{1}{|\mathrm{in}(i)|}\sum_{j\in\mathrm{in}(i)}
        \frac{h_j^t}{\lVert h_j^t\rVert + \epsilon}\\
    u_i^t &= [e,\; m_i^t],\qquad h_i^{t+1} = \mathrm{relu}(u_i^t W_i + b_i)
        \quad (t = 0..T-1)\\
    G_i &= \frac{1}{d}\lVert h_i^T\rVert^2 \quad\text{(goodness)},\qquad
    L_i = \mathrm{mean}_b\big[\mathrm{softplus}(\theta - G_i^+) +
        \mathrm{softplus}(G_i^- - \theta)\big]

where ``+`` is the row with its true label and ``-`` with a wrong one.  Neuron ``i``
updates ``(W_i, b_i)`` with :math:`\partial L_i / \partial (W_i, b_i)` at the last step,
its input :math:`u_i^{T-1}` held fixed (local learning: nothing flows to the neurons that
produced :math:`m_i`, nor back through the steps).  Prediction: the label whose summed
goodness :math:`\sum_i G_i` is largest.

Choices the papers leave open (documented here, swappable through the arguments):

- *Neuron*: one linear layer + ReLU of width ``width`` (the paper's neurons may be any MLP).
- *Graph*: ``"ring"`` (i -> i+1 mod n, the smallest graph with a cycle through every
  neuron) or ``"complete"`` (every ordered pair); or any boolean (n, n) matrix
  ``graph[j, i]`` = edge j -> i (DESIGN.md's convention).  The input (data + label) goes
  to every neuron, and every neuron's goodness is read out.
- *Message*: the mean of the in-neighbours' length-normalized outputs (Hinton normalizes
  a layer's output so that the next layer cannot read the goodness off its length).
- *Goodness*: the mean (not the sum) of squares, so ``theta`` does not scale with the
  width; *loss*: Hinton's logistic loss with threshold ``theta`` = 1.
- *Negative data*: the same rows with a wrong label, drawn uniformly among the wrong
  labels (for a binary task: the other label).
- *Label embedding scale* ``s`` = 1 on standardized inputs.
- *Optimizer*: Adam (Hinton's FF code uses Adam), mini-batches, early stopping on the
  validation error.

The authors' public code was not found in the stored repositories this project can
read (searched by title, arXiv numbers and method names); the choices above follow the
paper's description (computational neurons, synapses with cycles, local FF losses,
fixed propagation steps) and Hinton's FF.
"""
from __future__ import annotations

import types
from dataclasses import dataclass, field

import numpy as np

from ..train import _Optimizer, check_fit_data, early_stopping_step

__all__ = ["CyclicFF", "cff_embed", "cff_graph", "cff_propagate", "ff_goodness", "ff_loss",
           "cff_local_grads", "cff_goodness_per_label", "cff_predict", "CFFTrainer"]

_EPS = 1e-8


def cff_graph(kind, n_neurons):
    """Boolean adjacency ``graph[j, i]`` (edge j -> i) of a predefined cyclic graph.

    Implements the fixed topology of the cyclic network compared in Sec. 4.2 (a
    documented choice, see the module docstring): ``"ring"`` or ``"complete"``.
    """
    n = int(n_neurons)
    if n < 1:
        raise ValueError(f"n_neurons: expected a positive integer, got {n_neurons!r}")
    G = np.zeros((n, n), dtype=bool)
    if kind == "ring":
        if n > 1:
            G[np.arange(n), (np.arange(n) + 1) % n] = True
    elif kind == "complete":
        G[:] = True
        np.fill_diagonal(G, False)
    else:
        raise ValueError(f"graph: expected 'ring', 'complete' or a boolean (n, n) matrix, "
                         f"got {kind!r}")
    return G


@dataclass
class CyclicFF:
    """Parameters of the cyclic Forward-Forward network of Sec. 4.2 (module docstring).

    Attributes
    ----------
    W : list of arrays, ``W[i]`` (n_in + n_classes + width, width)
        Weights of neuron i on ``u_i = [e, m_i]``.
    b : list of arrays, ``b[i]`` (width,)
    graph : ndarray of bool (n, n), ``graph[j, i]`` = edge j -> i
    n_in, n_classes, width, steps : int
    theta : float
        Goodness threshold.
    label_scale : float
        s of the label embedding.
    """

    W: list
    b: list
    graph: np.ndarray
    n_in: int
    n_classes: int
    width: int
    steps: int = 3
    theta: float = 1.0
    label_scale: float = 1.0
    ins: list = field(init=False, repr=False)

    def __post_init__(self):
        n = len(self.W)
        if self.graph.shape != (n, n) or self.graph.dtype != bool:
            raise ValueError(f"graph: expected a boolean ({n}, {n}) matrix, got "
                             f"{self.graph.dtype} {self.graph.shape}")
        if int(self.steps) < 1:
            raise ValueError(f"steps: expected a positive integer, got {self.steps!r}")
        d_in = self.n_in + self.n_classes + self.width
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            if W.shape != (d_in, self.width) or b.shape != (self.width,):
                raise ValueError(f"W[{i}], b[{i}]: expected shapes ({d_in}, {self.width}) and "
                                 f"({self.width},), got {W.shape} and {b.shape}")
        self.ins = [np.flatnonzero(self.graph[:, i]) for i in range(n)]

    @classmethod
    def random(cls, n_in, n_classes, *, n_neurons=4, width=16, steps=3, graph="ring",
               theta=1.0, label_scale=1.0, seed=0):
        """He-initialized network (``N(0, 2 / fan_in)`` weights, zero biases) on a
        predefined graph; Sec. 4.2's comparison model (module docstring)."""
        rng = np.random.default_rng(seed)
        G = graph if isinstance(graph, np.ndarray) else cff_graph(graph, n_neurons)
        G = np.asarray(G, dtype=bool)
        d_in = int(n_in) + int(n_classes) + int(width)
        W = [rng.normal(0.0, np.sqrt(2.0 / d_in), (d_in, int(width))) for _ in range(len(G))]
        b = [np.zeros(int(width)) for _ in range(len(G))]
        return cls(W, b, G, int(n_in), int(n_classes), int(width), int(steps), float(theta),
                   float(label_scale))

    @property
    def n_neurons(self) -> int:
        return len(self.W)

    def params(self) -> dict:
        """The parameter arrays by name (views: updating them updates the network)."""
        out = {f"W{i}": W for i, W in enumerate(self.W)}
        out.update({f"b{i}": b for i, b in enumerate(self.b)})
        return out

    def copy(self) -> "CyclicFF":
        return CyclicFF([W.copy() for W in self.W], [b.copy() for b in self.b],
                        self.graph.copy(), self.n_in, self.n_classes, self.width, self.steps,
                        self.theta, self.label_scale)


def cff_embed(X, labels, n_classes, scale=1.0):
    r"""Hinton's label embedding :math:`e = [X,\; s\,\mathrm{onehot}(c)]` (Sec. 4.2's FF
    baseline, module docstring)."""
    X = np.asarray(X, dtype=np.float64)
    onehot = np.zeros((X.shape[0], int(n_classes)))
    onehot[np.arange(X.shape[0]), np.asarray(labels)] = scale
    return np.hstack([X, onehot])


def cff_propagate(net: CyclicFF, E):
    r"""``steps`` synchronous steps around the cyclic graph (module docstring's
    :math:`h_i^{t+1} = \mathrm{relu}(u_i^t W_i + b_i)`), from :math:`h^0 = 0`.

    The fixed number of steps is the truncated iteration of Appendix D.

    Returns
    -------
    U : list of (B, d_in) arrays
        Each neuron's input :math:`u_i^{T-1}` at the last step.
    H : list of (B, width) arrays
        Each neuron's output :math:`h_i^T`.
    """
    B = E.shape[0]
    H = [np.zeros((B, net.width)) for _ in range(net.n_neurons)]
    U = None
    for _ in range(net.steps):
        normed = [h / (np.linalg.norm(h, axis=1, keepdims=True) + _EPS) for h in H]
        U = []
        for i in range(net.n_neurons):
            m = (sum(normed[j] for j in net.ins[i]) / len(net.ins[i]) if len(net.ins[i])
                 else np.zeros((B, net.width)))
            U.append(np.hstack([E, m]))
        H = [np.maximum(U[i] @ net.W[i] + net.b[i], 0.0) for i in range(net.n_neurons)]
    return U, H


def ff_goodness(H):
    r"""Goodness :math:`G = \frac{1}{d}\lVert h\rVert^2` per row (Hinton's FF, the mean of
    squares; Sec. 4.2's baseline)."""
    H = np.asarray(H, dtype=np.float64)
    return np.mean(H * H, axis=1)


def ff_loss(G_pos, G_neg, theta):
    r"""FF logistic loss :math:`\mathrm{mean}[\mathrm{softplus}(\theta - G^+) +
    \mathrm{softplus}(G^- - \theta)]` and its derivatives (Sec. 4.2's baseline).

    Returns
    -------
    loss : float
    dG_pos, dG_neg : arrays
        :math:`\partial L / \partial G^\pm` per row.
    """
    G_pos = np.asarray(G_pos, dtype=np.float64)
    G_neg = np.asarray(G_neg, dtype=np.float64)
    B = G_pos.shape[0]
    loss = (np.logaddexp(0.0, theta - G_pos).sum() + np.logaddexp(0.0, G_neg - theta).sum()) / B
    sig = lambda z: 0.5 * (1.0 + np.tanh(0.5 * z))  # noqa: E731  (stable sigmoid)
    return float(loss), -sig(theta - G_pos) / B, sig(G_neg - theta) / B


def _neuron_grad(U, H, dG):
    """(dW, db) of a neuron's loss from dL/dG (module docstring, local update)."""
    dA = dG[:, None] * (2.0 / H.shape[1]) * H  # dG/da = (2/d) h (relu: 0 where a <= 0)
    return U.T @ dA, dA.sum(axis=0)


def cff_local_grads(net: CyclicFF, X, y, y_neg):
    r"""Each neuron's FF loss :math:`L_i` and the local gradients
    :math:`\partial L_i/\partial W_i,\ \partial L_i/\partial b_i` with its input held fixed.

    Implements the local learning rule of the cyclic FF network (Sec. 4.2's baseline;
    module docstring).

    Returns
    -------
    losses : ndarray (n_neurons,)
    grads : dict ``W{i}``, ``b{i}`` -> arrays
    """
    Up, Hp = cff_propagate(net, cff_embed(X, y, net.n_classes, net.label_scale))
    Un, Hn = cff_propagate(net, cff_embed(X, y_neg, net.n_classes, net.label_scale))
    losses = np.zeros(net.n_neurons)
    grads = {}
    for i in range(net.n_neurons):
        losses[i], dGp, dGn = ff_loss(ff_goodness(Hp[i]), ff_goodness(Hn[i]), net.theta)
        dWp, dbp = _neuron_grad(Up[i], Hp[i], dGp)
        dWn, dbn = _neuron_grad(Un[i], Hn[i], dGn)
        grads[f"W{i}"] = dWp + dWn
        grads[f"b{i}"] = dbp + dbn
    return losses, grads


def cff_goodness_per_label(net: CyclicFF, X):
    r"""Summed goodness :math:`\sum_i G_i` of every row with every candidate label,
    shape (B, n_classes) (the FF prediction rule; Sec. 4.2's baseline)."""
    X = np.asarray(X, dtype=np.float64)
    out = np.zeros((X.shape[0], net.n_classes))
    for c in range(net.n_classes):
        _, H = cff_propagate(net, cff_embed(X, np.full(X.shape[0], c), net.n_classes,
                                            net.label_scale))
        out[:, c] = sum(ff_goodness(h) for h in H)
    return out


def cff_predict(net: CyclicFF, X):
    """The label of largest summed goodness (Hinton's FF prediction; Sec. 4.2's baseline)."""
    return np.argmax(cff_goodness_per_label(net, X), axis=1)


def wrong_labels(y, n_classes, rng):
    """A uniformly drawn wrong label per row (the negative data of FF)."""
    shift = rng.integers(1, n_classes, size=np.shape(y))
    return (np.asarray(y) + shift) % n_classes


class CFFTrainer:
    """Train :class:`CyclicFF` with local FF updates (Sec. 4.2's baseline).

    Mini-batches in a seeded order, Adam on every neuron's own gradient
    (:func:`cff_local_grads`), early stopping on the validation error with
    ``patience`` epochs; :meth:`restore_best` puts the best epoch back.

    Parameters
    ----------
    n_in, n_classes : int
    n_neurons, width, steps, graph, theta, label_scale
        See :meth:`CyclicFF.random`.
    epochs, batch_size, lr, patience, seed
    """

    def __init__(self, n_in, n_classes, *, n_neurons=4, width=32, steps=3, graph="ring",
                 theta=1.0, label_scale=1.0, epochs=50, batch_size=32, lr=3e-3, patience=10,
                 seed=0):
        seeds = np.random.SeedSequence(seed).spawn(2)
        self.net = CyclicFF.random(n_in, n_classes, n_neurons=n_neurons, width=width,
                                   steps=steps, graph=graph, theta=theta,
                                   label_scale=label_scale,
                                   seed=int(seeds[0].generate_state(1)[0]))
        self.rng = np.random.default_rng(seeds[1])
        self.config = types.SimpleNamespace(optimizer="adam", lr=float(lr), momentum=0.0,
                                            patience=patience, epochs=int(epochs),
                                            batch_size=int(batch_size))
        self.opt = _Optimizer(self.config, {k: v.shape for k, v in self.net.params().items()})
        self.epoch = 0
        self.history: list[dict] = []
        self.best, self.best_val, self.best_epoch, self.stale = None, np.inf, 0, 0

    def fit(self, X, y, X_val=None, y_val=None):
        """Local FF training; returns ``self``."""
        net = self.net
        X, y, X_val, y_val = check_fit_data(X, y, X_val, y_val, net.n_in, net.n_classes)
        bs = self.config.batch_size
        for _ in range(self.config.epochs):
            self.epoch += 1
            order = self.rng.permutation(X.shape[0])
            total = np.zeros(net.n_neurons)
            for s in range(0, X.shape[0], bs):
                idx = order[s:s + bs]
                y_neg = wrong_labels(y[idx], net.n_classes, self.rng)
                losses, grads = cff_local_grads(net, X[idx], y[idx], y_neg)
                self.opt.step(net.params(), grads)
                total += losses * idx.size
            rec = {"epoch": self.epoch, "loss": float(total.sum() / X.shape[0]),
                   "train_error": float(np.mean(cff_predict(net, X) != y))}
            score = None
            if X_val is not None:
                score = rec["val_error"] = float(np.mean(cff_predict(net, X_val) != y_val))
            self.history.append(rec)
            if early_stopping_step(self, score, net.copy):
                break
        return self

    def restore_best(self):
        """Put the best validation epoch's parameters back (if any)."""
        if self.best is not None:
            self.net = self.best.copy()
            self.opt = _Optimizer(self.config, {k: v.shape for k, v in self.net.params().items()})

    def predict(self, X):
        """:func:`cff_predict` of the current network."""
        return cff_predict(self.net, X)
