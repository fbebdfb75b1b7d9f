"""Training (Alg. 2) and prediction (Alg. 3) of a neural-module network.

Per mini-batch (Alg. 2 lines 4-14): prune the dense K to its top k edges
(or a fixed gamma, Sec. 3.2), solve the forward Eq. (3) and the adjoint
Eq. (4), and update the **dense** K, W1, Wm with the pruned model's
gradients Eq. (6)-(8) plus the regularizer; gamma follows the k-th largest
|K| (Alg. 2 line 13).  Because dL/dK is dense, pruned edges receive
gradient and can grow back (the "feedback" of dynamic pruning).

Regularizers (on the off-diagonal of K; biases are not penalized):

- ``"nm"``: NM regularization, Thm. 3.1: ``w <- w (1 - eta alpha r) -
  eta dJ/dw`` (R of Eq. 10 held constant for the step; see
  proofs/thm3_1.md for the factor 2 and the stop-gradient).
- ``"l2"``: plain L2 ``alpha sum K^2`` (gradient ``2 alpha K``).
- ``"none"``.

How the regularizer enters the step (``reg_step``):

- ``"proximal"`` (default): after the optimizer's step on dJ/dw, shrink
  ``w <- w / (1 + eta alpha r)`` (L2: ``/ (1 + 2 eta alpha)``).  This is the
  implicit (backward-Euler) form of Thm. 3.1's update: equal to it to first
  order in eta, and stable for every ``eta alpha r``.
- ``"thm31"``: the explicit update exactly as Thm. 3.1 states it (the
  regularizer's ``alpha r w`` added to the gradient, through the momentum
  buffer with SGD).  It flips the sign of w once ``eta alpha r > 1`` and
  diverges beyond 2, which a 200-node module reaches with the paper's
  ``alpha = 1e-3`` (r = z_i z_j ~ 4e4) at any ``eta >= 1e-2``.

Optimizers: SGD with momentum (0.5 by default: the paper's Table 3) or Adam.

Backends (``backend``, DESIGN.md section 3): ``"numpy"`` runs the numba
path.  Any other backend runs forward, loss and backward on the generic
path (:mod:`refimpl.xp`) and keeps the parameters and the optimizer state on
its device, where the dense update of K, W1, Wm happens; the data are
uploaded once per :meth:`Trainer.fit`.  Pruning, Tarjan and the schedule stay
on the CPU (numba), so each step copies K back to the host for them.
Everything is seeded (``np.random.default_rng(seed)``): the same config and
data give the same trajectory, and a run resumed from a checkpoint continues
it bit for bit.  Progress is reported through callbacks; nothing prints.
"""
from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass

import numpy as np

from .backend import get_backend, is_reference, to_numpy
from .graph.prune import graph_from_mask, prune
from .model import NMNetwork, loss_and_grad, output_loss
from .propagate import check_input, forward
from .regularization import nm_repulsion
from .validation import json_default

__all__ = ["TrainConfig", "Trainer", "predict_proba", "predict", "CheckpointError",
           "FORMAT"]

#: Tag and version written into every checkpoint.
FORMAT = "refimpl-nm-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint file is truncated, foreign or of another version."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of Alg. 2 (defaults: the paper's Table 3 where given).

    Attributes
    ----------
    nodes : int
        p, hidden nodes of the complete graph.
    edges : int or None
        k, edges kept by pruning (Alg. 2 line 5); default ``10 * nodes``.
        Ignored when ``gamma`` is set.
    gamma : float or None
        A fixed pruning threshold instead of top-k (Sec. 3.2).
    epochs, batch_size : int
    lr : float
        Learning rate eta.
    momentum : float
        SGD momentum (Table 3: 0.5).
    optimizer : {"sgd", "adam"}
    reg : {"none", "l2", "nm"}
    alpha : float
        Regularization strength (Table 3: 1e-3).
    reg_step : {"proximal", "thm31"}
        How the regularizer enters the step (see the module docstring).
    activation, output : str
        f and g (DESIGN.md sec. 2); the loss follows g (cross-entropy for
        softmax).
    init_scale : float
        Scale of the initial K (see :meth:`NMNetwork.random`).
    patience : int or None
        Early stopping: stop after this many epochs without a better
        validation score (:meth:`Trainer.restore_best` puts the best
        epoch's parameters back); None trains every epoch.
    monitor : {"val_loss", "val_error"}
        The validation score of early stopping and of the best epoch.  The
        loss is the default: on small validation sets the error moves in
        coarse steps and ties freeze the best epoch early.
    atol, rtol : float
        Module solve tolerance during training (1e-8: far below the
        gradient noise of a mini-batch; prediction uses the same).
    solver : str
        Module solver (see :func:`refimpl.forward`).
    mode : {"levels", "sequential", "whole"}
        How Eq. (3) is solved (see :func:`refimpl.forward`); "whole" is the
        DEQ baseline of Table 1 (one implicit layer, fixed point).
    structure : {"graph", "dag"}
        "dag": K restricted to its strict upper triangle (node order 0..p-1),
        the DAG baseline of Table 1: every module is a singleton.
    seed : int
    backend : str, namespace module or Backend
        ``"numpy"`` (numba, the reference), ``"cupy"`` or another backend of
        :func:`refimpl.get_backend` (see the module docstring); checkpoints
        store its name.
    """

    nodes: int = 100
    edges: int | None = None
    gamma: float | None = None
    epochs: int = 50
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.5
    optimizer: str = "sgd"
    reg: str = "none"
    alpha: float = 1e-3
    reg_step: str = "proximal"
    activation: str = "tanh"
    output: str = "softmax"
    init_scale: float = 0.5
    patience: int | None = 10
    monitor: str = "val_loss"
    atol: float = 1e-8
    rtol: float = 1e-8
    solver: str = "auto"
    mode: str = "levels"
    structure: str = "graph"
    seed: int = 0
    backend: object = "numpy"

    def __post_init__(self):
        def positive_int(name):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")

        for name in ("nodes", "epochs", "batch_size"):
            positive_int(name)
        if self.edges is not None:
            positive_int("edges")
            if self.edges > self.nodes * (self.nodes - 1):
                raise ValueError(f"edges: at most nodes*(nodes-1) = "
                                 f"{self.nodes * (self.nodes - 1)}, got {self.edges}")
        if self.patience is not None:
            positive_int("patience")
        for name in ("lr", "atol", "rtol", "init_scale"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"{name}: expected a finite number > 0, got {v!r}")
        if not (0.0 <= self.momentum < 1.0):
            raise ValueError(f"momentum: expected a number in [0, 1), got {self.momentum!r}")
        if not (np.isfinite(self.alpha) and self.alpha >= 0):
            raise ValueError(f"alpha: expected a finite number >= 0, got {self.alpha!r}")
        if self.gamma is not None and not (np.isfinite(self.gamma) and self.gamma >= 0):
            raise ValueError(f"gamma: expected a finite number >= 0, got {self.gamma!r}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer: expected 'sgd' or 'adam', got {self.optimizer!r}")
        if self.reg not in ("none", "l2", "nm"):
            raise ValueError(f"reg: expected 'none', 'l2' or 'nm', got {self.reg!r}")
        if self.mode not in ("levels", "sequential", "whole"):
            raise ValueError(f"mode: expected 'levels', 'sequential' or 'whole', got {self.mode!r}")
        if self.structure not in ("graph", "dag"):
            raise ValueError(f"structure: expected 'graph' or 'dag', got {self.structure!r}")
        if self.structure == "dag" and self.edges is not None \
                and self.edges > self.nodes * (self.nodes - 1) // 2:
            raise ValueError(f"edges: a DAG on {self.nodes} nodes has at most "
                             f"{self.nodes * (self.nodes - 1) // 2} edges, got {self.edges}")
        if self.monitor not in ("val_loss", "val_error"):
            raise ValueError(f"monitor: expected 'val_loss' or 'val_error', got {self.monitor!r}")
        if self.reg_step not in ("proximal", "thm31"):
            raise ValueError(f"reg_step: expected 'proximal' or 'thm31', got {self.reg_step!r}")
        get_backend(self.backend)  # BackendError / ValueError naming the backend

    @property
    def k(self) -> int | None:
        """Edges kept by top-k pruning (None with a fixed gamma)."""
        if self.gamma is not None:
            return None
        if self.edges is not None:
            return self.edges
        p = self.nodes
        return min(10 * p, p * (p - 1) // (2 if self.structure == "dag" else 1))

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["backend"] = get_backend(self.backend).name
        return d


PARAMS = ("K", "W1", "Wm")


class _Optimizer:
    """SGD with momentum or Adam over the named parameter arrays (state as arrays)."""

    def __init__(self, config, shapes):
        self.kind = config.optimizer
        self.lr = config.lr
        self.momentum = config.momentum
        self.t = 0
        self.state = {}
        self.xp = None  # NumPy (None keeps the trainer picklable)
        for name, shape in shapes.items():
            self.state[f"m_{name}"] = np.zeros(shape)
            if self.kind == "adam":
                self.state[f"v_{name}"] = np.zeros(shape)

    def to(self, xp, device):
        """Move the state to namespace ``xp`` on ``device`` (NumPy: ``xp = np``)."""
        self.xp = None if xp is np else xp
        for k, v in self.state.items():
            self.state[k] = to_numpy(v).copy() if xp is np else xp.asarray(to_numpy(v),
                                                                          device=device)

    def step(self, params, grads):
        self.t += 1
        for name, g in grads.items():
            m = self.state[f"m_{name}"]
            if self.kind == "sgd":
                m *= self.momentum
                m -= self.lr * g
                params[name] += m
            else:  # Adam, the usual defaults beta1 = 0.9, beta2 = 0.999, eps = 1e-8
                v = self.state[f"v_{name}"]
                m *= 0.9
                m += 0.1 * g
                v *= 0.999
                v += 0.001 * g * g
                mh = m / (1 - 0.9 ** self.t)
                vh = v / (1 - 0.999 ** self.t)
                params[name] -= self.lr * mh / ((self.xp or np).sqrt(vh) + 1e-8)


def check_labels(y, n, n_out, name):
    """``y`` as ``n`` integer class labels in ``[0, n_out)``; ValueError naming ``name``."""
    y = np.asarray(y)
    if y.shape != (n,) or y.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected {n} integer class labels, got shape {y.shape} "
                         f"dtype {y.dtype}")
    if n and (y.min() < 0 or y.max() >= n_out):
        raise ValueError(f"{name}: labels must lie in [0, {n_out})")
    return y


def check_fit_data(X, y, X_val, y_val, n_in, n_out):
    """Training and (optional) validation data checked for a fit: float64
    (B, n_in) inputs, integer labels in ``[0, n_out)``."""
    X = check_input(X, n_in, "X")
    y = check_labels(y, X.shape[0], n_out, "y")
    if X_val is not None:
        X_val = check_input(X_val, n_in, "X_val")
        y_val = check_labels(y_val, X_val.shape[0], n_out, "y_val")
    return X, y, X_val, y_val


def early_stopping_step(trainer, score, snapshot):
    """Early-stopping bookkeeping after an epoch (Alg. 2's validation split).

    A strictly better ``score`` (ties keep the earlier epoch) records
    ``trainer.best = snapshot()``, ``best_val`` and ``best_epoch`` and resets
    ``stale``; otherwise ``stale`` grows.  Returns True when training should
    stop (``config.patience`` epochs without improvement).  Shared by
    :class:`Trainer` and the NN baseline.
    """
    if score is None:
        return False
    if score < trainer.best_val:
        trainer.best_val = score
        trainer.best_epoch = trainer.epoch
        trainer.best = snapshot()
        trainer.stale = 0
        return False
    trainer.stale += 1
    patience = trainer.config.patience
    return patience is not None and trainer.stale >= patience


def _default_device(xp):
    import array_api_compat

    return array_api_compat.device(xp.empty(0))


def _error(net, graph, X, y, atol, rtol, solver, mode="levels", backend="numpy"):
    if is_reference(backend):
        fwd = forward(net, X, graph, atol=atol, rtol=rtol, solver=solver, mode=mode)
    else:
        from .xp import forward as generic_forward

        fwd = generic_forward(net, X, graph, atol=atol, rtol=rtol, solver=solver, mode=mode,
                              backend=backend,
                              **({"whole_method": "fixed_point"} if mode == "whole" else {}))
    Z = to_numpy(fwd.Z)
    loss, _ = output_loss(Z, y, net.output)
    return loss, float(np.mean(np.argmax(Z, axis=1) != y)), fwd


@dataclass
class EpochRecord:
    """One row of the training history."""

    epoch: int
    loss: float
    train_error: float
    val_loss: float | None
    val_error: float | None
    edges: int
    regrown: int
    modules: int
    largest_module: int
    levels: int
    newton_iterations: float
    gamma: float
    seconds: float


class Trainer:
    """Alg. 2 of the paper: train a neural-module network on (X, y).

    Parameters
    ----------
    config : TrainConfig
    n_in, n_out : int
        Input features and classes (outputs).

    The whole state (network, optimizer buffers, RNG state, history, best
    parameters, epoch counter) is saved by :meth:`save` and restored by
    :meth:`load`; a resumed run continues bit for bit.
    """

    def __init__(self, config: TrainConfig, n_in: int, n_out: int):
        self.config = config
        self.n_in, self.n_out = int(n_in), int(n_out)
        seeds = np.random.SeedSequence(config.seed).spawn(2)
        init_seed = int(seeds[0].generate_state(1)[0])
        self.net = NMNetwork.random(self.n_in, config.nodes, self.n_out, seed=init_seed,
                                    activation=config.activation, output=config.output,
                                    k=config.k, gamma=config.gamma, scale=config.init_scale)
        if config.structure == "dag":
            self._lower = np.tril(np.ones((config.nodes, config.nodes), dtype=bool), -1)
            self.net.K[self._lower] = 0.0
        self.rng = np.random.default_rng(seeds[1])
        self.opt = _Optimizer(config, {n: getattr(self.net, n).shape for n in PARAMS})
        self.epoch = 0
        self.history: list[dict] = []
        self.best: dict | None = None
        self.best_val = np.inf
        self.best_epoch = 0
        self.stale = 0
        self.gamma = np.nan
        self._prev_mask = None
        self.extra: dict = {}

    # ------------------------------------------------------------ pruning
    def prune(self):
        """The pruned graph at the current K (Alg. 2 line 5).  With
        ``structure="dag"`` only the strict upper triangle is eligible."""
        c = self.config
        if c.structure == "dag":
            mags = np.abs(np.triu(self.net.K, 1))
            if c.gamma is not None:
                mask = np.triu(mags >= c.gamma, 1)
            else:
                # top k of the upper triangle, ties by row-major index (as prune)
                iu = np.flatnonzero(np.triu(np.ones_like(mags, dtype=bool), 1).ravel())
                vals = mags.ravel()[iu]
                keep = iu[np.sort(np.argsort(-vals, kind="stable")[: c.k])]
                mask = np.zeros(mags.size, dtype=bool)
                mask[keep] = True
                mask = mask.reshape(mags.shape)
            g = graph_from_mask(self.net.K, mask)
            kept = mags[mask]
            return dataclasses.replace(g, gamma=float(kept.min()) if kept.size else np.inf)
        return prune(self.net.K, k=c.k) if c.gamma is None else prune(self.net.K, gamma=c.gamma)

    def _reg_rate(self, graph):
        """The per-entry regularization rate rho (off-diagonal; 0 on the
        diagonal): the regularizer's gradient is ``rho * K``.  NM (Thm. 3.1):
        ``rho = alpha R``; L2: ``rho = 2 alpha``."""
        c = self.config
        if c.reg == "nm":
            rho = c.alpha * nm_repulsion(graph).R  # Thm. 3.1: alpha r_ij
        elif c.reg == "l2":
            rho = np.full(self.net.K.shape, 2.0 * c.alpha)
        else:
            return None
        np.fill_diagonal(rho, 0.0)  # biases are not penalized
        return rho

    # ------------------------------------------------------------ training
    def fit(self, X, y, X_val=None, y_val=None, *, epochs=None, callback=None):
        """Run epochs of Alg. 2 (until ``config.epochs`` in total, or
        ``epochs`` more).  ``callback(trainer, record)`` is called after
        each epoch; returning True stops training.  Returns the history."""
        c = self.config
        X, y, X_val, y_val = check_fit_data(X, y, X_val, y_val, self.n_in, self.n_out)
        target = c.epochs if epochs is None else self.epoch + int(epochs)
        n = X.shape[0]
        if not is_reference(c.backend):
            return self._fit_generic(X, y, X_val, y_val, target, callback)
        while self.epoch < target:
            t0 = time.perf_counter()
            order = self.rng.permutation(n)
            losses, errs, iters = [], [], []
            for s in range(0, n, c.batch_size):
                idx = order[s:s + c.batch_size]
                graph = self.prune()
                loss, grads, fwd = loss_and_grad(self.net, X[idx], y[idx], graph,
                                                 atol=c.atol, rtol=c.rtol, solver=c.solver,
                                                 mode=c.mode)
                gK = grads.K
                if c.structure == "dag":
                    gK[self._lower] = 0.0  # the lower triangle stays 0
                rho = self._reg_rate(graph)
                if rho is not None and c.reg_step == "thm31":
                    gK = gK + rho * self.net.K  # Thm. 3.1: dJ/dw + alpha r w
                params = {"K": self.net.K, "W1": self.net.W1, "Wm": self.net.Wm}
                self.opt.step(params, {"K": gK, "W1": grads.W1, "Wm": grads.Wm})
                if rho is not None and c.reg_step == "proximal":
                    self.net.K /= 1.0 + self.opt.lr * rho  # implicit form of Thm. 3.1
                losses.append(loss * idx.size)
                errs.append(float(np.sum(np.argmax(fwd.Z, axis=1) != y[idx])))
                iters.append(fwd.iterations)
            if self._end_epoch(t0, losses, errs, iters, n, X_val, y_val, callback):
                break
        return self.history

    def _end_epoch(self, t0, losses, errs, iters, n, X_val, y_val, callback):
        """History row, gamma (Alg. 2 line 13) and early stopping; True to stop."""
        c = self.config
        self.epoch += 1
        graph = self.prune()
        self.gamma = graph.gamma  # Alg. 2 line 13
        mask = graph.mask()
        regrown = 0 if self._prev_mask is None else int(np.sum(mask & ~self._prev_mask))
        self._prev_mask = mask
        sizes = graph.schedule.module_sizes
        val_loss = val_err = None
        if X_val is not None:
            val_loss, val_err, _ = _error(self.net, graph, X_val, y_val, c.atol, c.rtol,
                                          c.solver, c.mode, c.backend)
        rec = EpochRecord(
            epoch=self.epoch, loss=float(sum(losses) / n), train_error=float(sum(errs) / n),
            val_loss=val_loss, val_error=val_err, edges=graph.n_edges, regrown=regrown,
            modules=int(np.sum(sizes > 1)), largest_module=int(sizes.max(initial=0)),
            levels=graph.schedule.n_levels, newton_iterations=float(np.mean(iters)),
            gamma=float(graph.gamma), seconds=time.perf_counter() - t0)
        self.history.append(dataclasses.asdict(rec))
        stop = early_stopping_step(
            self, val_loss if c.monitor == "val_loss" else val_err,
            lambda: {**{n: getattr(self.net, n).copy() for n in PARAMS},
                     "gamma": np.array(self.gamma)})
        if callback is not None and callback(self, rec):
            stop = True
        return stop

    def _fit_generic(self, X, y, X_val, y_val, target, callback):
        """Alg. 2 on the generic path: data, parameters and optimizer state on
        the backend's device; the dense update of K, W1, Wm runs there too."""
        from .xp import loss_and_grad as generic_loss_and_grad

        c = self.config
        bk = get_backend(c.backend)
        xp = bk.xp
        dev = bk.device if bk.device is not None else _default_device(xp)
        Xd, yd = xp.asarray(X, device=dev), xp.asarray(y, device=dev)
        params = {name: xp.asarray(getattr(self.net, name), device=dev) for name in PARAMS}
        self.opt.to(xp, dev)
        lower = None if c.structure != "dag" else xp.asarray(self._lower, device=dev)
        n = X.shape[0]
        try:
            while self.epoch < target:
                t0 = time.perf_counter()
                order = self.rng.permutation(n)
                losses, errs, iters = [], [], []
                for s in range(0, n, c.batch_size):
                    idx = order[s:s + c.batch_size]
                    di = xp.asarray(idx, device=dev)
                    yb = xp.take(yd, di)
                    graph = self.prune()
                    loss, grads, fwd = generic_loss_and_grad(
                        self.net, xp.take(Xd, di, axis=0), yb, graph, backend=bk,
                        atol=c.atol, rtol=c.rtol, solver=c.solver, mode=c.mode,
                        **({"whole_method": "fixed_point"} if c.mode == "whole" else {}))
                    gK = grads.K
                    if lower is not None:
                        gK = xp.where(lower, 0.0, gK)  # the lower triangle stays 0
                    rho = self._reg_rate(graph)
                    rho = None if rho is None else xp.asarray(rho, device=dev)
                    if rho is not None and c.reg_step == "thm31":
                        gK = gK + rho * params["K"]  # Thm. 3.1: dJ/dw + alpha r w
                    self.opt.step(params, {"K": gK, "W1": grads.W1, "Wm": grads.Wm})
                    if rho is not None and c.reg_step == "proximal":
                        params["K"] = params["K"] / (1.0 + self.opt.lr * rho)  # Thm. 3.1
                    for name in PARAMS:  # pruning and the schedule run on the host
                        setattr(self.net, name, to_numpy(params[name]).copy())
                    losses.append(loss * idx.size)
                    wrong = xp.argmax(fwd._Zc, axis=1) != xp.astype(yb, xp.int64)
                    errs.append(float(xp.sum(xp.astype(wrong, xp.float64))))
                    iters.append(fwd.iterations)
                if self._end_epoch(t0, losses, errs, iters, n, X_val, y_val, callback):
                    break
        finally:
            self.opt.to(np, None)
        return self.history

    def restore_best(self):
        """Put back the parameters of the best validation epoch (early stopping)."""
        if self.best is not None:
            for name in PARAMS:
                setattr(self.net, name, self.best[name].copy())
            self.gamma = float(self.best["gamma"])

    # ------------------------------------------------------------ checkpoints
    def save(self, path, extra=None):
        """Write every array, the optimizer state, the RNG state, the config
        and the history to one ``.npz`` (metadata as embedded JSON).
        ``extra``: a JSON-serializable dict stored alongside (e.g. the data
        set and split), returned by :meth:`load` as ``trainer.extra``."""
        meta = {
            "extra": extra or {},
            "format": FORMAT,
            "config": self.config.to_dict(),
            "n_in": self.n_in, "n_out": self.n_out,
            "epoch": self.epoch, "history": self.history,
            "best_val": None if not np.isfinite(self.best_val) else self.best_val,
            "stale": self.stale, "best_epoch": self.best_epoch, "gamma": None if np.isnan(self.gamma) else self.gamma,
            "rng": self.rng.bit_generator.state,
            "opt_t": self.opt.t,
            "has_best": self.best is not None,
            "has_prev_mask": self._prev_mask is not None,
        }
        arrays = {name: getattr(self.net, name) for name in PARAMS}
        arrays.update({f"opt_{k}": v for k, v in self.opt.state.items()})
        if self.best is not None:
            arrays.update({f"best_{k}": v for k, v in self.best.items()})
        if self._prev_mask is not None:
            arrays["prev_mask"] = self._prev_mask
        arrays["__meta__"] = np.array(json.dumps(meta, default=json_default))
        path = str(path)
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)
        return path

    @classmethod
    def load(cls, path):
        """Restore a trainer saved by :meth:`save`.

        Raises
        ------
        CheckpointError
            The file is truncated, not a refimpl checkpoint, or of another version.
        """
        try:
            with np.load(str(path), allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except FileNotFoundError:
            raise
        except Exception as exc:  # zipfile.BadZipFile, EOFError, ValueError, OSError
            raise CheckpointError(f"{path}: not a readable checkpoint ({exc})") from exc
        if "__meta__" not in data:
            raise CheckpointError(f"{path}: not a refimpl checkpoint (no metadata)")
        meta = json.loads(str(data["__meta__"]))
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
        try:
            self = cls(TrainConfig(**meta["config"]), meta["n_in"], meta["n_out"])
            for name in PARAMS:
                setattr(self.net, name, data[name].astype(np.float64))
            for k in self.opt.state:
                self.opt.state[k] = data[f"opt_{k}"].astype(np.float64)
            self.opt.t = int(meta["opt_t"])
            self.rng.bit_generator.state = meta["rng"]
            self.extra = meta.get("extra", {})
            self.epoch = int(meta["epoch"])
            self.history = meta["history"]
            self.best_val = np.inf if meta["best_val"] is None else float(meta["best_val"])
            self.stale = int(meta["stale"])
            self.best_epoch = int(meta["best_epoch"])
            self.gamma = np.nan if meta["gamma"] is None else float(meta["gamma"])
            if meta["has_best"]:
                self.best = {k: data[f"best_{k}"] for k in (*PARAMS, "gamma")}
            if meta["has_prev_mask"]:
                self._prev_mask = data["prev_mask"].astype(bool)
        except KeyError as exc:
            raise CheckpointError(f"{path}: checkpoint is missing {exc}") from exc
        return self


def predict_proba(net, X, gamma, *, atol=1e-8, rtol=1e-8, solver="auto", backend="numpy"):
    """Alg. 3 of the paper: prune K with the trained ``gamma``, solve Eq. (3),
    return ``Y = g(Z)`` (class probabilities for a softmax output), a NumPy
    array (``backend``: where Eq. (3) is solved, see :func:`refimpl.get_backend`)."""
    X = check_input(X, net.n_in, "X")
    if not (np.isfinite(gamma) and gamma >= 0):
        raise ValueError(f"gamma: expected a finite number >= 0, got {gamma!r}")
    graph = prune(net.K, gamma=gamma)
    if is_reference(backend):
        return forward(net, X, graph, atol=atol, rtol=rtol, solver=solver).Y
    from .xp import forward as generic_forward

    return to_numpy(generic_forward(net, X, graph, atol=atol, rtol=rtol, solver=solver,
                                    backend=backend).Y)


def predict(net, X, gamma, **options):
    """Alg. 3: class indices ``argmax Y`` (see :func:`predict_proba`)."""
    return np.argmax(predict_proba(net, X, gamma, **options), axis=1)
