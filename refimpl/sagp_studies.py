r"""The supplement's SAGP studies: Table 9 ablations and the three assembly stages (Sec. 4.1, 4.5).

Orchestration over :mod:`refimpl.sagp` (read-only use of its API): repeated seeded runs,
the metrics the supplement tabulates, and their Markdown table.  No new mathematics.

Metrics of one run (supplement Table 9, per ablation):

- at the **best epoch** (lowest validation error; the last epoch without a validation
  split) and at the **last epoch**: the number of hidden neurons |H|, the number of
  synapses (:func:`refimpl.sagp.synapse_count`) and the test F1-micro, which for a
  single-label multi-class prediction equals the accuracy ``1 - test_error``;
- **peak memory**: the peak of traced Python allocations (``tracemalloc``, which sees
  NumPy's buffers) during training, in MiB; the supplement reports GPU memory.
"""
from __future__ import annotations

import tracemalloc
from dataclasses import dataclass, field

import numpy as np

from .sagp import ABLATIONS, SAGPConfig, ablation_config, best_and_last, train_sagp

__all__ = ["ABLATION_TITLES", "AblationRow", "ablation_markdown", "ablation_study",
           "assembly_stages", "run_metrics"]

#: Column titles of Table 9, by ablation name of :data:`refimpl.sagp.ABLATIONS`.
ABLATION_TITLES = {"none": "SAGP", "no-growth": "SAGP w/o Growth",
                   "no-competition": "SAGP w/o Competition",
                   "no-apoptosis": "SAGP w/o Apoptosis"}


def run_metrics(result, peak_bytes=float("nan")) -> dict:
    """The Table 9 metrics of one training run (supplement Sec. 4.5, Table 9).

    Parameters
    ----------
    result : refimpl.sagp.SAGPResult
        With a test split in its history (``test_error``).
    peak_bytes : float
        Peak traced memory of the run.

    Returns
    -------
    dict
        ``best_epoch``, ``best_n_hidden``, ``best_synapses``, ``best_f1``,
        ``last_n_hidden``, ``last_synapses``, ``last_f1``, ``peak_mib``: the F1-micro
        ``1 - test_error`` of :func:`refimpl.sagp.best_and_last`'s epochs.
    """
    m = best_and_last(result, "test_error")
    return {"best_epoch": m["best_epoch"],
            "best_n_hidden": m["best_n_hidden"], "best_synapses": m["best_synapses"],
            "best_f1": 1.0 - m["best_error"],
            "last_n_hidden": m["last_n_hidden"], "last_synapses": m["last_synapses"],
            "last_f1": 1.0 - m["last_error"], "peak_mib": peak_bytes / 2**20}


@dataclass
class AblationRow:
    """One column of Table 9: an ablation's metrics over seeds (supplement Table 9)."""

    ablation: str
    runs: list = field(default_factory=list)

    def mean(self, key) -> float:
        return float(np.mean([r[key] for r in self.runs]))

    def std(self, key) -> float:
        return float(np.std([r[key] for r in self.runs]))


def ablation_study(data, *, ablations=tuple(ABLATIONS), seeds=range(20), epochs=1000,
                   config=None, progress=None) -> list:
    """Run the supplement's Table 9 ablations (Sec. 4.5) over seeds.

    For every ablation (``"none"`` = SAGP, ``"no-growth"``, ``"no-competition"``,
    ``"no-apoptosis"``; :func:`refimpl.sagp.ablation_config`) and seed, trains
    :func:`refimpl.sagp.train_sagp` on ``data`` for ``epochs`` epochs under
    ``tracemalloc`` and records :func:`run_metrics`.  The supplement's protocol averages
    20 seeds (its Sec. 3.3).

    Parameters
    ----------
    data : refimpl.datasets.Dataset
        Needs a test split; the validation split (if any) picks the best epoch.
    ablations : sequence of str
    seeds : iterable of int
    epochs : int
    config : refimpl.sagp.SAGPConfig, optional
        The base configuration (default Table 2).
    progress : callable, optional
        Called with a one-line message after each run.

    Returns
    -------
    list of AblationRow
    """
    config = SAGPConfig() if config is None else config
    for a in ablations:
        if a not in ABLATIONS:
            raise ValueError(f"ablations: unknown ablation {a!r}; expected names from "
                             f"{sorted(ABLATIONS)}")
    if len(data.y_test) == 0:
        raise ValueError("data: the ablation study needs a test split")
    val = (data.X_val, data.y_val) if len(data.y_val) else None
    rows = [AblationRow(a) for a in ablations]
    for seed in seeds:
        for row in rows:
            tracemalloc.start()
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            try:
                res = train_sagp(data.X_train, data.y_train,
                                 config=ablation_config(config, row.ablation), epochs=epochs,
                                 seed=int(seed), n_classes=data.n_classes, validation=val,
                                 test=(data.X_test, data.y_test))
                peak = tracemalloc.get_traced_memory()[1] - base
            finally:
                tracemalloc.stop()
            m = run_metrics(res, peak) | {"seed": int(seed)}
            row.runs.append(m)
            if progress is not None:
                progress(f"{ABLATION_TITLES.get(row.ablation, row.ablation)}, seed {seed}: "
                         f"|H| {m['last_n_hidden']}, synapses {m['last_synapses']}, "
                         f"F1-micro {m['last_f1']:.4f}")
    return rows


def ablation_markdown(rows, *, title=None) -> str:
    """Table 9 as Markdown: per ablation, |H|, #Synapse and F1-micro (mean ± std over
    seeds) at the best and the last epoch, and the peak memory (supplement Table 9)."""
    head = "| | | " + " | ".join(ABLATION_TITLES.get(r.ablation, r.ablation)
                                  for r in rows) + " |"
    lines = [] if title is None else [title, ""]
    lines += [head, "|---|---|" + "---|" * len(rows)]
    for when in ("best", "last"):
        label = "Best epoch" if when == "best" else "Last epoch"
        lines.append(f"| {label} | \\|H\\| | "
                     + " | ".join(f"{r.mean(f'{when}_n_hidden'):.2f}" for r in rows) + " |")
        lines.append("| | #Synapse | "
                     + " | ".join(f"{r.mean(f'{when}_synapses'):.0f}" for r in rows) + " |")
        lines.append("| | F1-micro | " + " | ".join(
            f"{r.mean(f'{when}_f1'):.4f} ± {r.std(f'{when}_f1'):.4f}" for r in rows) + " |")
    lines.append("| Peak memory | (traced, MiB) | "
                 + " | ".join(f"{r.mean('peak_mib'):.2f}" for r in rows) + " |")
    n = {len(r.runs) for r in rows}
    lines += ["", f"Mean over {', '.join(map(str, sorted(n)))} seed(s); F1-micro on the test "
              "split (= accuracy for single-label classes); best epoch = lowest validation "
              "error."]
    return "\n".join(lines)


def assembly_stages(n_hidden) -> tuple[int, int]:
    """The three stages of self-assembly (supplement Sec. 4.1), located on the |H| curve.

    The supplement describes them in words: "Stage 1: the topology expands rapidly in
    size.  Stage 2: intense competition among neurons, typically with the apoptosis of
    many neurons.  Stage 3: neuron numbers stabilize, but synapses continue to prune".
    Documented rule: stage 1 ends at the first epoch where |H| reaches its maximum;
    stage 3 begins at the epoch where |H| takes its final value for good (and after
    stage 1: a run that only grows has ``start3 = end1 + 1``, past its last epoch).

    Parameters
    ----------
    n_hidden : sequence of int
        |H| after each epoch 1, 2, ...

    Returns
    -------
    end1, start3 : int
        Epoch numbers (1-based): stage 1 is epochs ``1..end1``, stage 2
        ``end1+1..start3-1`` (possibly empty), stage 3 ``start3..``.
    """
    h = np.asarray(n_hidden)
    if h.ndim != 1 or h.size == 0:
        raise ValueError(f"n_hidden: expected a non-empty 1-D sequence, got shape {h.shape}")
    end1 = int(np.argmax(h)) + 1
    changes = np.flatnonzero(np.diff(h) != 0)            # |H| differs between e+1 and e+2
    start3 = int(changes[-1]) + 2 if changes.size else 1
    return end1, max(start3, end1 + 1)
