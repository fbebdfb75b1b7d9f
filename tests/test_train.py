"""Training (Alg. 2), prediction (Alg. 3), checkpoints and the train/predict commands."""
import dataclasses
import json
import mmap
import sys
import zipfile

import numpy as np
import pytest

from refimpl import NMNetwork, loss_and_grad, prune
from refimpl.loop import EarlyStopping
from refimpl.regularization import nm_repulsion, nm_update
from refimpl.testing import toy_classification
from refimpl.train import (BestParams, CheckpointError, Trainer, TrainConfig,
                           TrainingDivergedError, predict, predict_proba)

train_module = sys.modules["refimpl.train"]


def toy_data(seed=0, n=120, n_in=5, n_classes=3):
    return toy_classification(seed, n, n_in, n_classes)


SMALL = dict(nodes=12, edges=30, epochs=4, batch_size=16, lr=0.1, patience=None)


def params(tr):
    return {k: getattr(tr.net, k).copy() for k in ("K", "W1", "Wm")}


def strip_time(history):
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


@pytest.mark.parametrize("optimizer, reg", [("sgd", "nm"), ("adam", "l2"), ("sgd", "none")])
def test_resume_is_bit_identical(tmp_path, optimizer, reg):
    X, y = toy_data()
    cfg = TrainConfig(**SMALL, optimizer=optimizer, reg=reg, alpha=1e-3, seed=3)
    full = Trainer(cfg, 5, 3)
    full.fit(X[:90], y[:90], X[90:], y[90:])
    half = Trainer(cfg, 5, 3)
    half.fit(X[:90], y[:90], X[90:], y[90:], epochs=2)
    path = half.save(tmp_path / "ck.npz")
    resumed = Trainer.load(path)
    resumed.fit(X[:90], y[:90], X[90:], y[90:])
    for k, v in params(full).items():
        np.testing.assert_array_equal(getattr(resumed.net, k), v, err_msg=k)
    assert strip_time(resumed.history) == strip_time(full.history)
    assert resumed.gamma == full.gamma and resumed.opt.t == full.opt.t


def test_training_learns_and_is_deterministic():
    X, y = toy_data(1)
    cfg = TrainConfig(**{**SMALL, "epochs": 8}, seed=1)
    a, b = Trainer(cfg, 5, 3), Trainer(cfg, 5, 3)
    ha = a.fit(X[:90], y[:90], X[90:], y[90:])
    b.fit(X[:90], y[:90], X[90:], y[90:])
    np.testing.assert_array_equal(a.net.K, b.net.K)
    assert ha[-1]["loss"] < 0.5 * ha[0]["loss"]
    err = np.mean(predict(a.net, X[90:], a.gamma) != y[90:])
    assert err < 0.2
    P = predict_proba(a.net, X[90:], a.gamma)
    np.testing.assert_allclose(P.sum(1), 1.0, rtol=1e-12)
    for h in ha:
        assert h["edges"] == 30 and h["levels"] >= 1 and h["largest_module"] >= 1


def test_pruned_edges_regrow():
    """dL/dK is dense (Eq. 6 feedback): pruned entries move and can enter the top k."""
    X, y = toy_data(2)
    tr = Trainer(TrainConfig(**{**SMALL, "epochs": 5, "lr": 0.5}, seed=2), 5, 3)
    hist = tr.fit(X, y)
    assert sum(h["regrown"] for h in hist[1:]) > 0


def test_thm31_step_is_nm_update_for_plain_sgd():
    """reg_step='thm31' with momentum 0 is exactly Thm. 3.1 (nm_update)."""
    X, y = toy_data(3, n=16)
    cfg = TrainConfig(**{**SMALL, "epochs": 1, "batch_size": 16}, momentum=0.0, reg="nm",
                      reg_step="thm31", alpha=1e-2, seed=4)
    tr = Trainer(cfg, 5, 3)
    K0 = tr.net.K.copy()
    graph = prune(K0, k=cfg.k)
    _, grads, _ = loss_and_grad(tr.net, X, y, graph, atol=cfg.atol, rtol=cfg.rtol)
    tr.rng = np.random.default_rng(0)  # one batch holds every sample: order irrelevant
    tr.fit(X, y)
    expect = nm_update(K0, grads.K, graph, cfg.alpha, cfg.lr)
    np.testing.assert_allclose(tr.net.K, expect, rtol=1e-9, atol=1e-12)


def test_proximal_step_matches_thm31_to_first_order():
    """w / (1 + eta a r) = w (1 - eta a r) + O(eta^2); the explicit form flips
    the sign of w once eta a r > 1, the proximal one never does."""
    K = np.random.default_rng(5).standard_normal((6, 6))
    graph = prune(K, k=12)
    R = nm_repulsion(graph).R
    alpha = 1e-2
    for eta in (1e-3, 1e-4):
        prox = K / (1 + eta * alpha * R)
        expl = K * (1 - eta * alpha * R)
        assert np.abs(prox - expl).max() <= 1.01 * (eta * alpha * R).max() ** 2 * np.abs(K).max()
    eta = 2.0 / (alpha * R.min())
    assert np.all(np.sign(K * (1 - eta * alpha * R)) == -np.sign(K))
    assert np.all(np.sign(K / (1 + eta * alpha * R)) == np.sign(K))


def test_early_stopping_on_validation_loss_by_default():
    X, y = toy_data(9)
    tr = Trainer(TrainConfig(**{**SMALL, "epochs": 12, "patience": 3, "lr": 0.3}, seed=9), 5, 3)
    hist = tr.fit(X[:90], y[:90], X[90:], y[90:])
    losses = [h["val_loss"] for h in hist]
    assert tr.best_epoch == int(np.argmin(losses)) + 1
    assert tr.best_val == min(losses)
    tr.restore_best()
    P = predict_proba(tr.net, X[90:], tr.gamma)
    np.testing.assert_allclose(-np.mean(np.log(P[np.arange(30), y[90:]])), min(losses),
                               rtol=1e-6)


def test_early_stopping_restores_best():
    X, y = toy_data(6)
    tr = Trainer(TrainConfig(**{**SMALL, "epochs": 30, "patience": 2, "lr": 0.3},
                             monitor="val_error", seed=6), 5, 3)
    hist = tr.fit(X[:90], y[:90], X[90:], y[90:])
    best_epoch = int(np.argmin([h["val_error"] for h in hist])) + 1
    assert tr.best_epoch == best_epoch
    assert len(hist) <= 30
    if len(hist) < 30:  # stopped exactly `patience` epochs after the (first) best one
        assert len(hist) == best_epoch + 2
    tr.restore_best()
    err = np.mean(predict(tr.net, X[90:], tr.gamma) != y[90:])
    assert err == pytest.approx(hist[best_epoch - 1]["val_error"])


def _epoch_params(tr):
    return {**params(tr), "gamma": np.array(tr.gamma)}


@pytest.fixture(params=["numpy", "mapped"])
def snapshot_memory(request, monkeypatch):
    """The snapshot tests run twice: with the small test arrays copied by NumPy (below
    ``PLAIN_PAGES_MIN_BYTES``), and with every array in its own anonymous mapping, as
    the p x p arrays of a real run are."""
    if request.param == "mapped":
        monkeypatch.setattr(train_module, "PLAIN_PAGES_MIN_BYTES", 0)
    return request.param


def test_copy_plain_pages_is_an_ordinary_copy(monkeypatch):
    from refimpl.train import _copy_plain_pages

    rng = np.random.default_rng(0)
    for size, limit in ((0, 1 << 22), (0, 0), (5, 0), ((600, 1000), 1 << 22), ((3, 4), 0)):
        monkeypatch.setattr(train_module, "PLAIN_PAGES_MIN_BYTES", limit)
        a = rng.standard_normal(size)
        src = np.asfortranarray(a) if np.ndim(a) == 2 else a
        c = _copy_plain_pages(src)
        assert c.shape == a.shape and c.dtype == a.dtype and c.flags.c_contiguous
        assert c.flags.writeable and not np.shares_memory(c, src)
        np.testing.assert_array_equal(c, a)
        c[...] = 1.0  # its own memory
        np.testing.assert_array_equal(src, a)
    monkeypatch.setattr(train_module, "PLAIN_PAGES_MIN_BYTES", 1 << 22)
    base = _copy_plain_pages(np.ones((600, 1000)))  # 4.8 MB: its own mapping
    while isinstance(base, np.ndarray):
        base = base.base
    base = base.obj if isinstance(base, memoryview) else base
    assert isinstance(base, mmap.mmap)  # the mapping, not NumPy's allocator
    assert _copy_plain_pages(np.ones(3)).base is None  # small: NumPy's own

    def no_room(*args, **kwargs):
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(mmap, "mmap", no_room)  # no mapping to be had: NumPy's copy
    a = rng.standard_normal((600, 1000))
    c = _copy_plain_pages(a)
    assert c.base is None and not np.shares_memory(c, a)
    np.testing.assert_array_equal(c, a)


def test_best_snapshot_is_the_best_epochs_parameters_and_reads_as_copies(snapshot_memory):
    X, y = toy_data(9)
    tr = Trainer(TrainConfig(**{**SMALL, "epochs": 12, "lr": 0.3}, seed=9), 5, 3)
    seen = []
    tr.fit(X[:90], y[:90], X[90:], y[90:], callback=lambda t, rec: seen.append(
        _epoch_params(t)))
    assert isinstance(tr.best, BestParams) and set(tr.best) == {"K", "W1", "Wm", "gamma"}
    for k, v in seen[tr.best_epoch - 1].items():  # bit for bit the best epoch's values
        np.testing.assert_array_equal(tr.best[k], v, err_msg=k)
    K = tr.best["K"]
    K[...] = 7.0  # an entry read is the caller's copy
    np.testing.assert_array_equal(tr.best["K"], seen[tr.best_epoch - 1]["K"])
    tr.restore_best()
    tr.net.K[0, 0] += 1.0  # training on from the restored values leaves the snapshot alone
    np.testing.assert_array_equal(tr.best["K"], seen[tr.best_epoch - 1]["K"])


def _improve(tr, epoch, held):
    """One better epoch through EarlyStopping (the loop's call): new parameters, a lower
    score; ``held`` keeps the new snapshot (as a caller may) or not."""
    rng = np.random.default_rng(epoch)
    for name in ("K", "W1", "Wm"):
        getattr(tr.net, name)[...] = rng.standard_normal(getattr(tr.net, name).shape)
    tr.gamma = float(epoch)
    tr.stopping.update(epoch, -float(epoch), tr._snapshot)
    if held is not None:
        held.append((tr.best, _epoch_params(tr)))


def test_best_snapshot_reuses_memory_only_when_nobody_holds_it(snapshot_memory):
    tr = Trainer(TrainConfig(**SMALL, seed=0), 5, 3)
    _improve(tr, 1, None)
    first = tr.best._arrays["K"]  # the test's handle on the memory (not on the snapshot)
    _improve(tr, 2, None)  # nobody holds snapshot 1 once it is let go: 2 is written into it
    assert tr.best._arrays["K"] is first
    np.testing.assert_array_equal(tr.best["K"], tr.net.K)
    held = []
    for epoch in range(3, 8):  # a caller keeps every snapshot: none is ever overwritten
        _improve(tr, epoch, held)
    for snap, values in held:
        for k, v in values.items():
            np.testing.assert_array_equal(snap[k], v, err_msg=k)
    arrays = [snap._arrays["K"] for snap, _ in held]
    assert not any(np.shares_memory(a, b) for i, a in enumerate(arrays) for b in arrays[:i])
    del held, snap
    _improve(tr, 8, None)  # the last held one, let go, is reused again
    assert tr.best._arrays["K"] is arrays[-1]
    import copy

    kept, values = copy.copy(tr.best), _epoch_params(tr)  # a shallow copy is a holder too
    assert kept is tr.best and "K" in kept
    _improve(tr, 9, None)
    for k, v in values.items():
        np.testing.assert_array_equal(kept[k], v, err_msg=k)
    assert not np.shares_memory(tr.best._arrays["K"], kept._arrays["K"])


def test_a_failed_snapshot_leaves_no_stale_best():
    stop = EarlyStopping()
    stop.update(1, 1.0, lambda: "params of 1")

    def fails():
        raise MemoryError("no room")

    with pytest.raises(MemoryError):
        stop.update(2, 0.5, fails)
    assert stop.best is None and stop.best_score == np.inf and stop.best_epoch == 0
    stop.update(3, 1.5, lambda: "params of 3")  # the next scored epoch is the best
    assert stop.best == "params of 3" and stop.best_epoch == 3 and stop.best_score == 1.5


def test_best_snapshot_survives_save_and_load(tmp_path, snapshot_memory):
    X, y = toy_data(9)
    tr = Trainer(TrainConfig(**{**SMALL, "epochs": 3, "lr": 0.3}, seed=9), 5, 3)
    tr.fit(X[:90], y[:90], X[90:], y[90:])
    back = Trainer.load(tr.save(tmp_path / "ck.npz"))
    assert isinstance(back.best, BestParams)
    for k in tr.best:
        np.testing.assert_array_equal(back.best[k], tr.best[k], err_msg=k)
    back.best = {k: tr.best[k] for k in tr.best}  # a plain dict set by a caller works too
    back.restore_best()
    np.testing.assert_array_equal(back.net.K, tr.best["K"])
    assert back.gamma == float(tr.best["gamma"])


def test_corrupt_or_foreign_checkpoints(tmp_path):
    X, y = toy_data()
    tr = Trainer(TrainConfig(**{**SMALL, "epochs": 1}), 5, 3)
    tr.fit(X, y)
    good = tr.save(tmp_path / "ok.npz", extra={"dataset": "toy"})
    assert Trainer.load(good).extra == {"dataset": "toy"}
    data = open(good, "rb").read()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        Trainer.load(tmp_path / "trunc.npz")
    np.savez(tmp_path / "foreign.npz", a=np.zeros(3))
    with pytest.raises(CheckpointError, match="no metadata"):
        Trainer.load(tmp_path / "foreign.npz")
    with zipfile.ZipFile(good) as z:
        meta = json.loads(str(np.load(z.open("__meta__.npy"))))
    meta["format"] = "other/9"
    arrays = dict(np.load(good))
    arrays["__meta__"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "version.npz", **arrays)
    with pytest.raises(CheckpointError, match="format"):
        Trainer.load(tmp_path / "version.npz")


@pytest.mark.parametrize("kwargs, match", [
    ({"nodes": 0}, "nodes: expected a positive integer"),
    ({"nodes": 4, "edges": 13}, "edges: at most"),
    ({"lr": -1.0}, "lr: expected"),
    ({"momentum": 1.0}, "momentum: expected"),
    ({"reg": "l1"}, "reg: expected"),
    ({"reg_step": "x"}, "reg_step: expected"),
    ({"optimizer": "rmsprop"}, "optimizer: expected"),
    ({"alpha": float("nan")}, "alpha: expected"),
    ({"momentum": None}, "momentum: expected"),
    ({"momentum": "0.5"}, "momentum: expected"),
    ({"seed": -1}, "seed: expected a non-negative integer"),
    ({"seed": 1.5}, "seed: expected a non-negative integer"),
    ({"seed": None}, "seed: expected a non-negative integer"),
    ({"solver": "foo"}, "solver: expected one of"),
    ({"output": "identity"}, "output: training classifies integer labels"),
])
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_fit_validates_labels():
    X, y = toy_data()
    tr = Trainer(TrainConfig(**SMALL), 5, 3)
    with pytest.raises(ValueError, match="y: labels must lie"):
        tr.fit(X, y + 5)
    with pytest.raises(ValueError, match="X: expected shape"):
        tr.fit(X[:, :2], y)


@pytest.mark.parametrize("kwargs, match", [
    ({"epochs": -5}, "epochs: expected a non-negative integer"),
    ({"epochs": 2.9}, "epochs: expected a non-negative integer"),
    ({"epochs": "2"}, "epochs: expected a non-negative integer"),
    ({"epochs": True}, "epochs: expected a non-negative integer"),
    ({"y_val": "given"}, "X_val: missing"),
    ({"X_val": "given"}, "y_val: missing"),
    ({"X_val": "empty", "y_val": "empty"}, "X_val: the validation split is empty"),
])
def test_fit_validates_its_arguments(kwargs, match):
    """fit refuses what it would otherwise take silently (a negative or fractional epoch
    count, half a validation split, an empty one), naming the argument; nothing trains."""
    X, y = toy_data()
    parts = {"given": (X[90:], y[90:]), "empty": (X[:0], y[:0])}
    kw = {k: (parts[v][0] if k == "X_val" else parts[v][1]) if isinstance(v, str)
          and k != "epochs" else v for k, v in kwargs.items()}
    tr = Trainer(TrainConfig(**SMALL), 5, 3)
    K0 = tr.net.K.copy()
    with pytest.raises(ValueError, match=match):
        tr.fit(X[:90], y[:90], **kw)
    assert tr.epoch == 0 and np.array_equal(tr.net.K, K0)


def test_a_bad_input_to_train_batch_is_not_called_a_divergence():
    """Only non-finite values computed during the step mean a diverged run; a wrong input
    shape is the caller's ValueError (before: TrainingDivergedError, "try a lower learning
    rate")."""
    X, y = toy_data()
    tr = Trainer(TrainConfig(**SMALL), 5, 3)
    tr.begin_epoch()
    with pytest.raises(ValueError, match="X0: expected shape") as info:
        tr.train_batch(X[:8, :2], y[:8])
    assert not isinstance(info.value, TrainingDivergedError)


def test_an_early_stopped_run_stays_stopped_after_a_reload(tmp_path):
    """A run that early stopping ended trains no more epochs, also when continued from its
    checkpoint (before, a reload trained on: --resume changed a finished run's result)."""
    X, y = toy_data(3, n=150)
    cfg = TrainConfig(**{**SMALL, "epochs": 60, "lr": 0.3, "patience": 2}, monitor="val_error",
                      seed=1)
    ref = Trainer(cfg, 5, 3)
    ref.fit(X[:100], y[:100], X[100:], y[100:])
    assert ref.stopping.stopped and ref.epoch < 60, "the run must stop early to test this"
    path = ref.save(tmp_path / "c.npz")
    again = Trainer.load(path)
    assert again.stopping.stopped
    again.fit(X[:100], y[:100], X[100:], y[100:])
    again.fit(X[:100], y[:100], X[100:], y[100:], epochs=3)
    assert again.epoch == ref.epoch and strip_time(again.history) == strip_time(ref.history)
    np.testing.assert_array_equal(again.net.K, ref.net.K)
    again.stopping.stale = 0  # (the documented way to train on)
    again.fit(X[:100], y[:100], X[100:], y[100:], epochs=1)
    assert again.epoch == ref.epoch + 1


def test_checkpoints_keep_the_learning_rate_and_check_their_contents(tmp_path):
    """save/load keep the optimizer's current rate (a schedule may have changed it:
    TimeBudget's per-epoch scaling); a config field this version does not know and arrays
    of other shapes than the config's are CheckpointErrors; backend= overrides the run's."""
    X, y = toy_data()
    tr = Trainer(TrainConfig(**SMALL, seed=2), 5, 3)
    tr.fit(X[:90], y[:90], X[90:], y[90:], epochs=1)
    tr.opt.lr = 0.0125
    path = tr.save(tmp_path / "c.npz")
    back = Trainer.load(path)
    assert back.opt.lr == 0.0125 and back.config.lr == SMALL["lr"]
    tr.fit(X[:90], y[:90], X[90:], y[90:])
    back.fit(X[:90], y[:90], X[90:], y[90:])
    np.testing.assert_array_equal(back.net.K, tr.net.K)

    arrays = dict(np.load(path))
    meta = json.loads(str(arrays.pop("__meta__")))
    for change, match in ((lambda m, a: m["config"].update(new_field=1), "does not fit this"),
                          (lambda m, a: a.update(K=np.zeros((7, 7))), "K has shape"),
                          (lambda m, a: a.update(opt_m_K=np.zeros(3)), "opt_m_K has shape"),
                          (lambda m, a: m["config"].update(output="identity"),
                           "does not fit this version")):
        m, a = json.loads(json.dumps(meta)), dict(arrays)
        change(m, a)
        np.savez(tmp_path / "bad.npz", __meta__=np.array(json.dumps(m)), **a)
        with pytest.raises(CheckpointError, match=match):
            Trainer.load(tmp_path / "bad.npz")
    m = json.loads(json.dumps(meta))
    m["config"]["backend"] = "no-such-backend"  # (as a GPU run's "cupy" on a CPU machine)
    np.savez(tmp_path / "gpu.npz", __meta__=np.array(json.dumps(m)), **arrays)
    with pytest.raises(ValueError, match="no-such-backend"):
        Trainer.load(tmp_path / "gpu.npz")
    assert Trainer.load(tmp_path / "gpu.npz", backend="numpy").config.to_dict()["backend"] \
        == "numpy"
    with pytest.raises(ValueError, match="bogus") as info:  # the caller's typo, not the file's
        Trainer.load(path, backend="bogus")
    assert not isinstance(info.value, CheckpointError)


def test_initial_kept_edges_have_the_intended_scale():
    """NMNetwork.random scales K so the kept edges have rms scale / sqrt(k / p)."""
    for p, k in [(200, 2000), (100, 300)]:
        net = NMNetwork.random(4, p, 2, seed=0, k=k, scale=0.5)
        g = net.prune()
        rms = np.sqrt(np.mean(g.A.data ** 2))
        np.testing.assert_allclose(rms, 0.5 / np.sqrt(k / p), rtol=0.05)
        rho = np.abs(np.linalg.eigvals(g.A.toarray())).max()
        assert 0.3 < rho < 0.7, "spectral radius should be about the scale"


def test_train_and_predict_commands(tmp_path, capsys):
    pytest.importorskip("sklearn")
    from refimpl.cli import main

    out = tmp_path / "run"
    args = ["train", "--dataset", "iris", "--nodes", "10", "--edges", "20", "--epochs", "3",
            "--out", str(out), "--quiet"]
    assert main(args) == 0
    for f in ("checkpoint.npz", "history.json", "history.csv", "summary.json"):
        assert (out / f).exists(), f
    summary = json.loads((out / "summary.json").read_text())
    assert 0.0 <= summary["test_error"] <= 1.0 and summary["epochs"] == 3
    assert main(["predict", "--checkpoint", str(out / "checkpoint.npz"),
                 "--output", str(tmp_path / "pred.csv")]) == 0
    printed = capsys.readouterr().out
    assert f"error {summary['test_error']:.4f}" in printed
    assert (tmp_path / "pred.csv").read_text().startswith("index,prediction,label")
    # resume to 5 epochs continues the same run
    assert main(args[:7] + ["--epochs", "5", "--out", str(out), "--resume", "--quiet"]) == 0
    assert len(json.loads((out / "history.json").read_text())) == 5
    assert main(["predict", "--checkpoint", str(tmp_path / "missing.npz")]) == 2


def test_dag_structure_and_whole_graph_mode():
    """Table 1 baselines: structure='dag' keeps K strictly upper triangular (all
    modules singletons); mode='whole' trains through the DEQ fixed point and
    matches the module solve's trajectory to solver tolerance."""
    X, y = toy_data(7)
    dag = Trainer(TrainConfig(**SMALL, structure="dag", seed=7), 5, 3)
    hist = dag.fit(X, y)
    assert np.all(np.tril(dag.net.K, -1) == 0.0)
    assert all(h["largest_module"] == 1 and h["edges"] == 30 for h in hist)
    a = Trainer(TrainConfig(**SMALL, seed=8), 5, 3)
    b = Trainer(TrainConfig(**SMALL, mode="whole", atol=1e-12, rtol=1e-12, seed=8), 5, 3)
    a.config = dataclasses.replace(a.config, atol=1e-12, rtol=1e-12)
    a.fit(X, y)
    b.fit(X, y)
    np.testing.assert_allclose(b.net.K, a.net.K, rtol=1e-8, atol=1e-10)
    with pytest.raises(ValueError, match="a DAG on 4 nodes has at most 6"):
        TrainConfig(nodes=4, edges=7, structure="dag")


def test_checkpoint_io_round_trip_and_errors(tmp_path):
    """refimpl.io: arrays and metadata come back as written; foreign files are named."""
    from refimpl.io import CheckpointError as IOCheckpointError
    from refimpl.io import load_checkpoint, save_checkpoint

    assert IOCheckpointError is CheckpointError
    arrays = {"a": np.arange(6.0).reshape(2, 3), "m": np.array([True, False])}
    path = save_checkpoint(tmp_path / "c.npz", arrays, {"x": np.float64(1.5), "n": 3}, "fmt/1")
    data, meta = load_checkpoint(path, "fmt/1")
    assert set(data) == {"a", "m"} and meta == {"x": 1.5, "n": 3, "format": "fmt/1"}
    np.testing.assert_array_equal(data["a"], arrays["a"])
    with pytest.raises(CheckpointError, match="format 'fmt/1', expected 'fmt/2'"):
        load_checkpoint(path, "fmt/2")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.npz", "fmt/1")


@pytest.mark.parametrize("reg_step", ["proximal", "thm31"])
def test_nm_with_unit_repulsion_trains_exactly_as_l2(reg_step):
    """One rate convention (DESIGN.md sec. 5): with a threshold that keeps no edge, R = 1,
    and NM-regularized training is L2-regularized training at the same alpha, bit for bit."""
    X, y = toy_data()
    runs = {}
    for reg in ("nm", "l2"):
        tr = Trainer(TrainConfig(nodes=6, gamma=1e300, epochs=2, batch_size=16, reg=reg,
                                 alpha=0.05, reg_step=reg_step, patience=None, seed=3), 5, 3)
        tr.fit(X[:90], y[:90])
        runs[reg] = tr
    assert runs["nm"].history[-1]["edges"] == 0
    np.testing.assert_array_equal(runs["nm"].net.K, runs["l2"].net.K)
    plain = Trainer(TrainConfig(nodes=6, gamma=1e300, epochs=2, batch_size=16, reg="none",
                                patience=None, seed=3), 5, 3)
    plain.fit(X[:90], y[:90])
    assert not np.array_equal(plain.net.K, runs["l2"].net.K), "the regularizer acts"


def _spy_candidates(monkeypatch):
    """Count the prunes that took the update pass's candidates (``first`` given)."""
    import sys

    mod = sys.modules["refimpl.graph.prune"]
    real, used = mod._select_top_k_incremental, []

    def spy(K, k, gamma_prev, first=None, **kwargs):
        used.append(first is not None)
        return real(K, k, gamma_prev, first, **kwargs)

    monkeypatch.setattr(mod, "_select_top_k_incremental", spy)
    return used


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("reg, reg_step", [("none", "proximal"), ("l2", "proximal"),
                                           ("nm", "proximal"), ("nm", "thm31")])
@pytest.mark.parametrize("select", [{}, {"structure": "dag"}, {"gamma": 0.3}])
def test_fused_pass_is_bit_identical_to_separate_passes(monkeypatch, optimizer, reg,
                                                        reg_step, select):
    """Trainer.fused_pass (issue 12: the optimizer step on K, the proximal NM / L2 step and
    the next pruning's candidate scan in one compiled pass) against the separate passes
    (Optimizer.step, nm_proximal / l2_proximal, prune_top_k_incremental scanning K itself):
    the same parameters, optimizer state, thresholds and history, bit for bit; with top-k
    pruning the candidates of the pass are really used."""
    X, y = toy_data(4, n=150)
    cfg = TrainConfig(nodes=14, edges=40, epochs=3, batch_size=16, patience=None, seed=5,
                      optimizer=optimizer, lr=0.2 if optimizer == "sgd" else 0.02, reg=reg,
                      reg_step=reg_step, alpha=2e-3, **select)
    used = _spy_candidates(monkeypatch)
    runs = []
    for fused in (True, False):
        tr = Trainer(cfg, 5, 3)
        tr.fused_pass = fused
        tr.fit(X[:120], y[:120], X[120:], y[120:])
        runs.append(tr)
    a, b = runs
    for k, v in params(b).items():
        np.testing.assert_array_equal(getattr(a.net, k), v, err_msg=k)
    for k, v in b.opt.state.items():
        np.testing.assert_array_equal(a.opt.state[k], v, err_msg=k)
    assert strip_time(a.history) == strip_time(b.history) and a.gamma == b.gamma
    if not select:
        assert sum(used) >= 3 * (120 // 16), "the fused run's prunes took its candidates"
        assert max(h["largest_module"] for h in a.history) > 1, "modules to regularize"
    else:
        assert not any(used)


def test_candidate_scan_widens_its_margin_after_gamma_fell(monkeypatch):
    """The update pass collects the next pruning's candidates above 0.97 gamma; after a
    prune at which gamma fell by more than that margin and less than 10 %, above 0.9 gamma
    for the next FALLEN_BATCHES prunings (issue 12: a fall the narrow margin misses costs
    one more scan of K per batch).  Rises, small falls and falls that 0.9 would miss too
    leave the counter running down; the constants are read when used (one setting)."""
    import refimpl.train as train_mod
    from refimpl.graph.prune import (FALLEN_BATCHES, FALLEN_FRACTION, INCREMENTAL_FRACTION,
                                     candidate_threshold, fallen_countdown)

    assert (FALLEN_FRACTION, INCREMENTAL_FRACTION, FALLEN_BATCHES) == (0.9, 0.97, 16)
    X, y = toy_data(7)
    tr = Trainer(TrainConfig(**{**SMALL, "lr": 1e-9}, reg="nm", alpha=1e-3, seed=2), 5, 3)
    gamma = prune(tr.net.K, k=tr.config.k).gamma
    seen = []
    for ratio in (1.2, 0.99, 0.95, 1.0, 0.5, 0.98, 0.93, 1.0):
        tr._gamma_hint = gamma / ratio  # the last prune's gamma: gamma fell to `ratio` of it
        assert tr.prune().gamma == gamma
        seen.append(tr._fallen)
    assert seen == [0, 0, 16, 15, 14, 13, 16, 15]
    for gamma_prev in (np.nan, 0.0, -1.0, np.inf):  # no usable previous gamma: no fall
        assert fallen_countdown(3, 1.0, gamma_prev) == 2
    assert fallen_countdown(0, 0.95, 1.0) == 16 and fallen_countdown(0, 1.0, 1.0) == 0
    # gamma exactly at the narrow scan's threshold (which misses it: |K| > t) starts the
    # countdown, though gamma / gamma_prev rounds to 0.9700000000000001 here
    g = 1.6527635528529094e-05
    assert (0.97 * g) / g > 0.97 and fallen_countdown(0, candidate_threshold(g), g) == 16
    assert fallen_countdown(0, candidate_threshold(g, fallen=True), g) == 0  # 0.9 misses too
    monkeypatch.setattr(sys.modules["refimpl.graph.prune"], "FALLEN_BATCHES", 5)
    assert fallen_countdown(0, 0.95, 1.0) == 5

    thresholds = []
    monkeypatch.setattr(train_mod, "candidate_threshold", lambda g, fallen: thresholds.append(
        (fallen, tr._fallen, candidate_threshold(g, fallen))) or thresholds[-1][2])
    tr._scan_ok = True  # (set by fit: no hook between the pass and the next prune)
    tr._fallen = 3  # this batch's prune counts it down to 2: two more passes at 0.9
    tr.begin_epoch()
    for _ in range(5):  # lr = 1e-9: gamma stays put, no new fall
        tr.train_batch(X[:16], y[:16])
        assert tr._gamma_hint == pytest.approx(gamma, rel=1e-6)
    assert [f for f, _, _ in thresholds] == [True, True, False, False, False]
    assert [left for _, left, _ in thresholds] == [2, 1, 0, 0, 0]
    assert [t for _, _, t in thresholds] == pytest.approx([0.9 * gamma] * 2 + [0.97 * gamma] * 3,
                                                          rel=1e-6)


@pytest.mark.parametrize("fraction", [0.5, 0.99])
def test_candidate_margin_does_not_change_the_run(monkeypatch, fraction):
    """The candidate scan's margin decides only how much the next pruning reads (any
    threshold with at least k entries above it gives prune's graph; a scan that misses
    takes the sampled or the full selection): a run with another margin is the same run,
    bit for bit.  At 0.5 gamma the pass's candidates serve most prunings, at 0.99 most
    scans miss (gamma rises) and the sampled selection runs."""
    P = sys.modules["refimpl.graph.prune"]
    X, y = toy_data(8, n=150)
    cfg = TrainConfig(nodes=14, edges=40, epochs=3, batch_size=16, patience=None, seed=4,
                      lr=0.2, reg="nm", alpha=2e-3)
    runs = [Trainer(cfg, 5, 3), Trainer(cfg, 5, 3)]
    runs[0].fit(X[:120], y[:120], X[120:], y[120:])
    monkeypatch.setattr(P, "INCREMENTAL_FRACTION", fraction)
    monkeypatch.setattr(P, "FALLEN_FRACTION", fraction)
    real, hits = P._select_top_k_incremental, []

    def spy(K, k, gamma_prev, first=None, **kwargs):
        hits.append(first is not None and first[2] >= k)
        return real(K, k, gamma_prev, first, **kwargs)

    monkeypatch.setattr(P, "_select_top_k_incremental", spy)
    runs[1].fit(X[:120], y[:120], X[120:], y[120:])
    a, b = runs
    for k, v in params(b).items():
        np.testing.assert_array_equal(getattr(a.net, k), v, err_msg=k)
    assert strip_time(a.history) == strip_time(b.history) and a.gamma == b.gamma
    assert len(hits) >= 3 * (120 // 16)
    if fraction == 0.5:
        assert sum(hits) > 0.8 * len(hits), "the prunes took the pass's candidates"
    else:
        assert sum(hits) < 0.5 * len(hits), "the scans missed: the other selections ran"


@pytest.mark.parametrize("promising_base", [False, True])
def test_fused_pass_candidates_are_dropped_when_a_hook_may_change_K(monkeypatch,
                                                                    promising_base):
    """A before_batch / after_batch hook runs between the update pass and the next
    pruning: the trainer then scans K itself (and a hook that edits K is honoured), also
    when the hook subclasses one that promised ``keeps_params`` (TimeBudget) and
    overrides a per-batch method again."""
    import math

    from refimpl.experiments.cell import TimeBudget
    from refimpl.loop import Hook

    class Nudge(TimeBudget if promising_base else Hook):
        def __init__(self):
            super().__init__(*((math.inf,) if promising_base else ()))

        def after_batch(self, learner, result):
            learner.net.K[0, 1] += 10.0  # a new strongest edge the candidates never saw

    X, y = toy_data(5)
    cfg = TrainConfig(**SMALL, seed=6)
    used = _spy_candidates(monkeypatch)
    tr = Trainer(cfg, 5, 3)
    tr.fit(X[:90], y[:90], hooks=[Nudge()])
    assert used and not any(used)
    ref = Trainer(cfg, 5, 3)
    ref.fused_pass = False
    ref.fit(X[:90], y[:90], hooks=[Nudge()])
    np.testing.assert_array_equal(tr.net.K, ref.net.K)
    assert tr.prune().mask()[0, 1]


def test_hooks_that_keep_the_parameters_keep_the_pruning_scan(monkeypatch):
    """Hooks promising ``keeps_params`` (Table 1's TimeBudget, the CLI's stop hook) leave
    the update pass's candidates in use for the next pruning (before, any per-batch hook
    sent every prune of ``refimpl train`` back to a full scan of K), with the same run,
    bit for bit, as without hooks; a hook object that is not a Hook and has per-batch
    methods is still taken to change K."""
    import math

    from refimpl.experiments.cell import TimeBudget
    from refimpl.loop import Hook

    class Look(Hook):
        keeps_params = True
        seen = 0

        def after_batch(self, learner, result):
            Look.seen += 1

    class Duck:  # not a Hook: no promise
        def before_batch(self, learner):
            pass

        def after_batch(self, learner, result):
            pass

        def after_epoch(self, learner, record):
            return False

    X, y = toy_data(5)
    cfg = TrainConfig(**SMALL, seed=6)
    runs = []
    for hooks in ([], [TimeBudget(math.inf), Look()], [Duck()]):
        used = _spy_candidates(monkeypatch)
        tr = Trainer(cfg, 5, 3)
        tr.fit(X[:90], y[:90], X[90:], y[90:], hooks=hooks)
        runs.append((tr, list(used)))
    (ref, used_ref), (hooked, used_hooked), (duck, used_duck) = runs
    assert Look.seen > 0
    assert sum(used_ref) > 0 and used_hooked == used_ref
    assert used_duck and not any(used_duck)
    for tr in (hooked, duck):
        for k, v in params(ref).items():
            np.testing.assert_array_equal(getattr(tr.net, k), v, err_msg=k)
        assert strip_time(tr.history) == strip_time(ref.history)


def test_keeps_params_covers_only_the_declaring_class_and_its_bases():
    """The promise does not pass to a subclass that overrides a per-batch method again
    (it may change K), nor to methods set on an instance; a subclass that declares it
    again is covered.  Hooks given as an iterator still run."""
    import math

    from refimpl.experiments.cell import TimeBudget, TimeBudgetExceeded
    from refimpl.loop import Hook
    from refimpl.train import _keeps_params

    class Lift(TimeBudget):  # inherits keeps_params = True, but changes K
        def after_batch(self, learner, result):
            learner.net.K[0, 1] += 1.0

    class Promised(Lift):
        keeps_params = True

    class Declares(Hook):
        keeps_params = True

    inst = Declares()
    inst.after_batch = lambda learner, result: None
    assert _keeps_params(TimeBudget(math.inf)) and _keeps_params(Hook())
    assert not _keeps_params(Lift(math.inf))
    assert _keeps_params(Promised(math.inf))
    assert not _keeps_params(inst)

    X, y = toy_data(5)
    tr = Trainer(TrainConfig(**SMALL, seed=6), 5, 3)
    with pytest.raises(TimeBudgetExceeded):
        tr.fit(X[:90], y[:90], hooks=iter([TimeBudget(0.0)]))


def test_cli_training_keeps_the_pruning_scan(monkeypatch, tmp_path):
    """``refimpl train`` (its stop hook runs before every batch) prunes from the update
    pass's candidates after the first batch of each epoch, as ``Trainer.fit`` does."""
    from refimpl.cli import main

    used = _spy_candidates(monkeypatch)
    rc = main(["train", "--dataset", "iris", "--nodes", "12", "--epochs", "2",
               "--out", str(tmp_path / "run"), "--quiet"])
    assert rc in (0, None)
    assert sum(used) >= len(used) // 2, used


def test_regrown_counts_the_edges_kept_now_and_pruned_at_the_last_epoch_end():
    """The record's ``regrown``, from sorted flat indices, against dense masks of
    ``prune(K, k)`` taken independently after each epoch."""
    X, y = toy_data(2)
    tr = Trainer(TrainConfig(**{**SMALL, "epochs": 6, "lr": 0.5}, seed=2), 5, 3)
    masks = []
    tr.fit(X, y, callback=lambda t, rec: masks.append(prune(t.net.K, k=t.config.k).mask()))
    expect = [0] + [int(np.sum(b & ~a)) for a, b in zip(masks, masks[1:])]
    assert [h["regrown"] for h in tr.history] == expect and sum(expect) > 0


@pytest.mark.parametrize("prev, keep", [([], [3, 9]), ([3, 9], []), ([1, 5, 9], [0, 5, 10]),
                                        ([2, 4], [2, 4]), ([7], [1, 2, 3, 8])])
def test_count_new(prev, keep):
    from refimpl.train import _count_new

    prev, keep = np.array(prev, dtype=np.int64), np.array(keep, dtype=np.int64)
    assert _count_new(keep, prev) == np.setdiff1d(keep, prev).size


def test_a_hook_that_breaks_K_after_the_last_batch_is_caught_at_the_epoch_end():
    """The epoch's end skips K's finiteness scan only when the last fused pass made it
    and no hook that may change K ran after it."""
    from refimpl.loop import Hook
    from refimpl.train import TrainingDivergedError

    class Breaks(Hook):  # after the epoch's last batch (90 samples, B = 16: 6 batches)
        seen = 0

        def after_batch(self, learner, loss):
            self.seen += 1
            if self.seen == 6:
                learner.net.K[0, 1] = np.nan

    X, y = toy_data(6)
    tr = Trainer(TrainConfig(**SMALL, reg="nm", seed=1), 5, 3)
    with pytest.raises(TrainingDivergedError, match=r"epoch 1: the parameters K"):
        tr.fit(X[:90], y[:90], hooks=[Breaks()])


def test_fused_pass_reports_divergence_at_once():
    """A NaN or inf in K after the update pass is a TrainingDivergedError naming the epoch
    at once (the separate passes reported it at the next pruning, as a bare ValueError)."""
    from refimpl.train import TrainingDivergedError

    X, y = toy_data(6)
    for reg, bad in (("none", np.inf), ("nm", np.nan)):
        tr = Trainer(TrainConfig(**SMALL, reg=reg, seed=1), 5, 3)
        graph = tr.prune()
        _, grads, _ = loss_and_grad(tr.net, X[:16], y[:16], graph)
        gK = grads.K.copy()
        gK[7, 2] = bad  # a gradient that overflowed
        with np.errstate(all="ignore"), pytest.raises(TrainingDivergedError,
                                                      match=r"epoch 1: the parameters K"):
            tr._update(graph, gK, grads)


def test_blocked_update_matches_the_dense_pass_per_entry():
    """_update_blocked (dL/dK of Eq. 6 formed in row blocks of 3 inside the pass, the
    last block short) against _update_pass on the dense product: BLAS may sum a block in
    another order than the whole product, so each gradient entry may differ by the
    dot-product bound 2 B eps (|F| |U|^T); an SGD step moves K by lr times that (plus
    one rounding of K), the candidates found are the same."""
    from refimpl.train import _update_blocked, _update_pass

    rng = np.random.default_rng(3)
    p, B, lr, mu = 11, 7, 0.3, 0.5
    F, U = rng.standard_normal((p, B)), rng.standard_normal((p, B))
    K0, M0 = rng.standard_normal((p, p)), rng.standard_normal((p, p))
    G = F @ U.T
    np.fill_diagonal(G, U.sum(axis=1))
    bound = 2 * B * np.finfo(float).eps * (np.abs(F) @ np.abs(U).T)
    lower = np.tril(np.ones((p, p), dtype=bool), -1)
    for dag in (False, True):
        Gd = np.where(lower, 0.0, G) if dag else G
        out = []
        for blocked in (True, False):
            K, M = K0.copy(), M0.copy()
            idx, vals = np.empty(p * p, dtype=np.int64), np.empty(p * p)
            args = (M, M, False, mu, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, lr, 1e-8)
            tail = (np.ones(p), np.zeros(p + 1, dtype=np.int32), np.zeros(0, dtype=np.int32),
                    np.zeros(0), 0.0, np.empty(p), np.zeros(16, dtype=np.uint8), 0.5, idx,
                    vals)
            if blocked:
                count = _update_blocked(K, (F, U), lower if dag else None, np.empty((3, p)),
                                        args, tail)
            else:
                count = _update_pass(K, Gd, *args, *tail)
            out.append((K, M, idx[:count].copy(), count))
        (Kb, Mb, ib, cb), (Kd, Md, id_, cd) = out
        atol = lr * bound.max() * 1.01
        np.testing.assert_allclose(Mb, Md, rtol=0, atol=atol)
        np.testing.assert_allclose(Kb, Kd, rtol=2 * np.finfo(float).eps, atol=atol)
        assert cb == cd and np.array_equal(ib, id_)
        if dag:  # the lower triangle took no gradient: M there is mu M0 exactly
            np.testing.assert_array_equal(Mb[lower], mu * M0[lower])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("reg, select", [("nm", {}), ("none", {}), ("l2", {"structure": "dag"}),
                                         ("nm", {"gamma": 0.3})])
def test_blocked_grad_training_matches_dense_grad(monkeypatch, optimizer, reg, select):
    """Trainer.blocked_grad (dL/dK formed in row blocks, here of 4 rows, inside the update
    pass) against backward's dense dL/dK over 3 epochs: the same pruned graphs (largest
    module, gamma) and parameters to 1e-9.  Each step's gradient differs by BLAS's
    summation order only (~1e-15 relative per entry); the forward solves (atol = rtol =
    1e-8) can amplify that by one iteration more or less, which stays far below 1e-9 in
    22 steps on this problem; a wrong block (row offset, diagonal, DAG mask) is O(1)."""
    import refimpl.train as train_mod

    monkeypatch.setattr(train_mod, "GRAD_BLOCK_ROWS", 4)
    X, y = toy_data(7, n=150)
    cfg = TrainConfig(nodes=14, edges=40, epochs=3, batch_size=16, patience=None, seed=9,
                      optimizer=optimizer, lr=0.2 if optimizer == "sgd" else 0.02, reg=reg,
                      alpha=2e-3, **select)
    runs, calls = [], []
    real = train_mod._update_blocked

    def spy(*args):
        calls.append(args[3].shape)
        return real(*args)

    monkeypatch.setattr(train_mod, "_update_blocked", spy)
    for blocked in (True, False):
        tr = Trainer(cfg, 5, 3)
        tr.blocked_grad = blocked
        tr.fit(X[:120], y[:120], X[120:], y[120:])
        runs.append(tr)
    a, b = runs
    assert calls and all(s == (4, 14) for s in calls) and len(calls) == 3 * (120 // 16 + 1)
    for k, v in params(b).items():
        np.testing.assert_allclose(getattr(a.net, k), v, rtol=1e-9, atol=1e-12, err_msg=k)
    assert [h["largest_module"] for h in a.history] == [h["largest_module"] for h in b.history]
    np.testing.assert_allclose(a.gamma, b.gamma, rtol=1e-9, atol=0)


def test_optimizer_deferred_none_gradient():
    """A deferred parameter's gradient may be None (the trainer's blocked dL/dK); it is
    an error when the parameter cannot take the deferred path."""
    from refimpl.optim import Optimizer

    opt = Optimizer("sgd", 0.1)
    K = np.ones((3, 3))
    out = opt.step({"K": K}, {"K": None}, defer=("K",))
    assert set(out) == {"K"} and opt.state["m_K"].shape == (3, 3)
    with pytest.raises(ValueError, match="grads\\['K'\\]"):
        Optimizer("sgd", 0.1, fused=False).step({"K": K}, {"K": None}, defer=("K",))


def test_a_trainer_pickled_before_the_sparse_regrown_count_still_trains():
    X, y = toy_data(9)
    tr = Trainer(TrainConfig(**{**SMALL, "epochs": 3, "lr": 0.3}, seed=9), 5, 3)
    tr.fit(X[:90], y[:90], X[90:], y[90:], epochs=2)
    state = tr.__getstate__()
    keep = state.pop("_prev_keep")
    mask = np.zeros(tr.net.K.size, dtype=bool)
    mask[keep] = True
    state["_prev_mask"] = mask.reshape(tr.net.K.shape)  # the attribute it used to have
    del state["_last_snapshot"], state["_fallen"]  # (_fallen: not there before either)
    old = Trainer.__new__(Trainer)
    old.__setstate__(state)
    np.testing.assert_array_equal(old._prev_keep, keep)
    old.fit(X[:90], y[:90], X[90:], y[90:])
    tr.fit(X[:90], y[:90], X[90:], y[90:])
    assert strip_time(old.history) == strip_time(tr.history)


def test_a_trainer_with_a_best_snapshot_pickles_and_copies(snapshot_memory):
    import copy
    import pickle

    X, y = toy_data(9)
    tr = Trainer(TrainConfig(**{**SMALL, "epochs": 3, "lr": 0.3}, seed=9), 5, 3)
    tr.fit(X[:90], y[:90], X[90:], y[90:])
    for other in (pickle.loads(pickle.dumps(tr)), copy.deepcopy(tr)):
        assert isinstance(other.best, BestParams)
        for k in tr.best:
            np.testing.assert_array_equal(other.best[k], tr.best[k], err_msg=k)
        assert not np.shares_memory(other.best._arrays["K"], tr.best._arrays["K"])
        before = {k: tr.best[k] for k in tr.best}
        other.fit(X[:90], y[:90], X[90:], y[90:], epochs=2)  # trains on, its own memory
        assert tr.epoch == 3 and other.epoch == 5
        for k, v in before.items():
            np.testing.assert_array_equal(tr.best[k], v, err_msg=k)


def test_snapshot_memory_is_let_go_when_no_snapshot_holds_it_at_the_end_of_fit():
    X, y = toy_data(9)
    tr = Trainer(TrainConfig(**{**SMALL, "epochs": 2, "lr": 0.3}, seed=9), 5, 3)
    tr.fit(X[:90], y[:90], X[90:], y[90:], epochs=1)
    assert tr._last_snapshot[1] is not None  # kept for reuse while the best holds them
    tr.fit(X[:90], y[:90], X[90:], y[90:], epochs=1,
           callback=lambda t, rec: setattr(t, "best", None))  # the caller drops the best
    assert tr.best is None and tr._last_snapshot == (None, None)


def test_a_validation_forward_that_overflows_is_a_divergence(monkeypatch):
    """NaN/inf values in the end-of-epoch validation forward (the forward's NONFINITE) are
    reported as a divergence naming the epoch, as in a training batch; a solve that fails
    with finite values stays a ConvergenceError."""
    from refimpl import ConvergenceError, SolveStatus

    X, y = toy_data()
    for status, error, match in ((SolveStatus.NONFINITE, TrainingDivergedError,
                                  r"^epoch 1: .*non-finite"),
                                 (SolveStatus.MAX_ITERATIONS, ConvergenceError, "module 3")):
        def failing(*args, status=status, **kwargs):
            raise ConvergenceError(3, np.array([3]), 1, np.nan, 0, status)

        monkeypatch.setattr(train_module, "_error", failing)
        tr = Trainer(TrainConfig(**{**SMALL, "epochs": 2}, seed=1), 5, 3)
        with pytest.raises(error, match=match):
            tr.fit(X[:90], y[:90], X[90:], y[90:])
        assert tr.epoch == 1
