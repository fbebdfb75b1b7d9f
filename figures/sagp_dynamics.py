"""Supplement Fig. 1-6: the self-assembly dynamics of SAGP, on digits.

Per epoch of S-Alg. 1 (``refimpl.sagp.train_sagp``, the history records): the number
of hidden neurons |H| and of synapses, and the losses (task, auxiliary, and the
S-Alg. 2 cross-entropy on the train / validation / test splits).  The supplement shows
these curves for its six datasets (Photo, Computers, ESC-50, FSDD, Fashion-MNIST,
CIFAR-10); digits, bundled with scikit-learn, stands in for them.
"""
from __future__ import annotations

from _figlib import maker, pyplot, read_csv, save, write_csv
from _sagp_run import COLUMNS, sagp_run

NAME = "sagp_dynamics"
TITLE = "SAGP assembly dynamics on digits"


def compute(ctx):
    result, s = sagp_run(ctx)
    cols = {k: [rec[k] for rec in result.history] for k in COLUMNS}
    meta = ctx.cache_key | s | {"config": "SAGPConfig() (supplement Table 2)",
                                "best_epoch": result.best_epoch}
    return write_csv(ctx.path(f"{NAME}.csv"), cols, meta)


def plot(ctx, data_path):
    c, meta = read_csv(data_path)
    plt = pyplot()
    fig, (a1, a3) = plt.subplots(1, 2, figsize=(9.0, 3.6))
    l1 = a1.plot(c["epoch"], c["n_hidden"], color="C0", label="hidden neurons |H|")
    l2 = a1.plot(c["epoch"], c["n_grown"], color="C0", ls=":", label="neurons grown so far")
    a1.set_xlabel("epoch")
    a1.set_ylabel("neurons (count)")
    a2 = a1.twinx()
    l3 = a2.plot(c["epoch"], c["synapses"], color="C1", label="synapses")
    a2.set_ylabel("synapses (count)", color="C1")
    a1.set_ylim(0, 1.3 * max(c["n_grown"].max(), 1))  # head room for the legend
    lo, hi = c["synapses"].min(), c["synapses"].max()
    a2.set_ylim(lo - 0.05 * (hi - lo + 1), hi + 0.35 * (hi - lo + 1))
    a2.legend(handles=l1 + l2 + l3, loc="upper center", ncol=2, fontsize=7)  # on top of both
    a1.set_title("(a) topology: |H| and synapses", fontsize=9)
    for key, label, style in (("train_loss", "train loss", "-"),
                              ("val_loss", "validation loss", "-"),
                              ("test_loss", "test loss", "-"), ("aux_loss", "AuxLoss", "--")):
        a3.plot(c["epoch"], c[key], style, label=label)
    a3.set_yscale("log")
    a3.set_xlabel("epoch")
    a3.set_ylabel("loss (cross-entropy, nats)")
    a3.set_title(f"(b) losses; final test error {c['test_error'][-1]:.3f}", fontsize=9)
    a3.legend()
    fig.suptitle(f"Supplement Fig. 1-6: {TITLE} ({meta['epochs']} epochs, Table 2 defaults)",
                 fontsize=10)
    fig.tight_layout()
    return save(fig, ctx, NAME)


make = maker(NAME, compute, plot)
