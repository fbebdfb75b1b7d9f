"""`refimpl bench training --quick` runs and prints its table (no timing assertions)."""
from refimpl.cli import main


def test_bench_training_quick(capsys):
    assert main(["bench", "training", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "| p | reg | epoch | solves | dL/dK |" in out
    lines = [ln for ln in out.splitlines() if ln.startswith("| 40 |")]
    assert [ln.split("|")[2].strip() for ln in lines] == ["none", "nm"]


def test_bench_training_dense_grad_quick(capsys):
    assert main(["bench", "training", "--quick", "--reg", "nm", "--dense-grad",
                 "--separate"]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("| 40 |")]
    assert [ln.split("|")[2].strip() for ln in lines] == [
        "nm", "nm (dense dL/dK)", "nm (separate)"]


def test_bench_training_fused_update_quick(capsys):
    assert main(["bench", "training", "--quick", "--fused-update"]) == 0
    out = capsys.readouterr().out
    assert "| p | optimizer | fused | NumPy | NumPy / fused |" in out
    assert [ln.split("|")[2].strip() for ln in out.splitlines() if ln.startswith("| 40 |")] \
        == ["sgd", "adam"]


def test_bench_training_passes_quick(capsys):
    assert main(["bench", "training", "--quick", "--passes"]) == 0
    out = capsys.readouterr().out
    assert "| p | pass | time | passes over K |" in out
    assert sum(ln.startswith("| 200 |") for ln in out.splitlines()) == 9
