"""The Table 1 experiment of the paper (Sec. 4.1): methods x hidden nodes x seeds.

Layer 5 (DESIGN.md sec. 10 and 14).  One *cell* is ``(dataset, method, nodes,
seed)``; :func:`run_cell` trains one model and returns one row (test error
rate, epochs, seconds, status); :func:`run_sweep` runs a grid of cells,
serially, on local processes or on a Dask cluster, appending every finished
row to a CSV at once so that an interrupted sweep resumes where it stopped;
:func:`summarize` and :func:`markdown_table` give the error rate mean +- std
per method x nodes, in the layout of the paper's Table 1.

Methods (the rows of Table 1, DESIGN.md sec. 10):

======== ==============================================================
NN       an MLP with one hidden layer of ``nodes`` tanh units
         (:class:`refimpl.baselines.MLPTrainer`)
DEQ      a deep equilibrium model: one implicit layer over a dense p x p W
         (no pruning, no modules), Anderson forward, implicit adjoint
         (:class:`refimpl.baselines.DEQTrainer`)
DAG      ``Trainer`` with ``structure="dag"`` (K strictly upper triangular)
OPTNET   a QP layer of p variables and p inequalities (batched interior
         point, KKT backward) and a linear output layer
         (:class:`refimpl.baselines.OptNetTrainer`)
NMs      ``Trainer``, no regularization
NMs&L2   ``Trainer``, ``reg="l2"``, alpha = 1e-3
NMs&NM   ``Trainer``, ``reg="nm"`` (Thm. 3.1), alpha = 1e-3
======== ==============================================================

Hyper-parameters (:class:`Settings`).  From the paper's Table 3 (appendix
G): SGD with momentum 0.5; no weight penalty except alpha = 1e-3 for L2 and
NM regularization; "scaling learningRate" 1 for NN and the NMs and 0.1 for
DEQ, DAG and OPTNET.  Table 3's parameter names are those of
DeepLearnToolbox's ``nnsetup``, where ``scaling_learningRate`` multiplies
the learning rate after every epoch; :func:`run_cell` does the same
(``Settings.lr_scaling=True``; set False for a constant rate).  Not given by
the paper, chosen here: base learning rate 0.05 (Table 3 says only
"optimized"; we do not tune it per method), 50 epochs, mini-batches of 32,
early stopping after 10 epochs without a better validation loss (the
epoch of the lowest validation loss is evaluated), k = 10
edges per hidden node (top-k pruning, Alg. 2 line 5; at most p(p-1), or
p(p-1)/2 for the DAG), initial K scale 0.5 (the DEQ's W: spectral radius
about 0.5; the OPTNET's Q starts at I), solver tolerance 1e-8 (the DEQ's
Anderson solves, the OPTNET's interior point), a time
budget of 1800 s per run (a run past it stops and is marked "over time",
as Table 1 does), split 70/15/15 stratified and standardized with the
training statistics, the split and the initialization both seeded by the
cell's seed.

Statuses: "ok"; "over time" (the budget ran out: training stopped at the
next mini-batch, the best epoch so far is evaluated); "diverged" (a solve
failed to converge or a value became non-finite).
"""
from __future__ import annotations

import csv
import dataclasses
import datetime
import functools
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from typing import Callable, Iterable, NamedTuple

import numpy as np

from .activations import get_activation
from .baselines.deq import DEQTrainer, deq_forward
from .baselines.mlp import MLPTrainer, mlp_forward
from .baselines.optnet import OptNetTrainer
from .propagate import forward
from .solvers.result import ConvergenceError
from .train import Trainer, TrainConfig

__all__ = ["METHODS", "OPEN_METHODS", "PAPER_NODES", "PAPER_DATASETS", "BUILTIN_DATASETS",
           "LR_SCALE", "COLUMNS", "Cell", "Settings", "QUICK", "method_config", "make_trainer",
           "load_dataset",
           "run_cell", "grid", "read_runs", "run_sweep", "SweepResult", "SweepError",
           "summarize", "markdown_table", "TimeBudgetExceeded"]

#: The rows of Table 1, in the paper's order.
METHODS = ("NN", "DEQ", "DAG", "OPTNET", "NMs", "NMs&L2", "NMs&NM")
#: Rows kept open (shown, never run): none since OPTNET has its QP layer.
OPEN_METHODS = ()
#: The hidden-node counts of Table 1.
PAPER_NODES = (80, 100, 200, 300, 500, 1000, 3000)
#: The paper's data sets (local copies only, DESIGN.md sec. 11).
PAPER_DATASETS = ("codon", "daily_sports", "facebook", "gas_drift")
#: scikit-learn's bundled data sets, the default.
BUILTIN_DATASETS = ("digits", "wine", "breast_cancer", "iris")
#: Table 3's "scaling learningRate": the per-epoch factor of the learning rate.
LR_SCALE = {"NN": 1.0, "DEQ": 0.1, "DAG": 0.1, "OPTNET": 0.1,
            "NMs": 1.0, "NMs&L2": 1.0, "NMs&NM": 1.0}
STATUSES = ("ok", "over time", "diverged")

#: Columns of the runs CSV (one row per finished cell).
COLUMNS = ("dataset", "method", "nodes", "seed", "status", "error", "val_error",
           "train_loss", "epochs", "seconds", "iterations", "residual", "edges", "modules",
           "largest_module", "lr", "settings", "finished_at", "message")
_INT = ("nodes", "seed", "epochs", "edges", "modules", "largest_module")
_FLOAT = ("error", "val_error", "train_loss", "seconds", "iterations", "residual", "lr")


class Cell(NamedTuple):
    """One training run of the Table 1 grid (the key of a CSV row)."""

    dataset: str
    method: str
    nodes: int
    seed: int


@dataclass(frozen=True)
class Settings:
    """Hyper-parameters shared by every cell (see the module docstring).

    Attributes
    ----------
    epochs, batch_size : int
    lr : float
        Base learning rate eta (epoch 1).
    lr_scaling : bool
        Multiply the rate by :data:`LR_SCALE` after every epoch (Table 3).
    momentum : float
        Table 3: 0.5.
    alpha : float
        Table 3: 1e-3 for NMs&L2 and NMs&NM.
    edges_per_node : int
        k = edges_per_node * nodes edges kept by top-k pruning.
    init_scale : float
        Initial scale of K (:meth:`refimpl.NMNetwork.random`).
    patience : int or None
        Early stopping patience in epochs.
    monitor : {"val_loss", "val_error"}
        The validation score that picks the best epoch (the one evaluated).
    time_budget : float
        Seconds per run before it is stopped and marked "over time".
    atol, rtol : float
        Solver tolerance for training and evaluation.
    """

    epochs: int = 50
    batch_size: int = 32
    lr: float = 0.05
    lr_scaling: bool = True
    momentum: float = 0.5
    alpha: float = 1e-3
    edges_per_node: int = 10
    init_scale: float = 0.5
    patience: int | None = 10
    monitor: str = "val_loss"
    time_budget: float = 1800.0
    atol: float = 1e-8
    rtol: float = 1e-8

    def __post_init__(self):
        if not (isinstance(self.time_budget, (int, float)) and self.time_budget > 0):
            raise ValueError(f"time_budget: expected seconds > 0, got {self.time_budget!r}")
        if isinstance(self.edges_per_node, bool) or not isinstance(self.edges_per_node, int) \
                or self.edges_per_node < 1:
            raise ValueError(f"edges_per_node: expected a positive integer, "
                             f"got {self.edges_per_node!r}")
        # The rest is checked by TrainConfig.
        TrainConfig(nodes=2, epochs=self.epochs, batch_size=self.batch_size, lr=self.lr,
                    momentum=self.momentum, alpha=self.alpha, init_scale=self.init_scale,
                    patience=self.patience, monitor=self.monitor, atol=self.atol,
                    rtol=self.rtol)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        """A short hash of the settings: rows made with other settings are
        never mixed into the same runs file."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:10]


#: The ``--quick`` grid: under five minutes on 2 cores (the README's table).
QUICK = {
    "datasets": ("iris", "wine", "digits"),
    "nodes": (20, 40),
    "seeds": (0, 1, 2),
    "settings": Settings(epochs=20, patience=None, time_budget=300.0),
}


def method_config(method, nodes, seed, settings=Settings()) -> TrainConfig:
    """The :class:`refimpl.train.TrainConfig` of one Table 1 method
    (``nodes`` also sizes the NN's hidden layer, the DEQ's W and the OPTNET's
    QP; the graph fields do not apply to those)."""
    _check_method(method, runnable=True)
    p = int(nodes)
    dag = method == "DAG"
    cap = p * (p - 1) // (2 if dag else 1)
    reg = {"NMs&L2": "l2", "NMs&NM": "nm"}.get(method, "none")
    return TrainConfig(
        nodes=p, edges=max(1, min(settings.edges_per_node * p, cap)),
        epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr,
        momentum=settings.momentum, optimizer="sgd", reg=reg, alpha=settings.alpha,
        init_scale=settings.init_scale, patience=settings.patience,
        monitor=settings.monitor, atol=settings.atol,
        rtol=settings.rtol, structure="dag" if dag else "graph", seed=int(seed))


def _check_method(method, runnable=False):
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    if runnable and method in OPEN_METHODS:
        raise ValueError(f"method: {method} is an open row of Table 1 (a QP layer, out of "
                         f"scope here); it is never run")


@functools.lru_cache(maxsize=8)
def load_dataset(name, seed=0, path=None):
    """A :class:`refimpl.datasets.Dataset` by name: a built-in one, or a
    paper data set read from its local copy ``path`` (or its environment
    variable, see :mod:`refimpl.datasets`).  Cached per process."""
    from . import datasets

    if name in BUILTIN_DATASETS:
        return datasets.load_builtin(name, seed=seed)
    if name in PAPER_DATASETS:
        return getattr(datasets, f"load_{name}")(path, seed=seed)
    raise ValueError(f"dataset: expected one of {BUILTIN_DATASETS + PAPER_DATASETS}, "
                     f"got {name!r}")


class TimeBudgetExceeded(Exception):
    """Raised inside training when a run passes its time budget (Table 1's "over time")."""


class _BudgetTrainer(Trainer):
    """Trainer that stops at the next mini-batch once the deadline passes
    (``Trainer.prune`` runs once per mini-batch, Alg. 2 line 5)."""

    deadline = math.inf

    def prune(self):
        if time.perf_counter() > self.deadline:
            raise TimeBudgetExceeded
        return super().prune()


class _BudgetMLP(MLPTrainer):
    deadline = math.inf

    def before_batch(self):
        if time.perf_counter() > self.deadline:
            raise TimeBudgetExceeded


class _BudgetDEQ(DEQTrainer):
    deadline = math.inf
    before_batch = _BudgetMLP.before_batch


class _BudgetOptNet(OptNetTrainer):
    deadline = math.inf
    before_batch = _BudgetMLP.before_batch


#: The trainer class of each method (``Trainer`` otherwise).
_TRAINERS = {"NN": _BudgetMLP, "DEQ": _BudgetDEQ, "OPTNET": _BudgetOptNet}


def make_trainer(method, nodes, seed, n_in, n_out, settings=Settings()):
    """The untrained trainer of one Table 1 method (Sec. 4.1, Table 3 settings via
    :func:`method_config`): ``MLPTrainer``, ``DEQTrainer``, ``OptNetTrainer`` or
    ``Trainer``, stopping at the next mini-batch once ``trainer.deadline``
    (``time.perf_counter()`` seconds; default never) has passed."""
    config = method_config(method, nodes, seed, settings)
    return _TRAINERS.get(method, _BudgetTrainer)(config, int(n_in), int(n_out))


def _eq3_residual(net, graph, X0, X):
    """``||X - (1 b^T + f(X) A + X0 W1^T)||_inf``, the residual of Eq. (3)."""
    f = get_activation(net.activation).f
    R = X - (graph.b + (graph.A.T @ f(X).T).T + X0 @ net.W1.T)  # Eq. (3)
    return float(np.abs(R).max()) if R.size else 0.0


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
        whole-graph fixed point for DEQ, the largest module's Newton /
        fixed-point iterations otherwise, 0 for NN and DAG; the Anderson
        iterations of the DEQ, the interior-point iterations of the
        OPTNET), ``residual`` the Eq. (3) residual on the test set (the
        OPTNET's: its KKT residual).
    """
    config = method_config(method, nodes, seed, settings)
    if data is None:
        data = load_dataset(dataset, int(seed), data_path)
    t0 = time.perf_counter()
    trainer = make_trainer(method, nodes, seed, data.n_features, data.n_classes, settings)
    trainer.deadline = t0 + settings.time_budget
    scale = LR_SCALE[method] if settings.lr_scaling else 1.0
    lr0 = trainer.opt.lr

    def callback(tr, rec):
        tr.opt.lr *= scale  # Table 3: "scaling learningRate", per epoch
        return time.perf_counter() > tr.deadline

    status, message = "ok", ""
    try:
        trainer.fit(data.X_train, data.y_train, data.X_val, data.y_val, callback=callback)
        if time.perf_counter() > trainer.deadline:
            status = "over time"
    except TimeBudgetExceeded:
        status = "over time"
    except ConvergenceError as exc:
        status, message = "diverged", str(exc)
    except FloatingPointError as exc:  # pragma: no cover - numpy errstate raise
        status, message = "diverged", str(exc)
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
            graph = Trainer.prune(trainer)  # the trained graph, past the deadline check
            fwd = forward(trainer.net, data.X_test, graph, atol=config.atol, rtol=config.rtol,
                          solver=config.solver, mode=config.mode, throw=False)
            Z = fwd.Z
            residual = _eq3_residual(trainer.net, graph, fwd.X0, fwd.X)
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


def _run_task(cell, settings, data_paths):
    """Module-level task for process pools and Dask (picklable)."""
    cell = Cell(*cell)
    return run_cell(cell.method, cell.dataset, cell.nodes, cell.seed, settings,
                    data_path=(data_paths or {}).get(cell.dataset))


def grid(datasets, nodes, seeds, methods=METHODS) -> list:
    """The cells of a Table 1 grid, in dataset, nodes, seed, method order
    (open rows such as OPTNET are left out: they are never run)."""
    datasets, methods = list(datasets), list(methods)
    for m in methods:
        _check_method(m)
    for name in datasets:
        if name not in BUILTIN_DATASETS + PAPER_DATASETS:
            raise ValueError(f"datasets: unknown data set {name!r}; expected some of "
                             f"{BUILTIN_DATASETS + PAPER_DATASETS}")
    for name, vals in (("nodes", nodes), ("seeds", seeds)):
        for v in vals:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or \
                    v < (1 if name == "nodes" else 0):
                raise ValueError(f"{name}: expected {'positive' if name == 'nodes' else 'non-negative'}"
                                 f" integers, got {v!r}")
    return [Cell(d, m, int(p), int(s)) for d in datasets for p in nodes for s in seeds
            for m in methods if m not in OPEN_METHODS]


# --------------------------------------------------------------------------- the runs file
def _parse(row):
    out = dict(row)
    for k in _INT:
        out[k] = int(out[k])
    for k in _FLOAT:
        out[k] = float(out[k]) if out[k] not in ("", None) else math.nan
    return out


def _repair(path):
    """Drop a last line cut short by a crash (no newline), so appends stay valid."""
    with open(path, "rb") as fh:
        data = fh.read()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with open(path, "wb") as fh:
            fh.write(data[:cut])
            fh.flush()
            os.fsync(fh.fileno())


def read_runs(path) -> list:
    """The rows of a Table 1 runs CSV (typed; rows cut short by a crash are skipped)."""
    if not os.path.exists(path):
        return []
    rows = []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is not None and tuple(reader.fieldnames) != COLUMNS:
            raise ValueError(f"path: {path} is not a Table 1 runs file (columns "
                             f"{reader.fieldnames})")
        for row in reader:
            if None in row.values() or None in row:
                continue  # incomplete or overlong line
            try:
                rows.append(_parse(row))
            except ValueError:
                continue
    return rows


class _RowWriter:
    """Appends rows to the CSV, one flushed and fsynced line per finished run."""

    def __init__(self, path):
        self.path = path
        new = not os.path.exists(path) or os.path.getsize(path) == 0
        self.fh = open(path, "a", newline="")
        self.writer = csv.DictWriter(self.fh, fieldnames=COLUMNS, lineterminator="\n")
        if new:
            self.writer.writeheader()
            self._sync()

    def _sync(self):
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def write(self, row):
        self.writer.writerow({k: _fmt(row[k]) for k in COLUMNS})
        self._sync()

    def close(self):
        self.fh.close()


def _fmt(v):
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)
    return v


@dataclass
class SweepResult:
    """What :func:`run_sweep` did for a Table 1 grid: ``rows`` (every requested cell's row, in
    grid order, earlier runs included), ``ran`` (cells computed now),
    ``skipped`` (cells found finished in the runs file)."""

    rows: list
    ran: int
    skipped: int


class SweepError(RuntimeError):
    """Some cells of a Table 1 sweep raised; the others were written.  ``failures`` is a list
    of ``(cell, exception)``; a rerun retries exactly the failed cells."""

    def __init__(self, failures):
        self.failures = failures
        shown = "; ".join(f"{c}: {type(e).__name__}: {e}" for c, e in failures[:3])
        more = f" (and {len(failures) - 3} more)" if len(failures) > 3 else ""
        super().__init__(f"{len(failures)} run(s) failed: {shown}{more}")


def _limit_threads():  # pragma: no cover - runs in worker processes
    """One BLAS thread per worker process (the workers are the parallelism)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(1)


def run_sweep(cells: Iterable, path, settings=Settings(), *, n_jobs=1, scheduler=None,
              data_paths=None, progress: Callable | None = None,
              runner: Callable = _run_task) -> SweepResult:
    """Run the cells of a Table 1 grid, resumably (DESIGN.md sec. 10).

    Parameters
    ----------
    cells : iterable of Cell
        E.g. :func:`grid`.  Duplicates are run once.
    path : str
        The runs CSV.  Rows already in it (same :meth:`Settings.fingerprint`)
        are not run again; each new row is appended, flushed and fsynced as
        soon as its run finishes, so a sweep interrupted at any point loses
        only the runs in flight.
    settings : Settings
    n_jobs : int
        Local worker processes (``concurrent.futures.ProcessPoolExecutor``,
        "spawn" start method, one BLAS thread each); 1 runs in this
        process; -1 uses every CPU.
    scheduler : str or dask.distributed.Client, optional
        Run on a Dask cluster (``dask.distributed.Client(scheduler)``; the
        ``dist`` extra) instead of local processes.
    data_paths : dict, optional
        Data set name -> local copy (paper data sets); workers must see the paths.
    progress : callable, optional
        ``progress(row, done, total)``: once at the start with ``done = 0``,
        then after every finished run (``row`` is None for a failed one);
        ``total`` counts the runs to do now (finished ones excluded).
    runner : callable
        ``runner(cell, settings, data_paths) -> row`` (tests replace it).

    Returns
    -------
    SweepResult

    Raises
    ------
    SweepError
        After the sweep, when some runs raised (their rows are not written).
    ValueError
        ``path`` holds rows made with other settings, or bad arguments.
    """
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0 \
            or n_jobs < -1:
        raise ValueError(f"n_jobs: expected a positive integer or -1, got {n_jobs!r}")
    n_jobs = (os.cpu_count() or 1) if n_jobs == -1 else int(n_jobs)
    cells = list(dict.fromkeys(Cell(*c) for c in cells))
    for c in cells:
        _check_method(c.method, runnable=True)
    path = os.fspath(path)
    if os.path.exists(path):
        _repair(path)
    fp = settings.fingerprint()
    existing = read_runs(path)
    other = {r["settings"] for r in existing} - {fp}
    if other:
        raise ValueError(f"path: {path} holds runs made with other settings "
                         f"({', '.join(sorted(other))}, now {fp}); use another output file")
    done = {}
    for r in existing:
        done[Cell(r["dataset"], r["method"], r["nodes"], r["seed"])] = r
    todo = [c for c in cells if c not in done]
    writer = _RowWriter(path)
    failures = []
    count = 0

    def finish(cell, row, exc=None):
        nonlocal count
        count += 1
        if exc is not None:
            failures.append((cell, exc))
        else:
            writer.write(row)
            done[cell] = row
        if progress is not None:
            progress(row, count, len(todo))

    if progress is not None:
        progress(None, 0, len(todo))
    try:
        if not todo:
            pass
        elif scheduler is not None:
            _sweep_dask(todo, settings, data_paths, scheduler, runner, finish)
        elif n_jobs == 1:
            for c in todo:
                try:
                    row = runner(c, settings, data_paths)
                except Exception as exc:
                    finish(c, None, exc)
                else:
                    finish(c, row)
        else:
            _sweep_processes(todo, settings, data_paths, n_jobs, runner, finish)
    finally:
        writer.close()
    if failures:
        raise SweepError(failures)
    return SweepResult([done[c] for c in cells], ran=len(todo), skipped=len(cells) - len(todo))


def _sweep_processes(todo, settings, data_paths, n_jobs, runner, finish):
    import concurrent.futures as cf
    import multiprocessing

    pool = cf.ProcessPoolExecutor(max_workers=min(n_jobs, len(todo)),
                                  mp_context=multiprocessing.get_context("spawn"),
                                  initializer=_limit_threads)
    try:
        futures = {pool.submit(runner, tuple(c), settings, data_paths): c for c in todo}
        for fut in cf.as_completed(futures):
            c = futures[fut]
            exc = fut.exception()
            finish(c, None if exc else fut.result(), exc)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _sweep_dask(todo, settings, data_paths, scheduler, runner, finish):
    try:
        from dask.distributed import Client, as_completed
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("a Dask scheduler needs dask.distributed: install the 'dist' "
                          'extra (pip install -e ".[dist]")') from exc
    own = not isinstance(scheduler, Client)
    client = Client(scheduler) if own else scheduler
    futures = []
    try:
        futures = [client.submit(runner, tuple(c), settings, data_paths, pure=False)
                   for c in todo]
        cell_of = {f.key: c for f, c in zip(futures, todo)}
        for fut in as_completed(futures):
            c = cell_of[fut.key]
            if fut.status == "error":
                finish(c, None, fut.exception())
            else:
                finish(c, fut.result())
    except BaseException:
        if futures:
            client.cancel(futures)
        raise
    finally:
        if own:
            client.close()


# --------------------------------------------------------------------------- summary
def summarize(rows) -> list:
    """Error rate mean and standard deviation per (dataset, method, nodes)
    over the seeds (Table 1's "mean +- std").

    Returns a list of dicts with ``dataset, method, nodes, n, mean, std,
    status`` and ``counts`` (runs per status).  ``mean``/``std`` are over
    the "ok" runs (std with ddof=1, 0 for one run); ``status`` is "over
    time" when any run was over time, else "diverged" when any diverged,
    else "ok".
    """
    groups = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["method"], int(r["nodes"])), []).append(r)
    out = []
    for (d, m, p), rs in groups.items():
        counts = {s: sum(r["status"] == s for r in rs) for s in STATUSES}
        errs = np.array([r["error"] for r in rs if r["status"] == "ok"], dtype=float)
        status = "over time" if counts["over time"] else "diverged" if counts["diverged"] \
            else "ok"
        out.append({"dataset": d, "method": m, "nodes": p, "n": len(rs),
                    "mean": float(errs.mean()) if errs.size else math.nan,
                    "std": float(errs.std(ddof=1)) if errs.size > 1 else 0.0 if errs.size
                    else math.nan,
                    "status": status, "counts": counts})
    return out


def _cell_text(s, digits):
    if s is None:
        return ""
    if s["status"] == "over time":
        return "over time"
    if s["status"] == "diverged":
        bad = s["counts"]["diverged"]
        return f"diverged ({bad}/{s['n']})"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def markdown_table(rows, *, methods=METHODS, nodes=None, datasets=None, digits=3) -> str:
    """Table 1 as Markdown: one table per data set, methods x nodes, cells
    "mean ± std" of the test error rate over the seeds, "over time",
    "diverged (d/n)", "open" for the open rows, empty when not run."""
    summary = {(s["dataset"], s["method"], s["nodes"]): s for s in summarize(rows)}
    if datasets is None:
        datasets = list(dict.fromkeys(s[0] for s in summary))
    if nodes is None:
        nodes = sorted({s[2] for s in summary})
    parts = []
    for d in datasets:
        seeds = sorted({r["seed"] for r in rows if r["dataset"] == d})
        lines = [f"### {d} (test error rate, mean ± std over {len(seeds)} seed"
                 f"{'s' if len(seeds) != 1 else ''})", "",
                 "| Methods | " + " | ".join(str(p) for p in nodes) + " |",
                 "|---|" + "---|" * len(nodes)]
        for m in methods:
            if m in OPEN_METHODS:
                cells = ["open"] * len(nodes)
            else:
                cells = [_cell_text(summary.get((d, m, p)), digits) for p in nodes]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"
