"""First-order DARTS (Sec. 4.2's baseline): the mixed operation is the weighted sum of
its candidates, discretization picks the argmax, gradients (weights and alpha) against
central differences, and the search + retraining learns a separable toy task."""
import numpy as np
import pytest

from refimpl.testing import central_gradient
from refimpl.baselines.darts import (OPS, DartsCell, DartsSearch, darts_forward,
                                     darts_loss_and_grad, discretize, mixing_weights)


def _cell(seed=0, n_nodes=2):
    cell = DartsCell.random(3, 2, n_nodes=n_nodes, width=4, seed=seed)
    cell.alpha[:] = np.random.default_rng(seed + 10).standard_normal(cell.alpha.shape)
    return cell


def test_mixed_operation_is_the_weighted_sum_of_candidates():
    cell = _cell()
    X = np.random.default_rng(1).standard_normal((5, 3))
    w = mixing_weights(cell.alpha)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    _, c = darts_forward(cell, X)
    h0 = c["H"][0]
    np.testing.assert_allclose(h0, np.tanh(X @ cell.params["Ws"] + cell.params["bs"]),
                               rtol=1e-15, atol=0)
    # node 1 has one in-edge (e = 0) from h0: candidates written out independently
    p = cell.params
    cands = [np.tanh(h0 @ p["W0_linear_tanh"] + p["b0_linear_tanh"]),
             np.maximum(h0 @ p["W0_linear_relu"] + p["b0_linear_relu"], 0), h0,
             np.zeros_like(h0)]
    assert OPS == ("linear_tanh", "linear_relu", "skip", "zero")
    np.testing.assert_allclose(c["H"][1], sum(w[0, k] * cands[k] for k in range(4)),
                               rtol=1e-13, atol=1e-15)
    # one-hot weights select a single candidate (the discrete cell)
    onehot = np.zeros_like(w)
    onehot[:, 2] = 1.0
    _, c1 = darts_forward(cell, X, onehot)
    np.testing.assert_allclose(c1["H"][1], h0, rtol=0, atol=0)
    np.testing.assert_allclose(c1["H"][2], 2 * h0, rtol=1e-15, atol=0)   # skip + skip


def test_discretization_picks_the_argmax_and_the_strongest_edges():
    cell = DartsCell.random(2, 2, n_nodes=3, width=3, seed=0)
    cell.alpha[:] = 0.0
    # edges: (0,1) | (0,2) (1,2) | (0,3) (1,3) (2,3)
    cell.alpha[0] = [0, 3, 0, 9]      # zero is largest: ignored, linear_relu chosen
    cell.alpha[1] = [2, 0, 0, 0]
    cell.alpha[2] = [0, 0, 1, 0]
    cell.alpha[3] = [0, 0, 5, 0]      # strongest into node 3
    cell.alpha[4] = [0, 0, 0, 0]      # weakest into node 3: dropped
    cell.alpha[5] = [0, 4, 0, 0]
    w = discretize(cell, keep=2)
    assert w.sum(axis=1).tolist() == [1, 1, 1, 1, 0, 1]
    assert [int(np.argmax(r)) for r in w[[0, 1, 2, 3, 5]]] == [1, 0, 2, 2, 1]
    nz = mixing_weights(cell.alpha)[:, :3]
    for e in (0, 1, 2, 3, 5):
        assert w[e, np.argmax(nz[e])] == 1.0


def test_gradients_central_differences():
    cell = _cell(seed=3, n_nodes=3)
    rng = np.random.default_rng(4)
    X = rng.standard_normal((7, 3))
    y = rng.integers(0, 2, 7)
    loss, g = darts_loss_and_grad(cell, X, y)
    f = lambda: darts_loss_and_grad(cell, X, y)[0]  # noqa: E731
    # error budget: h = 1e-6 central differences of a smooth loss ~ 1e-9 absolute
    # (relu kinks: pre-activations are > 1e-4 from 0 for these seeds)
    for k in ("Ws", "bs", "W0_linear_tanh", "W4_linear_relu", "b5_linear_relu", "Wo", "bo"):
        np.testing.assert_allclose(g[k], central_gradient(f, cell.params[k]), rtol=1e-6,
                                   atol=1e-9, err_msg=k)
    np.testing.assert_allclose(g["alpha"], central_gradient(f, cell.alpha), rtol=1e-6,
                               atol=1e-9, err_msg="alpha (softmax of DARTS Eq. 2)")
    w = discretize(cell)
    _, gd = darts_loss_and_grad(cell, X, y, w)
    assert "alpha" not in gd
    fd = lambda: darts_loss_and_grad(cell, X, y, w)[0]  # noqa: E731
    np.testing.assert_allclose(gd["W2_linear_tanh"], central_gradient(fd, cell.params[
        "W2_linear_tanh"]), rtol=1e-6, atol=1e-9)


def test_darts_learns_a_separable_toy_task():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 240)
    X = rng.standard_normal((240, 3)) * 0.5
    X[:, 1] += 2.0 * (2 * y - 1)
    s = DartsSearch(3, 2, n_nodes=2, width=8, search_epochs=3, epochs=15, seed=0)
    s.fit(X[:160], y[:160], X[160:200], y[160:200])
    assert s.weights.sum() >= 1 and set(np.unique(s.weights)) <= {0.0, 1.0}
    assert np.mean(s.predict(X[200:]) != y[200:]) <= 0.05


@pytest.mark.parametrize("kwargs, name", [
    ({"batch_size": 0}, "batch_size"), ({"keep": 0}, "keep"), ({"n_nodes": 0}, "n_nodes"),
    ({"epochs": 0}, "epochs"), ({"search_epochs": -1}, "search_epochs"),
    ({"patience": 0}, "patience")])
def test_darts_search_refuses_bad_settings(kwargs, name):
    """A bad setting is a ValueError naming it (batch_size=0 was range()'s error, keep=0
    silently dropped every edge, n_nodes=0 a ZeroDivisionError)."""
    with pytest.raises(ValueError, match=f"^{name}: expected"):
        DartsSearch(3, 2, **kwargs)
