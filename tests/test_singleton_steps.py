"""Runs of singleton steps in one kernel call (refimpl.equations.singleton_steps_*):
the same values as the step-by-step NumPy path, bit for bit where both take the packed
tanh, and the dense (BLAS) levels left to level_product."""
import numpy as np
import pytest

import refimpl.propagate as propagate
from refimpl import NMNetwork, loss_and_grad, prune
from refimpl.activations import get_activation, tanh_float64
from refimpl.equations import (dense_block, level_product, singleton_steps_adjoint,
                               singleton_steps_forward, tanh_rows)
from refimpl.testing import random_case


def _schedule_case(seed=0, p=60, B=7):
    net, X0, _ = random_case(seed, p=p, n_in=4, n_out=3, B=B, k=2 * p, scale=0.5,
                             activation="tanh", output="softmax")
    g = prune(net.K, k=2 * p)
    return g, np.random.default_rng(seed)


def test_tanh_rows_is_the_packed_tanh_and_its_derivative():
    X = np.random.default_rng(1).standard_normal((9, 5)) * 3
    F, D = np.full_like(X, np.nan), np.full_like(X, np.nan)
    tanh_rows(X, F, D, 2, 7)
    t = tanh_float64(X[2:7])
    np.testing.assert_array_equal(F[2:7], t)
    np.testing.assert_array_equal(D[2:7], get_activation("tanh").derivative(X[2:7], t))
    assert np.isnan(F[:2]).all() and np.isnan(D[7:]).all()  # other rows untouched


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_singleton_steps_equal_the_step_by_step_sums(seed):
    g, rng = _schedule_case(seed)
    S = g.schedule
    steps = [(L.start, L.stop) for L in S.levels]
    bounds = np.array(steps, dtype=np.int64)
    B = 4
    XT0 = rng.standard_normal((S.p, B))
    w_in, w_out = g.A.data[S.in_edge], g.A.data[S.out_edge]
    # forward: every level as if all its modules were singletons
    XT, FT, DFT = XT0.copy(), np.zeros((S.p, B)), np.zeros((S.p, B))
    singleton_steps_forward(S.in_ptr, S.in_src, w_in, XT, FT, DFT, bounds)
    Xr, Fr, Dr = XT0.copy(), np.zeros((S.p, B)), np.zeros((S.p, B))
    for t0, t1 in steps:
        level_product(S.in_ptr, S.in_src, w_in, Fr, Xr, t0, t1)
        Fr[t0:t1] = tanh_float64(Xr[t0:t1])
        Dr[t0:t1] = 1.0 - Fr[t0:t1] * Fr[t0:t1]
    for a, b in ((XT, Xr), (FT, Fr), (DFT, Dr)):
        np.testing.assert_array_equal(a, b)
    # adjoint, in reverse order
    VT0 = rng.standard_normal((S.p, B))
    UT, VT = np.zeros((S.p, B)), VT0.copy()
    singleton_steps_adjoint(S.out_ptr, S.out_dst, w_out, UT, VT, DFT, bounds)
    Ur, Vr = np.zeros((S.p, B)), VT0.copy()
    for t0, t1 in reversed(steps):
        level_product(S.out_ptr, S.out_dst, w_out, Ur, Vr, t0, t1)
        Ur[t0:t1] = DFT[t0:t1] * Vr[t0:t1]
    np.testing.assert_array_equal(UT, Ur)
    np.testing.assert_array_equal(VT, Vr)


def _layered_net(seed=0, width=80, B=256):
    """Three layers of ``width`` nodes, fully connected layer to layer (a dense level of
    width^2 >= DENSE_MIN_EDGES edges, taken by BLAS), plus a 2-node module."""
    rng = np.random.default_rng(seed)
    p = 3 * width + 2
    net = NMNetwork.random(5, p, 3, seed=seed, gamma=1e-12)
    K = np.zeros((p, p))
    K[:width, width:2 * width] = rng.standard_normal((width, width)) / width
    K[width:2 * width, 2 * width:3 * width] = rng.standard_normal((width, width)) / width
    K[3 * width, 3 * width + 1] = K[3 * width + 1, 3 * width] = 0.3  # a module
    K[3 * width + 1, 0] = 0.2
    np.fill_diagonal(K, 0.1 * rng.standard_normal(p))
    net.K[...] = K
    return net, rng.standard_normal((B, 5)), rng.integers(0, 3, B)


def test_runs_leave_dense_levels_and_module_levels_to_the_step_path():
    net, X0, _ = _layered_net()
    g = prune(net.K, gamma=1e-12)
    S = g.schedule
    steps = propagate._steps(S, "levels")
    dense = [k for k, st in enumerate(steps)
             if dense_block(S.in_ptr, S.in_src, st.start, st.stop) is not None]
    assert dense, "the case must have a dense level"
    segments = propagate._segments(steps, S.in_ptr, S.in_src)
    assert [k for k0, k1, _ in segments for k in range(k0, k1)] == list(range(len(steps)))
    covered = {k for k0, k1, bounds in segments if bounds is not None
               for k in range(k0, k1)}
    assert covered and not covered & set(dense)
    assert not any(steps[k].groups for k in covered)
    assert covered | set(dense) | {k for k, st in enumerate(steps) if st.groups} \
        == set(range(len(steps)))


@pytest.mark.parametrize("mode", ["levels", "sequential"])
def test_fused_and_step_by_step_passes_agree(monkeypatch, mode):
    """B = 256: every singleton block holds >= 256 values, so the step path takes the
    packed tanh too and the two agree bit for bit (the rule forced on: on an AVX-512 CPU
    the fused forward is not taken at all)."""
    import refimpl.activations as activations

    monkeypatch.setattr(activations, "_PACKED_TANH", True)
    net, X0, y = _layered_net()
    g = prune(net.K, gamma=1e-12)
    calls = []
    for name in ("singleton_steps_forward", "singleton_steps_adjoint"):
        real = getattr(propagate, name)
        monkeypatch.setattr(propagate, name,
                            lambda *a, real=real, name=name: calls.append(name) or real(*a))
    fused = loss_and_grad(net, X0, y, g, mode=mode)
    assert {"singleton_steps_forward", "singleton_steps_adjoint"} <= set(calls)
    monkeypatch.setattr(propagate, "_fused_tanh", lambda act, XT: False)
    segments = propagate._segments
    monkeypatch.setattr(propagate, "_segments",  # no runs at all
                        lambda steps, ptr, idx, runs=True: segments(steps, ptr, idx, False))
    calls.clear()
    plain = loss_and_grad(net, X0, y, g, mode=mode)
    assert not calls
    assert fused[0] == plain[0]
    for name in ("K", "W1", "Wm", "U", "V"):
        np.testing.assert_array_equal(getattr(fused[1], name), getattr(plain[1], name),
                                      err_msg=name)
    np.testing.assert_array_equal(fused[2].X, plain[2].X)


def test_fused_path_within_tanh_accuracy_on_small_blocks(monkeypatch):
    """Small blocks: the step path's NumPy tanh and the packed one differ by <= 2.3e-16
    per value (tests/test_activation_kernel.py); the passes agree to rounding."""
    import refimpl.activations as activations

    monkeypatch.setattr(activations, "_PACKED_TANH", True)
    net, X0, y = _layered_net(B=3)
    g = prune(net.K, gamma=1e-12)
    fused = loss_and_grad(net, X0, y, g)
    monkeypatch.setattr(propagate, "_fused_tanh", lambda act, XT: False)
    plain = loss_and_grad(net, X0, y, g)
    np.testing.assert_allclose(fused[2].X, plain[2].X, rtol=0, atol=1e-14)
    for name in ("K", "W1", "Wm"):
        np.testing.assert_allclose(getattr(fused[1], name), getattr(plain[1], name),
                                   rtol=1e-12, atol=1e-14, err_msg=name)
