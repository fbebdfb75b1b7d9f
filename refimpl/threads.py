r"""Threading policy: how many threads numba's parallel kernels and BLAS use.

DESIGN.md section 3 ("Threads"): numba's parallel kernels (the batched
Newton solves of :mod:`refimpl.solvers.newton`) and OpenBLAS's thread pool
share the machine's cores.  Left alone, the two pools fight: each spins or
sleeps while the other holds the cores, and a short BLAS product that runs
right after a numba parallel call waits for cores that numba's workers are
still spinning on.  The library therefore applies one policy inside every
public entry point that computes (:func:`refimpl.forward`,
:func:`refimpl.backward`, :func:`refimpl.loss_and_grad`,
:meth:`refimpl.train.Trainer.fit`, :class:`refimpl.NMClassifier`, every CLI
command that computes, through ``threads=`` / ``--threads``):

- ``threads=None`` (the default) runs numba's parallel kernels **and** BLAS
  on one thread each inside the call (numba: :func:`numba.set_num_threads`;
  BLAS: :mod:`threadpoolctl`), unless the environment variable
  ``REFIMPL_THREADS`` names another count;
- ``threads=n`` (an int ``>= 1``) gives both pools ``n`` threads (numba's
  count is capped at ``numba.config.NUMBA_NUM_THREADS``);
- both are restored when the call returns (or raises).  Nested calls with
  ``threads=None`` inherit the enclosing policy; an explicit inner value
  applies inside and is restored to the outer one afterwards.

At import (``refimpl/__init__.py`` imports this module before anything
that can load an OpenMP runtime), ``OMP_WAIT_POLICY=PASSIVE`` is set unless
the user set it: numba's default threading layer on this platform is
``omp`` (TBB is not installed), and OpenMP's default active waiting spins
idle workers on cores BLAS needs.  The variable is read once, when the
OpenMP runtime loads: if another library (scikit-learn, torch) loaded it
first, the setting has no effect, which is harmless because the policy's
one-thread default leaves no idle workers to spin.

Why one thread by default (measured on a 2-core Intel Xeon VM shared with
other jobs, the propagation benchmark's graphs at p = 1000, B = 256,
tolerance 1e-10, best of 3; one process per row because the threading
layer and OMP_WAIT_POLICY are fixed when a process loads them; the same
comparison inside one process is ``refimpl bench threads``):

===============================  ===============  ============  ============
setting                          loss_and_grad    loss_and_grad ``F @ Wm.T``
                                 deep (~100 lv.)  wide (~10)    after a numba
                                                                parallel call
===============================  ===============  ============  ============
default (numba 2 omp, BLAS 2)    350-370 ms       230-380 ms    6-16 ms
numba 2, BLAS 1                  157-190 ms       165-214 ms    0.50 ms
numba 1, BLAS 2, passive OMP     360 ms           115 ms        0.44-8 ms
numba 1, BLAS 1 (the policy)     74-78 ms         79-86 ms      0.50 ms
===============================  ===============  ============  ============

(the same product alone: 0.18-0.25 ms).  In one process (``refimpl bench
threads``, the same graphs, load average ~13 from other jobs): pools left
alone 1.28-1.35x the time of one thread for ``loss_and_grad``, and
``F @ Wm.T`` 16-31 ms with 2 BLAS threads against 0.3-0.6 ms with one;
the policy's default equals ``threads=1``.  The workqueue layer and passive
OpenMP waiting changed the default row by less than the noise.  The module
solves of one level are a few microseconds to a few milliseconds each: too
short for a fork-join across threads to pay on 2 cores.  On a machine with
many idle cores, pass ``threads=n`` (or set ``REFIMPL_THREADS``).

Thread safety: BLAS limits are process-wide (threadpoolctl), numba's count
is per Python thread; running entry points with different ``threads``
values concurrently from several Python threads gives each call whichever
BLAS limit was set last.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import os
import sys
import threading

from .validation import check_threads

# Passive OpenMP waiting must be in the environment before the OpenMP
# runtime loads (numba loads it at the first parallel launch).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__all__ = ["threads_policy", "with_threads", "check_threads", "default_threads",
           "current_threads"]

_state = threading.local()  # .active: the thread count of the innermost policy
_controller = None  # threadpoolctl.ThreadpoolController, created on first use
_controller_modules = -1  # len(sys.modules) when it scanned the loaded libraries


def default_threads():
    """The thread count of ``threads=None``: ``REFIMPL_THREADS`` if set, else 1
    (the measured default of DESIGN.md section 3, "Threads")."""
    env = os.environ.get("REFIMPL_THREADS")
    if env is None or env.strip() == "":
        return 1
    try:
        value = int(env)
    except ValueError:
        raise ValueError(f"REFIMPL_THREADS: expected an integer >= 1, got {env!r}") from None
    return check_threads(value, "REFIMPL_THREADS")


def current_threads():
    """The thread count of the innermost active policy of this Python thread
    (None outside any policy; DESIGN.md section 3, "Threads")."""
    return getattr(_state, "active", None)


def _blas_limit(n):
    """A threadpoolctl context limiting the BLAS pools to ``n`` threads."""
    global _controller, _controller_modules
    if _controller is None or _controller_modules != len(sys.modules):
        # A scan of the loaded libraries costs ~0.7 ms: redo it only after new
        # imports (which may have loaded another BLAS, e.g. torch's).
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
        _controller_modules = len(sys.modules)
    return _controller.limit(limits=n, user_api="blas")


@contextlib.contextmanager
def threads_policy(threads=None):
    """Run the block under the library's threading policy (DESIGN.md section 3,
    "Threads"; the module docstring has the measurements).

    Parameters
    ----------
    threads : int >= 1 or None
        Threads for numba's parallel kernels and for BLAS inside the block.
        None: inherit an enclosing policy, else :func:`default_threads`.

    Raises
    ------
    ValueError
        ``threads`` is not None or an integer >= 1 (the message names it).
    """
    n = check_threads(threads)
    outer = current_threads()
    if n is None:
        n = outer if outer is not None else default_threads()
    if n == outer:  # nested with the same setting: nothing to change
        yield n
        return
    import numba

    numba_before = numba.get_num_threads()
    limits = _blas_limit(n)
    try:
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        _state.active = n
        yield n
    finally:
        _state.active = outer
        numba.set_num_threads(numba_before)
        limits.restore_original_limits()


def with_threads(func=None, *, get=None):
    """Decorator: run ``func`` under :func:`threads_policy` (DESIGN.md section 3).

    Without ``get`` the decorated function gains a keyword-only argument
    ``threads=None`` (passed to :func:`threads_policy`, not to ``func``);
    with ``get``, the count is ``get(*args)`` (e.g. ``lambda self:
    self.config.threads`` for a method).
    """
    if func is None:
        return functools.partial(with_threads, get=get)

    if get is None:
        @functools.wraps(func)
        def wrapper(*args, threads=None, **kwargs):
            with threads_policy(threads):
                return func(*args, **kwargs)

        sig = inspect.signature(func)
        if "threads" not in sig.parameters:
            params = list(sig.parameters.values())
            extra = inspect.Parameter("threads", inspect.Parameter.KEYWORD_ONLY, default=None)
            at = next((i for i, q in enumerate(params) if q.kind == q.VAR_KEYWORD), len(params))
            params.insert(at, extra)
            wrapper.__signature__ = sig.replace(parameters=params)
        return wrapper

    @functools.wraps(func)
    def method(*args, **kwargs):
        with threads_policy(get(*args[:1])):
            return func(*args, **kwargs)

    return method
