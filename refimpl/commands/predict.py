"""``refimpl predict``: Alg. 3 with a trained checkpoint (prune with the trained gamma, solve, argmax).

Prints the error rate on a split of the data set the run was trained on (or
``--dataset``) and optionally writes the predictions as CSV.  A data set that does not
match the checkpoint's (another name, feature count or set of class labels) is refused:
an error rate against labels of another task would be meaningless.
"""
from __future__ import annotations

import csv
import os
import sys

import numpy as np

from ..io import atomic_write


def register(subparsers, name="predict", help_text=None):
    p = subparsers.add_parser(name, help=help_text, description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="checkpoint.npz written by refimpl train")
    p.add_argument("--dataset", default=None, help="data set (default: the training one)")
    p.add_argument("--data-path", default=None)
    p.add_argument("--split", choices=("train", "val", "test"), default="test")
    p.add_argument("--output", default=None,
                   help="write index,prediction,label as CSV (into an existing folder)")
    p.add_argument("--backend", default="numpy",
                   help="numpy (numba CPU), cupy (GPU), numpy-generic or array_api_strict")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    from ..train import Trainer, predict
    from . import _data

    if args.output is not None:  # refuse a bad --output before the solve, not after
        if os.path.isdir(args.output):
            raise IsADirectoryError(f"--output {args.output}: is a folder; give a file name "
                                    "for the CSV")
        folder = os.path.dirname(os.path.abspath(args.output))
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"--output {args.output}: the folder {folder} does not exist")
    if not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f"--checkpoint {args.checkpoint}: no such file")
    if args.output is not None and os.path.exists(args.output) \
            and os.path.samefile(args.output, args.checkpoint):
        raise ValueError(f"--output {args.output}: is the checkpoint; writing the CSV there "
                         "would destroy the trained network")
    trainer = Trainer.load(args.checkpoint, backend=args.backend)  # (a GPU run on the CPU)
    trainer.restore_best()
    info = trainer.extra
    name = args.dataset or info.get("dataset")
    if name is None:
        print("refimpl predict: --dataset is required for this checkpoint", file=sys.stderr)
        return 2
    data = _data.load(name, seed=info.get("split_seed", 0),
                      path=args.data_path or info.get("data_path"))
    X, y = getattr(data, f"X_{args.split}"), getattr(data, f"y_{args.split}")
    trained = info.get("dataset")
    if trained is not None and name != trained:
        raise ValueError(f"--dataset {name}: the checkpoint was trained on {trained}; "
                         "predicting another data set's labels is refused")
    if X.shape[1] != trainer.n_in:
        raise ValueError(f"--dataset {name}: has {X.shape[1]} features, the network "
                         f"{trainer.n_in}")
    classes = info.get("classes")
    if classes is not None and list(data.classes.tolist()) != list(classes):
        raise ValueError(f"--dataset {name}: its class labels {data.classes.tolist()} differ "
                         f"from the checkpoint's {classes}")
    pred = predict(trainer.net, X, trainer.gamma, backend=args.backend)
    err = float(np.mean(pred != y))
    if args.output:
        with atomic_write(args.output, newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["index", "prediction", "label"])
            for i, (a, b) in enumerate(zip(data.classes[pred], data.classes[y])):
                w.writerow([i, a, b])
    print(f"{name} ({args.split}, {len(y)} samples): error {err:.4f}")
    return 0
