"""The numba fixed-point kernels (Eq. 3 and its adjoint Eq. 4 on dense-block
module groups) against the NumPy reference iterations of
:mod:`refimpl.solvers.fixed_point` (``fixed_point_group``,
``fixed_point_adjoint_group``): same statuses, same iteration counts, same
iterates.

Tolerances: both sides run the same iteration; they differ only in the
summation order of A_SS^T f(x) and in tanh (the kernel's exp-based tanh is
within 4e-16 of NumPy's), so iterates agree to ~1e-15 per step, amplified by
at most the contractive iteration: 1e-12 on converged modules (looser on
modules stopped unconverged, whose map may expand the differences).
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl.activations import get_activation
from refimpl.solvers.fixed_point import (fixed_point_adjoint_group, fixed_point_group,
                                         module_edges, solve_fixed_point,
                                         solve_fixed_point_adjoint)
from refimpl.solvers.result import SolveStatus

TOL = dict(rtol=1e-12, atol=1e-12)


def make_group(seed, n, q, B, scale, density):
    rng = np.random.default_rng(seed)
    blocks = scale * rng.standard_normal((n, q, q)) * (rng.random((n, q, q)) < density)
    C = rng.standard_normal((n, q, B))
    return blocks, C


def reference(blocks, C, activation, **kw):
    """The NumPy reference: A_SS^T by batched matmul, NumPy's activation."""
    f = get_activation(activation).f
    return fixed_point_group(lambda V, a: np.matmul(blocks[a].transpose(0, 2, 1), V), C, f,
                             **kw)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 4), q=st.integers(1, 9),
       B=st.integers(1, 5), scale=st.sampled_from([0.05, 0.3, 0.6, 1.5]),
       density=st.sampled_from([0.2, 0.6, 1.0]),
       activation=st.sampled_from(["tanh", "sigmoid", "swish", "relu", "identity"]),
       give_up=st.booleans(), max_iter=st.sampled_from([0, 3, 12, 40, 400]))
def test_kernel_matches_numpy_reference(seed, n, q, B, scale, density, activation, give_up,
                                        max_iter):
    blocks, C = make_group(seed, n, q, B, scale, density)
    kw = dict(atol=1e-10, rtol=1e-10, max_iter=max_iter, give_up=give_up)
    with np.errstate(over="ignore", invalid="ignore"):
        ref = reference(blocks, C, activation, **kw)
    got = solve_fixed_point(module_edges(blocks), C, activation=activation, **kw)
    np.testing.assert_array_equal(got.status, ref.status)
    np.testing.assert_array_equal(got.iterations, ref.iterations)
    finite = np.isfinite(ref.residual)
    np.testing.assert_allclose(got.residual[finite], ref.residual[finite], rtol=1e-6, atol=1e-12)
    conv = ref.status == SolveStatus.CONVERGED
    np.testing.assert_allclose(got.x[conv], ref.x[conv], **TOL)
    # A module stopped unconverged may be non-contractive: up to 400 steps of
    # a map that expands rounding differences (seen: 1.5e-11 after 40 steps).
    rest = ~conv & (ref.status != SolveStatus.NONFINITE)
    np.testing.assert_allclose(got.x[rest], ref.x[rest], rtol=1e-8, atol=1e-8)


def test_statuses_are_all_reached():
    """Each status of the reference, and the kernel's equal to it."""
    cases = {  # name -> (scale, density, activation, give_up, max_iter)
        SolveStatus.CONVERGED: (0.1, 0.5, "tanh", False, 400),
        SolveStatus.MAX_ITERATIONS: (0.1, 0.5, "tanh", False, 3),
        SolveStatus.NO_DECREASE: (3.0, 1.0, "identity", False, 400),
        SolveStatus.NONFINITE: (1e60, 1.0, "identity", False, 400),
    }
    for want, (scale, density, act, give_up, max_iter) in cases.items():
        blocks, C = make_group(1, 2, 6, 3, scale, density)
        kw = dict(atol=1e-10, rtol=1e-10, max_iter=max_iter, give_up=give_up)
        with np.errstate(over="ignore", invalid="ignore"):
            ref = reference(blocks, C, act, **kw)
        got = solve_fixed_point(module_edges(blocks), C, activation=act, **kw)
        assert (ref.status == want).all(), (want, ref.status)
        np.testing.assert_array_equal(got.status, ref.status)
        np.testing.assert_array_equal(got.iterations, ref.iterations)


def test_rate_based_give_up_matches():
    """A slowly contracting module: the reference gives up early by its
    observed rate (NO_DECREASE well before max_iter); so does the kernel."""
    rng = np.random.default_rng(3)
    q = 8
    P = np.roll(np.eye(q), 1, axis=1)  # a ring: spectral radius 0.97 with identity f
    blocks = (0.97 * P)[None]
    C = rng.standard_normal((1, q, 4))
    kw = dict(atol=1e-10, rtol=1e-10, max_iter=80, give_up=True)
    ref = reference(blocks, C, "identity", **kw)
    got = solve_fixed_point(module_edges(blocks), C, activation="identity", **kw)
    assert ref.status[0] == SolveStatus.NO_DECREASE and ref.iterations[0] < 80
    np.testing.assert_array_equal(got.status, ref.status)
    np.testing.assert_array_equal(got.iterations, ref.iterations)
    np.testing.assert_allclose(got.x, ref.x, **TOL)


def test_module_subset_by_mods():
    """Rows of C belong to the modules ``mods`` of the edge lists."""
    blocks, C = make_group(5, 5, 4, 3, 0.3, 0.7)
    idx = np.array([4, 1, 3])
    ref = reference(blocks[idx], C[idx], "tanh", atol=1e-12, rtol=0.0, max_iter=500)
    got = solve_fixed_point(module_edges(blocks), C[idx], atol=1e-12, rtol=0.0, max_iter=500,
                            mods=idx)
    np.testing.assert_array_equal(got.iterations, ref.iterations)
    np.testing.assert_allclose(got.x, ref.x, **TOL)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "swish", "relu", "identity"])
def test_kernel_returns_f_and_df_at_x(activation):
    """f(x) and f'(x) come back with x, for every status (NumPy's activation
    as the oracle; the kernel's exp-based tanh is within 4e-16 of it)."""
    act = get_activation(activation)
    for scale, max_iter in ((0.2, 400), (0.2, 2), (3.0, 400)):  # converged, max_iter, stalled
        blocks, C = make_group(7, 3, 5, 4, scale, 0.8)
        got = solve_fixed_point(module_edges(blocks), C, activation=activation,
                                max_iter=max_iter)
        F = act.f(got.x)
        np.testing.assert_allclose(got.f, F, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(got.df, act.derivative(got.x, F), rtol=1e-14, atol=1e-15)


def test_in_place_solve_keeps_c_on_failed_modules():
    """``out=(C, F, DF)``: converged modules are solved in place; with
    ``write_failed=False`` a module that does not converge keeps C (for the
    next solver), with True it gets its last iterate (as a new-array solve)."""
    rng = np.random.default_rng(11)
    q, B = 6, 3
    blocks = np.stack([0.1 * rng.standard_normal((q, q)),  # contractive
                       np.roll(np.eye(q), 1, axis=1) * 3.0])  # expanding ring
    C = rng.standard_normal((2, q, B))
    edges = module_edges(blocks)
    fresh = solve_fixed_point(edges, C, activation="identity", max_iter=50)
    assert list(fresh.status) == [SolveStatus.CONVERGED, SolveStatus.NO_DECREASE]
    for write_failed in (False, True):
        X = C.copy()
        F, DF = np.full_like(C, np.nan), np.full_like(C, np.nan)
        got = solve_fixed_point(edges, X, activation="identity", max_iter=50, out=(X, F, DF),
                                write_failed=write_failed)
        assert got.x is X
        np.testing.assert_array_equal(got.status, fresh.status)
        np.testing.assert_array_equal(got.iterations, fresh.iterations)
        np.testing.assert_array_equal(X[0], fresh.x[0])
        np.testing.assert_array_equal(X[1], fresh.x[1] if write_failed else C[1])
        assert np.isnan(F[1]).all() != write_failed


def test_unsorted_edges_are_refused():
    ptr, src, dst, w = module_edges(0.3 * np.ones((1, 3, 3)))
    o = np.argsort(-dst, kind="stable")
    with pytest.raises(ValueError, match="sorted by target"):
        solve_fixed_point((ptr, src[o], dst[o], w[o]), np.zeros((1, 3, 2)))


def test_edges_outside_their_module_and_overlapping_rows_are_refused():
    """The kernels index the node rows with the edges' local indices without numba's
    bounds checks: an edge whose source or target is not a node of its module (local
    index >= q, or < 0) is a ValueError before any iteration, forward and adjoint; the
    rows wrapper also refuses modules whose rows overlap."""
    from refimpl.solvers.fixed_point import solve_fixed_point_rows

    ptr, src, dst, w = module_edges(0.3 * np.ones((1, 3, 3)))
    out_src = src.copy()
    out_src[0] = 1000
    out_dst = dst.copy()
    out_dst[-1] = 3  # still sorted by target, but node 3 of a 3-node module
    for edges in ((ptr, out_src, dst, w), (ptr, src, out_dst, w), (ptr, src - 1, dst, w)):
        with pytest.raises(ValueError, match="leaves its nodes"):
            solve_fixed_point(edges, np.zeros((1, 3, 2)))
        with pytest.raises(ValueError, match="leaves its nodes"):
            solve_fixed_point_rows(edges, np.zeros((3, 2)), [0], [3])
        with pytest.raises(ValueError, match="leaves its nodes"):
            solve_fixed_point_adjoint(edges, np.ones((1, 3, 2)), np.ones((1, 3, 2)))
    edges2 = module_edges(0.3 * np.ones((2, 3, 3)))
    with pytest.raises(ValueError, match="overlap"):
        solve_fixed_point_rows(edges2, np.zeros((5, 2)), [0, 2], [3, 3])
    got = solve_fixed_point_rows(edges2, np.zeros((6, 2)), [3, 0], [3, 3])  # disjoint
    assert (got.status == SolveStatus.CONVERGED).all()


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 4), q=st.integers(1, 9),
       B=st.integers(1, 5), scale=st.sampled_from([0.05, 0.3, 1.5]),
       max_iter=st.sampled_from([0, 2, 400]))
def test_adjoint_kernel_matches_numpy_reference(seed, n, q, B, scale, max_iter):
    blocks, RHS = make_group(seed, n, q, B, scale, 0.5)
    rng = np.random.default_rng(seed + 1)
    D = rng.random((n, q, B))  # f'(x) of tanh lies in (0, 1]
    kw = dict(atol=1e-10, rtol=1e-10, max_iter=max_iter)
    U0, ok0 = fixed_point_adjoint_group(lambda V: np.matmul(blocks, V), D, RHS, **kw)
    U1, ok1 = solve_fixed_point_adjoint(module_edges(blocks), D, RHS, **kw)
    assert ok1 == ok0
    if np.isfinite(U0).all():
        np.testing.assert_allclose(U1, U0, rtol=1e-12, atol=1e-12 * max(1.0, abs(U0).max()))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_adjoint_overflow_is_a_failure_not_convergence():
    """u = rhs + f' A u with A = 3 I overflows: the kernel, the NumPy reference
    and the generic path report failure.  (The stop test passed on inf:
    inf <= atol + rtol * inf.)"""
    from refimpl.xp.solvers import fixed_point_adjoint
    import array_api_compat.numpy as xnp

    blocks = 3.0 * np.eye(3)[None]
    D, RHS = np.ones((1, 3, 2)), np.ones((1, 3, 2))
    kw = dict(atol=1e-10, rtol=1e-10, max_iter=5000)
    U0, ok0 = fixed_point_adjoint_group(lambda V: np.matmul(blocks, V), D, RHS, **kw)
    U1, ok1 = solve_fixed_point_adjoint(module_edges(blocks), D, RHS, **kw)
    U2, ok2 = fixed_point_adjoint(xnp, blocks, D, RHS, 1e-10, 1e-10, 5000)
    assert not ok0 and not ok1 and not ok2


def test_adjoint_solves_the_linear_system():
    """Oracle: the converged U solves (I - D A_SS) u = rhs (numpy.linalg)."""
    blocks, RHS = make_group(7, 3, 5, 2, 0.3, 0.8)
    D = np.random.default_rng(8).random(RHS.shape)
    U, ok = solve_fixed_point_adjoint(module_edges(blocks), D, RHS, atol=1e-13, rtol=0.0,
                                      max_iter=2000)
    assert ok
    for m in range(3):
        for s in range(2):
            M = np.eye(5) - D[m, :, s][:, None] * blocks[m]
            np.testing.assert_allclose(U[m, :, s], np.linalg.solve(M, RHS[m, :, s]),
                                       rtol=1e-10, atol=1e-11)


def test_bad_input_is_named():
    edges = module_edges(np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="blocks"):
        module_edges(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="C"):
        solve_fixed_point(edges, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="mods"):
        solve_fixed_point(edges, np.zeros((1, 3, 2)), mods=[5])
    with pytest.raises(ValueError, match="activation"):
        solve_fixed_point(edges, np.zeros((2, 3, 2)), activation="nope")
    with pytest.raises(ValueError, match="out: DF"):
        C = np.zeros((2, 3, 2))
        solve_fixed_point(edges, C, out=(C, np.zeros_like(C), np.zeros((2, 3, 1))))
    with pytest.raises(ValueError, match="DF, RHS"):
        solve_fixed_point_adjoint(edges, np.zeros((2, 3, 2)), np.zeros((2, 3, 1)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_nonfinite_values_stop_the_module_as_nonfinite(bad):
    """A NaN or inf in c makes the step NaN or inf: the kernel's integer max over
    the steps' bit patterns must carry it (NONFINITE at step 0, like the
    reference), and the other modules of the group are solved as usual."""
    blocks, C = make_group(4, 3, 6, 5, 0.2, 0.7)
    C[1, 2, 3] = bad
    kw = dict(atol=1e-10, rtol=1e-10, max_iter=400)
    ref = reference(blocks, C, "tanh", **kw)
    got = solve_fixed_point(module_edges(blocks), C, **kw)
    want = [SolveStatus.CONVERGED, SolveStatus.NONFINITE, SolveStatus.CONVERGED]
    assert list(ref.status) == want
    np.testing.assert_array_equal(got.status, ref.status)
    np.testing.assert_array_equal(got.iterations, ref.iterations)
    assert got.iterations[1] == 0 and not np.isfinite(got.residual[1])
    D = np.ones_like(C)
    RHS = C.copy()
    _, ok = solve_fixed_point_adjoint(module_edges(blocks), D, RHS, **kw)
    assert not ok


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), q=st.integers(1, 9), B=st.integers(1, 40),
       exponent=st.integers(-300, 300), zeros=st.booleans())
def test_step_residual_is_the_exact_max(seed, q, B, exponent, zeros):
    """``resid`` after one step (max_iter=0) is exactly ``max |x_1 - x_0|`` over
    the module (bit for bit, any magnitude, signed zeros included): a ring of
    single edges, identity f, so x_1 = c + w c[a] is the same double on both
    sides."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(q)
    blocks = np.zeros((2, q, q))
    blocks[:, perm, np.arange(q)] = 0.5  # one edge perm[c] -> c into every node c
    C = rng.standard_normal((2, q, B)) * 10.0 ** exponent
    if zeros:
        C[0] = -0.0
    got = solve_fixed_point(module_edges(blocks), C, activation="identity", max_iter=0,
                            atol=0.0, rtol=0.0)  # tolerance 0: converged iff the step is 0
    X1 = C + 0.5 * C[:, perm]
    want = np.abs(X1 - C).reshape(2, -1).max(axis=1)
    np.testing.assert_array_equal(got.residual, want)
    np.testing.assert_array_equal(got.status, np.where(want == 0, SolveStatus.CONVERGED,
                                                       SolveStatus.MAX_ITERATIONS))
