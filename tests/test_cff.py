"""Cyclic Forward-Forward (Sec. 4.2's baseline): goodness and local update on a
hand-solved case, local gradients against central differences, the binary task
construction, and learning a separable toy task."""
import numpy as np
import pytest

from numdiff import central_gradient
from refimpl.baselines.binary import binary_class_split, binary_task
from refimpl.baselines.cff import (CFFTrainer, CyclicFF, cff_embed, cff_graph,
                                   cff_local_grads, cff_propagate, ff_goodness, ff_loss)
from refimpl.datasets import Dataset


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def test_goodness_and_local_update_hand_solved():
    # one neuron, no in-neighbours, width 2, input e = [x, onehot] = [1, 0] (n_in=1, C=1)
    W = np.zeros((1 + 1 + 2, 2))
    W[0] = [1.0, -1.0]          # a = [1, -1] -> h = relu(a) = [1, 0]
    net = CyclicFF([W], [np.zeros(2)], np.zeros((1, 1), bool), n_in=1, n_classes=1,
                   width=2, steps=2, theta=1.0, label_scale=0.0)
    U, H = cff_propagate(net, cff_embed(np.array([[1.0]]), [0], 1, 0.0))
    np.testing.assert_allclose(H[0], [[1.0, 0.0]], rtol=0, atol=0)
    G = ff_goodness(H[0])
    np.testing.assert_allclose(G, [0.5], rtol=1e-15, atol=0)     # (1^2 + 0^2) / 2
    # positive and negative rows identical: L = softplus(1 - .5) + softplus(.5 - 1)
    losses, grads = cff_local_grads(net, np.array([[1.0]]), np.array([0]), np.array([0]))
    np.testing.assert_allclose(losses, [np.log1p(np.exp(0.5)) + np.log1p(np.exp(-0.5))],
                               rtol=1e-14, atol=0)
    # dL/dG = -sigmoid(.5) + sigmoid(-.5); dG/da = (2/d) h = [1, 0]; dW = u^T dL/da
    dG = -_sigmoid(0.5) + _sigmoid(-0.5)
    expect = np.zeros_like(W)
    expect[0, 0] = dG
    np.testing.assert_allclose(grads["W0"], expect, rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(grads["b0"], [dG, 0.0], rtol=1e-14, atol=1e-16)


def test_ff_loss_derivatives_central_differences():
    rng = np.random.default_rng(0)
    Gp, Gn = rng.uniform(0, 2, 5), rng.uniform(0, 2, 5)
    _, dp, dn = ff_loss(Gp, Gn, 1.0)
    np.testing.assert_allclose(dp, central_gradient(lambda: ff_loss(Gp, Gn, 1.0)[0], Gp),
                               rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(dn, central_gradient(lambda: ff_loss(Gp, Gn, 1.0)[0], Gn),
                               rtol=1e-7, atol=1e-10)


def test_local_gradient_is_the_neurons_own_with_inputs_frozen():
    """dL_i/dW_i by central differences of L_i with neuron i's input u_i^{T-1} fixed
    (other neurons unchanged): the local rule ignores the path through the cycle."""
    rng = np.random.default_rng(1)
    net = CyclicFF.random(3, 2, n_neurons=3, width=4, steps=3, graph="complete", seed=2)
    X = rng.standard_normal((6, 3))
    y = rng.integers(0, 2, 6)
    yn = 1 - y
    losses, grads = cff_local_grads(net, X, y, yn)
    Up, _ = cff_propagate(net, cff_embed(X, y, 2))
    Un, _ = cff_propagate(net, cff_embed(X, yn, 2))
    for i in range(net.n_neurons):
        def Li(i=i):
            hp = np.maximum(Up[i] @ net.W[i] + net.b[i], 0)
            hn = np.maximum(Un[i] @ net.W[i] + net.b[i], 0)
            return ff_loss(ff_goodness(hp), ff_goodness(hn), net.theta)[0]
        assert Li() == pytest.approx(losses[i], rel=1e-14)
        # error budget: relu kinks are > 1e-3 away for these seeded inputs; h = 1e-6
        np.testing.assert_allclose(grads[f"W{i}"], central_gradient(Li, net.W[i]),
                                   rtol=1e-6, atol=1e-9, err_msg=f"neuron {i} W")
        np.testing.assert_allclose(grads[f"b{i}"], central_gradient(Li, net.b[i]),
                                   rtol=1e-6, atol=1e-9, err_msg=f"neuron {i} b")


def test_ring_graph_and_steps_propagate_around_the_cycle():
    G = cff_graph("ring", 3)
    np.testing.assert_array_equal(G, [[0, 1, 0], [0, 0, 1], [1, 0, 0]])
    net = CyclicFF.random(2, 2, n_neurons=3, width=3, steps=1, seed=0)
    E = cff_embed(np.ones((2, 2)), [0, 1], 2)
    U1, _ = cff_propagate(net, E)
    assert np.all(U1[0][:, 4:] == 0), "step 1: no messages yet (h^0 = 0)"
    net.steps = 2
    U2, _ = cff_propagate(net, E)
    assert np.any(U2[0][:, 4:] != 0), "step 2: neuron 2's output reaches neuron 0"
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
