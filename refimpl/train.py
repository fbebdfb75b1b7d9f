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
- ``"l2"``: plain L2 at the same rate: ``w <- w (1 - eta alpha) - eta dJ/dw``,
  i.e. NM regularization with R = 1 (the rate convention of
  :mod:`refimpl.regularization`: gradient descent on ``J + (alpha/2) sum K^2``, so
  Table 1's NMs&L2 and NMs&NM rows compare equal strengths at a shared alpha).
- ``"none"``.

How the regularizer enters the step (``reg_step``):

- ``"proximal"`` (default): after the optimizer's step on dJ/dw, shrink
  ``w <- w / (1 + eta alpha r)`` (L2: ``/ (1 + eta alpha)``).  This is the
  implicit (backward-Euler) form of Thm. 3.1's update: equal to it to first
  order in eta, and stable for every ``eta alpha r``
  (:func:`refimpl.regularization.nm_proximal` / ``l2_proximal``).
- ``"thm31"``: the explicit update exactly as Thm. 3.1 states it (the
  regularizer's ``alpha r w`` added to the gradient, through the momentum
  buffer with SGD; :func:`refimpl.regularization.nm_gradient` at alpha / 2, or
  ``l2_gradient``).  It flips the sign of w once ``eta alpha r > 1`` and
  diverges beyond 2, which a 200-node module reaches with the paper's
  ``alpha = 1e-3`` (r = z_i z_j ~ 4e4) at any ``eta >= 1e-2``.

Optimizers: SGD with momentum (0.5 by default: the paper's Table 3) or Adam
(:class:`refimpl.optim.Optimizer`); the epoch loop, early stopping and hooks are
:mod:`refimpl.loop`'s.

Backends (``backend``, DESIGN.md section 3): ``"numpy"`` runs the numba path.
Any other backend runs forward, loss and backward on the generic path
(:mod:`refimpl.xp`) and keeps the parameters and the optimizer state on its
device during :meth:`Trainer.fit`, where the optimizer's dense update of K,
W1, Wm happens.  Pruning, Tarjan and the schedule stay on the CPU (numba), so
each step copies the parameters back to the host for them; the regularizer's
term (from the pruned graph's R) is computed there and uploaded.

Cost per mini-batch besides the solves: one compiled pass over K
(:meth:`Trainer._update`, ``Trainer.fused_pass``) forms dL/dK (Eq. 6) in blocks of
:data:`GRAD_BLOCK_ROWS` rows from backward's factors (``grad_K="factors"``: a BLAS
product into a kept, cache-sized block, so the dense p x p dL/dK never goes to memory;
``Trainer.blocked_grad``) and does the optimizer's step, the
regularizer's proximal step (R of Eq. 10 as rank one plus the kept edges, never
formed densely: :func:`refimpl.regularization.nm_repulsion_sparse`) and collects the
entries above 0.97 of the current gamma (0.9 for a while after gamma fell), among
which the next top-k pruning selects
(:func:`refimpl.graph.prune_top_k_incremental`, the same graph as ``prune``;
``structure="dag"`` takes ``prune(..., eligible=)``).  The result is bit for bit that
of the separate passes (``Trainer.fused_pass = False``: ``Optimizer.step``,
``nm_proximal`` / ``l2_proximal``, a pruning scan of its own; tested) given the same
dL/dK; the blocked dL/dK equals backward's dense one up to BLAS's summation order in
a block (within ``2 B eps (|F| |U|^T)`` per entry; ``Trainer.blocked_grad = False``
takes the dense one; tested).  With ``reg_step="thm31"`` dL/dK is dense (the
regularizer's term is added to it).

Everything is seeded (``np.random.default_rng(seed)``): the same config and
data give the same trajectory, and a run resumed from a checkpoint continues
it bit for bit.  Progress is reported through callbacks; nothing prints.
"""
from __future__ import annotations

import contextlib
import dataclasses
import mmap
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass

import numba
import numpy as np

from .backend import BackendError, get_backend, is_reference, to_numpy
from .graph.prune import (_collect_flagged, candidate_capacity, candidate_threshold,
                          fallen_countdown, prune, prune_top_k_incremental)
from .io import CheckpointError, load_checkpoint, save_checkpoint
from .loop import EarlyStopping, EpochTrainer, Hook
from .model import NMNetwork, loss_and_grad, output_loss
from .optim import Optimizer, _adam_entry, _sgd_entry
from .propagate import SOLVERS, forward
from .regularization import (_proximal_entry, l2_gradient, l2_proximal, nm_proximal,
                             nm_rate_times, nm_repulsion_sparse)
from .solvers.result import ConvergenceError, SolveStatus
from .threads import with_threads
from .validation import check_int, check_rows, check_scalar, check_threads

__all__ = ["TrainConfig", "Trainer", "predict_proba", "predict", "CheckpointError",
           "TrainingDivergedError", "FORMAT"]


class TrainingDivergedError(FloatingPointError):
    """The loss or a parameter became NaN or infinite during training (Alg. 2).

    The message names the epoch and what to change; the trainer's state is that
    of the failing mini-batch (the last checkpoint of a command-line run is intact).
    """

#: Tag and version written into every checkpoint.
FORMAT = "refimpl-nm-checkpoint/1"


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
        Regularization strength (Table 3: 1e-3), one rate for both regularizers:
        NM shrinks by ``eta alpha r``, L2 by ``eta alpha`` (NM with R = 1).
    reg_step : {"proximal", "thm31"}
        How the regularizer enters the step (see the module docstring).
    activation, output : str
        f and g (DESIGN.md sec. 2).  Training classifies integer labels, so g
        is ``"softmax"`` with cross-entropy (Sec. 3.3); other outputs need
        targets (:func:`refimpl.loss_and_grad` with T).
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
    backend : str, namespace module or Backend
        ``"numpy"`` (numba, the reference), ``"cupy"`` or another backend of
        :func:`refimpl.get_backend` (see the module docstring); checkpoints
        store its name.
    structure : {"graph", "dag"}
        "dag": K restricted to its strict upper triangle (node order 0..p-1),
        the DAG baseline of Table 1: every module is a singleton.
    seed : int
        Non-negative: every random draw of the run derives from it.
    threads : int or None
        numba and BLAS threads while training (:mod:`refimpl.threads`).
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
    threads: int | None = None
    backend: object = "numpy"

    def __post_init__(self):
        check_threads(self.threads)
        for name in ("nodes", "epochs", "batch_size"):
            check_int(getattr(self, name), name, 1)
        if self.nodes < 2:  # no off-diagonal entry: nothing to prune, gamma undefined
            raise ValueError(f"nodes: a graph needs at least 2 hidden nodes to have an edge, "
                             f"got {self.nodes}")
        if self.edges is not None:
            check_int(self.edges, "edges", 1)
            if self.edges > self.nodes * (self.nodes - 1):
                raise ValueError(f"edges: at most nodes*(nodes-1) = "
                                 f"{self.nodes * (self.nodes - 1)}, got {self.edges}")
        if self.patience is not None:
            check_int(self.patience, "patience", 1)
        for name in ("lr", "atol", "rtol", "init_scale"):
            check_scalar(getattr(self, name), name, minimum=0.0, strict=True)
        if not check_scalar(self.momentum, "momentum", minimum=0.0) < 1.0:
            raise ValueError(f"momentum: expected a number in [0, 1), got {self.momentum!r}")
        check_int(self.seed, "seed", 0)
        check_scalar(self.alpha, "alpha", minimum=0.0)
        if self.gamma is not None:
            check_scalar(self.gamma, "gamma", minimum=0.0)
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
        if self.solver not in SOLVERS:
            raise ValueError(f"solver: expected one of {SOLVERS}, got {self.solver!r}")
        if self.output != "softmax":  # the labels are classes: cross-entropy on softmax
            raise ValueError(f"output: training classifies integer labels with softmax and "
                             f"cross-entropy (Sec. 3.3), got {self.output!r}; other outputs "
                             "need targets: refimpl.loss_and_grad with T")
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

#: The scan threshold that finds only NaN and inf (no candidate is collected).
_NONFINITE_ONLY = float(np.finfo(np.float64).max)
#: Rows of dL/dK formed per BLAS call inside the update pass (``Trainer.blocked_grad``):
#: 64 x 3000 float64 is 1.5 MB, cache-resident while the pass reads it.
GRAD_BLOCK_ROWS = 64


@numba.njit(cache=True, error_model="numpy")
def _update_rows(K, G, g0, j0, j1, M, V, adam, mu, b1, a1, b2, a2, c1, c2, lr, eps,
                 z, indptr, indices, d, alpha, row, flag, t, idx, vals, count):
    """:func:`_update_pass` on the rows ``j0:j1`` of K only, their gradient rows
    ``G[j - g0]`` (G: the whole dL/dK with ``g0 = 0``, or a block of its rows with
    ``g0 = j0``), continuing the candidate ``count`` of the rows before (0 at row 0).
    Returns the new count (-1: overflow, -2: NaN or inf, as :func:`_update_pass`)."""
    p = K.shape[0]
    for j in range(j0, j1):
        Kj, Mj, Gj, Vj = K[j], M[j], G[j - g0], V[j]
        zj = z[j]
        if adam:
            for i in range(p):
                u, Mj[i], Vj[i] = _adam_entry(Kj[i], Mj[i], Vj[i], Gj[i], b1, a1, b2, a2,
                                              c1, c2, lr, eps)
                row[i] = u
                w = _proximal_entry(u, lr, alpha, zj * z[i])  # Eq. (10), d = 1
                Kj[i] = w
                flag[i] = 0 if abs(w) <= t else 1
        else:
            for i in range(p):
                u, Mj[i] = _sgd_entry(Kj[i], Mj[i], Gj[i], mu, lr)
                row[i] = u
                w = _proximal_entry(u, lr, alpha, zj * z[i])  # Eq. (10), d = 1
                Kj[i] = w
                flag[i] = 0 if abs(w) <= t else 1
        Kj[j] = row[j]  # biases: not penalized
        flag[j] = 0 if abs(row[j]) <= t else 1
        for ptr in range(indptr[j], indptr[j + 1]):
            i = indices[ptr]
            w = _proximal_entry(row[i], lr, alpha, zj * z[i] / d[ptr])  # a kept edge
            Kj[i] = w
            flag[i] = 0 if abs(w) <= t else 1
        count = _collect_flagged(Kj, j, flag, idx, vals, count)
        if count == -2:
            return -2
    return count


@numba.njit(cache=True, error_model="numpy")
def _update_pass(K, G, M, V, adam, mu, b1, a1, b2, a2, c1, c2, lr, eps,
                 z, indptr, indices, d, alpha, row, flag, t, idx, vals):
    """Alg. 2 line 11 on K, the regularizer's proximal step and the next pruning's
    candidates in one pass over K, entry by entry:

    - the optimizer's step (:func:`refimpl.optim._sgd_entry` / ``_adam_entry``, bit for
      bit :meth:`Optimizer.step`);
    - the implicit form of Thm. 3.1 with step ``lr``
      (:func:`refimpl.regularization._proximal_entry` with ``r = z_j z_i`` off the
      kept edges and ``z_j z_i / d`` on them, Eq. 10; bit for bit :func:`nm_proximal`;
      L2: z = 1 and no kept edge; no regularizer: ``alpha = 0``, ``w / 1.0 = w``);
      the biases (diagonal) are not shrunk;
    - the flat indices of the off-diagonal entries of the new K with ``|K| > t`` into
      ``idx``, their values into ``vals``: each entry is flagged as it is written, then
      the row's flags are read 8 at a time (:func:`refimpl.graph.prune._collect_flagged`).

    ``row``: a (p,) scratch row (the stepped, not yet shrunk values); ``flag``: a uint8
    scratch row, its length a multiple of 8.  Returns the candidate count as
    :func:`refimpl.graph.prune._collect_above` returns it for the new K (-1: more than
    ``idx.size``), or -2 when the new K has a NaN or inf entry (looked for in every row,
    also after an overflow).  :func:`_update_rows` does the same on a block of rows."""
    return _update_rows(K, G, 0, 0, K.shape[0], M, V, adam, mu, b1, a1, b2, a2, c1, c2,
                        lr, eps, z, indptr, indices, d, alpha, row, flag, t, idx, vals, 0)


def _update_blocked(K, factors, lower, buf, args, tail):
    """:func:`_update_rows` over blocks of ``buf.shape[0]`` rows, each block's dL/dK
    (Eq. 6) formed just before into ``buf`` (kept, cache-sized): ``F[j0:j1] @ U.T``
    (BLAS), its diagonal entries ``U.sum(axis=1)`` (the biases), ``lower`` (DAG: the
    strict lower triangle, a bool (p, p) array, or None) set to 0.  The dense dL/dK never
    goes to memory.  ``args``: the optimizer's scalars and state after G's place
    (``M, V, adam, ... eps``), ``tail``: ``z ... vals``.  The entries equal the dense
    product's to BLAS's summation order (one row block may sum in another order than
    the whole product: within ``2 B eps (|F| |U|^T)`` per entry)."""
    F, U = factors
    p = K.shape[0]
    blk = buf.shape[0]
    UT = U.T
    diag = U.sum(axis=1)
    flat = buf.reshape(-1)
    count = 0
    for j0 in range(0, p, blk):
        j1 = min(p, j0 + blk)
        Gb = buf[:j1 - j0]
        np.matmul(F[j0:j1], UT, out=Gb)  # Eq. (6): dL/dK[j, i] = sum_b f(x_j) u_i
        flat[j0:j0 + (j1 - j0) * (p + 1):p + 1] = diag[j0:j1]  # Eq. (6): the biases
        if lower is not None:
            np.putmask(Gb, lower[j0:j1], 0.0)
        count = _update_rows(K, Gb, j0, j0, j1, *args, *tail, count)
        if count == -2:
            return -2
    return count


def _keeps_params(hook):
    """Whether ``hook``'s per-batch methods leave the parameters alone, so that the
    update pass's candidate scan still describes K at the next pruning (Alg. 2 line 5):
    each of ``before_batch`` / ``after_batch`` is :class:`refimpl.loop.Hook`'s no-op,
    absent, or overridden in a class at or below one that declares
    ``keeps_params = True`` (a subclass that overrides them again must promise again;
    methods set on the instance never count as kept)."""
    mro = type(hook).__mro__
    for name in ("before_batch", "after_batch"):
        if name in getattr(hook, "__dict__", {}):
            return False
        promised = None  # the nearest declaration at or below the defining class
        for klass in mro:
            own = vars(klass)
            if promised is None and "keeps_params" in own:
                promised = own["keeps_params"] is True
            if name in own:
                if klass is not Hook and not promised:
                    return False
                break
    return True


def _kept_flat(graph):
    """The kept edges of ``graph`` as sorted flat (row-major) indices into K."""
    A = graph.A
    rows = np.repeat(np.arange(graph.p, dtype=np.int64), np.diff(A.indptr))
    return rows * graph.p + A.indices  # sorted: CSR rows in order, columns ascending


def _count_new(keep, prev):
    """How many of the sorted indices ``keep`` are not in the sorted ``prev``: the
    edges regrown since the last epoch (pruned then, kept now; dynamic pruning's
    feedback, Sec. 3.2), in O(k log k) instead of two dense p x p masks."""
    if prev.size == 0:
        return int(keep.size)
    at = np.minimum(np.searchsorted(prev, keep), prev.size - 1)
    return int(np.count_nonzero(prev[at] != keep))


def _error(net, graph, X, y, atol, rtol, solver, mode="levels", backend="numpy"):
    if is_reference(backend):
        fwd = forward(net, X, graph, atol=atol, rtol=rtol, solver=solver, mode=mode)
    else:
        from .xp import forward as generic_forward

        fwd = generic_forward(net, X, graph, atol=atol, rtol=rtol, solver=solver, mode=mode,
                              backend=backend)
    Z = to_numpy(fwd.Z)
    loss, _ = output_loss(Z, y, net.output)
    return loss, float(np.mean(np.argmax(Z, axis=1) != y)), fwd


#: Arrays of at least this many bytes get their own anonymous mapping in
#: :func:`_copy_plain_pages` (NumPy's own threshold for asking for huge pages).
PLAIN_PAGES_MIN_BYTES = 1 << 22


def _copy_plain_pages(a):
    """A C-contiguous copy of ``a`` for the best-epoch snapshot (Alg. 2's early stopping);
    from :data:`PLAIN_PAGES_MIN_BYTES` on, in a new anonymous mapping (:mod:`mmap`) that,
    unlike NumPy's large arrays, is not marked for transparent huge pages
    (``madvise(MADV_HUGEPAGE)``).  Where the kernel compacts memory to find huge pages for
    such an array (Linux's THP ``defrag = madvise``, a common default), the first
    snapshot of the 72 MB K at p = 3000 took 177-276 ms in a first epoch, against 38-48
    ms in this mapping (benchmarks/TRAINING.md); a NumPy copy takes 11-20 ms only
    when huge pages happen to be at hand.  The snapshot is written once per better
    epoch and read at the end, so its pages' size does not matter otherwise.  On Linux
    the kernel faults the pages in at once (``MAP_POPULATE``: 37-43 ms against 44-64 ms
    page by page for 72 MB).  The copy is an ordinary writable ndarray (it owns the
    mapping through its base; it pickles and saves like any other); where no mapping can
    be made, NumPy's copy is taken."""
    a = np.asarray(a)
    if a.nbytes < PLAIN_PAGES_MIN_BYTES or a.nbytes == 0:  # (no mapping of 0 bytes)
        return np.array(a, copy=True, order="C")
    try:
        if hasattr(mmap, "MAP_ANONYMOUS"):  # POSIX
            flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)
            buf = mmap.mmap(-1, a.nbytes, flags=flags)
        else:  # Windows: an anonymous mapping by fileno -1
            buf = mmap.mmap(-1, a.nbytes)
    except (OSError, ValueError, OverflowError):  # no room for a mapping: NumPy's memory
        return np.array(a, copy=True, order="C")
    out = np.frombuffer(buf, dtype=a.dtype).reshape(a.shape)
    np.copyto(out, a)
    return out


class BestParams(Mapping):
    """The parameters of the best epoch so far (:attr:`Trainer.best`: Alg. 2 with early
    stopping on a validation split, DESIGN.md sec. 6): ``K``, ``W1``, ``Wm`` and
    ``gamma`` (a 0-d array), read-only from outside.

    Reading an entry gives a **copy**; the snapshot's own arrays never leave it, so
    once nobody holds a snapshot, the trainer writes a later best epoch into its
    memory instead of new arrays (:meth:`Trainer._snapshot`): a fresh p x p array
    would cost its page faults at every better epoch (benchmarks/TRAINING.md
    has the measurement).  The trainer keeps the last snapshot's arrays for that reuse
    until a :meth:`Trainer.fit` ends with no snapshot holding them.  A snapshot that is
    still held (kept by the caller, say) is never overwritten: its values stay those of
    its epoch."""

    __slots__ = ("_arrays", "__weakref__")

    def __init__(self, arrays):
        self._arrays = dict(arrays)

    def __getitem__(self, name):
        return self._arrays[name].copy()

    def __iter__(self):
        return iter(self._arrays)

    def __len__(self):
        return len(self._arrays)

    def __contains__(self, name):  # (Mapping's would copy the entry)
        return name in self._arrays

    def __copy__(self):  # read-only: a shallow copy is the snapshot itself, whose
        return self      # reference keeps its arrays from being reused

    def __repr__(self):
        shapes = ", ".join(f"{k}: {v.shape}" for k, v in self._arrays.items())
        return f"BestParams({shapes})"


def _own_float64(a):
    """``a`` as a float64 array the caller may write into and keep: ``a`` itself when it
    already is one (C-contiguous, writeable, owning its memory), else a copy."""
    a = np.asarray(a, dtype=np.float64)
    if a.flags.c_contiguous and a.flags.writeable and a.flags.owndata:
        return a
    return np.array(a, dtype=np.float64, order="C", copy=True)


def _arrays_of(best):
    """The arrays of a snapshot without copying them (a :class:`BestParams`, or the
    plain dict a caller may have set as ``best``)."""
    return best._arrays if isinstance(best, BestParams) else dict(best)


@dataclass
class EpochRecord:
    """One row of the training history: one epoch of Alg. 2 (the history
    DESIGN.md sec. 6 lists)."""

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


class Trainer(EpochTrainer):
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
        self._eligible = None
        if config.structure == "dag":
            upper = np.triu(np.ones((config.nodes, config.nodes), dtype=bool), 1)
            self._eligible, self._lower = upper, np.tril(~upper, -1)
            self.net.K[self._lower] = 0.0
        self.rng = np.random.default_rng(seeds[1])
        self.opt = Optimizer.from_config(config, {n: getattr(self.net, n).shape for n in PARAMS})
        self.epoch = 0
        self.history: list[dict] = []
        self.stopping = EarlyStopping(config.patience)
        self.gamma = np.nan
        self._prev_keep = None  # the flat indices of the kept edges at the last epoch's end
        self._gamma_hint = np.nan  # the last top-k gamma: prune_top_k_incremental's start
        self._fallen = 0  # prunings left whose candidate scan is at FALLEN_FRACTION
        self.extra: dict = {}
        #: One compiled pass over K per mini-batch for the update, the proximal step and
        #: the next pruning's candidates (:meth:`_update`); False runs them as separate
        #: passes (the reference the tests compare with, bit for bit).
        self.fused_pass = True
        self._candidates = None  # (K, gamma_prev, idx, vals, count) of the last fused pass
        self._scan_ok = False  # set by fit: no hook runs between the pass and pruning
        self._idx = None
        #: With the fused pass, dL/dK (Eq. 6) is formed in blocks of
        #: :data:`GRAD_BLOCK_ROWS` rows inside it from backward's factors
        #: (``grad_K="factors"``) and never goes to memory as a p x p array; False
        #: takes backward's dense dL/dK (the reference the tests compare with: equal up
        #: to BLAS's summation order per block).
        self.blocked_grad = True
        self._gbuf = None  # the kept (GRAD_BLOCK_ROWS, p) block of dL/dK
        self._scratch = None
        #: (weak reference to the last BestParams taken, its arrays): :meth:`_snapshot`
        #: reuses them once nobody holds that snapshot
        self._last_snapshot = (None, None)

    def __getstate__(self):
        # a weak reference does not pickle: a copy (pickle, deepcopy, sklearn's clone of
        # a fitted estimator) starts without snapshot memory to reuse
        return {**self.__dict__, "_last_snapshot": (None, None)}

    def __setstate__(self, state):
        if "_prev_mask" in state:  # pickled by an earlier version: the dense mask
            mask = state.pop("_prev_mask")
            state["_prev_keep"] = None if mask is None else np.flatnonzero(mask.ravel())
        self.__dict__.update({"_last_snapshot": (None, None), "_fallen": 0, **state})

    # ------------------------------------------------------------ pruning
    def prune(self):
        """The pruned graph at the current K (Alg. 2 line 5).  With
        ``structure="dag"`` only the strict upper triangle is eligible."""
        c = self.config
        if c.gamma is not None:
            return prune(self.net.K, gamma=c.gamma, eligible=self._eligible)
        if self._eligible is not None:
            return prune(self.net.K, k=c.k, eligible=self._eligible)
        # the same graph as prune(K, k=k), partitioning only |K| > 0.97 gamma_prev
        candidates, self._candidates = self._candidates, None
        if candidates is not None:  # the scan of the update pass, if of this K and gamma
            K_scanned, gamma_prev, idx, vals, count = candidates
            candidates = None
            if K_scanned is self.net.K and gamma_prev == self._gamma_hint:
                candidates = (idx, vals, count)
        graph = prune_top_k_incremental(self.net.K, c.k, self._gamma_hint,
                                        candidates=candidates)
        # after a fall of gamma the narrow margin missed: the update pass's next scans
        # take the wider one (else one more scan of K per batch while gamma keeps falling)
        self._fallen = fallen_countdown(self._fallen, graph.gamma, self._gamma_hint)
        self._gamma_hint = graph.gamma
        return graph

    def _reg_gradient(self, graph):
        """The regularizer's term added to dJ/dK by ``reg_step="thm31"``: Thm. 3.1's
        ``alpha r w`` (the gradient of Eq. 11 at alpha / 2, proofs/thm3_1.md; computed by
        :func:`refimpl.regularization.nm_rate_times` in O(edges + p) besides one pass
        over K), or L2's ``alpha w`` (R = 1: the rate convention of
        :mod:`refimpl.regularization`)."""
        c = self.config
        if c.reg == "nm":
            return nm_rate_times(self.net.K, graph, c.alpha)  # Thm. 3.1: alpha r_ij w_ij
        return l2_gradient(self.net.K, c.alpha / 2)  # alpha w_ij: Thm. 3.1 with r = 1

    def _reg_shrink(self, graph):
        """The implicit form of the same shrinkage, in place (``reg_step="proximal"``;
        for NM R of Eq. 10 is held constant for the step and never formed densely)."""
        c = self.config
        if c.reg == "nm":
            nm_proximal(self.net.K, graph, c.alpha, self.opt.lr, out=self.net.K)
        else:
            l2_proximal(self.net.K, c.alpha, self.opt.lr, out=self.net.K)

    # ------------------------------------------------------------ training
    @with_threads(get=lambda self: self.config.threads)
    def fit(self, X, y, X_val=None, y_val=None, *, epochs=None, callback=None, hooks=()):
        """Run epochs of Alg. 2 (until ``config.epochs`` in total, or
        ``epochs`` more) with :func:`refimpl.loop.run_epochs`.
        ``callback(trainer, record)`` is called after each epoch; returning
        True stops training.  ``hooks``: more :class:`refimpl.loop.Hook`
        objects.  A run that early stopping ended trains no more epochs (also
        after :meth:`load`; ``trainer.stopping.stale = 0`` trains on).  Returns
        the history."""
        c = self.config
        self._device = None
        if not is_reference(c.backend):  # parameters and optimizer state to the device
            bk = get_backend(c.backend)
            dev = bk.device
            if dev is None:
                import array_api_compat

                dev = array_api_compat.device(bk.xp.empty(0))
            self._device = (bk, dev, {n: bk.xp.asarray(getattr(self.net, n), device=dev)
                                      for n in PARAMS})
            self.opt.to(bk.xp, dev)
        # the update pass's candidates serve the next prune unless a hook runs in between
        # (before_batch / after_batch may change K; the epoch's end clears them)
        hooks = list(hooks)  # (an iterator would be used up here)
        self._scan_ok = all(_keeps_params(h) for h in hooks)
        self._candidates = None
        try:
            return super().fit(X, y, X_val, y_val, epochs=epochs, callback=callback,
                               hooks=hooks)
        finally:
            self._scan_ok, self._candidates = False, None
            if self._last_snapshot[0] is not None and self._last_snapshot[0]() is None:
                self._last_snapshot = (None, None)  # no snapshot holds them: let them go
            if self._device is not None:  # the host copy is current after every step
                self.opt.to(np, None)
                self._device = None

    def begin_epoch(self):
        """Reset the epoch's sums (:func:`refimpl.loop.run_epochs`); on a device, take
        the parameters from the host copies again (an ``after_epoch`` hook may have
        changed them there, as :class:`refimpl.loop.Hook` allows)."""
        self._loss_sum = self._err_sum = 0.0
        self._iters = []
        if getattr(self, "_device", None) is not None:
            self._upload_params()

    def _upload_params(self):
        """The device copies of K, W1, Wm from the host copies (the generic path)."""
        bk, dev, params = self._device
        for name in PARAMS:
            params[name] = bk.xp.asarray(getattr(self.net, name), device=dev)

    def train_batch(self, X, y):
        """One mini-batch of Alg. 2 (lines 5-11): prune, forward, loss, backward, update
        the dense K, W1, Wm with the optimizer and the regularizer."""
        c = self.config
        if getattr(self, "_device", None) is not None:
            return self._train_batch_generic(X, y)
        graph = self.prune()
        blocked = self._blocked_grad()
        with self._divergence(self.epoch + 1, values=True):
            loss, grads, fwd = loss_and_grad(self.net, X, y, graph, atol=c.atol, rtol=c.rtol,
                                             solver=c.solver, mode=c.mode,
                                             grad_K="factors" if blocked else "dense")
        gK = grads.K  # None when blocked: formed in row blocks by the update pass
        if c.structure == "dag" and not blocked:
            gK[self._lower] = 0.0  # the lower triangle stays 0
        if c.reg != "none" and c.reg_step == "thm31":
            gK = gK + self._reg_gradient(graph)  # Thm. 3.1: dJ/dw + alpha r w
        self._update(graph, gK, grads)
        self._check_loss(loss)
        self._loss_sum += loss * y.shape[0]
        self._err_sum += float(np.sum(np.argmax(fwd.Z, axis=1) != y))
        self._iters.append(fwd.iterations)
        return loss

    def _blocked_grad(self):
        """Whether this batch's dL/dK is formed in row blocks inside the update pass
        (:attr:`blocked_grad` with the fused pass; not with ``reg_step="thm31"``, whose
        regularizer term is added to a dense dL/dK)."""
        c = self.config
        return (self.blocked_grad and self.fused_pass and self.opt.fused
                and not (c.reg != "none" and c.reg_step == "thm31"))

    def _update(self, graph, gK, grads):
        """Alg. 2 line 11 (the optimizer's step on K, W1, Wm) and the proximal form of
        Thm. 3.1 (``reg_step="proximal"``), given the batch's pruned ``graph``.

        With :attr:`fused_pass` (the default), K takes one compiled pass
        (:func:`_update_pass`): the step, the proximal step (R of Eq. 10 as
        :func:`nm_repulsion_sparse` gives it; L2: R = 1) and, for top-k pruning
        during :meth:`fit`, the candidates of the next :meth:`prune` (|K| above
        0.97 of this graph's gamma; 0.9 for 16 prunings after gamma fell by 3-10 %:
        :func:`refimpl.graph.prune.fallen_countdown`); bit for bit the separate
        passes.  With ``gK`` None
        (:attr:`blocked_grad`), dL/dK is formed from ``grads.K_factors`` in blocks of
        rows inside that pass (:func:`_update_blocked`).  A NaN or inf in the new K
        raises :class:`TrainingDivergedError` at once."""
        c = self.config
        params = {"K": self.net.K, "W1": self.net.W1, "Wm": self.net.Wm}
        proximal = c.reg != "none" and c.reg_step == "proximal"
        deferred = self.opt.step(params, {"K": gK, "W1": grads.W1, "Wm": grads.Wm},
                                 defer=("K",) if self.fused_pass else ())
        if "K" not in deferred:
            if proximal:
                self._reg_shrink(graph)  # implicit form of Thm. 3.1
            return
        p = c.nodes
        alpha = float(c.alpha) if proximal else 0.0  # alpha = 0: w / 1.0 = w, no shrinkage
        if proximal and c.reg == "nm":
            z, indptr, indices, d = nm_repulsion_sparse(graph)  # Eq. (9)-(10)
        else:  # L2 is NM with R = 1 (no kept edge, z = 1)
            z, indptr = np.ones(p), np.zeros(p + 1, dtype=np.int32)
            indices, d = np.zeros(0, dtype=np.int32), np.zeros(0)
        t = candidate_threshold(graph.gamma, fallen=self._fallen > 0)
        scan = (self._scan_ok and c.gamma is None and self._eligible is None
                and np.isfinite(t) and t > 0.0)
        n = candidate_capacity(c.k) if scan else 0
        if self._idx is None or self._idx[0].size != n:  # kept: 16 k entries
            self._idx = (np.empty(n, dtype=np.int64), np.empty(n))
        idx, vals = self._idx
        if self._scratch is None or self._scratch[0].size != p:
            self._scratch = (np.empty(p), np.zeros(-(-p // 8) * 8, dtype=np.uint8))
        tail = (z, indptr, indices, d, alpha, *self._scratch,
                t if scan else _NONFINITE_ONLY, idx, vals)
        if gK is None:  # Eq. (6) in row blocks: the dense dL/dK never goes to memory
            rows = min(p, GRAD_BLOCK_ROWS)
            if self._gbuf is None or self._gbuf.shape != (rows, p):
                self._gbuf = np.empty((rows, p))
            count = _update_blocked(self.net.K, grads.K_factors,
                                    self._lower if c.structure == "dag" else None,
                                    self._gbuf, deferred["K"], tail)
        else:
            count = _update_pass(self.net.K, gK, *deferred["K"], *tail)
        if count == -2:
            self._check_finite()  # raises TrainingDivergedError
        self._candidates = (self.net.K, graph.gamma, idx, vals, count) if scan else None

    def _train_batch_generic(self, X, y):
        """:meth:`train_batch` on the generic path: forward, loss and backward
        there (Eq. 3-8), the optimizer's dense update of the device copies of
        K, W1, Wm, then the host copies refreshed for the next pruning."""
        from .xp import loss_and_grad as generic_loss_and_grad

        c = self.config
        if not self._scan_ok:  # a per-batch hook may have changed the host copies
            self._upload_params()
        bk, dev, params = self._device
        xp = bk.xp
        graph = self.prune()
        yd = xp.asarray(y, device=dev)
        with self._divergence(self.epoch + 1):  # (as train_batch on the numba path)
            loss, grads, fwd = generic_loss_and_grad(
                self.net, xp.asarray(X, device=dev), yd, graph, backend=bk, atol=c.atol,
                rtol=c.rtol, solver=c.solver, mode=c.mode)
        gK = grads.K
        if c.structure == "dag":
            gK = xp.where(xp.asarray(self._lower, device=dev), 0.0, gK)  # stays 0
        if c.reg != "none" and c.reg_step == "thm31":
            gK = gK + xp.asarray(self._reg_gradient(graph), device=dev)  # Thm. 3.1
        self.opt.step(params, {"K": gK, "W1": grads.W1, "Wm": grads.Wm})
        for name in PARAMS:  # pruning and the schedule run on the host
            setattr(self.net, name, to_numpy(params[name]).copy())
        if c.reg != "none" and c.reg_step == "proximal":
            self._reg_shrink(graph)  # implicit form of Thm. 3.1, on the host copy
            params["K"] = xp.asarray(self.net.K, device=dev)
        self._check_loss(loss)
        wrong = xp.argmax(fwd._Zc, axis=1) != xp.astype(yd, xp.int64)
        self._loss_sum += loss * y.shape[0]
        self._err_sum += float(xp.sum(xp.astype(wrong, xp.float64)))
        self._iters.append(fwd.iterations)
        return loss

    @contextlib.contextmanager
    def _divergence(self, epoch, values=False):
        """Around a solve of epoch ``epoch``: a failure because the parameters or the
        computed values became NaN or inf is raised as :class:`TrainingDivergedError`
        (a ConvergenceError with status NONFINITE; with ``values``, also a ValueError
        about NaN or inf, e.g. in G = dL/dZ); any other error stands (a module solve
        that failed with finite values, a bad input or option: the caller's)."""
        try:
            yield
        except (ConvergenceError, ValueError) as exc:
            if isinstance(exc, ValueError) and not (values and "NaN or inf" in str(exc)):
                raise
            self._check_finite(exc)  # non-finite parameters: said as such
            if isinstance(exc, ConvergenceError) and exc.status != SolveStatus.NONFINITE:
                raise
            raise TrainingDivergedError(
                f"epoch {epoch}: the forward/backward values became non-finite ({exc}); try "
                "a lower learning rate (--lr) or standardized inputs") from exc

    def _check_loss(self, loss):
        """Raise :class:`TrainingDivergedError` naming the epoch on a non-finite loss."""
        if not np.isfinite(float(loss)):
            raise TrainingDivergedError(
                f"epoch {self.epoch + 1}: the training loss became {loss} (not finite); "
                "try a lower learning rate (--lr) or standardized inputs")

    def _check_finite(self, cause=None, names=PARAMS):
        """Raise :class:`TrainingDivergedError` naming the epoch when a parameter of
        ``names`` is NaN or infinite (``cause``: the error that revealed it)."""
        for name in names:
            if not np.isfinite(getattr(self.net, name)).all():
                raise TrainingDivergedError(
                    f"epoch {self.epoch + 1}: the parameters {name} became non-finite; "
                    "try a lower learning rate (--lr) or standardized inputs") from cause

    def end_epoch(self, t0):
        """Close an epoch: gamma (Alg. 2 line 13), the record, the validation score."""
        c = self.config
        # the last fused pass looked at every entry of K (and raised on NaN or inf), and
        # no hook ran after it that may change K (_candidates is only kept then)
        scanned = self._candidates is not None and self._candidates[0] is self.net.K
        self._check_finite(names=("W1", "Wm") if scanned else PARAMS)
        self.epoch += 1
        graph = self.prune()
        self._candidates = None  # after_epoch hooks may change K
        self.gamma = graph.gamma  # Alg. 2 line 13
        keep = _kept_flat(graph)
        regrown = 0 if self._prev_keep is None else _count_new(keep, self._prev_keep)
        self._prev_keep = keep
        sizes = graph.schedule.module_sizes
        val_loss = val_err = None
        X_val, y_val = self._val
        if X_val is not None:
            with self._divergence(self.epoch):  # (NaN/inf values: as in a batch)
                val_loss, val_err, _ = _error(self.net, graph, X_val, y_val, c.atol, c.rtol,
                                              c.solver, c.mode, c.backend)
        n = self._n
        rec = EpochRecord(
            epoch=self.epoch, loss=float(self._loss_sum / n),
            train_error=float(self._err_sum / n), val_loss=val_loss, val_error=val_err,
            edges=graph.n_edges, regrown=regrown, modules=int(np.sum(sizes > 1)),
            largest_module=int(sizes.max(initial=0)), levels=graph.schedule.n_levels,
            newton_iterations=float(np.mean(self._iters)), gamma=float(graph.gamma),
            seconds=time.perf_counter() - t0)
        self.history.append(dataclasses.asdict(rec))

        return rec, (val_loss if c.monitor == "val_loss" else val_err), self._snapshot

    def _snapshot(self):
        """The parameters and gamma now, as a :class:`BestParams` (the best epoch's
        snapshot, taken when :class:`refimpl.loop.EarlyStopping` finds a better one,
        after letting the old one go).  The values are written into the arrays of the
        previous snapshot when nobody holds it any more (its weak reference is dead: it
        is unreachable, and its arrays never left it), else into new arrays."""
        values = {name: getattr(self.net, name) for name in PARAMS}
        values["gamma"] = np.array(self.gamma)
        ref, free = self._last_snapshot
        if (free is not None and ref() is None
                and all(free[k].shape == v.shape and free[k].dtype == v.dtype
                        for k, v in values.items())):
            for k, v in values.items():
                np.copyto(free[k], v)
            arrays = free
        else:
            arrays = {k: _copy_plain_pages(v) for k, v in values.items()}
        return self._keep_snapshot(arrays)

    def _keep_snapshot(self, arrays):
        """A :class:`BestParams` of ``arrays`` (which it now owns), remembered so that
        the next :meth:`_snapshot` may reuse them once the snapshot is gone."""
        snap = BestParams(arrays)
        self._last_snapshot = (weakref.ref(snap), snap._arrays)
        return snap

    def restore_best(self):
        """Put back the parameters of the best validation epoch (early stopping)."""
        if self.best is not None:
            arrays = _arrays_of(self.best)
            for name in PARAMS:
                setattr(self.net, name, np.array(arrays[name], copy=True))
            self.gamma = float(arrays["gamma"])

    # ------------------------------------------------------------ checkpoints
    def save(self, path, extra=None):
        """Write every array, the optimizer state, the RNG state, the config
        and the history to one ``.npz`` (metadata as embedded JSON).
        ``extra``: a JSON-serializable dict stored alongside (e.g. the data
        set and split), returned by :meth:`load` as ``trainer.extra``."""
        meta = {
            "extra": extra or {},
            "config": self.config.to_dict(),
            "n_in": self.n_in, "n_out": self.n_out,
            "epoch": self.epoch, "history": self.history,
            "best_val": None if not np.isfinite(self.best_val) else self.best_val,
            "stale": self.stale, "best_epoch": self.best_epoch, "gamma": None if np.isnan(self.gamma) else self.gamma,
            "rng": self.rng.bit_generator.state,
            "opt_t": self.opt.t,
            "opt_lr": float(self.opt.lr),  # a schedule (TimeBudget's scaling) may change it
            "has_best": self.best is not None,
            "has_prev_mask": self._prev_keep is not None,
        }
        arrays = {name: getattr(self.net, name) for name in PARAMS}
        # (during fit on a device the optimizer state lives there: copied to the host)
        arrays.update({f"opt_{k}": to_numpy(v) for k, v in self.opt.state.items()})
        if self.best is not None:
            arrays.update({f"best_{k}": v for k, v in _arrays_of(self.best).items()})
        if self._prev_keep is not None:  # (the file keeps the dense mask it always had)
            prev_mask = np.zeros(self.net.K.size, dtype=bool)
            prev_mask[self._prev_keep] = True
            arrays["prev_mask"] = prev_mask.reshape(self.net.K.shape)
        return save_checkpoint(path, arrays, meta, FORMAT)

    @classmethod
    def load(cls, path, *, backend=None):
        """Restore a trainer saved by :meth:`save`.  ``backend``: train on this backend
        instead of the checkpoint's (a run saved on a GPU continues on the CPU with
        ``backend="numpy"``; the arrays are stored on the host either way).

        Raises
        ------
        CheckpointError
            The file is truncated, not a refimpl checkpoint, of another version, or its
            contents do not fit together (a config this version does not know, arrays
            of other shapes than the config's).
        """
        if backend is not None:
            get_backend(backend)  # (a mistyped backend is the caller's, not the file's)
        data, meta = load_checkpoint(path, FORMAT)
        try:
            fields = dict(meta["config"])
            if backend is not None:
                fields["backend"] = backend
            try:
                config = TrainConfig(**fields)
            except BackendError:
                raise  # (its message says what to install or which backend to name)
            except (TypeError, ValueError) as exc:  # a field or value this version refuses
                raise CheckpointError(f"{path}: its config does not fit this version of "
                                      f"refimpl ({exc})") from exc
            self = cls(config, meta["n_in"], meta["n_out"])

            def fitting(key, want):
                if data[key].shape != want:
                    raise CheckpointError(f"{path}: {key} has shape {data[key].shape}, its "
                                          f"config needs {want}")
                return data[key]

            for name in PARAMS:
                setattr(self.net, name,
                        fitting(name, getattr(self.net, name).shape).astype(np.float64))
            for k in self.opt.state:
                self.opt.state[k] = fitting(f"opt_{k}", self.opt.state[k].shape).astype(
                    np.float64)
            self.opt.t = int(meta["opt_t"])
            self.opt.lr = float(meta.get("opt_lr", config.lr))  # (older files: the config's)
            self.rng.bit_generator.state = meta["rng"]
            self.extra = meta.get("extra", {})
            self.epoch = int(meta["epoch"])
            self.history = meta["history"]
            self.best_val = np.inf if meta["best_val"] is None else float(meta["best_val"])
            self.stale = int(meta["stale"])
            self.best_epoch = int(meta["best_epoch"])
            self.gamma = np.nan if meta["gamma"] is None else float(meta["gamma"])
            if meta["has_best"]:
                shapes = {**{n: getattr(self.net, n).shape for n in PARAMS}, "gamma": ()}
                self.best = self._keep_snapshot({k: _own_float64(fitting(f"best_{k}", want))
                                                 for k, want in shapes.items()})
            if meta["has_prev_mask"]:
                mask = fitting("prev_mask", self.net.K.shape)
                self._prev_keep = np.flatnonzero(mask.astype(bool).ravel())
        except KeyError as exc:
            raise CheckpointError(f"{path}: checkpoint is missing {exc}") from exc
        return self


@with_threads  # threads=: refimpl.threads.threads_policy
def predict_proba(net, X, gamma, *, atol=1e-8, rtol=1e-8, solver="auto", backend="numpy"):
    """Alg. 3 of the paper: prune K with the trained ``gamma``, solve Eq. (3),
    return ``Y = g(Z)`` (class probabilities for a softmax output), a NumPy
    array (``backend``: where Eq. (3) is solved, see :func:`refimpl.get_backend`)."""
    X = check_rows(X, net.n_in, "X")
    gamma = check_scalar(gamma, "gamma", minimum=0.0)
    graph = prune(net.K, gamma=gamma)
    if is_reference(backend):
        return forward(net, X, graph, atol=atol, rtol=rtol, solver=solver).Y
    from .xp import forward as generic_forward

    return to_numpy(generic_forward(net, X, graph, atol=atol, rtol=rtol, solver=solver,
                                    backend=backend).Y)


def predict(net, X, gamma, **options):
    """Alg. 3: class indices ``argmax Y`` (see :func:`predict_proba`)."""
    return np.argmax(predict_proba(net, X, gamma, **options), axis=1)
