"""The one optimizer (refimpl.optim): SGD with momentum and Adam against their formulas
written out here, step by step, in float64."""
import numpy as np
import pytest

from refimpl.optim import Optimizer


def _grads(seed, shape, n):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape) for _ in range(n)]


def test_sgd_momentum_matches_the_recurrence():
    """m <- mu m - eta g, w <- w + m (Alg. 2 with the paper's momentum 0.5)."""
    w0 = np.random.default_rng(0).normal(size=(3, 4))
    w, params = w0.copy(), {"w": w0.copy()}
    opt = Optimizer("sgd", 0.1, momentum=0.5, shapes={"w": w0.shape})
    m = np.zeros_like(w0)
    for g in _grads(1, w0.shape, 5):
        m = 0.5 * m - 0.1 * g
        w = w + m
        opt.step(params, {"w": g})
    np.testing.assert_allclose(params["w"], w, rtol=1e-14, atol=1e-15,
                               err_msg="SGD with momentum")
    assert opt.t == 5


def test_adam_matches_kingma_ba_with_bias_correction():
    """Adam (Kingma & Ba 2015, Alg. 1) with PyTorch's defaults, lazily allocated state."""
    w0 = np.random.default_rng(2).normal(size=5)
    params = {"w": w0.copy()}
    opt = Optimizer("adam", 0.01)
    w, m, v = w0.copy(), np.zeros(5), np.zeros(5)
    for t, g in enumerate(_grads(3, 5, 6), start=1):
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        w = w - 0.01 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        opt.step(params, {"w": g})
    # 1 - 0.9 and 0.1 differ in the last bit: agreement to a few ulps of the step
    np.testing.assert_allclose(params["w"], w, rtol=1e-12, atol=1e-14, err_msg="Adam")
    assert set(opt.state) == {"m_w", "v_w"}


def test_optimizer_state_round_trips_and_rejects_bad_input():
    a = Optimizer("adam", 0.05, shapes={"x": (2,)})
    assert set(a.state) == {"m_x", "v_x"} and not np.any(a.state["m_x"])
    with pytest.raises(ValueError, match="kind: expected 'sgd' or 'adam'"):
        Optimizer("rmsprop")
    with pytest.raises(ValueError, match="lr: expected a finite number > 0"):
        Optimizer("sgd", 0.0)
    with pytest.raises(ValueError, match=r"momentum: expected a number in \[0, 1\)"):
        Optimizer("sgd", 0.1, momentum=1.0)
    with pytest.raises(ValueError, match=r"betas: expected two numbers in \[0, 1\)"):
        Optimizer("adam", 0.1, betas=(1.0, 0.999))  # bias correction 1 - 1^t = 0: NaN
    with pytest.raises(ValueError, match="eps: expected a finite number > 0"):
        Optimizer("adam", 0.1, eps=0.0)


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_fused_update_is_bit_identical_to_the_numpy_path(kind):
    """The fused one-pass update (issue 12) against the NumPy expressions (fused=False):
    equal bit for bit, parameters and buffers, over steps with magnitudes spread over
    many binades; non-float64 / non-contiguous arrays take the NumPy path either way."""
    rng = np.random.default_rng(7)
    shapes = {"K": (13, 13), "W1": (5, 13), "b": (13,)}
    init = {n: rng.normal(size=s) * 10.0 ** rng.integers(-8, 8, size=s) for n, s in shapes.items()}
    fused, plain = ({n: a.copy() for n, a in init.items()} for _ in range(2))
    opt_f = Optimizer(kind, 0.07, momentum=0.5, shapes=shapes)
    opt_p = Optimizer(kind, 0.07, momentum=0.5, shapes=shapes, fused=False)
    for _ in range(6):
        grads = {n: rng.normal(size=s) * 10.0 ** rng.integers(-8, 8, size=s)
                 for n, s in shapes.items()}
        grads["W1"] = np.asfortranarray(grads["W1"])  # not C-contiguous: NumPy path
        opt_f.step(fused, {n: g.copy(order="K") for n, g in grads.items()})
        opt_p.step(plain, grads)
    for n in shapes:
        np.testing.assert_array_equal(fused[n], plain[n], err_msg=n)
    for key in opt_p.state:
        np.testing.assert_array_equal(opt_f.state[key], opt_p.state[key], err_msg=key)
    probe = Optimizer(kind, 0.1, shapes={"K": (2, 2)})  # K did take the fused path
    assert probe._step_fused("K", np.zeros((2, 2)), probe.state["m_K"], np.ones((2, 2)), 1.0, 1.0)
