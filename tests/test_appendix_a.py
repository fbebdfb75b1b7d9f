"""Appendix A (Fig. 5-7): the coefficient matrix C of a tree, a DAG and a general graph.

Oracles: a plain NumPy layered computation written here (Eq. 15 with skips),
numpy.linalg.solve of the whole linear system, and the NM forward (Eq. 3).
"""
import numpy as np
import pytest

from refimpl import forward
from refimpl.activations import get_activation
from refimpl.appendix_a import (
    coefficient_residual,
    dag_coefficients,
    graph_coefficients,
    solve_coefficients,
    to_network,
    tree_coefficients,
)
from refimpl.graph import graph_from_mask
from refimpl.model import NMNetwork

WIDTHS = [4, 5, 3, 6, 2]  # n_0 (inputs) ... n_m (outputs): m = 4 levels, 3 hidden
B = 6


def layers(seed, widths=WIDTHS, bias=True, skip=False):
    """Random W^i (n_i, n_{i-1}) as in Eq. (15), biases c^i, skips V^(i,k)."""
    rng = np.random.default_rng(seed)
    m = len(widths) - 1
    Ws = [rng.standard_normal((widths[i], widths[i - 1])) / np.sqrt(widths[i - 1])
          for i in range(1, m + 1)]
    cs = [0.3 * rng.standard_normal(widths[i]) for i in range(1, m + 1)] if bias else None
    if cs is not None:
        cs[-1][:] = 0.0  # NM outputs have no bias (Z = f(X) Wm^T)
    skips = {}
    if skip:  # ResNet-like: level k feeds level i > k + 1 (not input -> output)
        for k, i in [(0, 2), (0, 3), (1, 3), (1, 4), (2, 4)]:
            skips[(k, i)] = 0.5 * rng.standard_normal((widths[i], widths[k]))
    X0 = rng.standard_normal((B, widths[0]))
    return Ws, cs, skips, X0


def plain_layered(X0, Ws, cs, skips, f):
    """Oracle: the layered forward, level after level.  Level 0 is read as it
    is (inputs are not activated), later levels through f; returns the
    pre-activation of every level 1..m (the last one is the output Z)."""
    vals = [X0]
    m = len(Ws)
    for i in range(1, m + 1):
        act = lambda k: vals[k] if k == 0 else f(vals[k])  # noqa: E731
        pre = act(i - 1) @ Ws[i - 1].T  # Eq. (15): X^i = X^(i-1) W^iT
        for (k, j), V in skips.items():
            if j == i:
                pre = pre + act(k) @ V.T  # Fig. 6: skip V^(i,k)
        if cs is not None:
            pre = pre + cs[i - 1]
        vals.append(pre)
    return vals[1:]


def system_of(Ws, cs, skips):
    return dag_coefficients(Ws, skips, cs) if skips else tree_coefficients(Ws, cs)


# ----------------------------------------------------------------------------
# structure of the figures
# ----------------------------------------------------------------------------


def test_fig5_tree_block_structure():
    Ws, _, _, _ = layers(0, bias=False)
    s = tree_coefficients(Ws)
    n0, n = WIDTHS[0], sum(WIDTHS[1:])
    assert s.C.shape == (n, n0 + n) and s.n_known == n0 and not s.has_bias
    assert s.n_out == WIDTHS[-1]
    m = len(Ws)
    for i in range(1, m + 1):
        rows = s.rows(f"X{i}")
        for k in range(0, m + 1):
            blk = s.C[rows, s.block(f"X{k}")]
            if k == i - 1:
                np.testing.assert_array_equal(blk, Ws[i - 1])  # Fig. 5: W^i
            elif k == i:
                np.testing.assert_array_equal(blk, -np.eye(WIDTHS[i]))  # Fig. 5: -E^i
            else:
                assert not blk.any(), f"Fig. 5: block ({i}, {k}) must be 0"
    # Asynchronous: the unknown block is lower triangular.
    assert not np.triu(s.C_unknown, 1).any()


def test_fig6_dag_block_structure():
    Ws, cs, skips, _ = layers(1, skip=True)
    s = dag_coefficients(Ws, skips, cs)
    assert s.has_bias and s.block("1") == slice(WIDTHS[0], WIDTHS[0] + 1)
    for (k, i), V in skips.items():
        np.testing.assert_array_equal(s.C[s.rows(f"X{i}"), s.block(f"X{k}")], V)
        assert s.structure[s.rows(f"X{i}"), s.block(f"X{k}")].all()
    for i in range(1, len(Ws) + 1):
        np.testing.assert_array_equal(s.C[s.rows(f"X{i}"), s.block("1")][:, 0], cs[i - 1])
    assert not np.triu(s.C_unknown, 1).any(), "Fig. 6: skips stay in the lower triangle"
    assert np.all(np.diag(s.C_unknown) == -1.0)


# ----------------------------------------------------------------------------
# tree and DAG: the linear system of C and the NM forward reproduce the layers
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("skip", [False, True], ids=["tree", "dag"])
def test_linear_system_reproduces_layered_forward(skip, bias):
    Ws, cs, skips, X0 = layers(2, bias=bias, skip=skip)
    s = system_of(Ws, cs, skips)
    oracle = np.hstack(plain_layered(X0, Ws, cs, skips, lambda x: x))
    X = solve_coefficients(s, X0)
    # Forward substitution performs the same sums as the layered loop in
    # another order: rounding of a few ulps of |terms| ~ 1, so rtol 1e-12 with
    # atol 1e-13 for entries near 0.
    np.testing.assert_allclose(X, oracle, rtol=1e-12, atol=1e-13,
                               err_msg="Appendix A: X C^T = 0 vs the layered forward (Eq. 15)")
    known = np.hstack([X0] + ([np.ones((B, 1))] if bias else []))
    R = np.hstack([known, oracle]) @ s.C.T  # X C^T = 0
    np.testing.assert_allclose(R, 0.0, rtol=0, atol=1e-13, err_msg="Appendix A: X C^T = 0")
    np.testing.assert_allclose(coefficient_residual(s, X0, oracle), R, rtol=0, atol=1e-14)


@pytest.mark.parametrize("activation", ["identity", "tanh"])
@pytest.mark.parametrize("skip", [False, True], ids=["tree", "dag"])
def test_nm_forward_on_layered_k_reproduces_layers(skip, activation):
    Ws, cs, skips, X0 = layers(3, skip=skip)
    s = system_of(Ws, cs, skips)
    net, mask = to_network(s, activation=activation)
    g = graph_from_mask(net.K, mask)
    fwd = forward(net, X0, g)
    # Every module is a singleton: one level per hidden layer, no solve at all.
    assert g.schedule.is_dag and g.schedule.max_module_size == 1
    assert g.schedule.n_levels == len(Ws) - 1
    assert fwd.iterations == 0, "a layered K needs zero Newton iterations"
    assert g.n_edges == int(mask.sum())
    f = get_activation(activation).f
    levels = plain_layered(X0, Ws, cs, skips, f)
    # Singletons evaluate Eq. (3) directly: the same sums as the oracle, in
    # another order; rtol 1e-12 covers the rounding (|terms| ~ 1).
    np.testing.assert_allclose(fwd.X, np.hstack(levels[:-1]), rtol=1e-12, atol=1e-13,
                               err_msg="NM forward (Eq. 3) vs layered hidden values")
    np.testing.assert_allclose(fwd.Z, levels[-1], rtol=1e-12, atol=1e-13,
                               err_msg="NM forward vs layered output (Appendix A)")
    R = coefficient_residual(s, X0, np.hstack([fwd.X, fwd.Z]), activation)
    np.testing.assert_allclose(R, 0.0, rtol=0, atol=1e-13,
                               err_msg="the NM solution satisfies the system of C")


def test_to_network_layout():
    Ws, cs, skips, _ = layers(4, skip=True)
    net, mask = to_network(dag_coefficients(Ws, skips, cs))
    n = WIDTHS
    off = np.cumsum([0] + n[1:-1])  # hidden levels 1..m-1 in K
    hid = lambda l: slice(off[l - 1], off[l])  # noqa: E731
    assert net.p == sum(n[1:-1]) and net.n_in == n[0] and net.n_out == n[-1]
    np.testing.assert_array_equal(net.K[hid(1), hid(2)], Ws[1].T)  # K[j, i] = w_ji
    np.testing.assert_array_equal(net.K[hid(1), hid(3)], skips[(1, 3)].T)
    np.testing.assert_array_equal(net.W1[hid(1)], Ws[0])
    np.testing.assert_array_equal(net.W1[hid(2)], skips[(0, 2)])
    np.testing.assert_array_equal(net.Wm[:, hid(3)], Ws[3])
    np.testing.assert_array_equal(net.Wm[:, hid(2)], skips[(2, 4)])
    np.testing.assert_array_equal(np.diag(net.K), np.concatenate(cs[:-1]))
    assert not np.diag(mask).any()
    assert not np.tril(mask).any(), "a layered K is strictly block upper triangular"
    # A zero weight stays an edge (the structure, not the value, decides).
    Ws[1][0, 0] = 0.0
    _, mask0 = to_network(tree_coefficients(Ws, cs))
    assert mask0[hid(1), hid(2)].all()


# ----------------------------------------------------------------------------
# the general graph (Fig. 7)
# ----------------------------------------------------------------------------


def cyclic_case(seed, p=12, n_in=3, n_out=2, activation="identity"):
    rng = np.random.default_rng(seed)
    mask = rng.random((p, p)) < 0.25
    for a in range(4):  # a planted 4-cycle: at least one non-trivial module
        mask[a, (a + 1) % 4] = True
    np.fill_diagonal(mask, False)
    K = np.where(mask, rng.standard_normal((p, p)), 0.0) * (0.5 / np.sqrt(0.25 * p))
    K[np.diag_indices(p)] = 0.3 * rng.standard_normal(p)
    net = NMNetwork(K, rng.standard_normal((p, n_in)) / np.sqrt(n_in),
                    rng.standard_normal((n_out, p)) / np.sqrt(p),
                    activation=activation, output="identity")
    return net, mask, rng.standard_normal((B, n_in))


def test_fig7_general_graph_nm_forward_solves_the_linear_system():
    net, mask, X0 = cyclic_case(5)
    g = graph_from_mask(net.K, mask)
    assert not g.schedule.is_dag and g.schedule.max_module_size > 1
    s = graph_coefficients(net, g)
    p, n0 = net.p, net.n_in
    node = s.C[:p, s.block("X")]
    np.testing.assert_array_equal(np.diag(node), -1.0)  # Fig. 7: -1 on the diagonal
    off = ~np.eye(p, dtype=bool)
    np.testing.assert_array_equal(node[off], (net.K * mask).T[off])  # Fig. 7: C[i, j] = w_ji
    np.testing.assert_array_equal(s.C[:p, s.block("1")][:, 0], np.diag(net.K))
    assert np.triu(node, 1).any(), "Fig. 7 fills the upper triangle too"

    fwd = forward(net, X0, g, atol=1e-14, rtol=1e-14)
    XZ = np.hstack([fwd.X, fwd.Z])
    # The module solves stop at ||r||_inf <= 1e-14 (1 + |x|); with f = identity
    # Newton is one exact LU step, so the residual is rounding: 1e-12.
    R = coefficient_residual(s, X0, XZ)
    np.testing.assert_allclose(R, 0.0, rtol=0, atol=1e-12, err_msg="Fig. 7: X C^T = 0")
    # Oracle: the full linear system at once, [X0, 1, X, Z] C^T = 0.
    Ck, Cu = s.C[:, :n0 + 1], s.C[:, n0 + 1:]
    known = np.hstack([X0, np.ones((B, 1))])
    direct = np.linalg.solve(Cu, -(known @ Ck.T).T).T
    cond = np.linalg.cond(Cu)
    assert cond < 1e3
    # Both are backward stable: forward error <= ~cond * eps * |x| per solve,
    # cond < 1e3 here, so 1e-12 relative with a 1e-12 floor.
    np.testing.assert_allclose(XZ, direct, rtol=1e-12, atol=1e-12,
                               err_msg="NM forward (Eq. 3) vs dense solve of Fig. 7")
    np.testing.assert_allclose(solve_coefficients(s, X0), direct, rtol=1e-12, atol=1e-12)


def test_fig7_nonlinear_reading_is_eq3():
    # With f = tanh the same C, read with activated off-diagonal columns, is
    # Eq. (3): the NM forward's solution zeroes it.
    net, mask, X0 = cyclic_case(6, activation="tanh")
    g = graph_from_mask(net.K, mask)
    fwd = forward(net, X0, g, atol=1e-13, rtol=1e-13)
    s = graph_coefficients(net, g)
    R = coefficient_residual(s, X0, np.hstack([fwd.X, fwd.Z]), "tanh")
    # Per-module stop test 1e-13 (1 + |x|) plus rounding of the upstream sums.
    np.testing.assert_allclose(R, 0.0, rtol=0, atol=1e-12, err_msg="Eq. (3) via Fig. 7")
    # The linear reading is not zero at the nonlinear solution.
    assert np.abs(coefficient_residual(s, X0, np.hstack([fwd.X, fwd.Z]))).max() > 1e-3


def test_graph_round_trip():
    net, mask, _ = cyclic_case(7, activation="tanh")
    g = graph_from_mask(net.K, mask)
    back, mask2 = to_network(graph_coefficients(net, g), activation="tanh")
    np.testing.assert_array_equal(mask2, mask)
    np.testing.assert_array_equal(back.K, net.K * (mask | np.eye(net.p, dtype=bool)))
    np.testing.assert_array_equal(back.W1, net.W1)
    np.testing.assert_array_equal(back.Wm, net.Wm)


# ----------------------------------------------------------------------------
# erratum and validation
# ----------------------------------------------------------------------------


def test_erratum_fig5_last_block_sign():
    """Fig. 5-6 print the last diagonal block as +E^m; with it the system
    gives X^m = -X^(m-1) W^mT, contradicting Eq. (15).  It is -E^m."""
    Ws, _, _, X0 = layers(8, bias=False)
    s = tree_coefficients(Ws)
    out = s.rows(f"X{len(Ws)}")
    assert np.all(np.diag(s.C[out, s.block(f"X{len(Ws)}")]) == -1.0)
    oracle = plain_layered(X0, Ws, None, {}, lambda x: x)[-1]
    C_paper = s.C.copy()
    C_paper[out, s.block(f"X{len(Ws)}")] = np.eye(WIDTHS[-1])  # as printed
    Cu = C_paper[:, s.n_known:]
    X = np.linalg.solve(Cu, -(X0 @ C_paper[:, :s.n_known].T).T).T
    # Same arithmetic up to rounding: rtol 1e-12.
    np.testing.assert_allclose(X[:, out], -oracle, rtol=1e-12, atol=1e-13)
    assert np.abs(X[:, out] - oracle).max() > 0.1


def test_validation():
    Ws, cs, _, X0 = layers(9)
    with pytest.raises(ValueError, match="weights\\[1\\]"):
        tree_coefficients([Ws[0], Ws[1].T] + Ws[2:])
    with pytest.raises(ValueError, match="biases"):
        tree_coefficients(Ws, cs[:-1])
    with pytest.raises(ValueError, match="skips"):
        dag_coefficients(Ws, {(1, 2): np.zeros((WIDTHS[2], WIDTHS[1]))})  # not a skip
    with pytest.raises(ValueError, match="skips"):
        dag_coefficients(Ws, {(0, 2): np.zeros((2, 2))})  # wrong shape
    # An input -> output skip or an output bias has no place in an NMNetwork.
    with pytest.raises(ValueError, match="output"):
        to_network(dag_coefficients(Ws, {(0, 4): np.ones((WIDTHS[4], WIDTHS[0]))}))
    cs[-1][:] = 1.0
    with pytest.raises(ValueError, match="output"):
        to_network(tree_coefficients(Ws, cs))
    with pytest.raises(ValueError, match="hidden"):
        to_network(tree_coefficients(Ws[:1]))
    with pytest.raises(ValueError, match="X0"):
        solve_coefficients(tree_coefficients(Ws), X0[:, :2])
