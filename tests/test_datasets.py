"""Tests of refimpl.datasets (DESIGN.md sec. 11).

Splits: stratified, disjoint, covering, seeded; standardization with train statistics only
(checked against a manual computation).  Each loader of the paper's four datasets reads
tiny files written here in the published format, by path and by environment variable.
"""
from __future__ import annotations

import dataclasses
import json
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from refimpl import datasets as D
from refimpl.datasets import (
    DataQualityWarning,
    Dataset,
    load_builtin,
    load_codon,
    load_daily_sports,
    load_facebook,
    load_gas_drift,
    split_standardize,
    stratified_split,
    teacher_data,
)

ENV_VARS = ("REFIMPL_DATA", "REFIMPL_CODON", "REFIMPL_GAS_DRIFT", "REFIMPL_DAILY_SPORTS",
            "REFIMPL_FACEBOOK")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    """No test sees a data location set in the developer's environment."""
    for v in ENV_VARS:
        monkeypatch.delenv(v, raising=False)


def _parts(ds: Dataset):
    return [(ds.X_train, ds.y_train), (ds.X_val, ds.y_val), (ds.X_test, ds.y_test)]


def _all_rows(ds: Dataset):
    X = np.concatenate([ds.X_train, ds.X_val, ds.X_test])
    y = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    return X, y


def _sorted_rows(X):
    return X[np.lexsort(X.T[::-1])]


# --------------------------------------------------------------------------- splitting
def _check_split(y, tr, va, te, val_size, test_size):
    n = len(y)
    idx = np.concatenate([tr, va, te])
    assert idx.size == n, "splits must cover every row exactly once"
    assert_array_equal(np.sort(idx), np.arange(n), err_msg="splits not disjoint / covering")
    for part, frac in ((tr, 1 - val_size - test_size), (va, val_size), (te, test_size)):
        for c in np.unique(y):
            n_c = np.sum(y == c)
            got = np.sum(y[part] == c)
            assert abs(got - n_c * frac) <= 1 + 1e-9, (
                f"class {c}: {got} rows in a split of fraction {frac}, expected {n_c * frac}")


def test_stratified_split_hand_example():
    y = np.array(["b"] * 50 + ["a"] * 30 + ["c"] * 17 + ["d"] * 3 + ["e"])
    tr, va, te = stratified_split(y, seed=3)
    _check_split(y, tr, va, te, 0.15, 0.15)
    # per class: round(0.15 n), round(0.30 n) - round(0.15 n), rest (a=30: 5, 4, 21 ...)
    assert (np.sum(y[te] == "b"), np.sum(y[va] == "b"), np.sum(y[tr] == "b")) == (8, 7, 35)
    assert (np.sum(y[te] == "a"), np.sum(y[va] == "a"), np.sum(y[tr] == "a")) == (5, 4, 21)
    assert np.sum(y[tr] == "e") == 1, "a singleton class stays in training"


@given(counts=st.lists(st.integers(0, 40), min_size=1, max_size=6),
       val_size=st.floats(0.0, 0.45), test_size=st.floats(0.0, 0.45),
       seed=st.integers(0, 2**16))
def test_stratified_split_invariants(counts, val_size, test_size, seed):
    y = np.repeat(np.arange(len(counts)), counts)
    tr, va, te = stratified_split(y, seed=seed, val_size=val_size, test_size=test_size)
    _check_split(y, tr, va, te, val_size, test_size)


def test_split_standardize_rows_labels_and_seeds():
    rng = np.random.default_rng(0)
    n = 200
    labels = rng.choice(np.array(["cat", "dog", "eel"]), size=n, p=[0.6, 0.3, 0.1])
    X = np.column_stack([np.arange(n), rng.standard_normal((n, 3))])  # column 0: row id
    ds = split_standardize(X, labels, seed=5, standardize=False, name="toy")
    assert ds.name == "toy" and ds.n_features == 4 and ds.n_classes == 3
    assert_array_equal(ds.classes, ["cat", "dog", "eel"])
    for Xp, yp in _parts(ds):
        assert Xp.dtype == np.float64 and yp.dtype.kind == "i"
        ids = Xp[:, 0].astype(int)
        assert_array_equal(ds.classes[yp], labels[ids], err_msg="labels do not map back")
        assert_array_equal(Xp, X[ids])
    ids = [Xp[:, 0].astype(int) for Xp, _ in _parts(ds)]
    _check_split(labels, *ids, 0.15, 0.15)

    again = split_standardize(X, labels, seed=5, standardize=False)
    other = split_standardize(X, labels, seed=6, standardize=False)
    for (A, a), (B, b) in zip(_parts(ds), _parts(again)):
        assert_array_equal(A, B)
        assert_array_equal(a, b)
    assert not np.array_equal(np.sort(ds.X_test[:, 0]), np.sort(other.X_test[:, 0])), (
        "seeds 5 and 6 gave the same test rows")


def test_standardization_uses_train_statistics_only():
    rng = np.random.default_rng(1)
    n = 300
    X = rng.normal(loc=[3.0, -2.0, 0.0], scale=[5.0, 0.1, 1.0], size=(n, 3))
    y = rng.integers(0, 3, size=n)
    tr, _, _ = stratified_split(y, seed=2)           # the split depends on y and seed only
    X[:, 2] = 8.0
    X[tr, 2] = 7.0                                   # constant on the training rows
    raw = split_standardize(X, y, seed=2, standardize=False)
    ds = split_standardize(X, y, seed=2)
    mu = raw.X_train.mean(axis=0)
    s = raw.X_train.std(axis=0)
    s[2] = 1.0                                       # documented: divide by 1, not by 0
    assert_allclose(ds.X_train.mean(axis=0), 0.0, atol=1e-12)
    assert_allclose(ds.X_train.std(axis=0)[:2], 1.0, rtol=1e-12)
    assert_allclose(ds.X_train[:, 2], 0.0, atol=0)
    assert_allclose(ds.X_test[:, 2], 1.0, atol=0)
    for A, R in ((ds.X_val, raw.X_val), (ds.X_test, raw.X_test)):
        assert_allclose(A, (R - mu) / s, rtol=1e-12, atol=1e-12,
                        err_msg="val/test must use the training mean and std")
    # the held-out parts are not standardized on their own statistics
    assert np.abs(ds.X_val.mean(axis=0)[:2]).max() > 1e-3


def test_split_standardize_rejects_bad_input():
    X = np.ones((10, 2))
    y = np.arange(10) % 2
    with pytest.raises(ValueError, match="NaN"):
        split_standardize(np.where(np.eye(10, 2) > 0, np.nan, X), y)
    with pytest.raises(ValueError, match="shape"):
        split_standardize(X, y[:-1])
    with pytest.raises(ValueError, match="val_size"):
        split_standardize(X, y, val_size=0.5, test_size=0.5)
    with pytest.raises(ValueError, match="not in classes"):
        split_standardize(X, y, classes=[0])


def test_dataset_is_frozen_and_validated():
    ds = split_standardize(np.arange(20.0).reshape(10, 2), np.arange(10) % 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "x"
    assert "n_train=" in repr(ds)
    with pytest.raises(ValueError, match="y_val"):
        dataclasses.replace(ds, y_val=ds.y_val[:-1])


# --------------------------------------------------------------------------- codon usage
CODONS = ("UUU UUC UUA UUG CUU CUC CUA CUG AUU AUC AUA AUG GUU GUC GUA GUG GCU GCC GCA GCG "
          "CCU CCC CCA CCG UGG GGU GGC GGA GGG UCU UCC UCA UCG AGU AGC ACU ACC ACA ACG UAU "
          "UAC CAA CAG AAU AAC UGU UGC CAU CAC AAG AAA CGU CGC CGA CGG AGA AGG GAU GAC GAA "
          "GAG UAA UAG UGA").split()


def _write_codon(folder, n_per=8):
    """codon_usage.csv as published, with the two known kinds of malformed rows."""
    assert len(CODONS) == 64 and len(set(CODONS)) == 64
    rng = np.random.default_rng(0)
    kingdoms = ["vrl", "bct", "pln"]
    freqs = np.round(rng.random((3 * n_per, 64)) / 64, 5)
    lines = ["Kingdom,DNAtype,SpeciesID,Ncodons,SpeciesName," + ",".join(CODONS)]
    for r in range(3 * n_per):
        cells = [kingdoms[r % 3], "0", str(100000 + r), str(1000 + r), f"Species number {r}"]
        lines.append(",".join(cells + [f"{v:.5f}" for v in freqs[r]]))
    bad = ["vrl", "0", "999", "1234", "Hepatitis virus", "non-B hepatitis virus", "12;I"]
    lines.insert(5, ",".join(bad + ["0.00100"] * 62))           # file line 6
    comma = ["pln", "0", "998", "1234", "Oryza sativa", " Japonica Group"]  # stray comma
    lines.insert(10, ",".join(comma + ["0.00100"] * 64))        # file line 11
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "codon_usage.csv").write_text("\n".join(lines) + "\n")
    return freqs, np.array([kingdoms[r % 3] for r in range(3 * n_per)])


def test_load_codon_published_format(tmp_path):
    freqs, kingdoms = _write_codon(tmp_path)
    with pytest.warns(DataQualityWarning, match=r"line\(s\) \[6, 11\]"):
        ds = load_codon(tmp_path / "codon_usage.csv", standardize=False)
    assert ds.name == "codon" and ds.feature_names == tuple(CODONS)
    assert_array_equal(ds.classes, ["bct", "pln", "vrl"])
    X, y = _all_rows(ds)
    assert_allclose(_sorted_rows(X), _sorted_rows(freqs), rtol=0, atol=0)
    assert_array_equal(np.sort(ds.classes[y]), np.sort(kingdoms))
    # malformed row: documented "raise" choice
    with pytest.raises(ValueError, match="line 6"):
        load_codon(tmp_path, bad_rows="raise")


def test_load_codon_env_routes(tmp_path, monkeypatch):
    _write_codon(tmp_path / "root" / "codon_usage")
    monkeypatch.setenv("REFIMPL_DATA", str(tmp_path / "root"))
    with pytest.warns(DataQualityWarning):
        a = load_codon(seed=1)
    monkeypatch.setenv("REFIMPL_CODON", str(tmp_path / "root" / "codon_usage"))
    with pytest.warns(DataQualityWarning):
        b = load_codon(seed=1)
    assert_array_equal(a.X_train, b.X_train)
    assert a.n_features == 64 and a.n_classes == 3


# --------------------------------------------------------------------------- gas drift
def _write_gas(folder, batches=range(1, 11), n_per=4):
    rng = np.random.default_rng(1)
    X, y = [], []
    folder.mkdir(parents=True, exist_ok=True)
    for b in batches:
        lines = []
        for r in range(n_per):
            gas = 1 + (r + b) % 6
            x = np.round(rng.normal(0, 1000, 128), 6)
            x[5] = 0.0 if r == 0 else x[5]          # sparse line: index 6 omitted below
            tokens = [f"{gas};{rng.choice([10, 50, 100]):.6f}"]
            tokens += [f"{i + 1}:{v:.6f}" for i, v in enumerate(x) if not (r == 0 and i == 5)]
            lines.append(" ".join(tokens))
            X.append(x)
            y.append(gas)
        (folder / f"batch{b}.dat").write_text("\n".join(lines) + "\n")
    return np.array(X), np.array(y)


def test_load_gas_drift_published_format(tmp_path, monkeypatch):
    X0, y0 = _write_gas(tmp_path)
    ds = load_gas_drift(tmp_path, standardize=False)
    assert ds.n_features == 128 and ds.feature_names[0] == "f1" and ds.name == "gas_drift"
    assert_array_equal(ds.classes, np.arange(1, 7))
    X, y = _all_rows(ds)
    order = np.lexsort(X.T[::-1])
    order0 = np.lexsort(X0.T[::-1])
    assert_allclose(X[order], X0[order0], rtol=1e-12)
    assert_array_equal(ds.classes[y[order]], y0[order0], err_msg="gas label is before ';'")
    sub = load_gas_drift(tmp_path, batches=(1, 2), standardize=False)
    assert sum(len(yp) for _, yp in _parts(sub)) == 8
    monkeypatch.setenv("REFIMPL_GAS_DRIFT", str(tmp_path))
    assert_array_equal(load_gas_drift().y_test, load_gas_drift(tmp_path).y_test)


def test_load_gas_drift_errors(tmp_path):
    _write_gas(tmp_path, batches=range(1, 4))
    with pytest.raises(FileNotFoundError, match=r"batch4\.dat.*REFIMPL_GAS_DRIFT"):
        load_gas_drift(tmp_path)
    (tmp_path / "batch1.dat").write_text("1;10.0 1:0.5 two:1.0\n")
    with pytest.raises(ValueError, match=r"batch1\.dat, line 1"):
        load_gas_drift(tmp_path, batches=(1,))


# --------------------------------------------------------------------------- daily sports
def _write_dsa(root, acts=(1, 2, 3), subjects=(1, 2), segments=(1, 2, 3), shape=(125, 45)):
    rng = np.random.default_rng(2)
    segs = {}
    for a in acts:
        for p in subjects:
            d = root / "data" / f"a{a:02d}" / f"p{p}"
            d.mkdir(parents=True, exist_ok=True)
            for s in segments:
                seg = np.round(rng.normal(a, 1.0, shape), 4)
                np.savetxt(d / f"s{s:02d}.txt", seg, fmt="%.4f", delimiter=",")
                segs[(a, p, s)] = seg
    return segs


def test_load_daily_sports_published_format(tmp_path, monkeypatch):
    segs = _write_dsa(tmp_path / "dsa")
    ds = load_daily_sports(tmp_path / "dsa", standardize=False)
    assert ds.n_features == 180 and ds.name == "daily_sports"
    assert ds.feature_names[:4] == ("T_xacc_mean", "T_xacc_std", "T_xacc_min", "T_xacc_max")
    assert_array_equal(ds.classes, [1, 2, 3])
    X, y = _all_rows(ds)
    assert X.shape == (18, 180)
    seg = segs[(2, 1, 3)]
    expect = np.stack([seg.mean(0), seg.std(0), seg.min(0), seg.max(0)], axis=1).ravel()
    hit = np.flatnonzero(np.all(np.isclose(X, expect, rtol=1e-12, atol=0), axis=1))
    assert hit.size == 1 and ds.classes[y[hit[0]]] == 2
    flat = load_daily_sports(tmp_path / "dsa" / "data", features="flatten", standardize=False)
    Xf, yf = _all_rows(flat)
    assert Xf.shape == (18, 125 * 45)
    assert np.any(np.all(Xf == seg.ravel(), axis=1)), "flatten is the row-major segment"
    monkeypatch.setenv("REFIMPL_DATA", str(tmp_path))
    (tmp_path / "dsa").rename(tmp_path / "daily_sports")
    assert_array_equal(load_daily_sports(seed=4).y_val, load_daily_sports(seed=4).y_val)
    assert load_daily_sports().n_features == 180


def test_load_daily_sports_errors(tmp_path):
    _write_dsa(tmp_path, acts=(1,), subjects=(1,), segments=(1,))
    np.savetxt(tmp_path / "data" / "a01" / "p1" / "s02.txt", np.zeros((124, 45)),
               delimiter=",")
    with pytest.raises(ValueError, match="shape"):
        load_daily_sports(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"a01/p1/s01\.txt"):
        load_daily_sports(tmp_path / "empty")


# --------------------------------------------------------------------------- facebook
def _write_facebook(folder):
    folder.mkdir(parents=True, exist_ok=True)
    types = ["tvshow", "government", "company", "politician"]
    n = 24
    feats = {str(i): sorted({(3 * i) % 31, (5 * i + 1) % 31, 40 + i % 4}) for i in range(n)}
    feats["7"] = []                                           # a page without features
    edges = [(i, (i + 1) % n) for i in range(n)] + [(0, 5), (0, 9), (3, 12)]
    (folder / "musae_facebook_edges.csv").write_text(
        "id_1,id_2\n" + "".join(f"{a},{b}\n" for a, b in edges))
    rows = [f'{i},{10**9 + i},"Page, number {i}",{types[i % 4]}\n' for i in range(n)]
    (folder / "musae_facebook_target.csv").write_text(
        "id,facebook_id,page_name,page_type\n" + "".join(rows))
    (folder / "musae_facebook_features.json").write_text(json.dumps(feats))
    deg = np.bincount(np.array(edges).ravel(), minlength=n)
    return feats, deg, [types[i % 4] for i in range(n)]


def test_load_facebook_published_format(tmp_path, monkeypatch):
    feats, deg, types = _write_facebook(tmp_path / "fb")
    ds = load_facebook(tmp_path / "fb", standardize=False)
    assert ds.n_features == 44 + 1 and ds.feature_names[-1] == "log1p_degree"
    assert_array_equal(ds.classes, ["company", "government", "politician", "tvshow"])
    expect = np.zeros((24, 45))
    for i, f in feats.items():
        expect[int(i), f] = 1.0
    expect[:, -1] = np.log1p(deg)
    X, y = _all_rows(ds)
    assert_allclose(_sorted_rows(X), _sorted_rows(expect), rtol=1e-15, atol=0)
    assert sorted(ds.classes[y]) == sorted(types)
    hashed = load_facebook(tmp_path / "fb", n_features=8, degree=False, standardize=False)
    Xh, _ = _all_rows(hashed)
    expect_h = np.zeros((24, 8))
    for i, f in feats.items():
        expect_h[int(i), np.asarray(f, int) % 8] = 1.0
    assert_array_equal(_sorted_rows(Xh), _sorted_rows(expect_h))
    monkeypatch.setenv("REFIMPL_FACEBOOK", str(tmp_path / "fb"))
    assert load_facebook(degree=False).n_features == 44


def test_load_facebook_unknown_edge_end(tmp_path):
    _write_facebook(tmp_path)
    with open(tmp_path / "musae_facebook_edges.csv", "a") as fh:
        fh.write("3,99\n")
    with pytest.raises(ValueError, match="99"):
        load_facebook(tmp_path)


# --------------------------------------------------------------------------- missing data
LOADERS = [
    (load_codon, "REFIMPL_CODON", "codon_usage", "codon_usage.csv"),
    (load_gas_drift, "REFIMPL_GAS_DRIFT", "gas_drift", "batch1.dat"),
    (load_daily_sports, "REFIMPL_DAILY_SPORTS", "daily_sports", "a01/p1/s01.txt"),
    (load_facebook, "REFIMPL_FACEBOOK", "facebook", "musae_facebook_edges.csv"),
]


@pytest.mark.parametrize("loader, var, sub, expected", LOADERS)
def test_missing_path_names_location_and_variable(loader, var, sub, expected, tmp_path,
                                                  monkeypatch):
    with pytest.raises(FileNotFoundError) as exc:
        loader()
    msg = str(exc.value)
    assert var in msg and "REFIMPL_DATA" in msg and expected in msg and f"{sub}/" in msg
    monkeypatch.setenv("REFIMPL_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=str(tmp_path / sub)):
        loader()
    (tmp_path / sub).mkdir()
    with pytest.raises(FileNotFoundError) as exc:
        loader()
    assert var in str(exc.value) and expected.split("/")[-1] in str(exc.value)


# --------------------------------------------------------------------------- built-in data
@pytest.mark.parametrize("name, shape, n_classes", [
    ("digits", (1797, 64), 10), ("wine", (178, 13), 3),
    ("breast_cancer", (569, 30), 2), ("iris", (150, 4), 3)])
def test_load_builtin(name, shape, n_classes):
    skd = pytest.importorskip("sklearn.datasets")
    bunch = getattr(skd, f"load_{name}")()
    ds = load_builtin(name, seed=1)
    X, y = _all_rows(ds)
    assert X.shape == shape and ds.n_classes == n_classes and ds.name == name
    assert_array_equal(ds.classes, bunch.target_names)
    assert_array_equal(np.bincount(y), np.bincount(bunch.target),
                       err_msg="class codes must equal scikit-learn's targets")
    assert_allclose(ds.X_train.mean(axis=0), 0.0, atol=1e-10)
    assert_array_equal(load_builtin(name, seed=1).y_test, ds.y_test)


def test_load_builtin_errors(monkeypatch):
    with pytest.raises(ValueError, match="digits.*wine.*breast_cancer.*iris"):
        load_builtin("mnist")
    monkeypatch.setitem(sys.modules, "sklearn", None)         # import sklearn -> ImportError
    with pytest.raises(ImportError, match=r'pip install -e "\.\[data\]"'):
        load_builtin("iris")


# --------------------------------------------------------------------------- teachers
def test_teacher_data_deterministic_per_seed():
    a = teacher_data(300, 6, 3, seed=7)
    b = teacher_data(300, 6, 3, seed=7)
    c = teacher_data(300, 6, 3, seed=8)
    for (A, ya), (B, yb) in zip(_parts(a), _parts(b)):
        assert_array_equal(A, B)
        assert_array_equal(ya, yb)
    assert not np.array_equal(a.X_train, c.X_train)
    assert_array_equal(a.classes, [0, 1, 2])


@pytest.mark.parametrize("seed, n_classes", [(0, 2), (1, 3), (2, 5)])
def test_teacher_data_balanced_and_learnable(seed, n_classes):
    ds = teacher_data(1500, 10, n_classes, seed=seed)
    _, y = _all_rows(ds)
    freq = np.bincount(y, minlength=n_classes) / y.size
    assert freq.min() > 0.5 / n_classes, f"classes too unbalanced: {freq}"
    cent = np.stack([ds.X_train[ds.y_train == c].mean(0) for c in range(n_classes)])
    pred = ((ds.X_test[:, None, :] - cent) ** 2).sum(-1).argmin(1)
    acc = np.mean(pred == ds.y_test)
    assert acc > 1.0 / n_classes + 0.25, f"nearest centroid accuracy {acc} near chance"


def test_teacher_label_noise():
    clean = teacher_data(4000, 5, 4, seed=3, standardize=False)
    noisy = teacher_data(4000, 5, 4, seed=3, noise=0.4, standardize=False)
    (Xc, yc), (Xn, yn) = _all_rows(clean), _all_rows(noisy)
    oc, on = np.lexsort(Xc.T[::-1]), np.lexsort(Xn.T[::-1])
    assert_array_equal(Xc[oc], Xn[on], err_msg="noise must leave the inputs unchanged")
    changed = np.mean(yc[oc] != yn[on])
    assert abs(changed - 0.4 * (1 - 1 / 4)) < 0.03, changed
    with pytest.raises(ValueError, match="noise"):
        teacher_data(10, 2, 2, noise=1.5)


def test_module_exports():
    for name in D.__all__:
        assert hasattr(D, name)


# --------------------------------------------------------------------------- registry
def _same(a, b):
    for part in ("train", "val", "test"):
        assert_array_equal(getattr(a, f"X_{part}"), getattr(b, f"X_{part}"))
        assert_array_equal(getattr(a, f"y_{part}"), getattr(b, f"y_{part}"))
    assert_array_equal(a.classes, b.classes)
    assert a.name == b.name


def test_load_registry_dispatches_by_name(tmp_path):
    """``load(name, path, seed, ...)`` is the one dispatch: each name reaches its loader."""
    pytest.importorskip("sklearn")
    _same(D.load("iris", seed=3, test_size=0.2), load_builtin("iris", seed=3, test_size=0.2))
    _same(D.load("teacher", seed=2, n_samples=40, n_in=3, n_classes=2),
          teacher_data(40, 3, 2, seed=2))
    _write_codon(tmp_path)
    with pytest.warns(DataQualityWarning):
        a = D.load("codon", tmp_path, seed=1)
    with pytest.warns(DataQualityWarning):
        b = load_codon(tmp_path, seed=1)
    _same(a, b)
    assert set(D.DATASETS) == set(D.BUILTIN_DATASETS + D.PAPER_DATASETS + D.SUPPLEMENT_DATASETS
                                  + ("teacher",))


def test_load_registry_errors(tmp_path):
    with pytest.raises(ValueError, match="name: unknown data set 'mnist'"):
        D.load("mnist")
    with pytest.raises(ValueError, match="path: the data set 'iris' is not read from disk"):
        D.load("iris", tmp_path)
    with pytest.raises(FileNotFoundError, match="REFIMPL_GAS_DRIFT"):
        D.load("gas_drift")


@pytest.mark.parametrize("seed", [-1, "a", 1.5, True])
def test_load_refuses_a_bad_seed_by_name(seed):
    """A seed that is not an integer >= 0 is a ValueError naming ``seed`` (it was numpy's
    SeedSequence error, a TypeError for a string)."""
    with pytest.raises(ValueError, match="^seed: expected a non-negative integer"):
        D.load("iris", seed=seed)
