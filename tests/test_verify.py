"""``refimpl verify``: the table, the JSON report, and failing claims.

The full report is computed twice per module (table and JSON, ~1-2 s each);
the failure tests run a claim list of two.
"""
import contextlib
import dataclasses
import io
import json

import numpy as np
import pytest

from refimpl import verify
from refimpl.cli import main


def _run_cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def table_run():
    return _run_cli(["verify"])


@pytest.fixture(scope="module")
def json_run():
    return _run_cli(["verify", "--json"])


def _failing(claim):
    return dataclasses.replace(claim, run=lambda: verify.Measurement(1.0, 1e-12, "forced"))


def test_table_lists_every_claim_and_exits_zero(table_run):
    rc, out, err = table_run
    assert rc == 0, out
    for head in ("claim", "check", "measured error", "tolerance", "result"):
        assert head in out.splitlines()[0]
    for claim in verify.CLAIMS:
        row = next((ln for ln in out.splitlines() if ln.startswith(f"| {claim.name} ")), None)
        assert row is not None, f"no row for {claim.name}"
        assert claim.equations in row and "pass" in row
    n = len(verify.CLAIMS)
    assert f"{n}/{n} claims pass" in out
    # stderr is not a terminal here: no progress bar.
    assert err == ""


def test_json_parses(json_run):
    rc, out, _ = json_run
    assert rc == 0
    report = json.loads(out)
    assert report["passed"] is True and report["n_failed"] == 0
    assert [c["name"] for c in report["claims"]] == [c.name for c in verify.CLAIMS]
    for c in report["claims"]:
        assert set(c) >= {"name", "equations", "check", "proof", "error", "tolerance", "passed"}


def test_every_claim_passes(json_run):
    report = json.loads(json_run[1])
    failed = [(c["name"], c["error"], c["tolerance"], c["detail"])
              for c in report["claims"] if not c["passed"]]
    assert not failed
    for c in report["claims"]:
        assert c["error"] <= c["tolerance"]


def test_failing_claim_makes_exit_code_nonzero(monkeypatch):
    claims = (_failing(verify.CLAIMS[0]), verify.CLAIMS[-1])
    monkeypatch.setattr(verify, "CLAIMS", claims)
    rc, out, _ = _run_cli(["verify"])
    assert rc != 0
    assert "FAIL" in out and "1/2 claims pass" in out and "forced" in out
    rc, out, _ = _run_cli(["verify", "--json"])
    assert rc != 0
    report = json.loads(out)
    assert report["passed"] is False and report["n_failed"] == 1
    assert [c["passed"] for c in report["claims"]] == [False, True]


def test_crashing_check_is_a_failed_claim(monkeypatch):
    def boom():
        raise RuntimeError("broken check")

    claims = (dataclasses.replace(verify.CLAIMS[-1], run=boom),)
    monkeypatch.setattr(verify, "CLAIMS", claims)
    rc, out, _ = _run_cli(["verify", "--json"])
    assert rc == 1
    c = json.loads(out)["claims"][0]  # strict JSON: inf became null
    assert c["passed"] is False and c["error"] is None and "broken check" in c["detail"]


def test_nan_error_fails():
    res = verify.run_claim(dataclasses.replace(
        verify.CLAIMS[-1], run=lambda: verify.Measurement(np.nan, 1.0)))
    assert not res.passed


def test_select_one_claim():
    rc, out, _ = _run_cli(["verify", "--json", "--claim", "eq16"])
    assert rc == 0
    assert [c["name"] for c in json.loads(out)["claims"]] == ["eq16"]


def test_run_claims_is_pure(capsys):
    rows = verify.run_claims(verify.CLAIMS[-2:])
    assert [r.name for r in rows] == [c.name for c in verify.CLAIMS[-2:]]
    assert all(isinstance(r, verify.ClaimResult) and r.passed for r in rows)
    assert capsys.readouterr() == ("", "")


def test_claim_names_unique():
    names = [c.name for c in verify.CLAIMS]
    assert len(set(names)) == len(names)


def test_gradient_claims_exercise_every_solver_path(json_run):
    """Every module solver (and so its adjoint) is checked by the gradient claims."""
    from refimpl import propagate

    assert set(verify.SOLVER_PATHS) == set(propagate.SOLVERS) - {"auto"}
    report = {c["name"]: c for c in json.loads(json_run[1])["claims"]}
    for name in ("eq4-8-fd", "adjoint"):
        for solver in verify.SOLVER_PATHS:
            assert solver in report[name]["detail"], (name, solver)


# ----------------------------------------------------------------------------
# claims that can fail: a broken component makes verify fail
# ----------------------------------------------------------------------------


def _claim(name):
    return next(c for c in verify.CLAIMS if c.name == name)


def test_broken_weight_gradient_fails_verify(monkeypatch):
    """A wrong dL/dWm (half the true one) makes the FD claim, and ``refimpl verify``, fail."""
    real = verify.loss_and_grad

    def broken(*args, **kwargs):
        loss, grads, fwd = real(*args, **kwargs)
        return loss, dataclasses.replace(grads, Wm=grads.Wm * 0.5), fwd

    monkeypatch.setattr(verify, "loss_and_grad", broken)
    (res,) = verify.run_claims([_claim("eq4-8-fd")])
    assert not res.passed and res.error > 1e-2
    rc, out, _ = _run_cli(["verify", "--json", "--claim", "eq4-8-fd"])
    assert rc == 1 and json.loads(out)["claims"][0]["passed"] is False


def test_broken_backward_fails_eq4_claim(monkeypatch):
    """U = f'(V) (Alg. 1 line 44 read literally) instead of f'(X) V fails the Eq. 4 claim."""
    from refimpl.activations import get_activation

    real = verify.loss_and_grad

    def broken(net, *args, **kwargs):
        loss, grads, fwd = real(net, *args, **kwargs)
        U = get_activation(net.activation).df(grads.V)
        return loss, dataclasses.replace(grads, U=U), fwd

    monkeypatch.setattr(verify, "loss_and_grad", broken)
    (res,) = verify.run_claims([_claim("eq4-v")])
    assert not res.passed


def test_broken_repulsion_fails_eq9_10(monkeypatch):
    """R = z_i z_j d_ij (Eq. 10 inverted) fails the hand-computed case."""
    real = verify.nm_repulsion

    def broken(graph):
        rep = real(graph)
        return dataclasses.replace(rep, R=np.outer(rep.z, rep.z) * rep.D)

    monkeypatch.setattr(verify, "nm_repulsion", broken)
    (res,) = verify.run_claims([_claim("eq9-10")])
    assert not res.passed and res.error > 0.1


def test_eq9_10_hand_values_are_eq10():
    """The hand table of the claim: entries with an edge are z_i z_j e^{w~}, others z_i z_j."""
    R = verify._r_hand()
    z = np.array([2.0, 2.0, 1.0, 1.0])
    assert R[0, 1] == pytest.approx(4 * np.e**0.5, rel=1e-15)
    assert R[3, 0] == z[3] * z[0] and R[0, 3] == 2.0
    (res,) = verify.run_claims([_claim("eq9-10")])
    assert res.passed


def test_appendix_h_is_measured_and_reported(json_run):
    """The App. H claim reports both runs and its verdict, whichever way it comes out."""
    _, out, _ = json_run
    row = next(c for c in json.loads(out)["claims"] if c["name"] == "appendix-h")
    assert row["passed"]
    assert ("holds" in row["detail"]) and ("NM:" in row["detail"]) and ("none:" in row["detail"])
    assert "p_merge by q" in row["detail"] and "disparity" in row["detail"]


def test_appendix_h_fails_when_nm_regularization_is_off(monkeypatch):
    """With R = 0 inside training the NM run is the unregularized run: the claim fails."""
    import refimpl.train as train

    # training applies R through these three (the per-batch forms of Thm. 3.1: the fused
    # update pass reads R from nm_repulsion_sparse, the separate passes call the other two);
    # R = 0:
    monkeypatch.setattr(train, "nm_repulsion_sparse", lambda graph: (
        np.zeros(graph.p), np.zeros(graph.p + 1, np.int32), np.zeros(0, np.int32), np.ones(0)))
    monkeypatch.setattr(train, "nm_proximal", lambda K, graph, alpha, eta, out=None: K)
    monkeypatch.setattr(train, "nm_rate_times",
                        lambda K, graph, alpha, out=None: np.zeros_like(K))
    (res,) = verify.run_claims([_claim("appendix-h")])
    assert not res.passed and res.error > 0.9


def test_merge_probabilities_hand_case():
    """Eq. 16 per module on a 4-node case: module {0, 1} has 8 candidate edges to the
    rest, 1 kept (1 -> 2), so theta = 7/8 and p = 1 - (7/8)^2."""
    from refimpl.graph import prune

    g = prune(verify._K_HAND, gamma=0.2)
    pm = verify._merge_probabilities(verify._K_HAND, g)
    assert pm[2] == pytest.approx(1 - (7 / 8) ** 2, rel=1e-15)
    # singletons {2} (candidates 6, kept 2: 1 -> 2, 2 -> 3) and {3} (6, kept 1)
    assert pm[1] == pytest.approx(((1 - 4 / 6) + (1 - 5 / 6)) / 2, rel=1e-15)


def test_testing_oracles_agree_with_the_engine():
    """refimpl.testing's dense Newton forward and dense adjoint against forward/backward."""
    from refimpl import forward
    from refimpl.model import output_loss
    from refimpl.propagate import backward
    from refimpl.testing import dense_adjoint, dense_newton_forward, eq3_residual, random_case

    net, X0, T = random_case(3, p=12, k=36)
    g = net.prune()
    fwd = forward(net, X0, g, atol=1e-13, rtol=1e-13)
    X, Z = dense_newton_forward(net, X0, g)
    # Both solve to ~1e-13 relative; cond of the Jacobian ~ 10: rtol 1e-10.
    np.testing.assert_allclose(X, fwd.X, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(Z, fwd.Z, rtol=1e-10, atol=1e-12)
    assert np.abs(eq3_residual(net, g, X0, X)).max() < 1e-12
    assert np.abs(eq3_residual(net, g, X0, X + 1e-3)).max() > 1e-4
    _, G = output_loss(fwd.Z, T, net.output)
    V, U = dense_adjoint(net, g, fwd.X, G)
    b = backward(net, fwd, G)
    np.testing.assert_allclose(V, b.V, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(U, b.U, rtol=1e-10, atol=1e-13)


# ----------------------------------------------------------------------------
# Thm. 3.3: the measured E||grad||^2 against the bound
# ----------------------------------------------------------------------------

#: Eq. (23)'s counterexample (``proofs/thm3_3.md``): a tiny w0, so ||w0 - w~0||^2 ~ 1e-5
#: while the pruning error of DPF grows to ~20; T = 3200 violates the paper's last line.
_EQ23_COUNTEREXAMPLE = dict(T_values=(100, 3200), seed=0, init_scale=1e-3, k=5,
                            teacher_support=20, n_repeats=8)


@pytest.fixture(scope="module")
def counterexample_studies():
    from refimpl.theory import thm33_study

    return {reg: thm33_study(regularizer=reg, **_EQ23_COUNTEREXAMPLE)
            for reg in verify.THM33_REGULARIZERS}


def test_thm33_claim_compares_with_the_bound_for_l2_and_nm():
    (res,) = verify.run_claims([_claim("thm3.3-bound")])
    assert res.passed and 0.0 < res.error < 1.0
    assert "l2:" in res.detail and "nm:" in res.detail
    for reg in verify.THM33_REGULARIZERS:
        s = verify.thm33_verify_study(reg)
        # (*) recomputed here from the study's constants, independently of both.
        zeta = s.c / np.sqrt(s.T)
        star = (2 * (s.f0 - s.f_star) / (zeta * (s.T + 1)) + s.L * zeta * s.G**2
                + s.L**2 * s.prune_err_sq)
        np.testing.assert_allclose(verify.thm33_argument_bound(s), star, rtol=1e-13, atol=0)
        np.testing.assert_allclose(verify.thm33_paper_bound(s) - star,
                                   s.L**2 * (s.prune_err0 - s.prune_err_sq),
                                   rtol=1e-10, atol=1e-14)
    assert not np.all(verify.thm33_verify_study("nm").r == 1.0), "NM reg. is L2 here"


def test_paper_bound_fails_thm33_claim_on_eq23_counterexample(counterexample_studies):
    """The paper's last line (Eq. 23 used) injected as the bound: the claim fails, while
    the same measurements are below the argument's bound (*)."""
    study = counterexample_studies.__getitem__
    broken = verify.Claim("thm33-paper", "", "", "", "",
                          lambda: verify.check_thm33_bound(study, verify.thm33_paper_bound))
    (res,) = verify.run_claims([broken])
    assert not res.passed and res.error > 1.5, res
    good = dataclasses.replace(broken, run=lambda: verify.check_thm33_bound(study))
    (res,) = verify.run_claims([good])
    assert res.passed, res


@pytest.mark.parametrize("breakage, message", [
    ("grad_sq summed over t", ""),
    ("bound without pruning term", "not (*)"),
    ("step c / T", "c / sqrt(T)"),
    ("regularizer ignored", "asked for 'nm'"),
])
def test_broken_thm33_study_fails_verify(monkeypatch, breakage, message):
    """A study that sums instead of averaging, reports a bound other than (*), uses
    another step, or runs L2 when asked for NM makes ``refimpl verify`` fail."""
    real = verify.thm33_verify_study

    def broken(reg):
        s = real(reg)
        if breakage == "grad_sq summed over t":
            return dataclasses.replace(s, grad_sq=s.grad_sq * (s.T + 1))
        if breakage == "bound without pruning term":
            return dataclasses.replace(s, bound=s.bound - s.L**2 * s.prune_err_sq)
        if breakage == "step c / T":
            return dataclasses.replace(s, step=s.c / s.T)
        return real("l2")

    monkeypatch.setattr(verify, "thm33_verify_study", broken)
    (res,) = verify.run_claims([_claim("thm3.3-bound")])
    assert not res.passed and message in res.detail, res
    if breakage == "grad_sq summed over t":
        assert res.error > 1.0
    rc, out, _ = _run_cli(["verify", "--json", "--claim", "thm3.3-bound"])
    assert rc == 1 and json.loads(out)["claims"][0]["passed"] is False
