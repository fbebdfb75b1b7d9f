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


def test_bench_training_batches_quick(capsys):
    """``--batches N``: the fastest run's first N mini-batches, the median of the rest
    (labelled with the epoch's batch count) and the end of the epoch."""
    import math

    from refimpl.datasets import load_builtin

    assert main(["bench", "training", "--quick", "--reg", "nm", "--batches", "2"]) == 0
    out = capsys.readouterr().out
    assert "p = 40, nm: the fastest run's epoch by mini-batch" in out
    assert "| batch | time | solves | dL/dK | update | pruning | floor | time / floor |" in out
    first = [ln.split("|")[1].strip() for ln in out.splitlines()
             if ln.startswith("| ") and "x |" in ln and not ln.startswith("| 40 |")]
    n = math.ceil(load_builtin("digits", seed=0).X_train.shape[0] / 32)
    assert first == ["0", "1", f"median of 2-{n - 1}"]
    assert sum(ln.startswith("| end of epoch |") for ln in out.splitlines()) == 1
