"""One cell of Table 1 (Sec. 4.1): train one model within its time budget, evaluate it."""
from __future__ import annotations

import datetime
import math
import time

import numpy as np

from ..baselines.deq import DEQTrainer, deq_forward
from ..baselines.mlp import MLPTrainer, mlp_forward
from ..baselines.optnet import OptNetTrainer
from ..loop import Hook
from ..propagate import forward
from ..solvers.result import ConvergenceError
from ..testing import eq3_residual
from ..train import Trainer
from .domain import LR_SCALE, Settings, load_dataset, method_config

__all__ = ["TimeBudget", "TimeBudgetExceeded", "make_trainer", "run_cell"]


class TimeBudgetExceeded(Exception):
    """Raised inside training when a run passes its time budget (Table 1's "over time")."""


class TimeBudget(Hook):
    """Table 1's time budget and Table 3's per-epoch learning-rate scaling, as hooks
    of the epoch loop (:func:`refimpl.loop.run_epochs`).

    Before every mini-batch past the ``deadline`` (a ``time.perf_counter()`` value) it
    raises :class:`TimeBudgetExceeded`; after every epoch it multiplies the optimizer's
    rate by ``lr_scale`` ("scaling learningRate") and stops training past the deadline.
    """

    keeps_params = True  # before_batch only raises: the trainer keeps its pruning scan

    def __init__(self, deadline, lr_scale=1.0):
        self.deadline = deadline
        self.lr_scale = lr_scale

    def before_batch(self, learner):
        if time.perf_counter() > self.deadline:
            raise TimeBudgetExceeded

    def after_epoch(self, learner, record) -> bool:
        learner.opt.lr *= self.lr_scale  # Table 3: "scaling learningRate", per epoch
        return time.perf_counter() > self.deadline


#: The trainer class of each method (``Trainer`` otherwise).
_TRAINERS = {"NN": MLPTrainer, "DEQ": DEQTrainer, "OPTNET": OptNetTrainer}


def make_trainer(method, nodes, seed, n_in, n_out, settings=Settings()):
    """The untrained trainer of one Table 1 method (Sec. 4.1, Table 3 settings via
    :func:`method_config`): ``MLPTrainer``, ``DEQTrainer``, ``OptNetTrainer`` or
    ``Trainer``; each trains with :func:`refimpl.loop.run_epochs` and takes the
    :class:`TimeBudget` hook in ``fit(..., hooks=...)``."""
    config = method_config(method, nodes, seed, settings)
    return _TRAINERS.get(method, Trainer)(config, int(n_in), int(n_out))


def run_cell(method, dataset, nodes, seed, settings=Settings(), *, data_path=None,
             data=None) -> dict:
    """Train one cell of Table 1 and evaluate its test error rate (Sec. 4.1).

    Parameters
    ----------
    method : str
        One of :data:`METHODS` except the open rows.
    dataset : str
        A built-in or paper data set name (the row's label when ``data`` is given).
    nodes, seed : int
        Hidden nodes p (the NN's hidden width) and the seed of the split,
        the initialization and the batch order.
    settings : Settings
    data_path : str, optional
        Local copy of a paper data set.
    data : Dataset, optional
        Use this data instead of loading ``dataset``.

    Returns
    -------
    dict
        One row with the keys :data:`COLUMNS`: ``error`` is the test error
        rate of the best validation epoch (NaN when no epoch finished),
        ``iterations`` the mean solver iterations per mini-batch (the
        largest module's Newton / fixed-point iterations for the NM rows,
        0 for NN and DAG; the Anderson iterations of the DEQ, the
        interior-point iterations of the OPTNET), ``residual`` the Eq. (3)
        residual on the test set (the DEQ's: its dense Eq. (3); the
        OPTNET's: its KKT residual).
    """
    config = method_config(method, nodes, seed, settings)
    if data is None:
        data = load_dataset(dataset, int(seed), data_path)
    t0 = time.perf_counter()
    trainer = make_trainer(method, nodes, seed, data.n_features, data.n_classes, settings)
    budget = TimeBudget(t0 + settings.time_budget,
                        LR_SCALE[method] if settings.lr_scaling else 1.0)
    lr0 = trainer.opt.lr
    status, message = "ok", ""
    try:
        trainer.fit(data.X_train, data.y_train, data.X_val, data.y_val, hooks=[budget])
        if time.perf_counter() > budget.deadline:
            status = "over time"
    except TimeBudgetExceeded:
        status = "over time"
    except ConvergenceError as exc:
        status, message = "diverged", str(exc)
    except FloatingPointError as exc:  # TrainingDivergedError (the NM trainer's non-finite
        status, message = "diverged", str(exc)  # loss or parameters), or an np.errstate raise
    train_seconds = time.perf_counter() - t0
    hist = trainer.history
    if status == "ok" and any(not math.isfinite(h["loss"]) for h in hist):
        status, message = "diverged", "non-finite training loss"
    trainer.restore_best()
    error = residual = math.nan
    modules = largest = 0
    edges = 0
    if trainer.best is not None:
        if method == "NN":
            Z = mlp_forward(trainer.net, data.X_test).Z
            edges = trainer.net.n_weights
            residual = 0.0
        elif method in ("DEQ", "OPTNET"):
            edges, modules, largest = trainer.net.n_weights, 1, trainer.net.p
            Z = np.full((1, 1), np.nan)
            try:
                if method == "DEQ":
                    fwd = deq_forward(trainer.net, data.X_test)
                    Z, residual = fwd.Z, fwd.residual
                else:
                    _, Z, sol = trainer.net.forward(data.X_test)
                    residual = sol.residual
            except ConvergenceError as exc:
                if status == "ok":
                    status, message = "diverged", f"test-set solve: {exc}"
        else:
            graph = trainer.prune()  # the trained graph
            fwd = forward(trainer.net, data.X_test, graph, atol=config.atol, rtol=config.rtol,
                          solver=config.solver, mode=config.mode, throw=False)
            Z = fwd.Z
            R = eq3_residual(trainer.net, graph, fwd.X0, fwd.X)  # Eq. (3)
            residual = float(np.abs(R).max()) if R.size else 0.0
            edges = graph.n_edges
            sizes = graph.schedule.module_sizes
            modules, largest = int(np.sum(sizes > 1)), int(sizes.max(initial=0))
            if not fwd.converged and status == "ok":
                status, message = "diverged", f"test-set solve: {fwd.status.message}"
        if np.all(np.isfinite(Z)):
            error = float(np.mean(np.argmax(Z, axis=1) != data.y_test))
        elif status == "ok":
            status, message = "diverged", "non-finite outputs on the test set"
    iters = [h["newton_iterations"] for h in hist]
    best = getattr(trainer, "best_epoch", 0) if trainer.best is not None else 0
    return {
        "dataset": dataset, "method": method, "nodes": int(nodes), "seed": int(seed),
        "status": status, "error": error,
        "val_error": float(hist[best - 1]["val_error"]) if best else math.nan,
        "train_loss": float(hist[-1]["loss"]) if hist else math.nan,
        "epochs": len(hist), "seconds": train_seconds,
        "iterations": float(np.mean(iters)) if iters else math.nan,
        "residual": residual, "edges": int(edges), "modules": modules,
        "largest_module": largest, "lr": float(lr0), "settings": settings.fingerprint(),
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="microseconds"),
        "message": message,
    }
