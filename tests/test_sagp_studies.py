"""The supplement's SAGP studies (Sec. 4.1 stages, Table 9 ablations): hand-made histories
for the stage rule and the metrics, and a tiny ablation run."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from refimpl import sagp_studies as St
from refimpl.datasets import teacher_data
from refimpl.sagp import SAGPConfig, train_sagp


@pytest.mark.parametrize("h, stages", [
    ([1, 2, 3, 5, 5, 4, 3, 3, 3], (4, 7)),   # grow, prune, settle at epoch 7
    ([1, 2, 3, 4], (4, 5)),                  # only grows: stage 3 not reached
    ([3, 3, 3], (1, 2)),                     # constant
    ([1, 4, 2, 4, 4], (2, 4)),               # first maximum ends stage 1
])
def test_assembly_stages_hand_examples(h, stages):
    assert St.assembly_stages(h) == stages


def test_run_metrics_reads_best_and_last_epochs():
    hist = [dict(epoch=e, n_hidden=h, synapses=s, test_error=t)
            for e, h, s, t in ((1, 2, 40, 0.5), (2, 5, 90, 0.25), (3, 4, 70, 0.3))]
    m = St.run_metrics(SimpleNamespace(history=hist, best_epoch=2), 3 * 2**20)
    assert m == {"best_epoch": 2, "best_n_hidden": 5, "best_synapses": 90, "best_f1": 0.75,
                 "last_n_hidden": 4, "last_synapses": 70, "last_f1": pytest.approx(0.7),
                 "peak_mib": 3.0}
    with pytest.raises(ValueError, match="no epochs"):
        St.run_metrics(SimpleNamespace(history=[], best_epoch=0))


def test_best_epoch_without_validation_is_the_last():
    """No validation split: the best epoch is the last one (train_sagp scores such an
    epoch by -epoch; a hand-made result with best_epoch 0 reads the last epoch too, not
    the first)."""
    from refimpl.sagp import best_and_last

    hist = [dict(epoch=e, n_hidden=h, synapses=s, test_error=t, val_error=float("nan"))
            for e, h, s, t in ((1, 2, 40, 0.5), (2, 5, 90, 0.25), (3, 4, 70, 0.3))]
    m = best_and_last(SimpleNamespace(history=hist, best_epoch=0))
    assert (m["best_epoch"], m["best_n_hidden"], m["best_synapses"]) == (3, 4, 70)
    assert m["best_error"] == m["last_error"] == 0.3
    assert St.run_metrics(SimpleNamespace(history=hist, best_epoch=0))["best_epoch"] == 3
    data = teacher_data(60, 4, 2, seed=2)
    res = train_sagp(data.X_train, data.y_train, config=SAGPConfig(h_max=4), epochs=2,
                     seed=0, test=(data.X_test, data.y_test))
    assert res.best_epoch == 2 and best_and_last(res)["best_epoch"] == 2


def test_tiny_ablation_study_and_table():
    data = teacher_data(120, 6, 3, seed=1)
    cfg = SAGPConfig(h_max=4, patience=1)
    rows = St.ablation_study(data, ablations=("none", "no-growth"), seeds=(0, 1), epochs=2,
                             config=cfg)
    assert [r.ablation for r in rows] == ["none", "no-growth"]
    for r in rows:
        assert [m["seed"] for m in r.runs] == [0, 1]
        for m in r.runs:
            assert 0.0 <= m["best_f1"] <= 1.0 and 0.0 <= m["last_f1"] <= 1.0
            assert m["peak_mib"] > 0.0 and 1 <= m["best_epoch"] <= 2
    # growth: one neuron at the start, one more per epoch (patience 1); w/o growth: |H|max
    assert [m["last_n_hidden"] for m in rows[0].runs] == [3, 3]
    assert rows[1].runs[0]["best_n_hidden"] <= 4 and rows[1].runs[0]["last_n_hidden"] >= 3
    md = St.ablation_markdown(rows, title="T")
    assert "| | | SAGP | SAGP w/o Growth |" in md and "Peak memory" in md
    assert md.count("| F1-micro |") == 2 and "Mean over 2 seed(s)" in md
    with pytest.raises(ValueError, match="ablations"):
        St.ablation_study(data, ablations=("no-dropout",), seeds=(0,), epochs=1)
