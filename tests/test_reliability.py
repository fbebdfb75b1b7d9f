"""Runs that never lose work and never answer wrongly (issue 15).

Atomic files, guarded ``train`` / ``--resume`` / ``predict``, inputs refused up front,
diverging runs named as such, clean SIGINT, and a fault-injection loop: the training
process is killed at random moments (and inside the checkpoint write) again and again,
resumed each time, and must end with the parameters of an uninterrupted run, bit for bit.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from refimpl.cli import main
from refimpl.io import CheckpointError, atomic_write, load_checkpoint, save_checkpoint, write_json
from refimpl.train import Trainer, TrainConfig, TrainingDivergedError

ROOT = Path(__file__).resolve().parents[1]
#: A run of a few seconds: iris, 8 nodes, no early stopping.
RUN = ["--dataset", "iris", "--nodes", "8", "--epochs", "6", "--batch-size", "16",
       "--patience", "0", "--seed", "3", "--quiet"]


def _arrays(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k != "__meta__"}


def _assert_same_run(a, b):
    A, B = _arrays(a), _arrays(b)
    assert A.keys() == B.keys()
    for k in A:
        np.testing.assert_array_equal(A[k], B[k], err_msg=f"checkpoint array {k}")


# ---------------------------------------------------------------- atomic files
def test_atomic_write_keeps_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(path) as fh:
            fh.write("half of the new")
            raise RuntimeError("disk full")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.txt"]  # no temporary file left


def test_write_json_fails_before_touching_the_file(tmp_path):
    path = tmp_path / "s.json"
    write_json(path, {"a": 1})
    with pytest.raises(TypeError):
        write_json(path, {"a": object()})
    assert json.loads(path.read_text()) == {"a": 1}


def test_checkpoint_interrupted_mid_write_leaves_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    save_checkpoint(path, {"K": np.ones(3)}, {"epoch": 1}, "fmt")

    def broken_savez(fh, **arrays):
        fh.write(b"PK\x03\x04 truncated")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"K": np.zeros(3)}, {"epoch": 2}, "fmt")
    arrays, meta = load_checkpoint(path, "fmt")
    assert meta["epoch"] == 1 and np.array_equal(arrays["K"], np.ones(3))


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04garbage", b"not a zip at all"])
def test_corrupt_and_truncated_checkpoints_raise_checkpoint_error(tmp_path, content):
    path = tmp_path / "c.npz"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a readable checkpoint") as exc:
        Trainer.load(path)
    assert "allow_pickle" not in str(exc.value)  # numpy's advice to load it unsafely


def test_foreign_and_truncated_real_checkpoints_raise_checkpoint_error(tmp_path):
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, K=np.ones(2))
    with pytest.raises(CheckpointError, match="not a refimpl checkpoint"):
        Trainer.load(foreign)
    for meta in ("{not json", "[1, 2]"):  # a foreign file with a __meta__ entry of its own
        np.savez(foreign, __meta__=np.array(meta))
        with pytest.raises(CheckpointError, match="not a refimpl checkpoint"):
            Trainer.load(foreign)
    real = tmp_path / "real.npz"
    Trainer(TrainConfig(nodes=4, epochs=1), 3, 2).save(real)
    data = real.read_bytes()
    for cut in (len(data) // 3, len(data) - 7):
        (tmp_path / "cut.npz").write_bytes(data[:cut])
        with pytest.raises(CheckpointError):
            Trainer.load(tmp_path / "cut.npz")


# ---------------------------------------------------------------- guarded commands
def test_train_refuses_a_run_folder_and_resume_refuses_contradictions(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", *RUN, "--out", out]) == 0
    capsys.readouterr()
    assert main(["train", *RUN, "--out", out]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--resume" in err and "--overwrite" in err
    assert main(["train", "--resume", "--out", out, "--dataset", "wine", "--nodes", "50",
                 "--lr", "0.5"]) == 2
    err = capsys.readouterr().err
    for text in ("--dataset wine (the run has iris)", "--nodes 50 (the run has 8)",
                 "--lr 0.5 (the run has"):
        assert text in err, err
    assert main(["train", "--resume", "--out", out, "--epochs", "2"]) == 2
    assert "--epochs may only grow" in capsys.readouterr().err
    # An option typed with its default value (--nodes 100 is TrainConfig's default) still
    # contradicts a run of 8 nodes; a unique prefix (--batch for --batch-size) counts.
    assert main(["train", "--resume", "--out", out, "--nodes", "100", "--batch=32"]) == 2
    err = capsys.readouterr().err
    assert "--nodes 100 (the run has 8)" in err and "--batch-size 32 (the run has 16)" in err
    assert main(["train", "--resume", "--out", out, "--epochs", "7", "--quiet"]) == 0
    summary = json.loads(Path(out, "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs"] == 7
    assert main(["train", *RUN, "--out", out, "--overwrite"]) == 0
    assert json.loads(Path(out, "summary.json").read_text())["epochs"] == 6


def test_resume_without_epochs_keeps_the_runs_epoch_target(tmp_path, capsys):
    """`--resume` without `--epochs` continues to the run's own target (the option's
    default, 50, is not a request to grow it); a typed --epochs grows it."""
    out = tmp_path / "run"
    run4 = [*RUN[:4], "--epochs", "4", *RUN[6:]]
    assert main(["train", *run4, "--out", str(out)]) == 0
    before = _arrays(out / "checkpoint.npz")
    assert main(["train", "--resume", "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["epochs"] == 4 and summary["config"]["epochs"] == 4
    after = _arrays(out / "checkpoint.npz")
    for k in before:
        np.testing.assert_array_equal(before[k], after[k], err_msg=k)
    assert main(["train", "--resume", "--out", str(out), "--epochs", "5", "--quiet"]) == 0
    assert json.loads((out / "summary.json").read_text())["epochs"] == 5


def _fail_in_first_batch(monkeypatch, how, after=0):
    """Make the next training fail (or be interrupted) in its mini-batch ``after + 1``."""
    import refimpl.train as train_mod

    calls = []

    def train_batch(self, X, y):
        calls.append(1)
        if len(calls) <= after:
            return real(self, X, y)
        if how == "signal":
            os.kill(os.getpid(), signal.SIGINT)  # the CLI's handler: stop before the next
            return real(self, X, y)
        raise RuntimeError("boom")

    real = train_mod.Trainer.train_batch
    monkeypatch.setattr(train_mod.Trainer, "train_batch", train_batch)


@pytest.mark.parametrize("how", ["error", "signal"])
def test_overwrite_keeps_the_old_run_until_the_new_one_has_an_epoch(tmp_path, capsys,
                                                                      monkeypatch, how):
    """`--overwrite` replaces the old run's files only when the new run saves its first
    epoch: a new run that fails or is stopped before that leaves the old run as it was."""
    out = tmp_path / "run"
    assert main(["train", *RUN, "--out", str(out)]) == 0
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    _fail_in_first_batch(monkeypatch, how)
    code = main(["train", *RUN, "--seed", "4", "--out", str(out), "--overwrite"])
    err = capsys.readouterr().err
    assert code == (2 if how == "error" else 130), err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files
    if how == "signal":
        assert "nothing was saved; the previous run in" in err and "unchanged" in err


def test_a_failed_or_interrupted_resume_says_so_in_the_summary(tmp_path, capsys, monkeypatch):
    """A resumed run that fails or is interrupted before it saved an epoch leaves the folder
    as it was (a finished run's summary stays) and says how to continue with the grown
    target; once it saved one, summary.json and the history describe the checkpoint, with
    "failed" (and the error) or "interrupted", not "running"."""
    out = tmp_path / "run"
    assert main(["train", *RUN, "--out", str(out)]) == 0
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    _fail_in_first_batch(monkeypatch, "error")
    assert main(["train", "--resume", "--out", str(out), "--epochs", "8", "--quiet"]) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files
    monkeypatch.undo()
    _fail_in_first_batch(monkeypatch, "signal")
    assert main(["train", "--resume", "--out", str(out), "--epochs", "8", "--quiet"]) == 130
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files
    assert "--resume --epochs 8`" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(out), "--epochs", "8", "--backend",
                 "numpy", "--quiet"]) == 130
    assert "--resume --epochs 8 --backend numpy`" in capsys.readouterr().err
    monkeypatch.undo()
    batches = -(-90 // 16)  # (iris: 90 training rows)
    _fail_in_first_batch(monkeypatch, "error", after=batches + 1)  # in the second new epoch
    assert main(["train", "--resume", "--out", str(out), "--epochs", "9", "--quiet"]) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and "boom" in summary["error"]
    assert summary["epochs"] == 7 == Trainer.load(out / "checkpoint.npz").epoch
    assert len(json.loads((out / "history.json").read_text())) == 7
    monkeypatch.undo()
    _fail_in_first_batch(monkeypatch, "signal", after=batches + 1)
    assert main(["train", "--resume", "--out", str(out), "--epochs", "9", "--quiet"]) == 130
    assert json.loads((out / "summary.json").read_text())["status"] == "interrupted"


def test_resume_of_a_library_checkpoint_is_one_line(tmp_path, capsys):
    """A checkpoint saved by Trainer.save (no record of its data set) is refused by
    `refimpl train --resume` with a line that says why, not a KeyError."""
    out = tmp_path / "lib"
    out.mkdir()
    X, y = np.random.default_rng(0).standard_normal((40, 4)), np.arange(40) % 3
    tr = Trainer(TrainConfig(nodes=6, epochs=1, patience=None), 4, 3)
    tr.fit(X, y)
    tr.save(out / "checkpoint.npz")
    assert main(["train", "--resume", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not written by `refimpl train`" in err, err


def test_checkpoint_records_the_data_and_predict_refuses_another_data_set(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *RUN, "--out", str(out)]) == 0
    extra = Trainer.load(out / "checkpoint.npz").extra
    assert extra["dataset"] == "iris" and extra["n_features"] == 4
    assert extra["classes"] == ["setosa", "versicolor", "virginica"]
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(out / "checkpoint.npz"),
                 "--dataset", "wine"]) == 2
    err = capsys.readouterr().err
    assert "trained on iris" in err and len(err.strip().splitlines()) == 1
    assert main(["predict", "--checkpoint", str(out / "checkpoint.npz"),
                 "--output", str(tmp_path / "missing" / "p.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["predict", "--checkpoint", str(out / "checkpoint.npz"),
                 "--output", str(tmp_path)]) == 2  # a folder: refused before the solve
    err = capsys.readouterr().err
    assert f"--output {tmp_path}: is a folder" in err and len(err.strip().splitlines()) == 1
    assert not Path(f"{tmp_path}.partial").exists()
    assert main(["predict", "--checkpoint", str(tmp_path / "none.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("refimpl predict: FileNotFoundError: --checkpoint "), err
    assert main(["predict", "--checkpoint", str(out / "checkpoint.npz"),
                 "--output", str(tmp_path / "p.csv")]) == 0
    assert (tmp_path / "p.csv").read_text().startswith("index,prediction,label")
    ckpt = (out / "checkpoint.npz").read_bytes()
    assert main(["predict", "--checkpoint", str(out / "checkpoint.npz"),
                 "--output", str(out / "." / "checkpoint.npz")]) == 2  # the same file
    assert "is the checkpoint" in capsys.readouterr().err
    assert (out / "checkpoint.npz").read_bytes() == ckpt


@pytest.mark.parametrize("argv, text", [
    (["--nodes", "1"], "--nodes: a graph needs at least 2 hidden nodes"),
    (["--batch-size", "0"], "--batch-size: expected a positive integer"),
    (["--activation", "foo"], "activation"),
    (["--dataset", "codon", "--data-path", "/nonexistent/codon"], "--data-path DIR"),
    (["--dataset", "mnist"], "refimpl train: ValueError: --dataset: unknown data set 'mnist'"),
    (["--dataset", "wine", "--data-path", "/x"],
     "ValueError: --data-path: the data set 'wine' is built in"),
])
def test_bad_starts_are_one_line_and_leave_no_folder(tmp_path, capsys, argv, text):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--quiet", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and text in err, err
    assert not out.exists()


def test_unwritable_out_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["train", *RUN, "--out", str(blocker / "run")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_single_class_training_data_is_refused():
    trainer = Trainer(TrainConfig(nodes=4, epochs=1), 2, 2)
    X = np.random.default_rng(0).standard_normal((10, 2))
    with pytest.raises(ValueError, match="single class"):
        trainer.fit(X, np.zeros(10, dtype=int))


def test_a_diverging_run_names_its_epoch():
    from refimpl.datasets import load

    d = load("iris", seed=0)
    trainer = Trainer(TrainConfig(nodes=8, epochs=5, patience=None, lr=1e150,
                                  activation="identity", structure="dag"),
                      d.n_features, d.n_classes)
    with np.errstate(all="ignore"), pytest.raises(TrainingDivergedError,
                                                  match=r"epoch \d+: .*lower learning rate"):
        trainer.fit(d.X_train, d.y_train, d.X_val, d.y_val)


# ---------------------------------------------------------------- processes
def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


#: Runs ``refimpl train`` and, with KILL_AT_SAVE=n, SIGKILLs itself in the middle of the
#: n-th checkpoint write (after half of the archive has reached the temporary file).
DRIVER = r"""
import os, signal, sys
import numpy as np
n = int(os.environ.get("KILL_AT_SAVE", "0"))
if n:
    real, calls = np.savez, [0]
    def savez(fh, **arrays):
        calls[0] += 1
        if calls[0] == n:
            import io
            buf = io.BytesIO(); real(buf, **arrays); data = buf.getvalue()
            fh.write(data[: len(data) // 2]); fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return real(fh, **arrays)
    np.savez = savez
from refimpl.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _train_process(out, *extra, kill_at_save=0):
    env = _env()
    env["KILL_AT_SAVE"] = str(kill_at_save)
    return subprocess.Popen([sys.executable, "-c", DRIVER, "train", *RUN, "--out", str(out),
                             *extra], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_sigint_stops_cleanly_and_the_run_resumes_bit_for_bit(tmp_path):
    ref = tmp_path / "ref"
    assert main(["train", *RUN, "--out", str(ref)]) == 0
    out = tmp_path / "run"
    proc = _train_process(out, "--epochs", "400")
    ckpt = out / "checkpoint.npz"
    deadline = time.monotonic() + 120
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "--resume" in lines[0], err
    summary = json.loads((out / "summary.json").read_text())  # written every epoch
    assert summary["status"] == "interrupted"
    assert len(json.loads((out / "history.json").read_text())) == summary["epochs"]
    done = summary["epochs"]
    ref_n = tmp_path / f"ref{done}"
    assert main(["train", *RUN[:4], "--epochs", str(done), *RUN[6:], "--out", str(ref_n)]) == 0
    a, b = Trainer.load(ref_n / "checkpoint.npz"), Trainer.load(ckpt)
    for name in ("K", "W1", "Wm"):
        np.testing.assert_array_equal(getattr(a.net, name), getattr(b.net, name),
                                      err_msg=f"{name} after SIGINT at epoch {done}")


def test_fault_injection_kills_and_resumes_to_the_uninterrupted_result(tmp_path):
    ref = tmp_path / "ref"
    assert main(["train", *RUN, "--out", str(ref)]) == 0
    out = tmp_path / "run"
    rng = np.random.default_rng(15)
    kills = 0
    for attempt in range(40):
        resume = ["--resume"] if (out / "checkpoint.npz").exists() else []
        # Killed inside its 1st or 2nd checkpoint write, a run gains at most one epoch:
        # the first four attempts do that, so the 6-epoch run cannot finish before them.
        if attempt < 4 or attempt % 2 == 0:  # die inside a checkpoint write
            proc = _train_process(out, *resume, kill_at_save=int(rng.integers(1, 3)))
        else:  # die at a random moment
            proc = _train_process(out, *resume)
            try:
                proc.wait(timeout=float(rng.uniform(0.3, 2.5)))
            except subprocess.TimeoutExpired:
                proc.kill()
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, err
        kills += 1
        if (out / "checkpoint.npz").exists():
            Trainer.load(out / "checkpoint.npz")  # never a truncated checkpoint
    else:
        pytest.fail("the run never finished")
    assert kills >= 4, "too few interruptions to test anything"
    _assert_same_run(ref / "checkpoint.npz", out / "checkpoint.npz")
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"
