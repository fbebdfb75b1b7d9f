"""``refimpl predict``: Alg. 3 with a trained checkpoint (prune with the trained gamma, solve, argmax).

Prints the error rate on a split of the data set the run was trained on (or
``--dataset``) and optionally writes the predictions as CSV.
"""
from __future__ import annotations

import csv
import sys

import numpy as np


def register(subparsers, name="predict", help_text=None):
    p = subparsers.add_parser(name, help=help_text, description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="checkpoint.npz written by refimpl train")
    p.add_argument("--dataset", default=None, help="data set (default: the training one)")
    p.add_argument("--data-path", default=None)
    p.add_argument("--split", choices=("train", "val", "test"), default="test")
    p.add_argument("--output", default=None, help="write index,prediction,label as CSV")
    p.add_argument("--backend", default="numpy",
                   help="numpy (numba CPU), cupy (GPU), numpy-generic or array_api_strict")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..train import CheckpointError, Trainer, predict
    from . import _data

    try:
        trainer = Trainer.load(args.checkpoint)
    except (CheckpointError, FileNotFoundError) as exc:
        print(f"refimpl predict: {exc}", file=sys.stderr)
        return 2
    trainer.restore_best()
    info = trainer.extra
    name = args.dataset or info.get("dataset")
    if name is None:
        print("refimpl predict: --dataset is required for this checkpoint", file=sys.stderr)
        return 2
    data = _data.load(name, seed=info.get("split_seed", 0),
                      path=args.data_path or info.get("data_path"))
    X, y = getattr(data, f"X_{args.split}"), getattr(data, f"y_{args.split}")
    if X.shape[1] != trainer.n_in:
        print(f"refimpl predict: {name} has {X.shape[1]} features, the network {trainer.n_in}",
              file=sys.stderr)
        return 2
    pred = predict(trainer.net, X, trainer.gamma, backend=args.backend)
    err = float(np.mean(pred != y))
    if args.output:
        with open(args.output, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["index", "prediction", "label"])
            for i, (a, b) in enumerate(zip(data.classes[pred], data.classes[y])):
                w.writerow([i, a, b])
    print(f"{name} ({args.split}, {len(y)} samples): error {err:.4f}")
    return 0
