r"""Cyclic Forward-Forward (Yang et al. 2024), the comparison of the paper's Sec. 4.2 / Fig. 2.

A *cyclic neural network* (Yang et al., "Beyond directed acyclic computation graph with
cyclic neural network", arXiv:2402.13041 as the paper cites it; also "Cyclic Neural
Network", arXiv:2402.03332) is a predefined directed
graph whose nodes are small computational neurons (here, as in the authors' ``mlp`` model,
one fully connected layer with ReLU) and whose edges, cycles included, pass a neuron's
output to its successors.  Activations go around the graph for a fixed number of
synchronous steps T; every neuron is trained by its own Forward-Forward loss (Hinton
2022), with no gradient between neurons or between steps.  The paper's Appendix D reads
the fixed number of steps as a truncated fixed-point iteration of the equilibrium that
NMs solve exactly.

The model, for a batch ``X`` (B, n0) and a label embedding per row:

.. math::

    e &= [X,\; \ell] \quad (\ell = \mathrm{onehot}(c) \text{ for a candidate label } c,
        \text{ or } \mathbf 1/C \text{ for the neutral pass})\\
    h_i^0 &= 0,\qquad u_i^t = \mathrm{rms}\big([e,\; h_{j_1}^t, h_{j_2}^t, \dots]\big),
        \quad j_k \in \mathrm{in}(i),\quad
        \mathrm{rms}(v) = \frac{v}{\sqrt{\mathrm{mean}(v^2)} + \epsilon}\\
    h_i^{t+1} &= \mathrm{relu}(u_i^t W_i + b_i)\quad (t = 0..T-1)\\
    s_i^{t+1} &= \lVert h_i^{t+1}\rVert^2 - \theta d \quad\text{(goodness logit)},\qquad
    L_i^{t+1} = \frac{1}{2B}\sum_b \big[\mathrm{softplus}(-s^+) +
        \mathrm{softplus}(s^-)\big]

where ``+`` is the row with its true label and ``-`` with a wrong one (binary
cross-entropy of the logit, positive rows labelled 1).  Neuron i descends
:math:`\frac{1}{nT}\sum_t \partial L_i^t / \partial (W_i, b_i)` with every input
:math:`u_i^{t-1}` held fixed (local learning).  A linear *readout*
:math:`\mathrm{softmax}(F R + c)` on :math:`F = [\mathrm{rms}(h_1^T), \dots,
\mathrm{rms}(h_n^T)]` of the neutral pass is trained with cross-entropy at the same time
(no gradient into the neurons) and gives the predictions (the authors' reported error);
the FF rule (the label of largest :math:`\sum_i s_i^T`) is ``rule="goodness"``.

What follows the authors' public implementation (github.com/YangLiangwei/
Cyclic-Neural-Network, ``main.py``; read to learn, not copied): the input goes to every
neuron, a neuron's input is the concatenation of the data and its in-neighbours' outputs
normalized by its root mean square, the goodness logit :math:`\lVert h\rVert^2 - \theta d`
with ``theta`` = 1 and binary cross-entropy, a loss at every step with the features
detached between steps, negative data = the same row with a uniformly drawn wrong label,
the neutral label :math:`\mathbf 1/C` for the readout, T = 3 steps, 4 neurons, SGD with
momentum 0.9 and weight decay 3e-4 on the neurons, early stopping on the validation error
of the readout.  The graph ``"cycle"`` (i -> i+1 mod n, their ``cycle`` type) or
``"complete"``, or any boolean (n, n) matrix ``graph[j, i]`` = edge j -> i.

Choices made here where the paper and that code leave them open or do not fit tabular
data: the label embedding is appended to the features (their IMDB / newsgroup loaders do
so; for MNIST they overwrite pixels), width 32 instead of 2000 (the tasks have 4-64
features), the learning rates (0.01 for the neurons and 0.05 for the readout, chosen so
that the bundled tasks train within tens of epochs: the authors' 1e-3 assumes 60 000
MNIST rows per epoch), no learning-rate schedule, weight decay 1e-6 on the readout (theirs).
"""
from __future__ import annotations

import types
from dataclasses import dataclass, field

import numpy as np

from ..loop import EarlyStopping, EarlyStoppingAttributes, run_epochs
from ..optim import Optimizer
from ..validation import check_fit_data, check_int

__all__ = ["CyclicFF", "cff_embed", "cff_graph", "rms_normalize", "cff_propagate",
           "ff_goodness", "ff_loss", "cff_local_grads", "cff_readout_features",
           "cff_readout_loss_and_grad", "cff_goodness_per_label", "cff_predict",
           "wrong_labels", "CFFTrainer"]

_EPS = 1e-8


def cff_graph(kind, n_neurons):
    """Boolean adjacency ``graph[j, i]`` (edge j -> i) of a predefined cyclic graph.

    Implements the fixed topology of the cyclic network compared in Sec. 4.2:
    ``"cycle"`` (i -> i+1 mod n) or ``"complete"`` (every ordered pair).
    """
    n = int(n_neurons)
    if n < 1:
        raise ValueError(f"n_neurons: expected a positive integer, got {n_neurons!r}")
    G = np.zeros((n, n), dtype=bool)
    if kind == "cycle":
        if n > 1:
            G[np.arange(n), (np.arange(n) + 1) % n] = True
    elif kind == "complete":
        G[:] = True
        np.fill_diagonal(G, False)
    else:
        raise ValueError(f"graph: expected 'cycle', 'complete' or a boolean (n, n) matrix, "
                         f"got {kind!r}")
    return G


@dataclass
class CyclicFF:
    """Parameters of the cyclic Forward-Forward network of Sec. 4.2 (module docstring).

    Attributes
    ----------
    W : list of arrays, ``W[i]`` (n_in + n_classes + width * indegree(i), width)
        Weights of neuron i on ``u_i = rms([e, h_j for j in in(i)])``.
    b : list of arrays, ``b[i]`` (width,)
    R : ndarray (n_neurons * width, n_classes), c : ndarray (n_classes,)
        The linear readout.
    graph : ndarray of bool (n, n), ``graph[j, i]`` = edge j -> i
    n_in, n_classes, width, steps : int
    theta : float
        Goodness threshold per unit (the logit is ``||h||^2 - theta * width``).
    """

    W: list
    b: list
    R: np.ndarray
    c: np.ndarray
    graph: np.ndarray
    n_in: int
    n_classes: int
    width: int
    steps: int = 3
    theta: float = 1.0
    ins: list = field(init=False, repr=False)

    def __post_init__(self):
        n = len(self.W)
        if self.graph.shape != (n, n) or self.graph.dtype != bool:
            raise ValueError(f"graph: expected a boolean ({n}, {n}) matrix, got "
                             f"{self.graph.dtype} {self.graph.shape}")
        if int(self.steps) < 1:
            raise ValueError(f"steps: expected a positive integer, got {self.steps!r}")
        self.ins = [np.flatnonzero(self.graph[:, i]) for i in range(n)]
        for i, (W, b) in enumerate(zip(self.W, self.b)):
            d_in = self.n_in + self.n_classes + self.width * self.ins[i].size
            if W.shape != (d_in, self.width) or b.shape != (self.width,):
                raise ValueError(f"W[{i}], b[{i}]: expected shapes ({d_in}, {self.width}) and "
                                 f"({self.width},), got {W.shape} and {b.shape}")
        if self.R.shape != (n * self.width, self.n_classes) or self.c.shape != (self.n_classes,):
            raise ValueError(f"R, c: expected shapes ({n * self.width}, {self.n_classes}) and "
                             f"({self.n_classes},), got {self.R.shape} and {self.c.shape}")

    @classmethod
    def random(cls, n_in, n_classes, *, n_neurons=4, width=32, steps=3, graph="cycle",
               theta=1.0, seed=0):
        """Random network on a predefined graph (Sec. 4.2's comparison model): weights and
        biases ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` (the default of a linear layer in the
        authors' framework), zero readout (a choice: it starts from uniform predictions)."""
        rng = np.random.default_rng(seed)
        G = graph if isinstance(graph, np.ndarray) else cff_graph(graph, n_neurons)
        G = np.asarray(G, dtype=bool)
        n_in, n_classes, width = int(n_in), int(n_classes), int(width)
        W, b = [], []
        for i in range(len(G)):
            d_in = n_in + n_classes + width * int(G[:, i].sum())
            r = 1.0 / np.sqrt(d_in)
            W.append(rng.uniform(-r, r, (d_in, width)))
            b.append(rng.uniform(-r, r, width))
        return cls(W, b, np.zeros((len(G) * width, n_classes)), np.zeros(n_classes), G,
                   n_in, n_classes, width, int(steps), float(theta))

    @property
    def n_neurons(self) -> int:
        return len(self.W)

    def params(self) -> dict:
        """The neurons' parameter arrays by name (the arrays themselves, not copies)."""
        out = {f"W{i}": W for i, W in enumerate(self.W)}
        out.update({f"b{i}": b for i, b in enumerate(self.b)})
        return out

    def copy(self) -> "CyclicFF":
        return CyclicFF([W.copy() for W in self.W], [b.copy() for b in self.b], self.R.copy(),
                        self.c.copy(), self.graph.copy(), self.n_in, self.n_classes,
                        self.width, self.steps, self.theta)


def cff_embed(X, labels, n_classes):
    r"""The label embedding :math:`e = [X, \ell]`: :math:`\ell` one-hot of ``labels``, or
    the neutral :math:`\mathbf 1/C` when ``labels`` is None (Sec. 4.2's FF baseline)."""
    X = np.asarray(X, dtype=np.float64)
    if labels is None:
        lab = np.full((X.shape[0], int(n_classes)), 1.0 / n_classes)
    else:
        lab = np.zeros((X.shape[0], int(n_classes)))
        lab[np.arange(X.shape[0]), np.asarray(labels)] = 1.0
    return np.hstack([X, lab])


def rms_normalize(V):
    r""":math:`v / (\sqrt{\mathrm{mean}(v^2)} + \epsilon)` per row: a neuron's input
    normalization in the cyclic FF network (Sec. 4.2's baseline)."""
    return V / (np.sqrt(np.mean(V * V, axis=1, keepdims=True)) + _EPS)


def cff_propagate(net: CyclicFF, E):
    r"""``steps`` synchronous steps around the cyclic graph from :math:`h^0 = 0`
    (module docstring; the truncated iteration of Appendix D).

    Returns
    -------
    U : list over steps of lists over neurons of (B, d_in_i) arrays
        :math:`u_i^t`, t = 0..T-1 (the input of step t+1).
    H : list over steps of lists over neurons of (B, width) arrays
        :math:`h_i^{t+1}`.
    """
    B = E.shape[0]
    h = [np.zeros((B, net.width)) for _ in range(net.n_neurons)]
    U, H = [], []
    for _ in range(net.steps):
        u = [rms_normalize(np.hstack([E] + [h[j] for j in net.ins[i]]))
             for i in range(net.n_neurons)]
        h = [np.maximum(u[i] @ net.W[i] + net.b[i], 0.0) for i in range(net.n_neurons)]
        U.append(u)
        H.append(h)
    return U, H


def ff_goodness(H):
    r"""Goodness :math:`\lVert h\rVert^2` per row (Hinton's FF; Sec. 4.2's baseline)."""
    H = np.asarray(H, dtype=np.float64)
    return np.sum(H * H, axis=1)


def ff_loss(G_pos, G_neg, threshold):
    r"""FF loss: binary cross-entropy of the logits :math:`s = G - \mathrm{threshold}`,
    positive rows labelled 1, mean over the 2B rows (Sec. 4.2's baseline).

    Returns
    -------
    loss : float
    dG_pos, dG_neg : arrays
        :math:`\partial L / \partial G^\pm` per row.
    """
    G_pos = np.asarray(G_pos, dtype=np.float64)
    G_neg = np.asarray(G_neg, dtype=np.float64)
    n = G_pos.shape[0] + G_neg.shape[0]
    sp, sn = G_pos - threshold, G_neg - threshold
    loss = (np.logaddexp(0.0, -sp).sum() + np.logaddexp(0.0, sn).sum()) / n
    sig = lambda z: 0.5 * (1.0 + np.tanh(0.5 * z))  # noqa: E731  (stable sigmoid)
    return float(loss), -sig(-sp) / n, sig(sn) / n


def _neuron_grad(U, H, dG):
    """(dW, db) of a neuron's loss from dL/dG, its input U held fixed."""
    dA = 2.0 * dG[:, None] * H  # dG/da = 2 h (relu: h = 0 where a <= 0)
    return U.T @ dA, dA.sum(axis=0)


def cff_local_grads(net: CyclicFF, X, y, y_neg):
    r"""Every neuron's FF loss (mean over the steps) and its local gradient
    :math:`\frac{1}{nT}\sum_t \partial L_i^t/\partial(W_i, b_i)`, inputs held fixed.

    Implements the local learning rule of the cyclic FF network (Sec. 4.2's baseline;
    module docstring).

    Returns
    -------
    losses : ndarray (n_neurons,)
    grads : dict ``W{i}``, ``b{i}`` -> arrays
    """
    Up, Hp = cff_propagate(net, cff_embed(X, y, net.n_classes))
    Un, Hn = cff_propagate(net, cff_embed(X, y_neg, net.n_classes))
    n, T = net.n_neurons, net.steps
    losses = np.zeros(n)
    grads = {**{f"W{i}": np.zeros_like(W) for i, W in enumerate(net.W)},
             **{f"b{i}": np.zeros_like(b) for i, b in enumerate(net.b)}}
    for t in range(T):
        for i in range(n):
            loss, dGp, dGn = ff_loss(ff_goodness(Hp[t][i]), ff_goodness(Hn[t][i]),
                                     net.theta * net.width)
            losses[i] += loss / T
            for U, H, dG in ((Up[t][i], Hp[t][i], dGp), (Un[t][i], Hn[t][i], dGn)):
                dW, db = _neuron_grad(U, H, dG / (n * T))
                grads[f"W{i}"] += dW
                grads[f"b{i}"] += db
    return losses, grads


def cff_readout_features(net: CyclicFF, X):
    r""":math:`F = [\mathrm{rms}(h_1^T), \dots, \mathrm{rms}(h_n^T)]` of the neutral pass
    (the readout's input; Sec. 4.2's baseline)."""
    _, H = cff_propagate(net, cff_embed(X, None, net.n_classes))
    return np.hstack([rms_normalize(h) for h in H[-1]])


def cff_readout_loss_and_grad(net: CyclicFF, F, y):
    r"""Mean cross-entropy of :math:`\mathrm{softmax}(F R + c)` and its gradients in
    ``R``, ``c`` (the readout of Sec. 4.2's baseline)."""
    Z = F @ net.R + net.c
    Z = Z - Z.max(axis=1, keepdims=True)
    P = np.exp(Z)
    P /= P.sum(axis=1, keepdims=True)
    B = F.shape[0]
    loss = float(-np.mean(np.log(P[np.arange(B), y] + 1e-300)))
    P[np.arange(B), y] -= 1.0
    P /= B
    return loss, {"R": F.T @ P, "c": P.sum(axis=0)}


def cff_goodness_per_label(net: CyclicFF, X):
    r"""Summed goodness logits :math:`\sum_i s_i^T` of every row with every candidate
    label, shape (B, n_classes) (the FF prediction rule; Sec. 4.2's baseline)."""
    X = np.asarray(X, dtype=np.float64)
    out = np.zeros((X.shape[0], net.n_classes))
    for c in range(net.n_classes):
        _, H = cff_propagate(net, cff_embed(X, np.full(X.shape[0], c), net.n_classes))
        out[:, c] = sum(ff_goodness(h) - net.theta * net.width for h in H[-1])
    return out


def cff_predict(net: CyclicFF, X, rule="readout"):
    """Labels by the linear readout (default; the authors' reported error) or by the
    largest summed goodness (``rule="goodness"``): Sec. 4.2's baseline."""
    if rule == "readout":
        return np.argmax(cff_readout_features(net, X) @ net.R + net.c, axis=1)
    if rule == "goodness":
        return np.argmax(cff_goodness_per_label(net, X), axis=1)
    raise ValueError(f"rule: expected 'readout' or 'goodness', got {rule!r}")


def wrong_labels(y, n_classes, rng):
    """A uniformly drawn wrong label per row: the negative data of FF (Sec. 4.2's
    baseline)."""
    shift = rng.integers(1, n_classes, size=np.shape(y))
    return (np.asarray(y) + shift) % n_classes


class CFFTrainer(EarlyStoppingAttributes):
    """Train :class:`CyclicFF` with local FF updates and its readout (Sec. 4.2's baseline).

    Mini-batches in a seeded order; per batch, one SGD step (momentum, weight decay) of
    every neuron on its own gradient (:func:`cff_local_grads`) and one of the readout on
    the cross-entropy of the neutral pass; early stopping on the validation error of
    ``rule`` with ``patience`` epochs; :meth:`restore_best` puts the best epoch back.

    Parameters
    ----------
    n_in, n_classes : int
    n_neurons, width, steps, graph, theta
        See :meth:`CyclicFF.random`.
    epochs, batch_size, lr, readout_lr, momentum, weight_decay, readout_weight_decay,
    patience, seed
        Defaults: see the module docstring.
    rule : {"readout", "goodness"}
        Prediction rule (validation and :meth:`predict`).
    """

    def __init__(self, n_in, n_classes, *, n_neurons=4, width=32, steps=3, graph="cycle",
                 theta=1.0, epochs=50, batch_size=32, lr=0.01, readout_lr=0.05, momentum=0.9,
                 weight_decay=3e-4, readout_weight_decay=1e-6, patience=10, rule="readout",
                 seed=0):
        seeds = np.random.SeedSequence(seed).spawn(2)
        self.net = CyclicFF.random(n_in, n_classes, n_neurons=n_neurons, width=width,
                                   steps=steps, graph=graph, theta=theta,
                                   seed=int(seeds[0].generate_state(1)[0]))
        self.rng = np.random.default_rng(seeds[1])
        if rule not in ("readout", "goodness"):
            raise ValueError(f"rule: expected 'readout' or 'goodness', got {rule!r}")
        self.rule = rule
        self.weight_decay = float(weight_decay)
        self.readout_weight_decay = float(readout_weight_decay)
        if patience is not None:
            patience = check_int(patience, "patience", 1)
        self.config = types.SimpleNamespace(optimizer="sgd", lr=float(lr),
                                            momentum=float(momentum), patience=patience,
                                            epochs=check_int(epochs, "epochs", 1),
                                            batch_size=check_int(batch_size, "batch_size", 1))
        self.readout_config = types.SimpleNamespace(optimizer="sgd", lr=float(readout_lr),
                                                    momentum=float(momentum))
        self._new_optimizers()
        self.epoch = 0
        self.history: list[dict] = []
        self.stopping = EarlyStopping(self.config.patience)

    def _new_optimizers(self):
        net = self.net
        self.opt = Optimizer.from_config(self.config,
                                         {k: v.shape for k, v in net.params().items()})
        self.opt_readout = Optimizer.from_config(self.readout_config,
                                                 {"R": net.R.shape, "c": net.c.shape})

    def fit(self, X, y, X_val=None, y_val=None):
        """Local FF training with the readout for ``epochs`` epochs of
        :func:`refimpl.loop.run_epochs` (early stopping on ``X_val``); returns ``self``."""
        net = self.net
        X, y, X_val, y_val = check_fit_data(X, y, X_val, y_val, net.n_in, net.n_classes)
        self._n, self._val = X.shape[0], (X_val, y_val)
        run_epochs(self, X, y, self.config.epochs, batch_size=self.config.batch_size)
        return self

    def begin_epoch(self):
        """Reset the epoch's loss sums (:func:`refimpl.loop.run_epochs`)."""
        self._ff_sum, self._readout_sum = np.zeros(self.net.n_neurons), 0.0

    def train_batch(self, X, y):
        """One batch: negative labels drawn from ``rng``, an SGD step of every neuron on
        its local FF gradient (:func:`cff_local_grads`, + weight decay) and one of the
        readout on the neutral pass's cross-entropy."""
        net = self.net
        y_neg = wrong_labels(y, net.n_classes, self.rng)
        losses, grads = cff_local_grads(net, X, y, y_neg)
        params = net.params()
        for k in grads:
            grads[k] += self.weight_decay * params[k]
        self.opt.step(params, grads)
        loss_ro, g_ro = cff_readout_loss_and_grad(net, cff_readout_features(net, X), y)
        g_ro["R"] += self.readout_weight_decay * net.R
        g_ro["c"] += self.readout_weight_decay * net.c
        self.opt_readout.step({"R": net.R, "c": net.c}, g_ro)
        self._ff_sum += losses * y.shape[0]
        self._readout_sum += loss_ro * y.shape[0]
        return loss_ro

    def end_epoch(self, t0):
        """The epoch's record (mean FF and readout losses) and its score, the validation
        error of ``rule`` (None without a validation split)."""
        self.epoch += 1
        rec = {"epoch": self.epoch, "ff_loss": float(self._ff_sum.mean() / self._n),
               "readout_loss": self._readout_sum / self._n}
        score = None
        X_val, y_val = self._val
        if X_val is not None:
            score = rec["val_error"] = float(np.mean(self.predict(X_val) != y_val))
        self.history.append(rec)
        return rec, score, self.net.copy

    def restore_best(self):
        """Put the best validation epoch's parameters back (if any)."""
        if self.best is not None:
            self.net = self.best.copy()
            self._new_optimizers()

    def predict(self, X):
        """:func:`cff_predict` of the current network with the trainer's ``rule``."""
        return cff_predict(self.net, X, self.rule)
