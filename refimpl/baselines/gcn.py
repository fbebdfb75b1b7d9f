r"""Two-layer graph convolutional network (Kipf & Welling 2017): the GNN of the paper's
Appendix G.2 / Fig. 8.

.. math::

    \hat A = \tilde D^{-1/2}(A + I)\tilde D^{-1/2},\qquad
    H = \mathrm{relu}(\hat A X W_0 + b_0),\qquad Z = \hat A H W_1 + b_1

(Kipf & Welling Eq. 8/9, with biases), softmax and mean cross-entropy over the training
nodes, plus ``weight_decay`` :math:`\cdot\lVert W_0\rVert^2/2` on the first layer as in
their experiments.  :math:`\hat A` is a scipy CSR matrix: every propagation is one
sparse product, O(|E| d).  Full-batch Adam (their lr 0.01), early stopping on the
validation loss (their window of 10 epochs).  Dropout is left out (a documented choice:
the comparison is deterministic for a seed, and Kipf & Welling's dropout 0.5 regularizes
their sparse bag-of-words inputs, which the hashed Facebook features are not).
The paper names its GNN only "Modern Structure GNN"; the GCN is the standard one.
"""
from __future__ import annotations

import types
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ..loop import EarlyStopping, EarlyStoppingAttributes, run_epochs
from ..optim import Optimizer

__all__ = ["normalized_adjacency", "GCN", "gcn_forward", "gcn_loss_and_grad", "gcn_predict",
           "GCNTrainer"]


def normalized_adjacency(A):
    r"""Renormalized adjacency :math:`\tilde D^{-1/2}(A + I)\tilde D^{-1/2}` as CSR
    (Kipf & Welling's renormalization trick; the GCN of Appendix G.2).

    Parameters
    ----------
    A : (n, n) sparse or dense, symmetric, non-negative, no self-loops
    """
    A = sp.csr_matrix(A, dtype=np.float64)
    n = A.shape[0]
    if A.shape != (n, n):
        raise ValueError(f"A: expected a square matrix, got shape {A.shape}")
    if (A != A.T).nnz:
        raise ValueError("A: expected a symmetric adjacency (an undirected graph)")
    if A.nnz and A.data.min() < 0:
        raise ValueError("A: expected non-negative edge weights")
    At = A + sp.identity(n, format="csr")
    d = np.asarray(At.sum(axis=1)).ravel()
    s = sp.diags(1.0 / np.sqrt(d))
    return (s @ At @ s).tocsr()


@dataclass
class GCN:
    """Parameters ``W0`` (d, h), ``b0`` (h,), ``W1`` (h, C), ``b1`` (C,) of the two-layer
    GCN of Appendix G.2's comparison (module docstring)."""

    W0: np.ndarray
    b0: np.ndarray
    W1: np.ndarray
    b1: np.ndarray

    @classmethod
    def random(cls, n_in, hidden, n_out, seed=0):
        """Glorot-uniform weights, zero biases (Kipf & Welling's initialization)."""
        rng = np.random.default_rng(seed)
        r0, r1 = np.sqrt(6.0 / (n_in + hidden)), np.sqrt(6.0 / (hidden + n_out))
        return cls(rng.uniform(-r0, r0, (n_in, hidden)), np.zeros(hidden),
                   rng.uniform(-r1, r1, (hidden, n_out)), np.zeros(n_out))

    def params(self) -> dict:
        return {"W0": self.W0, "b0": self.b0, "W1": self.W1, "b1": self.b1}

    def copy(self) -> "GCN":
        return GCN(self.W0.copy(), self.b0.copy(), self.W1.copy(), self.b1.copy())


def gcn_forward(net: GCN, A_hat, X, AX=None):
    r"""Logits :math:`Z = \hat A\,\mathrm{relu}(\hat A X W_0 + b_0) W_1 + b_1` of every
    node (Kipf & Welling Eq. 9; Appendix G.2's GNN).

    ``AX`` = :math:`\hat A X` may be passed precomputed (it does not change in training).

    Returns
    -------
    Z : ndarray (n, C)
    cache : dict (``AX``, pre-activation ``P``, ``H``, ``AH``)
    """
    AX = A_hat @ X if AX is None else AX
    P = AX @ net.W0 + net.b0
    H = np.maximum(P, 0.0)
    AH = A_hat @ H
    return AH @ net.W1 + net.b1, {"AX": AX, "P": P, "H": H, "AH": AH}


def gcn_loss_and_grad(net: GCN, A_hat, X, y, idx, *, weight_decay=0.0, AX=None):
    r"""Mean cross-entropy over the nodes ``idx`` (+ ``weight_decay``
    :math:`\lVert W_0\rVert^2/2`) and its gradients (Appendix G.2's GNN).

    Reverse mode: :math:`G = \partial L/\partial Z` (zero off ``idx``),
    :math:`\partial L/\partial W_1 = (\hat A H)^T G`,
    :math:`\partial L/\partial H = \hat A^T G W_1^T`,
    :math:`\partial L/\partial W_0 = (\hat A X)^T (\partial L/\partial H \odot [P > 0])`.
    """
    Z, c = gcn_forward(net, A_hat, X, AX)
    idx = np.asarray(idx)
    Zi = Z[idx] - Z[idx].max(axis=1, keepdims=True)
    Pr = np.exp(Zi)
    Pr /= Pr.sum(axis=1, keepdims=True)
    m = idx.size
    yi = np.asarray(y)[idx]
    loss = float(-np.mean(np.log(Pr[np.arange(m), yi] + 1e-300)))
    loss += 0.5 * weight_decay * float(np.sum(net.W0 ** 2))
    G = np.zeros_like(Z)
    Pr[np.arange(m), yi] -= 1.0
    G[idx] = Pr / m
    dH = (A_hat.T @ G) @ net.W1.T
    dP = dH * (c["P"] > 0)
    grads = {"W0": c["AX"].T @ dP + weight_decay * net.W0, "b0": dP.sum(axis=0),
             "W1": c["AH"].T @ G, "b1": G.sum(axis=0)}
    return loss, grads


def gcn_predict(net: GCN, A_hat, X, AX=None):
    """Argmax of the logits of every node (Appendix G.2's GNN)."""
    return np.argmax(gcn_forward(net, A_hat, X, AX)[0], axis=1)


class GCNTrainer(EarlyStoppingAttributes):
    """Full-batch training of the GCN (Kipf & Welling's protocol; Appendix G.2's GNN), a
    learner of :func:`refimpl.loop.run_epochs` whose rows are the training nodes and
    whose one batch per epoch is all of them.

    Parameters
    ----------
    hidden : int
        Hidden width (theirs: 16).
    epochs, lr, weight_decay, patience, seed
        Their 200, 0.01, 5e-4, 10; the seed initializes the weights (and seeds the
        loop's node order, which a full batch does not depend on).
    """

    def __init__(self, n_in, n_out, *, hidden=16, epochs=200, lr=0.01, weight_decay=5e-4,
                 patience=10, seed=0):
        self.net = GCN.random(int(n_in), int(hidden), int(n_out), seed=seed)
        self.rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
        self.weight_decay = float(weight_decay)
        self.config = types.SimpleNamespace(optimizer="adam", lr=float(lr), momentum=0.0,
                                            patience=patience, epochs=int(epochs))
        self.epoch = 0
        self.history: list[dict] = []
        self.stopping = EarlyStopping(self.config.patience)

    def fit(self, A, X, y, idx_train, idx_val=None):
        """Train on the labels of ``idx_train`` (every node's features and edges are
        used, as in the transductive setting of Kipf & Welling) for ``epochs`` epochs of
        :func:`refimpl.loop.run_epochs`, one full batch each; returns self."""
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        if X.ndim != 2 or X.shape[0] != A.shape[0] or y.shape != (X.shape[0],):
            raise ValueError(f"X, y: expected shapes ({A.shape[0]}, d) and ({A.shape[0]},), "
                             f"got {X.shape} and {y.shape}")
        self.A_hat = normalized_adjacency(A)
        self._X, self._y, self._AX = X, y, self.A_hat @ X
        self._idx_val = idx_val
        self.opt = Optimizer.from_config(self.config,
                                         {k: v.shape for k, v in self.net.params().items()})
        nodes = np.asarray(idx_train)
        run_epochs(self, nodes, y[nodes], self.config.epochs, batch_size=max(nodes.size, 1))
        if self.best is not None:
            self.net = self.best
        return self

    def begin_epoch(self):
        """Nothing to prepare (:func:`refimpl.loop.run_epochs`)."""

    def train_batch(self, nodes, labels):
        """One Adam step on the mean cross-entropy over ``nodes`` (every training node;
        ``labels`` = their labels, read by the loss from the full label vector)."""
        self._loss, g = gcn_loss_and_grad(self.net, self.A_hat, self._X, self._y, nodes,
                                          weight_decay=self.weight_decay, AX=self._AX)
        self.opt.step(self.net.params(), g)
        return self._loss

    def end_epoch(self, t0):
        """The epoch's record and its score, the validation loss (Kipf & Welling's early
        stopping; None without ``idx_val``)."""
        self.epoch += 1
        rec = {"epoch": self.epoch, "loss": self._loss}
        score = None
        if self._idx_val is not None:
            score = rec["val_loss"] = gcn_loss_and_grad(self.net, self.A_hat, self._X,
                                                        self._y, self._idx_val, AX=self._AX)[0]
        self.history.append(rec)
        return rec, score, self.net.copy

    def predict(self, X=None):
        """Labels of every node with the trained (best validation) weights."""
        AX = self._AX if X is None else None
        return gcn_predict(self.net, self.A_hat, X, AX)
