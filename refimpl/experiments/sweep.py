"""Sweep executors of Table 1 (Sec. 4.1): serial, local processes or a Dask cluster, resumable."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from .cell import run_cell
from .domain import Cell, Settings, _check_method
from .runs import _repair, _RowWriter, read_runs

__all__ = ["SweepError", "SweepResult", "run_sweep"]


def _run_task(cell, settings, data_paths):
    """Module-level task for process pools and Dask (picklable)."""
    cell = Cell(*cell)
    return run_cell(cell.method, cell.dataset, cell.nodes, cell.seed, settings,
                    data_path=(data_paths or {}).get(cell.dataset))


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
