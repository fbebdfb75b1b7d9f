"""Cyclic Forward-Forward (Sec. 4.2's baseline): goodness and local update on a
hand-solved case, local gradients against central differences, the binary task
construction, and learning a separable toy task."""
import numpy as np
import pytest

from refimpl.testing import central_gradient
from refimpl.baselines.binary import binary_class_split, binary_task
from refimpl.baselines.cff import (CFFTrainer, CyclicFF, cff_embed, cff_graph,
                                   cff_local_grads, cff_propagate, cff_readout_features,
                                   cff_readout_loss_and_grad, ff_goodness, ff_loss,
                                   rms_normalize)
from refimpl.datasets import Dataset


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def test_goodness_and_local_update_hand_solved():
    # one neuron, no in-neighbours, n_in = 1, C = 1, width 2, one step:
    # e = [x, onehot] = [1, 1], rms(e) = 1 -> u = [1, 1]
    W = np.array([[1.0, -1.0], [0.0, -1.0]])    # a = u W = [1, -2] -> h = [1, 0]
    net = CyclicFF([W], [np.zeros(2)], np.zeros((2, 1)), np.zeros(1), np.zeros((1, 1), bool),
                   n_in=1, n_classes=1, width=2, steps=1, theta=1.0)
    U, H = cff_propagate(net, cff_embed(np.array([[1.0]]), [0], 1))
    np.testing.assert_allclose(U[0][0], [[1.0, 1.0]], rtol=1e-7, atol=0)  # eps = 1e-8
    np.testing.assert_allclose(H[0][0], [[1.0, 0.0]], rtol=1e-7, atol=0)
    np.testing.assert_allclose(ff_goodness(H[0][0]), [1.0], rtol=1e-7, atol=0)
    # logit s = G - theta d = -1 for the positive and the (identical) negative row:
    # L = (softplus(1) + softplus(-1)) / 2
    losses, grads = cff_local_grads(net, np.array([[1.0]]), np.array([0]), np.array([0]))
    np.testing.assert_allclose(losses, [(np.log1p(np.e) + np.log1p(1 / np.e)) / 2],
                               rtol=1e-7, atol=0)
    # dL/dG = (-sigmoid(1) + sigmoid(-1)) / 2 per row type; dG/da = 2h = [2, 0];
    # dW = u^T dL/da summed over both rows: column 0 = -tanh(1/2) * u, column 1 = 0
    expect = np.array([[-np.tanh(0.5), 0.0], [-np.tanh(0.5), 0.0]])
    np.testing.assert_allclose(grads["W0"], expect, rtol=1e-7, atol=1e-15)
    np.testing.assert_allclose(grads["b0"], [-np.tanh(0.5), 0.0], rtol=1e-7, atol=1e-15)


def test_ff_loss_derivatives_central_differences():
    rng = np.random.default_rng(0)
    Gp, Gn = rng.uniform(0, 4, 5), rng.uniform(0, 4, 5)
    _, dp, dn = ff_loss(Gp, Gn, 2.0)
    np.testing.assert_allclose(dp, central_gradient(lambda: ff_loss(Gp, Gn, 2.0)[0], Gp),
                               rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(dn, central_gradient(lambda: ff_loss(Gp, Gn, 2.0)[0], Gn),
                               rtol=1e-7, atol=1e-10)


def test_local_gradient_is_the_neurons_own_with_inputs_frozen():
    """dL_i/dW_i by central differences of neuron i's loss, summed over the steps, with
    its inputs u_i^t fixed: the local rule ignores every path through the cycle."""
    rng = np.random.default_rng(1)
    net = CyclicFF.random(3, 2, n_neurons=3, width=4, steps=3, graph="complete", seed=2)
    X = rng.standard_normal((6, 3))
    y = rng.integers(0, 2, 6)
    yn = 1 - y
    losses, grads = cff_local_grads(net, X, y, yn)
    Up, _ = cff_propagate(net, cff_embed(X, y, 2))
    Un, _ = cff_propagate(net, cff_embed(X, yn, 2))
    n, T = net.n_neurons, net.steps
    for i in range(n):
        def Li(i=i):
            tot = 0.0
            for t in range(T):
                hp = np.maximum(Up[t][i] @ net.W[i] + net.b[i], 0)
                hn = np.maximum(Un[t][i] @ net.W[i] + net.b[i], 0)
                tot += ff_loss(ff_goodness(hp), ff_goodness(hn), net.theta * net.width)[0]
            return tot
        assert Li() / T == pytest.approx(losses[i], rel=1e-13)
        # the rule's scaling: 1 / (n T) of the gradient of the summed loss.
        # error budget: relu kinks are far from these seeded inputs; h = 1e-6
        np.testing.assert_allclose(grads[f"W{i}"] * n * T, central_gradient(Li, net.W[i]),
                                   rtol=1e-6, atol=1e-9, err_msg=f"neuron {i} W")
        np.testing.assert_allclose(grads[f"b{i}"] * n * T, central_gradient(Li, net.b[i]),
                                   rtol=1e-6, atol=1e-9, err_msg=f"neuron {i} b")


def test_readout_gradient_central_differences():
    rng = np.random.default_rng(3)
    net = CyclicFF.random(3, 3, n_neurons=2, width=3, seed=0)
    net.R[:] = rng.standard_normal(net.R.shape)
    X = rng.standard_normal((5, 3))
    y = rng.integers(0, 3, 5)
    F = cff_readout_features(net, X)
    np.testing.assert_allclose(np.sqrt(np.mean(F[:, :3] ** 2, axis=1)), 1.0, rtol=1e-6,
                               atol=0)   # rms-normalized outputs (none is all zero here)
    _, g = cff_readout_loss_and_grad(net, F, y)
    f = lambda: cff_readout_loss_and_grad(net, F, y)[0]  # noqa: E731
    np.testing.assert_allclose(g["R"], central_gradient(f, net.R), rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(g["c"], central_gradient(f, net.c), rtol=1e-7, atol=1e-10)


def test_cycle_graph_and_steps_propagate_around_the_cycle():
    G = cff_graph("cycle", 3)
    np.testing.assert_array_equal(G, [[0, 1, 0], [0, 0, 1], [1, 0, 0]])
    net = CyclicFF.random(2, 2, n_neurons=3, width=3, steps=2, seed=0)
    assert net.W[0].shape == (2 + 2 + 3, 3)   # data + label + neuron 2's output
    U, H = cff_propagate(net, cff_embed(np.ones((2, 2)), [0, 1], 2))
    assert np.all(U[0][0][:, 4:] == 0), "step 1: no messages yet (h^0 = 0)"
    assert np.any(H[0][2] != 0)
    np.testing.assert_allclose(U[1][0], rms_normalize(
        np.hstack([cff_embed(np.ones((2, 2)), [0, 1], 2), H[0][2]])), rtol=1e-15, atol=0,
        err_msg="step 2: neuron 0 reads neuron 2's step-1 output")
    with pytest.raises(ValueError, match="graph"):
        cff_graph("star", 3)


def test_cff_learns_a_separable_toy_task():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 240)
    X = rng.standard_normal((240, 2)) * 0.5
    X[:, 0] += 2.0 * (2 * y - 1)                      # margin ~ 4 standard deviations
    tr = CFFTrainer(2, 2, width=8, epochs=15, seed=0).fit(X[:160], y[:160], X[160:200],
                                                           y[160:200])
    tr.restore_best()
    assert np.mean(tr.predict(X[200:]) != y[200:]) <= 0.05
    tr.rule = "goodness"
    assert np.mean(tr.predict(X[200:]) != y[200:]) <= 0.1


def test_binary_task_split_is_seeded_balanced_and_keeps_rows():
    pos = binary_class_split(10, seed=3)
    assert pos.sum() == 5 and np.array_equal(pos, binary_class_split(10, seed=3))
    assert not np.array_equal(pos, binary_class_split(10, seed=4))
    np.testing.assert_array_equal(binary_class_split(2), [False, True])
    assert binary_class_split(3, seed=0).sum() == 2
    rng = np.random.default_rng(0)
    d = Dataset(rng.standard_normal((9, 2)), np.arange(9) % 3, rng.standard_normal((3, 2)),
                np.arange(3), rng.standard_normal((3, 2)), np.arange(3),
                classes=np.array(["a", "b", "c"]), name="toy")
    b = binary_task(d, seed=0)
    pos = binary_class_split(3, seed=0)
    np.testing.assert_array_equal(b.y_train, pos[d.y_train].astype(int))
    assert b.X_train is d.X_train and b.name == "toy-binary"
    assert sorted("|".join(b.classes).split("|")) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="n_classes"):
        binary_class_split(1)


@pytest.mark.parametrize("kwargs, name", [
    ({"batch_size": 0}, "batch_size"), ({"epochs": -1}, "epochs"), ({"patience": 0}, "patience")])
def test_cff_trainer_refuses_bad_settings(kwargs, name):
    """A bad setting is a ValueError naming it (batch_size=0 was range()'s error, epochs=-1
    silently trained nothing)."""
    with pytest.raises(ValueError, match=f"^{name}: expected"):
        CFFTrainer(2, 2, **kwargs)
