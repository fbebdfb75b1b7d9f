"""Table 8 feature selection (supplement Sec. 4.4): the top-k rule on hand examples, the
scikit-learn baselines on a problem whose informative features are known, and a tiny
run of the whole comparison."""
from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from refimpl import feature_selection as FS
from refimpl.datasets import split_standardize

pytest.importorskip("sklearn", reason="the baselines need the 'data' extra")


def test_select_top_hand_examples():
    s = [1.0, 3.0, 3.0, 0.0, 2.0]
    assert_array_equal(FS.select_top(s, 0.4), [1, 2])          # ceil(2.0): ties by index
    assert_array_equal(FS.select_top(s, 0.5), [1, 2, 4])       # ceil(2.5) = 3
    assert_array_equal(FS.select_top(s, 0.01), [1])            # at least one
    assert_array_equal(FS.select_top(s, 1.0), [1, 2, 4, 0, 3])
    assert_array_equal(FS.select_top(np.ones(20), 0.05), [0])  # 5 % of 20 is exactly 1
    with pytest.raises(ValueError, match="ratio"):
        FS.select_top(s, 0.0)
    with pytest.raises(ValueError, match="scores"):
        FS.select_top([1.0, np.nan], 0.5)


def _two_informative(n=400, d=10, seed=0):
    """Labels depend on features 0 and 1 only (3 classes); the other 8 are noise."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.argmax(np.column_stack([X[:, 0], X[:, 1], -X[:, 0] - X[:, 1]]), axis=1)
    return split_standardize(X, y, seed=seed)


@pytest.mark.parametrize("method", ["l1", "mutual_info", "trees"])
def test_baselines_rank_the_informative_features_first(method):
    data = _two_informative()
    top = FS.select_top(FS.feature_scores(method, data, seed=0), 0.2)
    assert set(top.tolist()) == {0, 1}, f"{method} ranked {top} first"


def test_tiny_table8_run():
    from refimpl.sagp import SAGPConfig

    data = _two_informative(n=120)
    cfg = SAGPConfig(h_max=3, patience=1)
    rows = FS.feature_selection_table(data, ratios=(0.1, 0.5), seeds=(0, 1),
                                      sagp_config=cfg, sagp_epochs=2, backbone_epochs=2,
                                      backbone_nodes=4)
    assert [(r.method, r.ratio, r.n_features) for r in rows] == [
        (m, r, k) for m in FS.METHODS for r, k in ((0.1, 1), (0.5, 5))]
    for r in rows:
        assert len(r.f1_micro) == 2 and all(0.0 <= f <= 1.0 for f in r.f1_micro)
    scores = FS.feature_scores("sagp", data, seed=0, sagp_config=cfg, sagp_epochs=2)
    from refimpl.sagp import input_out_degree, train_sagp

    res = train_sagp(data.X_train, data.y_train, config=cfg, epochs=2, seed=0,
                     n_classes=data.n_classes, validation=(data.X_val, data.y_val))
    deg = input_out_degree(res.model)
    assert scores.shape == (10,) and deg.max() <= cfg.h_max + data.n_classes
    assert_array_equal(np.floor(scores), deg, err_msg="integer part: the out-degree")
    assert np.all(scores - deg <= 0.5), "the tie-break never overturns the out-degree order"
    md = FS.markdown_table(rows)
    assert md.count("\n") == 3 and "| 50% | 5 |" in md and "SAGP (out-degree)" in md
    with pytest.raises(ValueError, match="methods"):
        FS.feature_selection_table(data, methods=("xgboost",))


def _two_cliques(f, n=40, d=8, seed=0):
    """Two classes, each a clique of the co-purchase graph; node features are noise, so
    only a backbone that uses the graph can classify."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n)
    attr = sp.csr_matrix((rng.random((2 * n, d)) < 0.5).astype(np.float64))
    adj = sp.csr_matrix(np.kron(np.eye(2), np.ones((n, n))) - np.eye(2 * n))
    np.savez(f, attr_data=attr.data, attr_indices=attr.indices, attr_indptr=attr.indptr,
             attr_shape=np.array(attr.shape), adj_data=adj.data, adj_indices=adj.indices,
             adj_indptr=adj.indptr, adj_shape=np.array(adj.shape), labels=y)


def test_graph_data_sets_use_the_gcn_backbone(tmp_path):
    from refimpl.datasets import load_amazon_photo

    _two_cliques(tmp_path / "amazon_electronics_photo.npz")
    data = load_amazon_photo(tmp_path, n_train=5, n_val=5)
    cols = np.arange(data.n_features)
    gcn = FS._backbone_f1(data, cols, seed=0, epochs=100, nodes=8)
    mlp = FS._backbone_f1(data, cols, seed=0, epochs=100, nodes=8, backbone="mlp")
    assert gcn >= 0.95, f"the GCN sees the cliques: F1-micro {gcn}"
    assert mlp <= 0.8, f"the MLP sees only noise features: F1-micro {mlp}"
    rows = FS.feature_selection_table(data, ratios=(0.5,), methods=("mutual_info",),
                                      backbone_epochs=100, backbone_nodes=8)
    assert rows[0].n_features == 4 and rows[0].f1_micro[0] >= 0.95
    with pytest.raises(ValueError, match="gcn"):
        FS._backbone_f1(_two_informative(), [0], seed=0, epochs=1, nodes=2, backbone="gcn")
