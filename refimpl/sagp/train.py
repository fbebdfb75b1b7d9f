"""The SAGP training loop (S-Alg. 1) and its result."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..loop import CallbackHook, EarlyStopping, run_epochs
from ..optim import Optimizer
from .config import SAGPConfig
from ..validation import check_int, check_labels, check_samples
from .loss import evaluate, sagp_loss_and_grad
from .model import SAGPModel, init_sagp, synapse_count
from .rules import apply_rules

__all__ = ["SAGPResult", "train_sagp"]


@dataclass
class SAGPResult:
    """Outcome of :func:`train_sagp`.

    Attributes
    ----------
    model : SAGPModel
        After the last epoch.
    best_model : SAGPModel
        At the epoch of lowest validation error (the last one without validation data).
    best_epoch : int
    history : list of dict
        One record per epoch: ``epoch``, ``n_hidden`` (|H|), ``n_grown`` (n),
        ``grown``, ``removed`` (counts this epoch), ``grown_ids``, ``removed_ids``,
        ``synapses``, ``task_loss``/``aux_loss`` (means over the epoch's mini-batches),
        ``train_loss``, ``train_error``, ``val_loss``, ``val_error``, ``test_loss``,
        ``test_error`` (S-Alg. 2 after the epoch; NaN when the split is missing).
    config : SAGPConfig
    """

    model: SAGPModel
    best_model: SAGPModel
    best_epoch: int
    history: list
    config: SAGPConfig


def train_sagp(
    X,
    y,
    *,
    config: SAGPConfig | None = None,
    epochs: int = 100,
    seed: int = 0,
    n_classes: int | None = None,
    validation: tuple | None = None,
    test: tuple | None = None,
    callback: Callable[[dict], None] | None = None,
) -> SAGPResult:
    """Train a self-assembling graph perceptron (S-Alg. 1).

    Implements S-Alg. 1: per epoch, soft/hard masks and the apoptosis and growth rules
    (lines 5-11), then shuffled mini-batches of forward with hard masks, TaskLoss +
    AuxLoss and an Adam step on the explicit gradients (lines 12-21); after each epoch
    the network is evaluated by S-Alg. 2 on the given splits and a history record is
    appended (and passed to ``callback``, which is how a caller shows progress).

    Parameters
    ----------
    X : (n, |I|) array
    y : (n,) int array
        Class labels in [0, n_classes).
    config : SAGPConfig, optional
        Defaults to :class:`SAGPConfig()` (Table 2).
    epochs : int
        The "until convergent" of line 22 is a fixed epoch budget.
    seed : int
        Seeds ``np.random.default_rng`` (initialization, shuffling, dropout).
    n_classes : int, optional
        |O|; defaults to ``y.max() + 1``.
    validation, test : (X, y), optional
    callback : callable, optional
        Called with each epoch's record.

    Returns
    -------
    SAGPResult

    Raises
    ------
    ValueError
        On bad shapes, labels or ``epochs``.
    """
    config = SAGPConfig() if config is None else config
    if not isinstance(config, SAGPConfig):
        raise ValueError(f"config: expected a SAGPConfig, got {type(config).__name__}")
    epochs = check_int(epochs, "epochs")
    seed = check_int(seed, "seed")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X: expected a 2-D (n, features) array, got shape {X.shape}")
    yy = np.asarray(y)
    if n_classes is None:
        if yy.size == 0 or not np.issubdtype(yy.dtype, np.integer):
            raise ValueError("y: expected non-empty integer class labels")
        n_classes = int(yy.max()) + 1
    X = check_samples(X, X.shape[1])
    y = check_labels(yy, X.shape[0], n_classes)
    splits = {}
    for name, split in (("val", validation), ("test", test)):
        if split is not None:
            Xs = check_samples(split[0], X.shape[1], name=f"{name} X")
            splits[name] = (Xs, check_labels(split[1], Xs.shape[0], n_classes, name=f"{name} y"))

    learner = _SAGPLearner(X, y, n_classes, config, seed, splits)
    hooks = [] if callback is None else [CallbackHook(lambda _, rec: callback(rec))]
    run_epochs(learner, X, y, epochs, batch_size=config.batch_size, hooks=hooks)
    best = learner.stopping
    best_model = best.best if best.best is not None else learner.model.copy()
    return SAGPResult(learner.model, best_model, best.best_epoch, learner.history, config)


class _SAGPLearner:
    """S-Alg. 1 as a learner of :func:`refimpl.loop.run_epochs`: the rules open each epoch
    (lines 5-11), each mini-batch is an Adam step on TaskLoss + AuxLoss (lines 12-21),
    and S-Alg. 2 on the splits closes it."""

    def __init__(self, X, y, n_classes, config, seed, splits):
        self.X, self.y, self.config, self.splits = X, y, config, splits
        self.rng = np.random.default_rng(seed)
        self.model = init_sagp(X.shape[1], n_classes, config, self.rng)
        self.opt = Optimizer("adam", config.lr)
        self.stopping = EarlyStopping()  # best = lowest validation error (else: the last epoch)
        self.history: list[dict] = []
        self.epoch = 0
        self.quiet = 0

    def begin_epoch(self):
        model, lay = self.model, self.model.layout
        self.removed, self.grown, self.quiet = apply_rules(model, self.config, self.quiet)  # S-Alg. 1 lines 5-11
        self.decay = lay.trainable & model.alive[:, None] & model.alive[None, :]
        self.decay_b = model.alive.copy()
        self.decay_b[lay.inputs] = False
        self.task_sum = self.aux_sum = 0.0
        self.n_batches = 0

    def train_batch(self, Xb, yb):
        config, model = self.config, self.model
        g = sagp_loss_and_grad(model, Xb, yb, gamma1=config.gamma1, gamma2=config.gamma2,
                               competition=config.competition, training=True,
                               dropout=config.dropout, rng=self.rng)
        params = {
            "A": model.A,
            "b": model.b,
            "neuron_logits": model.neuron_logits,
            "synapse_logits": model.synapse_logits,
        }
        grads = {"A": g.A, "b": g.b, "neuron_logits": g.neuron_logits,
                 "synapse_logits": g.synapse_logits}
        if config.weight_decay:  # L2 on the current topology; skipped at 0 (the default)
            grads["A"] = g.A + config.weight_decay * model.A * self.decay
            grads["b"] = g.b + config.weight_decay * model.b * self.decay_b
        if model.bn is not None:
            params["gamma"], params["beta"] = model.bn.gamma, model.bn.beta
            grads["gamma"], grads["beta"] = g.gamma, g.beta
            model.bn.running_mean[...] = g.running_mean
            model.bn.running_var[...] = g.running_var
        self.opt.step(params, grads)  # S-Alg. 1 line 21 (in place)
        self.task_sum += g.task_loss
        self.aux_sum += g.aux_loss
        self.n_batches += 1
        return g.loss

    def end_epoch(self, t0):
        model, lay = self.model, self.model.layout
        self.epoch += 1
        rec = {
            "epoch": self.epoch,
            "n_hidden": int(model.alive[lay.hidden].sum()),
            "n_grown": int(model.n_grown),
            "grown": len(self.grown),
            "removed": len(self.removed),
            "grown_ids": self.grown,
            "removed_ids": self.removed,
            "synapses": synapse_count(model),
            "task_loss": self.task_sum / max(self.n_batches, 1),
            "aux_loss": self.aux_sum / max(self.n_batches, 1),
        }
        rec["train_loss"], rec["train_error"] = evaluate(model, self.X, self.y)
        for name in ("val", "test"):
            if name in self.splits:
                rec[f"{name}_loss"], rec[f"{name}_error"] = evaluate(model, *self.splits[name])
            else:
                rec[f"{name}_loss"] = rec[f"{name}_error"] = float("nan")
        self.history.append(rec)
        score = rec["val_error"] if "val" in self.splits else -self.epoch
        return rec, score, model.copy


