"""Matrix-free Newton-Krylov module solves (Eq. 3) and their adjoint (Eq. 4).

Oracles: the Eq. (3) residual computed densely here, numpy.linalg.solve of
the dense J^T, the dense-LU Newton solver, central differences and the
adjoint dot-product test; array_api_strict on a non-default device proves
the solver never leaves its array namespace.
"""
import array_api_strict as xs
import array_api_compat.numpy as xnp
import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp

from refimpl import ConvergenceError, NMNetwork, SolveStatus, backward, forward, loss_and_grad
from refimpl import propagate
from refimpl.activations import get_activation
from refimpl.solvers.krylov import gmres, krylov_adjoint, newton_krylov, scipy_spmv, xp_activation

TIGHT = dict(atol=1e-13, rtol=1e-13)


def random_module(q, scale, seed, B=6, per_row=8):
    """A random sparse module A_SS (strongly connected with high probability)
    with spectral radius about ``scale``, and constant terms c."""
    rng = np.random.default_rng(seed)
    A = sp.random(q, q, density=per_row / q, random_state=seed, format="csr")
    A.data = rng.standard_normal(A.nnz) * scale / np.sqrt(per_row)
    A.setdiag(0.0)
    A.eliminate_zeros()
    C = rng.standard_normal((1, q, B))
    return A.tocsr(), C


def eq3_residual(A, C, X):
    return X[0] - C[0] - A.T @ np.tanh(X[0])  # Eq. (3) on the module, dense check


def fixed_point_diverges(A, C, n=400):
    X = C[0].copy()
    for _ in range(n):
        X = C[0] + A.T @ np.tanh(X)
    return np.abs(X - C[0] - A.T @ np.tanh(X)).max() > 1e-3


@pytest.mark.parametrize("scale, contractive", [(0.5, True), (1.6, False)])
def test_newton_krylov_solves_eq3_on_large_modules(scale, contractive, monkeypatch):
    """Pseudo-transient Newton-Krylov alone (the continuation fallback off)
    solves a module where the plain fixed point diverges."""
    from refimpl.solvers import krylov

    monkeypatch.setattr(krylov, "CONTINUATION_STEPS", ())
    q = 300
    A, C = random_module(q, scale, seed=5)
    assert bool(fixed_point_diverges(A, C)) == (not contractive)  # the case is what it claims
    atol = rtol = 1e-10
    x, dfx, st, it, res = newton_krylov(xnp, scipy_spmv(A.T.tocsr(), 1, q),
                                        xp_activation(xnp, "tanh"), C, C.copy(), atol=atol,
                                        rtol=rtol, max_iter=50)
    assert np.all(st == SolveStatus.CONVERGED)
    R = eq3_residual(A, C, x)
    tol = atol + rtol * np.abs(x[0]).max(axis=0)
    # The solver's stop test, re-checked independently (1 % margin for the
    # different order of the sparse sums).
    assert np.all(np.abs(R).max(axis=0) <= 1.01 * tol)
    np.testing.assert_allclose(dfx[0], 1 - np.tanh(x[0]) ** 2, rtol=1e-12, atol=1e-15)


def test_krylov_adjoint_matches_dense_solve():
    q = 120
    A, C = random_module(q, 1.2, seed=5, B=4)
    rng = np.random.default_rng(6)
    D = 1 - np.tanh(rng.standard_normal((1, q, 4))) ** 2
    RHS = rng.standard_normal((1, q, 4))
    U, st, _ = krylov_adjoint(xnp, scipy_spmv(A, 1, q), D, RHS, atol=1e-13, rtol=1e-13)
    assert np.all(st == SolveStatus.CONVERGED)
    Ad = A.toarray()
    for b in range(4):
        JT = np.eye(q) - D[0, :, b][:, None] * Ad  # (I - A^T diag(d))^T
        # cond(J) ~ 10..100 here: 1e-13 residual -> <= 1e-10 error.
        np.testing.assert_allclose(U[0, :, b], np.linalg.solve(JT, RHS[0, :, b]), rtol=1e-9,
                                   atol=1e-10)


def test_gmres_breakdown_on_an_invariant_subspace():
    """J = I (exact after one step): the breakdown leaves x exact and finite."""
    b = np.random.default_rng(0).standard_normal((2, 5, 3))
    x, res, _ = gmres(xnp, lambda v: v, b, np.full((2, 3), 1e-14))
    np.testing.assert_allclose(x, b, rtol=1e-15, atol=1e-15)
    assert np.all(res <= 1e-14)


@pytest.mark.parametrize("scale, reorth", [(0.6, None), (1.3, None), (1.3, 0.99)])
def test_gmres_kernels_agree_with_the_array_api_code(scale, reorth, monkeypatch):
    """The numba cycle (NumPy arrays) and the array-API code are the same
    algorithm: two modules, B = 11 (a partial block of 8 columns), tolerances
    that stop columns at different steps, restarts; with the default DGKS
    threshold and with one that reorthogonalizes (almost) every step.
    Oracle: the dense J."""
    from refimpl.solvers import krylov

    if reorth is not None:
        monkeypatch.setattr(krylov, "REORTH", reorth)
    q, n, B = 50, 2, 11
    rng = np.random.default_rng(11)
    mods = [random_module(q, scale, seed=20 + m, B=B)[0] for m in range(n)]
    M = sp.block_diag(mods, format="csr")
    D = 1 - np.tanh(rng.standard_normal((n, q, B))) ** 2
    AT = scipy_spmv(M.T.tocsr(), n, q)

    def J(v):
        return v - AT(D * v)

    b = rng.standard_normal((n, q, B))
    tol = 10.0 ** rng.uniform(-12, -6, size=(n, B))
    x1, r1, s1 = gmres(xnp, J, b, tol, restart=15, max_restarts=60,
                    kernels=True)
    x0, r0, s0 = gmres(xnp, J, b, tol, restart=15, max_restarts=60,
                    kernels=False)
    for m in range(n):
        A = mods[m].toarray()
        for k in range(B):
            Jd = np.eye(q) - A.T * D[m, :, k][None, :]
            for x, r in ((x0, r0), (x1, r1)):
                res = np.linalg.norm(b[m, :, k] - Jd @ x[m, :, k])
                # The reported residual is the true one (to rounding) and meets tol.
                assert res <= tol[m, k] * (1 + 1e-6) + 1e-13
                assert abs(res - r[m, k]) <= 1e-12 * np.linalg.norm(b[m, :, k])
    # Same steps, so the same Krylov spaces: the iterates agree to the
    # rounding of the two summation orders, far below the tolerances.
    assert s1 == s0
    np.testing.assert_allclose(x1, x0, rtol=1e-9, atol=1e-12)


def test_fused_jacobian_products_match_the_numpy_expressions():
    """The one-pass kernels apply (s1 I - sc A^T D) and (I - D A) as the NumPy
    expressions with SciPy's product do (same summation order: to rounding)."""
    from refimpl.solvers.krylov import _fused, _fused_adjoint, _fused_jacobian

    q, n, B = 40, 3, 9
    rng = np.random.default_rng(12)
    M = sp.block_diag([random_module(q, 1.2, seed=30 + m)[0] for m in range(n)], format="csr")
    AT, A = scipy_spmv(M.T.tocsr(), n, q), scipy_spmv(M, n, q)
    D = rng.uniform(0, 1, (n, q, B))
    V = rng.standard_normal((n, q, B))
    s1 = 1 + rng.uniform(0, 2, (n, B))
    J = _fused_jacobian(_fused(AT, D), s1, 0.75, D)
    np.testing.assert_allclose(J(V), s1[:, None, :] * V - 0.75 * AT(D * V), rtol=1e-14,
                               atol=1e-14)
    JT = _fused_adjoint(_fused(A, D), D)
    np.testing.assert_allclose(JT(V), V - D * A(V), rtol=1e-14, atol=1e-14)
    # Oracle for the operators themselves: the dense per-sample matrices.
    for m in range(n):
        Ad = M.toarray()[m * q:(m + 1) * q, m * q:(m + 1) * q]
        for b in range(B):
            d = D[m, :, b]
            np.testing.assert_allclose(J(V)[m, :, b],
                                       (s1[m, b] * np.eye(q) - 0.75 * Ad.T * d) @ V[m, :, b],
                                       rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(JT(V)[m, :, b], (np.eye(q) - d[:, None] * Ad) @ V[m, :, b],
                                       rtol=1e-12, atol=1e-12)
    assert _fused(AT, xs.asarray(D)) is None  # not NumPy: the generic code
    assert _fused(lambda v: v, D) is None


def test_newton_krylov_stays_in_its_namespace():
    """The whole solve runs on array_api_strict arrays on a non-default
    device (a stray NumPy call or device change raises) and matches NumPy."""
    q, B = 40, 3
    A, C = random_module(q, 0.9, seed=7, B=B)
    dev = xs.Device("device1")
    ATd = xs.asarray(A.T.toarray(), device=dev)
    Ad = xs.asarray(A.toarray(), device=dev)

    def spmv(M):  # a dense stand-in for the sparse product, on the device
        return lambda V: xs.matmul(M[None, ...], V)

    Cs = xs.asarray(C, device=dev)
    x, dfx, st, it, res = newton_krylov(xs, spmv(ATd), xp_activation(xs, "tanh"), Cs, Cs,
                                        atol=1e-12, rtol=1e-12, max_iter=30)
    assert x.device == dev and isinstance(x, type(Cs))
    xr, *_ = newton_krylov(xnp, scipy_spmv(A.T.tocsr(), 1, q), xp_activation(xnp, "tanh"), C,
                           C.copy(), atol=1e-12, rtol=1e-12, max_iter=30)
    x_np = np.asarray(xs.asarray(x, device=xs.Device("CPU_DEVICE")))
    np.testing.assert_allclose(x_np, xr, rtol=1e-10, atol=1e-11)
    U, ust, _ = krylov_adjoint(xs, spmv(Ad), dfx, Cs, atol=1e-12, rtol=1e-12)
    assert U.device == dev
    assert bool(xs.all(ust == int(SolveStatus.CONVERGED)))


def make_net(seed, p, scale=0.6, B=5):
    net = NMNetwork.random(4, p, 3, seed=seed, k=3 * p, scale=scale)
    rng = np.random.default_rng(seed + 1)
    net.K[np.diag_indices(p)] = 0.3 * rng.standard_normal(p)
    return net, rng.standard_normal((B, 4)), rng.integers(0, 3, size=B)


@pytest.mark.parametrize("p", [12, 64])
def test_krylov_agrees_with_dense_newton(p):
    net, X0, T = make_net(3, p)
    g = net.prune()
    assert g.schedule.max_module_size >= p // 2
    l0, g0, f0 = loss_and_grad(net, X0, T, g, solver="newton", **TIGHT)
    l1, g1, f1 = loss_and_grad(net, X0, T, g, solver="krylov", **TIGHT)
    assert any(rec.krylov.size for s in f1.steps for rec in s.groups)
    # Both solve to 1e-13; cond(J) ~ 10 here.
    np.testing.assert_allclose(f1.X, f0.X, rtol=1e-9, atol=1e-9)
    for name in ("K", "W1", "Wm"):
        np.testing.assert_allclose(getattr(g1, name), getattr(g0, name), rtol=1e-8, atol=1e-11,
                                   err_msg=name)


def _loss(net, X0, T, g, solver):
    from refimpl.model import output_loss

    return output_loss(forward(net, X0, g, solver=solver, **TIGHT).Z, T, net.output)[0]


@pytest.mark.parametrize("solver", ["newton", "fixed_point", "krylov"])
def test_gradients_central_differences_and_adjoint_per_solver(solver):
    net, X0, T = make_net(8, 14, scale=0.5)
    g = net.prune()
    assert g.schedule.max_module_size >= 2
    _, grads, fwd = loss_and_grad(net, X0, T, g, solver=solver, **TIGHT)
    parts = {p.method for s in fwd.steps for rec in s.groups for p in rec.parts}
    assert parts == {solver}
    rng = np.random.default_rng(0)
    h = 1e-6
    kept = np.argwhere(g.mask())
    for j, i in kept[rng.choice(len(kept), 4, replace=False)]:
        Kp, Km = net.K.copy(), net.K.copy()
        Kp[j, i] += h
        Km[j, i] -= h
        fd = (_loss(net, X0, T, g.with_weights(Kp), solver)
              - _loss(net, X0, T, g.with_weights(Km), solver)) / (2 * h)
        # h = 1e-6, solves to 1e-13: FD error ~ 1e-7 (see verify.TIGHT).
        np.testing.assert_allclose(grads.K[j, i], fd, rtol=1e-5, atol=1e-7)
    # Dot-product test: <G, dZ/dX0 dX0> = <dL/dX0 (from U), dX0>.
    act = get_activation(net.activation)
    A = g.A.toarray()
    G = rng.standard_normal((X0.shape[0], net.n_out))
    dX0 = rng.standard_normal(X0.shape)
    U = backward(net, fwd, G).U
    lhs = 0.0
    for s in range(X0.shape[0]):
        d = act.df(fwd.X[s])
        dx = np.linalg.solve(np.eye(net.p) - A.T * d[None, :], net.W1 @ dX0[s])
        lhs += G[s] @ (net.Wm @ (d * dx))
    rhs = float(np.sum((U @ net.W1) * dX0))
    assert abs(lhs - rhs) <= 1e-10 * max(abs(lhs), abs(rhs))


def test_krylov_failure_names_the_module():
    """x = 0.5 + y, y = 0.5 + x has no solution: Krylov cannot solve it."""
    import refimpl

    K = np.array([[0.5, 1.0], [1.0, 0.5]])
    net = NMNetwork(K, np.zeros((2, 1)), np.ones((1, 2)), activation="identity",
                    output="identity")
    g = refimpl.prune(K, k=2)
    with pytest.raises(ConvergenceError, match=r"neural module 0 \(size 2, nodes \[0, 1\]\)") as e:
        forward(net, np.zeros((1, 1)), g, solver="krylov")
    assert e.value.status != SolveStatus.CONVERGED
    res = forward(net, np.zeros((1, 1)), g, solver="krylov", throw=False)
    assert res.failed_modules == [0]


def test_backward_throw_false_reports_a_failed_adjoint(monkeypatch):
    net, X0, T = make_net(9, 12)
    g = net.prune()
    fwd = forward(net, X0, g, solver="krylov")
    G = np.ones((X0.shape[0], net.n_out))

    def failing(xp, A, dfx, RHS, **kw):
        return RHS, np.full(RHS.shape[::2], int(SolveStatus.MAX_ITERATIONS), np.int8), None

    monkeypatch.setattr(propagate, "krylov_adjoint", failing)
    with pytest.raises(ConvergenceError, match="neural module"):
        backward(net, fwd, G)
    grads = backward(net, fwd, G, throw=False)
    assert grads.status == SolveStatus.MAX_ITERATIONS and grads.failed_modules


def test_auto_routes_large_modules_to_sparse_krylov(monkeypatch):
    """Modules of at least AUTO_KRYLOV_MIN_Q nodes go to the fixed point, then
    Krylov, and are never stored as dense q x q blocks."""
    net, X0, T = make_net(3, 40)
    g = net.prune()
    monkeypatch.setattr(propagate, "AUTO_KRYLOV_MIN_Q", 10)
    fwd = forward(net, X0, g)
    recs = [rec for s in fwd.steps for rec in s.groups if rec.size >= 10]
    assert recs and all(rec.krylov.size + rec.fixed.size == rec.group.n_modules
                        for rec in recs)
    assert all(rec.op.sparse for rec in recs)
    assert all("blocks" not in rec.op.__dict__ for rec in recs)
    backward(net, fwd, np.ones((X0.shape[0], net.n_out)))
    assert all("blocks" not in rec.op.__dict__ for rec in recs)
    ref = forward(net, X0, g, solver="newton")
    np.testing.assert_allclose(fwd.X, ref.X, rtol=1e-9, atol=1e-9)


def test_bench_large_quick_runs(capsys):
    """``refimpl bench large --quick`` runs end to end (no timing asserted)."""
    from refimpl.cli import main

    assert main(["bench", "large", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "Krylov/Anderson" in out and "| 40 |" in out


def test_auto_sparse_fixed_point_adjoint_falls_back_to_krylov(monkeypatch):
    """A sparse-stored module solved by the fixed point whose adjoint
    iteration fails gets its adjoint from GMRES on J^T (nothing dense)."""
    net, X0, T = make_net(3, 40)
    g = net.prune()
    l0, g0, _ = loss_and_grad(net, X0, T, g, solver="newton", **TIGHT)
    monkeypatch.setattr(propagate, "AUTO_KRYLOV_MIN_Q", 10)
    monkeypatch.setattr(propagate, "solve_fixed_point_adjoint",
                        lambda edges, DF, RHS, **k: (np.full_like(RHS, np.nan), False))
    l1, g1, f1 = loss_and_grad(net, X0, T, g, **TIGHT)
    recs = [rec for s in f1.steps for rec in s.groups if rec.fixed.size and rec.op.sparse]
    assert recs, "the sparse fixed-point path was not taken"
    assert all("blocks" not in rec.op.__dict__ for rec in recs)
    # Both solve to 1e-13; cond(J) ~ 10 here.
    np.testing.assert_allclose(g1.K, g0.K, rtol=1e-8, atol=1e-11)


def test_auto_sparse_fixed_point_runs_the_numba_kernels(monkeypatch):
    """A sparse-stored (Krylov-size) module whose fixed point converges is
    solved, forward and adjoint, by the numba fixed-point kernels over its
    edge list (no NumPy loop, no dense block) and agrees with dense Newton."""
    net, X0, T = make_net(3, 40)
    g = net.prune()
    l0, g0, f0 = loss_and_grad(net, X0, T, g, solver="newton", **TIGHT)
    monkeypatch.setattr(propagate, "AUTO_KRYLOV_MIN_Q", 10)
    calls = {"forward": 0, "adjoint": 0}
    fwd_kernel, adj_kernel = propagate.solve_fixed_point, propagate.solve_fixed_point_adjoint

    def counted(name, fn):
        def wrapped(*a, **k):
            calls[name] += 1
            return fn(*a, **k)
        return wrapped

    monkeypatch.setattr(propagate, "solve_fixed_point", counted("forward", fwd_kernel))
    monkeypatch.setattr(propagate, "solve_fixed_point_adjoint", counted("adjoint", adj_kernel))
    monkeypatch.setattr(propagate, "fixed_point_group",
                        lambda *a, **k: pytest.fail("the NumPy loop ran"))
    l1, g1, f1 = loss_and_grad(net, X0, T, g, **TIGHT)
    recs = [rec for s in f1.steps for rec in s.groups if rec.fixed.size and rec.op.sparse]
    assert recs, "the sparse fixed-point path was not taken"
    assert all("blocks" not in rec.op.__dict__ for rec in recs)
    assert calls["forward"] >= len(recs) and calls["adjoint"] >= len(recs), calls
    # Both solve Eq. (3) to 1e-13 (TIGHT); cond(J) ~ 10 here.
    np.testing.assert_allclose(f1.X, f0.X, rtol=0, atol=1e-11)
    np.testing.assert_allclose(g1.K, g0.K, rtol=1e-8, atol=1e-11)


def test_continuation_rescues_the_columns_newton_cannot_finish(monkeypatch):
    """A strongly non-contractive random module (spectral radius ~2): without
    the continuation fallback some columns fail (the line search stalls);
    with it every column solves Eq. (3)."""
    from refimpl.solvers import krylov

    q = 30
    A, C = random_module(q, 2.0, seed=0, B=16)
    args = (xnp, scipy_spmv(A.T.tocsr(), 1, q), xp_activation(xnp, "tanh"), C, C.copy())
    kw = dict(atol=1e-11, rtol=1e-11, max_iter=50)
    x, _, st, _, _ = newton_krylov(*args, **kw)
    assert np.all(st == SolveStatus.CONVERGED)
    R = eq3_residual(A, C, x)
    assert np.all(np.abs(R).max(axis=0) <= 1.01 * (1e-11 + 1e-11 * np.abs(x[0]).max(axis=0)))
    monkeypatch.setattr(krylov, "CONTINUATION_STEPS", ())
    _, _, st0, _, _ = newton_krylov(*args, **kw)
    assert np.any(st0 != SolveStatus.CONVERGED)
    # The continuation changes only the columns that had failed.
    ok = np.asarray(st0 == SolveStatus.CONVERGED)[0]
    x0, *_ = newton_krylov(*args, **kw)
    np.testing.assert_array_equal(x0[0][:, ok], x[0][:, ok])


def test_module_operator_products_of_a_subset_of_modules():
    """``ModuleOperator.products(idx)``: the CSR of the modules idx only,
    the same products as ``op.AT(V, idx)`` / ``op.A(U, idx)``; oracle: the
    dense blocks."""
    from refimpl.graph.schedule import ModuleGroup

    n, q, B = 4, 5, 3
    rng = np.random.default_rng(13)
    blocks = rng.standard_normal((n, q, q)) * (rng.uniform(size=(n, q, q)) < 0.5)
    flat = np.flatnonzero(blocks)
    grp = ModuleGroup(size=q, ids=np.arange(n), start=0, stop=n * q,
                      nodes=np.arange(n * q).reshape(n, q), edge=np.arange(flat.size), flat=flat)
    op = propagate.ModuleOperator(grp, blocks.ravel()[flat], sparse=True)
    # The CSR (built from the fixed-point kernel's edge lists) is the block diagonal of
    # the dense blocks, entry for entry, and canonical (sorted, no duplicates).
    np.testing.assert_array_equal(op.csr.toarray(), scipy.linalg.block_diag(*blocks))
    assert op.csr.has_canonical_format
    for idx in (np.arange(n), np.array([0, 2]), np.array([3])):
        AT, A = op.products(idx)
        V = rng.standard_normal((idx.size, q, B))
        np.testing.assert_allclose(AT(V), np.matmul(blocks[idx].transpose(0, 2, 1), V),
                                   rtol=1e-14, atol=1e-14)
        np.testing.assert_allclose(A(V), np.matmul(blocks[idx], V), rtol=1e-14, atol=1e-14)
        np.testing.assert_allclose(AT(V), op.AT(V, idx), rtol=1e-14, atol=1e-14)
