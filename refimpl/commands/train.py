"""``refimpl train``: train a neural-module network (Alg. 2) on a data set.

Writes into ``--out``: ``checkpoint.npz`` (every array, optimizer and RNG
state, config, history: ``--resume`` continues it bit for bit),
``history.json`` / ``history.csv`` (one row per epoch: loss, errors, edges,
edges regrown, modules, largest module, levels, solver iterations, time) and
``summary.json`` (final test error, seconds per epoch).  No mathematics here.
"""
from __future__ import annotations

import csv
import os
import sys
import time

import numpy as np

from ..io import write_json
from ._data import BUILTIN, UCI


def register(subparsers, name="train", help_text=None):
    from ..train import TrainConfig

    d = TrainConfig()
    p = subparsers.add_parser(name, help=help_text, description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="digits", help=f"one of {', '.join(BUILTIN + UCI)}")
    p.add_argument("--data-path", default=None, help="local copy of a UCI data set")
    p.add_argument("--out", default="runs/train", help="output folder (created)")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--nodes", type=int, default=d.nodes, help="p, hidden nodes")
    p.add_argument("--edges", type=int, default=None, help="k, edges kept (default 10 p)")
    p.add_argument("--gamma", type=float, default=None, help="fixed pruning threshold")
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--momentum", type=float, default=d.momentum)
    p.add_argument("--optimizer", choices=("sgd", "adam"), default=d.optimizer)
    p.add_argument("--reg", choices=("none", "l2", "nm"), default=d.reg)
    p.add_argument("--alpha", type=float, default=d.alpha)
    p.add_argument("--reg-step", choices=("proximal", "thm31"), default=d.reg_step)
    p.add_argument("--activation", default=d.activation)
    p.add_argument("--init-scale", type=float, default=d.init_scale)
    p.add_argument("--patience", type=int, default=d.patience,
                   help="early stopping patience in epochs (0 disables)")
    p.add_argument("--backend", default=None,
                   help="numpy (numba CPU, default), cupy (GPU), numpy-generic or "
                        "array_api_strict (the generic path on the CPU); --resume keeps "
                        "the checkpoint's unless given")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


HISTORY_COLUMNS = ("epoch", "loss", "train_error", "val_loss", "val_error", "edges", "regrown",
                   "modules", "largest_module", "levels", "newton_iterations", "gamma", "seconds")


def write_history(out, history):
    write_json(os.path.join(out, "history.json"), history)
    with open(os.path.join(out, "history.csv"), "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=HISTORY_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(history)


def run(args) -> int:
    from tqdm import tqdm

    from ..train import Trainer, TrainConfig, predict
    from . import _data

    os.makedirs(args.out, exist_ok=True)
    ckpt = os.path.join(args.out, "checkpoint.npz")
    if args.resume:
        if not os.path.exists(ckpt):
            print(f"refimpl train: --resume: no checkpoint at {ckpt}", file=sys.stderr)
            return 2
        trainer = Trainer.load(ckpt)
        info = trainer.extra
        data = _data.load(info["dataset"], seed=info["split_seed"], path=info.get("data_path"))
        if args.epochs > trainer.config.epochs:
            import dataclasses

            trainer.config = dataclasses.replace(trainer.config, epochs=args.epochs)
        if args.backend is not None:
            import dataclasses

            trainer.config = dataclasses.replace(trainer.config, backend=args.backend)
    else:
        try:
            config = TrainConfig(
                nodes=args.nodes, edges=args.edges, gamma=args.gamma, epochs=args.epochs,
                batch_size=args.batch_size, lr=args.lr, momentum=args.momentum,
                optimizer=args.optimizer, reg=args.reg, alpha=args.alpha,
                reg_step=args.reg_step, activation=args.activation, init_scale=args.init_scale,
                patience=args.patience or None, seed=args.seed,
                backend=args.backend or "numpy")
        except ValueError as exc:
            print(f"refimpl train: {exc}", file=sys.stderr)
            return 2
        data = _data.load(args.dataset, seed=args.seed, path=args.data_path)
        trainer = Trainer(config, data.n_features, data.n_classes)
        info = {"dataset": args.dataset, "split_seed": args.seed, "data_path": args.data_path}
    show = not args.quiet and sys.stderr.isatty()
    bar = tqdm(total=trainer.config.epochs, initial=trainer.epoch, unit="epoch",
               desc=f"NM {info['dataset']}", disable=not show)

    def callback(tr, rec):
        bar.update(1)
        bar.set_postfix(loss=f"{rec.loss:.3f}", val_err=f"{rec.val_error:.3f}",
                        modules=rec.modules, largest=rec.largest_module)
        tr.save(ckpt, extra=info)  # a checkpoint per epoch: nothing lost on interruption
        return False

    t0 = time.perf_counter()
    trainer.fit(data.X_train, data.y_train, data.X_val, data.y_val, callback=callback)
    bar.close()
    elapsed = time.perf_counter() - t0
    trainer.save(ckpt, extra=info)
    write_history(args.out, trainer.history)
    final = Trainer.load(ckpt)
    final.restore_best()
    test_error = float(np.mean(predict(final.net, data.X_test, final.gamma,
                                       backend=trainer.config.backend) != data.y_test))
    per_epoch = [h["seconds"] for h in trainer.history]
    summary = {
        "dataset": info["dataset"], "test_error": test_error,
        "monitor": final.config.monitor, "best_epoch": final.best_epoch,
        "best_val": None if not np.isfinite(final.best_val) else final.best_val,
        "epochs": trainer.epoch, "seconds_per_epoch": float(np.mean(per_epoch)),
        "seconds": elapsed, "gamma": final.gamma, "config": trainer.config.to_dict(),
    }
    write_json(os.path.join(args.out, "summary.json"), summary)
    print(f"{info['dataset']}: test error {test_error:.4f} after {trainer.epoch} epochs "
          f"({summary['seconds_per_epoch']:.2f} s/epoch); wrote {args.out}/")
    return 0
