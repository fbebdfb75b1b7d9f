"""One SAGP run on digits shared by the supplement's figures (``ctx.shared``).

Same data and configuration as ``refimpl sagp --dataset digits`` (a seeded stratified
60/20/20 split, standardized with the training statistics; the supplement's Table 2
defaults, :class:`refimpl.sagp.SAGPConfig`), trained by :func:`refimpl.sagp.train_sagp`.
No mathematics here.
"""
from __future__ import annotations

#: History columns kept (those of ``refimpl sagp``'s history.csv).
COLUMNS = ("epoch", "n_hidden", "n_grown", "grown", "removed", "synapses", "task_loss",
           "aux_loss", "train_loss", "train_error", "val_loss", "val_error", "test_loss",
           "test_error")


def settings(quick):
    return dict(dataset="digits", epochs=200 if quick else 1000, seed=0, val_fraction=0.2,
                test_fraction=0.2)


def sagp_run(ctx):
    """``(SAGPResult, settings)`` of the shared run (trained once per process)."""
    key = ("sagp_run", ctx.quick)
    if key in ctx.shared:
        return ctx.shared[key]
    from refimpl.datasets import load
    from refimpl.sagp import SAGPConfig, train_sagp

    s = settings(ctx.quick)
    d = load(s["dataset"], seed=s["seed"], val_size=s["val_fraction"],
                     test_size=s["test_fraction"])
    every = max(1, s["epochs"] // 20)

    def report(rec):
        if rec["epoch"] % every == 0:
            ctx.progress(f"SAGP epoch {rec['epoch']}/{s['epochs']}")

    result = train_sagp(d.X_train, d.y_train, config=SAGPConfig(), epochs=s["epochs"],
                        seed=s["seed"], n_classes=d.n_classes,
                        validation=(d.X_val, d.y_val), test=(d.X_test, d.y_test),
                        callback=report)
    ctx.shared[key] = (result, s)
    return ctx.shared[key]
