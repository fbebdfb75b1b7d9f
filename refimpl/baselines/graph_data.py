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

Both graphs are :class:`refimpl.datasets.GraphDataset` (the one graph container, also of
the supplement's Amazon sets): ``g.adjacency``, the node splits ``g.nodes_train``,
``g.nodes_val``, ``g.nodes_test`` and every node's ``g.X``, ``g.y``.  The Facebook nodes
are ordered train, validation, test: ``g.X[g.nodes_train]`` equals
``load_facebook(...).X_train`` row for row.
"""
from __future__ import annotations

import csv
import os
from dataclasses import fields
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..datasets import GraphDataset, load_facebook, stratified_split

__all__ = ["load_facebook_graph", "sbm_graph", "neighbour_mean", "node_dataset"]


def _symmetric(rows, cols, n):
    """0/1 symmetric CSR without self-loops from an edge list."""
    keep = rows != cols
    A = sp.coo_matrix((np.ones(int(keep.sum())), (rows[keep], cols[keep])), shape=(n, n))
    A = (A + A.T).tocsr()
    A.data[:] = 1.0
    A.eliminate_zeros()
    return A


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
    sizes = np.cumsum([0, data.y_train.size, data.y_val.size, data.y_test.size])
    nodes = [np.arange(sizes[k], sizes[k + 1]) for k in range(3)]
    return GraphDataset(**{f.name: getattr(data, f.name) for f in fields(data)},
                        adjacency=_symmetric(ends[0::2], ends[1::2], n), nodes_train=nodes[0],
                        nodes_val=nodes[1], nodes_test=nodes[2])


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
    return GraphDataset.from_nodes(X, y.astype(np.int64), _symmetric(rows, cols, int(n_nodes)),
                                   parts, classes=np.arange(n_classes), name="sbm")


def neighbour_mean(A, X):
    r"""Aggregated neighbour features :math:`D^{-1} A X` (the mean over a node's
    neighbours, 0 for an isolated node): the NMs' graph input of Fig. 8 (Appendix G.2)."""
    A = sp.csr_matrix(A)
    deg = np.asarray(A.sum(axis=1)).ravel()
    inv = np.divide(1.0, deg, out=np.zeros_like(deg), where=deg > 0)
    return inv[:, None] * (A @ X)


def node_dataset(g: GraphDataset, X=None) -> GraphDataset:
    """The nodes of ``g`` with features ``X`` (default ``g.X``; e.g.
    ``[g.X, neighbour_mean(g.adjacency, g.X)]``), standardized with the training nodes'
    statistics: the NMs' input of Fig. 8 (Appendix G.2), a
    :class:`refimpl.datasets.Dataset` (a ``GraphDataset``: the same graph and split)."""
    X = g.X if X is None else np.asarray(X, dtype=np.float64)
    return GraphDataset.from_nodes(X, g.classes[g.y], g.adjacency,
                                   (g.nodes_train, g.nodes_val, g.nodes_test),
                                   classes=g.classes, name=g.name)
