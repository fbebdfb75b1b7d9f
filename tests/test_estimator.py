"""NMClassifier: the scikit-learn-style estimator around Alg. 2 and Alg. 3 (DESIGN.md sec. 13).

Accuracy on held-out splits of iris and breast_cancer with the defaults, label
round-trips, the scikit-learn contract (clone, get/set_params, NotFittedError,
``check_estimator``), determinism, input errors naming the argument, and the
fallback base classes when scikit-learn cannot be imported.  Most tests use a
small network (``FAST``) on three well-separated Gaussian blobs.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from refimpl.datasets import stratified_split
from refimpl.estimator import HAVE_SKLEARN, NMClassifier, NotFittedError

ROOT = Path(__file__).resolve().parents[1]

#: A small, quick configuration for the contract tests (not for accuracy).
FAST = dict(nodes=12, epochs=5)


def _blobs(n_per_class=20, n_features=4, seed=0):
    """Three Gaussian blobs (unit variance, centres 6 apart): linearly separable."""
    rng = np.random.default_rng(seed)
    centres = 6.0 * np.eye(3, n_features)
    X = np.concatenate([c + rng.standard_normal((n_per_class, n_features)) for c in centres])
    y = np.repeat(np.arange(3), n_per_class)
    return X, y


@pytest.fixture(scope="module")
def blobs():
    return _blobs()


@pytest.fixture(scope="module")
def fitted(blobs):
    X, y = blobs
    return NMClassifier(**FAST).fit(X, y)


# ---------------------------------------------------------------- accuracy (defaults)
@pytest.mark.parametrize("name, threshold", [("iris", 0.9), ("breast_cancer", 0.93)])
def test_default_accuracy_on_held_out_split(name, threshold):
    """With the defaults, Alg. 2 then Alg. 3 beat ``threshold`` on a held-out
    25 % stratified test split (observed: iris 0.97, breast_cancer 0.97)."""
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    train, _, test = stratified_split(y, seed=0, val_size=0.0, test_size=0.25)
    clf = NMClassifier()
    assert clf.fit(X[train], y[train]) is clf
    acc = clf.score(X[test], y[test])
    assert acc > threshold, f"{name}: held-out accuracy {acc:.3f} <= {threshold}"
    assert clf.n_features_in_ == X.shape[1]
    assert_array_equal(clf.classes_, np.unique(y))
    assert 1 <= clf.best_epoch_ <= clf.n_iter_ == len(clf.history_) <= clf.epochs
    assert clf.trainer_.net.n_in == X.shape[1]
    assert np.isfinite(clf.gamma_)


def test_fits_the_blobs(fitted, blobs):
    X, y = blobs
    assert fitted.score(X, y) > 0.95


# ---------------------------------------------------------------- labels
def test_string_labels_round_trip(blobs):
    X, y = blobs
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = NMClassifier(**FAST).fit(X, names)
    assert_array_equal(clf.classes_, ["setosa", "versicolor", "virginica"])
    pred = clf.predict(X)
    assert pred.dtype == clf.classes_.dtype
    assert set(pred) <= set(clf.classes_)
    # the same network as with integer labels (codes are the sorted label order)
    assert_array_equal(pred, clf.classes_[NMClassifier(**FAST).fit(X, y).predict(X)])


def test_non_contiguous_integer_labels(blobs):
    X, y = blobs
    labels = np.array([-7, 3, 40])[y]
    clf = NMClassifier(**FAST).fit(X, labels)
    assert_array_equal(clf.classes_, [-7, 3, 40])
    assert set(clf.predict(X)) <= {-7, 3, 40}
    assert clf.score(X, labels) > 0.95


# ---------------------------------------------------------------- predictions
def test_predict_proba_rows_sum_to_one_and_argmax_is_predict(fitted, blobs):
    X, _ = blobs
    P = fitted.predict_proba(X)
    assert P.shape == (X.shape[0], 3)
    assert np.all(P >= 0)
    assert_allclose(P.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert_array_equal(fitted.classes_[np.argmax(P, axis=1)], fitted.predict(X))


def test_same_random_state_gives_identical_predictions(blobs):
    X, y = blobs
    a = NMClassifier(**FAST, random_state=3).fit(X, y)
    b = NMClassifier(**FAST, random_state=3).fit(X, y)
    assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert_array_equal(a.trainer_.net.K, b.trainer_.net.K)
    c = NMClassifier(**FAST, random_state=4).fit(X, y)
    assert not np.array_equal(a.trainer_.net.K, c.trainer_.net.K)


def test_standardize_is_fitted_on_training_data(fitted, blobs):
    X, _ = blobs
    assert_allclose(fitted.mean_, X.mean(axis=0))
    assert_allclose(fitted.scale_, X.std(axis=0))
    raw = NMClassifier(**FAST, standardize=False).fit(*blobs)
    assert raw.mean_ is None and raw.scale_ is None


def test_validation_fraction_zero_trains_every_epoch(blobs):
    X, y = blobs
    clf = NMClassifier(**FAST, validation_fraction=0).fit(X, y)
    assert clf.n_iter_ == clf.best_epoch_ == FAST["epochs"]
    assert all(rec["val_loss"] is None for rec in clf.history_)


def test_early_stopping_keeps_the_lowest_validation_loss(blobs):
    X, y = blobs
    clf = NMClassifier(nodes=12, epochs=40, patience=2).fit(X, y)
    losses = [rec["val_loss"] for rec in clf.history_]
    assert clf.best_epoch_ == 1 + int(np.argmin(losses))
    assert clf.n_iter_ == len(losses) <= clf.best_epoch_ + 2
    # the kept parameters are those of the best epoch: prediction reproduces its loss
    train, val, _ = stratified_split(y, seed=0, val_size=0.1, test_size=0.0)
    P = clf.predict_proba(X[val])
    loss = -np.mean(np.log(P[np.arange(val.size), y[val]]))
    assert_allclose(loss, min(losses), rtol=1e-6, atol=0)


# ---------------------------------------------------------------- scikit-learn contract
def test_get_params_set_params_and_clone_round_trip():
    clone = pytest.importorskip("sklearn.base").clone
    clf = NMClassifier(nodes=30, reg="nm", random_state=5)
    params = clf.get_params()
    assert params["nodes"] == 30 and params["reg"] == "nm" and params["random_state"] == 5
    assert params["validation_fraction"] == 0.1 and params["standardize"] is True
    assert clf.set_params(lr=0.1, patience=None) is clf
    assert clf.get_params()["lr"] == 0.1 and clf.get_params()["patience"] is None
    twin = clone(clf)
    assert twin is not clf and twin.get_params() == clf.get_params()
    assert NMClassifier(**NMClassifier().get_params()).get_params() == \
        NMClassifier().get_params()
    with pytest.raises(ValueError, match="Invalid parameter"):
        clf.set_params(no_such_parameter=1)


def test_clone_of_fitted_is_unfitted(fitted):
    clone = pytest.importorskip("sklearn.base").clone
    twin = clone(fitted)
    assert not hasattr(twin, "classes_")
    with pytest.raises(NotFittedError):
        twin.predict(np.zeros((1, 4)))


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score"])
def test_not_fitted_error(method, blobs):
    X, y = blobs
    args = (X, y) if method == "score" else (X,)
    with pytest.raises(NotFittedError, match="not fitted"):
        getattr(NMClassifier(), method)(*args)
    if HAVE_SKLEARN:
        from sklearn.exceptions import NotFittedError as SkNotFittedError
        assert NotFittedError is SkNotFittedError


def test_passes_sklearn_check_estimator():
    """scikit-learn's whole common-check suite (about 55 checks, ~2 s with a tiny net)."""
    estimator_checks = pytest.importorskip("sklearn.utils.estimator_checks")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SkipTestWarning for pandas / array-API checks
        estimator_checks.check_estimator(NMClassifier(nodes=20, epochs=3))


# ---------------------------------------------------------------- input errors
@pytest.mark.parametrize("bad, match", [
    (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 5, np.nan, X), "X: contains NaN"),
    (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 5, np.inf, X), "X: contains NaN"),
    (lambda X: X[:, 0], "X: expected a 2-D array"),
    (lambda X: X[:, :, None], "X: expected a 2-D array"),
    (lambda X: X.astype(str), "X: expected a real numeric"),
    (lambda X: X + 1j, "X: Complex data"),
])
def test_bad_X_at_fit_names_X(bad, match, blobs):
    X, y = blobs
    with pytest.raises(ValueError, match=match):
        NMClassifier(**FAST).fit(bad(X), y)


def test_bad_X_at_predict_names_X(fitted, blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="X has 3 features, but NMClassifier is expecting 4"):
        fitted.predict(X[:, :3])
    with pytest.raises(ValueError, match="X: expected a 2-D array.*Reshape"):
        fitted.predict(X[0])
    bad = X.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="X: contains NaN"):
        fitted.predict_proba(bad)


def test_bad_y(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="y: has 59 labels but X has 60 samples"):
        NMClassifier(**FAST).fit(X, y[:-1])
    with pytest.raises(ValueError, match="y: expected a 1-D array"):
        NMClassifier(**FAST).fit(X, np.stack([y, y], axis=1))
    with pytest.raises(ValueError, match="y: .*at least 2 classes, got 1 class"):
        NMClassifier(**FAST).fit(X, np.zeros(X.shape[0], dtype=int))
    with pytest.raises(ValueError, match="y: .*at least 2 classes"):
        NMClassifier(**FAST).fit(X, np.full(X.shape[0], "only"))
    with pytest.raises(ValueError, match="y: Unknown label type: continuous"):
        NMClassifier(**FAST).fit(X, y + 0.5)
    with pytest.raises(ValueError, match="y: contains NaN"):
        NMClassifier(**FAST).fit(X, np.where(y == 0, np.nan, y))


@pytest.mark.parametrize("param, value", [
    ("nodes", 0), ("epochs", 2.5), ("lr", -1.0), ("optimizer", "rmsprop"), ("reg", "l1"),
    ("patience", 0), ("validation_fraction", 1.0), ("validation_fraction", -0.1),
    ("random_state", "seed"), ("random_state", -1),
])
def test_bad_hyper_parameters_raise_at_fit_naming_them(param, value, blobs):
    clf = NMClassifier(**FAST).set_params(**{param: value})  # __init__ does not validate
    with pytest.raises(ValueError, match=param):
        clf.fit(*blobs)


# ---------------------------------------------------------------- without scikit-learn
def test_import_and_fallbacks_without_sklearn():
    """``import refimpl`` and ``refimpl.estimator`` work when scikit-learn cannot be
    imported; the stand-in get_params/set_params/score/NotFittedError behave."""
    code = textwrap.dedent("""
        import sys
        for name in list(sys.modules):
            if name == "sklearn" or name.startswith("sklearn."):
                del sys.modules[name]
        sys.modules["sklearn"] = None   # makes "import sklearn..." raise ImportError
        import numpy as np
        import refimpl
        import refimpl.estimator as e
        assert not e.HAVE_SKLEARN
        assert not any(m.startswith("sklearn.") for m in sys.modules)
        clf = e.NMClassifier(nodes=12, epochs=3, random_state=1)
        p = clf.get_params()
        assert p["nodes"] == 12 and p["random_state"] == 1 and len(p) == 19, p
        assert clf.set_params(lr=0.2) is clf and clf.lr == 0.2
        try:
            clf.set_params(bogus=1)
        except ValueError as exc:
            assert "Invalid parameter" in str(exc)
        else:
            raise AssertionError("set_params accepted an unknown name")
        try:
            clf.predict(np.zeros((2, 3)))
        except e.NotFittedError as exc:
            assert isinstance(exc, RuntimeError) and isinstance(exc, ValueError)
        else:
            raise AssertionError("predict before fit did not raise")
        rng = np.random.default_rng(0)
        X = np.concatenate([rng.standard_normal((15, 3)) - 4, rng.standard_normal((15, 3)) + 4])
        y = np.array(["a"] * 15 + ["b"] * 15)
        assert clf.fit(X, y) is clf
        assert clf.score(X, y) == np.mean(clf.predict(X) == y) > 0.9
        assert "NMClassifier(" in repr(clf)
        print("ok")
    """)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_a_constant_feature_is_constant_whatever_its_std_rounds_to():
    """150 copies of 0.1 have std 2.5e-16, not 0: standardizing by it made a change of 1e-9
    in that feature at predict time move it by 4e6 and wreck every prediction. A feature
    whose values are all equal is divided by 1 (NMClassifier and the data sets alike)."""
    from refimpl.datasets.base import split_standardize

    rng = np.random.default_rng(0)
    X = np.concatenate([rng.standard_normal((75, 2)) - 2, rng.standard_normal((75, 2)) + 2])
    X = np.column_stack([X, np.full(150, 0.1)])
    y = np.repeat([0, 1], 75)
    assert X[:, 2].std() > 0.0  # the rounding the test is about
    clf = NMClassifier(nodes=6, epochs=3, random_state=0).fit(X, y)
    assert clf.scale_[2] == 1.0
    X2 = X.copy()
    X2[:, 2] += 1e-9
    assert_array_equal(clf.predict(X2), clf.predict(X))
    ds = split_standardize(X, y, seed=0)
    assert np.abs(ds.X_train[:, 2]).max() < 1e-15 and np.abs(ds.X_test[:, 2]).max() < 1e-15


def test_standardize_must_be_a_bool_and_the_trainer_keeps_the_backend_name():
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((40, 3)), np.repeat([0, 1], 20)
    with pytest.raises(ValueError, match="standardize: expected True or False"):
        NMClassifier(nodes=5, epochs=1, standardize="no").fit(X, y)
    clf = NMClassifier(nodes=5, epochs=1, backend=np).fit(X, y)  # a namespace module
    assert clf.trainer_.config.backend == "numpy-generic"  # (a module: the generic path)
    import pickle

    pickle.loads(pickle.dumps(clf.trainer_))  # (the module itself would not pickle)


def test_a_validation_split_that_takes_a_whole_class_is_refused():
    """validation_fraction 0.5 moved a class of one row into the validation split: with
    three classes it was silently never learned, with two the error blamed y."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((21, 3))
    for y in (np.array(["a"] * 10 + ["b"] * 10 + ["c"]), np.array(["a"] * 20 + ["b"])):
        with pytest.raises(ValueError, match=r"validation_fraction: 0.5 leaves no training "
                                             r"row of the class\(es\) \['[bc]'\]"):
            NMClassifier(nodes=6, epochs=1, validation_fraction=0.5).fit(X, y)
