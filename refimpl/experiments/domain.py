"""The Table 1 domain (Sec. 4.1): methods, hyper-parameters, the grid of cells, the data."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass
from typing import NamedTuple

from ..datasets import BUILTIN_DATASETS, PAPER_DATASETS
from ..datasets import load as _load
from ..train import TrainConfig
from ..validation import check_int

__all__ = ["BUILTIN_DATASETS", "LR_SCALE", "METHODS", "OPEN_METHODS", "PAPER_DATASETS", "PAPER_NODES",
           "QUICK", "STATUSES", "Cell", "Settings", "grid", "load_dataset", "method_config"]

#: The rows of Table 1, in the paper's order.
METHODS = ("NN", "DEQ", "DAG", "OPTNET", "NMs", "NMs&L2", "NMs&NM")
#: Rows kept open (shown, never run): none since OPTNET has its QP layer.
OPEN_METHODS = ()
#: The hidden-node counts of Table 1.
PAPER_NODES = (80, 100, 200, 300, 500, 1000, 3000)
#: Table 3's "scaling learningRate": the per-epoch factor of the learning rate.
LR_SCALE = {"NN": 1.0, "DEQ": 0.1, "DAG": 0.1, "OPTNET": 0.1,
            "NMs": 1.0, "NMs&L2": 1.0, "NMs&NM": 1.0}
STATUSES = ("ok", "over time", "diverged")


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
        check_int(self.edges_per_node, "edges_per_node", 1)
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
    variable, see :mod:`refimpl.datasets`; DESIGN.md sec. 11).  Cached per process."""
    if name in BUILTIN_DATASETS + PAPER_DATASETS:
        return _load(name, path, seed=seed)
    raise ValueError(f"dataset: expected one of {BUILTIN_DATASETS + PAPER_DATASETS}, "
                     f"got {name!r}")


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
    for name, vals, lo in (("nodes", nodes, 1), ("seeds", seeds, 0)):
        for v in vals:
            check_int(v, name, lo)
    return [Cell(d, m, int(p), int(s)) for d in datasets for p in nodes for s in seeds
            for m in methods if m not in OPEN_METHODS]
