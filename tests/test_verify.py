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
