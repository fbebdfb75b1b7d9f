"""Traceability: code -> equations, proofs -> tests, claims -> proofs.

(a) every public function/class names what it implements in its docstring;
(b) every test that a proof or the errata table cites exists;
(c) every claim of ``refimpl verify`` names an existing proof file;
(d) ``refimpl verify --json`` runs and every claim passes.
"""
import ast
import contextlib
import importlib
import inspect
import io
import json
import re
from pathlib import Path

import pytest

from refimpl import verify
from refimpl.cli import main

ROOT = Path(__file__).resolve().parents[1]
PROOFS = sorted((ROOT / "proofs").glob("*.md"))

#: A docstring "names what it implements" when it cites the paper or the
#: supplement (equation, theorem, algorithm, section, definition, table,
#: appendix) or the specification.
REFERENCE = re.compile(
    r"Eq\.|Thm\.|Alg\.|Sec\.|Def\.|S-Eq\.|S-Alg\.|S-Thm\.|Appendix|Table \d|DESIGN\.md")

MODULES = ["refimpl", "refimpl.theory", "refimpl.regularization", "refimpl.perceptron",
           "refimpl.appendix_a", "refimpl.train", "refimpl.estimator", "refimpl.baselines.mlp",
           "refimpl.experiments", "refimpl.solvers.anderson", "refimpl.sagp", "refimpl.datasets",
           "refimpl.optim", "refimpl.loop",
           "refimpl.baselines.cff", "refimpl.baselines.darts", "refimpl.baselines.binary",
           "refimpl.baselines.gcn", "refimpl.baselines.graph_data", "refimpl.baselines.deq",
           "refimpl.baselines.optnet", "refimpl.baselines._common", "refimpl.threads",
           "refimpl.feature_selection", "refimpl.sagp_studies",
           "refimpl.backend", "refimpl.xp", "refimpl.xp.solvers", "refimpl.xp.cuda_tiny",
           "refimpl.activations", "refimpl.equations", "refimpl.propagate", "refimpl.workloads",
           "refimpl.graph", "refimpl.graph.prune", "refimpl.graph.schedule",
           "refimpl.solvers.result", "refimpl.solvers.newton", "refimpl.solvers.fixed_point",
           "refimpl.solvers.krylov", "refimpl.solvers.krylov_kernels", "refimpl.solvers.whole",
           "refimpl.datasets.supplement", "refimpl.experiments.cell", "refimpl.sagp.masks"]
#: Modules with public functions that are deliberately not checked: they
#: implement no equation (command line, checkpoint I/O, argument validation,
#: the claims runner, timing helpers, test helpers, a private planner):
#: refimpl.cli, refimpl.commands.*, refimpl.io, refimpl.validation,
#: refimpl.verify, refimpl.timing, refimpl.testing, refimpl.xp._plan.

#: Known exceptions, each with its reason.  Kept minimal: the test below fails
#: when an entry gains a reference (remove it then).  Entries marked "owner"
#: should get a reference in their docstring (not this file's to edit).
ALLOWED_WITHOUT_REFERENCE = {
    "refimpl.ConvergenceError": "solver infrastructure (error type), implements no equation",
    "refimpl.SolveStatus": "solver infrastructure (status codes), implements no equation",
    "refimpl.train.CheckpointError": "I/O infrastructure (error type), implements no equation",
    "refimpl.estimator.NotFittedError": "scikit-learn convention (error type), no equation",
    "refimpl.BackendError": "backend infrastructure (error type), implements no equation",
    "refimpl.backend.BackendError": "backend infrastructure (error type), implements no equation",
    "refimpl.solvers.result.ConvergenceError": "refimpl.ConvergenceError, where it is defined",
    "refimpl.solvers.result.SolveStatus": "refimpl.SolveStatus, where it is defined",
}


def _callable_kind(obj):
    """A function, a class, a numba dispatcher (``py_func``) or a
    ``functools`` wrapper (``__wrapped__``, e.g. ``lru_cache``)."""
    return (inspect.isfunction(obj) or inspect.isclass(obj)
            or inspect.isfunction(getattr(obj, "py_func", None))
            or inspect.isfunction(getattr(obj, "__wrapped__", None)))


def _source(obj):
    obj = getattr(obj, "py_func", None) or getattr(obj, "__wrapped__", None) or obj
    return inspect.getsourcefile(obj)


def _public(mod):
    """Names in ``__all__`` and the non-underscore functions and classes defined
    in ``mod`` (public by name even when ``__all__`` leaves them out)."""
    names = list(getattr(mod, "__all__", []))
    names += [n for n, o in vars(mod).items()
              if not n.startswith("_") and n not in names and _callable_kind(o)
              and getattr(o, "__module__", None) == mod.__name__]
    out = []
    for n in names:
        obj = getattr(mod, n)
        if _callable_kind(obj):
            out.append((f"{mod.__name__}.{n}", obj))
    return out


def test_public_sees_numba_kernels_and_wrappers():
    """The kernels are numba dispatchers, not functions: they must be checked too."""
    names = {q for q, _ in PUBLIC}
    assert {"refimpl.solvers.krylov_kernels.arnoldi_step",
            "refimpl.solvers.krylov_kernels.gmres_update",
            "refimpl.solvers.fixed_point.fixed_point_kernel",
            "refimpl.experiments.load_dataset"} <= names


PUBLIC = [item for m in MODULES for item in _public(importlib.import_module(m))]


@pytest.mark.parametrize("qualname, obj", PUBLIC, ids=[q for q, _ in PUBLIC])
def test_public_docstring_names_what_it_implements(qualname, obj):
    doc = inspect.getdoc(obj) or ""
    if qualname in ALLOWED_WITHOUT_REFERENCE:
        assert not REFERENCE.search(doc), \
            f"{qualname} now cites a reference: remove it from ALLOWED_WITHOUT_REFERENCE"
        return
    assert doc.strip(), f"{qualname} has no docstring"
    assert REFERENCE.search(doc), (
        f"{qualname} ({_source(obj)}): the docstring names no equation, "
        "theorem, algorithm, section or DESIGN.md")


def test_allow_list_entries_exist():
    names = {q for q, _ in PUBLIC}
    assert set(ALLOWED_WITHOUT_REFERENCE) <= names


# ----------------------------------------------------------------------------
# (b) proofs and errata cite tests that exist
# ----------------------------------------------------------------------------

_TEST_REF = re.compile(r"(tests/[\w/]+\.py)::([\w:]+)(?:\[[^\]]*\])?")


def _defined_tests(path):
    """Names of test functions in ``path`` (``Class::method`` for methods)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            for sub in node.body:
                if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(f"{node.name}::{sub.name}")
    return names


def _missing(refs):
    cache, missing = {}, []
    for file, name in refs:
        path = ROOT / file
        if not path.exists():
            missing.append(f"{file}::{name} (no such file)")
            continue
        if file not in cache:
            cache[file] = _defined_tests(path)
        if name not in cache[file]:
            missing.append(f"{file}::{name}")
    return missing


def _checked_by(path):
    return [m.groups() for line in path.read_text().splitlines()
            if line.strip().startswith("Checked by:") for m in _TEST_REF.finditer(line)]


def _errata_shown_by():
    """``tests/X.py::name`` cells of the "shown by" column of proofs/errata.md."""
    refs, col = [], None
    for line in (ROOT / "proofs" / "errata.md").read_text().splitlines():
        if not line.startswith("|"):
            col = None
            continue
        # Split on unescaped pipes (cells may contain \| for a norm).
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        if "shown by" in cells:
            col = cells.index("shown by")
        elif col is not None and col < len(cells):
            refs += [m.groups() for m in _TEST_REF.finditer(cells[col])]
    return refs


@pytest.mark.parametrize("path", [p for p in PROOFS if p.name != "errata.md"],
                         ids=lambda p: p.name)
def test_proof_checked_by_tests_exist(path):
    refs = _checked_by(path)
    assert refs, f"{path.name} has no 'Checked by: tests/<file>::<test>' line"
    assert not _missing(refs), f"{path.name} cites missing tests: {_missing(refs)}"


def test_errata_shown_by_tests_exist():
    refs = _errata_shown_by()
    assert len(refs) >= 5, "the parser found too few tests in the 'shown by' column"
    assert not _missing(refs), f"proofs/errata.md cites missing tests: {_missing(refs)}"


def test_every_test_reference_in_proofs_exists():
    """Stricter than the two above: also references in the prose."""
    refs = [m.groups() for p in PROOFS for m in _TEST_REF.finditer(p.read_text())]
    assert not _missing(refs), _missing(refs)


# ----------------------------------------------------------------------------
# (c), (d): the claims report
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("claim", verify.CLAIMS, ids=lambda c: c.name)
def test_claim_names_existing_proof(claim):
    assert claim.proof.startswith("proofs/") and (ROOT / claim.proof).is_file(), claim.proof
    assert REFERENCE.search(claim.equations) or claim.equations.startswith("App."), \
        claim.equations


def test_verify_json_all_claims_pass():
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        rc = main(["verify", "--json"])
    report = json.loads(out.getvalue())
    failed = [(c["name"], c["error"], c["tolerance"], c["detail"])
              for c in report["claims"] if not c["passed"]]
    assert rc == 0 and report["passed"] and not failed, failed
    assert report["n_claims"] == len(verify.CLAIMS)
