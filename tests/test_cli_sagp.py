"""``refimpl sagp``: a tiny run in a temporary folder, and the files it writes."""
import argparse
import csv
import json
import sys

import numpy as np
import pytest

from refimpl.commands import sagp as cmd

pytest.importorskip("sklearn", reason="the digits data set needs the 'data' extra")

TINY = ["--dataset", "digits", "--epochs", "2", "--seed", "0", "--h-max", "3", "--patience", "1", "--no-progress"]


def _run(argv):
    parser = argparse.ArgumentParser(prog="refimpl")
    sub = parser.add_subparsers(dest="command")
    cmd.register(sub, "sagp", "train a SAGP")
    args = parser.parse_args(["sagp", *argv])
    return args.func(args)


def test_sagp_command_writes_history_topology_and_image(tmp_path, capsys):
    out = tmp_path / "run"
    assert _run([*TINY, "--out", str(out)]) == 0
    assert "test error" in capsys.readouterr().out
    doc = json.loads((out / "history.json").read_text())
    assert doc["dataset"] == "digits" and doc["seed"] == 0
    assert doc["config"]["h_max"] == 3 and doc["config"]["activation"] == "swish"
    assert len(doc["history"]) == 2
    assert [r["n_grown"] for r in doc["history"]] == [2, 3]  # patience 1: grows every epoch
    assert sum(doc["splits"].values()) == 1797
    assert len(doc["input_out_degree"]) == 64
    with open(out / "history.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and float(rows[-1]["test_error"]) == pytest.approx(doc["final"]["test_error"])
    topo = np.load(out / "topology.npz")
    N = 64 + 3 + 10
    assert topo["A_eff"].shape == (N, N) and int(topo["n_in"]) == 64
    np.testing.assert_array_equal(topo["out_degree"], doc["input_out_degree"])
    assert int(topo["synapse_mask"][:64].sum()) >= int(topo["out_degree"].sum())
    assert (out / "out_degree.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sagp_command_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert _run([*TINY, "--out", str(a)]) == 0
    assert _run([*TINY, "--out", str(b)]) == 0
    ha = json.loads((a / "history.json").read_text())["history"]
    hb = json.loads((b / "history.json").read_text())["history"]
    assert ha == hb


def test_sagp_command_ablation_and_bad_values(tmp_path, capsys):
    out = tmp_path / "abl"
    assert _run([*TINY, "--ablation", "no-growth", "--out", str(out)]) == 0
    doc = json.loads((out / "history.json").read_text())
    assert doc["config"]["growth"] is False and doc["history"][0]["n_grown"] == 3
    assert _run([*TINY, "--alpha", "0", "--out", str(out)]) == 2
    assert "alpha" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _run([*TINY, "--dataset", "mnist-from-the-internet"])


def test_sagp_command_without_scikit_learn(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # makes `import sklearn` fail
    assert _run([*TINY, "--out", str(tmp_path / "x")]) == 2
    assert "install the 'data' extra" in capsys.readouterr().err


def test_sagp_through_top_level_cli(tmp_path):
    cli = pytest.importorskip("refimpl.cli", reason="refimpl.cli does not import in this checkout", exc_type=ImportError)
    assert cli.main(["sagp", *TINY, "--out", str(tmp_path / "top")]) == 0
    assert (tmp_path / "top" / "history.json").exists()


def test_sagp_sweep_alpha_writes_the_table10_markdown(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert _run([*TINY, "--epochs", "1", "--sweep-alpha", "--out", str(out)]) == 0
    md = (out / "alpha_sweep.md").read_text()
    assert "| | alpha = 0.05 | alpha = 0.1 | alpha = 0.2 | alpha = 0.5 | alpha = 0.8 |" in md
    doc = json.loads((out / "alpha_sweep.json").read_text())
    assert [r["alpha"] for r in doc["rows"]] == [0.05, 0.1, 0.2, 0.5, 0.8]
    assert doc["epochs"] == 1 and doc["config"]["h_max"] == 3
    for key in ("best_n_hidden", "best_synapses", "last_n_hidden", "last_synapses"):
        label = {"best_n_hidden": "best: \\|H\\|", "best_synapses": "best: #Synapse",
                 "last_n_hidden": "last: \\|H\\|", "last_synapses": "last: #Synapse"}[key]
        assert f"| {label} | " + " | ".join(str(r[key]) for r in doc["rows"]) + " |" in md
    assert "alpha_sweep.md" in capsys.readouterr().out
    assert not (out / "history.json").exists()  # the sweep writes only its own files


def test_sagp_quick_overrides_epochs(tmp_path):
    parser = argparse.ArgumentParser(prog="refimpl")
    sub = parser.add_subparsers(dest="command")
    cmd.register(sub, "sagp", "train a SAGP")
    args = parser.parse_args(["sagp", *TINY, "--quick", "--sweep-alpha"])
    assert args.quick and args.sweep_alpha and args.epochs == 2
    called = {}

    def fake(a, config, data):
        called["epochs"] = a.epochs
        return 0

    import unittest.mock as mock

    with mock.patch.object(cmd, "_run_alpha_sweep", fake):
        assert args.func(args) == 0
    assert called["epochs"] == cmd.QUICK_EPOCHS

def test_sagp_ablations_write_table9(tmp_path, capsys):
    out = tmp_path / "t9"
    assert _run([*TINY, "--ablations", "--epochs", "2", "--seeds", "1",
                 "--out", str(out)]) == 0
    md = (out / "ablations.md").read_text()
    for col in ("SAGP", "SAGP w/o Growth", "SAGP w/o Competition", "SAGP w/o Apoptosis"):
        assert f" {col} |" in md
    assert md.count("| F1-micro |") == 2 and "Peak memory" in md and "1 seed(s)" in md
    doc = json.loads((out / "ablations.json").read_text())
    assert set(doc["runs"]) == {"none", "no-growth", "no-competition", "no-apoptosis"}
    assert doc["runs"]["no-growth"][0]["best_n_hidden"] <= 3
    assert _run([*TINY, "--ablations", "--seeds", "0", "--out", str(out)]) == 2
    assert "seeds" in capsys.readouterr().err


def test_sagp_all_datasets_writes_figures_for_each_present(tmp_path, monkeypatch):
    from test_datasets_supplement import _amazon

    for v in ("REFIMPL_DATA", "REFIMPL_FASHION_MNIST", "REFIMPL_CIFAR10", "REFIMPL_FSDD",
              "REFIMPL_ESC50", "REFIMPL_AMAZON"):
        monkeypatch.delenv(v, raising=False)
    (tmp_path / "data" / "amazon").mkdir(parents=True)
    _amazon(tmp_path / "data" / "amazon" / "amazon_electronics_photo.npz",
            n_per_class=(210, 205, 202), d=5)
    monkeypatch.setenv("REFIMPL_DATA", str(tmp_path / "data"))
    out = tmp_path / "all"
    assert _run([*TINY, "--all-datasets", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["amazon_photo", "digits"]
    for name in ("digits", "amazon_photo"):
        for f in ("dynamics.png", "out_degree.png"):
            assert (out / name / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    doc = json.loads((out / "amazon_photo" / "history.json").read_text())
    assert doc["splits"] == {"train": 300, "val": 300, "test": 17}, "100 per class train/val"


def test_out_degree_plot_groups_audio_features(tmp_path):
    from refimpl.datasets.supplement import AUDIO_FEATURE_NAMES

    deg = np.arange(180) % 7
    cmd._plot_out_degree(str(tmp_path / "a.png"), deg, None, "fsdd", list(AUDIO_FEATURE_NAMES))
    assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sagp_feature_selection_writes_table8(tmp_path, capsys):
    out = tmp_path / "t8"
    assert _run([*TINY, "--dataset", "wine", "--feature-selection", "--seeds", "1",
                 "--out", str(out)]) == 0
    md = (out / "feature_selection.md").read_text()
    assert "| 5% | 1 |" in md and "| 20% | 3 |" in md and "SAGP (out-degree)" in md
    assert _run([*TINY, "--ablations", "--feature-selection", "--out", str(out)]) == 2
    assert "choose one" in capsys.readouterr().err


def test_sagp_command_data_path_errors_name_the_option(tmp_path, capsys):
    """The command's data errors name --data-path, not the library's ``path=``."""
    assert _run([*TINY, "--data-path", str(tmp_path), "--out", str(tmp_path / "a")]) == 2
    assert "--data-path: the data set 'digits' is built in" in capsys.readouterr().err
    argv = ["--dataset", "codon", "--epochs", "1", "--no-progress", "--out", str(tmp_path / "b"),
            "--data-path", str(tmp_path / "missing")]
    assert _run(argv) == 2
    err = capsys.readouterr().err
    assert "--data-path DIR" in err and "path=..." not in err, err


def test_sagp_refuses_an_occupied_or_unusable_out_before_training(tmp_path, capsys,
                                                                 monkeypatch):
    """A second run into the same --out is refused (--overwrite replaces it), and a file
    as --out is refused, both before anything trains (the output used to be checked only
    after training, and a second run replaced the first silently)."""
    out = tmp_path / "run"
    assert _run([*TINY, "--out", str(out)]) == 0
    first = (out / "history.json").read_bytes()
    trained = []
    real = cmd._train_one
    monkeypatch.setattr(cmd, "_train_one", lambda *a: trained.append(1) or real(*a))
    capsys.readouterr()
    assert _run([*TINY, "--seed", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "holds an earlier run (history.json" in err and "--overwrite" in err
    assert (out / "history.json").read_bytes() == first and not trained
    (tmp_path / "file").write_text("x")
    assert _run([*TINY, "--out", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err and not trained
    assert _run([*TINY, "--seed", "1", "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / "history.json").read_text())["seed"] == 1


@pytest.mark.parametrize("argv, text", [
    (["--ablations", "--ablation", "no-growth"], "--ablation no-growth with --ablations"),
    (["--all-datasets", "--data-path", "somewhere"], "--all-datasets: trains digits"),
])
def test_sagp_refuses_options_a_mode_would_ignore(tmp_path, capsys, argv, text):
    assert _run([*TINY, *argv, "--out", str(tmp_path / "o")]) == 2
    assert text in capsys.readouterr().err


def test_an_interrupted_sagp_run_says_it_saved_nothing(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cmd, "_train_one", interrupted)
    assert _run([*TINY, "--out", str(tmp_path / "o")]) == 130
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "results were not written" in err


def test_sagp_split_fractions_reach_the_papers_data_sets(tmp_path):
    """--val-fraction / --test-fraction split the paper's data sets too (they were left at
    the library's 0.15 / 0.15 for codon, gas_drift, daily_sports, facebook)."""
    import itertools

    codons = ["".join(c) for c in itertools.product("ACGU", repeat=3)]
    rng = np.random.default_rng(0)
    rows = [",".join(["Kingdom", "DNAtype", "SpeciesID", "Ncodons", "SpeciesName", *codons])]
    for i in range(90):
        f = rng.random(64) + (i % 3) * 0.3
        rows.append(",".join([["arc", "bct", "vrl"][i % 3], "0", str(i), "1000", f"sp{i}",
                              *(f"{v:.5f}" for v in f / f.sum())]))
    (tmp_path / "codon_usage.csv").write_text("\n".join(rows) + "\n")
    data = cmd._load_dataset("codon", 0, 0.4, 0.4, str(tmp_path))
    n_val, n_test = len(data["val"][1]), len(data["test"][1])
    assert (n_val, n_test) == (36, 36), (n_val, n_test)


def test_sagp_modes_only_refuse_their_own_earlier_results(tmp_path, capsys):
    """A folder holding a plain run takes an --ablations run (their files do not collide);
    --overwrite with --epochs 0 leaves no stale dynamics figure of the earlier run."""
    out = tmp_path / "run"
    assert _run([*TINY, "--out", str(out)]) == 0
    assert (out / "dynamics.png").exists()
    assert _run([*TINY, "--ablations", "--seeds", "1", "--epochs", "1",
                 "--out", str(out)]) == 0
    assert (out / "ablations.md").exists() and (out / "history.json").exists()
    assert _run([*TINY, "--epochs", "0", "--out", str(out), "--overwrite"]) == 0
    assert not (out / "dynamics.png").exists()
