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


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_deferred_step_is_the_step(kind):
    """``step(..., defer=("K",))`` leaves K to the caller's compiled pass and returns its
    state and scalars; running _sgd_entry / _adam_entry with them over every entry (as the
    trainer's pass does) is the ordinary step bit for bit, and t counts the step once.
    A deferred parameter that cannot take the fused path (Fortran order) is updated here."""
    from refimpl.optim import _adam_entry, _sgd_entry

    rng = np.random.default_rng(11)
    shapes = {"K": (7, 7), "W1": (3, 7)}
    ref, new = Optimizer(kind, 0.05, shapes=shapes), Optimizer(kind, 0.05, shapes=shapes)
    p_ref = {n: rng.normal(size=s) for n, s in shapes.items()}
    p_new = {n: a.copy() for n, a in p_ref.items()}
    for _ in range(3):
        grads = {n: rng.normal(size=s) for n, s in shapes.items()}
        ref.step(p_ref, grads)
        out = new.step(p_new, grads, defer=("K",))
        assert set(out) == {"K"} and new.t == ref.t
        m, v, adam, mu, b1, a1, b2, a2, c1, c2, lr, eps = out["K"]
        assert adam == (kind == "adam") and m is new.state["m_K"]
        w, g = p_new["K"].reshape(-1), grads["K"].reshape(-1)
        mf, vf = m.reshape(-1), v.reshape(-1)
        for i in range(w.size):
            if adam:
                w[i], mf[i], vf[i] = _adam_entry.py_func(w[i], mf[i], vf[i], g[i], b1, a1,
                                                         b2, a2, c1, c2, lr, eps)
            else:
                w[i], mf[i] = _sgd_entry.py_func(w[i], mf[i], g[i], mu, lr)
    for n in shapes:
        np.testing.assert_array_equal(p_new[n], p_ref[n], err_msg=n)
    for key in ref.state:
        np.testing.assert_array_equal(new.state[key], ref.state[key], err_msg=key)
    fortran = {"K": np.asfortranarray(p_ref["K"])}
    before = fortran["K"].copy()
    assert new.step(fortran, {"K": np.ones((7, 7))}, defer=("K",)) == {}
    assert not np.array_equal(fortran["K"], before)
