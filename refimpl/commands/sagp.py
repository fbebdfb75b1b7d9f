"""``refimpl sagp``: train a self-assembling graph perceptron (the supplement, S-Alg. 1).

Loads a data set by name (:func:`refimpl.datasets.load`: a scikit-learn bundled one,
split into stratified train/validation/test parts with a seeded RNG, or a local copy of
one of the supplement's, with its own partition; ``--data-path``), standardized with the
training statistics, runs :func:`refimpl.sagp.train_sagp` with a progress bar and writes
into ``--out``:

- ``history.json``: the configuration, the per-epoch history, the best epoch, the final
  summary and the out-degree of every input neuron;
- ``history.csv``: the scalar columns of the history, one row per epoch;
- ``topology.npz``: the final assembled topology (masked adjacency, biases, hard masks,
  alive neurons, raw parameters, out-degrees);
- ``dynamics.png``: the assembly dynamics (|H|, synapses, losses per epoch, the three
  stages of the supplement's Sec. 4.1 shaded);
- ``out_degree.png``: the out-degree of the input neurons (an image for digits,
  Fashion-MNIST and CIFAR-10 as the supplement's Fig. 7; per feature group for the audio
  features as its Fig. 8; a bar chart otherwise).

``--all-datasets`` does this for digits and every supplement data set present (see
:func:`refimpl.datasets.present_datasets`), one subfolder each.  ``--ablations`` runs the
supplement's Table 9 instead (SAGP and its three ablations over ``--seeds`` seeds) and
writes ``ablations.md`` and ``ablations.json``; ``--feature-selection`` its Table 8
(:mod:`refimpl.feature_selection`) into ``feature_selection.md``.  ``--sweep-alpha`` runs
its Table 10 (one run per alpha = 0.05, 0.1, 0.2, 0.5, 0.8, everything else as given) and
writes ``alpha_sweep.md`` (|H|, #Synapse and test error at the best and the last epoch)
and ``alpha_sweep.json``.  ``--quick`` shortens any run to 60 epochs (and the ablations
and Table 8 to 2 seeds unless ``--seeds`` is given).

No mathematics here: the command only calls the library.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys

import numpy as np

from ..datasets import BUILTIN_DATASETS, DATASETS as _ALL, PAPER_DATASETS, SYNTHETIC_DATASETS

#: Data sets the command trains on: every name of :func:`refimpl.datasets.load` but the
#: synthetic generators.
DATASETS = tuple(n for n in _ALL if n not in SYNTHETIC_DATASETS)
#: Pixel grids of the image data sets (out-degree shown as an image, supplement Fig. 7).
IMAGE_SHAPES = {"digits": (8, 8), "fashion_mnist": (28, 28), "cifar10": (32, 32)}
#: Epochs of ``--quick`` (it overrides ``--epochs``), and the seeds of its studies.
QUICK_EPOCHS, QUICK_SEEDS, FULL_EPOCHS, FULL_SEEDS = 60, 2, 1000, 20
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


def register(subparsers, name: str = "sagp", help_text: str | None = None) -> argparse.ArgumentParser:
    """Add the ``sagp`` subcommand to ``subparsers`` and return its parser."""
    from ..sagp import ABLATIONS, SAGPConfig

    d = SAGPConfig()
    p = subparsers.add_parser(name, help=help_text, description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=DATASETS, default="digits",
                   help="data set (bundled, or a local copy: see --data-path)")
    p.add_argument("--data-path", default=None,
                   help="local copy of a data set read from disk (default: its variable)")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"training epochs (default {FULL_EPOCHS}; --quick sets {QUICK_EPOCHS})")
    p.add_argument("--seed", type=int, default=0, help="seed of the split, initialization and shuffling")
    p.add_argument("--out", default="sagp_out", help="output folder (created)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the results of an earlier run in --out (refused otherwise)")
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
    s = p.add_argument_group("the supplement's studies")
    s.add_argument("--ablations", action="store_true",
                   help="Table 9: SAGP and its three ablations over --seeds seeds, "
                        "written to OUT/ablations.md")
    s.add_argument("--feature-selection", action="store_true",
                   help="Table 8: top 5/10/20 %% of the inputs by out-degree vs scikit-learn "
                        "rankings over --seeds seeds, written to OUT/feature_selection.md")
    s.add_argument("--sweep-alpha", action="store_true",
                   help="supplement Table 10: one run per alpha in 0.05, 0.1, 0.2, 0.5, 0.8; "
                        "writes alpha_sweep.md and alpha_sweep.json")
    s.add_argument("--all-datasets", action="store_true",
                   help="one run (dynamics and out-degree figures) per data set present: "
                        "digits and the supplement's local copies, in OUT/<name>/")
    s.add_argument("--seeds", type=int, default=None,
                   help=f"seeds of --ablations and --feature-selection (default {FULL_SEEDS}, the supplement's "
                        f"protocol; {QUICK_SEEDS} with --quick)")
    s.add_argument("--quick", action="store_true",
                   help=f"{QUICK_EPOCHS} epochs (overrides --epochs; and {QUICK_SEEDS} seeds "
                        "unless --seeds is given)")
    p.set_defaults(func=run)
    return p


def _load_dataset(name: str, seed: int, val_fraction: float, test_fraction: float,
                  path=None) -> dict:
    """The data of :func:`refimpl.datasets.load` as the command uses it: the seeded
    stratified split of a bundled data set (standardized with the training statistics),
    or the partition of a data set read from disk."""
    from ..datasets import load

    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            "val_fraction, test_fraction: expected fractions in (0, 1) with a sum below 1, "
            f"got {val_fraction}, {test_fraction}"
        )
    if path is not None and name in BUILTIN_DATASETS:
        raise ValueError(f"--data-path: the data set {name!r} is built in (not read from "
                         f"disk); drop --data-path, got {path!r}")
    try:
        if name in BUILTIN_DATASETS or name in PAPER_DATASETS:  # (seeded splits)
            d = load(name, path, seed=seed, val_size=val_fraction, test_size=test_fraction)
        else:
            d = load(name, path, seed=seed)
    except (ImportError, FileNotFoundError) as exc:  # the library's path=... is --data-path
        raise RuntimeError(str(exc).replace("pass path=...", "pass --data-path DIR")
                           .replace("Pass path=...", "Pass --data-path DIR")) from exc
    return {
        "dataset": d,
        "train": (d.X_train, d.y_train),
        "val": (d.X_val, d.y_val) if len(d.y_val) else None,
        "test": (d.X_test, d.y_test),
        "n_classes": d.n_classes,
        "feature_names": list(d.feature_names) if d.feature_names is not None else None,
        "image_shape": IMAGE_SHAPES.get(name),
    }


def _nan_to_none(rec: dict) -> dict:
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in rec.items()}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_out_degree(path: str, deg: np.ndarray, image_shape, dataset: str,
                     feature_names=None) -> None:
    plt = _pyplot()
    groups = None
    if feature_names and not image_shape:
        prefixes = [f.split("_")[0] for f in feature_names]
        if {"mfcc", "chroma", "mel"} <= set(prefixes):
            groups = [g for g in ("mfcc", "chroma", "mel")]
    fig, ax = plt.subplots(figsize=(4.2, 3.6) if image_shape else (7, 3))
    if image_shape:
        im = ax.imshow(deg.reshape(image_shape), cmap="viridis")
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, label="out-degree")
    elif groups:  # supplement Fig. 8: the audio feature groups
        prefixes = np.array([f.split("_")[0] for f in feature_names])
        for k, g in enumerate(groups):
            idx = np.flatnonzero(prefixes == g)
            ax.bar(idx, deg[idx], color=f"C{k}",
                   label=f"{g.upper() if g == 'mfcc' else g} (mean {deg[idx].mean():.2f})")
        ax.legend(fontsize=8)
        ax.set_xlabel("input feature (40 MFCC, 12 chroma, 128 mel)")
        ax.set_ylabel("out-degree")
    else:
        ax.bar(np.arange(deg.size), deg)
        ax.set_xlabel("input feature")
        ax.set_ylabel("out-degree")
    ax.set_title(f"SAGP input out-degree ({dataset})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_dynamics(path: str, history: list, dataset: str) -> None:
    """Supplement Fig. 1-6: |H|, synapses and losses per epoch, the stages shaded."""
    from ..sagp_studies import assembly_stages

    plt = _pyplot()
    ep = np.array([r["epoch"] for r in history])
    col = {k: np.array([np.nan if r[k] is None else r[k] for r in history], dtype=float)
           for k in ("n_hidden", "synapses", "train_loss", "val_loss", "test_loss")}
    end1, start3 = assembly_stages(col["n_hidden"])
    fig, (a1, a3) = plt.subplots(1, 2, figsize=(9.0, 3.6))
    for ax in (a1, a3):
        ax.axvspan(ep[0] - 0.5, end1 + 0.5, color="0.93", lw=0)
        if start3 <= ep[-1]:
            ax.axvspan(start3 - 0.5, ep[-1] + 0.5, color="0.85", lw=0)
    l1 = a1.plot(ep, col["n_hidden"], color="C0", label="hidden neurons |H|")
    a2 = a1.twinx()
    l2 = a2.plot(ep, col["synapses"], color="C1", label="synapses")
    a1.set_xlabel("epoch")
    a1.set_ylabel("|H|")
    a2.set_ylabel("synapses", color="C1")
    a2.legend(handles=l1 + l2, loc="upper center", fontsize=7)
    a1.set_title(f"topology (stages: 1 to epoch {end1}, 3 from epoch {start3})", fontsize=9)
    for key, label in (("train_loss", "train"), ("val_loss", "validation"), ("test_loss", "test")):
        if np.isfinite(col[key]).any():
            a3.plot(ep, col[key], label=label)
    a3.set_xlabel("epoch")
    a3.set_ylabel("cross-entropy")
    a3.set_title("losses", fontsize=9)
    a3.legend(fontsize=8)
    fig.suptitle(f"SAGP assembly dynamics ({dataset}); shaded: stage 1 (light), stage 3 (dark)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _limits(threads):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=max(1, threads), user_api="blas")


def run(args: argparse.Namespace) -> int:
    """Run ``refimpl sagp``; returns the exit code."""
    from ..sagp import SAGPConfig, ablation_config

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
        if args.quick:
            args.epochs = QUICK_EPOCHS
        elif args.epochs is None:
            args.epochs = FULL_EPOCHS
        if args.epochs < 0:
            raise ValueError(f"epochs: expected an integer >= 0, got {args.epochs}")
        if args.seeds is None:
            args.seeds = QUICK_SEEDS if args.quick else FULL_SEEDS
        if args.seeds < 1:
            raise ValueError(f"seeds: expected an integer >= 1, got {args.seeds}")
        modes = ("ablations", "feature_selection", "sweep_alpha", "all_datasets")
        if sum(bool(getattr(args, m)) for m in modes) > 1:
            raise ValueError("--ablations, --feature-selection, --sweep-alpha, "
                             "--all-datasets: choose one")
        if args.ablations and args.ablation != "none":
            raise ValueError(f"--ablation {args.ablation} with --ablations: the study runs "
                             "every ablation itself (its SAGP column is the full method); "
                             "drop --ablation")
        if args.all_datasets and (args.data_path is not None or args.dataset != "digits"):
            raise ValueError("--all-datasets: trains digits and every supplement data set "
                             "present (each read from its variable); drop --dataset and "
                             "--data-path")
        _check_out(args)  # before any training: a bad or occupied --out would lose it
        if args.ablations or args.feature_selection or args.sweep_alpha:
            data = _load_dataset(args.dataset, args.seed, args.val_fraction,
                                 args.test_fraction, args.data_path)
            if args.sweep_alpha:
                return _run_alpha_sweep(args, config, data)
            if args.feature_selection:
                return _run_feature_selection(args, config, data)
            return _run_ablations(args, config, data)
        if args.all_datasets:
            from ..datasets import present_datasets

            names = ("digits", *present_datasets())
            todo = [(n, os.path.join(args.out, n), None) for n in names]
        else:
            todo = [(args.dataset, args.out, args.data_path)]
        for name, out, path in todo:
            data = _load_dataset(name, args.seed, args.val_fraction, args.test_fraction, path)
            _train_one(args, config, name, data, out)
    except (ValueError, RuntimeError) as exc:
        print(f"refimpl sagp: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if getattr(args, "debug", False):
            raise
        print("refimpl sagp: interrupted; the unfinished run's results were not written (a "
              "run writes them when it ends; finished data sets keep theirs)", file=sys.stderr)
        return 130
    return 0


#: What each mode writes into --out; one of its own files there is an earlier run of the
#: mode, replaced only with --overwrite (other modes' files are left alone).
RESULT_FILES = {
    "train": ("history.json", "history.csv", "topology.npz", "out_degree.png",
              "dynamics.png"),
    "ablations": ("ablations.json", "ablations.md"),
    "sweep_alpha": ("alpha_sweep.json", "alpha_sweep.md"),
    "feature_selection": ("feature_selection.md",),
}


def _check_out(args) -> None:
    """Refuse an --out that cannot hold the results (a file, an unwritable place) or that
    holds an earlier run's results (unless --overwrite), before anything trains."""
    outs = [args.out]
    if args.all_datasets:
        outs += [os.path.join(args.out, n) for n in os.listdir(args.out)] \
            if os.path.isdir(args.out) else []
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise ValueError(f"--out {args.out}: is a file, not a folder")
    nearest = os.path.abspath(args.out)  # --out itself, or the folder it will be made in
    while not os.path.exists(nearest):
        nearest = os.path.dirname(nearest)
    if not os.path.isdir(nearest) or not os.access(nearest, os.W_OK):
        raise ValueError(f"--out {args.out}: cannot be written")
    mode = next((m for m in ("ablations", "sweep_alpha", "feature_selection")
                 if getattr(args, m)), "train")
    if args.overwrite:  # (the old files stay until the new run writes its own)
        return
    for out in outs:
        found = [n for n in RESULT_FILES[mode] if os.path.isfile(os.path.join(out, n))]
        if found:
            raise ValueError(f"--out {out} holds an earlier run ({', '.join(found)}); "
                             "choose another --out or replace it with --overwrite")


def _run_ablations(args, config, data) -> int:
    """Table 9 (supplement Sec. 4.5) on one data set, into OUT/ablations.{md,json}."""
    from ..sagp_studies import ablation_markdown, ablation_study

    show = not args.quiet
    with _limits(args.threads):
        rows = ablation_study(data["dataset"], seeds=range(args.seed, args.seed + args.seeds),
                              epochs=args.epochs, config=config,
                              progress=(lambda msg: print(msg, flush=True)) if show else None)
    os.makedirs(args.out, exist_ok=True)
    title = (f"Table 9 (supplement Sec. 4.5) on {args.dataset}: {args.epochs} epochs, "
             f"{args.seeds} seed(s) from {args.seed}, Table 2 defaults unless set")
    md = ablation_markdown(rows, title=title)
    with open(os.path.join(args.out, "ablations.md"), "w") as fh:
        fh.write(md + "\n")
    from ..sagp import config_dict

    doc = {"command": "refimpl sagp --ablations", "dataset": args.dataset,
           "epochs": args.epochs, "seeds": args.seeds, "config": config_dict(config),
           "runs": {r.ablation: r.runs for r in rows}}
    write_json(os.path.join(args.out, "ablations.json"), doc)
    print(md)
    print(f"wrote {os.path.join(args.out, 'ablations.md')}")
    return 0


def _run_feature_selection(args, config, data) -> int:
    """Table 8 (supplement Sec. 4.4) on one data set, into OUT/feature_selection.md."""
    from ..feature_selection import feature_selection_table, markdown_table

    show = not args.quiet
    with _limits(args.threads):
        rows = feature_selection_table(
            data["dataset"], seeds=range(args.seed, args.seed + args.seeds), sagp_config=config,
            sagp_epochs=args.epochs, progress=(lambda m: print(m, flush=True)) if show else None)
    os.makedirs(args.out, exist_ok=True)
    md = markdown_table(rows, title=(
        f"Table 8 (supplement Sec. 4.4) on {args.dataset}: test F1-micro of the backbone on the "
        f"top inputs; SAGP {args.epochs} epochs; {args.seeds} seed(s) from {args.seed}"))
    path = os.path.join(args.out, "feature_selection.md")
    with open(path, "w") as fh:
        fh.write(md + "\n")
    print(md)
    print(f"wrote {path}")
    return 0


def _train_one(args, config, name: str, data: dict, out: str) -> None:
    """One SAGP run on one data set and the files of the module docstring."""
    from ..sagp import (
        assembled_graph,
        config_dict,
        hard_mask,
        input_out_degree,
        synapse_count,
        train_sagp,
    )
    from tqdm import tqdm

    show = sys.stdout.isatty() and not args.quiet
    bar = tqdm(total=args.epochs, desc=f"SAGP {name}", unit="epoch", disable=not show)

    def progress(rec: dict) -> None:
        bar.update(1)
        bar.set_postfix(H=rec["n_hidden"], syn=rec["synapses"], val_err=f"{rec['val_error']:.3f}")

    X, y = data["train"]
    try:
        with _limits(args.threads):
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
    os.makedirs(out, exist_ok=True)
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
        "dataset": name,
        "seed": args.seed,
        "ablation": args.ablation,
        "config": config_dict(config),
        "splits": {k: int(data[k][0].shape[0]) if data[k] is not None else 0
                   for k in ("train", "val", "test")},
        "final": summary,
        "input_out_degree": deg.tolist(),
        "feature_names": data["feature_names"],
        "history": [_nan_to_none(r) for r in result.history],
    }
    write_json(os.path.join(out, "history.json"), doc)
    with open(os.path.join(out, "history.csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_COLUMNS)
        for r in result.history:
            w.writerow([r[k] for k in CSV_COLUMNS])
    A_eff, b_eff = assembled_graph(model)
    lay = model.layout
    np.savez(
        os.path.join(out, "topology.npz"),
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
    _plot_out_degree(os.path.join(out, "out_degree.png"), deg, data["image_shape"], name,
                     data["feature_names"])
    if result.history:
        _plot_dynamics(os.path.join(out, "dynamics.png"), doc["history"], name)
    elif os.path.isfile(os.path.join(out, "dynamics.png")):  # an earlier run's (--overwrite)
        os.remove(os.path.join(out, "dynamics.png"))
    err = summary["test_error"]
    f1 = None if err is None else 1.0 - err
    print(
        f"SAGP on {name} (seed {args.seed}, {args.epochs} epochs): "
        f"test error {err if err is None else f'{err:.4f}'} "
        f"(F1-micro {f1 if f1 is None else f'{f1:.4f}'}), |H| {summary['n_hidden']}, "
        f"synapses {summary['synapses']}; best epoch {result.best_epoch}; wrote {out}"
    )


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
