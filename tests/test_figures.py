"""``refimpl figures``: a few cheap figure makers into a temporary folder, the data
files they cache, re-plotting from the cache, and the ``--only`` validation."""
import argparse
import os
import sys

import numpy as np
import pytest

from refimpl.commands import figures as cmd

reg = cmd._load_registry()
sys.path.insert(0, str(cmd._figures_dir()))
import _figlib  # noqa: E402  (figures/_figlib.py)
import _trained  # noqa: E402  (figures/_trained.py)

_read_csv = _figlib.read_csv


def _is_png(path):
    with open(path, "rb") as fh:
        return fh.read(8) == b"\x89PNG\r\n\x1a\n"


def test_fig10a_writes_eq16_and_monte_carlo(tmp_path):
    paths = reg.module("fig10a").make(tmp_path, quick=True)
    assert [os.path.basename(p) for p in paths] == ["fig10a.csv", "fig10a.png"]
    assert _is_png(paths[1])
    cols, meta = _read_csv(paths[0])
    assert set(cols) == {"theta", "q", "p_merge", "p_merge_mc", "mc_se"}
    assert meta["quick"] is True and meta["n_trials"] > 0
    np.testing.assert_allclose(cols["p_merge"], 1 - cols["theta"] ** cols["q"], rtol=1e-12,
                               err_msg="Eq. (16) column")
    mc = np.isfinite(cols["p_merge_mc"])
    assert mc.sum() >= 10
    assert np.all(np.abs(cols["p_merge_mc"][mc] - cols["p_merge"][mc])
                  <= 5 * cols["mc_se"][mc] + 1e-3)


def test_posterior_shrinks_and_is_replotted_from_cache(tmp_path):
    make = reg.module("posterior").make
    paths = make(tmp_path, quick=True, pdf=True)
    assert [os.path.basename(p) for p in paths] == ["posterior.csv", "posterior.png",
                                                    "posterior.pdf"]
    cols, meta = _read_csv(paths[0])
    assert {"scale", "coef", "r", "mean", "std", "prior_std"} <= set(cols)
    d = meta["d"]
    assert cols["scale"].size % d == 0
    std = cols["std"].reshape(-1, d)
    mean = cols["mean"].reshape(-1, d)
    assert np.all(np.diff(std, axis=0) <= 1e-12), "posterior std shrinks as r grows"
    assert np.all(np.abs(mean[-1]) < 0.05 * np.abs(mean[0]))
    # cached: the data file is kept, only the image is redrawn
    os.utime(paths[0], ns=(1, 1))
    make(tmp_path, quick=True)
    assert os.stat(paths[0]).st_mtime_ns == 1
    # --redo recomputes
    make(tmp_path, quick=True, redo=True)
    assert os.stat(paths[0]).st_mtime_ns > 1
    # a full-size request does not reuse quick data
    os.utime(paths[0], ns=(1, 1))
    make(tmp_path, quick=False)
    assert os.stat(paths[0]).st_mtime_ns > 1
    assert _read_csv(paths[0])[1]["quick"] is False


def test_fig12_trained_networks_tiny(tmp_path, monkeypatch):
    pytest.importorskip("sklearn", reason="the built-in datasets need the 'data' extra")
    monkeypatch.setattr(_trained, "settings", lambda quick: dict(
        nodes=12, edges_per_node=2, alpha=1e-3, epochs=2, patience=10, seed=0))
    shared = {}
    paths = reg.module("fig12").make(tmp_path, quick=True, shared=shared)
    assert _is_png(paths[1])
    cols, meta = _read_csv(paths[0])
    assert set(cols) == {"dataset", "node", "in_degree", "out_degree", "module",
                         "module_size"}
    assert cols["node"].size == 4 * 12
    assert meta["training"]["nodes"] == 12
    for name, s in meta["summary"].items():
        sel = cols["dataset"] == name
        assert cols["in_degree"][sel].sum() == cols["out_degree"][sel].sum() == s["edges"]
        assert s["edges"] == 2 * 12 and 0 <= s["edges_in_modules"] <= s["edges"]
    # fig11 reuses the networks trained for fig12 (no second training)
    paths11 = reg.module("fig11").make(tmp_path, quick=True, shared=shared)
    assert [os.path.basename(p) for p in paths11] == ["fig11.npz", "fig11.png"]
    with np.load(paths11[0]) as z:
        assert z["digits_position"].shape == (12,) and z["digits_src"].size == 24


def _args(**kw):
    p = argparse.ArgumentParser()
    cmd.add_arguments(p)
    argv = []
    for k, v in kw.items():
        argv += [f"--{k}"] if v is True else [f"--{k}", str(v)]
    return p.parse_args(argv)


def test_only_rejects_unknown_names(tmp_path, capsys):
    assert cmd.run(_args(out=tmp_path, only="fig10a,nope", quiet=True)) == 2
    err = capsys.readouterr().err
    assert "unknown figure name(s) nope" in err and "fig4a" in err and "posterior" in err
    assert not any(tmp_path.iterdir()), "nothing is made when a name is wrong"


def test_only_selects_in_registry_order(tmp_path, capsys):
    assert reg.select(["posterior", "fig10a"]) == ["fig10a", "posterior"]
    assert reg.select(["fig10a, posterior"]) == ["fig10a", "posterior"]
    assert reg.select(None) == list(reg.FIGURES)
    assert cmd.run(_args(out=tmp_path, only="fig10a", quick=True)) == 0
    out = capsys.readouterr().out
    assert "fig10a" in out and "1 figure(s)" in out
    assert sorted(os.listdir(tmp_path)) == ["fig10a.csv", "fig10a.png"]


def test_list(capsys):
    assert cmd.run(_args(list=True)) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == list(reg.FIGURES)


def test_installed_without_checkout_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    """An installed package without the figures/ folder: one line on stderr, exit 2."""
    monkeypatch.setattr(cmd, "_figures_dir", lambda: tmp_path / "figures")
    monkeypatch.delitem(sys.modules, "refimpl_figures_make_figures", raising=False)
    assert cmd.run(_args(list=True)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "source checkout" in err and "not installed" in err


def test_figures_and_benchmarks_share_the_package_workload():
    """No path loading between figures/ and benchmarks/: both import refimpl.workloads."""
    import _bench

    from refimpl import workloads

    assert _bench.modular_graph is workloads.modular_graph
    K, mask = workloads.modular_graph(40, 4, seed=1, max_q=5)
    assert K.shape == (40, 40) and not np.any(np.diag(mask)) and mask.sum() >= 3 * 40
