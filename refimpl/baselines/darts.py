r"""First-order DARTS (Liu et al. 2019) for a small tabular network: Sec. 4.2 / Fig. 2.

The searched network is one *cell*: a stem node :math:`h_0 = \tanh(X W_s + b_s)` and
``n_nodes`` intermediate nodes, each the sum of *mixed operations* on every earlier node,

.. math::

    h_j = \sum_{i<j} \bar o_{ij}(h_i),\qquad
    \bar o_{ij}(h) = \sum_{o\in\mathcal O} w_{ij,o}\, o(h),\qquad
    w_{ij,\cdot} = \mathrm{softmax}(\alpha_{ij,\cdot})\qquad \text{(DARTS Eq. 2)}

with candidates :math:`\mathcal O` = {``linear_tanh``: :math:`\tanh(h W + b)`,
``linear_relu``: :math:`\mathrm{relu}(h W + b)`, ``skip``: :math:`h`, ``zero``: 0}
(every parametric candidate of every edge has its own ``W``, ``b``).  The cell output is
the mean of the intermediate nodes, :math:`Z = \bar h W_o + b_o`, softmax and
cross-entropy.

Search (DARTS Alg. 1, first order): alternate one Adam step of the architecture
weights :math:`\alpha` on a validation batch (:math:`\nabla_\alpha L_{val}(w, \alpha)`,
the first-order approximation that ignores :math:`\partial w^*/\partial\alpha`) and one
step of the network weights on a training batch.  Discretization (DARTS Sec. 2.4): every
edge's operation is its strongest non-``zero`` candidate, and every node keeps its
``keep`` (default 2) incoming edges whose strongest non-``zero`` weight is largest.
The discrete cell (one-hot weights, dropped edges zero) is then retrained from a fresh
initialization.

Choices the paper (and DARTS, written for image cells) leave open: the candidate set
above (linear layers instead of convolutions), the cell output as the node mean instead
of the channel concatenation, Adam for both levels, the search on the dataset's
train / validation split (the same split the NMs use for early stopping), and early
stopping of the retraining on the validation loss.
"""
from __future__ import annotations

import types
from dataclasses import dataclass, field

import numpy as np

from ..loop import EarlyStopping, EarlyStoppingAttributes, run_epochs
from ..optim import Optimizer
from ..validation import check_fit_data, check_int

__all__ = ["OPS", "DartsCell", "darts_forward", "darts_backward", "darts_loss_and_grad",
           "mixing_weights", "discretize", "darts_predict", "DartsSearch"]

#: Candidate operations of every edge (index = column of alpha).
OPS = ("linear_tanh", "linear_relu", "skip", "zero")
_PARAMETRIC = ("linear_tanh", "linear_relu")


def _edges(n_nodes):
    """Edges (i, j), i < j, j = 1..n_nodes, in the order of alpha's rows."""
    return [(i, j) for j in range(1, n_nodes + 1) for i in range(j)]


@dataclass
class DartsCell:
    """Parameters of the searched cell (module docstring; Sec. 4.2's DARTS baseline).

    Attributes
    ----------
    params : dict of arrays
        ``Ws``, ``bs`` (stem), ``W{e}_{op}``, ``b{e}_{op}`` for every edge e and parametric
        op, ``Wo``, ``bo`` (output).
    alpha : ndarray (n_edges, len(OPS))
        Architecture weights.
    n_nodes, width : int
    """

    params: dict
    alpha: np.ndarray
    n_nodes: int
    width: int
    edges: list = field(init=False, repr=False)

    def __post_init__(self):
        self.edges = _edges(self.n_nodes)
        if self.alpha.shape != (len(self.edges), len(OPS)):
            raise ValueError(f"alpha: expected shape ({len(self.edges)}, {len(OPS)}), "
                             f"got {self.alpha.shape}")

    @classmethod
    def random(cls, n_in, n_out, *, n_nodes=3, width=16, seed=0):
        """Glorot-uniform weights, zero biases, alpha = 1e-3 N(0, 1) as in DARTS."""
        rng = np.random.default_rng(seed)

        def glorot(a, b):
            r = np.sqrt(6.0 / (a + b))
            return rng.uniform(-r, r, (a, b))

        p = {"Ws": glorot(n_in, width), "bs": np.zeros(width)}
        for e in range(len(_edges(n_nodes))):
            for op in _PARAMETRIC:
                p[f"W{e}_{op}"] = glorot(width, width)
                p[f"b{e}_{op}"] = np.zeros(width)
        p["Wo"] = glorot(width, n_out)
        p["bo"] = np.zeros(n_out)
        alpha = 1e-3 * rng.standard_normal((len(_edges(n_nodes)), len(OPS)))
        return cls(p, alpha, int(n_nodes), int(width))

    def copy(self) -> "DartsCell":
        return DartsCell({k: v.copy() for k, v in self.params.items()}, self.alpha.copy(),
                         self.n_nodes, self.width)


def mixing_weights(alpha):
    r"""Row softmax :math:`w_{ij,\cdot} = \mathrm{softmax}(\alpha_{ij,\cdot})` (DARTS Eq. 2,
    Sec. 4.2's baseline)."""
    a = np.asarray(alpha, dtype=np.float64)
    e = np.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _op(cell, e, op, h):
    """Output and pre-activation (or None) of candidate ``op`` of edge ``e``."""
    if op == "skip":
        return h, None
    if op == "zero":
        return np.zeros_like(h), None
    a = h @ cell.params[f"W{e}_{op}"] + cell.params[f"b{e}_{op}"]
    return (np.tanh(a) if op == "linear_tanh" else np.maximum(a, 0.0)), a


def darts_forward(cell: DartsCell, X, weights=None):
    r"""Logits Z of the cell with mixing ``weights`` (default ``softmax(alpha)``;
    one-hot rows give the discrete cell): DARTS Eq. 2 on every edge, Sec. 4.2's baseline.

    Returns
    -------
    Z : ndarray (B, n_out)
    cache : dict
        Node values and every candidate's output, for :func:`darts_backward`.
    """
    w = mixing_weights(cell.alpha) if weights is None else np.asarray(weights, float)
    X = np.asarray(X, dtype=np.float64)
    H = [np.tanh(X @ cell.params["Ws"] + cell.params["bs"])]
    outs = {}
    for j in range(1, cell.n_nodes + 1):
        hj = np.zeros_like(H[0])
        for e, (i, jj) in enumerate(cell.edges):
            if jj != j:
                continue
            for k, op in enumerate(OPS):
                y, a = _op(cell, e, op, H[i])
                outs[e, k] = (y, a)
                hj += w[e, k] * y  # the mixed operation, DARTS Eq. 2
        H.append(hj)
    hbar = sum(H[1:]) / cell.n_nodes
    Z = hbar @ cell.params["Wo"] + cell.params["bo"]
    return Z, {"X": X, "H": H, "outs": outs, "w": w, "hbar": hbar}


def darts_backward(cell: DartsCell, cache, G):
    """Gradients of a loss with dL/dZ = ``G`` (reverse mode through :func:`darts_forward`;
    Sec. 4.2's DARTS baseline).

    Returns
    -------
    grads : dict
        One entry per ``cell.params`` key, and ``"w"``: dL/d(mixing weights).
    """
    p, H, w = cell.params, cache["H"], cache["w"]
    g = {"Wo": cache["hbar"].T @ G, "bo": G.sum(axis=0), "w": np.zeros_like(w)}
    d_hbar = G @ p["Wo"].T
    dH = [np.zeros_like(h) for h in H]
    for j in range(1, cell.n_nodes + 1):
        dH[j] += d_hbar / cell.n_nodes
    for e in reversed(range(len(cell.edges))):
        i, j = cell.edges[e]
        for k, op in enumerate(OPS):
            y, a = cache["outs"][e, k]
            g["w"][e, k] = np.sum(dH[j] * y)
            dy = w[e, k] * dH[j]
            if op == "skip":
                dH[i] += dy
            elif op in _PARAMETRIC:
                da = dy * (1.0 - y * y) if op == "linear_tanh" else dy * (a > 0)
                g[f"W{e}_{op}"] = H[i].T @ da
                g[f"b{e}_{op}"] = da.sum(axis=0)
                dH[i] += da @ p[f"W{e}_{op}"].T
    da0 = dH[0] * (1.0 - H[0] ** 2)
    g["Ws"] = cache["X"].T @ da0
    g["bs"] = da0.sum(axis=0)
    return g


def darts_loss_and_grad(cell: DartsCell, X, y, weights=None):
    r"""Mean cross-entropy, the weight gradients and the architecture gradient
    :math:`\nabla_\alpha L` (through the softmax of DARTS Eq. 2; Sec. 4.2's baseline).

    With ``weights`` given (a discrete cell) the ``"alpha"`` entry is omitted.
    """
    Z, cache = darts_forward(cell, X, weights)
    Z = Z - Z.max(axis=1, keepdims=True)
    P = np.exp(Z)
    P /= P.sum(axis=1, keepdims=True)
    B = Z.shape[0]
    loss = float(-np.mean(np.log(P[np.arange(B), y] + 1e-300)))
    G = P.copy()
    G[np.arange(B), y] -= 1.0
    g = darts_backward(cell, cache, G / B)
    dw = g.pop("w")
    if weights is None:
        w = cache["w"]
        g["alpha"] = w * (dw - np.sum(w * dw, axis=1, keepdims=True))  # softmax Jacobian
    return loss, g


def discretize(cell: DartsCell, keep=2):
    """One-hot mixing weights of the derived cell (DARTS Sec. 2.4, Sec. 4.2's baseline).

    Every edge takes the argmax of its non-``zero`` weights; node j keeps the ``keep``
    incoming edges with the largest such weight (all of them when it has fewer), the
    others get an all-zero row.
    """
    w = mixing_weights(cell.alpha)
    nz = [k for k, op in enumerate(OPS) if op != "zero"]
    best = np.array(nz)[np.argmax(w[:, nz], axis=1)]
    strength = w[np.arange(len(w)), best]
    out = np.zeros_like(w)
    for j in range(1, cell.n_nodes + 1):
        es = [e for e, (_, jj) in enumerate(cell.edges) if jj == j]
        for e in sorted(es, key=lambda e: -strength[e])[:keep]:
            out[e, best[e]] = 1.0
    return out


def darts_predict(cell: DartsCell, X, weights=None):
    """Argmax of the logits (Sec. 4.2's DARTS baseline)."""
    return np.argmax(darts_forward(cell, X, weights)[0], axis=1)


class _BilevelSearch:
    """The search phase as a learner of :func:`refimpl.loop.run_epochs`: every batch is
    DARTS Alg. 1's first-order alternation (an architecture step on a validation batch,
    then a weight step on the training batch); Sec. 4.2's baseline.  No early stopping."""

    def __init__(self, owner, X_val, y_val):
        self.cell, self.rng, self.history = owner.cell, owner.rng, owner.history
        self.batch_size = owner.batch_size
        self.X_val, self.y_val = X_val, y_val
        self.opt_w = Optimizer.from_config(owner.config,
                                           {k: v.shape for k, v in self.cell.params.items()})
        self.opt_a = Optimizer.from_config(owner.arch_config, {"alpha": self.cell.alpha.shape})
        self.epoch = 0
        self.stopping = EarlyStopping(None)

    def begin_epoch(self):
        """Nothing to prepare."""

    def train_batch(self, X, y):
        """alpha on a validation batch drawn from ``rng``, then the weights on (X, y)."""
        cell, n_val = self.cell, self.X_val.shape[0]
        vidx = self.rng.integers(0, n_val, size=min(self.batch_size, n_val))
        _, ga = darts_loss_and_grad(cell, self.X_val[vidx], self.y_val[vidx])
        self.opt_a.step({"alpha": cell.alpha}, {"alpha": ga["alpha"]})
        self._loss, gw = darts_loss_and_grad(cell, X, y)
        del gw["alpha"]
        self.opt_w.step(cell.params, gw)
        return self._loss

    def end_epoch(self, t0):
        """The search record: the last batch's loss and the mixing weights."""
        self.epoch += 1
        rec = {"phase": "search", "epoch": self.epoch, "loss": self._loss,
               "alpha": mixing_weights(self.cell.alpha).round(4).tolist()}
        self.history.append(rec)
        return rec, None, None


class DartsSearch(EarlyStoppingAttributes):
    """First-order DARTS search, discretization and retraining (Sec. 4.2's baseline;
    module docstring).

    Parameters
    ----------
    n_in, n_out : int
    n_nodes, width : int
        Cell size.
    keep : int
        Incoming edges kept per node by :func:`discretize`.
    search_epochs, epochs : int
        Epochs of the search and of the retraining.
    batch_size : int
    lr, arch_lr : float
        Adam rates of the network weights and of alpha (DARTS: 3e-4 for alpha with
        images; tabular data searches in far fewer steps, hence 3e-3).
    patience : int or None
        Early stopping of the retraining on the validation loss (as the NMs'
        :class:`refimpl.train.Trainer`; the error of a small validation split moves in
        coarse steps).
    seed : int

    Attributes
    ----------
    cell : DartsCell
        The retrained cell after :meth:`fit` (``search_cell`` the searched one).
    weights : ndarray
        The discrete mixing weights.
    """

    def __init__(self, n_in, n_out, *, n_nodes=3, width=16, keep=2, search_epochs=20,
                 epochs=50, batch_size=32, lr=3e-3, arch_lr=3e-3, patience=10, seed=0):
        self.n_in, self.n_out = check_int(n_in, "n_in", 1), check_int(n_out, "n_out", 1)
        self.n_nodes, self.width = check_int(n_nodes, "n_nodes", 1), check_int(width, "width", 1)
        self.keep = check_int(keep, "keep", 1)  # keep = 0 would drop every edge
        self.search_epochs = check_int(search_epochs, "search_epochs", 1)
        self.batch_size = check_int(batch_size, "batch_size", 1)
        if patience is not None:
            patience = check_int(patience, "patience", 1)
        self.config = types.SimpleNamespace(optimizer="adam", lr=float(lr), momentum=0.0,
                                            patience=patience,
                                            epochs=check_int(epochs, "epochs", 1))
        self.arch_config = types.SimpleNamespace(optimizer="adam", lr=float(arch_lr),
                                                 momentum=0.0)
        seeds = np.random.SeedSequence(seed).spawn(3)
        self._init_seeds = [int(s.generate_state(1)[0]) for s in seeds[:2]]
        self.rng = np.random.default_rng(seeds[2])
        self.cell = DartsCell.random(self.n_in, self.n_out, n_nodes=self.n_nodes,
                                     width=self.width, seed=self._init_seeds[0])
        self.search_cell = None
        self.weights = None
        self.history: list[dict] = []
        self.epoch = 0
        self.stopping = EarlyStopping(self.config.patience)

    def search(self, X, y, X_val, y_val):
        """Bilevel first-order alternation (DARTS Alg. 1 with xi = 0) for
        ``search_epochs`` epochs of :func:`refimpl.loop.run_epochs`; returns self."""
        run_epochs(_BilevelSearch(self, X_val, y_val), X, y, self.search_epochs,
                   batch_size=self.batch_size)
        self.search_cell = self.cell
        self.weights = discretize(self.cell, self.keep)
        return self

    def retrain(self, X, y, X_val, y_val):
        """Train a fresh cell with the discrete weights for ``epochs`` epochs of
        :func:`refimpl.loop.run_epochs`; early stopping on the validation loss."""
        self.cell = DartsCell.random(self.n_in, self.n_out, n_nodes=self.n_nodes,
                                     width=self.width, seed=self._init_seeds[1])
        self._opt = Optimizer.from_config(self.config,
                                          {k: v.shape for k, v in self.cell.params.items()})
        self._val = (X_val, y_val)
        run_epochs(self, X, y, self.config.epochs, batch_size=self.batch_size)
        if self.best is not None:
            self.cell = self.best
        return self

    def begin_epoch(self):
        """Nothing to prepare (the retraining's epochs, :func:`refimpl.loop.run_epochs`)."""

    def train_batch(self, X, y):
        """One Adam step of the discrete cell's weights on (X, y)."""
        self._loss, g = darts_loss_and_grad(self.cell, X, y, self.weights)
        self._opt.step(self.cell.params, g)
        return self._loss

    def end_epoch(self, t0):
        """The retraining record (last batch's loss, validation loss and error) and its
        score, the validation loss."""
        self.epoch += 1
        X_val, y_val = self._val
        val_loss = darts_loss_and_grad(self.cell, X_val, y_val, self.weights)[0]
        err = float(np.mean(darts_predict(self.cell, X_val, self.weights) != y_val))
        rec = {"phase": "retrain", "epoch": self.epoch, "loss": self._loss,
               "val_loss": val_loss, "val_error": err}
        self.history.append(rec)
        return rec, val_loss, self.cell.copy

    def fit(self, X, y, X_val, y_val):
        """Search, discretize, retrain (DARTS, Sec. 4.2's baseline); returns self."""
        X, y, X_val, y_val = check_fit_data(X, y, X_val, y_val, self.n_in, self.n_out)
        if X_val is None:
            raise ValueError("X_val, y_val: DARTS needs a validation split for alpha")
        self.search(X, y, X_val, y_val)
        return self.retrain(X, y, X_val, y_val)

    def predict(self, X):
        """Labels of the retrained discrete cell."""
        return darts_predict(self.cell, X, self.weights)
