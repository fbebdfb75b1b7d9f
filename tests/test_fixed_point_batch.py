"""The forward's per-level fixed-point batch (Eq. 3 on the fixed-point groups of
a level in one kernel call, :func:`refimpl.solvers.fixed_point.solve_fixed_point_rows`,
:class:`refimpl.propagate._Batch`) against the per-group path it replaces:
the same arithmetic in the same order, so the results are compared bit for bit
(``assert_array_equal``), statuses, iteration counts and failed modules too.
"""
import gc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refimpl import ConvergenceError, NMNetwork, backward, forward
from refimpl import propagate
from refimpl.graph import graph_from_mask
from refimpl.solvers.fixed_point import module_edges, solve_fixed_point, solve_fixed_point_rows
from refimpl.solvers.result import SolveStatus
from refimpl.workloads import modular_graph


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), sizes=st.lists(st.integers(1, 7), min_size=1, max_size=4),
       B=st.integers(1, 5), scale=st.sampled_from([0.1, 0.5, 1.5]),
       activation=st.sampled_from(["tanh", "sigmoid", "identity"]), give_up=st.booleans(),
       write_failed=st.booleans())
def test_rows_kernel_equals_per_group_solves(seed, sizes, B, scale, activation, give_up,
                                             write_failed):
    """Groups of different sizes at their rows of one (n_rows, B) array (gaps
    between them), each with its own budget, in one call: bit for bit the
    per-group :func:`solve_fixed_point`; rows outside the modules untouched."""
    rng = np.random.default_rng(seed)
    groups, rows, mods_rows, budgets, r = [], [], [], [], 1
    for j, q in enumerate(sizes):
        n = int(rng.integers(1, 3))
        blocks = scale * rng.standard_normal((n, q, q)) * (rng.random((n, q, q)) < 0.6)
        budget = int(rng.choice([0, 3, 60, 400]))
        groups.append((blocks, r, budget))
        rows += [r + m * q for m in range(n)]
        budgets += [budget] * n
        mods_rows.append(n)
        r += n * q + 2  # two rows that belong to no module
    n_rows = r
    C = rng.standard_normal((n_rows, B))
    # all groups' edge lists, concatenated (module-local node indices)
    parts = [module_edges(b) for b, _, _ in groups]
    ptr = np.concatenate([[0], np.cumsum(np.concatenate([np.diff(p[0]) for p in parts]))])
    src, dst, w = (np.concatenate([p[i] for p in parts]) for i in (1, 2, 3))
    qs = np.repeat(sizes, mods_rows)
    kw = dict(activation=activation, atol=1e-10, rtol=1e-10, give_up=give_up,
              write_failed=write_failed)
    X, F, DF = C.copy(), np.full_like(C, -7.0), np.full_like(C, -7.0)
    with np.errstate(over="ignore", invalid="ignore"):
        got = solve_fixed_point_rows((ptr, src, dst, w), X, rows, qs, max_iter=budgets,
                                     out=(X, F, DF), **kw)
    k = 0
    inside = np.zeros(n_rows, bool)
    for (blocks, r0, budget), q in zip(groups, sizes):
        n = blocks.shape[0]
        Cg = C[r0:r0 + n * q].reshape(n, q, B)
        Xg, Fg, DFg = Cg.copy(), np.full_like(Cg, -7.0), np.full_like(Cg, -7.0)
        with np.errstate(over="ignore", invalid="ignore"):
            ref = solve_fixed_point(module_edges(blocks), Xg, max_iter=budget,
                                    out=(Xg, Fg, DFg), **kw)
        np.testing.assert_array_equal(got.status[k:k + n], ref.status)
        np.testing.assert_array_equal(got.iterations[k:k + n], ref.iterations)
        np.testing.assert_array_equal(got.residual[k:k + n], ref.residual)
        for a, b in ((X, Xg), (F, Fg), (DF, DFg)):
            np.testing.assert_array_equal(a[r0:r0 + n * q], b.reshape(n * q, B))
        inside[r0:r0 + n * q] = True
        k += n
    np.testing.assert_array_equal(X[~inside], C[~inside])
    assert (F[~inside] == -7.0).all() and (DF[~inside] == -7.0).all()


def test_rows_bad_input_is_named():
    edges = module_edges(np.zeros((2, 3, 3)))
    C = np.zeros((6, 2))
    with pytest.raises(ValueError, match="C"):
        solve_fixed_point_rows(edges, np.zeros((2, 3, 2)), [0, 3], [3, 3])
    with pytest.raises(ValueError, match="rows, sizes"):
        solve_fixed_point_rows(edges, C, [0, 4], [3, 3])
    with pytest.raises(ValueError, match="max_iter"):
        solve_fixed_point_rows(edges, C, [0, 3], [3, 3], max_iter=[5, -1])
    with pytest.raises(ValueError, match="out: F"):
        solve_fixed_point_rows(edges, C, [0, 3], [3, 3], out=(C, np.zeros((6, 1)), C))


def make_net(p, n_levels, seed, weight, B=8):
    K, mask = modular_graph(p, n_levels, seed, weight=weight)
    rng = np.random.default_rng(seed)
    net = NMNetwork(K, rng.standard_normal((p, 3)), rng.standard_normal((2, p)) / np.sqrt(p),
                    output="identity")
    return net, graph_from_mask(K, mask), rng.standard_normal((B, 3)), rng.standard_normal((B, 2))


def per_group(monkeypatch):
    """The per-group path: no batches (every group through _solve_group)."""
    monkeypatch.setattr(propagate, "_batches", lambda groups, ctx: ())


@pytest.mark.parametrize("solver", ["auto", "fixed_point"])
@pytest.mark.parametrize("weight", [0.35, 0.9])
def test_forward_and_backward_equal_the_per_group_path(monkeypatch, solver, weight):
    """Eq. (3) and (4) through the batch equal the per-group path bit for bit,
    including the groups whose fixed point fails (weight 0.9: passed on to
    Newton under "auto", failed modules under "fixed_point")."""
    net, g, X0, G = make_net(400, 6, 3, weight)
    kw = dict(atol=1e-10, rtol=1e-10, solver=solver, throw=False)
    f1 = forward(net, X0, g, **kw)
    b1 = backward(net, f1, G, throw=False) if f1.converged else None
    with monkeypatch.context() as mp:
        per_group(mp)
        f0 = forward(net, X0, g, **kw)
        b0 = backward(net, f0, G, throw=False) if f0.converged else None
    for name in ("XT", "FT", "DFT", "module_iterations", "module_residual"):
        np.testing.assert_array_equal(getattr(f1, name), getattr(f0, name), err_msg=name)
    assert f1.status == f0.status and f1.failed_modules == f0.failed_modules
    parts = lambda f: [[(p.method, list(p.idx)) for p in r.parts] for s in f.steps
                       for r in s.groups]
    assert parts(f1) == parts(f0)
    if b0 is not None:
        for name in ("K", "W1", "Wm", "U", "V"):
            np.testing.assert_array_equal(getattr(b1, name), getattr(b0, name), err_msg=name)


def test_the_cases_above_reach_the_fallbacks(monkeypatch):
    """The weight-0.9 graph has trial failures (some fixed-point groups partly
    solved by Newton) and, under solver="fixed_point", failed modules: the
    comparison above covers the per-group fallback after the batch."""
    net, g, X0, _ = make_net(400, 6, 3, 0.9)
    f = forward(net, X0, g, atol=1e-10, rtol=1e-10)
    methods = [{p.method for p in r.parts} for s in f.steps for r in s.groups]
    assert {"fixed_point_trial", "newton"} in methods
    f = forward(net, X0, g, atol=1e-10, rtol=1e-10, solver="fixed_point", throw=False)
    assert f.failed_modules


def test_convergence_error_names_the_same_module(monkeypatch):
    net, g, X0, _ = make_net(400, 6, 3, 0.9)
    kw = dict(atol=1e-10, rtol=1e-10, solver="fixed_point")
    with pytest.raises(ConvergenceError) as e1:
        forward(net, X0, g, **kw)
    per_group(monkeypatch)
    with pytest.raises(ConvergenceError) as e0:
        forward(net, X0, g, **kw)
    assert str(e1.value) == str(e0.value)
    assert (e1.value.module, e1.value.status) == (e0.value.module, e0.value.status)


def test_batches_are_cached_and_leave_with_their_groups():
    net, g, X0, _ = make_net(200, 4, 5, 0.35)
    forward(net, X0, g)
    n = len(propagate._BATCHES)
    assert n
    forward(net, X0, g)
    assert len(propagate._BATCHES) == n  # the second forward reuses them
    del g
    gc.collect()
    assert len(propagate._BATCHES) < n


def test_cached_batch_budgets_follow_the_fixed_point_budget_constant(monkeypatch):
    """A cached level batch takes its trial budgets from the current
    AUTO_FP_ITER_PER_Q (the constant may be tuned between forwards): after changing it,
    a forward on the cached batches equals one on fresh graphs."""
    net, g, X0, _ = make_net(200, 4, 5, 0.35)
    forward(net, X0, g)  # batches cached with the default budget
    monkeypatch.setattr(propagate, "AUTO_FP_ITER_PER_Q", 1)
    cached = forward(net, X0, g, throw=False)
    _, fresh_g, _, _ = make_net(200, 4, 5, 0.35)
    fresh = forward(net, X0, fresh_g, throw=False)
    np.testing.assert_array_equal(cached.module_iterations, fresh.module_iterations)
    np.testing.assert_array_equal(cached.XT, fresh.XT)
