"""The temperature sweep of the supplement's Sec. 4.6 and Table 10."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np

from .config import SAGPConfig
from .train import train_sagp

__all__ = ["TABLE10_ALPHAS", "alpha_sweep", "alpha_sweep_markdown", "best_and_last"]

#: The temperatures of the supplement's Table 10.
TABLE10_ALPHAS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.5, 0.8)


def best_and_last(result, error_key="test_error") -> dict:
    """|H|, #Synapse and an error at the best and at the last epoch of one SAGP run: the
    per-run metrics of the supplement's Table 9 (Sec. 4.5) and Table 10 (Sec. 4.6).

    The best epoch is ``result.best_epoch`` (lowest validation error; without a
    validation split :func:`train_sagp` makes it the last epoch, and a ``best_epoch`` of
    0 is read as the last epoch too).

    Parameters
    ----------
    result : SAGPResult
        Or any object with ``history`` (the records of :func:`train_sagp`) and
        ``best_epoch``.
    error_key : str
        The history field reported as the error (``"test_error"``, ``"val_error"``).

    Returns
    -------
    dict
        ``best_epoch``, ``best_n_hidden``, ``best_synapses``, ``best_error``,
        ``last_n_hidden``, ``last_synapses``, ``last_error``.

    Raises
    ------
    ValueError
        If the run has no epochs.
    """
    h = result.history
    if not h:
        raise ValueError("result: the run has no epochs")
    best = h[result.best_epoch - 1] if result.best_epoch >= 1 else h[-1]
    last = h[-1]
    return {"best_epoch": int(best["epoch"]), "best_n_hidden": int(best["n_hidden"]),
            "best_synapses": int(best["synapses"]), "best_error": float(best[error_key]),
            "last_n_hidden": int(last["n_hidden"]), "last_synapses": int(last["synapses"]),
            "last_error": float(last[error_key])}


def alpha_sweep(
    X,
    y,
    *,
    alphas=TABLE10_ALPHAS,
    config: SAGPConfig | None = None,
    epochs: int = 100,
    seed: int = 0,
    n_classes: int | None = None,
    validation: tuple | None = None,
    test: tuple | None = None,
    callback: Callable[[float, dict], None] | None = None,
) -> list[dict]:
    """Train one SAGP per temperature alpha (supplement Sec. 4.6, Table 10).

    Implements the supplement's Table 10 experiment: S-Alg. 1 (:func:`train_sagp`) with
    ``config`` and only alpha changed, the same seed for every alpha (same split,
    initialization and shuffling), and per alpha the row |H|, #Synapse and error at the
    best epoch (lowest validation error; the last epoch without a validation split) and
    at the last epoch (:func:`best_and_last`).  The supplement reports
    F1-micro, which equals the accuracy (1 - error) for single-label classification.

    Parameters
    ----------
    X, y : training data (see :func:`train_sagp`)
    alphas : sequence of float
        Temperatures (default Table 10's 0.05, 0.1, 0.2, 0.5, 0.8).
    config : SAGPConfig, optional
        Everything but alpha (default: S-Table 2).
    epochs, seed, n_classes, validation, test
        As in :func:`train_sagp`.
    callback : callable, optional
        Called as ``callback(alpha, record)`` after every epoch of every run.

    Returns
    -------
    list of dict
        One row per alpha: ``alpha``, ``best_epoch``, ``best_n_hidden``,
        ``best_synapses``, ``best_error``, ``last_n_hidden``, ``last_synapses``,
        ``last_error``, ``mean_n_hidden`` and ``mean_synapses`` (over the epochs).  The
        errors are test errors (validation errors without a test split, NaN without
        either).

    Raises
    ------
    ValueError
        If ``alphas`` is empty or holds a value that is not a finite number > 0, or
        ``epochs`` is 0 (no epoch to report).
    """
    config = SAGPConfig() if config is None else config
    alphas = [float(a) for a in np.atleast_1d(np.asarray(alphas, dtype=np.float64))]
    if not alphas:
        raise ValueError("alphas: expected at least one temperature")
    for a in alphas:
        if not (np.isfinite(a) and a > 0):
            raise ValueError(f"alphas: expected finite numbers > 0, got {a!r}")
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"epochs: expected an integer >= 1, got {epochs!r}")
    key = "test_error" if test is not None else "val_error"
    rows = []
    for a in alphas:
        cb = None if callback is None else (lambda rec, a=a: callback(a, rec))
        res = train_sagp(X, y, config=replace(config, alpha=a), epochs=epochs, seed=seed,
                         n_classes=n_classes, validation=validation, test=test, callback=cb)
        h = res.history
        rows.append({"alpha": a, **best_and_last(res, key),
                     "mean_n_hidden": float(np.mean([r["n_hidden"] for r in h])),
                     "mean_synapses": float(np.mean([r["synapses"] for r in h]))})
    return rows


def alpha_sweep_markdown(rows: list[dict]) -> str:
    """The rows of :func:`alpha_sweep` as a Markdown table laid out like the supplement's
    Table 10 (one column per alpha; best-epoch and last-epoch |H|, #Synapse, error).

    Parameters
    ----------
    rows : list of dict

    Returns
    -------
    str
    """
    head = "| | " + " | ".join(f"alpha = {r['alpha']:g}" for r in rows) + " |"
    sep = "|---|" + "---:|" * len(rows)
    lines = [head, sep]

    def line(label, key, fmt):
        lines.append(f"| {label} | " + " | ".join(fmt(r[key]) for r in rows) + " |")

    line("best epoch", "best_epoch", str)
    line("best: \\|H\\|", "best_n_hidden", str)
    line("best: #Synapse", "best_synapses", str)
    line("best: error", "best_error", lambda v: f"{v:.3f}")
    line("last: \\|H\\|", "last_n_hidden", str)
    line("last: #Synapse", "last_synapses", str)
    line("last: error", "last_error", lambda v: f"{v:.3f}")
    line("mean \\|H\\| over epochs", "mean_n_hidden", lambda v: f"{v:.1f}")
    line("mean #Synapse over epochs", "mean_synapses", lambda v: f"{v:.0f}")
    return "\n".join(lines) + "\n"
