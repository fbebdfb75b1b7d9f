r"""Node-classification graphs for the GCN comparison (the paper's Appendix G.2, Fig. 8).

- :func:`load_facebook_graph`: the Facebook Large Page-Page network (MUSAE) from a local
  copy in its published format.  Features, labels and the train / validation / test split
  come from :func:`refimpl.datasets.load_facebook` (same seed, same split, features
  standardized with the training statistics); this module adds the edge list as a sparse
  adjacency over the same nodes.
- :func:`sbm_graph`: a seeded stochastic block model with noisy class-mean features, the
  stand-in when the Facebook copy is absent (a homophilous graph like Facebook's, whose
  neighbours carry information that a node's own features lack).
- :func:`node_dataset`, :func:`neighbour_mean`: the inputs of the NMs on node features
  alone and on features plus aggregated neighbour features.

Nodes are ordered train, validation, test: ``X[g.idx_train]`` equals
``load_facebook(...).X_train`` row for row.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..datasets import Dataset, load_facebook, stratified_split

__all__ = ["GraphDataset", "load_facebook_graph", "sbm_graph", "neighbour_mean",
           "node_dataset"]


@dataclass(frozen=True, eq=False)
class GraphDataset:
    """A node-classification graph (Appendix G.2's task).

    Attributes
    ----------
    X : ndarray (n, d)
        Node features, standardized with the training nodes' statistics.
    y : ndarray of int64 (n,)
    A : scipy.sparse.csr_matrix (n, n)
        Symmetric 0/1 adjacency without self-loops.
    idx_train, idx_val, idx_test : ndarray of int64
    classes : ndarray
    name : str
    """

    X: np.ndarray
    y: np.ndarray
    A: sp.csr_matrix
    idx_train: np.ndarray
    idx_val: np.ndarray
    idx_test: np.ndarray
    classes: np.ndarray
    name: str = "graph"

    @property
    def n_classes(self) -> int:
        return int(len(self.classes))


def _symmetric(rows, cols, n):
    """0/1 symmetric CSR without self-loops from an edge list."""
    keep = rows != cols
    A = sp.coo_matrix((np.ones(int(keep.sum())), (rows[keep], cols[keep])), shape=(n, n))
    A = (A + A.T).tocsr()
    A.data[:] = 1.0
    A.eliminate_zeros()
    return A


def _standardize(X, idx_train):
    mu = X[idx_train].mean(axis=0)
    sd = X[idx_train].std(axis=0)
    sd[sd == 0] = 1.0
    return (X - mu) / sd


def load_facebook_graph(path=None, *, n_features=128, seed=0, val_size=0.15,
                        test_size=0.15) -> GraphDataset:
    """The Facebook page-page graph for Appendix G.2 (Fig. 8), from a local copy.

    Parameters
    ----------
    path : str or Path, optional
        The folder with ``musae_facebook_edges.csv``, ``musae_facebook_target.csv`` and
        ``musae_facebook_features.json``; default ``$REFIMPL_FACEBOOK``, then
        ``$REFIMPL_DATA/facebook/`` (as :func:`refimpl.datasets.load_facebook`).
    n_features : int or None
        Hashed multi-hot dimension (see ``load_facebook``); 128 keeps the dense feature
        matrix of the 22 470 pages small.  The log-degree column is not added: the GCN
        sees the degree through the graph, and the NMs get it from the aggregated features.
    seed, val_size, test_size
        The split, as ``load_facebook``.
    """
    data = load_facebook(path, n_features=n_features, degree=False, seed=seed,
                         val_size=val_size, test_size=test_size)
    if path is not None:
        where = Path(path)
    elif os.environ.get("REFIMPL_FACEBOOK"):
        where = Path(os.environ["REFIMPL_FACEBOOK"])
    else:
        where = Path(os.environ["REFIMPL_DATA"]) / "facebook"
    ids, labels = [], []
    with open(where / "musae_facebook_target.csv", newline="", encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            ids.append(int(rec["id"]))
            labels.append(rec["page_type"].strip())
    # the split load_facebook made (same labels, same seed): file row of every node
    parts = stratified_split(np.array(labels), seed=seed, val_size=val_size,
                             test_size=test_size)
    order = np.concatenate(parts)
    node_of_row = np.empty(order.size, dtype=np.int64)
    node_of_row[order] = np.arange(order.size)
    node_of_id = {i: int(node_of_row[r]) for r, i in enumerate(ids)}
    edges = np.loadtxt(where / "musae_facebook_edges.csv", delimiter=",", skiprows=1,
                       dtype=np.int64, ndmin=2).reshape(-1, 2)
    try:
        ends = np.array([node_of_id[int(v)] for v in edges.reshape(-1)], dtype=np.int64)
    except KeyError as exc:
        raise ValueError(f"musae_facebook_edges.csv: edge end {exc} is not a page id") from exc
    n = order.size
    X = np.vstack([data.X_train, data.X_val, data.X_test])
    y = np.concatenate([data.y_train, data.y_val, data.y_test])
    sizes = np.cumsum([0, data.y_train.size, data.y_val.size, data.y_test.size])
    idx = [np.arange(sizes[k], sizes[k + 1]) for k in range(3)]
    return GraphDataset(X, y, _symmetric(ends[0::2], ends[1::2], n), *idx,
                        classes=data.classes, name="facebook")


def sbm_graph(n_nodes=400, n_classes=4, n_features=16, *, p_in=0.03, p_out=0.003,
              signal=0.4, seed=0, val_size=0.15, test_size=0.15) -> GraphDataset:
    r"""Seeded stochastic block model with noisy class-mean features (Fig. 8's stand-in
    for the Facebook graph of Appendix G.2).

    Node i has class :math:`y_i` (balanced), an edge to node j with probability
    ``p_in`` when :math:`y_i = y_j` and ``p_out`` otherwise, and features
    :math:`x_i = \mathrm{signal}\cdot\mu_{y_i} + \varepsilon_i`, :math:`\mu_c,
    \varepsilon_i \sim N(0, I)`: a node's own features separate the classes poorly, the
    mean over its (mostly same-class) neighbours well.
    """
    rng = np.random.default_rng(seed)
    y = np.arange(int(n_nodes)) % int(n_classes)
    rng.shuffle(y)
    mu = rng.standard_normal((n_classes, n_features))
    X = signal * mu[y] + rng.standard_normal((n_nodes, n_features))
    same = y[:, None] == y[None, :]
    upper = np.triu(rng.random((n_nodes, n_nodes)) < np.where(same, p_in, p_out), 1)
    rows, cols = np.nonzero(upper)
    parts = stratified_split(y, seed=seed, val_size=val_size, test_size=test_size)
    return GraphDataset(_standardize(X, parts[0]), y.astype(np.int64),
                        _symmetric(rows, cols, int(n_nodes)), *parts,
                        classes=np.arange(n_classes), name="sbm")


def neighbour_mean(A, X):
    r"""Aggregated neighbour features :math:`D^{-1} A X` (the mean over a node's
    neighbours, 0 for an isolated node): the NMs' graph input of Fig. 8 (Appendix G.2)."""
    A = sp.csr_matrix(A)
    deg = np.asarray(A.sum(axis=1)).ravel()
    inv = np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0)
    return inv[:, None] * (A @ X)


def node_dataset(g: GraphDataset, X=None) -> Dataset:
    """The nodes of ``g`` as a tabular :class:`Dataset` with features ``X`` (default
    ``g.X``; e.g. ``[g.X, neighbour_mean(g.A, g.X)]``), standardized with the training
    nodes' statistics: the NMs' input of Fig. 8 (Appendix G.2)."""
    X = g.X if X is None else np.asarray(X, dtype=np.float64)
    X = _standardize(X, g.idx_train)
    return Dataset(X[g.idx_train], g.y[g.idx_train], X[g.idx_val], g.y[g.idx_val],
                   X[g.idx_test], g.y[g.idx_test], classes=g.classes, name=g.name)
