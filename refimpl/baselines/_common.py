"""What the DEQ and OPTNET baselines of Table 1 share: their error type and their trainer.

:class:`LayerTrainer` trains a *layer model* with the semantics of
:class:`refimpl.train.Trainer` (Alg. 2 without pruning): the same
:class:`refimpl.train.TrainConfig` (``nodes``, ``epochs``, ``batch_size``,
``lr``, ``momentum``, ``optimizer``, ``activation``, ``output``,
``init_scale``, ``patience``, ``monitor``, ``atol``, ``rtol``, ``seed``; the
graph fields do not apply, and ``reg`` must be "none": Table 3 gives these
baselines no weight penalty), the same optimizer (:class:`refimpl.optim.Optimizer`:
SGD with momentum 0.5 of Table 3, or Adam), the same epoch loop
(:func:`refimpl.loop.run_epochs`, whose hooks carry Table 1's time budget), the
same seeding (``SeedSequence(seed)`` spawned into an initialization seed and a
batch-order RNG), the same early stopping (:class:`refimpl.loop.EarlyStopping`)
and history rows with the fields of :class:`refimpl.train.EpochRecord`.

A layer model (:class:`LayerModel`: ``NAMES``, ``params()`` (name -> array, updated in
place), ``n_weights``, ``n_in``) has ``loss_and_grad(X0, y) -> (loss, grads, Z,
iterations)``, ``outputs(X0) -> Z``, ``copy()`` and ``p``.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from ..loop import EarlyStopping, EpochTrainer
from ..model import output_loss
from ..optim import Optimizer
from ..solvers.result import ConvergenceError, SolveStatus
from ..train import EpochRecord, TrainConfig

__all__ = ["BaselineTrainer", "LayerConvergenceError", "LayerModel", "LayerTrainer"]


class LayerConvergenceError(ConvergenceError):
    """The implicit layer of a baseline (the DEQ equilibrium, the OPTNET QP) was not solved.

    A :class:`refimpl.ConvergenceError` (Table 1 marks such a run "diverged"); ``layer``
    names the layer, ``size`` its number of unknowns.
    """

    def __init__(self, layer, size, residual, iterations, status, result=None):
        super().__init__(0, np.arange(0), size, residual, iterations, status, result)
        self.layer = str(layer)
        RuntimeError.__init__(
            self, f"{self.layer} ({self.size} unknowns) failed: "
                  f"{SolveStatus(status).message}; residual {self.residual:.3e} after "
                  f"{self.iterations} iterations")


class LayerModel:
    """The parameter bookkeeping of a Table 1 baseline layer (the DEQ network, the OPTNET
    layer): its arrays are the attributes named in ``NAMES``, ``W1`` (p, n_in) the
    input weights."""

    NAMES: tuple = ()

    @property
    def n_in(self) -> int:
        return int(self.W1.shape[1])

    @property
    def n_weights(self) -> int:
        """Number of learned parameters."""
        return int(sum(getattr(self, n).size for n in self.NAMES))

    def params(self) -> dict:
        """The parameter arrays by name (the arrays themselves)."""
        return {n: getattr(self, n) for n in self.NAMES}


class BaselineTrainer(EpochTrainer):
    """What the Table 1 baselines' trainers (the NN's ``MLPTrainer``, :class:`LayerTrainer`)
    share beyond :class:`refimpl.loop.EpochTrainer`: the epoch's loss and error sums,
    the validation on ``self._outputs(X)`` and the record with the fields of
    :class:`refimpl.train.EpochRecord` (Alg. 2 without pruning), and
    :meth:`restore_best`.

    Subclasses set ``_outputs(X) -> Z`` and ``_structure()`` (the record's ``modules``,
    ``largest_module``, ``levels`` and ``newton_iterations``); ``net`` has ``copy()``
    and ``n_weights``; ``config.output`` is the output of Sec. 3.3.
    """

    def _setup(self, config, n_in, n_out, make_net):
        """The state of a fresh trainer, seeded as ``Trainer``: ``SeedSequence(seed)``
        spawned into ``make_net(init_seed)``'s seed and the batch-order RNG."""
        self.config = config
        self.n_in, self.n_out = int(n_in), int(n_out)
        seeds = np.random.SeedSequence(config.seed).spawn(2)  # as Trainer
        self.net = make_net(int(seeds[0].generate_state(1)[0]))
        self.rng = np.random.default_rng(seeds[1])
        self.opt = Optimizer.from_config(config,
                                         {k: v.shape for k, v in self.net.params().items()})
        self.epoch = 0
        self.history: list[dict] = []
        self.stopping = EarlyStopping(config.patience)

    def begin_epoch(self):
        """Reset the epoch's sums (:func:`refimpl.loop.run_epochs`)."""
        self._loss_sum = self._err_sum = 0.0
        self._iters = []

    def _add_batch(self, loss, Z, y):
        """Add a mini-batch's mean loss and the errors of its outputs ``Z`` to the sums."""
        self._loss_sum += loss * y.shape[0]
        self._err_sum += float(np.sum(np.argmax(Z, axis=1) != y))

    def end_epoch(self, t0):
        """Close an epoch: validation and the record (fields of ``EpochRecord``)."""
        c = self.config
        self.epoch += 1
        val_loss = val_err = None
        X_val, y_val = self._val
        if X_val is not None:
            Z = self._outputs(X_val)
            val_loss, _ = output_loss(Z, y_val, c.output)
            val_err = float(np.mean(np.argmax(Z, axis=1) != y_val))
        n = self._n
        rec = EpochRecord(
            epoch=self.epoch, loss=self._loss_sum / n, train_error=self._err_sum / n,
            val_loss=val_loss, val_error=val_err, edges=self.net.n_weights, regrown=0,
            gamma=float("nan"), seconds=time.perf_counter() - t0, **self._structure())
        self.history.append(dataclasses.asdict(rec))
        return rec, (val_loss if c.monitor == "val_loss" else val_err), self.net.copy

    def restore_best(self):
        """Put back the parameters of the best validation epoch (early stopping)."""
        if self.best is not None:
            # The optimizer's buffers are keyed by name and the parameters are
            # re-read every step, so a later fit continues from these.
            self.net = self.best.copy()


class LayerTrainer(BaselineTrainer):
    """Trainer of a Table 1 baseline layer (see the module docstring), a learner of
    :func:`refimpl.loop.run_epochs` (Alg. 2's loop without pruning).

    Subclasses set ``make_model(config, n_in, n_out, seed)``.

    Attributes
    ----------
    net : the layer model
    opt : refimpl.optim.Optimizer
    history : list of dict
        One :class:`refimpl.train.EpochRecord` (as a dict) per epoch.
    best, best_val, best_epoch : the model copy, the score and the number of
        the best validation epoch (``config.monitor``).
    """

    #: The Table 1 name of the method (for messages).
    name = "layer"

    def __init__(self, config: TrainConfig, n_in: int, n_out: int):
        if not isinstance(config, TrainConfig):
            raise ValueError(f"config: expected a TrainConfig, got {type(config).__name__}")
        if config.reg != "none":
            raise ValueError(f"reg: the {self.name} baseline takes 'none' (Table 3: no weight "
                             f"penalty), got {config.reg!r}")
        self._setup(config, n_in, n_out,
                    lambda seed: self.make_model(config, self.n_in, self.n_out, seed))

    def make_model(self, config, n_in, n_out, seed):  # pragma: no cover - abstract
        raise NotImplementedError

    def train_batch(self, X, y):
        """One mini-batch: the layer's loss and gradients (its forward and implicit
        backward) and the optimizer step (Alg. 2 lines 6-11)."""
        loss, grads, Z, it = self.net.loss_and_grad(X, y)
        self.opt.step(self.net.params(), grads)
        self._add_batch(loss, Z, y)
        self._iters.append(it)
        return loss

    def _outputs(self, X):
        return self.net.outputs(X)

    def _structure(self):
        return {"modules": 1, "largest_module": self.net.p, "levels": 1,
                "newton_iterations": float(np.mean(self._iters))}

    def predict(self, X):
        """Class indices ``argmax Z`` (the baseline's analogue of Alg. 3)."""
        return np.argmax(self.net.outputs(X), axis=1)
