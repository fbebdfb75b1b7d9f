"""One epoch loop for every trainer, with early stopping and explicit hooks (DESIGN.md sec. 6).

:func:`run_epochs` is the loop of Alg. 2 (and of S-Alg. 1 and the NN baseline): each
epoch shuffles the rows with the trainer's seeded generator, runs the mini-batches,
lets the trainer close the epoch (validation, the history record), updates the
:class:`EarlyStopping` state and calls the hooks.  A trainer ("learner") provides

- ``epoch`` (int), ``rng`` (numpy Generator), ``stopping`` (:class:`EarlyStopping`);
- ``begin_epoch()``: before the shuffle (SAGP's self-assembly rules);
- ``train_batch(X, y)``: one mini-batch step;
- ``end_epoch(t0)``: increments ``epoch`` and returns ``(record, score, snapshot)``:
  the epoch's record, its validation score (None: no validation) and a function that
  copies the parameters to keep if the score is the best so far.

:class:`EpochTrainer` is the ``fit`` those trainers share (data checks, the epoch
target, the callback).  Hooks (:class:`Hook`) are called before and after every
mini-batch and after every epoch; an ``after_epoch`` returning True stops training.
The Table 1 time budget and the per-epoch learning-rate scaling are hooks
(:mod:`refimpl.experiments.cell`).
"""
from __future__ import annotations

import time

import numpy as np

from .validation import check_fit_data, check_int

__all__ = ["CallbackHook", "EarlyStopping", "EarlyStoppingAttributes", "EpochTrainer", "Hook",
           "run_epochs"]


class EarlyStopping:
    """Early stopping on a validation score (Alg. 2 with a validation split, DESIGN.md sec. 6).

    A strictly better (lower) score keeps a snapshot of the parameters (ties keep the
    earlier epoch); ``patience`` epochs without improvement stop training (None: never).

    Attributes
    ----------
    patience : int or None
    best : object or None
        The snapshot of the best epoch.
    best_score : float
        inf before the first scored epoch.
    best_epoch : int
        0 before the first scored epoch.
    stale : int
        Epochs since the best one.
    """

    def __init__(self, patience=None):
        self.patience = patience
        self.best = None
        self.best_score = np.inf
        self.best_epoch = 0
        self.stale = 0

    @property
    def stopped(self) -> bool:
        """Whether ``patience`` epochs without improvement have passed: the run is over
        (:meth:`EpochTrainer.fit` trains no more epochs; set ``stale = 0`` to go on)."""
        return self.patience is not None and self.stale >= self.patience

    def update(self, epoch, score, snapshot) -> bool:
        """Record epoch ``epoch``'s ``score`` (None: not scored); True when training should stop."""
        if score is None:
            return False
        if score < self.best_score:
            # the old snapshot is let go before the new one is taken, so that a learner
            # may write the new one into its memory when nobody else holds it
            # (refimpl.train.Trainer._snapshot); if taking it fails, there is no best
            self.best = None
            try:
                self.best = snapshot()
            except BaseException:
                self.best_score, self.best_epoch = np.inf, 0
                raise
            self.best_score, self.best_epoch, self.stale = score, epoch, 0
            return False
        self.stale += 1
        return self.stopped


class EarlyStoppingAttributes:
    """A trainer's early-stopping state under the names checkpoints and callers use
    (``best``, ``best_val``, ``best_epoch``, ``stale``), kept in ``self.stopping``, an
    :class:`EarlyStopping` (Alg. 2's validation split, DESIGN.md sec. 6)."""

    best = property(lambda self: self.stopping.best,
                    lambda self, v: setattr(self.stopping, "best", v))
    best_val = property(lambda self: self.stopping.best_score,
                        lambda self, v: setattr(self.stopping, "best_score", v))
    best_epoch = property(lambda self: self.stopping.best_epoch,
                          lambda self, v: setattr(self.stopping, "best_epoch", v))
    stale = property(lambda self: self.stopping.stale,
                     lambda self, v: setattr(self.stopping, "stale", v))


class EpochTrainer(EarlyStoppingAttributes):
    """What the trainers of Alg. 2 share (the NM ``Trainer``, the NN baseline, the DEQ and
    OPTNET layers): the early-stopping attributes and :meth:`fit` (DESIGN.md sec. 6).

    A subclass has ``config`` (``epochs``, ``batch_size``), ``n_in``, ``n_out``,
    ``epoch``, ``history`` and the learner methods of :func:`run_epochs`; its
    ``end_epoch`` reads ``self._n`` (the number of training rows) and ``self._val``
    (the validation split, ``(None, None)`` without one).
    """

    def fit(self, X, y, X_val=None, y_val=None, *, epochs=None, callback=None, hooks=()):
        """Run epochs of Alg. 2 (lines 3-14; until ``config.epochs`` in total, or
        ``epochs`` more) with :func:`run_epochs`, after checking the data.
        ``callback(trainer, record)`` is called after each epoch; returning True stops
        training.  ``hooks``: more :class:`Hook` objects (Table 1's time budget).
        A run that early stopping ended (:attr:`EarlyStopping.stopped`, also one loaded
        from its checkpoint) trains no more epochs, as the uninterrupted run did not.
        Returns the history."""
        c = self.config
        if epochs is not None:
            epochs = check_int(epochs, "epochs", 0)
        X, y, X_val, y_val = check_fit_data(X, y, X_val, y_val, self.n_in, self.n_out)
        target = c.epochs if epochs is None else self.epoch + epochs
        if self.stopping.stopped:
            target = self.epoch
        self._n, self._val = X.shape[0], (X_val, y_val)
        hooks = [*hooks, *([CallbackHook(callback)] if callback is not None else [])]
        run_epochs(self, X, y, max(target - self.epoch, 0), batch_size=c.batch_size,
                   hooks=hooks)
        return self.history


class Hook:
    """Explicit hook points of :func:`run_epochs` (no-ops here; Alg. 2's loop, DESIGN.md sec. 6).

    ``keeps_params = True`` in a subclass promises that its ``before_batch`` and
    ``after_batch`` never change the learner's parameters (they only look, or raise to
    stop): the learner may then carry work done on the parameters across the hook
    (:class:`refimpl.train.Trainer` reuses its update pass's scan of K for the next
    pruning, Alg. 2 line 5).  The promise covers the methods of the class that declares
    it and of its bases: a subclass that overrides either method again must declare it
    again, and methods set on an instance are never covered.  Any other per-batch
    method is taken to change the parameters."""

    keeps_params = False

    def before_batch(self, learner):
        """Before every mini-batch (may raise to stop at once)."""

    def after_batch(self, learner, result):
        """After every mini-batch, with what ``train_batch`` returned."""

    def after_epoch(self, learner, record) -> bool:
        """After every epoch, with its record; True stops training."""
        return False


class CallbackHook(Hook):
    """``fn(learner, record)`` after every epoch; a true return stops training (DESIGN.md sec. 6)."""

    def __init__(self, fn):
        self.fn = fn

    def after_epoch(self, learner, record) -> bool:
        return bool(self.fn(learner, record))


def run_epochs(learner, X, y, n_epochs, *, batch_size, hooks=()):
    """Run up to ``n_epochs`` epochs of mini-batch training (Alg. 2 lines 3-14, S-Alg. 1).

    Each epoch: ``learner.begin_epoch()``, a permutation of the rows drawn from
    ``learner.rng``, mini-batches of ``batch_size`` rows (``before_batch`` hooks,
    ``learner.train_batch``, ``after_batch`` hooks), ``learner.end_epoch``, the
    early-stopping update of ``learner.stopping`` and the ``after_epoch`` hooks.
    Stops early when the early stopping or a hook says so.

    Parameters
    ----------
    learner : object
        See the module docstring.
    X : (n, features) array
    y : (n,) array
    n_epochs : int
    batch_size : int
    hooks : sequence of Hook
    """
    n = X.shape[0]
    for _ in range(int(n_epochs)):
        t0 = time.perf_counter()
        learner.begin_epoch()
        order = learner.rng.permutation(n)
        for s in range(0, n, batch_size):
            for h in hooks:
                h.before_batch(learner)
            idx = order[s:s + batch_size]
            result = learner.train_batch(X[idx], y[idx])
            for h in hooks:
                h.after_batch(learner, result)
        record, score, snapshot = learner.end_epoch(t0)
        stop = learner.stopping.update(learner.epoch, score, snapshot)
        for h in hooks:
            if h.after_epoch(learner, record):
                stop = True
        if stop:
            break
