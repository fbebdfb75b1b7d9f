"""The one epoch loop (refimpl.loop): early stopping, the order of the hooks, the shuffle."""
import numpy as np
import pytest

from refimpl.experiments.cell import TimeBudget, TimeBudgetExceeded
from refimpl.loop import CallbackHook, EarlyStopping, Hook, run_epochs


def test_early_stopping_keeps_the_first_best_and_counts_patience():
    es = EarlyStopping(patience=2)
    scores = [3.0, 2.0, 2.0, 2.5, 1.0]
    stops = [es.update(e, s, lambda e=e: f"params of {e}") for e, s in enumerate(scores, 1)]
    # epoch 2 is best; 3 ties (not better) and 4 is worse: 2 stale epochs stop at epoch 4
    assert stops == [False, False, False, True, False]
    assert es.best_epoch == 5 and es.best == "params of 5" and es.best_score == 1.0
    assert EarlyStopping().update(1, None, lambda: 1 / 0) is False  # no score: no snapshot


class _Learner:
    """A learner that records what the loop asks of it."""

    def __init__(self, scores):
        self.rng = np.random.default_rng(0)
        self.stopping = EarlyStopping(patience=None)
        self.epoch, self.scores, self.log, self.batches = 0, scores, [], []

    def begin_epoch(self):
        self.log.append("begin")

    def train_batch(self, X, y):
        self.batches.append(y.copy())
        self.log.append("batch")
        return float(y.sum())

    def end_epoch(self, t0):
        self.epoch += 1
        self.log.append("end")
        return {"epoch": self.epoch}, self.scores[self.epoch - 1], lambda: self.epoch


class _Recorder(Hook):
    def __init__(self, log):
        self.log = log

    def before_batch(self, learner):
        self.log.append("before")

    def after_batch(self, learner, result):
        self.log.append(f"after {result:g}")

    def after_epoch(self, learner, record):
        self.log.append(f"epoch {record['epoch']}")
        return record["epoch"] == 2


def test_run_epochs_order_shuffle_and_stop():
    X, y = np.zeros((5, 1)), np.arange(5)
    lr = _Learner([1.0, 0.5, 0.2])
    run_epochs(lr, X, y, 3, batch_size=2, hooks=[_Recorder(lr.log)])
    assert lr.log[:9] == ["begin", "before", "batch", f"after {lr.batches[0].sum():g}",
                          "before", "batch", f"after {lr.batches[1].sum():g}",
                          "before", "batch"]
    assert lr.log.count("end") == 2 and lr.log[-1] == "epoch 2"  # the hook stopped it
    # each epoch is a permutation of the rows drawn from the learner's generator
    rng = np.random.default_rng(0)
    for e in range(2):
        np.testing.assert_array_equal(np.concatenate(lr.batches[3 * e:3 * e + 3]),
                                      rng.permutation(5))
    assert lr.stopping.best_epoch == 2


def test_callback_hook_and_time_budget():
    lr = _Learner([1.0, 1.0, 1.0])
    run_epochs(lr, np.zeros((2, 1)), np.arange(2), 3, batch_size=2,
               hooks=[CallbackHook(lambda learner, rec: rec["epoch"] >= 1)])
    assert lr.epoch == 1
    with pytest.raises(TimeBudgetExceeded):
        run_epochs(_Learner([1.0]), np.zeros((2, 1)), np.arange(2), 1, batch_size=1,
                   hooks=[TimeBudget(deadline=-np.inf)])

    class _Opt:
        lr = 1.0

    learner = _Learner([1.0])
    learner.opt = _Opt()
    assert TimeBudget(np.inf, lr_scale=0.1).after_epoch(learner, {}) is False
    assert learner.opt.lr == pytest.approx(0.1, rel=0, abs=0)
