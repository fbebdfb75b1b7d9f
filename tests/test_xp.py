"""The generic (array-API) path against the numba reference (DESIGN.md section 3).

Every test runs over the ``backend`` fixture (tests/conftest.py): the numba
path, the generic path on NumPy arrays, ``array_api_strict`` on its
non-default device (any stray NumPy call on its arrays raises) and CuPy where
a GPU exists.  Oracle: the numba path (itself checked against dense Newton,
finite differences and an MLP in tests/test_propagate.py), solved to 1e-12.
Tolerances: X to 1e-9 and gradients to rtol 1e-8 (the issue's targets): both
paths stop at ``||r||_inf <= 1e-12 (1 + ||x||_inf)``, so their solutions
differ by about cond(J) * 1e-12, far below.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import refimpl
from refimpl import ConvergenceError, NMNetwork, SolveStatus
from refimpl.backend import BackendError, get_backend, is_reference
from refimpl.graph import graph_from_mask
from refimpl.train import Trainer, TrainConfig
from strategies import modular_digraphs

TIGHT = dict(atol=1e-12, rtol=1e-12)
X_TOL = dict(rtol=0, atol=1e-9)
G_TOL = dict(rtol=1e-8, atol=1e-12)
FIXTURE = settings(max_examples=8,
                   suppress_health_check=[HealthCheck.function_scoped_fixture,
                                          HealthCheck.too_slow])


def fwd(bk, net, X0, g, **kw):
    """forward on the backend of ``bk`` (the public ``backend=`` hook)."""
    return refimpl.forward(net, bk.asarray(X0), g, backend=bk.backend, **kw)


def lag(bk, net, X0, T, g, **kw):
    return refimpl.loss_and_grad(net, bk.asarray(X0), bk.asarray(T), g, backend=bk.backend,
                                 **kw)


def net_on(A, seed, scale, activation="tanh", output="softmax", n_in=3, n_out=2):
    """A network whose pruned graph is exactly the edges of ``A`` (weights seeded)."""
    p = A.shape[0]
    rng = np.random.default_rng(seed)
    mask = A.toarray() != 0
    np.fill_diagonal(mask, False)
    K = scale * rng.standard_normal((p, p))
    np.fill_diagonal(K, 0.3 * rng.standard_normal(p))
    net = NMNetwork(K, rng.standard_normal((p, n_in)), rng.standard_normal((n_out, p)),
                    activation=activation, output=output)
    X0 = rng.standard_normal((5, n_in))
    T = rng.integers(0, n_out, 5) if output == "softmax" else rng.standard_normal((5, n_out))
    return net, graph_from_mask(K, mask), X0, T


def check_same(bk, ref, got):
    """Forward results agree and live on the backend's device."""
    for name in ("X", "F", "Z", "Y"):
        bk.assert_on_device(getattr(got, name))
        np.testing.assert_allclose(bk.to_numpy(getattr(got, name)), getattr(ref, name),
                                   **X_TOL, err_msg=name)
    assert got.status == ref.status
    assert got.failed_modules == ref.failed_modules
    np.testing.assert_array_equal(got.module_iterations == 0, ref.module_iterations == 0)


@FIXTURE
@given(A=modular_digraphs(max_modules=5, max_size=4), seed=st.integers(0, 1000),
       scale=st.sampled_from([0.4, 1.2, 2.5]),
       activation=st.sampled_from(["tanh", "sigmoid", "swish"]))
def test_forward_and_gradients_agree_on_graphs_with_cycles(backend, A, seed, scale,
                                                           activation):
    # scale 2.5: non-contractive modules (damping and continuation at work).
    net, g, X0, T = net_on(A, seed, scale, activation)
    ref = refimpl.forward(net, X0, g, throw=False, **TIGHT)
    got = fwd(backend, net, X0, g, throw=False, **TIGHT)
    check_same(backend, ref, got)
    if not ref.converged:
        return
    l0, g0, _ = refimpl.loss_and_grad(net, X0, T, g, **TIGHT)
    l1, g1, _ = lag(backend, net, X0, T, g, **TIGHT)
    assert l1 == pytest.approx(l0, rel=1e-10, abs=1e-12)
    for name in ("K", "W1", "Wm", "U", "V"):
        backend.assert_on_device(getattr(g1, name))
        np.testing.assert_allclose(backend.to_numpy(getattr(g1, name)), getattr(g0, name),
                                   **G_TOL, err_msg=name)
    # backward() on its own, from the backend's forward and G.
    G = backend.asarray(np.ones((X0.shape[0], net.n_out)) / X0.shape[0])
    gb = refimpl.backward(net, got, G, backend=backend.backend) if not backend.reference \
        else refimpl.backward(net, got, G)
    g_ref = refimpl.backward(net, ref, np.ones((X0.shape[0], net.n_out)) / X0.shape[0])
    np.testing.assert_allclose(backend.to_numpy(gb.K), g_ref.K, **G_TOL)


def stalled_case():
    """One 4-node module, |w| ~ 5: from x = c plain damped Newton stalls for
    some samples (found by search), continuation finishes them."""
    rng = np.random.default_rng(13)
    q = int(rng.integers(2, 5))
    blocks = rng.standard_normal((1, q, q)) * rng.uniform(2, 8)
    np.fill_diagonal(blocks[0], 0.0)
    C = rng.standard_normal((1, q, 64)) * 3
    net = NMNetwork(blocks[0], np.eye(q), np.ones((2, q)), output="identity")
    return net, refimpl.prune(net.K, gamma=0.0), C[0].T.copy(), blocks, C


def test_stalled_newton_needs_continuation(backend):
    net, g, X0, blocks, C = stalled_case()
    assert g.schedule.max_module_size == blocks.shape[1]
    if not backend.reference:  # the generic damped Newton alone fails on some samples
        from refimpl.activations import get_activation
        from refimpl.xp import solvers as gs

        xp = get_backend(backend.backend).xp
        dev = backend.device if backend.device is not None else None
        AT = xp.asarray(blocks.transpose(0, 2, 1).copy(), device=dev)
        Cx = xp.asarray(C, device=dev)
        active = xp.ones((1, C.shape[2]), dtype=xp.bool, device=dev)
        _, st_damped, _, _ = gs.damped_newton(xp, AT, Cx, Cx, 1.0, get_activation("tanh"),
                                              1e-11, 1e-11, 50, active)
        assert np.any(backend.to_numpy(st_damped) != 0), "this case should need continuation"
    ref = refimpl.forward(net, X0, g, atol=1e-11, rtol=1e-11)
    got = fwd(backend, net, X0, g, atol=1e-11, rtol=1e-11)
    assert got.converged
    check_same(backend, ref, got)
    X = backend.to_numpy(got.X)
    R = X - X0 - np.tanh(X) @ g.A.toarray()  # Eq. (3) (zero biases, W1 = I)
    assert np.abs(R).max() < 1e-10


@pytest.mark.parametrize("options", [dict(mode="sequential"), dict(solver="fixed_point"),
                                     dict(solver="newton"),
                                     dict(mode="whole", whole_method="fixed_point"),
                                     dict(mode="whole", whole_method="anderson")])
def test_modes_and_solvers_agree(backend, options):
    rng = np.random.default_rng(3)
    net = NMNetwork.random(3, 20, 3, seed=3, k=60, scale=0.4)
    net.K[np.diag_indices(20)] = 0.3 * rng.standard_normal(20)
    X0, T = rng.standard_normal((4, 3)), rng.integers(0, 3, 4)
    g = net.prune()
    assert g.schedule.max_module_size > 8  # "auto" takes its fixed-point trial here
    l0, g0, f0 = refimpl.loss_and_grad(net, X0, T, g, **TIGHT)
    l1, g1, f1 = lag(backend, net, X0, T, g, **options, **TIGHT)
    np.testing.assert_allclose(backend.to_numpy(f1.X), f0.X, **X_TOL)
    for name in ("K", "W1", "Wm"):
        np.testing.assert_allclose(backend.to_numpy(getattr(g1, name)), getattr(g0, name),
                                   rtol=1e-8, atol=1e-10, err_msg=name)


@pytest.mark.parametrize("whole_method", ["anderson", "fixed_point"])
def test_whole_mode_runs_the_numba_paths_solver(backend, whole_method):
    """mode="whole" (the DEQ baseline) on the generic path is
    refimpl.solvers.whole.solve_whole itself: Anderson (memory 5) or the plain
    fixed point, so the iteration counts match the numba path's (Anderson's
    least squares sums in another order off NumPy: +-1 step allowed), and X
    and the gradients agree to the issue's tolerances."""
    net = NMNetwork.random(3, 24, 2, seed=5, k=70, scale=0.5)
    rng = np.random.default_rng(5)
    X0, T = rng.standard_normal((4, 3)), rng.integers(0, 2, 4)
    g = net.prune()
    opts = dict(mode="whole", whole_method=whole_method, **TIGHT)
    l0, g0, f0 = refimpl.loss_and_grad(net, X0, T, g, **opts)
    l1, g1, f1 = lag(backend, net, X0, T, g, **opts)
    assert f0.whole_iterations > 5
    assert abs(f1.whole_iterations - f0.whole_iterations) <= (1 if whole_method == "anderson"
                                                              else 0)
    if whole_method == "anderson":  # Anderson is not the plain iteration here
        plain = refimpl.forward(net, X0, g, mode="whole", whole_method="fixed_point", **TIGHT)
        assert f0.whole_iterations < plain.whole_iterations
    check_same(backend, f0, f1)
    assert l1 == pytest.approx(l0, rel=1e-10, abs=1e-12)
    for name in ("K", "W1", "Wm", "U", "V"):
        backend.assert_on_device(getattr(g1, name))
        np.testing.assert_allclose(backend.to_numpy(getattr(g1, name)), getattr(g0, name),
                                   **G_TOL, err_msg=name)


def test_adjoint_reuses_the_forwards_jacobians(backend, monkeypatch):
    """The backward solves J^T u = rhs with the J the forward kept at its
    solution: its batched LU where the namespace has one (NumPy arrays here,
    with SciPy standing in for CuPy's cupyx), else the stack itself with
    xp.linalg.solve (array_api_strict); it builds no Jacobian of its own,
    and the gradients still match the numba path's."""
    if backend.reference:
        pytest.skip("the numba path keeps its LU factors (tests/test_propagate.py)")
    from refimpl.xp import solvers as gs

    monkeypatch.setitem(gs.LU_CANDIDATES, "numpy", "scipy.linalg")  # the CPU stand-in

    net = NMNetwork.random(3, 16, 2, seed=9, k=48, scale=0.9)
    X0, T = np.random.default_rng(9).standard_normal((3, 3)), np.array([0, 1, 1])
    g = net.prune()
    assert g.schedule.max_module_size > 1
    l0, g0, _ = refimpl.loss_and_grad(net, X0, T, g, solver="newton", **TIGHT)
    f1 = fwd(backend, net, X0, g, solver="newton", **TIGHT)
    recs = [r for _, rs in f1.steps for r in rs if r.newton.any()]
    assert recs
    xp = get_backend(backend.backend).xp
    lu = gs.batched_lu(xp) is not None
    if backend.name != "cupy":  # CuPy: whatever its probe found
        assert lu == (backend.name == "numpy-generic")
    for r in recs:
        assert (r.kept.lu is not None) == lu and (r.kept.J is not None) == (not lu)

    def no_new_jacobians(*args, **kwargs):
        raise AssertionError("the backward built a Jacobian instead of reusing the forward's")

    monkeypatch.setattr(gs, "jacobians", no_new_jacobians)
    monkeypatch.setattr(gs, "newton_adjoint", no_new_jacobians)
    from refimpl.xp.propagate import output_loss

    _, G = output_loss(f1._Zc, f1.boundary.up(T), net.output, f1.boundary.xp)
    g1 = refimpl.backward(net, f1, G, backend=backend.backend)
    for name in ("K", "W1", "Wm", "U"):
        np.testing.assert_allclose(backend.to_numpy(getattr(g1, name)), getattr(g0, name),
                                   **G_TOL, err_msg=name)


@pytest.mark.parametrize("namespace", ["numpy", "array_api_strict"])
def test_kept_jacobians_solve_the_transposed_systems(namespace, monkeypatch):
    """keep_jacobians + solve_kept_transposed (the adjoint's LU reuse, with the
    SciPy stand-in on NumPy, the kept stack on array_api_strict) against
    NumPy's dense solve of J^T u = rhs; a singular J gives NaN for its own
    system only."""
    import array_api_compat.numpy as cnp
    import array_api_strict as xps

    from refimpl.xp import solvers as gs

    xp, dev = (cnp, None) if namespace == "numpy" else (xps, xps.Device("device1"))
    if namespace == "numpy":
        monkeypatch.setitem(gs.LU_CANDIDATES, "numpy", "scipy.linalg")  # cupyx's stand-in
    rng = np.random.default_rng(4)
    n, q, B = 3, 5, 4
    AT = rng.standard_normal((n, q, q))
    D = rng.uniform(0.1, 1.0, (n, q, B))
    D[1, :, 2] = 0.0
    AT[1] = 0.0
    AT[1, 0, 0] = 1.0   # J = I - A^T diag(d): singular for (module 1, sample 1) below
    D[1, 0, 1] = 1.0
    RHS = rng.standard_normal((n, q, B))
    kept = gs.keep_jacobians(xp, xp.asarray(AT, device=dev), xp.asarray(D, device=dev))
    assert (kept.lu is not None) == (namespace == "numpy")
    U = gs.solve_kept_transposed(xp, kept, xp.asarray(RHS, device=dev))
    U = refimpl.backend.to_numpy(U)
    for m in range(n):
        for b in range(B):
            J = np.eye(q) - AT[m] * D[m, :, b][None, :]
            if (m, b) == (1, 1):
                assert np.linalg.matrix_rank(J) < q and np.isnan(U[m, :, b]).all()
                continue
            np.testing.assert_allclose(U[m, :, b], np.linalg.solve(J.T, RHS[m, :, b]),
                                       rtol=1e-12, atol=1e-12)


def test_batched_lu_capability_check_falls_back_to_the_stack(monkeypatch):
    """A namespace whose lu_factor takes 2-D matrices only (as CuPy 14's
    cupyx.scipy.linalg) fails batched_lu's probe: the forward then keeps J
    and the adjoint solves it with xp.linalg.solve.  Without a candidate
    (NumPy by default, array_api_strict) there is no LU route either."""
    import array_api_strict as xps
    import array_api_compat.numpy as cnp
    import scipy.linalg

    from refimpl.xp import solvers as gs

    assert gs.batched_lu(xps) is None
    if "numpy" not in gs.LU_CANDIDATES:
        assert gs.batched_lu(cnp) is None
    real = scipy.linalg.lu_factor

    def two_d_only(a, **kwargs):
        if np.ndim(a) != 2:
            raise ValueError("expected a 2-D matrix")
        return real(a, **kwargs)

    monkeypatch.setitem(gs.LU_CANDIDATES, "numpy", "scipy.linalg")
    monkeypatch.setattr(gs, "_LU_MODULES", {})
    assert gs.batched_lu(cnp) is scipy.linalg  # the stand-in passes the probe ...
    monkeypatch.setattr(scipy.linalg, "lu_factor", two_d_only)
    monkeypatch.setattr(gs, "_LU_MODULES", {})
    assert gs.batched_lu(cnp) is None  # ... and fails it with 2-D matrices only
    kept = gs.keep_jacobians(cnp, np.zeros((1, 2, 2)), np.ones((1, 2, 3)))
    assert kept.lu is None and kept.J.shape == (1, 3, 2, 2)
    U = gs.solve_kept_transposed(cnp, kept, np.ones((1, 2, 3)))
    np.testing.assert_allclose(U, 1.0, rtol=0, atol=0)  # J = I


def test_unsolvable_module_raises_convergence_error(backend):
    # Identity activation: x1 = c1 + x2, x2 = c2 + x1 has no solution when c1 + c2 != 0.
    K = np.array([[0.5, 1.0], [1.0, 0.5]])
    net = NMNetwork(K, np.zeros((2, 1)), np.ones((1, 2)), activation="identity",
                    output="identity")
    g = refimpl.prune(K, k=2)
    with pytest.raises(ConvergenceError, match=r"neural module 0 \(size 2, nodes \[0, 1\]\)"):
        fwd(backend, net, np.zeros((1, 1)), g)
    res = fwd(backend, net, np.zeros((1, 1)), g, throw=False)
    assert not res.converged and res.failed_modules == [0]
    assert res.status == refimpl.forward(net, np.zeros((1, 1)), g, throw=False).status
    assert res.status != SolveStatus.CONVERGED


@pytest.mark.parametrize("options", [dict(reg="nm", optimizer="sgd"),
                                     dict(reg="l2", optimizer="adam"),
                                     dict(reg="nm", reg_step="thm31", structure="dag", edges=20),
                                     dict(reg="none", mode="whole")])  # the DEQ: Anderson both
def test_training_epochs_agree(backend, options, tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 4)), rng.integers(0, 3, 40)
    kw = dict(nodes=10, edges=30, epochs=2, batch_size=16, patience=None, init_scale=0.9,
              atol=1e-12, rtol=1e-12)
    kw.update(options)
    ref = Trainer(TrainConfig(**kw), 4, 3)
    ref.fit(X[:30], y[:30], X[30:], y[30:])
    bk = get_backend(backend.backend, backend.device)
    t = Trainer(TrainConfig(**kw, backend=bk), 4, 3)
    t.fit(X[:30], y[:30], X[30:], y[30:])
    if kw.get("structure") != "dag":
        assert t.history[-1]["modules"] >= 1  # the pruned graphs have cycles
    for name in ("K", "W1", "Wm"):
        np.testing.assert_allclose(getattr(t.net, name), getattr(ref.net, name), **G_TOL,
                                   err_msg=name)
    assert t.history[-1]["val_loss"] == pytest.approx(ref.history[-1]["val_loss"], rel=1e-9)
    assert t.config.to_dict()["backend"] == bk.name
    t.save(tmp_path / "c.npz")  # optimizer state is back on the host
    assert Trainer.load(tmp_path / "c.npz").config.backend == bk.name


def test_training_honours_hooks_that_change_the_parameters(backend, tmp_path):
    """On a device the trainer steps device copies of K, W1, Wm; a hook that changes the
    host copies (after a batch, after an epoch: Hook allows both) is honoured, as on the
    numba path, and a checkpoint written during fit (the CLI saves in its epoch callback,
    while the optimizer state is on the device) loads to the trained state."""
    from refimpl.loop import Hook

    class Edit(Hook):
        def after_batch(self, learner, result):
            if learner.epoch == 1 and not self.done:
                learner.net.K[0, 1] += 0.25  # once, in the second epoch
                self.done = True

        def after_epoch(self, learner, record):
            if learner.epoch == 1:
                learner.net.Wm[...] = 0.0
            return False

    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((40, 4)), rng.integers(0, 3, 40)
    kw = dict(nodes=10, edges=30, epochs=3, batch_size=16, patience=None, init_scale=0.9,
              atol=1e-12, rtol=1e-12, reg="nm")
    runs = []
    for bk in (None, get_backend(backend.backend, backend.device)):
        hook = Edit()
        hook.done = False
        t = Trainer(TrainConfig(**kw, **({} if bk is None else {"backend": bk})), 4, 3)
        path = tmp_path / f"{bk is None}.npz"
        t.fit(X[:30], y[:30], X[30:], y[30:], hooks=[hook],
              callback=lambda tr, rec, path=path: tr.save(path) and False)
        assert hook.done
        runs.append((t, Trainer.load(path, backend="numpy")))
    (ref, ref_saved), (t, saved) = runs
    for name in ("K", "W1", "Wm"):
        np.testing.assert_allclose(getattr(t.net, name), getattr(ref.net, name), **G_TOL,
                                   err_msg=name)
        np.testing.assert_array_equal(getattr(saved.net, name), getattr(t.net, name))
    for k, v in t.opt.state.items():
        np.testing.assert_array_equal(saved.opt.state[k], v, err_msg=k)
    assert [h["loss"] for h in t.history] == pytest.approx([h["loss"] for h in ref.history],
                                                           rel=1e-9)


def test_failures_are_said_as_on_the_numba_path(backend):
    """The generic path reports what the numba path reports: singleton modules holding
    NaN/inf after the forward are NONFINITE; a module the forward did not solve fails in
    the backward."""
    p = 4
    K = np.zeros((p, p))
    K[0, 1] = K[1, 2] = K[2, 3] = 1e200
    net = NMNetwork(K, np.ones((p, 1)), np.ones((1, p)), activation="identity",
                    output="identity")
    g = graph_from_mask(K, K != 0)
    with np.errstate(all="ignore"):
        ref = refimpl.forward(net, np.ones((1, 1)), g, throw=False)
        res = fwd(backend, net, np.ones((1, 1)), g, throw=False)
    assert res.status == ref.status == SolveStatus.NONFINITE
    assert res.failed_modules == ref.failed_modules
    K = np.array([[0.3, 2.0], [0.5, -0.1]])  # a singular identity module: no solution
    net = NMNetwork(K, np.ones((2, 1)), np.ones((1, 2)), activation="identity",
                    output="identity")
    g = graph_from_mask(K, np.array([[False, True], [True, False]]))
    with np.errstate(all="ignore"):
        f = fwd(backend, net, np.ones((2, 1)), g, solver="newton", throw=False)
        assert f.failed_modules == [0]
        gr = refimpl.backward(net, f, backend.asarray(np.ones((2, 1))), throw=False,
                              backend=backend.backend)
    assert gr.status != SolveStatus.CONVERGED and gr.failed_modules == [0]


def test_output_losses_agree(backend):
    from refimpl.xp import output_loss as generic_loss

    rng = np.random.default_rng(5)
    Z = rng.standard_normal((6, 3))
    for output, T in (("softmax", rng.integers(0, 3, 6)), ("sigmoid", rng.random((6, 3))),
                      ("identity", rng.standard_normal((6, 3)))):
        l0, G0 = refimpl.output_loss(Z, T, output)
        l1, G1 = generic_loss(backend.asarray(Z), backend.asarray(T), output)
        backend.assert_on_device(G1)
        assert l1 == pytest.approx(l0, rel=1e-13, abs=1e-15)
        np.testing.assert_allclose(backend.to_numpy(G1), G0, rtol=1e-13, atol=1e-16)
    with pytest.raises(ValueError, match="T: class labels"):
        generic_loss(backend.asarray(Z), backend.asarray(np.array([0, 1, 2, 3, 0, 0])),
                     "softmax")


def test_plans_are_uploaded_once_per_schedule():
    import array_api_strict as xps

    from refimpl.xp._plan import get_plan

    net = NMNetwork.random(3, 12, 2, seed=1, k=30)
    g = net.prune()
    dev = xps.Device("device1")
    p1 = get_plan(g, xps, dev, "levels")
    assert get_plan(g.with_weights(net.K * 0.5), xps, dev, "levels") is p1
    assert get_plan(g, xps, xps.Device("device2"), "levels") is not p1


def test_get_backend_resolves_and_refuses():
    import array_api_strict

    assert is_reference("numpy") and not get_backend("numpy").generic
    assert get_backend(np).generic and get_backend("numpy-generic").name == "numpy-generic"
    assert get_backend("array_api_strict").xp is array_api_strict
    assert not is_reference(array_api_strict)
    with pytest.raises(ValueError, match="backend: unknown backend 'torchy'"):
        get_backend("torchy")
    with pytest.raises(ValueError, match="backend:"):
        get_backend(3)
    try:
        import cupy  # noqa: F401

        has_gpu = cupy.cuda.is_available()
    except ImportError:
        has_gpu = False
    if not has_gpu:
        with pytest.raises(BackendError, match="cupy"):
            get_backend("cupy")
        with pytest.raises(BackendError):
            TrainConfig(backend="cupy")


def test_generic_path_rejects_bad_input():
    import array_api_strict as xps

    net = NMNetwork.random(3, 6, 2, seed=0, k=10)
    dev = xps.Device("device1")
    with pytest.raises(ValueError, match=r"X0: expected shape \(B, 3\)"):
        refimpl.forward(net, xps.ones((2, 4), device=dev), backend=xps)
    with pytest.raises(ValueError, match="X0: contains NaN"):
        refimpl.forward(net, xps.full((2, 3), xps.nan, device=dev), backend=xps)
    with pytest.raises(ValueError, match="whole_method"):
        refimpl.forward(net, xps.ones((2, 3), device=dev), backend=xps, mode="whole",
                        whole_method="newton")


def _gpu_check():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check_under_test", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_gpu_check_dry_run(tmp_path, capsys):
    """``refimpl bench gpu --dry-run``: the GPU script on the CPU stand-in
    (array_api_strict here) at tiny sizes: every check passes, every timing
    cell is filled, JSON and Markdown are written."""
    import json

    from refimpl.cli import main

    out = tmp_path / "gpu"
    assert main(["bench", "--backend", "array_api_strict", "gpu", "--dry-run",
                 "--out", str(out)]) == 0
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["dry_run"] and report["backend"] == "array_api_strict"
    assert len(report["checks"]) == 3 and all(r["ok"] for r in report["checks"])
    assert any(r["max_q"] > 1 for r in report["checks"])
    assert all(r["max_abs_dX"] <= 1e-9 for r in report["checks"])
    assert {r["mode"] for r in report["timings"]} == {"levels", "sequential", "whole",
                                                       "anderson"}
    assert all(r["cpu"] > 0 and r["backend"] > 0 for r in report["timings"])
    assert "DRY RUN" in (out / "gpu_check.md").read_text()


def test_gpu_check_fails_on_disagreement(tmp_path, monkeypatch):
    """A check that does not meet its tolerance makes the script exit 1."""
    mod = _gpu_check()
    monkeypatch.setattr(mod, "X_ATOL", -1.0)  # no difference can pass
    assert mod.main(["--dry-run", "--out", str(tmp_path), "--budget", "0"]) == 1
    import json

    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert not any(r["ok"] for r in report["checks"])
    assert all(r["cpu"] is None for r in report["timings"])  # the time guard skipped them


def test_train_and_predict_commands_take_a_backend(tmp_path, capsys):
    pytest.importorskip("sklearn")
    import json

    from refimpl.cli import main

    runs = {}
    for bk in ("numpy", "array_api_strict"):
        out = tmp_path / bk
        assert main(["train", "--dataset", "iris", "--nodes", "8", "--edges", "16",
                     "--epochs", "2", "--out", str(out), "--quiet", "--backend", bk]) == 0
        runs[bk] = json.loads((out / "summary.json").read_text())
        assert runs[bk]["config"]["backend"] == bk
        assert main(["predict", "--checkpoint", str(out / "checkpoint.npz"),
                     "--backend", bk]) == 0
    assert runs["array_api_strict"]["test_error"] == runs["numpy"]["test_error"]
    assert runs["array_api_strict"]["gamma"] == pytest.approx(runs["numpy"]["gamma"],
                                                               rel=1e-9)
    assert main(["train", "--dataset", "iris", "--out", str(tmp_path / "x"), "--quiet",
                 "--backend", "torchy"]) == 2


def test_nmclassifier_backend():
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(2)
    X = rng.standard_normal((60, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    kw = dict(nodes=8, edges=16, epochs=2, random_state=0)
    a = refimpl.NMClassifier(**kw).fit(X, y)
    b = refimpl.NMClassifier(**kw, backend="array_api_strict").fit(X, y)
    np.testing.assert_allclose(b.predict_proba(X), a.predict_proba(X), rtol=1e-8, atol=1e-12)
    assert isinstance(b.predict_proba(X), np.ndarray)


def test_registered_solver_stage_hook(backend, monkeypatch):
    """A stage registered in refimpl.xp.solvers.STAGES (the hook the Krylov
    solver plugs into) solves the groups the strategy gives it, forward and
    adjoint, with the numba path's results."""
    if backend.reference:
        pytest.skip("the hook belongs to the generic path")
    from refimpl.xp import solvers as gs

    calls = []

    def solve(xp, AT, C, act, atol, rtol, max_iter, active):
        calls.append("solve")
        return gs.newton_group(xp, AT, C, act, atol, rtol, max_iter, active)

    def adjoint(xp, AT, D, RHS, atol, rtol):
        calls.append("adjoint")
        return gs.newton_adjoint(xp, AT, D, RHS)

    monkeypatch.setitem(gs.STAGES, "dense_copy", (solve, adjoint))
    rng = np.random.default_rng(4)
    net = NMNetwork.random(3, 14, 2, seed=4, k=40, scale=0.6)
    X0, T = rng.standard_normal((3, 3)), rng.integers(0, 2, 3)
    g = net.prune()
    l0, g0, f0 = refimpl.loss_and_grad(net, X0, T, g, **TIGHT)
    l1, g1, f1 = lag(backend, net, X0, T, g, solver="dense_copy", **TIGHT)
    assert calls.count("solve") >= 1 and calls.count("adjoint") == calls.count("solve")
    np.testing.assert_allclose(backend.to_numpy(f1.X), f0.X, **X_TOL)
    np.testing.assert_allclose(backend.to_numpy(g1.K), g0.K, **G_TOL)


def test_failed_adjoint_names_the_module_or_reports_it(backend, monkeypatch):
    """backward raises ConvergenceError naming the module whose adjoint solve
    failed; with throw=False the gradients carry the status instead."""
    if backend.reference:
        pytest.skip("the generic path's adjoint failures")
    from refimpl.xp import solvers as gs

    def solve(xp, AT, C, act, atol, rtol, max_iter, active):
        return gs.newton_group(xp, AT, C, act, atol, rtol, max_iter, active)

    def adjoint(xp, AT, D, RHS, atol, rtol):
        return RHS * xp.nan  # an adjoint solve that fails everywhere

    monkeypatch.setitem(gs.STAGES, "broken", (solve, adjoint))
    _assert_adjoint_fails(backend, "broken", SolveStatus.MAX_ITERATIONS)


def _assert_adjoint_fails(backend, solver, status):
    """The generic backward of a small network solved by ``solver`` raises
    ConvergenceError naming a module; with throw=False it reports ``status``
    and the failed modules (all of size > 1)."""
    from refimpl.xp import backward as generic_backward

    net = NMNetwork.random(3, 10, 2, seed=5, k=30, scale=0.5)
    g = net.prune()
    X0 = np.random.default_rng(5).standard_normal((2, 3))
    f = fwd(backend, net, X0, g, solver=solver)
    G = backend.asarray(np.ones((2, 2)))
    with pytest.raises(ConvergenceError, match="neural module"):
        generic_backward(net, f, G)
    gr = generic_backward(net, f, G, throw=False)
    assert gr.status == status and gr.failed_modules
    assert all(g.schedule.module_sizes[m] > 1 for m in gr.failed_modules)


def test_singular_kept_jacobian_is_a_failed_adjoint(backend, monkeypatch):
    """A Newton-solved module whose kept J^T solve gives NaN (a singular J at
    the solution) is a failed adjoint with status NO_DECREASE, as on the
    numba path; the gradients of the other modules stay finite."""
    if backend.reference:
        pytest.skip("the generic path's adjoint failures")
    from refimpl.xp import solvers as gs

    solve = gs.solve_kept_transposed

    def singular_first(xp, kept, RHS):
        U = solve(xp, kept, RHS)
        first = xp.reshape(xp.arange(U.shape[0], device=U.device) == 0, (-1, 1, 1))
        return xp.where(first, xp.nan, U)

    monkeypatch.setattr(gs, "solve_kept_transposed", singular_first)
    _assert_adjoint_fails(backend, "newton", SolveStatus.NO_DECREASE)


def test_cuda_kernels_in_the_simulator():
    """tests/cudasim in a separate process under numba's CUDA simulator (the
    kernels of refimpl/xp/cuda_tiny.py on NumPy arrays, tiny sizes)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", REFIMPL_CUDA_TINY="1",
               PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(root / "tests" / "cudasim")], env=env, cwd=root,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "2 passed" in out.stdout, out.stdout[-2000:]


def test_condition_numbers_agree(backend):
    net = NMNetwork.random(3, 16, 2, seed=9, k=48, scale=0.6)
    X0 = np.random.default_rng(9).standard_normal((3, 3))
    g = net.prune()
    ref = refimpl.forward(net, X0, g, compute_cond=True)
    got = fwd(backend, net, X0, g, compute_cond=True)
    multi = g.schedule.module_sizes > 1
    assert multi.any()
    # cond_2 from singular values of the same J: agreement to rounding (x agrees to 1e-10).
    np.testing.assert_allclose(got.module_cond[multi], ref.module_cond[multi], rtol=1e-6,
                               atol=0)


def test_tiny_kernels_need_a_gpu_and_libnvvm(monkeypatch):
    """The stage "newton_cuda" is used only where numba.cuda sees a GPU and
    finds libNVVM (a driver alone cannot compile the kernels)."""
    from numba import cuda
    from numba.cuda.cudadrv import nvvm

    from refimpl.xp import solvers as gs

    monkeypatch.setattr(cuda, "is_available", lambda: False)
    assert not gs.numba_cuda_usable()
    monkeypatch.setattr(cuda, "is_available", lambda: True)
    monkeypatch.setattr(nvvm, "is_available", lambda: False)
    assert not gs.numba_cuda_usable()
    monkeypatch.setattr(nvvm, "is_available", lambda: True)
    assert gs.numba_cuda_usable()


def test_generic_strategy_mirrors_the_numba_path():
    """solver="auto" picks the same stages on both paths (so statuses and
    iteration patterns can agree): the cutoffs are the same numbers."""
    from refimpl import propagate
    from refimpl.xp import solvers as gs

    for name in ("AUTO_NEWTON_MAX_Q", "AUTO_FP_ITER_PER_Q", "AUTO_KRYLOV_MIN_Q"):
        assert getattr(gs, name) == getattr(propagate, name), name
    for q in (2, 8, 9, 95, 96, 500):
        assert gs.module_solver_stages(q, 1, 4, "auto") == propagate.STRATEGIES["auto"](q), q
    assert gs.module_solver_stages(300, 1, 4, "krylov") == ("krylov",)


def test_large_non_contractive_module_goes_to_krylov(backend):
    """A 100-node module whose fixed point fails: "auto" hands it to the
    engine's Newton-Krylov on both paths; X and gradients agree."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from gpu_check import giant_module

    K, mask = giant_module(100, 0, weight=1.6)
    rng = np.random.default_rng(0)
    net = NMNetwork(K, rng.standard_normal((100, 3)), rng.standard_normal((2, 100)))
    g = graph_from_mask(K, mask)
    X0, T = rng.standard_normal((3, 3)), rng.integers(0, 2, 3)
    l0, g0, f0 = refimpl.loss_and_grad(net, X0, T, g, **TIGHT)
    l1, g1, f1 = lag(backend, net, X0, T, g, **TIGHT)
    if not backend.reference:
        assert any("krylov" in r.other for _, recs in f1.steps for r in recs)
    np.testing.assert_allclose(backend.to_numpy(f1.X), f0.X, **X_TOL)
    for name in ("K", "W1", "Wm"):
        np.testing.assert_allclose(backend.to_numpy(getattr(g1, name)), getattr(g0, name),
                                   **G_TOL, err_msg=name)
