"""Tests of refimpl.theory: Thm. 3.2, Eq. (1), (2), (16) and the Thm. 3.3 study (L2, NM).

Thm. 3.2 is checked by routes that share no code with the closed form:
augmented least squares and a generic optimizer (the mean minimizes Eq. 21),
finite differences of the log posterior written here from the unnormalized
prior and likelihood, Gaussian conditioning on the joint of (w, y), and two
Monte Carlo checks.  Every tolerance states both ``rtol`` and ``atol`` and
says where it comes from.
"""
from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from scipy.optimize import minimize
from scipy.special import logsumexp

from refimpl.testing import central_difference
from refimpl.theory import (
    max_edges_dag,
    max_edges_graph,
    merge_probability,
    merge_probability_mc,
    posterior,
    thm33_study,
)

EPS = np.finfo(np.float64).eps


# ----------------------------------------------------------------------------
# fixtures and strategies
# ----------------------------------------------------------------------------


def _problem(seed, n, d, noise=0.5):
    """A seeded linear-Gaussian problem: X ~ N(0, 1), y = X w + noise."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w = rng.standard_normal(d)
    y = X @ w + noise * rng.standard_normal(n)
    r = rng.uniform(0.2, 5.0, size=d)
    return X, y, r


# Small, bounded problems: n, d <= 8 and 5; r in [0.2, 5]; delta, tau in
# [0.3, 2].  So lambda r >= 0.2 * 0.0225 and cond(P) stays below ~1e5.
problems = st.fixed_dictionaries({
    "seed": st.integers(0, 2**32 - 1),
    "n": st.integers(1, 8),
    "d": st.integers(1, 5),
    "delta": st.floats(0.3, 2.0),
    "tau": st.floats(0.3, 2.0),
})


def _log_post(w, X, y, r, delta, tau):
    """Unnormalized log posterior: log likelihood + log prior (Appendix K)."""
    resid = y - X @ w
    return -(resid @ resid) / (2 * delta**2) - (w @ (r * w)) / (2 * tau**2)


# ----------------------------------------------------------------------------
# Thm. 3.2
# ----------------------------------------------------------------------------


def test_posterior_hand_solved():
    # X = I, y = 1, r = 1, delta = tau = 1: P = 2 I, mean = 1/2, cov = I/2.
    mean, cov = posterior(np.eye(3), np.ones(3), np.ones(3), 1.0, 1.0)
    assert_allclose(mean, 0.5 * np.ones(3), rtol=1e-15, atol=1e-15)
    assert_allclose(cov, 0.5 * np.eye(3), rtol=1e-15, atol=1e-15)
    # One weight: mean = x.y / (x.x + lambda r), var = delta^2 / (x.x + lambda r).
    x = np.array([[1.0], [2.0], [-1.0]])
    y = np.array([3.0, 1.0, 2.0])
    delta, tau, r = 2.0, 0.5, 3.0
    lam = delta**2 / tau**2
    mean, cov = posterior(x, y, [r], delta, tau)
    assert_allclose(mean, [3.0 / (6.0 + lam * r)], rtol=1e-14, atol=0,
                    err_msg="Thm. 3.2 mean, d = 1")
    assert_allclose(cov, [[delta**2 / (6.0 + lam * r)]], rtol=1e-14, atol=0,
                    err_msg="Thm. 3.2 variance, d = 1")


@given(problems)
def test_posterior_mean_is_augmented_least_squares(pb):
    # Route (i): the mean minimizes ||y - Xw||^2 + lambda sum r w^2 (Eq. 21),
    # i.e. it is the least-squares solution of [X; sqrt(lambda r) I] w = [y; 0].
    X, y, r = _problem(pb["seed"], pb["n"], pb["d"])
    delta, tau = pb["delta"], pb["tau"]
    lam = delta**2 / tau**2
    A = np.vstack([X, np.diag(np.sqrt(lam * r))])
    rhs = np.concatenate([y, np.zeros(pb["d"])])
    w_ls = np.linalg.lstsq(A, rhs, rcond=None)[0]
    mean, cov = posterior(X, y, r, delta, tau)
    # Both solvers are backward stable: forward error <= ~cond(P) eps ||w||,
    # cond(P) < 1e5 for these strategies; 1e-8 leaves a 1000x margin.
    scale = max(1.0, np.abs(w_ls).max())
    assert_allclose(mean, w_ls, rtol=1e-8, atol=1e-8 * scale,
                    err_msg="Thm. 3.2 mean vs augmented lstsq (Eq. 21)")
    assert np.allclose(cov, cov.T, rtol=0, atol=0)
    assert np.all(np.linalg.eigvalsh(cov) > 0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_posterior_mean_is_generic_minimizer(seed):
    # Route (i), second form: a generic quasi-Newton optimizer on Eq. (20).
    X, y, r = _problem(seed, 12, 4)
    delta, tau = 0.8, 1.3

    def neg(w):
        resid = y - X @ w
        return (resid @ resid) / (2 * delta**2) + (w @ (r * w)) / (2 * tau**2)

    def jac(w):
        return -X.T @ (y - X @ w) / delta**2 + r * w / tau**2

    res = minimize(neg, np.zeros(4), jac=jac, method="BFGS", options={"gtol": 1e-11})
    assert res.success
    mean, _ = posterior(X, y, r, delta, tau)
    # gtol 1e-11 on a problem whose Hessian has eigenvalues >= ~0.1 puts the
    # BFGS iterate within ~1e-10 of the minimizer; rtol 1e-7 / atol 1e-8.
    assert_allclose(res.x, mean, rtol=1e-7, atol=1e-8,
                    err_msg="Thm. 3.2 mean vs BFGS minimizer of Eq. (20)")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_log_posterior_stationary_and_curvature(seed):
    # Route (ii): central differences of the unnormalized log posterior.
    n, d = 10, 4
    X, y, r = _problem(seed, n, d)
    delta, tau = 0.7, 1.5
    mean, cov = posterior(X, y, r, delta, tau)
    logp = lambda w: _log_post(w, X, y, r, delta, tau)  # noqa: E731
    # The log posterior is quadratic, so central differences have no
    # truncation error; what is left is rounding, ~eps * |terms| / h for the
    # gradient and ~eps * |terms| / h^2 for the Hessian.  `size` bounds the
    # magnitude of the summed terms; the factor 100 covers the few roundings.
    size = (y @ y + np.sum((X @ mean) ** 2)) / delta**2 + mean @ (r * mean) / tau**2 + 1.0
    h = 1e-4
    E = np.eye(d)
    grad = central_difference(logp, mean, h)
    atol_g = 100 * EPS * size / h
    assert_allclose(grad, 0.0, rtol=0, atol=atol_g,
                    err_msg="Thm. 3.2: grad log posterior at the mean")
    # Sanity: the same difference quotient is far from zero away from the mean.
    off = mean + 0.5
    g_off = central_difference(logp, off, h)
    assert np.abs(g_off).max() > 1e4 * atol_g

    hh = 1e-3
    H = np.empty((d, d))
    for j in range(d):
        for k in range(d):
            H[j, k] = (logp(mean + hh * E[j] + hh * E[k]) - logp(mean + hh * E[j] - hh * E[k])
                       - logp(mean - hh * E[j] + hh * E[k])
                       + logp(mean - hh * E[j] - hh * E[k])) / (4 * hh * hh)
    precision = np.linalg.inv(cov)
    assert_allclose(H, -precision, rtol=1e-6, atol=100 * EPS * size / hh**2,
                    err_msg="Thm. 3.2: FD Hessian of log posterior = -precision")


@given(problems)
def test_posterior_equals_gaussian_conditioning(pb):
    # Route (iii, exact form): (w, y) is jointly Gaussian with
    # Cov(w) = S_w = tau^2 diag(1/r), Cov(y) = X S_w X^T + delta^2 I,
    # Cov(w, y) = S_w X^T; conditioning gives the posterior (Woodbury route,
    # an n x n solve instead of the d x d one).
    X, y, r = _problem(pb["seed"], pb["n"], pb["d"])
    delta, tau = pb["delta"], pb["tau"]
    S_w = np.diag(tau**2 / r)
    S_y = X @ S_w @ X.T + delta**2 * np.eye(pb["n"])
    K = np.linalg.solve(S_y, X @ S_w).T  # S_w X^T S_y^-1
    mean_c = K @ y
    cov_c = S_w - K @ X @ S_w
    mean, cov = posterior(X, y, r, delta, tau)
    # The conditioning route cancels S_w - (...): its absolute error is about
    # cond(S_y) eps max(S_w); the factor 1e3 covers the O(n d) roundings.
    atol = 1e3 * EPS * np.linalg.cond(S_y) * S_w.max()
    assert_allclose(mean, mean_c, rtol=1e-8, atol=atol * max(1.0, np.abs(y).max()),
                    err_msg="Thm. 3.2 mean vs Gaussian conditioning")
    assert_allclose(cov, cov_c, rtol=1e-8, atol=atol,
                    err_msg="Thm. 3.2 covariance vs Gaussian conditioning")


def test_posterior_importance_sampling():
    # Route (iii, Monte Carlo): self-normalized importance sampling with the
    # prior as proposal; weights = likelihood.  Tolerance: 5 delta-method
    # standard errors, sqrt(sum omega_i^2 (h_i - mu)^2), valid at large ESS.
    X, y, r = _problem(7, 4, 2)
    delta, tau = 1.0, 1.0
    rng = np.random.default_rng(11)
    N = 200_000
    W = tau * rng.standard_normal((N, 2)) / np.sqrt(r)
    resid = y[None, :] - W @ X.T
    logw = -np.sum(resid * resid, axis=1) / (2 * delta**2)
    omega = np.exp(logw - logsumexp(logw))
    ess = 1.0 / np.sum(omega**2)
    assert ess > 1e4, f"ESS {ess:.0f} too small for the delta-method error"
    mu = omega @ W
    D = W - mu
    mean, cov = posterior(X, y, r, delta, tau)
    se_mean = np.sqrt(omega**2 @ D**2)
    assert np.all(np.abs(mu - mean) <= 5 * se_mean), (mu, mean, se_mean)
    for j in range(2):
        for k in range(2):
            hjk = D[:, j] * D[:, k]
            est = omega @ hjk
            se = np.sqrt(omega**2 @ (hjk - est) ** 2)
            assert abs(est - cov[j, k]) <= 5 * se, (j, k, est, cov[j, k], se)


def test_posterior_simulation_based_calibration():
    # Route (iii, calibration): draw w from the prior and y from the model;
    # if the posterior is right, z = chol(cov)^-1 (w - mean) ~ N(0, I) exactly,
    # across draws.  Tolerances: 5 standard errors of a sample mean (1/sqrt(M))
    # and of a sample (co)variance of N(0,1) (sqrt(2/M) diagonal, 1/sqrt(M) off).
    rng = np.random.default_rng(3)
    n, d, M = 6, 3, 4000
    X = rng.standard_normal((n, d))
    r = np.array([0.5, 1.0, 4.0])
    delta, tau = 0.7, 1.3
    Z = np.empty((M, d))
    for m in range(M):
        w = tau * rng.standard_normal(d) / np.sqrt(r)
        y = X @ w + delta * rng.standard_normal(n)
        mean, cov = posterior(X, y, r, delta, tau)
        Z[m] = np.linalg.solve(np.linalg.cholesky(cov), w - mean)
    assert_allclose(Z.mean(axis=0), 0.0, rtol=0, atol=5 / math.sqrt(M),
                    err_msg="Thm. 3.2 calibration: mean of z")
    C = np.cov(Z.T)
    tol = np.full((d, d), 5 / math.sqrt(M))
    np.fill_diagonal(tol, 5 * math.sqrt(2 / M))
    assert np.all(np.abs(C - np.eye(d)) <= tol), C


def test_erratum_thm32_prior_exponent():
    # Appendix K writes the prior exponent as ||w^T diag(r) w||^2 / (2 tau^2).
    # With that (non-Gaussian) prior the posterior mode is not the closed-form
    # mean of Thm. 3.2; with w^T diag(r) w / (2 tau^2) it is.  (The two modes
    # coincide only when m^T diag(r) m = 1/2; here it is far from that.)
    rng = np.random.default_rng(5)
    n, d = 20, 3
    X = rng.standard_normal((n, d))
    y = X @ np.array([2.0, -1.0, 1.5]) + 0.5 * rng.standard_normal(n)
    r = np.array([1.0, 2.0, 0.5])
    delta, tau = 1.0, 1.0
    mean, _ = posterior(X, y, r, delta, tau)
    assert abs(mean @ (r * mean) - 0.5) > 1.0

    def fit(prior, prior_grad):
        def obj(w):
            resid = y - X @ w
            return resid @ resid / (2 * delta**2) + prior(w) / (2 * tau**2)

        def jac(w):
            return -X.T @ (y - X @ w) / delta**2 + prior_grad(w) / (2 * tau**2)

        res = minimize(obj, np.zeros(d), jac=jac, method="BFGS", options={"gtol": 1e-11})
        # BFGS may stop on "precision loss" at this gtol; what matters is that
        # it reached a stationary point (the objective is strictly convex in
        # both cases, so that is the unique mode).
        assert np.linalg.norm(jac(res.x)) < 1e-8, res
        return res.x

    q = lambda w: w @ (r * w)  # noqa: E731
    mode_right = fit(q, lambda w: 2 * r * w)
    mode_wrong = fit(lambda w: q(w) ** 2, lambda w: 4 * q(w) * r * w)
    # As in the BFGS test: the optimizer is accurate to ~1e-10.
    assert_allclose(mode_right, mean, rtol=1e-7, atol=1e-8,
                    err_msg="correct exponent: mode = Thm. 3.2 mean")
    rel = np.linalg.norm(mode_wrong - mean) / np.linalg.norm(mean)
    assert rel > 0.05, f"squared exponent: mode should differ, rel = {rel:.3g}"


@given(problems, st.integers(0, 4), st.floats(1.5, 20.0))
def test_posterior_more_repulsion_shrinks(pb, j, factor):
    # The paper after Thm. 3.2: a larger repulsion r_j brings E[w_j] closer to
    # zero and reduces its variance (Sherman-Morrison: m_j / (1 + c S_jj)).
    X, y, r = _problem(pb["seed"], pb["n"], pb["d"])
    j = j % pb["d"]
    mean, cov = posterior(X, y, r, pb["delta"], pb["tau"])
    r2 = r.copy()
    r2[j] *= factor
    mean2, cov2 = posterior(X, y, r2, pb["delta"], pb["tau"])
    # 1e-12 relative slack absorbs rounding when the change is tiny.
    assert abs(mean2[j]) <= abs(mean[j]) * (1 + 1e-12) + 1e-15
    assert cov2[j, j] <= cov[j, j] * (1 + 1e-12)


@pytest.mark.parametrize("kwargs, name", [
    ({"X": np.ones(3)}, "X"),
    ({"X": np.full((3, 2), np.nan)}, "X"),
    ({"y": np.ones(4)}, "y"),
    ({"y": np.ones((3, 1))}, "y"),
    ({"r": np.ones(3)}, "r"),
    ({"r": np.array([1.0, 0.0])}, "r"),
    ({"r": np.array([1.0, np.inf])}, "r"),
    ({"delta": 0.0}, "delta"),
    ({"delta": np.nan}, "delta"),
    ({"tau": -1.0}, "tau"),
    ({"tau": "a"}, "tau"),
])
def test_posterior_validation(kwargs, name):
    args = {"X": np.ones((3, 2)), "y": np.ones(3), "r": np.ones(2), "delta": 1.0, "tau": 1.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        posterior(**args)


# ----------------------------------------------------------------------------
# Eq. (1), Eq. (2)
# ----------------------------------------------------------------------------


def _all_digraphs(p):
    """Every directed graph on p nodes with self-loops allowed: (2^(p^2), p, p)."""
    m = p * p
    codes = np.arange(2**m, dtype=np.int64)
    bits = (codes[:, None] >> np.arange(m)) & 1
    return bits.reshape(-1, p, p)


def _acyclic_but_self_loops(A):
    """True for graphs whose only cycles are self-loops: the off-diagonal part
    is nilpotent, (A0)^p = 0."""
    p = A.shape[-1]
    A0 = A * (1 - np.eye(p, dtype=A.dtype))
    P = np.broadcast_to(np.eye(p, dtype=A.dtype), A0.shape)
    for _ in range(p):
        P = np.minimum(P @ A0, 1)
    return ~P.any(axis=(1, 2))


@pytest.mark.parametrize("p", [1, 2, 3, 4])
def test_eq1_eq2_by_enumeration(p):
    A = _all_digraphs(p)
    edges = A.sum(axis=(1, 2))
    dag = _acyclic_but_self_loops(A)
    assert edges.max() == max_edges_graph(p) == p * p  # Eq. (2)
    assert edges[dag].max() == max_edges_dag(p)  # Eq. (1)
    # The maximal ones are the p! total orders (upper triangle incl. diagonal
    # under a permutation).
    assert np.count_nonzero(edges[dag] == max_edges_dag(p)) == math.factorial(p)
    upper = np.triu(np.ones((p, p), dtype=np.int64))
    assert upper.sum() == max_edges_dag(p)
    if p <= 3:  # an independent DAG test (networkx) on every graph
        for a, is_dag in zip(A, dag):
            g = nx.DiGraph(a * (1 - np.eye(p, dtype=np.int64)))
            assert nx.is_directed_acyclic_graph(g) == is_dag


def test_eq1_eq2_values_and_validation():
    assert [max_edges_dag(p) for p in range(6)] == [0, 1, 3, 6, 10, 15]
    assert [max_edges_graph(p) for p in range(6)] == [0, 1, 4, 9, 16, 25]
    assert max_edges_dag(np.int64(7)) == 28
    for bad in (-1, 2.5, "3"):
        with pytest.raises(ValueError, match="p"):
            max_edges_dag(bad)
        with pytest.raises(ValueError, match="p"):
            max_edges_graph(bad)


# ----------------------------------------------------------------------------
# Eq. (16)
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("theta", [0.5, 0.8, 0.95])
@pytest.mark.parametrize("q", [1, 3, 10, 30])
def test_eq16_matches_monte_carlo(theta, q):
    n = 20_000
    seed = int(1000 * theta) + q
    p_mc = merge_probability_mc(theta, q, n, np.random.default_rng(seed))
    p = merge_probability(theta, q)
    # Binomial standard error; 5 sigma (12 seeded cases; near p = 1 the count
    # of misses is Poisson-skewed, so the normal tail is optimistic), plus 1/n
    # for p near 0 or 1 where se -> 0.  A wrong exponent (q + 1) or threshold
    # moves p_mc by 10 to 1000 standard errors.
    se = math.sqrt(p * (1 - p) / n)
    assert abs(p_mc - p) <= 5 * se + 1 / n, (theta, q, p_mc, p, se)


def test_eq16_endpoints_and_mc_endpoints():
    assert merge_probability(0.0, 5) == 1.0
    assert merge_probability(1.0, 5) == 0.0
    assert merge_probability(0.7, 0) == 0.0
    assert merge_probability_mc(0.0, 5, 1000, 0) == 1.0
    assert merge_probability_mc(1.0, 5, 1000, 0) == 0.0
    assert merge_probability_mc(0.7, 0, 1000, 0) == 0.0
    grid = merge_probability(np.array([[0.5], [0.9]]), np.arange(1, 4))
    assert_allclose(grid, 1 - np.array([[0.5], [0.9]]) ** np.arange(1, 4),
                    rtol=1e-15, atol=0)
    # Seeded: same generator state, same estimate.
    assert merge_probability_mc(0.6, 4, 5000, 1) == merge_probability_mc(0.6, 4, 5000, 1)


@given(st.floats(0.0, 1.0), st.integers(0, 50))
def test_eq16_monotone(theta, q):
    p = merge_probability(theta, q)
    assert 0.0 <= p <= 1.0
    assert merge_probability(theta, q + 1) >= p  # bigger modules merge more often
    assert merge_probability(min(1.0, theta + 0.05), q) <= p


@pytest.mark.parametrize("args", [(-0.1, 2), (1.1, 2), (np.nan, 2), (0.5, -1), (0.5, 1.5)])
def test_eq16_validation(args):
    with pytest.raises(ValueError):
        merge_probability(*args)
    with pytest.raises(ValueError):
        merge_probability_mc(*args, 10, 0)


def test_eq16_mc_validation():
    with pytest.raises(ValueError, match="n_trials"):
        merge_probability_mc(0.5, 2, 0, 0)
    with pytest.raises(ValueError, match="scalars"):
        merge_probability_mc([0.5, 0.6], 2, 10, 0)


# ----------------------------------------------------------------------------
# Thm. 3.3
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def study():
    return thm33_study()


def test_thm33_grad_norm_decreases_with_T(study):
    g = study.grad_sq
    # Each step of T (x2) lowers the average by at least 5 standard errors.
    drops = g[:-1] - g[1:]
    se = np.sqrt(study.grad_sq_se[:-1] ** 2 + study.grad_sq_se[1:] ** 2)
    assert np.all(drops > 5 * se), (g, study.grad_sq_se)
    assert g[-1] < g[0] / 3


def test_thm33_fit_and_bound_consistent(study):
    # The argument's inequality holds for every T (with the measured pruning
    # error; the margin is large, so the finite number of repeats is harmless).
    assert np.all(study.grad_sq <= study.bound), (study.grad_sq, study.bound)
    # The Eq. (14) shape fits the measurements to 15% (relative residual).
    assert study.fit_rel_err <= 0.15, study.fit_rel_err
    # The fitted rate constant is positive and below what the argument gives:
    # 2 Delta / c + L c G^2 = (2 G0/G + G/G0) G sqrt(L Delta).
    assert 0.0 < study.C_rate <= 2 * study.G0 / study.G + study.G / study.G0
    # The fitted floor is below the pruning term of the bound at the largest T.
    assert 0.0 <= study.floor <= study.L**2 * study.prune_err_sq[-1]
    # Theorem's step: zeta = c / sqrt(T), and the two bounds as documented.
    zeta, T, L = study.step, study.T, study.L
    assert_allclose(zeta, study.c / np.sqrt(T), rtol=1e-15, atol=0)
    head = 2 * (study.f0 - study.f_star) / (zeta * (T + 1)) + L * zeta * study.G**2
    assert_allclose(study.bound, head + L**2 * study.prune_err_sq, rtol=1e-12, atol=0)
    assert_allclose(study.bound_paper, head + L**2 * study.prune_err0, rtol=1e-12, atol=0)
    assert study.f_star < study.f0


def test_erratum_thm33_eq23():
    # Eq. (23) (||w_t - w~_t||^2 < ||w_0 - w~_0||^2, "by shrinkage") does not
    # hold for DPF: the pruned coordinates keep receiving gradient (the
    # feedback) and grow even with L2 shrinkage on the dense weights.  With a
    # small initialization the last line of the proof, which uses Eq. (23), is
    # violated, while the inequality with the averaged pruning error holds.
    s = thm33_study(T_values=(100, 400, 1600, 6400), seed=0, init_scale=1e-3, k=5,
                    teacher_support=20, n_repeats=8)
    assert np.all(s.prune_err_sq_max > 1e3 * s.prune_err0)
    margin = 5 * s.grad_sq_se[-1]
    assert s.grad_sq[-1] - margin > 2 * s.bound_paper[-1], (s.grad_sq, s.bound_paper)
    assert np.all(s.grad_sq <= s.bound)


_NM_SMALL = dict(T_values=(25, 100, 400), seed=1, n_samples=128, n_repeats=8)


@pytest.fixture(scope="module")
def nm_pair():
    return (thm33_study(regularizer="l2", **_NM_SMALL),
            thm33_study(regularizer="nm", **_NM_SMALL))


def test_thm33_nm_repulsion_is_eq10_of_the_initial_pruned_graph(nm_pair):
    # The logistic model as a DAG (inputs -> one output): every module a singleton,
    # so Eq. (10) gives r_j = 1 * 1 * exp(w~_j), w~_j = |w0_j| / max kept |w0| on the
    # top-k edges (Eq. 9 normalization), and r_j = 1 on the pruned ones.
    l2, nm = nm_pair
    k = 10
    w0 = nm.w0
    kept = np.argsort(-np.abs(w0), kind="stable")[:k]
    r = np.ones_like(w0)
    r[kept] = np.exp(np.abs(w0[kept]) / np.abs(w0[kept]).max())
    assert_allclose(nm.r, r, rtol=1e-15, atol=0)
    assert_allclose(l2.r, 1.0, rtol=0, atol=0)
    assert nm.r.max() == pytest.approx(np.e, rel=1e-15)
    # Same data and w0: only the penalty differs, and L = L_J + mu max r.
    assert_allclose(nm.w0, l2.w0, rtol=0, atol=0)
    assert nm.L - l2.L == pytest.approx(1e-2 * (np.e - 1.0), rel=1e-9)
    assert nm.f0 - l2.f0 == pytest.approx(0.5e-2 * np.sum((r - 1.0) * w0**2), rel=1e-9)


def test_thm33_nm_measured_gradient_under_the_bound_and_decreasing(nm_pair):
    # With R held constant the NM-regularized objective is L-smooth and (*) applies.
    for s in nm_pair:
        assert np.all(s.grad_sq + 3 * s.grad_sq_se <= s.bound), (s.regularizer, s.grad_sq)
        drops = s.grad_sq[:-1] - s.grad_sq[1:]
        assert np.all(drops > 5 * np.hypot(s.grad_sq_se[:-1], s.grad_sq_se[1:]))
    l2, nm = nm_pair
    assert not np.allclose(nm.grad_sq, l2.grad_sq, rtol=1e-3, atol=0), "NM run is the L2 run"


def test_thm33_nm_with_r_one_is_l2():
    # w0 = 0: no kept weight is non-zero, W~ = 0 and R = 1 (Eq. 9-10), so NM
    # regularization is L2 at the same mu and the two studies coincide exactly.
    kw = dict(T_values=(10, 40), seed=2, n_samples=64, n_repeats=2, init_scale=0.0)
    l2, nm = thm33_study(regularizer="l2", **kw), thm33_study(regularizer="nm", **kw)
    assert_allclose(nm.r, 1.0, rtol=0, atol=0)
    for name in ("grad_sq", "bound", "prune_err_sq", "step"):
        assert_allclose(getattr(nm, name), getattr(l2, name), rtol=0, atol=0, err_msg=name)


@pytest.mark.parametrize("kwargs", [
    {"T_values": (10,)}, {"T_values": (0, 10)}, {"k": 0}, {"k": 21},
    {"teacher_support": 21}, {"reg": 0.0}, {"init_scale": -1.0},
    {"decay": "both"}, {"n_repeats": 1}, {"regularizer": "l1"},
])
def test_thm33_validation(kwargs):
    with pytest.raises(ValueError):
        thm33_study(**kwargs)
