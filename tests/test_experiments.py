"""The Table 1 grid (Sec. 4.1): one cell per method, time budgets, resumable
sweeps (serial, local processes, Dask), the summary table and the command."""
import argparse
import math

import pytest

from refimpl import experiments as ex
from refimpl.experiments import COLUMNS, Cell, Settings

TINY = Settings(epochs=2, patience=None, time_budget=120.0)
RUNNABLE = [m for m in ex.METHODS if m not in ex.OPEN_METHODS]


def test_methods_map_onto_the_trainers():
    c = {m: ex.method_config(m, 10, 3) for m in RUNNABLE}
    assert c["DAG"].structure == "dag" and c["OPTNET"].nodes == 10
    assert (c["NMs"].reg, c["NMs&L2"].reg, c["NMs&NM"].reg) == ("none", "l2", "nm")
    assert all(x.momentum == 0.5 and x.alpha == 1e-3 and x.seed == 3 for x in c.values())
    assert c["NMs"].edges == 90 and c["DAG"].edges == 45  # min(10 p, p(p-1)[/2])
    assert ex.LR_SCALE == {"NN": 1.0, "DEQ": 0.1, "DAG": 0.1, "OPTNET": 0.1, "NMs": 1.0,
                           "NMs&L2": 1.0, "NMs&NM": 1.0}  # Table 3
    assert ex.OPEN_METHODS == ()
    with pytest.raises(ValueError, match="method"):
        ex.method_config("GNN", 10, 0)


@pytest.mark.parametrize("method", RUNNABLE)
def test_one_cell_of_each_method(method):
    row = ex.run_cell(method, "iris", 8, 0, TINY)
    assert tuple(row) == COLUMNS
    assert row["status"] == "ok", row["message"]
    assert 0.0 <= row["error"] <= 1.0 and 0.0 <= row["val_error"] <= 1.0
    assert row["epochs"] == 2 and row["seconds"] > 0 and row["settings"] == TINY.fingerprint()
    assert (row["dataset"], row["method"], row["nodes"], row["seed"]) == ("iris", method, 8, 0)
    if method == "NN":
        assert row["edges"] == 4 * 8 + 8 * 3
    elif method == "DEQ":  # dense W, b, W1, Wm
        assert row["edges"] == 8 * 8 + 8 + 8 * 4 + 3 * 8 and row["largest_module"] == 8
        assert row["residual"] < 1e-6  # Eq. (3) on the dense graph holds on the test set
    elif method == "OPTNET":  # W1, b1, L, G, z0, sigma, Wm
        assert row["edges"] == 8 * 4 + 8 + 8 * 8 + 8 * 8 + 8 + 8 + 3 * 8
        assert row["residual"] < 1e-6  # the QP's KKT conditions hold on the test set
    else:
        assert row["residual"] < 1e-6  # Eq. (3) holds on the test set
        assert row["edges"] <= (28 if method == "DAG" else 56)
    if method in ("DEQ", "OPTNET"):
        assert row["iterations"] > 1  # Anderson / the interior point iterate
    if method == "DAG":
        assert row["largest_module"] <= 1 and row["modules"] == 0


def test_deq_and_optnet_are_not_the_nm_model():
    """Without the per-epoch rate decay the old DEQ row (NMs solved as one
    whole-graph fixed point) reproduced NMs exactly; the real DEQ and OPTNET
    are other models: other training losses and parameter counts."""
    flat = Settings(epochs=2, patience=None, lr_scaling=False)
    rows = {m: ex.run_cell(m, "iris", 8, 0, flat) for m in ("NMs", "DEQ", "OPTNET")}
    assert all(math.isfinite(r["error"]) and r["status"] == "ok" for r in rows.values())
    for m in ("DEQ", "OPTNET"):
        assert rows[m]["train_loss"] != pytest.approx(rows["NMs"]["train_loss"], rel=1e-6)
        assert rows[m]["edges"] != rows["NMs"]["edges"]


@pytest.mark.parametrize("method", ["NN", "NMs", "DEQ", "OPTNET"])
def test_tiny_budget_is_over_time(method):
    row = ex.run_cell(method, "iris", 8, 0, Settings(epochs=50, time_budget=1e-9))
    assert row["status"] == "over time"
    assert row["epochs"] <= 1


def test_grid_and_bad_arguments():
    cells = ex.grid(["iris"], [4, 8], [0, 1], ex.METHODS)
    assert len(cells) == 2 * 2 * 7 and {c.method for c in cells} == set(ex.METHODS)
    assert cells[0] == Cell("iris", "NN", 4, 0)
    for kwargs, match in [(dict(datasets=["mnist"]), "datasets"), (dict(nodes=[0]), "nodes"),
                          (dict(seeds=[-1]), "seeds"), (dict(methods=["X"]), "method")]:
        args = {**dict(datasets=["iris"], nodes=[4], seeds=[0], methods=["NN"]), **kwargs}
        with pytest.raises(ValueError, match=match):
            ex.grid(**args)
    with pytest.raises(ValueError, match="time_budget"):
        Settings(time_budget=0)
    with pytest.raises(ValueError, match="epochs"):
        Settings(epochs=0)
    with pytest.raises(ValueError, match="n_jobs"):
        ex.run_sweep([], "unused.csv", n_jobs=0)


# --------------------------------------------------------------------------- resumability
def fake_row(cell, settings, error=0.25, status="ok"):
    return {**dict.fromkeys(COLUMNS, ""), **cell._asdict(), "status": status, "error": error,
            "val_error": error, "train_loss": 1.0, "epochs": 2, "seconds": 0.01,
            "iterations": 0.0, "residual": 0.0, "edges": 1, "modules": 0, "largest_module": 0,
            "lr": 0.05, "settings": settings.fingerprint(),
            "finished_at": f"t{fake_row.clock}", "message": ""}


fake_row.clock = 0


class Counting:
    """A fake runner: counts calls, raises ``fail`` on the call number ``at``."""

    def __init__(self, at=None, fail=KeyboardInterrupt, bad=()):
        self.calls, self.at, self.fail, self.bad = [], at, fail, set(bad)

    def __call__(self, cell, settings, data_paths):
        cell = Cell(*cell)
        if self.at is not None and len(self.calls) == self.at:
            raise self.fail("simulated crash")
        if cell in self.bad:
            raise RuntimeError(f"broken cell {cell}")
        self.calls.append(cell)
        fake_row.clock += 1
        return fake_row(cell, settings, error=0.1 * cell.seed + 0.01 * cell.nodes)


def test_interrupted_sweep_resumes_without_redoing_or_losing_runs(tmp_path):
    path = tmp_path / "runs.csv"
    cells = ex.grid(["iris", "wine"], [4, 8], [0, 1], ["NN", "NMs"])  # 16 cells
    first = Counting(at=5)
    with pytest.raises(KeyboardInterrupt):
        ex.run_sweep(cells, path, TINY, runner=first)
    before = ex.read_runs(path)
    assert [Cell(r["dataset"], r["method"], r["nodes"], r["seed"]) for r in before] \
        == first.calls == cells[:5]
    second = Counting()
    res = ex.run_sweep(cells, path, TINY, runner=second)
    assert second.calls == cells[5:]  # nothing finished is recomputed
    assert (res.ran, res.skipped) == (11, 5)
    after = ex.read_runs(path)
    assert len(after) == len(cells) and after[:5] == before  # nothing lost or rewritten
    assert [r["finished_at"] for r in res.rows] == [r["finished_at"] for r in after]
    third = Counting()
    assert ex.run_sweep(cells, path, TINY, runner=third).ran == 0 and third.calls == []


def test_failed_cells_are_retried_and_truncated_lines_repaired(tmp_path):
    path = tmp_path / "runs.csv"
    cells = ex.grid(["iris"], [4], [0, 1, 2], ["NN"])
    broken = Counting(bad=[cells[1]])
    with pytest.raises(ex.SweepError, match="1 run"):
        ex.run_sweep(cells, path, TINY, runner=broken)
    assert len(ex.read_runs(path)) == 2
    with open(path, "a") as fh:  # a crash in the middle of writing a line
        fh.write("iris,NN,4,1,ok,0.")
    retry = Counting()
    res = ex.run_sweep(cells, path, TINY, runner=retry)
    assert retry.calls == [cells[1]] and len(ex.read_runs(path)) == 3 == len(res.rows)
    with pytest.raises(ValueError, match="other settings"):
        ex.run_sweep(cells, path, Settings(epochs=3), runner=Counting())


def test_progress_reports_start_and_every_run(tmp_path):
    seen = []
    cells = ex.grid(["iris"], [4], [0, 1], ["NN", "DAG"])
    ex.run_sweep(cells, tmp_path / "r.csv", TINY, runner=Counting(),
                 progress=lambda row, done, total: seen.append((row is None, done, total)))
    assert seen == [(True, 0, 4)] + [(False, k, 4) for k in range(1, 5)]


def test_local_processes(tmp_path):
    path = tmp_path / "runs.csv"
    cells = ex.grid(["iris"], [6], [0, 1], ["NN"])
    res = ex.run_sweep(cells, path, TINY, n_jobs=2)
    assert res.ran == 2 and {r["status"] for r in res.rows} == {"ok"}
    serial = ex.run_cell("NN", "iris", 6, 1, TINY)
    assert res.rows[1]["error"] == serial["error"]  # seeded: the same run anywhere


def test_dask_cluster_sweep_resumes(tmp_path):
    dask = pytest.importorskip("dask", reason="the Dask executor needs the 'dist' extra")
    distributed = pytest.importorskip("dask.distributed",
                                      reason="the Dask executor needs the 'dist' extra")

    dask_config = dask.config.set({"temporary-directory": str(tmp_path / "dask")})
    path = tmp_path / "runs.csv"
    first_cells = ex.grid(["iris"], [6], [0], ["NN", "DAG"])
    all_cells = ex.grid(["iris"], [6], [0, 1], ["NN", "DAG"])
    with dask_config, distributed.LocalCluster(n_workers=1, threads_per_worker=1,
                                               processes=False, dashboard_address=None) as cluster:
        res1 = ex.run_sweep(first_cells, path, TINY, scheduler=cluster.scheduler_address)
        assert res1.ran == 2
        before = ex.read_runs(path)
        with distributed.Client(cluster) as client:  # an existing Client works too
            res2 = ex.run_sweep(all_cells, path, TINY, scheduler=client)
            # interrupted on the client side after the first new run finishes
            more = ex.grid(["iris"], [6], [0, 1, 2, 3], ["NN", "DAG"])

            def interrupt(row, done, total):
                if done == 1:
                    raise KeyboardInterrupt

            with pytest.raises(KeyboardInterrupt):
                ex.run_sweep(more, path, TINY, scheduler=client, progress=interrupt)
            kept = ex.read_runs(path)
            res3 = ex.run_sweep(more, path, TINY, scheduler=client)
    assert (res2.ran, res2.skipped) == (2, 2)
    assert len(kept) >= 5 and (res3.ran, res3.skipped) == (8 - len(kept), len(kept))
    assert ex.read_runs(path)[:len(kept)] == kept and len(ex.read_runs(path)) == 8
    rows = ex.read_runs(path)
    assert len(rows) == 8 and rows[:2] == before  # kept as they were
    assert [r["finished_at"] for r in res2.rows if r["seed"] == 0] \
        == [r["finished_at"] for r in res1.rows]  # the first runs were not redone
    assert {r["status"] for r in rows} == {"ok"}


# --------------------------------------------------------------------------- summary
def test_summary_and_markdown_table():
    s = TINY
    rows = [fake_row(Cell("iris", "NN", 4, k), s, error=e) for k, e in enumerate((0.1, 0.2, 0.3))]
    rows += [fake_row(Cell("iris", "DEQ", 4, 0), s, status="over time"),
             fake_row(Cell("iris", "DEQ", 4, 1), s),
             fake_row(Cell("iris", "DAG", 4, 0), s, status="diverged", error=math.nan),
             fake_row(Cell("iris", "DAG", 4, 1), s, error=0.5),
             fake_row(Cell("iris", "NN", 8, 0), s, error=0.125)]
    summ = {(x["method"], x["nodes"]): x for x in ex.summarize(rows)}
    assert summ["NN", 4]["n"] == 3 and summ["NN", 4]["mean"] == pytest.approx(0.2)
    assert summ["NN", 4]["std"] == pytest.approx(0.1)  # ddof = 1
    assert summ["NN", 8]["std"] == 0.0 and summ["DEQ", 4]["status"] == "over time"
    assert summ["DAG", 4]["counts"] == {"ok": 1, "over time": 0, "diverged": 1}
    text = ex.markdown_table(rows, methods=("NN", "DEQ", "DAG", "OPTNET", "NMs"))
    assert text.splitlines() == [
        "### iris (test error rate, mean ± std over 3 seeds)",
        "",
        "| Methods | 4 | 8 |",
        "|---|---|---|",
        "| NN | 0.200 ± 0.100 | 0.125 ± 0.000 |",
        "| DEQ | over time |  |",
        "| DAG | diverged (1/2) |  |",
        "| OPTNET |  |  |",
        "| NMs |  |  |",
    ]


# --------------------------------------------------------------------------- command
def test_table1_command(tmp_path, capsys):
    from refimpl.commands import table1

    parser = argparse.ArgumentParser()
    table1.register(parser.add_subparsers(), "table1", "help")
    argv = ["table1", "--datasets", "iris", "--nodes", "6", "--seeds", "0", "--epochs", "2",
            "--methods", "NN", "DAG", "OPTNET", "--jobs", "1", "--out", str(tmp_path)]
    args = parser.parse_args(argv)
    assert table1.run(args) == 0
    out = capsys.readouterr().out
    assert "3 runs in" in out and "| OPTNET | 0." in out
    md = (tmp_path / "table1.md").read_text()
    assert "| NN | 0." in md and "refimpl table1 --datasets iris --nodes 6" in md
    assert len(ex.read_runs(tmp_path / "runs.csv")) == 3
    assert table1.run(parser.parse_args(argv)) == 0  # resumed: nothing to do
    assert "0 runs in" in capsys.readouterr().out
    other = [("3" if a == "2" else a) for a in argv]  # --epochs 3: other settings
    assert table1.run(parser.parse_args(other)) == 2
    assert "other settings" in capsys.readouterr().err


def test_table1_data_path_names_only_table1_data_sets(capsys):
    """--data-path and --help offer only the data sets a Table 1 grid accepts (the
    paper's), not the supplement's, which :func:`refimpl.experiments.grid` refuses."""
    from refimpl.commands import table1
    from refimpl.datasets import PAPER_DATASETS, SUPPLEMENT_DATASETS

    parser = argparse.ArgumentParser()
    table1.register(parser.add_subparsers(), "table1", "help")
    assert parser.parse_args(["table1", "--data-path", "codon=/x"]).data_path == [("codon", "/x")]
    for name in SUPPLEMENT_DATASETS:
        assert name not in PAPER_DATASETS
        with pytest.raises(SystemExit):
            parser.parse_args(["table1", "--data-path", f"{name}=/x"])
        with pytest.raises(ValueError, match="unknown data set"):
            ex.grid([name], [4], [0])
    capsys.readouterr()
    with pytest.raises(SystemExit):
        parser.parse_args(["table1", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert not any(name in out for name in SUPPLEMENT_DATASETS), out


def test_run_cell_reports_a_diverged_nm_run_as_diverged(monkeypatch):
    """A TrainingDivergedError of the NM trainer (a FloatingPointError) becomes Table 1's
    'diverged' status with its message, not a failed run."""
    from refimpl.train import Trainer, TrainingDivergedError

    def diverge(self, X, y):
        raise TrainingDivergedError("epoch 1: the training loss became nan (not finite)")

    monkeypatch.setattr(Trainer, "train_batch", diverge)
    row = ex.run_cell("NMs", "iris", 6, 0, TINY)
    assert row["status"] == "diverged" and "became nan" in row["message"], row


def test_table1_command_refuses_bad_jobs_before_creating_out(tmp_path, capsys):
    from refimpl.commands import table1

    parser = argparse.ArgumentParser()
    table1.register(parser.add_subparsers(), "table1", "help")
    out = tmp_path / "t1"
    args = parser.parse_args(["table1", "--datasets", "iris", "--jobs", "0", "--out", str(out)])
    assert table1.run(args) == 2
    assert "--jobs: expected a positive integer or -1" in capsys.readouterr().err
    assert not out.exists()
