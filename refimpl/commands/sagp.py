"""``refimpl sagp``: train a self-assembling graph perceptron (the supplement, S-Alg. 1).

Loads a scikit-learn bundled data set (no network needed), splits it into stratified
train/validation/test parts with a seeded RNG, standardizes with the training
statistics, runs :func:`refimpl.sagp.train_sagp` with a progress bar and writes into
``--out``:

- ``history.json``: the configuration, the per-epoch history, the best epoch, the final
  summary and the out-degree of every input neuron;
- ``history.csv``: the scalar columns of the history, one row per epoch;
- ``topology.npz``: the final assembled topology (masked adjacency, biases, hard masks,
  alive neurons, raw parameters, out-degrees);
- ``out_degree.png``: the out-degree of the input neurons (for digits, the 8x8 pixel
  image of the supplement's Sec. 4.2; a bar chart otherwise).

With ``--sweep-alpha`` it runs the supplement's Table 10 instead (one run per alpha =
0.05, 0.1, 0.2, 0.5, 0.8, everything else as given) and writes ``alpha_sweep.md`` (the
Markdown table: |H|, #Synapse and test error at the best and the last epoch) and
``alpha_sweep.json``; ``--quick`` shortens any run to 60 epochs.

No mathematics here: the command only calls the library.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys

import numpy as np

from ..datasets import BUILTIN_DATASETS as DATASETS
from ..io import write_json

#: History columns written to the CSV (the id lists stay in the JSON file).
CSV_COLUMNS = (
    "epoch",
    "n_hidden",
    "n_grown",
    "grown",
    "removed",
    "synapses",
    "task_loss",
    "aux_loss",
    "train_loss",
    "train_error",
    "val_loss",
    "val_error",
    "test_loss",
    "test_error",
)

#: Epochs of ``--quick``.
QUICK_EPOCHS = 60


def register(subparsers, name: str = "sagp", help_text: str | None = None) -> argparse.ArgumentParser:
    """Add the ``sagp`` subcommand to ``subparsers`` and return its parser."""
    from ..sagp import ABLATIONS, SAGPConfig

    d = SAGPConfig()
    p = subparsers.add_parser(name, help=help_text, description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=DATASETS, default="digits", help="scikit-learn bundled data set")
    p.add_argument("--epochs", type=int, default=1000, help="training epochs (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, initialization and shuffling")
    p.add_argument("--out", default="sagp_out", help="output folder (created)")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--test-fraction", type=float, default=0.2)
    g = p.add_argument_group("SAGP hyper-parameters (supplement Table 2)")
    g.add_argument("--steps", type=int, default=d.steps, help="L, message-passing steps")
    g.add_argument("--alpha", type=float, default=d.alpha,
                   help="temperature of the competition in SparseLoss (ignored by --sweep-alpha)")
    g.add_argument("--gamma1", type=float, default=d.gamma1, help="AuxLoss scale of neuron masks")
    g.add_argument("--gamma2", type=float, default=d.gamma2, help="AuxLoss scale of synapse masks")
    g.add_argument("--beta", type=float, default=d.beta, help="apoptosis threshold")
    g.add_argument("--patience", type=int, default=d.patience, help="N, growth patience")
    g.add_argument("--h-max", type=int, default=d.h_max, help="|H|max")
    g.add_argument("--activation", default=d.activation)
    g.add_argument("--output-self-loops", action="store_true", help="output identity block of S-Eq. 11")
    g.add_argument("--ablation", choices=sorted(ABLATIONS), default="none", help="Table 9 ablation")
    c = p.add_argument_group("common hyper-parameters (supplement Table 3)")
    c.add_argument("--lr", type=float, default=d.lr)
    c.add_argument("--weight-decay", type=float, default=d.weight_decay)
    c.add_argument("--batchnorm", action="store_true")
    c.add_argument("--dropout", type=float, default=d.dropout)
    c.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS threads (default 1: the matrices are too small to gain from more)",
    )
    p.add_argument("--quiet", "--no-progress", dest="quiet", action="store_true",
                   help="no progress bar (--no-progress: the former spelling)")
    p.add_argument("--sweep-alpha", action="store_true",
                   help="supplement Table 10: one run per alpha in 0.05, 0.1, 0.2, 0.5, 0.8; "
                        "writes alpha_sweep.md and alpha_sweep.json")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_EPOCHS} epochs (overrides --epochs)")
    p.set_defaults(func=run)
    return p


def _load_dataset(name: str, seed: int, val_fraction: float, test_fraction: float) -> dict:
    """The seeded stratified split of :func:`refimpl.datasets.load`
    (standardized with the training statistics), as the command uses it."""
    from ..datasets import load

    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            "val_fraction, test_fraction: expected fractions in (0, 1) with a sum below 1, "
            f"got {val_fraction}, {test_fraction}"
        )
    try:
        d = load(name, seed=seed, val_size=val_fraction, test_size=test_fraction)
    except ImportError as exc:
        raise RuntimeError(str(exc)) from exc
    return {
        "train": (d.X_train, d.y_train),
        "val": (d.X_val, d.y_val),
        "test": (d.X_test, d.y_test),
        "n_classes": d.n_classes,
        "feature_names": list(d.feature_names) if d.feature_names is not None else None,
        "image_shape": (8, 8) if name == "digits" else None,
    }


def _nan_to_none(rec: dict) -> dict:
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in rec.items()}


def _plot_out_degree(path: str, deg: np.ndarray, image_shape, dataset: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 3.6) if image_shape else (6, 3))
    if image_shape:
        im = ax.imshow(deg.reshape(image_shape), cmap="viridis")
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, label="out-degree")
    else:
        ax.bar(np.arange(deg.size), deg)
        ax.set_xlabel("input feature")
        ax.set_ylabel("out-degree")
    ax.set_title(f"SAGP input out-degree ({dataset})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args: argparse.Namespace) -> int:
    """Run ``refimpl sagp``; returns the exit code."""
    from ..sagp import (
        SAGPConfig,
        ablation_config,
        assembled_graph,
        config_dict,
        hard_mask,
        input_out_degree,
        synapse_count,
        train_sagp,
    )

    try:
        config = SAGPConfig(
            steps=args.steps,
            alpha=args.alpha,
            gamma1=args.gamma1,
            gamma2=args.gamma2,
            beta=args.beta,
            patience=args.patience,
            h_max=args.h_max,
            activation=args.activation,
            batchnorm=args.batchnorm,
            dropout=args.dropout,
            lr=args.lr,
            weight_decay=args.weight_decay,
            batch_size=args.batch_size,
            output_self_loops=args.output_self_loops,
        )
        config = ablation_config(config, args.ablation)
        if getattr(args, "quick", False):
            args.epochs = QUICK_EPOCHS
        if args.epochs < 0:
            raise ValueError(f"epochs: expected an integer >= 0, got {args.epochs}")
        data = _load_dataset(args.dataset, args.seed, args.val_fraction, args.test_fraction)
    except (ValueError, RuntimeError) as exc:
        print(f"refimpl sagp: error: {exc}", file=sys.stderr)
        return 2
    if getattr(args, "sweep_alpha", False):
        return _run_alpha_sweep(args, config, data)

    from tqdm import tqdm

    show = sys.stdout.isatty() and not args.quiet
    bar = tqdm(total=args.epochs, desc=f"SAGP {args.dataset}", unit="epoch", disable=not show)

    def progress(rec: dict) -> None:
        bar.update(1)
        bar.set_postfix(H=rec["n_hidden"], syn=rec["synapses"], val_err=f"{rec['val_error']:.3f}")

    X, y = data["train"]
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        import contextlib

        limits = contextlib.nullcontext()
    else:
        limits = threadpool_limits(limits=max(1, args.threads), user_api="blas")
    try:
        with limits:
            result = train_sagp(
                X,
                y,
                config=config,
                epochs=args.epochs,
                seed=args.seed,
                n_classes=data["n_classes"],
                validation=data["val"],
                test=data["test"],
                callback=progress,
            )
    finally:
        bar.close()

    model = result.model
    os.makedirs(args.out, exist_ok=True)
    deg = input_out_degree(model)
    last = result.history[-1] if result.history else {}
    best = result.history[result.best_epoch - 1] if result.best_epoch >= 1 else {}
    summary = {
        "epochs": args.epochs,
        "n_hidden": int(model.alive[model.layout.hidden].sum()),
        "synapses": synapse_count(model),
        "test_error": last.get("test_error"),
        "val_error": last.get("val_error"),
        "best_epoch": result.best_epoch,
        "best_test_error": best.get("test_error"),
        "best_n_hidden": best.get("n_hidden"),
        "best_synapses": best.get("synapses"),
    }
    doc = {
        "command": "refimpl sagp",
        "dataset": args.dataset,
        "seed": args.seed,
        "ablation": args.ablation,
        "config": config_dict(config),
        "splits": {k: int(data[k][0].shape[0]) for k in ("train", "val", "test")},
        "final": summary,
        "input_out_degree": deg.tolist(),
        "feature_names": data["feature_names"],
        "history": [_nan_to_none(r) for r in result.history],
    }
    write_json(os.path.join(args.out, "history.json"), doc)
    with open(os.path.join(args.out, "history.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_COLUMNS)
        for r in result.history:
            w.writerow([r[k] for k in CSV_COLUMNS])
    A_eff, b_eff = assembled_graph(model)
    lay = model.layout
    np.savez(
        os.path.join(args.out, "topology.npz"),
        A_eff=A_eff,
        b_eff=b_eff,
        A=model.A,
        b=model.b,
        neuron_logits=model.neuron_logits,
        synapse_logits=model.synapse_logits,
        neuron_mask=hard_mask(model.neuron_logits),
        synapse_mask=hard_mask(model.synapse_logits) * lay.trainable,
        alive=model.alive,
        hidden_alive=model.hidden_alive,
        trainable=lay.trainable,
        fixed=lay.fixed,
        out_degree=deg,
        n_in=lay.n_in,
        h_max=lay.h_max,
        n_out=lay.n_out,
        steps=model.steps,
        activation=model.activation,
        best_epoch=result.best_epoch,
    )
    _plot_out_degree(os.path.join(args.out, "out_degree.png"), deg, data["image_shape"], args.dataset)
    err = summary["test_error"]
    print(
        f"SAGP on {args.dataset} (seed {args.seed}, {args.epochs} epochs): "
        f"test error {err if err is None else f'{err:.4f}'}, |H| {summary['n_hidden']}, "
        f"synapses {summary['synapses']}; best epoch {result.best_epoch}; wrote {args.out}"
    )
    return 0


def _run_alpha_sweep(args: argparse.Namespace, config, data: dict) -> int:
    """``refimpl sagp --sweep-alpha``: the supplement's Table 10 as a Markdown table."""
    import contextlib
    import platform
    import time

    from tqdm import tqdm

    from ..sagp import TABLE10_ALPHAS, alpha_sweep, alpha_sweep_markdown, config_dict

    show = sys.stdout.isatty() and not args.quiet
    bar = tqdm(total=args.epochs * len(TABLE10_ALPHAS), desc=f"SAGP alpha sweep {args.dataset}",
               unit="epoch", disable=not show)
    try:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(limits=max(1, args.threads), user_api="blas")
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        limits = contextlib.nullcontext()
    t0 = time.perf_counter()
    try:
        with limits:
            rows = alpha_sweep(*data["train"], alphas=TABLE10_ALPHAS, config=config,
                               epochs=args.epochs, seed=args.seed, n_classes=data["n_classes"],
                               validation=data["val"], test=data["test"],
                               callback=lambda a, rec: bar.update(1))
    except ValueError as exc:
        print(f"refimpl sagp: error: {exc}", file=sys.stderr)
        return 2
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    os.makedirs(args.out, exist_ok=True)
    c = config
    head = (
        f"SAGP on {args.dataset} (seed {args.seed}, {args.epochs} epochs per alpha; "
        f"L = {c.steps}, gamma1 = {c.gamma1:g}, gamma2 = {c.gamma2:g}, beta = {c.beta:g}, "
        f"N = {c.patience}, |H|max = {c.h_max}; ablation {args.ablation}). Best epoch = lowest "
        "validation error; errors are test errors (1 - F1-micro). Total "
        f"{seconds:.0f} s on {platform.machine()} ({os.cpu_count()} cores, "
        f"{max(1, args.threads)} BLAS thread).\n\n"
    )
    with open(os.path.join(args.out, "alpha_sweep.md"), "w") as fh:
        fh.write(head + alpha_sweep_markdown(rows))
    doc = {"command": "refimpl sagp --sweep-alpha", "dataset": args.dataset, "seed": args.seed,
           "epochs": args.epochs, "ablation": args.ablation, "config": config_dict(config),
           "seconds": seconds, "rows": rows}
    write_json(os.path.join(args.out, "alpha_sweep.json"), doc)
    print(alpha_sweep_markdown(rows), end="")
    print(f"wrote {os.path.join(args.out, 'alpha_sweep.md')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command without the top-level CLI (``python -m refimpl.commands.sagp``)."""
    parser = argparse.ArgumentParser(prog="refimpl")
    sub = parser.add_subparsers(dest="command")
    register(sub, "sagp", "train a self-assembling graph perceptron")
    args = parser.parse_args(["sagp", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
