"""The DEQ baseline: Eq. (3) on a dense, unpruned graph, Anderson forward, implicit backward.

Oracles: the residual of the dense equation, central finite differences, and
the NM machinery (:func:`refimpl.forward` / :func:`refimpl.backward`) on the
same network with pruning that keeps every edge (k = p (p - 1)).
"""
import numpy as np
import pytest

from numdiff import central_gradient
from refimpl import ConvergenceError, NMNetwork, loss_and_grad, prune
from refimpl.activations import get_activation
from refimpl.baselines.deq import DEQNetwork, DEQTrainer, deq_forward, deq_loss_and_grad
from refimpl.train import TrainConfig

#: Anderson tolerance of the tests: ||g(x) - x||_inf <= TOL (1 + ||x||_inf).
TOL = 1e-12


def small_deq(seed=0, p=6, n_in=3, n_out=3, scale=0.8, activation="tanh", zero_diag=False):
    net = DEQNetwork.random(n_in, p, n_out, seed=seed, scale=scale, activation=activation,
                            atol=TOL, rtol=TOL)
    rng = np.random.default_rng(seed + 100)
    net.b[:] = 0.3 * rng.standard_normal(p)
    if zero_diag:
        np.fill_diagonal(net.W, 0.0)
    return net, rng.standard_normal((5, n_in)), rng.integers(0, n_out, 5)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_forward_is_a_fixed_point_of_the_dense_equation(activation):
    net, X0, _ = small_deq(1, p=12, activation=activation)
    res = deq_forward(net, X0)
    f = get_activation(activation).f
    R = res.X - (net.b + f(res.X) @ net.W + X0 @ net.W1.T)  # Eq. (3), dense W
    np.testing.assert_allclose(R, 0, atol=10 * TOL * (1 + np.abs(res.X).max()),
                               err_msg="Eq. (3) residual at the DEQ equilibrium")
    np.testing.assert_allclose(res.Z, f(res.X) @ net.Wm.T, rtol=1e-14, atol=1e-14)
    assert np.abs(np.diag(net.W)).min() > 0, "the DEQ's W has self-loops (dense p x p)"


@pytest.mark.parametrize("output", ["softmax", "identity"])
def test_gradients_match_central_differences(output):
    """Implicit backward (Eq. 4-8) vs central differences of the loss; error
    budget: solve tolerance 1e-12 / step 1e-6 ~ 1e-6 relative at most."""
    net, X0, y = small_deq(2)
    net.output = output
    T = y if output == "softmax" else np.random.default_rng(3).standard_normal((5, 3))
    _, grads, _ = deq_loss_and_grad(net, X0, T)
    for name, theta in net.params().items():
        num = central_gradient(lambda: deq_loss_and_grad(net, X0, T)[0], theta)
        np.testing.assert_allclose(grads[name], num, rtol=1e-6, atol=1e-8,
                                   err_msg=f"DEQ implicit backward, d loss / d {name}")


def test_equals_nm_machinery_when_pruning_keeps_every_edge():
    """With diag(W) = 0 the DEQ is the NM network with K = W + diag(b) and k = p (p - 1)."""
    p = 7
    net, X0, y = small_deq(4, p=p, zero_diag=True)
    K = net.W + np.diag(net.b)
    nm = NMNetwork(K, net.W1, net.Wm)
    graph = prune(K, k=p * (p - 1))
    assert graph.n_edges == p * (p - 1)
    loss_nm, g_nm, fwd_nm = loss_and_grad(nm, X0, y, graph, atol=TOL, rtol=TOL)
    loss, g, fwd = deq_loss_and_grad(net, X0, y)
    np.testing.assert_allclose(fwd.X, fwd_nm.X, rtol=1e-10, atol=1e-10, err_msg="Eq. (3)")
    np.testing.assert_allclose(loss, loss_nm, rtol=1e-12, atol=1e-12)
    off = ~np.eye(p, dtype=bool)
    np.testing.assert_allclose(g["W"][off], g_nm.K[off], rtol=1e-8, atol=1e-10,
                               err_msg="Eq. (6), edges")
    np.testing.assert_allclose(g["b"], np.diag(g_nm.K), rtol=1e-8, atol=1e-10,
                               err_msg="Eq. (6), biases")
    np.testing.assert_allclose(g["W1"], g_nm.W1, rtol=1e-8, atol=1e-10, err_msg="Eq. (8)")
    np.testing.assert_allclose(g["Wm"], g_nm.Wm, rtol=1e-8, atol=1e-10, err_msg="Eq. (7)")


def test_trainer_learns_and_is_deterministic():
    rng = np.random.default_rng(0)
    centers = 2.0 * rng.standard_normal((3, 5))
    y = rng.integers(0, 3, 150)
    X = centers[y] + 0.7 * rng.standard_normal((150, 5))
    cfg = TrainConfig(nodes=10, epochs=15, batch_size=16, lr=0.1, patience=None, seed=5)
    a, b = DEQTrainer(cfg, 5, 3), DEQTrainer(cfg, 5, 3)
    ha = a.fit(X[:100], y[:100], X[100:], y[100:])
    b.fit(X[:100], y[:100], X[100:], y[100:])
    np.testing.assert_array_equal(a.net.W, b.net.W)
    assert ha[-1]["loss"] < 0.3 * ha[0]["loss"]
    a.restore_best()
    assert np.mean(a.predict(X[100:]) != y[100:]) == ha[a.best_epoch - 1]["val_error"] < 0.15
    assert ha[0]["edges"] == 10 * 10 + 10 + 10 * 5 + 3 * 10
    assert ha[0]["newton_iterations"] > 0


def test_nonconvergence_raises_and_bad_input():
    net, X0, _ = small_deq(5, p=8, scale=30.0)
    net.max_iter = 3
    with pytest.raises(ConvergenceError, match="DEQ equilibrium"):
        deq_forward(net, X0)
    with pytest.raises(ValueError, match="W"):
        DEQNetwork(np.ones((3, 4)), np.zeros(3), np.ones((3, 2)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="b"):
        DEQNetwork(np.ones((3, 3)), np.zeros(2), np.ones((3, 2)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="X0"):
        deq_forward(small_deq()[0], np.ones((2, 7)))
    with pytest.raises(ValueError, match="reg"):
        DEQTrainer(TrainConfig(nodes=3, reg="nm"), 2, 2)
