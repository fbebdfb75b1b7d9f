"""The OPTNET baseline: a batched interior-point QP layer and its KKT backward.

Oracles: scipy.optimize.minimize (SLSQP) for the QP solution, the KKT
conditions themselves, central finite differences for the backward (Amos &
Kolter 2017, Eq. 7-8) and for the whole layer's loss, one-at-a-time solves
for the batched solver.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from scipy.optimize import minimize

from numdiff import central_gradient
from refimpl import ConvergenceError
from refimpl.baselines.optnet import (OptNetLayer, OptNetTrainer, qp_solve, qp_solve_full,
                                      qp_solve_grad)
from refimpl.train import TrainConfig
from strategies import convex_qps

#: Interior-point tolerance of the tests: KKT residuals <= TOL * (1 + max(|q|, |h|)).
TOL = 1e-12


def random_qp(seed, n=5, m=8, B=4, tight=0.3):
    """A strictly convex QP with ``z = 0`` strictly feasible (h > 0); a small
    ``tight`` makes several constraints active at the solution."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    Q = A @ A.T + 0.5 * np.eye(n)
    q = rng.standard_normal((B, n))
    G = rng.standard_normal((m, n))
    h = tight * rng.uniform(0.1, 1.0, m)
    return Q, q, G, h


def slsqp(Q, q, G, h):
    """The reference solution of one QP by scipy's SLSQP (independent of the IPM)."""
    cons = [{"type": "ineq", "fun": lambda z: h - G @ z, "jac": lambda z: -G}]
    r = minimize(lambda z: 0.5 * z @ Q @ z + q @ z, np.zeros(q.size), jac=lambda z: Q @ z + q,
                 method="SLSQP", constraints=cons, options={"ftol": 1e-12, "maxiter": 1000})
    assert r.success, r.message
    return r.x


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_qp_solve_matches_scipy_with_active_and_inactive_constraints(seed):
    Q, q, G, h = random_qp(seed)
    z = qp_solve(Q, q, G, h, tol=TOL)
    slack = h - z @ G.T
    active = slack < 1e-8
    assert active.any() and (~active).any(), "the fixture must have both kinds of constraints"
    for b in range(q.shape[0]):
        # SLSQP reaches ~1e-9 on these problems; 1e-6 is the bar.
        np.testing.assert_allclose(z[b], slsqp(Q, q[b], G, h), rtol=0, atol=1e-6,
                                   err_msg="OptNet QP (Eq. 2) vs SLSQP")


def test_qp_solution_satisfies_kkt():
    Q, q, G, h = random_qp(3, n=6, m=10, B=5)
    sol = qp_solve_full(Q, q, G, h, tol=TOL)
    scale = TOL * (1 + max(np.abs(q).max(), np.abs(h).max()))
    assert sol.converged and sol.residual <= scale
    z, lam = sol.z, sol.lam
    np.testing.assert_allclose(z @ Q + q + lam @ G, 0, atol=10 * scale,
                               err_msg="stationarity Q z + q + G^T lam = 0")
    assert np.all(z @ G.T <= h + 10 * scale), "primal feasibility G z <= h"
    assert np.all(lam >= 0), "dual feasibility"
    np.testing.assert_allclose(lam * (h - z @ G.T), 0, atol=10 * scale,
                               err_msg="complementarity lam (h - G z) = 0")


def test_unconstrained_qp_is_a_linear_solve():
    Q, q, G, h = random_qp(4)
    z = qp_solve(Q, q, np.zeros((0, Q.shape[0])), np.zeros(0))
    np.testing.assert_allclose(z, np.linalg.solve(Q, -q.T).T, rtol=1e-12, atol=1e-12)
    # loose constraints (h huge) change nothing
    z2 = qp_solve(Q, q, G, h + 1e6, tol=TOL)
    np.testing.assert_allclose(z2, z, rtol=0, atol=1e-6)


def test_batched_solve_equals_one_at_a_time():
    Q, q, G, h = random_qp(5, B=6)
    z = qp_solve(Q, q, G, h, tol=TOL)
    for b in range(q.shape[0]):
        zb = qp_solve(Q, q[b], G, h, tol=TOL)
        assert zb.shape == (Q.shape[0],)
        # the samples' iterations are independent: equal up to BLAS rounding
        np.testing.assert_allclose(z[b], zb, rtol=0, atol=1e-12)


def test_backward_matches_central_differences():
    """Amos & Kolter Eq. 7-8 against central differences of sum(w * z).

    Error budget: the solve's KKT residual <= ~1e-12 divided by the step 1e-6
    gives ~1e-6 absolute noise in each difference quotient."""
    Q, q, G, h = random_qp(6, n=4, m=6, B=3)
    n = Q.shape[0]
    eps = 1e-3
    Lf = np.linalg.cholesky(Q - eps * np.eye(n))  # Q = L L^T + eps I
    w = np.random.default_rng(7).standard_normal(q.shape)
    g = qp_solve_grad(Q, q, G, h, w, tol=TOL)
    z = qp_solve(Q, q, G, h, tol=TOL)
    act = (h - z @ G.T) < 1e-8
    assert act.any() and (~act).any()

    def loss(L=Lf, q=q, G=G, h=h):
        return float(np.sum(w * qp_solve(L @ L.T + eps * np.eye(n), q, G, h, tol=TOL)))

    np.testing.assert_allclose(g["q"], central_gradient(lambda: loss(q=q), q),
                               rtol=1e-4, atol=1e-5, err_msg="d/dq (Eq. 8)")
    np.testing.assert_allclose(g["G"], central_gradient(lambda: loss(G=G), G),
                               rtol=1e-4, atol=1e-5, err_msg="d/dG (Eq. 8)")
    np.testing.assert_allclose(g["h"], central_gradient(lambda: loss(h=h), h),
                               rtol=1e-4, atol=1e-5, err_msg="d/dh (Eq. 8)")
    np.testing.assert_allclose(2 * g["Q"] @ Lf, central_gradient(lambda: loss(L=Lf), Lf),
                               rtol=1e-4, atol=1e-5, err_msg="d/dL via d/dQ (Eq. 8)")
    np.testing.assert_allclose(g["Q"], g["Q"].T, rtol=0, atol=1e-14)


def test_optnet_layer_gradients_match_central_differences():
    rng = np.random.default_rng(8)
    layer = OptNetLayer.random(3, 4, 2, seed=9, m=5, tol=TOL)
    layer.L += 0.3 * rng.standard_normal(layer.L.shape)
    layer.b1[:] = 0.5 * rng.standard_normal(4)
    layer.z0[:] = 0.1 * rng.standard_normal(4)
    layer.sigma[:] = 0.5 * rng.standard_normal(5) - 1.0  # small h: active constraints
    X = 2.0 * rng.standard_normal((6, 3))
    y = rng.integers(0, 2, 6)
    _, grads, _, _ = layer.loss_and_grad(X, y)
    for name, theta in layer.params().items():
        num = central_gradient(lambda: layer.loss_and_grad(X, y)[0], theta)
        np.testing.assert_allclose(grads[name], num, rtol=1e-4, atol=1e-6,
                                   err_msg=f"OPTNET layer, d loss / d {name}")


def test_optnet_trainer_learns(toy=None):
    rng = np.random.default_rng(0)
    centers = 2.0 * rng.standard_normal((3, 4))
    y = rng.integers(0, 3, 150)
    X = centers[y] + 0.7 * rng.standard_normal((150, 4))
    cfg = TrainConfig(nodes=6, epochs=8, batch_size=16, lr=0.1, patience=None, seed=1)
    tr = OptNetTrainer(cfg, 4, 3)
    hist = tr.fit(X[:100], y[:100], X[100:], y[100:])
    assert hist[-1]["loss"] < 0.5 * hist[0]["loss"]
    tr.restore_best()
    assert np.mean(tr.predict(X[100:]) != y[100:]) < 0.15
    # deterministic
    tr2 = OptNetTrainer(cfg, 4, 3)
    tr2.fit(X[:100], y[:100], X[100:], y[100:], epochs=len(hist))
    np.testing.assert_array_equal(tr2.history[-1]["loss"], hist[-1]["loss"])


def test_bad_input_and_failure():
    Q, q, G, h = random_qp(0)
    with pytest.raises(ValueError, match="Q"):
        qp_solve(Q[:, :3], q, G, h)
    with pytest.raises(ValueError, match="symmetric"):
        qp_solve(Q + np.triu(np.ones_like(Q), 1), q, G, h)
    with pytest.raises(ValueError, match="Q: must be positive definite"):
        qp_solve(-Q, q, G, h)
    with pytest.raises(ValueError, match="q"):
        qp_solve(Q, q[:, :2], G, h)
    with pytest.raises(ValueError, match="G"):
        qp_solve(Q, q, G[:, :2], h)
    with pytest.raises(ValueError, match="h"):
        qp_solve(Q, q, G, h[:2])
    with pytest.raises(ValueError, match="w"):
        qp_solve_grad(Q, q, G, h, np.ones(3))
    with pytest.raises(ValueError, match="reg"):
        OptNetTrainer(TrainConfig(nodes=3, reg="l2"), 2, 2)
    # infeasible: z_1 <= -1 and -z_1 <= -1
    G2 = np.zeros((2, Q.shape[0]))
    G2[0, 0], G2[1, 0] = 1.0, -1.0
    with pytest.raises(ConvergenceError, match="QP layer"):
        qp_solve(Q, q, G2, -np.ones(2), max_iter=30)


@settings(max_examples=15)
@given(convex_qps())
def test_ipm_solution_is_feasible_and_beats_feasible_points(qp):
    """Invariants of the QP solution: feasibility, lam >= 0, and an objective no
    larger than at any feasible point (z = 0 and random points pulled into the
    feasible set); slack 1e-9 covers the KKT tolerance."""
    Q, q, G, h = qp
    sol = qp_solve_full(Q, q, G, h, tol=TOL)
    z = sol.z
    assert np.all(z @ G.T <= h + 1e-9) and np.all(sol.lam >= 0)
    rng = np.random.default_rng(0)
    cand = rng.standard_normal((8, Q.shape[0]))
    viol = np.max(cand @ G.T / h, axis=1)  # G c <= h  iff  viol <= 1 (h > 0)
    cand /= np.maximum(viol, 1.0)[:, None]
    cand = np.vstack([np.zeros(Q.shape[0]), cand])
    for b in range(q.shape[0]):
        fz = 0.5 * z[b] @ Q @ z[b] + q[b] @ z[b]
        fc = 0.5 * np.einsum("ki,ij,kj->k", cand, Q, cand) + cand @ q[b]
        assert np.all(fz <= fc + 1e-9 * (1 + np.abs(fc))), "not the minimum (Eq. 2)"
