"""The GCN of Appendix G.2 (Fig. 8): sparse propagation against a dense reference,
gradients against central differences, learning a homophilous toy graph, and the graph
loader on a small synthetic copy in the published Facebook format."""
import csv
import json

import numpy as np
import pytest
import scipy.sparse as sp

from refimpl.testing import central_gradient
from refimpl.baselines.gcn import (GCN, GCNTrainer, gcn_forward, gcn_loss_and_grad,
                                   normalized_adjacency)
from refimpl.baselines.graph_data import (load_facebook_graph, neighbour_mean, node_dataset,
                                          sbm_graph)
from refimpl.datasets import load_facebook

# a small graph: path 0-1-2-3, triangle 3-4-5, isolated node 6
EDGES = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (3, 5)]


def _dense_A(n=7):
    A = np.zeros((n, n))
    for i, j in EDGES:
        A[i, j] = A[j, i] = 1.0
    return A


def test_propagation_equals_dense_reference():
    A = _dense_A()
    At = A + np.eye(7)
    Dm = np.diag(1 / np.sqrt(At.sum(axis=1)))
    ref = Dm @ At @ Dm
    A_hat = normalized_adjacency(sp.csr_matrix(A))
    assert sp.issparse(A_hat)
    np.testing.assert_allclose(A_hat.toarray(), ref, rtol=1e-15, atol=0)
    net = GCN.random(3, 5, 2, seed=0)
    X = np.random.default_rng(0).standard_normal((7, 3))
    Z, _ = gcn_forward(net, A_hat, X)
    H = np.maximum(ref @ X @ net.W0 + net.b0, 0)
    np.testing.assert_allclose(Z, ref @ H @ net.W1 + net.b1, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(neighbour_mean(sp.csr_matrix(A), X)[6], 0, atol=0)
    np.testing.assert_allclose(neighbour_mean(sp.csr_matrix(A), X)[3], X[[2, 4, 5]].mean(0),
                               rtol=1e-15, atol=1e-15)
    with pytest.raises(ValueError, match="symmetric"):
        normalized_adjacency(sp.csr_matrix(np.triu(A)))


def test_gcn_gradients_central_differences():
    A_hat = normalized_adjacency(sp.csr_matrix(_dense_A()))
    net = GCN.random(3, 4, 3, seed=1)
    net.b0[:] = 0.1
    rng = np.random.default_rng(2)
    X = rng.standard_normal((7, 3))
    y = rng.integers(0, 3, 7)
    idx = np.array([0, 2, 3, 5])
    _, g = gcn_loss_and_grad(net, A_hat, X, y, idx, weight_decay=0.01)
    f = lambda: gcn_loss_and_grad(net, A_hat, X, y, idx, weight_decay=0.01)[0]  # noqa: E731
    # error budget: h = 1e-6 central differences of a smooth loss, |L| ~ 1: ~1e-9
    for k, v in net.params().items():
        np.testing.assert_allclose(g[k], central_gradient(f, v), rtol=1e-6, atol=1e-9,
                                   err_msg=k)


def test_gcn_learns_a_homophilous_toy_graph():
    g = sbm_graph(n_nodes=200, n_classes=2, n_features=4, p_in=0.08, p_out=0.004,
                  signal=0.3, seed=0)
    tr = GCNTrainer(4, 2, hidden=8, epochs=100, seed=0).fit(g.adjacency, g.X, g.y,
                                                             g.nodes_train, g.nodes_val)
    err = np.mean(tr.predict()[g.nodes_test] != g.y[g.nodes_test])
    assert err <= 0.1
    assert tr.history[0]["loss"] > tr.history[tr.best_epoch - 1]["loss"]
    # the neighbour mean carries the class: its own features barely do
    d = node_dataset(g, np.hstack([g.X, neighbour_mean(g.adjacency, g.X)]))
    assert d.n_features == 8
    np.testing.assert_allclose(d.X_train.mean(axis=0), 0, atol=1e-12)


def _write_facebook(folder, n=40, seed=0):
    rng = np.random.default_rng(seed)
    types = np.array(["company", "government", "politician", "tvshow"])
    y = rng.integers(0, 4, n)
    ids = rng.permutation(n) + 100            # ids are not row numbers
    with open(folder / "musae_facebook_target.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "facebook_id", "page_name", "page_type"])
        for i, c in zip(ids, y):
            w.writerow([i, 1000 + i, f"page {i}", types[c]])
    feats = {str(i): sorted(rng.choice(20, 3, replace=False).tolist()) for i in ids}
    (folder / "musae_facebook_features.json").write_text(json.dumps(feats))
    edges = set()
    while len(edges) < 60:
        a, b = rng.choice(n, 2, replace=False)
        edges.add((int(ids[min(a, b)]), int(ids[max(a, b)])))
    with open(folder / "musae_facebook_edges.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id_1", "id_2"])
        w.writerows(sorted(edges))
    return ids, edges


def test_facebook_graph_loader_on_published_format(tmp_path):
    ids, edges = _write_facebook(tmp_path)
    g = load_facebook_graph(tmp_path, n_features=8, seed=1)
    d = load_facebook(tmp_path, n_features=8, degree=False, seed=1)
    np.testing.assert_array_equal(g.X[g.nodes_train], d.X_train)
    np.testing.assert_array_equal(g.y[g.nodes_test], d.y_test)
    assert g.adjacency.shape == (40, 40) and g.adjacency.nnz == 2 * len(edges)
    assert (g.adjacency != g.adjacency.T).nnz == 0
    # every edge of the file joins the nodes whose feature rows are those pages' rows
    d_all = load_facebook(tmp_path, n_features=8, degree=True, seed=1, standardize=False)
    deg_loader = np.expm1(np.concatenate([d_all.X_train, d_all.X_val, d_all.X_test])[:, -1])
    np.testing.assert_allclose(np.asarray(g.adjacency.sum(axis=1)).ravel(), deg_loader,
                               rtol=1e-12, atol=1e-12)
