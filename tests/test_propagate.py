"""Forward (Eq. 3) and backward (Eq. 4-8) through neural modules (Alg. 1).

Oracles (:mod:`refimpl.testing`): the independent dense whole-graph Newton, the
Eq. (3) residual, a plain NumPy MLP, central finite differences; and the
dot-product test.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import refimpl
from refimpl import ConvergenceError, NMNetwork, SolveStatus, backward, forward, loss_and_grad
from refimpl.activations import get_activation
from refimpl.graph import graph_from_mask
from refimpl.testing import (
    central_difference,
    dense_newton_forward,
    eq3_residual,
    plain_mlp,
    random_case,
)

# Gradient checks run the solves to 1e-13 so that the solver error divided
# by the finite-difference step (1e-13 / 1e-6) stays below 1e-7.
TIGHT = dict(atol=1e-13, rtol=1e-13)


def make_case(seed, p=12, n_in=4, n_out=3, B=5, k=None, scale=0.5, activation="tanh",
              output="softmax"):
    """:func:`refimpl.testing.random_case` with this file's defaults (k = 3p, scale 0.5)."""
    return random_case(seed, p=p, n_in=n_in, n_out=n_out, B=B, k=3 * p if k is None else k,
                       scale=scale, activation=activation, output=output)


@given(
    seed=st.integers(0, 10_000),
    p=st.integers(2, 14),
    density=st.floats(0.5, 4.0),
    scale=st.floats(0.2, 0.9),
    activation=st.sampled_from(["tanh", "sigmoid", "swish"]),
    B=st.integers(1, 4),
)
def test_eq3_residual_below_tolerance(seed, p, density, scale, activation, B):
    k = min(p * (p - 1), int(density * p))
    net, X0, _ = make_case(seed, p=p, B=B, k=k, scale=scale, activation=activation)
    atol = rtol = 1e-11
    try:
        fwd = forward(net, X0, atol=atol, rtol=rtol)
    except ConvergenceError as err:
        # Newton (+ continuation) may fail only on a non-contractive module:
        # for ||A_SS||_2 max|f'| < 1 the solution is unique and Newton must find it.
        g = err.result.graph
        Ass = g.A.toarray()[np.ix_(err.nodes, err.nodes)]
        lip = get_activation(activation).lipschitz
        assert np.linalg.norm(Ass, 2) * lip >= 1.0, "a contractive module failed to solve"
        return
    R = eq3_residual(net, fwd.graph, X0, fwd.X)
    # Per-module stop test plus rounding of the (exact) upstream sums.
    bound = atol + rtol * np.abs(fwd.X).max() + 1e-13 * (1 + np.abs(fwd.X).max())
    assert np.abs(R).max() <= 10 * bound, "Eq. (3) residual above the solver tolerance"
    assert fwd.converged
    # f(X) of fixed-point-solved modules comes from the kernel (exp-based tanh, within 4e-16
    # of NumPy's); elsewhere it is NumPy's activation.
    np.testing.assert_allclose(fwd.F, get_activation(activation).f(fwd.X), rtol=1e-15,
                               atol=1e-15)
    np.testing.assert_allclose(fwd.Z, fwd.F @ net.Wm.T, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_dense_whole_graph_newton(seed):
    # scale 0.3: contractive modules, so the solution is unique.
    net, X0, _ = make_case(seed, p=16, k=48, scale=0.3)
    fwd = forward(net, X0, **TIGHT)
    Xo, _ = dense_newton_forward(net, X0, fwd.graph)
    np.testing.assert_allclose(fwd.X, Xo, rtol=1e-11, atol=1e-12,
                               err_msg="Eq. (3): modules vs whole-graph Newton")


@pytest.mark.parametrize("mode, extra", [("sequential", {}), ("whole", {}),
                                         ("whole", {"whole_method": "fixed_point"})])
def test_modes_agree(mode, extra):
    net, X0, T = make_case(3, p=20, k=60, scale=0.4)
    g = net.prune()
    l0, g0, f0 = loss_and_grad(net, X0, T, g, **TIGHT)
    l1, g1, f1 = loss_and_grad(net, X0, T, g, mode=mode, **extra, **TIGHT)
    # sequential runs the same kernels module by module: identical results.
    tol = dict(rtol=0, atol=0) if mode == "sequential" else dict(rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(f1.X, f0.X, **tol)
    for name in ("K", "W1", "Wm"):
        np.testing.assert_allclose(getattr(g1, name), getattr(g0, name), **tol, err_msg=name)


@pytest.mark.parametrize("solver", ["fixed_point", "newton"])
def test_solvers_agree_on_contractive_modules(solver):
    net, X0, T = make_case(4, p=20, k=60, scale=0.3)
    g = net.prune()
    assert g.schedule.max_module_size > 1
    l0, g0, f0 = loss_and_grad(net, X0, T, g, solver="auto", **TIGHT)
    l1, g1, f1 = loss_and_grad(net, X0, T, g, solver=solver, **TIGHT)
    np.testing.assert_allclose(f1.X, f0.X, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(g1.K, g0.K, rtol=1e-9, atol=1e-11)
    # f and f' at the solution, whether the kernel returned them (fixed point) or the
    # activation evaluated them (Newton): NumPy's tanh as the oracle, 4e-16 apart at most.
    FT = np.tanh(f1.XT)
    np.testing.assert_allclose(f1.FT, FT, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(f1.DFT, 1.0 - FT**2, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("output", ["softmax", "identity", "sigmoid"])
@pytest.mark.parametrize("activation", ["tanh", "swish"])
def test_gradients_match_finite_differences(output, activation):
    net, X0, T = make_case(5, p=10, k=30, scale=0.6, activation=activation, output=output)
    if output == "sigmoid":
        T = (T > 0).astype(float)
    g = net.prune()
    assert g.schedule.max_module_size > 1, "the case should contain a module"
    loss, grads, _ = loss_and_grad(net, X0, T, g, **TIGHT)
    M = g.mask()
    rng = np.random.default_rng(0)
    kept = list(zip(*np.nonzero(M)))
    pruned = list(zip(*np.nonzero(~M & ~np.eye(net.p, dtype=bool))))
    # rtol 1e-6, atol 1e-7: FD truncation O(h^2) ~ 1e-12, solver error / h ~ 1e-7.
    tol = dict(rtol=1e-6, atol=1e-7)

    def loss_K(K, graph_of=lambda K: g.with_weights(K)):
        return loss_and_grad(net, X0, T, graph_of(K), **TIGHT)[0]

    for idx in [kept[i] for i in rng.choice(len(kept), 6, replace=False)]:
        np.testing.assert_allclose(grads.K[idx], central_difference(loss_K, net.K, index=idx), **tol,
                                   err_msg=f"Eq. (6): kept edge {idx}")
    for i in range(0, net.p, 3):
        np.testing.assert_allclose(grads.K[i, i], central_difference(loss_K, net.K, index=(i, i)), **tol,
                                   err_msg=f"Eq. (6): bias {i}")
    # A pruned entry: the gradient of the model with that edge present at weight 0.
    for idx in [pruned[i] for i in rng.choice(len(pruned), 4, replace=False)]:
        Mi = M.copy()
        Mi[idx] = True
        K0 = net.K.copy()
        K0[idx] = 0.0
        fd = central_difference(lambda K: loss_K(K, lambda K: graph_from_mask(K, Mi)), K0,
                                index=idx)
        np.testing.assert_allclose(grads.K[idx], fd, **tol,
                                   err_msg=f"Eq. (6): pruned entry {idx} (feedback)")

    def loss_param(name):
        def fun(W):
            other = net.copy()
            setattr(other, name, W)
            return loss_and_grad(other, X0, T, g, **TIGHT)[0]
        return fun

    for name, eq in (("W1", "Eq. (8)"), ("Wm", "Eq. (7)")):
        W = getattr(net, name)
        for idx in [tuple(rng.integers(0, s) for s in W.shape) for _ in range(5)]:
            np.testing.assert_allclose(getattr(grads, name)[idx],
                                       central_difference(loss_param(name), W, index=idx), **tol,
                                       err_msg=f"{eq}: {name}{idx}")


@pytest.mark.parametrize("backend", ["numpy", "numpy-generic"])
def test_whole_mode_adjoint_past_the_contractive_regime(backend):
    """mode="whole" on a network scaled to 3: Anderson's forward converges
    where A diag(f') is not a contraction, so the plain adjoint iteration
    overflows.  Its stop test once passed on inf (inf <= atol + rtol * inf)
    and returned non-finite gradients with status CONVERGED; now the
    iteration stops as failed and GMRES on J^T solves Eq. (4).  Oracle: the
    dense adjoint at the same X (refimpl.testing.dense_adjoint)."""
    from refimpl.model import NMNetwork, output_loss
    from refimpl.solvers.whole import whole_graph_adjoint
    from refimpl.testing import dense_adjoint

    net = NMNetwork.random(4, 30, 3, seed=0, k=120, scale=3.0)
    rng = np.random.default_rng(0)
    X0, T = rng.standard_normal((5, 4)), rng.integers(0, 3, 5)
    g = net.prune()
    loss, grads, fwd = loss_and_grad(net, X0, T, g, mode="whole", backend=backend, **TIGHT)
    X = np.asarray(fwd.X)
    assert fwd.converged
    _, G = output_loss(np.asarray(fwd.Z), T, net.output)
    # the case is the one meant: the plain adjoint iteration diverges here
    A = g.A.toarray()
    dF = get_activation(net.activation).df(X)
    _, _, _, ok = whole_graph_adjoint(A, dF.T, (G @ net.Wm).T, atol=1e-12, rtol=1e-12,
                                      max_iter=1000)
    assert not ok
    V, U = dense_adjoint(net, g, X, G)
    # GMRES to 1e-13 (TIGHT) on J^T, cond(J) ~ 1e2-1e3 here
    np.testing.assert_allclose(np.asarray(grads.U), U, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(np.asarray(grads.V), V, rtol=1e-8, atol=1e-10)
    assert np.isfinite(np.asarray(grads.K)).all()


def test_whole_graph_adjoint_fails_on_overflow():
    """The plain whole-graph adjoint iteration on a map of rate 3 overflows:
    it must report failure (it reported convergence once the tolerance
    atol + rtol * max|v| became inf)."""
    from refimpl.solvers.whole import whole_graph_adjoint

    p = 4
    A = 3.0 * np.eye(p)
    UT, VT, it, ok = whole_graph_adjoint(A, np.ones((p, 2)), np.ones((p, 2)), atol=1e-10,
                                         rtol=1e-10, max_iter=5000)
    assert not ok
    assert it < 5000  # stops at the overflow, not at max_iter


def test_adjoint_dot_product():
    """<G, dZ(dX0)> = <dL/dX0, dX0>: the backward is the adjoint of the
    linearized forward; dZ from the dense whole-graph Jacobian (independent)."""
    net, X0, _ = make_case(6, p=15, k=45, scale=0.7)
    fwd = forward(net, X0, **TIGHT)
    act = get_activation(net.activation)
    A = fwd.graph.A.toarray()
    rng = np.random.default_rng(1)
    G = rng.standard_normal((X0.shape[0], net.n_out))
    dX0 = rng.standard_normal(X0.shape)
    grads = backward(net, fwd, G)
    lhs = 0.0
    for s in range(X0.shape[0]):
        d = act.df(fwd.X[s])
        J = np.eye(net.p) - A.T * d[None, :]
        dx = np.linalg.solve(J, net.W1 @ dX0[s])
        lhs += G[s] @ (net.Wm @ (d * dx))
    rhs = np.sum((grads.U @ net.W1) * dX0)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-11, atol=1e-12, err_msg="adjoint of Eq. (3)-(4)")


def test_eq4_holds_and_v_is_gradient_wrt_activation():
    """Eq. (4): V = G Wm + (f'(X) * V) A^T, and V is dL/df(X), not dL/dX
    (the paper's "gradient of node"; proofs/errata.md)."""
    net, X0, T = make_case(7, p=12, k=36, scale=0.6)
    g = net.prune()
    loss, grads, fwd = loss_and_grad(net, X0, T, g, **TIGHT)
    from refimpl.model import output_loss
    _, G = output_loss(fwd.Z, T, net.output)
    dF = get_activation(net.activation).df(fwd.X)
    V, U = grads.V, grads.U
    np.testing.assert_allclose(V, G @ net.Wm + (dF * V) @ g.A.toarray().T, rtol=1e-12,
                               atol=1e-14, err_msg="Eq. (4)")
    # U solves J^T u = f' v_ext and V = v_ext + A_SS U: U = f' V holds up to
    # rounding amplified by cond(J) (~1e2 here).
    np.testing.assert_allclose(U, dF * V, rtol=1e-10, atol=1e-13)
    # dL/dx_i (summed over the batch) is the bias gradient; it equals sum U, not sum V.
    fd = central_difference(lambda K: loss_and_grad(net, X0, T, g.with_weights(K), **TIGHT)[0],
                            net.K, index=[(i, i) for i in range(net.p)])
    np.testing.assert_allclose(U.sum(0), fd, rtol=1e-6, atol=1e-7)
    assert np.abs(V.sum(0) - fd).max() > 1e-4, "V would equal dL/dX only if f' = 1"


def test_layered_graph_is_an_mlp():
    """Appendix A: a layered K (blocks strictly above the diagonal) is an MLP:
    one level per layer, every module a singleton, zero Newton iterations."""
    rng = np.random.default_rng(8)
    n_in, widths, n_out, B = 5, [4, 6, 3], 2, 7
    p = sum(widths)
    offs = np.cumsum([0] + widths)
    K = np.zeros((p, p))
    Ws, bs = [rng.standard_normal((n_in, widths[0]))], []
    for l in range(len(widths) - 1):
        W = rng.standard_normal((widths[l], widths[l + 1]))
        K[offs[l]:offs[l + 1], offs[l + 1]:offs[l + 2]] = W
        Ws.append(W)
    for l in range(len(widths)):
        b = rng.standard_normal(widths[l])
        K[np.arange(offs[l], offs[l + 1]), np.arange(offs[l], offs[l + 1])] = b
        bs.append(b)
    W1 = np.zeros((p, n_in))
    W1[:widths[0]] = Ws[0].T
    Wout = rng.standard_normal((widths[-1], n_out))
    Wm = np.zeros((n_out, p))
    Wm[:, offs[-2]:] = Wout.T
    net = NMNetwork(K, W1, Wm, activation="tanh", output="identity")
    X0 = rng.standard_normal((B, n_in))
    g = refimpl.prune(K, gamma=1e-300)  # every non-zero weight is an edge
    fwd = forward(net, X0, g)
    assert g.schedule.is_dag and g.schedule.n_levels == len(widths)
    assert fwd.iterations == 0
    H = plain_mlp(X0, Ws, bs, np.tanh)
    np.testing.assert_allclose(fwd.Z, H @ Wout, rtol=1e-13, atol=1e-14,
                               err_msg="NM forward vs MLP (Appendix A)")


def test_non_contractive_module_solved_by_newton():
    # A 2-cycle with |w| = 3: the map is not a contraction (3 * max tanh' = 3);
    # fixed-point iteration fails, Newton still finds a root.
    K = np.array([[0.0, 3.0], [3.0, 0.0]])
    net = NMNetwork(K, np.array([[1.0], [-0.5]]), np.array([[1.0, 1.0]]), output="identity")
    X0 = np.array([[0.2], [-1.0], [2.0]])
    g = refimpl.prune(K, k=2)
    fwd = forward(net, X0, g, atol=1e-12, rtol=1e-12)
    assert g.schedule.max_module_size == 2
    assert np.abs(eq3_residual(net, g, X0, fwd.X)).max() < 1e-10
    with pytest.raises(ConvergenceError):
        forward(net, X0, g, solver="fixed_point", max_iter=5)


def test_unsolvable_module_raises_convergence_error():
    # Identity activation: x1 = c1 + x2, x2 = c2 + x1 has no solution when c1 + c2 != 0.
    K = np.array([[0.5, 1.0], [1.0, 0.5]])
    net = NMNetwork(K, np.zeros((2, 1)), np.ones((1, 2)), activation="identity",
                    output="identity")
    g = refimpl.prune(K, k=2)
    with pytest.raises(ConvergenceError, match=r"neural module 0 \(size 2, nodes \[0, 1\]\)") as e:
        forward(net, np.zeros((1, 1)), g)
    assert e.value.size == 2 and e.value.module == 0
    assert e.value.status != SolveStatus.CONVERGED
    res = forward(net, np.zeros((1, 1)), g, throw=False)
    assert not res.converged and res.failed_modules == [0]


def test_stats_and_condition_numbers():
    net, X0, _ = make_case(9, p=20, k=60, scale=0.6)
    fwd = forward(net, X0, compute_cond=True)
    S = fwd.graph.schedule
    multi = S.module_sizes > 1
    assert np.all(fwd.module_iterations[~multi] == 0)
    assert np.all(fwd.module_iterations[multi] >= 1)
    assert np.all(fwd.module_cond[multi] >= 1.0)
    assert fwd.module_residual.max() <= 1e-10 * (1 + np.abs(fwd.X).max())


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda net, X0: forward(net, X0[:, :2]), r"X0: expected shape \(\*, 4\)"),
        (lambda net, X0: forward(net, np.full_like(X0, np.nan)), "X0: contains NaN"),
        (lambda net, X0: forward(net, X0, solver="magic"), "solver: expected one of"),
        (lambda net, X0: forward(net, X0, mode="magic"), "mode: expected one of"),
        (lambda net, X0: forward(net, X0, atol=-1.0), "atol: must be finite"),
        (lambda net, X0: forward(net, X0, max_iter=1.5), "max_iter: expected a positive integer"),
        (lambda net, X0: forward(net, X0, max_iter=0), "max_iter: expected a positive integer"),
        (lambda net, X0: forward(net, X0, refimpl.prune(np.eye(3), k=0)), "graph: has 3 nodes"),
        (lambda net, X0: backward(net, forward(net, X0), np.zeros((1, 1))), r"G: expected shape"),
        (lambda net, X0: loss_and_grad(net, X0, np.full(X0.shape[0], 7)), "T: class labels"),
    ],
)
def test_bad_input(call, match):
    net, X0, _ = make_case(10, p=6, k=10)
    with pytest.raises(ValueError, match=match):
        call(net, X0)


def test_network_validation():
    with pytest.raises(ValueError, match="K: expected a square"):
        NMNetwork(np.zeros((2, 3)), np.zeros((2, 1)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="W1: expected shape"):
        NMNetwork(np.zeros((2, 2)), np.zeros((3, 1)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match="Wm: contains NaN"):
        NMNetwork(np.zeros((2, 2)), np.zeros((2, 1)), np.array([[np.nan, 0.0]]))
    with pytest.raises(ValueError, match="activation: unknown"):
        NMNetwork.random(2, 3, 1, activation="cosh")
    with pytest.raises(ValueError, match="p: expected a positive integer"):
        NMNetwork.random(2, 0, 1)


def test_dense_level_products_match_gather(monkeypatch):
    """The BLAS path for dense level blocks (MLP layers) gives the gather's sums."""
    from refimpl import equations

    net, X0, T = make_case(11, p=24, k=200, scale=0.4)
    g = net.prune()
    l0, g0, f0 = loss_and_grad(net, X0, T, g, **TIGHT)
    monkeypatch.setattr(equations, "DENSE_MIN_EDGES", 1)
    monkeypatch.setattr(equations, "DENSE_MIN_FILL", 0.0)
    l1, g1, f1 = loss_and_grad(net, X0, T, g, **TIGHT)
    # Same sums in another order: agreement to rounding (and solver tolerance).
    np.testing.assert_allclose(f1.X, f0.X, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(g1.K, g0.K, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g1.W1, g0.W1, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("adjoint_converges", [True, False])
def test_auto_fixed_point_path_and_adjoint_fallback(monkeypatch, adjoint_converges):
    """solver='auto' sends modules above AUTO_NEWTON_MAX_Q to the fixed point;
    when the fixed-point adjoint does not converge, J is factored at x*."""
    from refimpl import propagate

    net, X0, T = make_case(12, p=20, k=60, scale=0.3)
    g = net.prune()
    l0, g0, f0 = loss_and_grad(net, X0, T, g, solver="newton", **TIGHT)
    monkeypatch.setattr(propagate, "AUTO_NEWTON_MAX_Q", 1)
    if not adjoint_converges:
        monkeypatch.setattr(propagate, "solve_fixed_point_adjoint",
                            lambda *a, **k: (np.full_like(a[2], np.nan), False))
    l1, g1, f1 = loss_and_grad(net, X0, T, g, solver="auto", **TIGHT)
    fixed = [grp for step in f1.steps for grp in step.groups if grp.fixed.size]
    assert fixed, "the fixed-point path was not taken"
    np.testing.assert_allclose(f1.X, f0.X, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(g1.K, g0.K, rtol=1e-9, atol=1e-11)
    # f and f' at the solution, whether the kernel returned them (fixed point) or the
    # activation evaluated them (Newton): NumPy's tanh as the oracle, 4e-16 apart at most.
    FT = np.tanh(f1.XT)
    np.testing.assert_allclose(f1.FT, FT, rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(f1.DFT, 1.0 - FT**2, rtol=1e-14, atol=1e-15)


def test_edge_structure_is_cached_per_group_and_follows_the_weights():
    """The fixed-point kernel's edge lists: the structure is computed once per
    schedule group, the weights are read from the graph at every call (after
    the weights change in place, a second forward sees them: X equals the
    Newton solve's, which builds its blocks from the graph at every call)."""
    import gc

    from refimpl.propagate import _EDGE_STRUCTURE, ModuleOperator, _edge_structure
    net, X0, _ = make_case(4, p=20, k=60, scale=0.3)
    g = net.prune()
    grp = next(m for L in g.schedule.levels for m in L.modules)
    assert _edge_structure(grp) is _edge_structure(grp)
    ptr, src, dst, w = ModuleOperator(grp, g.A.data, False).edges
    blocks = grp.blocks(g.A.data)
    dense = np.zeros_like(blocks)
    for m in range(grp.n_modules):
        for e in range(ptr[m], ptr[m + 1]):
            dense[m, src[e], dst[e]] = w[e]
    np.testing.assert_array_equal(dense, blocks)
    f0 = forward(net, X0, g, solver="fixed_point", **TIGHT)
    g.A.data[:] *= 0.5  # same structure, new weights
    f1 = forward(net, X0, g, solver="fixed_point", **TIGHT)
    f2 = forward(net, X0, g, solver="newton", **TIGHT)
    assert np.abs(f1.X - f0.X).max() > 1e-6
    np.testing.assert_allclose(f1.X, f2.X, rtol=1e-11, atol=1e-12)  # TIGHT: 1e-13 per module
    n = len(_EDGE_STRUCTURE)
    del g, grp, f0, f1, f2
    gc.collect()
    assert len(_EDGE_STRUCTURE) < n


def test_backward_grad_K_factors_are_eq6_factors():
    """backward(grad_K="factors") (issue 12: dL/dK formed in row blocks by the trainer):
    K is None and F @ U.T with the diagonal U.sum(1) is the dense Eq. (6) bit for bit
    (the same product); F is f(X)^T and U is dL/dX^T of the dense call; the other
    gradients are unchanged; a bad mode is named."""
    net, X0, _ = make_case(8, p=13, k=39)
    fwd = forward(net, X0, **TIGHT)
    G = np.random.default_rng(2).standard_normal((X0.shape[0], net.n_out))
    dense = backward(net, fwd, G)
    fact = backward(net, fwd, G, grad_K="factors")
    assert fact.K is None and dense.K_factors is None
    F, U = fact.K_factors
    assert F.shape == U.shape == (net.p, X0.shape[0]) and F.flags.c_contiguous
    np.testing.assert_array_equal(F, fwd.F.T)
    np.testing.assert_array_equal(U, dense.U.T)
    dK = F @ U.T
    np.fill_diagonal(dK, U.sum(axis=1))
    np.testing.assert_array_equal(dK, dense.K)
    for name in ("W1", "Wm", "U", "V"):
        np.testing.assert_array_equal(getattr(fact, name), getattr(dense, name), err_msg=name)
    with pytest.raises(ValueError, match="grad_K"):
        backward(net, fwd, G, grad_K="sparse")


def test_loss_and_grad_passes_grad_K_on():
    """loss_and_grad(grad_K="factors") returns backward's factors (the trainer's
    blocked update uses it); the generic path refuses it with a named error."""
    net, X0, T = make_case(8, p=13, k=39)
    _, dense, _ = loss_and_grad(net, X0, T, **TIGHT)
    _, fact, _ = loss_and_grad(net, X0, T, grad_K="factors", **TIGHT)
    F, U = fact.K_factors
    dK = F @ U.T
    np.fill_diagonal(dK, U.sum(axis=1))
    np.testing.assert_array_equal(dK, dense.K)
    with pytest.raises(ValueError, match="grad_K"):
        loss_and_grad(net, X0, T, backend="numpy-generic", grad_K="factors")


def test_newton_only_groups_are_solve_newton_in_place():
    """A group Newton solves alone (solver="auto", q <= AUTO_NEWTON_MAX_Q) goes through the
    forward's short path (one kernel call into XT): the same bits as ``solve_newton`` on the
    group's blocks and constant term, f and f' those of the activation at x, the LU kept for
    the adjoint, and the gradients those of the generic stage loop (solver="newton" takes the
    same short path, so the loop is forced by a strategy of two Newton stages)."""
    from refimpl import propagate as P
    from refimpl.solvers.newton import solve_newton

    net, X0, y = make_case(4, p=12, scale=0.9, B=6)
    mask = np.zeros((12, 12), bool)
    for a, b in ((0, 1), (2, 3), (4, 5), (6, 7), (7, 8)):  # three 2-cycles, a 3-cycle
        mask[a, b] = mask[b, a] = True
    mask[[0, 2, 4, 5, 8, 8, 9], [6, 7, 8, 9, 10, 11, 11]] = True  # and edges between
    g = graph_from_mask(net.K, mask)
    groups = [(grp.size, grp.n_modules) for L in g.schedule.levels for grp in L.modules]
    assert groups == [(2, 3), (3, 1)]
    calls = []
    short = P._newton_in_place
    P._newton_in_place = lambda *a: calls.append(a[0].shape) or short(*a)
    try:
        fwd = forward(net, X0, g, atol=1e-12, rtol=1e-12)
    finally:
        P._newton_in_place = short
    assert calls == [(3, 2, 2), (1, 3, 3)]  # both groups took the short path
    act = get_activation(net.activation)
    # C of each group: XT before its solve, i.e. x - A_SS^T f(x) at the solution
    for rec in (r for step in fwd.steps for r in step.groups):
        grp, n, q = rec.group, rec.group.n_modules, rec.size
        X = fwd.XT[grp.start:grp.stop].reshape(n, q, -1)
        F = fwd.FT[grp.start:grp.stop].reshape(n, q, -1)
        C = X - np.matmul(rec.op.blocks.transpose(0, 2, 1), F)
        sol = solve_newton(rec.op.blocks, C, activation="tanh", atol=1e-12, rtol=1e-12)
        # C recomputed from the solution (rounding); both stop at ||r|| <= 1e-12 (1 + |x|),
        # which J^-1 of these small modules magnifies by well under 100
        np.testing.assert_allclose(sol.x, X, rtol=0, atol=1e-10)
        assert [p.method for p in rec.parts] == ["newton"]
        np.testing.assert_array_equal(rec.parts[0].idx, np.arange(n))
        np.testing.assert_array_equal(F, act.f(X))
        np.testing.assert_array_equal(fwd.DFT[grp.start:grp.stop].reshape(n, q, -1),
                                      act.derivative(X, F))
    # the generic loop (two Newton stages; the second never runs) gives the same bits
    saved = P.STRATEGIES["auto"]
    P.STRATEGIES["auto"] = lambda q: ("newton", "newton") if q <= P.AUTO_NEWTON_MAX_Q else saved(q)
    try:
        ref = forward(net, X0, g, atol=1e-12, rtol=1e-12)
        loss_r, grads_r, _ = loss_and_grad(net, X0, y, g, atol=1e-12, rtol=1e-12)
    finally:
        P.STRATEGIES["auto"] = saved
    loss, grads, _ = loss_and_grad(net, X0, y, g, atol=1e-12, rtol=1e-12)
    for name in ("XT", "FT", "DFT", "module_iterations", "module_residual"):
        np.testing.assert_array_equal(getattr(fwd, name), getattr(ref, name), err_msg=name)
    assert loss == loss_r
    for name in ("K", "W1", "Wm", "U", "V"):
        np.testing.assert_array_equal(getattr(grads, name), getattr(grads_r, name), err_msg=name)


@given(rows=st.integers(0, 30), cols=st.integers(0, 6), seed=st.integers(0, 2**16),
       order=st.sampled_from(["C", "F"]))
def test_input_rows_are_the_rows_with_a_nonzero(rows, cols, seed, order):
    """The nodes whose input term X0 W1^T (Eq. 3) is formed: the rows of W1 with a nonzero
    entry, as NumPy finds them; -0.0 is zero, NaN is not."""
    from refimpl.equations import input_rows

    rng = np.random.default_rng(seed)
    W = rng.standard_normal((rows, cols))
    W[rng.random(W.shape) < 0.7] = 0.0
    W[rng.random(W.shape) < 0.1] = -0.0
    W[rng.random(W.shape) < 0.05] = np.nan
    W = np.asarray(W, order=order)
    np.testing.assert_array_equal(input_rows(W), np.flatnonzero(np.any(W != 0.0, axis=1)))


# ---------------------------------------------------------------- failures said as such
def _singular_identity_module():
    """Two identity nodes with w01 w10 = 1: J = I - A^T is singular and the module has no
    solution for these inputs (Newton fails, its factors are singular)."""
    K = np.array([[0.3, 2.0], [0.5, -0.1]])
    net = NMNetwork(K, np.ones((2, 1)), np.ones((1, 2)), activation="identity",
                    output="identity")
    return net, graph_from_mask(net.K, np.array([[False, True], [True, False]]))


@pytest.mark.parametrize("solver", ["newton", "auto"])
def test_the_adjoint_of_a_failed_newton_module_is_not_called_converged(solver):
    """After forward(..., throw=False) failed on a Newton module, backward says so (the
    module fails there too: NONFINITE where its U is not finite) instead of CONVERGED
    with inf gradients; with throw=True it raises naming the module."""
    net, g = _singular_identity_module()
    X0 = np.ones((2, 1))
    f = forward(net, X0, g, solver=solver, throw=False)
    assert not f.converged and f.failed_modules == [0]
    G = np.ones((2, 1))
    with np.errstate(all="ignore"):
        gr = backward(net, f, G, throw=False)
        assert gr.status != SolveStatus.CONVERGED and gr.failed_modules == [0]
        with pytest.raises(ConvergenceError, match=r"neural module 0 \(size 2"):
            backward(net, f, G)


def test_nonfinite_singleton_values_fail_the_forward():
    """No solve looks at a singleton's value: an overflowing chain of finite weights, or a
    NaN written into W1 after construction, made X inf/NaN with status CONVERGED. Now the
    forward marks those modules NONFINITE (and raises for the first with throw=True)."""
    p = 4
    K = np.zeros((p, p))
    K[0, 1] = K[1, 2] = K[2, 3] = 1e200  # a chain: x1 = 1e200 f(x0), then inf
    net = NMNetwork(K, np.ones((p, 1)), np.ones((1, p)), activation="identity",
                    output="identity")
    g = graph_from_mask(K, K != 0)
    with np.errstate(all="ignore"):
        res = forward(net, np.ones((1, 1)), g, throw=False)
        assert res.status == SolveStatus.NONFINITE and res.failed_modules
        bad = {int(g.schedule.labels[j]) for j in (2, 3)}
        assert bad <= set(res.failed_modules)
        with pytest.raises(ConvergenceError, match="non-finite"):
            forward(net, np.ones((1, 1)), g)
        net2 = NMNetwork.random(2, 6, 2, seed=0, k=8)
        net2.W1[0, 0] = np.nan
        assert forward(net2, np.ones((1, 2)), net2.prune(), throw=False).status \
            == SolveStatus.NONFINITE


def test_a_custom_activation_may_not_take_a_builtin_name():
    """The compiled solvers pick f by name: an Activation named "tanh" that is not the
    library's tanh would be solved with the library's (Eq. 3 off by ~0.25). Refused when
    the network is built; a copy of the built-in is still accepted."""
    import copy

    from refimpl.activations import ACTIVATIONS, Activation

    doubled = Activation("tanh", lambda x: np.tanh(2 * x),
                         lambda x: 2 / np.cosh(2 * x) ** 2, 2.0)
    K = np.zeros((3, 3))
    with pytest.raises(ValueError, match="may not take the built-in name 'tanh'"):
        NMNetwork(K, np.ones((3, 1)), np.ones((1, 3)), activation=doubled)
    same = copy.deepcopy(ACTIVATIONS["tanh"])
    assert NMNetwork(K, np.ones((3, 1)), np.ones((1, 3)), activation=same).p == 3


def test_a_self_loop_in_a_hand_built_graph_is_refused():
    """K's diagonal is the bias (Eq. 3): an edge j -> j in a hand-built graph was dropped
    by the module solvers (and used by mode="whole"); the schedule refuses it."""
    import scipy.sparse as sp

    from refimpl import Schedule

    A = sp.csr_matrix(np.array([[0.5, 1.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="A: has a self-loop at node 0"):
        Schedule.from_csr(A)


def test_whole_mode_names_the_whole_graph_in_both_directions(monkeypatch):
    """A failed whole-graph solve is module -1 ("the whole graph") in the forward and in
    the backward (the backward had named module 0, a real module that did not fail)."""
    import refimpl.propagate as P

    net = NMNetwork.random(2, 6, 2, seed=1, k=10, scale=0.5)
    g = net.prune()
    X0 = np.ones((2, 2))
    f = forward(net, X0, g, mode="whole")
    monkeypatch.setattr(P, "solve_whole_adjoint", lambda A, D, V, **kw: (
        np.zeros_like(V), V, SolveStatus.MAX_ITERATIONS))
    with pytest.raises(ConvergenceError, match=r"^the whole graph \(size 6") as info:
        backward(net, f, np.ones((2, 2)))
    assert info.value.module == -1
    gr = backward(net, f, np.ones((2, 2)), throw=False)
    assert gr.status == SolveStatus.MAX_ITERATIONS
    assert sorted(gr.failed_modules) == list(range(g.schedule.n_modules))


def test_whole_mode_backward_after_a_failed_forward_fails_too():
    """A whole-graph forward that did not converge leaves no valid adjoint: the backward
    says so (it had said CONVERGED), naming the whole graph."""
    net = NMNetwork.random(2, 8, 2, seed=0, k=30, scale=3.0)  # (not contractive)
    g = net.prune()
    with np.errstate(all="ignore"):
        f = forward(net, np.ones((3, 2)), g, mode="whole", max_iter=2, throw=False)
        assert not f.converged
        gr = backward(net, f, np.ones((3, 2)), throw=False)
        assert gr.status != SolveStatus.CONVERGED
        assert sorted(gr.failed_modules) == list(range(g.schedule.n_modules))
        with pytest.raises(ConvergenceError, match="^the whole graph"):
            backward(net, f, np.ones((3, 2)))


def test_an_empty_batch_has_no_loss():
    net = NMNetwork.random(2, 5, 3, seed=0, k=6)
    with pytest.raises(ValueError, match="Z: an empty batch"):
        loss_and_grad(net, np.zeros((0, 2)), np.zeros(0, dtype=int), net.prune())
