"""The Table 1 experiment of the paper (Sec. 4.1): methods x hidden nodes x seeds.

Layer 5 (DESIGN.md sec. 10 and 14).  One *cell* is ``(dataset, method, nodes,
seed)`` (:mod:`.domain`: methods, settings, grid); :func:`run_cell` (:mod:`.cell`)
trains one model and returns one row (test error rate, epochs, seconds, status);
:func:`run_sweep` (:mod:`.sweep`) runs a grid of cells, serially, on local processes
or on a Dask cluster, appending every finished row to a CSV at once (:mod:`.runs`) so
that an interrupted sweep resumes where it stopped; :func:`summarize` and
:func:`markdown_table` (:mod:`.report`) give the error rate mean +- std per method x
nodes, in the layout of the paper's Table 1.

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
NM regularization (one rate convention: L2 is NM regularization with R = 1, so the
two rows compare equal strengths; :mod:`refimpl.regularization`); "scaling learningRate" 1 for NN and the NMs and 0.1 for
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

from .cell import TimeBudgetExceeded, make_trainer, run_cell
from .domain import (BUILTIN_DATASETS, LR_SCALE, METHODS, OPEN_METHODS, PAPER_DATASETS,
                     PAPER_NODES, QUICK, STATUSES, Cell, Settings, grid, load_dataset,
                     method_config)
from .report import markdown_table, summarize
from .runs import COLUMNS, read_runs
from .sweep import SweepError, SweepResult, run_sweep

__all__ = ["METHODS", "OPEN_METHODS", "PAPER_NODES", "PAPER_DATASETS", "BUILTIN_DATASETS",
           "LR_SCALE", "COLUMNS", "Cell", "Settings", "QUICK", "method_config", "make_trainer",
           "load_dataset",
           "run_cell", "grid", "read_runs", "run_sweep", "SweepResult", "SweepError",
           "summarize", "markdown_table", "TimeBudgetExceeded", "STATUSES"]
