"""The batched module kernels: Newton (Eq. 3 on a module) and its adjoint (Eq. 4)."""
import numba
import numpy as np
import pytest

from refimpl.activations import get_activation
from refimpl.solvers.newton import (ACT_CODES, CHUNK, _act, adjoint_group, factor_jacobian,
                                    newton_group, solve_adjoint, solve_newton)
from refimpl.solvers.result import SolveStatus


@numba.njit
def _act_all(code, x):
    f = np.empty_like(x)
    d = np.empty_like(x)
    for i in range(x.size):
        f[i], d[i] = _act(code, x[i])
    return f, d


@pytest.mark.parametrize("name", sorted(ACT_CODES))
def test_kernel_activations_match_numpy(name):
    x = np.concatenate([np.linspace(-40, 40, 4001), np.logspace(-300, 2, 500),
                        -np.logspace(-300, 2, 500), [0.0]])
    f, d = _act_all(ACT_CODES[name], x)
    act = get_activation(name)
    # The kernel's tanh uses one exp: absolute error <= 4e-16 (2 ulp of 1).
    np.testing.assert_allclose(f, act.f(x), rtol=1e-15, atol=5e-16, err_msg=name)
    np.testing.assert_allclose(d, act.df(x), rtol=1e-14, atol=5e-16, err_msg=name)


def run_newton(blocks, C, code=0, atol=1e-12, rtol=1e-12, max_iter=50):
    n, q, B = C.shape
    X = C.copy()
    LU = np.empty((n, q, q, B))
    perm = np.empty((n, q, B), dtype=np.int32)
    it = np.empty((n, B), dtype=np.int32)
    res = np.empty((n, B))
    st = np.empty((n, B), dtype=np.int8)
    newton_group(blocks, C, X, code, atol, rtol, max_iter, LU, perm, it, res, st)
    return X, LU, perm, it, res, st


@pytest.mark.parametrize("q, B", [(1, 3), (3, CHUNK + 7), (8, 2 * CHUNK), (17, 5)])
def test_newton_solves_and_keeps_the_lu_at_the_solution(q, B):
    rng = np.random.default_rng(q * 100 + B)
    n = 3
    blocks = rng.standard_normal((n, q, q)) * 0.8 / np.sqrt(q)
    C = rng.standard_normal((n, q, B))
    X, LU, perm, it, res, st = run_newton(blocks, C)
    assert np.all(st == SolveStatus.CONVERGED)
    for m in range(n):
        for s in range(B):
            x = X[m, :, s]
            r = x - C[m, :, s] - blocks[m].T @ np.tanh(x)  # Eq. (3) on the module
            assert np.abs(r).max() <= 1e-12 + 1e-12 * np.abs(x).max() + 1e-15
            assert res[m, s] == pytest.approx(np.abs(r).max(), abs=1e-15)
            J = np.eye(q) - blocks[m].T * (1 - np.tanh(x) ** 2)[None, :]
            L = np.tril(LU[m, :, :, s], -1) + np.eye(q)
            U = np.triu(LU[m, :, :, s])
            np.testing.assert_allclose(L @ U, J[perm[m, :, s]], rtol=1e-12, atol=1e-13)


def test_adjoint_solves_the_transposed_system():
    rng = np.random.default_rng(7)
    n, q, B = 2, 6, CHUNK + 3
    blocks = rng.standard_normal((n, q, q)) * 0.7 / np.sqrt(q)
    C = rng.standard_normal((n, q, B))
    X, LU, perm, *_ = run_newton(blocks, C)
    RHS = rng.standard_normal((n, q, B))
    U = np.empty_like(RHS)
    adjoint_group(LU, perm, RHS, U)
    for m in range(n):
        for s in range(B):
            J = np.eye(q) - blocks[m].T * (1 - np.tanh(X[m, :, s]) ** 2)[None, :]
            np.testing.assert_allclose(J.T @ U[m, :, s], RHS[m, :, s], rtol=1e-12, atol=1e-13,
                                       err_msg="Eq. (4) on a module: J^T u = rhs")


def test_continuation_rescues_stalled_newton():
    # A strongly non-contractive 2-cycle (|w| = 6): from x = c the full
    # Newton step overshoots, the per-sample phase and continuation finish.
    blocks = np.array([[[0.0, 6.0], [-6.0, 0.0]]])
    C = np.linspace(-3, 3, 40).reshape(1, 2, 20)
    X, LU, perm, it, res, st = run_newton(blocks, C, atol=1e-11, rtol=1e-11)
    assert np.all(st == SolveStatus.CONVERGED)
    R = X - C - np.einsum("mba,mbs->mas", blocks, np.tanh(X))
    assert np.abs(R).max() < 1e-10
    assert it.max() > 5, "this case should need damping"


def test_unsolvable_system_reports_status():
    # Identity activation, singular J and inconsistent c: no solution.
    blocks = np.array([[[0.0, 1.0], [1.0, 0.0]]])
    C = np.array([[[1.0], [0.5]]])
    *_, st = run_newton(blocks, C, code=ACT_CODES["identity"])
    assert st[0, 0] != SolveStatus.CONVERGED


def test_public_wrapper_matches_the_kernel_and_factors_j_anywhere():
    """solve_newton (validating wrapper) = the kernel; factor_jacobian at the
    solution gives the same adjoint as the kept LU (J^T u = rhs, dense oracle)."""
    rng = np.random.default_rng(11)
    n, q, B = 2, 5, 9
    blocks = rng.standard_normal((n, q, q)) * 0.7 / np.sqrt(q)
    C = rng.standard_normal((n, q, B))
    sol = solve_newton(blocks, C, atol=1e-12, rtol=1e-12)
    X, *_ = run_newton(blocks, C)
    np.testing.assert_array_equal(sol.x, X)
    assert sol.status.shape == (n,) and np.all(sol.status == SolveStatus.CONVERGED)
    factor, singular = factor_jacobian(blocks, sol.x)
    assert not singular.any()
    RHS = rng.standard_normal((n, q, B))
    U1, U2 = solve_adjoint(sol.kept, RHS), solve_adjoint(factor, RHS)
    for m in range(n):
        for s in range(B):
            J = np.eye(q) - blocks[m].T * (1 - np.tanh(sol.x[m, :, s]) ** 2)[None, :]
            ref = np.linalg.solve(J.T, RHS[m, :, s])
            np.testing.assert_allclose(U1[m, :, s], ref, rtol=1e-11, atol=1e-12)
            np.testing.assert_allclose(U2[m, :, s], ref, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("kw, match", [
    (dict(blocks=np.zeros((2, 3, 4))), "blocks: expected shape"),
    (dict(C=np.zeros((2, 4, 1))), "C: expected shape"),
    (dict(activation="cosh"), "activation: the compiled solvers know"),
    (dict(atol=-1.0), "atol: must be finite"),
    (dict(max_iter=0), "max_iter: must be >= 1"),
])
def test_public_wrapper_rejects_bad_input(kw, match):
    args = dict(blocks=np.zeros((2, 3, 3)), C=np.zeros((2, 3, 1)))
    args.update(kw)
    blocks, C = args.pop("blocks"), args.pop("C")
    with pytest.raises(ValueError, match=match):
        solve_newton(blocks, C, **args)
