r"""Feature selection by SAGP out-degree (supplement Sec. 4.3-4.4, Table 8).

Once SAGP's assembly has settled, the out-degree of each input neuron (the number of
its surviving synapses, :func:`refimpl.sagp.input_out_degree`) ranks the features; the
top 5 %, 10 % and 20 % are kept and a backbone model is trained on them alone.  Table 8
compares that ranking with feature-selection methods; here the comparison methods are
importance scores of scikit-learn (the ``data`` extra):

- ``"l1"``: L1-regularized multinomial logistic regression, score
  :math:`\sum_c |w_{cj}|` (a lasso-type selector, as the supplement's LassoNet);
- ``"mutual_info"``: mutual information between each feature and the label
  (``mutual_info_classif``, a filter method);
- ``"trees"``: impurity importances of a random forest (a tree-ensemble ranking, as the
  supplement's XGBoost).

Documented choices (the supplement is silent or uses what this project does not have):
the backbone is Table 8's GCN (:mod:`refimpl.baselines.gcn`, Kipf & Welling's two layers,
full batch, early stopping on the validation nodes) on the data sets with a graph, and the
project's MLP (:class:`refimpl.baselines.mlp.MLPTrainer`, one hidden layer, early stopping
on the validation split) on the others; Table 8's GAT is not implemented; ties of
the out-degree (an integer: after short runs most inputs keep all their synapses) are
broken by the summed magnitude of the surviving synapse weights, remaining ties by the
feature index; the
number kept is :math:`\lceil r d \rceil` (at least one).  F1-micro of a single-label
multi-class prediction equals its accuracy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["METHODS", "FeatureSelectionRow", "feature_scores", "feature_selection_table",
           "markdown_table", "select_top"]

#: Ranking methods: SAGP's out-degree and the scikit-learn baselines.
METHODS = ("sagp", "l1", "mutual_info", "trees")


def select_top(scores, ratio) -> np.ndarray:
    r"""Indices of the top ``ceil(ratio * d)`` features by score (supplement Sec. 4.4).

    Implements the selection of Table 8: "select the top 5 %, 10 % and 20 % of features
    by out-degree".  Order: decreasing score, ties by increasing index.

    Parameters
    ----------
    scores : (d,) array
        Finite importance scores (higher is more important).
    ratio : float in (0, 1]

    Returns
    -------
    (k,) int64 ndarray
        The selected indices in that order, :math:`k = \max(1, \lceil r d \rceil)`.

    Raises
    ------
    ValueError
        On a non-finite score or a ratio outside (0, 1].
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or s.size == 0 or not np.all(np.isfinite(s)):
        raise ValueError(f"scores: expected a non-empty finite 1-D array, got shape {s.shape}")
    if not 0.0 < float(ratio) <= 1.0:
        raise ValueError(f"ratio: expected a fraction in (0, 1], got {ratio}")
    k = max(1, math.ceil(float(ratio) * s.size - 1e-9))
    order = np.lexsort((np.arange(s.size), -s))         # by -score, then by index
    return order[:k].astype(np.int64)


def feature_scores(method, data, *, seed=0, sagp_config=None, sagp_epochs=100):
    """Importance score of every input feature by one method (supplement Sec. 4.4, Table 8).

    Parameters
    ----------
    method : {"sagp", "l1", "mutual_info", "trees"}
        See the module docstring; ``"sagp"`` trains :func:`refimpl.sagp.train_sagp` on
        the training split (validation split for the best epoch) and returns the
        out-degree of each input neuron of the final assembled network plus, to break
        its many ties, the summed magnitude of the input's surviving synapse weights
        scaled into [0, 1/2] (so the integer part is the out-degree and the order by
        out-degree is kept).
    data : refimpl.datasets.Dataset
    seed : int
    sagp_config : refimpl.sagp.SAGPConfig, optional
    sagp_epochs : int

    Returns
    -------
    (d,) float64 ndarray

    Raises
    ------
    ValueError
        Unknown ``method``.
    ImportError
        The scikit-learn methods without the ``data`` extra.
    """
    X, y = data.X_train, data.y_train
    if method == "sagp":
        from .sagp import assembled_graph, input_out_degree, train_sagp

        val = (data.X_val, data.y_val) if len(data.y_val) else None
        res = train_sagp(X, y, config=sagp_config, epochs=sagp_epochs, seed=seed,
                         n_classes=data.n_classes, validation=val)
        deg = input_out_degree(res.model).astype(np.float64)
        A_eff, _ = assembled_graph(res.model)
        n_in = res.model.layout.n_in
        w = np.abs(A_eff[:n_in] - res.model.layout.fixed[:n_in]).sum(axis=1)
        return deg + w / (2.0 * w.max()) if w.max() > 0 else deg  # ties: by weight, < 1/2
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    try:
        import sklearn  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError('the baselines need scikit-learn: install the "data" extra') from exc
    if method == "l1":
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        version = tuple(int(p) for p in sklearn.__version__.split(".")[:2])
        l1 = {"l1_ratio": 1.0} if version >= (1, 8) else {"penalty": "l1"}  # 1.8 renamed it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = LogisticRegression(solver="saga", C=0.1, max_iter=500, random_state=seed,
                                     **l1).fit(X, y)
        return np.abs(clf.coef_).sum(axis=0)
    if method == "mutual_info":
        from sklearn.feature_selection import mutual_info_classif

        return mutual_info_classif(X, y, random_state=seed)
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=100, random_state=seed).fit(X, y) \
        .feature_importances_


def _backbone_f1(data, cols, *, seed, epochs, nodes, backbone="auto"):
    """F1-micro on the test split of the backbone trained on the columns ``cols``: the
    GCN of :mod:`refimpl.baselines.gcn` on a data set with a graph (``adjacency``, the
    Amazon ones; Table 8's GCN row), the MLP otherwise."""
    if backbone not in ("auto", "mlp", "gcn"):
        raise ValueError(f"backbone: expected 'auto', 'mlp' or 'gcn', got {backbone!r}")
    graph = getattr(data, "adjacency", None)
    if backbone == "gcn" and graph is None:
        raise ValueError("backbone: 'gcn' needs a data set with a graph (adjacency)")
    if graph is not None and backbone != "mlp":
        from .baselines.gcn import GCNTrainer

        X, y = data.X[:, cols], data.y       # every node, in node order (GraphDataset)
        tr = GCNTrainer(len(cols), data.n_classes, hidden=nodes, epochs=epochs, seed=seed)
        tr.fit(graph, X, y, data.nodes_train, data.nodes_val if len(data.nodes_val) else None)
        return float(np.mean(tr.predict()[data.nodes_test] == y[data.nodes_test]))
    from .baselines.mlp import MLPTrainer
    from .train import TrainConfig

    cfg = TrainConfig(nodes=nodes, epochs=epochs, lr=0.05, seed=seed)
    tr = MLPTrainer(cfg, len(cols), data.n_classes)
    has_val = len(data.y_val) > 0
    tr.fit(data.X_train[:, cols], data.y_train,
           data.X_val[:, cols] if has_val else None, data.y_val if has_val else None)
    tr.restore_best()
    pred = tr.predict(data.X_test[:, cols])
    return float(np.mean(pred == data.y_test))          # F1-micro = accuracy (single label)


@dataclass
class FeatureSelectionRow:
    """One cell of Table 8: a method at a ratio, F1-micro over seeds (supplement Table 8)."""

    method: str
    ratio: float
    n_features: int
    f1_micro: list = field(default_factory=list)

    @property
    def mean(self) -> float:
        return float(np.mean(self.f1_micro))

    @property
    def std(self) -> float:
        return float(np.std(self.f1_micro))


def feature_selection_table(data, *, ratios=(0.05, 0.1, 0.2), methods=METHODS,
                            seeds=range(20), sagp_config=None, sagp_epochs=100, backbone="auto",
                            backbone_epochs=50, backbone_nodes=64, progress=None) -> list:
    """Run the feature-selection comparison of the supplement's Table 8 (Sec. 4.4).

    For every seed and method: score the features on the training split
    (:func:`feature_scores`), keep the top ``ratio`` of them (:func:`select_top`), train
    the backbone on those columns and record its test F1-micro.

    Parameters
    ----------
    data : refimpl.datasets.Dataset
    ratios : sequence of float
        Table 8: 5 %, 10 %, 20 %.
    methods : sequence of str
        Any of :data:`METHODS`.
    seeds : iterable of int
        Default the supplement's protocol: 20 seeds (its Sec. 3.3).
    sagp_config, sagp_epochs
        For the ``"sagp"`` scores.
    backbone : {"auto", "mlp", "gcn"}
        "auto": the GCN on a data set with a graph (Amazon Photo / Computers, as Table 8),
        the MLP otherwise.
    backbone_epochs, backbone_nodes : int
        Epochs and hidden width of the backbone.
    progress : callable, optional
        Called with a one-line message after each trained backbone.

    Returns
    -------
    list of FeatureSelectionRow
        Method-major, then ratio.
    """
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"methods: expected names from {METHODS}, got {m!r}")
    rows = {(m, r): FeatureSelectionRow(m, float(r), len(select_top(np.zeros(data.n_features), r)))
            for m in methods for r in ratios}
    for seed in seeds:
        for m in methods:
            scores = feature_scores(m, data, seed=seed, sagp_config=sagp_config,
                                    sagp_epochs=sagp_epochs)
            for r in ratios:
                cols = select_top(scores, r)
                f1 = _backbone_f1(data, cols, seed=seed, epochs=backbone_epochs,
                                  nodes=backbone_nodes, backbone=backbone)
                rows[(m, r)].f1_micro.append(f1)
                if progress is not None:
                    progress(f"seed {seed} {m} {r:.0%}: F1-micro {f1:.4f}")
    return list(rows.values())


def markdown_table(rows, *, title=None) -> str:
    """Table 8 layout: one row per ratio, one column per method, mean +- std F1-micro
    (supplement Table 8)."""
    methods = list(dict.fromkeys(r.method for r in rows))
    ratios = list(dict.fromkeys(r.ratio for r in rows))
    cell = {(r.method, r.ratio): r for r in rows}
    names = {"sagp": "SAGP (out-degree)", "l1": "L1 logistic", "mutual_info": "mutual info",
             "trees": "random forest"}
    lines = [] if title is None else [title, ""]
    lines.append("| ratio | #features | " + " | ".join(names.get(m, m) for m in methods) + " |")
    lines.append("|---|---|" + "---|" * len(methods))
    for r in ratios:
        k = cell[(methods[0], r)].n_features
        vals = [f"{cell[(m, r)].mean:.4f} ± {cell[(m, r)].std:.4f}" for m in methods]
        lines.append(f"| {r:.0%} | {k} | " + " | ".join(vals) + " |")
    return "\n".join(lines)
