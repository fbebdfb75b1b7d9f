"""The SAGP training loop (S-Alg. 1) and its result."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .config import SAGPConfig
from .loss import _check_X, _check_y, evaluate, sagp_loss_and_grad
from .model import SAGPModel, init_sagp, synapse_count
from .rules import apply_rules

__all__ = ["SAGPResult", "train_sagp"]


class _Adam:
    """Adam (Kingma & Ba 2015) with PyTorch's defaults and L2 weight decay in the gradient."""

    def __init__(self, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.lr, self.b1, self.b2, self.eps = lr, betas[0], betas[1], eps
        self.t = 0
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        c1 = 1.0 - self.b1**self.t
        c2 = 1.0 - self.b2**self.t
        for k, g in grads.items():
            if k not in self.m:
                self.m[k] = np.zeros_like(g)
                self.v[k] = np.zeros_like(g)
            m, v = self.m[k], self.v[k]
            m *= self.b1
            m += (1.0 - self.b1) * g
            v *= self.b2
            v += (1.0 - self.b2) * g * g
            params[k] -= self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)


# --------------------------------------------------------------------------- training
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
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
        raise ValueError(f"epochs: expected an integer >= 0, got {epochs!r}")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X: expected a 2-D (n, features) array, got shape {X.shape}")
    yy = np.asarray(y)
    if n_classes is None:
        if yy.size == 0 or not np.issubdtype(yy.dtype, np.integer):
            raise ValueError("y: expected non-empty integer class labels")
        n_classes = int(yy.max()) + 1
    X = _check_X(X, X.shape[1])
    y = _check_y(yy, X.shape[0], n_classes)
    splits = {}
    for name, split in (("val", validation), ("test", test)):
        if split is not None:
            Xs = _check_X(split[0], X.shape[1], name=f"{name} X")
            splits[name] = (Xs, _check_y(split[1], Xs.shape[0], n_classes, name=f"{name} y"))

    rng = np.random.default_rng(seed)
    model = init_sagp(X.shape[1], n_classes, config, rng)
    lay = model.layout
    opt = _Adam(config.lr)
    history: list[dict] = []
    best_model, best_epoch, best_err = model.copy(), 0, np.inf
    quiet = 0
    n = X.shape[0]
    for epoch in range(1, epochs + 1):
        removed, grown, quiet = apply_rules(model, config, quiet)  # S-Alg. 1 lines 5-11
        decay = lay.trainable & model.alive[:, None] & model.alive[None, :]
        decay_b = model.alive.copy()
        decay_b[lay.inputs] = False
        perm = rng.permutation(n)
        task_sum = aux_sum = 0.0
        n_batches = 0
        for s in range(0, n, config.batch_size):
            rows = perm[s : s + config.batch_size]
            g = sagp_loss_and_grad(
                model,
                X[rows],
                y[rows],
                gamma1=config.gamma1,
                gamma2=config.gamma2,
                competition=config.competition,
                training=True,
                dropout=config.dropout,
                rng=rng,
            )
            params = {
                "A": model.A,
                "b": model.b,
                "neuron_logits": model.neuron_logits,
                "synapse_logits": model.synapse_logits,
            }
            grads = {
                "A": g.A + config.weight_decay * model.A * decay,
                "b": g.b + config.weight_decay * model.b * decay_b,
                "neuron_logits": g.neuron_logits,
                "synapse_logits": g.synapse_logits,
            }
            if model.bn is not None:
                params["gamma"], params["beta"] = model.bn.gamma, model.bn.beta
                grads["gamma"], grads["beta"] = g.gamma, g.beta
                model.bn.running_mean[...] = g.running_mean
                model.bn.running_var[...] = g.running_var
            opt.step(params, grads)  # S-Alg. 1 line 21 (in place)
            task_sum += g.task_loss
            aux_sum += g.aux_loss
            n_batches += 1
        rec = {
            "epoch": epoch,
            "n_hidden": int(model.alive[lay.hidden].sum()),
            "n_grown": int(model.n_grown),
            "grown": len(grown),
            "removed": len(removed),
            "grown_ids": grown,
            "removed_ids": removed,
            "synapses": synapse_count(model),
            "task_loss": task_sum / max(n_batches, 1),
            "aux_loss": aux_sum / max(n_batches, 1),
        }
        rec["train_loss"], rec["train_error"] = evaluate(model, X, y)
        for name in ("val", "test"):
            if name in splits:
                rec[f"{name}_loss"], rec[f"{name}_error"] = evaluate(model, *splits[name])
            else:
                rec[f"{name}_loss"] = rec[f"{name}_error"] = float("nan")
        history.append(rec)
        crit = rec["val_error"] if "val" in splits else -epoch
        if crit < best_err:
            best_err, best_epoch, best_model = crit, epoch, model.copy()
        if callback is not None:
            callback(rec)
    return SAGPResult(model, best_model, best_epoch, history, config)

