"""The NN baseline (an MLP with explicit backward) and Anderson acceleration for DEQ.

Oracles: central finite differences for the MLP gradients, the graph
perceptron of S-Thm. 1 for the MLP forward, the plain whole-graph fixed
point for Anderson acceleration.
"""
import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp

from numdiff import central_gradient
from refimpl.baselines import MLP, MLPTrainer, mlp_forward, mlp_loss_and_grad, mlp_predict
from refimpl.perceptron import gp_forward, mlp_to_graph
from refimpl.solvers.anderson import anderson_fixed_point
from refimpl.solvers.result import SolveStatus
from refimpl.solvers.whole import whole_graph_fixed_point
from refimpl.testing import toy_classification
from refimpl.train import EpochRecord, TrainConfig


def toy_data(seed=0, n=150, n_in=5, n_classes=3):
    return toy_classification(seed, n, n_in, n_classes)


@pytest.mark.parametrize("widths, output", [(7, "softmax"), ((5, 4), "softmax"),
                                            ((6,), "identity")])
def test_mlp_gradients_match_central_differences(widths, output):
    rng = np.random.default_rng(1)
    mlp = MLP.random(4, widths, 3, seed=2, output=output)
    for c in mlp.biases:
        c[:] = 0.3 * rng.standard_normal(c.shape)  # non-zero biases
    X = rng.standard_normal((6, 4))
    T = rng.integers(0, 3, 6) if output == "softmax" else rng.standard_normal((6, 3))
    _, grads, _ = mlp_loss_and_grad(mlp, X, T)
    for name, theta in mlp.params().items():
        num = central_gradient(lambda: mlp_loss_and_grad(mlp, X, T)[0], theta)
        np.testing.assert_allclose(grads.as_dict()[name], num, rtol=1e-6, atol=1e-9,
                                   err_msg=f"backprop through S-Eq. 1, d loss / d {name}")


def test_mlp_forward_equals_graph_perceptron():
    """S-Thm. 1 as an oracle: the MLP equals its graph perceptron with L + 1 steps."""
    rng = np.random.default_rng(3)
    mlp = MLP.random(4, (5, 3), 2, seed=4)
    for c in mlp.biases:
        c[:] = rng.standard_normal(c.shape)
    X = rng.standard_normal((7, 4))
    A, b = mlp_to_graph(mlp.weights, mlp.biases)
    z = gp_forward(A, b, X, steps=3, n_out=2)
    np.testing.assert_allclose(mlp_forward(mlp, X).Z, z, rtol=1e-12, atol=1e-12,
                               err_msg="S-Thm. 1: MLP vs graph perceptron")


def test_mlp_trainer_learns_and_is_deterministic():
    X, y = toy_data()
    cfg = TrainConfig(nodes=10, epochs=15, batch_size=16, lr=0.1, patience=None, seed=5)
    a, b = MLPTrainer(cfg, 5, 3), MLPTrainer(cfg, 5, 3)
    ha = a.fit(X[:100], y[:100], X[100:], y[100:])
    b.fit(X[:100], y[:100], X[100:], y[100:])
    for Wa, Wb in zip(a.net.weights, b.net.weights):
        np.testing.assert_array_equal(Wa, Wb)
    assert ha[-1]["loss"] < 0.3 * ha[0]["loss"]
    a.restore_best()
    best = ha[a.best_epoch - 1]
    assert a.best_val == min(h["val_loss"] for h in ha) == best["val_loss"]  # monitor val_loss
    assert np.mean(mlp_predict(a.net, X[100:]) != y[100:]) == best["val_error"] < 0.15
    assert set(ha[0]) == {f.name for f in dataclasses.fields(EpochRecord)}
    assert ha[0]["edges"] == 5 * 10 + 10 * 3 and ha[0]["levels"] == 1


def test_mlp_trainer_early_stopping_callback_and_l2():
    X, y = toy_data(2)
    cfg = TrainConfig(nodes=6, epochs=50, batch_size=32, lr=0.1, patience=2, reg="l2",
                      alpha=1e-2, seed=0)
    tr = MLPTrainer(cfg, 5, 3, widths=(6, 4))
    seen = []
    tr.fit(X[:100], y[:100], X[100:], y[100:], callback=lambda t, r: seen.append(r) or r.epoch == 3)
    assert len(tr.history) == len(seen) <= 3
    assert tr.net.widths == (6, 4)


@pytest.mark.parametrize("kwargs, match", [
    (dict(reg="nm"), "reg"),
])
def test_mlp_trainer_rejects_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLPTrainer(TrainConfig(nodes=4, **kwargs), 3, 2)


@pytest.mark.parametrize("widths", [0, (), (3, -1), "a", 2.5])
def test_mlp_rejects_bad_widths(widths):
    with pytest.raises(ValueError, match="widths"):
        MLP.random(3, widths, 2)


def test_mlp_rejects_bad_shapes():
    with pytest.raises(ValueError, match="weights"):
        MLP([np.ones((3, 4)), np.ones((5, 2))], [np.zeros(4)])
    with pytest.raises(ValueError, match="biases"):
        MLP([np.ones((3, 4)), np.ones((4, 2))], [np.zeros(3)])
    with pytest.raises(ValueError, match="X0"):
        mlp_forward(MLP.random(3, 4, 2), np.ones((2, 5)))


# --------------------------------------------------------------------------- Anderson
def _contractive(seed, p=25, B=6, top=0.98):
    """x = c + A^T tanh(x) with a symmetric A of spectral radius ``top``
    (slow plain iteration: the rate is about ``top``)."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((p, p)))
    A = (Q * np.linspace(-0.5, top, p)) @ Q.T
    C = 0.1 * rng.standard_normal((p, B))
    return sp.csr_matrix(A.T), C


def test_anderson_matches_plain_fixed_point_and_is_faster():
    AT, C = _contractive(0)
    XT, _, _, it_plain, _, ok = whole_graph_fixed_point(
        AT, C, np.tanh, lambda x: 1 - np.tanh(x) ** 2, atol=1e-12, rtol=1e-12, max_iter=100000)
    assert ok
    res = anderson_fixed_point(lambda X: C + AT @ np.tanh(X), C, m=5, atol=1e-12, rtol=1e-12)
    assert res.converged and res.status == SolveStatus.CONVERGED
    assert res.residual <= 1e-12 * (1 + np.abs(res.x).max())
    # both within ~ tol / (1 - rate) of the fixed point
    np.testing.assert_allclose(res.x, XT, rtol=0, atol=1e-9,
                               err_msg="Anderson vs plain fixed point of Eq. (3)")
    assert res.iterations < it_plain / 5, (res.iterations, it_plain)


def test_anderson_depth_zero_is_the_plain_iteration():
    AT, C = _contractive(1, top=0.9)
    XT, _, _, it_plain, _, _ = whole_graph_fixed_point(
        AT, C, np.tanh, lambda x: 1 - np.tanh(x) ** 2, atol=1e-11, rtol=0.0, max_iter=10000)
    res = anderson_fixed_point(lambda X: C + AT @ np.tanh(X), C, m=0, atol=1e-11, rtol=0.0,
                               max_iter=10000)
    np.testing.assert_array_equal(res.x, XT)
    assert res.iterations == it_plain


def test_anderson_solves_a_noncontractive_linear_map_and_reports_failure():
    res = anderson_fixed_point(lambda x: 2.0 * x + 1.0, np.zeros(3), m=3, atol=1e-12, rtol=0)
    assert res.converged
    np.testing.assert_allclose(res.x, -1.0, rtol=0, atol=1e-12)
    slow = anderson_fixed_point(lambda x: 0.999 * x + 1.0, np.zeros((2, 3)), m=0, atol=1e-12,
                                rtol=0, max_iter=5)
    assert not slow.converged and slow.status == SolveStatus.MAX_ITERATIONS
    assert slow.iterations == 5 and slow.x.shape == (2, 3)
    bad = anderson_fixed_point(lambda x: x * np.inf, np.ones(2), m=2)
    assert bad.status == SolveStatus.NONFINITE and not bad.converged


@pytest.mark.parametrize("kwargs, match", [
    (dict(m=-1), "m"), (dict(atol=-1.0), "atol"), (dict(max_iter=0), "max_iter"),
    (dict(beta=0.0), "beta"),
])
def test_anderson_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        anderson_fixed_point(lambda x: x, np.zeros(2), **kwargs)
    with pytest.raises(ValueError, match="g: returned shape"):
        anderson_fixed_point(lambda x: x[:1], np.zeros(2))
