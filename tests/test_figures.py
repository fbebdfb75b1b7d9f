"""``refimpl figures``: a few cheap figure makers into a temporary folder, the data
files they cache, re-plotting from the cache, and the ``--only`` validation; the committed
(--quick) data of every figure against what its caption in figures/README.md claims; the
supplement's Table 2 defaults."""
import argparse
import json
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


# ----------------------------------------------------------------------------
# content: the committed (--quick) data of each figure satisfies its caption
# (figures/README.md). Timings are not asserted (they live in benchmarks/).
# ----------------------------------------------------------------------------

FIG_DIR = cmd._figures_dir()


def _cached(name):
    return _read_csv(os.path.join(FIG_DIR, name + ".csv"))


def test_fig4a_nm_regularization_breaks_the_giant_module():
    """Caption: largest SCC ~p without NM regularization, tens of nodes with it."""
    c, meta = _cached("fig4a")
    assert meta["quick"] is True and np.all(c["converged"] == 1)
    for p in np.unique(c["nodes"]):
        nm = c["largest_module"][(c["nodes"] == p) & (c["reg"] == "nm")]
        no = c["largest_module"][(c["nodes"] == p) & (c["reg"] == "none")]
        assert nm.size == 1 and no.size >= 1
        assert np.all(no >= 0.9 * p), "without the regularizer one module holds ~all nodes"
        assert nm[0] < no.min()
        if p >= 100:
            assert nm[0] <= 0.25 * p, f"tens of nodes with NM regularization (p = {p})"
    assert np.all(c["edges"] == 4 * c["nodes"])


def test_fig9_grid_is_flat_within_about_one_point():
    """Caption: the whole alpha x k grid lies within about one percentage point (0.05-0.065)."""
    c, meta = _cached("fig9")
    assert meta["reg"] == "nm" and c["test_error"].size == 16
    e = c["test_error"]
    assert 0.05 <= e.min() and e.max() <= 0.065 and e.max() - e.min() <= 0.015


def test_fig10a_rises_with_q_and_matches_eq16():
    """Caption: p_merge = 1 - theta^q rises with q for every theta; Monte Carlo agrees."""
    c, _ = _cached("fig10a")
    np.testing.assert_allclose(c["p_merge"], 1 - c["theta"] ** c["q"], rtol=1e-12, atol=0)
    for th in np.unique(c["theta"]):
        sel = c["theta"] == th
        q, p = c["q"][sel], c["p_merge"][sel]
        assert np.all(np.diff(p[np.argsort(q)]) > 0)
    mc = np.isfinite(c["p_merge_mc"])
    assert np.all(np.abs(c["p_merge_mc"][mc] - c["p_merge"][mc]) <= 5 * c["mc_se"][mc] + 1e-3)


def test_fig10b_module_sizes_span_the_axis():
    """Caption: 1000-node graphs with module sizes drawn from 1..max_q; the x axis is the
    measured average module size."""
    c, meta = _cached("fig10b")
    assert meta["nodes"] == 1000
    np.testing.assert_allclose(c["modules"] * c["mean_module_size"], 1000, rtol=1e-12, atol=0)
    assert np.all(np.diff(c["mean_module_size"]) > 0)
    assert np.all(c["largest_module"] <= c["max_q"]) and np.all(c["mean_module_size"] >= 1)


def test_fig11_modules_are_diagonal_blocks_and_the_condensation_a_dag():
    """Caption: in schedule order every edge between modules lies above the diagonal, and
    each module is a diagonal block."""
    with np.load(os.path.join(FIG_DIR, "fig11.npz")) as z:
        meta = json.loads(str(z["__meta__"]))
        for name in meta["datasets"]:
            src, dst = z[f"{name}_src"], z[f"{name}_dst"]
            pos, ptr = z[f"{name}_position"], z[f"{name}_module_ptr"]
            block = np.searchsorted(ptr, pos, side="right") - 1  # module of each node
            assert src.size == meta["summary"][name]["edges"]
            between = block[src] != block[dst]
            assert np.all(pos[src][between] < pos[dst][between]), name
            sizes = np.diff(ptr)
            assert sizes.max() == meta["summary"][name]["largest_module"]


def test_fig12_density_degrees_and_module_sizes():
    """Caption: density edges / p(p-1) fixed by k (0.048); degrees from the same edges;
    module sizes."""
    c, meta = _cached("fig12")
    for name, s in meta["summary"].items():
        sel = c["dataset"] == name
        p = s["nodes"]
        assert s["edge_density"] == pytest.approx(s["edges"] / (p * (p - 1)), rel=1e-12)
        assert round(s["edge_density"], 3) == 0.048
        assert c["in_degree"][sel].sum() == c["out_degree"][sel].sum() == s["edges"]
        assert 0 <= s["edges_in_modules"] <= s["edges"]
        sizes = c["module_size"][sel]
        assert sizes.max() == s["largest_module"]
        for m in np.unique(c["module"][sel]):
            in_m = sel & (c["module"] == m)
            assert np.all(c["module_size"][in_m] == in_m.sum())


def test_thm33_measured_gradient_under_the_bound():
    """Caption: E||grad||^2 follows the Eq. 14 shape (fit within about 6-8%) and stays
    under the argument's bound; the paper's bound is looser still."""
    c, meta = _cached("thm33")
    assert np.all(np.diff(c["grad_sq"]) < 0)
    assert np.all(c["grad_sq"] <= c["bound"]) and np.all(c["bound"] <= c["bound_paper"])
    assert meta["fit_rel_err"] <= 0.08
    assert np.all(np.abs(c["fit"] - c["grad_sq"]) <= 0.1 * c["grad_sq"])


def test_sagp_dynamics_stages_and_table2_bounds():
    """Caption: expansion (growth once no apoptosis for N = 10 epochs), competition with
    apoptosis, then fewer synapses; |H| never exceeds |H|max = 128."""
    from refimpl.sagp import SAGPConfig

    c, meta = _cached("sagp_dynamics")
    cfg = SAGPConfig()
    assert "Table 2" in meta["config"]
    assert c["n_hidden"].max() <= cfg.h_max
    assert c["n_hidden"].max() > c["n_hidden"][0], "expansion"
    assert c["removed"].sum() > 0, "apoptosis"
    assert c["synapses"][-1] < c["synapses"][0], "synapses pruned"
    grown = np.flatnonzero(c["grown"] > 0)
    assert grown.size and grown[0] + 1 >= cfg.patience
    for e in grown:  # every growth follows N epochs without apoptosis (this one included)
        assert c["removed"][max(0, e - cfg.patience + 1):e + 1].sum() == 0, f"epoch {e + 1}"
    np.testing.assert_array_equal(np.diff(c["n_hidden"]), (c["grown"] - c["removed"])[1:])


def test_sagp_outdegree_cuts_the_border_columns():
    """Caption: the network cuts most synapses of the left (and right) pixel columns and
    keeps the central strokes."""
    c, _ = _cached("sagp_outdegree")
    od = np.zeros((8, 8))
    od[c["row"].astype(int), c["col"].astype(int)] = c["out_degree"]
    centre = od[:, 2:6].mean()
    assert od[:, 0].mean() < 0.5 * centre
    assert od[:, 7].mean() < centre


def test_posterior_cached_data_shrinks_to_the_prior():
    """Caption: means shrink to 0 and standard deviations to tau / sqrt(r_j) as r grows."""
    c, meta = _cached("posterior")
    d = meta["d"]
    std, mean = c["std"].reshape(-1, d), c["mean"].reshape(-1, d)
    prior = c["prior_std"].reshape(-1, d)
    np.testing.assert_allclose(prior, meta["tau"] / np.sqrt(c["r"].reshape(-1, d)),
                               rtol=1e-12, atol=0)
    assert np.all(np.diff(std, axis=0) <= 1e-12)
    assert np.all(np.abs(std[-1] / prior[-1] - 1) < 0.01)
    assert np.all(np.abs(mean[-1]) < 0.05 * np.abs(mean[0]))


def test_supplement_table2_defaults():
    """S-Table 2: L = 3, alpha = 0.2, gamma1 = 0.05, gamma2 = 0.001, beta = 0.5, N = 10,
    |H|max = 128 are SAGPConfig's defaults."""
    from refimpl.sagp import SAGPConfig

    cfg = SAGPConfig()
    assert (cfg.steps, cfg.alpha, cfg.gamma1, cfg.gamma2, cfg.beta, cfg.patience,
            cfg.h_max) == (3, 0.2, 0.05, 0.001, 0.5, 10, 128)
