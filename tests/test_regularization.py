"""NM regularization: Eq. (9)-(11), Thm. 3.1 (Eq. 12) and its errata.

Four kinds of checks: a hand-solved fixture; invariants under hypothesis
(small, bounded inputs from ``tests/strategies.py``); central differences in
float64 for the gradient of Eq. (11), which show the two errata of Thm. 3.1
(``proofs/thm3_1.md``); input validation.  Every tolerance states ``rtol``
and ``atol`` and says why.
"""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from refimpl.graph import graph_from_mask, prune
from refimpl.testing import central_difference
from refimpl.regularization import (
    nm_proximal,
    nm_rate_times,
    NMRepulsion,
    l2_gradient,
    l2_penalty,
    nm_gradient,
    nm_penalty,
    nm_repulsion,
    nm_update,
    nm_repulsion_sparse,
)
from strategies import dense_K

EPS = np.finfo(np.float64).eps
E = math.e


def central_diff(f, K, h):
    """Central-difference gradient of the scalar ``f`` at ``K``, every entry."""
    return central_difference(f, K, h)


def off_diagonal(p):
    return ~np.eye(p, dtype=bool)


# ----------------------------------------------------------------------------
# hand-solved fixture
# ----------------------------------------------------------------------------

# Edges (|K| >= 0.2): 0 -> 1 (0.5), 1 -> 0 (-1.0), 1 -> 2 (0.25), 2 -> 3 (-0.75).
# Modules: {0, 1} (size 2), {2}, {3}.  The biases (3.0) exceed max|A| = 1 and
# must not act as the normalizer.
K_HAND = np.array([
    [3.0, 0.5, 0.1, 0.1],
    [-1.0, 3.0, 0.25, 0.1],
    [0.1, 0.1, 3.0, -0.75],
    [-0.1, 0.1, 0.1, 3.0],
])


def test_hand_solved_fixture():
    g = prune(K_HAND, gamma=0.2)
    rep = nm_repulsion(g)
    W = np.zeros((4, 4))
    W[0, 1], W[1, 0], W[1, 2], W[2, 3] = 0.5, 1.0, 0.25, 0.75
    z = np.array([2.0, 2.0, 1.0, 1.0])
    zz = np.array([[4, 4, 2, 2], [4, 4, 2, 2], [2, 2, 1, 1], [2, 2, 1, 1]], dtype=float)
    R = zz.copy()
    R[0, 1], R[1, 0], R[1, 2], R[2, 3] = 4 * E**0.5, 4 * E, 2 * E**0.25, E**0.75
    # One division / one exp per entry: agreement to a few ulps.
    assert rep.scale == 1.0
    assert_array_equal(rep.W_tilde, W)
    assert_allclose(rep.D, np.exp(-W), rtol=1e-15, atol=0, err_msg="Eq. (9)")
    assert_array_equal(rep.z, z)
    assert_allclose(rep.R, R, rtol=4 * EPS, atol=0, err_msg="Eq. (10)")

    alpha, eta = 0.5, 0.1
    # Kept entries R w^2, then the 12 - 4 pruned entries: 0.1^2 * (sum of z_i z_j
    # over i != j, 26, minus the kept pairs 4 + 4 + 2 + 1 = 11).
    P = alpha * (4 * E**0.5 * 0.25 + 4 * E * 1.0 + 2 * E**0.25 * 0.0625
                 + E**0.75 * 0.5625 + 0.01 * 15)
    assert_allclose(nm_penalty(K_HAND, g, alpha), P, rtol=1e-14, atol=0, err_msg="Eq. (11)")
    G = nm_gradient(K_HAND, g, alpha)
    assert G[0, 1] == pytest.approx(2 * alpha * 4 * E**0.5 * 0.5, rel=1e-15)
    assert G[3, 0] == pytest.approx(2 * alpha * 2 * -0.1, rel=1e-15)
    assert_array_equal(np.diag(G), 0.0)

    new = nm_update(K_HAND, np.ones((4, 4)), g, alpha, eta)
    assert new[0, 1] == pytest.approx(0.5 * (1 - eta * alpha * 4 * E**0.5) - eta, rel=1e-15)
    assert new[1, 0] == pytest.approx(-1.0 * (1 - eta * alpha * 4 * E) - eta, rel=1e-15)
    assert new[3, 2] == pytest.approx(0.1 * (1 - eta * alpha * 1.0) - eta, rel=1e-15)
    assert_allclose(np.diag(new), 3.0 - eta, rtol=1e-15, atol=0,
                    err_msg="Thm. 3.1: the biases take a plain gradient step")

    assert l2_penalty(K_HAND, alpha) == pytest.approx(
        alpha * (0.25 + 1 + 0.0625 + 0.5625 + 8 * 0.01), rel=1e-14)


def test_no_edges_and_zero_weights():
    K = dense_K(3, 4)
    # No edge: every node its own module, W~ = 0, R = 1.
    rep = nm_repulsion(prune(K, k=0))
    assert rep.scale == 0.0
    assert_array_equal(rep.W_tilde, 0.0)
    assert_array_equal(rep.D, 1.0)
    assert_array_equal(rep.R, 1.0)
    assert nm_penalty(K, prune(K, k=0), 2.0) == pytest.approx(2.0 * l2_penalty(K, 1.0), rel=1e-14)
    # Every edge kept but all weights 0: max|A| = 0, no division by zero,
    # one module of size 4, R = 16.
    Z = np.zeros((4, 4))
    rep = nm_repulsion(prune(Z, gamma=0.0))
    assert rep.scale == 0.0
    assert_array_equal(rep.W_tilde, 0.0)
    assert_array_equal(rep.R, 16.0)
    # The empty graph.
    rep = nm_repulsion(prune(np.zeros((0, 0)), k=0))
    assert rep.R.shape == (0, 0) and rep.z.shape == (0,)
    assert nm_penalty(np.zeros((0, 0)), rep, 1.0) == 0.0


# ----------------------------------------------------------------------------
# invariants (hypothesis)
# ----------------------------------------------------------------------------


@st.composite
def graphs(draw, max_p=7):
    """(K, graph) with K seeded standard normals and top-k pruning."""
    p = draw(st.integers(1, max_p))
    K = dense_K(draw(st.integers(0, 2**16)), p, scale=draw(st.sampled_from([0.1, 1.0, 3.0])))
    k = draw(st.integers(0, p * (p - 1)))
    return K, prune(K, k=k)


@given(graphs())
def test_repulsion_invariants(Kg):
    K, g = Kg
    rep = nm_repulsion(g)
    M = g.mask()
    # W~ in [0, 1], zero off the kept edges and on the diagonal, max 1.
    assert np.all((rep.W_tilde >= 0) & (rep.W_tilde <= 1))
    assert_array_equal(rep.W_tilde[~M], 0.0)
    if g.n_edges:
        assert rep.W_tilde.max() == 1.0
        assert_allclose(rep.W_tilde[M] * rep.scale, np.abs(K[M]), rtol=2 * EPS, atol=0)
    assert_array_equal(rep.D, np.exp(-rep.W_tilde))
    # z_i = size of node i's module; each module contributes 1 to sum(1/z).
    assert_array_equal(rep.z, np.bincount(g.labels)[g.labels])
    assert np.sum(1.0 / rep.z) == pytest.approx(g.n_modules, rel=1e-12)
    # R D = z z^T: the z part of R is symmetric; z_i z_j <= R <= e z_i z_j, R >= 1.
    zz = np.outer(rep.z, rep.z)
    assert_allclose(rep.R * rep.D, zz, rtol=4 * EPS, atol=0, err_msg="Eq. (10)")
    assert np.all(rep.R >= zz) and np.all(rep.R <= E * zz * (1 + 4 * EPS))
    assert np.all(rep.R >= 1.0)
    assert_array_equal(rep.R[~M], zz[~M])


@given(st.integers(1, 7), st.integers(0, 2**16), st.integers(-3, 3), st.data())
def test_repulsion_scale_invariant_and_permutation_equivariant(p, seed, e2, data):
    K = dense_K(seed, p)
    k = data.draw(st.integers(0, p * (p - 1)))
    rep = nm_repulsion(prune(K, k=k))
    # Scaling by a power of two is exact, so the mask and W~ are unchanged.
    rep_c = nm_repulsion(prune(2.0**e2 * K, k=k))
    assert_array_equal(rep_c.R, rep.R)
    # Relabeling the nodes permutes R (threshold pruning: no index tie-breaking).
    perm = np.random.default_rng(seed).permutation(p)
    gamma = float(np.median(np.abs(K[off_diagonal(p)]))) if p > 1 else 0.0
    rep = nm_repulsion(prune(K, gamma=gamma))
    rep_p = nm_repulsion(prune(K[np.ix_(perm, perm)], gamma=gamma))
    assert_array_equal(rep_p.R, rep.R[np.ix_(perm, perm)])
    assert_array_equal(rep_p.z, rep.z[perm])


@given(graphs(), st.floats(0.0, 10.0), st.integers(0, 2**16))
def test_penalty_properties(Kg, alpha, seed):
    K, g = Kg
    p = g.p
    P = nm_penalty(K, g, alpha)
    G = nm_gradient(K, g, alpha)
    assert P >= 0.0
    # Euler: a quadratic form equals half of <K, its gradient>.
    assert_allclose(P, 0.5 * np.sum(K * G), rtol=1e-12, atol=1e-300, err_msg="Eq. (11)")
    # R >= 1, so NM is at least as strong as L2; both linear in alpha.
    assert P >= l2_penalty(K, alpha) * (1 - 1e-12)
    # P = fl(alpha * S) with the same sum S: doubling alpha is exact unless the
    # product is subnormal, where one rounding of it is off by <= 1 subnormal ulp.
    TINY = np.finfo(np.float64).smallest_subnormal
    assert_allclose(nm_penalty(K, g, 2 * alpha), 2 * P, rtol=0, atol=2 * TINY)
    assert_allclose(l2_gradient(K, alpha), 2 * alpha * K * off_diagonal(p), rtol=0, atol=0)
    # The biases are not penalized: the diagonal of K does not matter.
    K2 = K.copy()
    np.fill_diagonal(K2, dense_K(seed, p).diagonal())
    assert nm_penalty(K2, g, alpha) == P  # the diagonal is zeroed before the sum
    # A precomputed NMRepulsion gives the same results.
    rep = nm_repulsion(g)
    assert nm_penalty(K, rep, alpha) == P
    assert_array_equal(nm_gradient(K, rep, alpha), G)


@given(graphs(), st.floats(0.0, 5.0), st.floats(1e-3, 1.0), st.integers(0, 2**16))
def test_update_is_descent_on_half_penalty(Kg, alpha, eta, seed):
    K, g = Kg
    p = g.p
    grad = dense_K(seed, p)
    new = nm_update(K, grad, g, alpha, eta)
    # Thm. 3.1 == K - eta (grad + alpha R K) off the diagonal == one gradient step
    # on J + nm_penalty(., alpha / 2).  Rounding: a few ulps of the largest term.
    half = nm_gradient(K, g, alpha / 2)
    tol = 8 * EPS * (np.abs(K) * (1 + eta * alpha * nm_repulsion(g).R) + eta * np.abs(grad))
    assert np.all(np.abs(new - (K - eta * (grad + half))) <= tol), "Thm. 3.1"
    assert_array_equal(np.diag(new), np.diag(K) - eta * np.diag(grad))
    # alpha = 0: plain gradient descent.
    assert_array_equal(nm_update(K, grad, g, 0.0, eta), K - eta * grad)


def test_update_does_not_modify_inputs_and_out():
    g = prune(K_HAND, gamma=0.2)
    K = K_HAND.copy()
    grad = dense_K(5, 4)
    grad0 = grad.copy()
    new = nm_update(K, grad, g, 0.3, 0.05)
    assert new is not K
    assert_array_equal(K, K_HAND)
    assert_array_equal(grad, grad0)
    # out=K: in place; out=grad: aliasing the gradient is safe too.
    res = nm_update(K, grad, g, 0.3, 0.05, out=K)
    assert res is K
    assert_array_equal(K, new)
    res = nm_update(K_HAND, grad, g, 0.3, 0.05, out=grad)
    assert res is grad
    assert_array_equal(grad, new)


# ----------------------------------------------------------------------------
# errata of Thm. 3.1 (DESIGN.md section 9), by central differences
# ----------------------------------------------------------------------------


def test_erratum_thm31_factor_two():
    """Eq. (17) says d/dw [alpha sum r w^2] = alpha r w; it is 2 alpha r w, and
    the update of Thm. 3.1 is one descent step on J + (alpha/2) sum r w^2."""
    p, alpha, eta = 6, 0.3, 0.05
    K = dense_K(11, p)
    g = prune(K, k=14)  # R from this graph, held constant below
    assert g.schedule.module_sizes.max() > 1, "want a non-trivial module in the fixture"
    rep = nm_repulsion(g)
    off = off_diagonal(p)

    # With R constant the penalty is quadratic in K, so the central difference has
    # no truncation error: only rounding, about eps * (sum of |terms|) / h.
    h = 1e-3
    fd = central_diff(lambda X: nm_penalty(X, g, alpha), K, h)
    scale = alpha * np.sum(rep.R * K * K)
    atol = 64 * EPS * scale / h
    assert_allclose(fd, nm_gradient(K, g, alpha), rtol=1e-9, atol=atol,
                    err_msg="gradient of Eq. (11) with R constant is 2 alpha r w")
    paper = alpha * rep.R * K * off  # Eq. (17) of the paper
    assert np.all(np.abs(fd - paper)[off] > 1e3 * (atol + 1e-9 * np.abs(fd[off]))), \
        "Eq. (17)'s alpha r w should be off by a factor 2 at every edge"
    assert_allclose(fd[off] / paper[off], 2.0, rtol=1e-6, atol=0)

    # Thm. 3.1 == gradient descent on F = J + (alpha/2) sum r w^2, with a
    # quadratic J(K) = 1/2 sum C (K - T)^2 (so again exact central differences).
    C, T = 1.0 + dense_K(12, p) ** 2, dense_K(13, p)

    def J(X):
        return 0.5 * np.sum(C * (X - T) ** 2)

    grad_J = C * (K - T)
    fd_half = central_diff(lambda X: J(X) + nm_penalty(X, g, alpha / 2), K, h)
    fd_full = central_diff(lambda X: J(X) + nm_penalty(X, g, alpha), K, h)
    atol_F = 64 * EPS * (J(K) + scale) / h
    new = nm_update(K, grad_J, g, alpha, eta)
    assert_allclose(new, K - eta * fd_half, rtol=1e-12, atol=eta * atol_F,
                    err_msg="Thm. 3.1 is descent on J + (alpha/2) sum r w^2")
    # ... and not descent on J + alpha sum r w^2 (Eq. 11 as written): off by
    # eta alpha r w at every edge.
    diff = np.abs(new - (K - eta * fd_full))
    assert np.all(diff[off] > 1e3 * eta * atol_F)
    assert_allclose(diff[off], eta * alpha * rep.R[off] * np.abs(K[off]), rtol=1e-6,
                    atol=eta * atol_F)


def _full_gradient(K, mask, alpha):
    """Chain rule for P(K) = alpha sum_{i != j} z_i z_j exp(m_ij |K_ij| / M) K_ij^2,
    M = max over the kept |K|, z and the mask fixed (unique argmax assumed)."""
    rep = nm_repulsion(graph_from_mask(K, mask))
    R, M = rep.R, rep.scale
    s = np.sign(K)
    G = 2 * alpha * R * K                       # R held constant (nm_gradient)
    G += alpha * mask * R * K**2 * s / M        # d W~_ij / d K_ij = sign / M
    a = np.unravel_index(np.argmax(np.where(mask, np.abs(K), -1.0)), K.shape)
    G[a] -= alpha * s[a] / M**2 * np.sum(mask * R * K**2 * np.abs(K))  # d M / d K_a
    np.fill_diagonal(G, 0.0)
    return G


def test_erratum_thm31_r_is_not_constant():
    """R depends on w through W~ = |A| / max|A|: the gradient of the full
    penalty K -> nm_penalty(K, graph(K)) is not 2 alpha r w at the kept edges,
    so the update of Thm. 3.1 treats R as a stop-gradient."""
    p, alpha = 5, 0.3
    K = dense_K(7, p)
    mask = prune(K, k=9).mask()
    off = off_diagonal(p)
    # Preconditions for a smooth full penalty near K under steps of size h: the
    # mask is held fixed (graph_from_mask), kept weights are far from 0 (|K| has a
    # kink there) and the largest kept magnitude is unique by a margin.
    h = 1e-5
    kept = np.sort(np.abs(K[mask]))
    assert kept[0] > 1e3 * h and kept[-1] - kept[-2] > 1e3 * h

    def full(X):  # R recomputed from X (only W~ changes: the mask is fixed)
        return nm_penalty(X, graph_from_mask(X, mask), alpha)

    fd = central_diff(full, K, h)
    frozen = nm_gradient(K, graph_from_mask(K, mask), alpha)
    # Central differences of a smooth function: truncation h^2/6 |P'''| plus
    # rounding ~eps |P| / h (P ~ 225 here, one module of 5 nodes: ~5e-9); the
    # observed error is <= 6e-9, so rtol 1e-6, atol 1e-7 leave a margin of ~20.
    rtol, atol = 1e-6, 1e-7
    assert_allclose(fd, _full_gradient(K, mask, alpha), rtol=rtol, atol=atol,
                    err_msg="chain rule through W~ (Eq. 9-10)")
    # Pruned entries: W~ = 0 there whatever their value, so R is constant.
    assert_allclose(fd[off & ~mask], frozen[off & ~mask], rtol=rtol, atol=atol)
    # Kept entries: the stop-gradient differs, at every one of them.
    gap = np.abs(fd - frozen)[mask]
    assert np.all(gap > 1e3 * (atol + rtol * np.abs(fd[mask]))), \
        "with R recomputed, the gradient is not 2 alpha r w at the kept edges"


def test_r_depends_on_w_through_z_discontinuously():
    """z (module sizes) is piecewise constant in w: it jumps where the mask
    changes, e.g. when an edge that closes a cycle crosses the threshold."""
    alpha = 1.0

    def penalty_at(w10):
        K = np.zeros((3, 3))
        K[0, 1], K[1, 2], K[1, 0] = 1.0, 0.8, w10  # 0 -> 1 -> 2, and 1 -> 0
        return nm_penalty(K, prune(K, gamma=0.5), alpha)

    for delta in (1e-6, 1e-12):
        below, above = penalty_at(0.5 - delta), penalty_at(0.5 + delta)
        # below: singletons, z = 1: e^1 * 1 + e^0.8 * 0.64 + 0.25
        # above: module {0, 1}, z = (2, 2, 1): 4e + 2 e^0.8 0.64 + 4 e^0.5 0.25
        jump = (4 * E + 2 * E**0.8 * 0.64 + E**0.5) - (E + E**0.8 * 0.64 + 0.25)
        assert_allclose(above - below, jump, rtol=1e-5, atol=0)


# ----------------------------------------------------------------------------
# input validation
# ----------------------------------------------------------------------------

G4 = prune(K_HAND, gamma=0.2)
BAD_K = K_HAND.copy()
BAD_K[0, 2] = np.nan


@pytest.mark.parametrize("call, name", [
    (lambda: nm_repulsion(K_HAND), "graph"),
    (lambda: nm_penalty(K_HAND, "g", 1.0), "graph"),
    (lambda: nm_penalty(np.ones((4, 3)), G4, 1.0), "K"),
    (lambda: nm_penalty(np.ones((3, 3)), G4, 1.0), "K"),
    (lambda: nm_penalty(BAD_K, G4, 1.0), "K"),
    (lambda: nm_penalty(K_HAND, G4, -1.0), "alpha"),
    (lambda: nm_penalty(K_HAND, G4, np.inf), "alpha"),
    (lambda: nm_penalty(K_HAND, G4, "x"), "alpha"),
    (lambda: nm_penalty(K_HAND, G4, True), "alpha"),
    (lambda: nm_gradient(K_HAND, G4, np.nan), "alpha"),
    (lambda: nm_update(K_HAND, np.ones((3, 3)), G4, 1.0, 0.1), "grad"),
    (lambda: nm_update(K_HAND, BAD_K, G4, 1.0, 0.1), "grad"),
    (lambda: nm_update(BAD_K, K_HAND, G4, 1.0, 0.1), "K"),
    (lambda: nm_update(K_HAND, K_HAND, G4, -0.5, 0.1), "alpha"),
    (lambda: nm_update(K_HAND, K_HAND, G4, 1.0, 0.0), "eta"),
    (lambda: nm_update(K_HAND, K_HAND, G4, 1.0, -0.1), "eta"),
    (lambda: nm_update(K_HAND, K_HAND, G4, 1.0, np.nan), "eta"),
    (lambda: nm_update(K_HAND, K_HAND, G4, 1.0, 0.1, out=np.zeros((4, 4), np.float32)), "out"),
    (lambda: l2_penalty(np.ones(3), 1.0), "K"),
    (lambda: l2_gradient(K_HAND, -1.0), "alpha"),
])
def test_validation(call, name):
    with pytest.raises(ValueError, match=f"^{name}:"):
        call()


def test_nm_repulsion_is_a_frozen_result():
    rep = nm_repulsion(G4)
    assert isinstance(rep, NMRepulsion) and rep.p == 4
    with pytest.raises(AttributeError):
        rep.R = None


# ----------------------------------------------------------------------------
# the per-batch forms (rank one + kept edges) against the dense reference
# ----------------------------------------------------------------------------
# Both routes evaluate the same floating-point expressions entry by entry
# (z_i z_j / d, then alpha r w or w / (1 + eta alpha r)); the tolerance allows
# a few ulps for a different instruction order in the compiled kernel.


@given(graphs(), st.sampled_from([0.0, 1e-3, 0.7]), st.sampled_from([1e-2, 0.5]))
def test_per_batch_forms_match_dense_reference(Kg, alpha, eta):
    K, g = Kg
    R = nm_repulsion(g).R
    off = ~np.eye(K.shape[0], dtype=bool)
    ref_rate = np.where(off, alpha * R * K, 0.0)
    assert_allclose(nm_rate_times(K, g, alpha), ref_rate, rtol=1e-13, atol=1e-15,
                    err_msg="alpha R K (Thm. 3.1, Eq. 10)")
    ref_prox = np.where(off, K / (1.0 + eta * (alpha * R)), K)
    assert_allclose(nm_proximal(K, g, alpha, eta), ref_prox, rtol=1e-13, atol=1e-15,
                    err_msg="K / (1 + eta alpha R) (implicit Thm. 3.1)")
    # nm_rate_times is half of the exact gradient (erratum, factor 2)
    assert_allclose(2.0 * nm_rate_times(K, g, alpha), nm_gradient(K, g, alpha),
                    rtol=1e-13, atol=1e-15)


def test_per_batch_forms_in_place_and_validation():
    K = dense_K(5, 6)
    g = prune(K, k=12)
    expected = nm_proximal(K, g, 0.3, 0.1)
    Kc = K.copy()
    assert nm_proximal(Kc, g, 0.3, 0.1, out=Kc) is Kc
    assert_array_equal(Kc, expected)
    for call, name in [
        (lambda: nm_proximal(K, g, -1.0, 0.1), "alpha"),
        (lambda: nm_proximal(K, g, 1.0, 0.0), "eta"),
        (lambda: nm_rate_times(K[:3, :3], g, 1.0), "K"),
        (lambda: nm_rate_times(K, "g", 1.0), "graph"),
        (lambda: nm_rate_times(K, g, 1.0, out=np.zeros((6, 6), np.float32)), "out"),
    ]:
        with pytest.raises(ValueError, match=f"^{name}:"):
            call()


@pytest.mark.parametrize("reg", ["nm", "l2"])
def test_trainer_per_batch_regularizer_matches_dense_rate(reg):
    from refimpl.train import Trainer, TrainConfig

    tr = Trainer(TrainConfig(nodes=9, edges=20, reg=reg, alpha=0.05, lr=0.3), 3, 2)
    g = tr.prune()
    K0 = tr.net.K.copy()
    # the dense reference: Thm. 3.1's rate alpha R (L2: R = 1), 0 on the diagonal
    rho = 0.05 * (nm_repulsion(g).R if reg == "nm" else np.ones_like(K0))
    np.fill_diagonal(rho, 0.0)
    assert_allclose(tr._reg_gradient(g), rho * K0, rtol=1e-13, atol=1e-15)
    tr._reg_shrink(g)
    assert_allclose(tr.net.K, K0 / (1.0 + tr.opt.lr * rho), rtol=1e-13, atol=1e-15)


def test_proximal_steps_solve_the_implicit_equation():
    """nm_proximal / l2_proximal return w with w = w0 - eta * d/dw of Thm. 3.1's
    (alpha/2) sum r w^2 (resp. (alpha/2) sum w^2, R = 1) at w itself: the backward-Euler
    step."""
    from refimpl.regularization import l2_proximal, nm_proximal

    rng = np.random.default_rng(5)
    K = rng.standard_normal((6, 6))
    graph = prune(K, k=12)
    alpha, eta = 0.3, 0.7
    W = nm_proximal(K, graph, alpha, eta)
    resid = W - (K - eta * nm_gradient(W, graph, alpha / 2))
    assert_allclose(resid, 0.0, rtol=0, atol=1e-14, err_msg="Thm. 3.1 implicit step")
    W2 = l2_proximal(K, alpha, eta)
    assert_allclose(W2 - (K - eta * l2_gradient(W2, alpha / 2)), 0.0, rtol=0, atol=1e-14)
    assert_array_equal(np.diag(W), np.diag(K))              # biases are not shrunk
    M = rng.standard_normal((3, 5))                        # a weight matrix: every entry
    assert_allclose(l2_proximal(M, alpha, eta, biases_on_diagonal=False),
                    M / (1 + eta * alpha), rtol=1e-15, atol=0)
    out = K.copy()
    assert nm_proximal(out, graph, alpha, eta, out=out) is out


def test_nm_with_unit_repulsion_is_l2_at_the_same_alpha():
    """DESIGN.md sec. 5: with no kept edges (every module a singleton, W~ = 0) R = 1, and the
    training steps of NM regularization and L2 coincide at the same alpha, bit for bit."""
    from refimpl.regularization import l2_proximal, nm_proximal

    rng = np.random.default_rng(11)
    K = rng.standard_normal((5, 5))
    g0 = prune(K, k=0)
    assert_array_equal(nm_repulsion(g0).R, np.ones((5, 5)))
    alpha, eta = 0.05, 0.3
    assert_array_equal(nm_proximal(K, g0, alpha, eta), l2_proximal(K, alpha, eta))
    assert_array_equal(nm_gradient(K, g0, alpha / 2), l2_gradient(K, alpha / 2))
    # the rate is Thm. 3.1's: the explicit step is nm_update's (1 - eta alpha) factor
    grad = rng.standard_normal((5, 5))
    assert_allclose(K - eta * (grad + l2_gradient(K, alpha / 2)),
                    nm_update(K, grad, g0, alpha, eta), rtol=1e-15, atol=1e-15)
    off = ~np.eye(5, dtype=bool)
    assert_allclose(l2_proximal(K, alpha, eta)[off], K[off] / (1 + eta * alpha),
                    rtol=1e-15, atol=0)


@given(graphs())
def test_sparse_repulsion_is_the_dense_R(Kg):
    """nm_repulsion_sparse (what the trainer's fused update pass reads): z z^T off the kept
    edges, z_i z_j / d on them, is Eq. (10)'s dense R of nm_repulsion, bit for bit
    (the same expressions)."""
    K, g = Kg
    rep = nm_repulsion(g)
    z, indptr, indices, d = nm_repulsion_sparse(g)
    R = np.outer(z, z)
    rows = np.repeat(np.arange(g.p), np.diff(indptr))
    R[rows, indices] = R[rows, indices] / d
    assert_array_equal(z, rep.z)
    assert_array_equal(d, rep.D[rows, indices])
    assert_array_equal(R, rep.R)
