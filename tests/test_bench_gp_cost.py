"""The Table 11 benchmark's wiring (no timing asserted): the multi-layer connected GP it
times is the MLP it compares with (S-Thm. 1), so both end at the same training loss."""
import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("sklearn", reason="the benchmark's default data need the 'data' extra")


def test_gp_cost_benchmark_trains_the_same_model_twice(capsys):
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gp_cost.py"
    spec = importlib.util.spec_from_file_location("bench_gp_cost", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--dataset", "iris", "--widths", "5,3", "--epochs", "2", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "ratio GP / MLP" in out and "multi-layer connected GP" in out
    assert "warning" not in out, out
    gp, mlp = (line.split("|")[5].strip() for line in out.splitlines()
               if line.startswith(("| multi-layer", "| MLP")))
    assert float(gp) == pytest.approx(float(mlp), rel=1e-6, abs=1e-9)
