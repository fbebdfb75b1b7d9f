"""Loaders of the supplement's data sets (its Sec. 3.1, Table 1), on tiny files written here
in each published format: idx gzip (Fashion-MNIST), pickle batches (CIFAR-10), WAVs named
``{digit}_{speaker}_{index}.wav`` (FSDD), WAVs + ``meta/esc50.csv`` (ESC-50), the npz of
Shchur et al. (Amazon).  Expected values come from the generating arrays, not the loaders.
The audio tests need librosa (the ``audio`` extra) and skip without it.
"""
from __future__ import annotations

import csv
import gzip
import json
import pickle
import struct
import wave

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from refimpl.datasets import supplement as S

ENV = ("REFIMPL_DATA", "REFIMPL_FASHION_MNIST", "REFIMPL_CIFAR10", "REFIMPL_FSDD",
       "REFIMPL_ESC50", "REFIMPL_AMAZON")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for v in ENV:
        monkeypatch.delenv(v, raising=False)


def _standardized(train, *others):
    """Independent oracle of the train-statistics standardization."""
    mu, s = train.mean(0), train.std(0)
    s = np.where(s > 0, s, 1.0)
    return [(A - mu) / s for A in (train, *others)]


# --------------------------------------------------------------------------- Fashion-MNIST
def _write_idx(f, arr):
    arr = np.asarray(arr, dtype=np.uint8)
    head = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(f, "wb") as fh:
        fh.write(head + arr.tobytes())


def _fmnist(tmp_path, n_train=30, n_test=10):
    rng = np.random.default_rng(0)
    Xtr = rng.integers(0, 256, (n_train, 28, 28))
    Xte = rng.integers(0, 256, (n_test, 28, 28))
    ytr, yte = np.arange(n_train) % 10, (np.arange(n_test) * 3) % 10
    for name, a in (("train-images-idx3-ubyte", Xtr), ("train-labels-idx1-ubyte", ytr),
                    ("t10k-images-idx3-ubyte", Xte), ("t10k-labels-idx1-ubyte", yte)):
        _write_idx(tmp_path / f"{name}.gz", a)
    return Xtr, ytr, Xte, yte


def test_read_idx_round_trip_and_bad_magic(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "a.gz", a)
    assert_array_equal(S.read_idx(tmp_path / "a.gz"), a)
    (tmp_path / "b").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x05")
    with pytest.raises(ValueError, match="not an idx file"):
        S.read_idx(tmp_path / "b")
    (tmp_path / "c").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x03\x05")
    with pytest.raises(ValueError, match="shape"):
        S.read_idx(tmp_path / "c")


def test_fashion_mnist_published_split_and_pixels(tmp_path, monkeypatch):
    Xtr, ytr, Xte, yte = _fmnist(tmp_path)
    raw = S.load_fashion_mnist(tmp_path, standardize=False)
    assert raw.n_features == 784 and raw.X_val.shape == (0, 784), "Table 1: 60000/-/10000"
    assert_allclose(raw.X_train, Xtr.reshape(30, -1) / 255.0, rtol=0, atol=1e-15)
    assert_allclose(raw.X_test, Xte.reshape(10, -1) / 255.0, rtol=0, atol=1e-15)
    assert_array_equal(raw.y_train, ytr)
    assert_array_equal(raw.y_test, yte)
    assert raw.classes[9] == "Ankle boot"
    monkeypatch.setenv("REFIMPL_FASHION_MNIST", str(tmp_path))
    ds = S.load_fashion_mnist()
    for got, want in zip((ds.X_train, ds.X_test), _standardized(raw.X_train, raw.X_test)):
        assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    held = S.load_fashion_mnist(tmp_path, val_size=0.2, seed=3, standardize=False)
    # 3 images per class: round(3 * 0.2) = 1 per class to validation (stratified_split's rule)
    assert len(held.y_train) == 20 and len(held.y_val) == 10 and len(held.y_test) == 10
    rows = np.concatenate([held.X_train, held.X_val])
    assert_array_equal(np.sort(rows, axis=0), np.sort(raw.X_train, axis=0))


def test_missing_files_name_where_to_put_them(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="REFIMPL_FASHION_MNIST") as e:
        S.load_fashion_mnist()
    assert "\n" not in str(e.value)
    monkeypatch.setenv("REFIMPL_DATA", str(tmp_path))
    (tmp_path / "cifar10").mkdir()
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        S.load_cifar10()
    with pytest.raises(FileNotFoundError, match="amazon_electronics_photo.npz"):
        S.load_amazon_photo(tmp_path)
    with pytest.raises(FileNotFoundError, match="REFIMPL_ESC50"):
        S.load_esc50(tmp_path / "nowhere")


# --------------------------------------------------------------------------- CIFAR-10
def _cifar(tmp_path, n=4):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = {}
    for i, stem in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        data = rng.integers(0, 256, (n, 3072)).astype(np.uint8)
        labels = [int(v) for v in (np.arange(n) + i) % 10]
        with open(folder / stem, "wb") as fh:
            pickle.dump({b"batch_label": stem.encode(), b"labels": labels, b"data": data,
                         b"filenames": [b"x.png"] * n}, fh, protocol=2)
        batches[stem] = (data, labels)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse",
             b"ship", b"truck"]
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": names, b"num_vis": 3072}, fh, protocol=2)
    return batches


def test_cifar10_grayscale_order_and_split(tmp_path):
    batches = _cifar(tmp_path)
    ds = S.load_cifar10(tmp_path, standardize=False)
    assert ds.n_features == 1024 and len(ds.y_train) == 20 and len(ds.y_test) == 4
    data, labels = batches["data_batch_2"]
    rgb = data[1].astype(float) / 255.0
    # luma of pixel (row 5, col 7): planes R, G, B of 1024 values each, row-major
    k = 5 * 32 + 7
    want = 0.299 * rgb[k] + 0.587 * rgb[1024 + k] + 0.114 * rgb[2048 + k]
    assert ds.X_train[4 + 1, k] == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert ds.y_train[5] == labels[1]
    assert_array_equal(ds.y_test, batches["test_batch"][1])
    assert ds.classes[3] == "cat"
    color = S.load_cifar10(tmp_path / "cifar-10-batches-py", grayscale=False, standardize=False)
    assert_allclose(color.X_test, batches["test_batch"][0] / 255.0, rtol=0, atol=1e-15)


def test_cifar10_refuses_pickles_that_call_other_code(tmp_path):
    _cifar(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    with open(tmp_path / "cifar-10-batches-py" / "data_batch_3", "wb") as fh:
        pickle.dump({b"data": Evil(), b"labels": []}, fh, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load .*print"):
        S.load_cifar10(tmp_path)


# --------------------------------------------------------------------------- audio
def _write_wav(f, signal, sr=8000):
    pcm = np.clip(np.round(np.asarray(signal) * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(f), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())


def _tone(freq, amp, sr=8000, seconds=0.4):
    t = np.arange(int(sr * seconds)) / sr
    return amp * np.sin(2 * np.pi * freq * t)


def _peak(signal, sr):
    """A feature that identifies the recording: its peak amplitude (written by the test)."""
    return [np.abs(signal).max()]


def test_fsdd_split_per_speaker_and_digit(tmp_path):
    pytest.importorskip("librosa", reason="the audio loaders need the 'audio' extra")
    rec = tmp_path / "recordings"
    rec.mkdir()
    amp = {}
    for s, speaker in enumerate(("jackson", "theo")):
        for digit in (0, 3):
            for i in range(6):                   # index order, files written shuffled below
                amp[(digit, speaker, i)] = 0.1 + 0.01 * (24 * s + 6 * (digit // 3) + i)
    for (digit, speaker, i), a in sorted(amp.items(), key=lambda kv: -kv[1]):
        _write_wav(rec / f"{digit}_{speaker}_{i}.wav", _tone(300, a))
    (rec / "README.txt").write_text("not a recording")
    ds = S.load_fsdd(tmp_path, n_train=3, n_val=2, sr=None, features=_peak, standardize=False)
    for X, y, idx in ((ds.X_train, ds.y_train, range(0, 3)), (ds.X_val, ds.y_val, range(3, 5)),
                      (ds.X_test, ds.y_test, range(5, 6))):
        want = sorted((amp[(d, s, i)], d) for d in (0, 3) for s in ("jackson", "theo") for i in idx)
        got = sorted(zip(X[:, 0], ds.classes[y]))
        assert_allclose([g[0] for g in got], [w[0] for w in want], rtol=0, atol=2e-4)
        assert [g[1] for g in got] == [w[1] for w in want]


def test_fsdd_default_features_resample_to_22050(tmp_path):
    pytest.importorskip("librosa", reason="the audio loaders need the 'audio' extra")
    for i in range(3):
        _write_wav(tmp_path / f"7_lucas_{i}.wav", _tone(440.0, 0.3 + 0.1 * i))   # 8 kHz
    ds = S.load_fsdd(tmp_path, n_train=1, n_val=1, standardize=False)
    assert ds.X_train.shape == ds.X_val.shape == ds.X_test.shape == (1, 180)
    assert ds.feature_names == S.AUDIO_FEATURE_NAMES and ds.classes[ds.y_test[0]] == 7
    chroma = ds.X_test[0, 40:52]
    assert S.AUDIO_FEATURE_NAMES[40 + int(np.argmax(chroma))] == "chroma_A"
    # mel power grows with the amplitude (0.3, 0.4, 0.5): the split follows the index
    assert ds.X_train[0, 52:].sum() < ds.X_val[0, 52:].sum() < ds.X_test[0, 52:].sum()


def test_esc50_folds_and_categories(tmp_path):
    pytest.importorskip("librosa", reason="the audio loaders need the 'audio' extra")
    (tmp_path / "audio").mkdir()
    (tmp_path / "meta").mkdir()
    rows = []
    for fold in range(1, 6):
        for target, cat in ((0, "dog"), (7, "insects")):
            name = f"{fold}-{100 + target}-A-{target}.wav"
            _write_wav(tmp_path / "audio" / name, _tone(500, 0.05 * fold + 0.01 * target))
            rows.append({"filename": name, "fold": fold, "target": target, "category": cat,
                         "esc10": "False", "src_file": 100 + target, "take": "A"})
    with open(tmp_path / "meta" / "esc50.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    ds = S.load_esc50(tmp_path, sr=None, features=_peak, standardize=False)
    assert_array_equal(ds.classes, ["dog", "insects"])
    for X, y, folds in ((ds.X_train, ds.y_train, (1, 2, 3)), (ds.X_val, ds.y_val, (4,)),
                        (ds.X_test, ds.y_test, (5,))):
        want = sorted(0.05 * f + 0.01 * t for f in folds for t in (0, 7))
        assert_allclose(np.sort(X[:, 0]), want, rtol=0, atol=2e-4)
        assert_array_equal(np.sort(y), np.repeat([0, 1], len(folds)))


def test_audio_features_of_a_pure_tone():
    librosa = pytest.importorskip("librosa", reason="needs the 'audio' extra")
    sr = 22050
    y = _tone(440.0, 0.5, sr=sr, seconds=0.5)
    F = S.audio_features(y, sr, average=False)
    assert F.shape[1] == 180 and F.shape[0] == 1 + len(y) // 512, "librosa frames, hop 512"
    f = S.audio_features(y, sr)
    assert_allclose(f, F.mean(axis=0), rtol=1e-12, atol=1e-12)
    assert S.AUDIO_FEATURE_NAMES[40 + int(np.argmax(f[40:52]))] == "chroma_A", "440 Hz is A"
    edges = librosa.mel_frequencies(n_mels=130, fmax=sr / 2)   # band k spans edges[k:k+3]
    band = int(np.argmax(f[52:]))
    assert edges[band] < 440.0 < edges[band + 2], "mel band of the peak holds 440 Hz"
    with pytest.raises(ValueError, match="signal"):
        S.audio_features(np.array([np.nan, 1.0]), sr)


def test_audio_loaders_say_what_to_install(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_librosa(name, *a, **k):
        if name == "librosa":
            raise ImportError("no librosa")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_librosa)
    with pytest.raises(ImportError, match=r"audio.*extra"):
        S.audio_features(np.ones(4096), 8000)


# --------------------------------------------------------------------------- Amazon
def _amazon(f, n_per_class=(6, 7, 5), d=9):
    import scipy.sparse as sp

    rng = np.random.default_rng(2)
    y = rng.permutation(np.repeat(np.arange(len(n_per_class)), n_per_class))
    n = y.size
    attr = sp.csr_matrix((rng.random((n, d)) < 0.3).astype(np.float32))
    # directed half of an undirected graph, a duplicate and a self-loop
    rows = np.array([0, 1, 2, 3, 3, 5])
    cols = np.array([1, 2, 0, 4, 4, 5])
    adj = sp.csr_matrix((np.ones(6, np.float32), (rows, cols)), shape=(n, n))
    np.savez(f, attr_data=attr.data, attr_indices=attr.indices, attr_indptr=attr.indptr,
             attr_shape=np.array(attr.shape), adj_data=adj.data, adj_indices=adj.indices,
             adj_indptr=adj.indptr, adj_shape=np.array(adj.shape), labels=y)
    return attr.toarray().astype(np.float64), y


def test_amazon_split_features_and_graph(tmp_path, monkeypatch):
    A, y = _amazon(tmp_path / "amazon_electronics_photo.npz")
    monkeypatch.setenv("REFIMPL_AMAZON", str(tmp_path))
    ds = S.load_amazon_photo(seed=4, n_train=2, n_val=1, standardize=False)
    assert isinstance(ds, S.GraphDataset) and ds.name == "amazon_photo"
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (6, 3, 9)
    for X, yy, nodes, k in ((ds.X_train, ds.y_train, ds.nodes_train, 2),
                            (ds.X_val, ds.y_val, ds.nodes_val, 1)):
        assert_array_equal(np.bincount(yy), [k] * 3, err_msg="per class counts")
        assert_array_equal(X, A[nodes])
        assert_array_equal(ds.classes[yy], y[nodes])
    nodes = np.concatenate([ds.nodes_train, ds.nodes_val, ds.nodes_test])
    assert_array_equal(np.sort(nodes), np.arange(18))
    want = np.zeros((18, 18))
    for i, j in ((0, 1), (1, 2), (2, 0), (3, 4)):
        want[i, j] = want[j, i] = 1.0
    assert_array_equal(ds.adjacency.toarray(), want, err_msg="symmetric, 0/1, no self-loops")
    other = S.load_amazon("photo", tmp_path / "amazon_electronics_photo.npz", seed=5,
                          n_train=2, n_val=1)
    assert not np.array_equal(other.nodes_train, ds.nodes_train)
    with pytest.raises(ValueError, match="class .* has 5 nodes"):
        S.load_amazon_photo(n_train=3, n_val=2)
    with pytest.raises(ValueError, match="which"):
        S.load_amazon("books", tmp_path)


def test_registry_loads_the_supplement_names(tmp_path):
    from refimpl.datasets import DATASETS, load

    assert set(S.SUPPLEMENT_DATASETS) <= set(DATASETS)
    _amazon(tmp_path / "amazon_electronics_computers.npz")
    a = load("amazon_computers", tmp_path, seed=3, n_train=2, n_val=1)
    b = S.load_amazon_computers(tmp_path, seed=3, n_train=2, n_val=1)
    assert a.name == "amazon_computers"
    assert_array_equal(a.nodes_test, b.nodes_test)
    assert_array_equal(a.X_test, b.X_test)
    _fmnist(tmp_path)
    assert load("fashion_mnist", tmp_path).n_features == 784


def test_present_datasets_follow_the_locations(tmp_path, monkeypatch):
    assert S.present_datasets() == ()
    (tmp_path / "rec").mkdir()
    monkeypatch.setenv("REFIMPL_FSDD", str(tmp_path / "rec"))
    _amazon(tmp_path / "amazon_electronics_photo.npz")
    monkeypatch.setenv("REFIMPL_AMAZON", str(tmp_path))
    assert S.present_datasets() == ("fsdd", "amazon_photo"), "no computers npz, no esc50 meta"
    (tmp_path / "data" / "esc50" / "meta").mkdir(parents=True)
    (tmp_path / "data" / "esc50" / "meta" / "esc50.csv").write_text("filename,fold\n")
    monkeypatch.setenv("REFIMPL_DATA", str(tmp_path / "data"))
    assert S.present_datasets() == ("fsdd", "esc50", "amazon_photo")


def test_refimpl_train_runs_on_a_data_set_without_a_validation_split(tmp_path, capsys):
    """fashion_mnist keeps its published split (no validation rows): `refimpl train` trains
    without early stopping on it, rather than refusing the empty validation split."""
    from refimpl.cli import main

    (tmp_path / "data").mkdir()
    _fmnist(tmp_path / "data")
    out = tmp_path / "run"
    assert main(["train", "--dataset", "fashion_mnist", "--data-path", str(tmp_path / "data"),
                 "--nodes", "6", "--epochs", "1", "--out", str(out), "--quiet"]) == 0, \
        capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["best_val"] is None
