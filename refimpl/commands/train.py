"""``refimpl train``: train a neural-module network (Alg. 2) on a data set.

Writes into ``--out``: ``checkpoint.npz`` (every array, optimizer and RNG
state, config, history: ``--resume`` continues it bit for bit),
``history.json`` / ``history.csv`` (one row per epoch: loss, errors, edges,
edges regrown, modules, largest module, levels, solver iterations, time) and
``summary.json`` (status, epochs, best epoch, seconds per epoch; the test error once
finished).  No mathematics here.

Nothing is lost and nothing is silently replaced: every file is written atomically after
every epoch (:func:`refimpl.io.atomic_write`); SIGINT / SIGTERM stop at the next
mini-batch and say how to resume; a folder that holds a run is refused unless
``--resume`` (which refuses options that contradict the checkpoint; only ``--epochs``
may grow; a run that early stopping ended stays ended) or ``--overwrite`` (the old run's
files stay until the new run's first checkpoint); after a failure or an interrupt the
history and summary describe the checkpoint (``summary.json``: ``interrupted`` or
``failed`` with the error); a failed start leaves no empty folder behind.
"""
from __future__ import annotations

import csv
import dataclasses
import os
import signal
import sys
import time

import numpy as np

from ..io import atomic_write, write_json
from ._data import BUILTIN, UCI


def register(subparsers, name="train", help_text=None):
    from ..train import TrainConfig

    d = TrainConfig()
    p = subparsers.add_parser(name, help=help_text, description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="digits", help=f"one of {', '.join(BUILTIN + UCI)}")
    p.add_argument("--data-path", default=None, help="local copy of a UCI data set")
    p.add_argument("--out", default="runs/train", help="output folder (created)")
    p.add_argument("--resume", action="store_true",
                   help="continue the checkpoint in --out (only --epochs may change, to grow)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a run already in --out")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--nodes", type=int, default=d.nodes, help="p, hidden nodes")
    p.add_argument("--edges", type=int, default=None,
                   help="k, edges kept (default min(10 p, p (p - 1)); ignored with --gamma)")
    p.add_argument("--gamma", type=float, default=None,
                   help="fixed pruning threshold instead of top-k (default: top-k)")
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
    p.set_defaults(func=run, parser=p)
    return p


HISTORY_COLUMNS = ("epoch", "loss", "train_error", "val_loss", "val_error", "edges", "regrown",
                   "modules", "largest_module", "levels", "newton_iterations", "gamma", "seconds")


def write_history(out, history):
    write_json(os.path.join(out, "history.json"), history)
    with atomic_write(os.path.join(out, "history.csv"), newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=HISTORY_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(history)


#: --option -> (TrainConfig field, how the command line value maps onto it)
CONFIG_OPTIONS = {
    "--nodes": ("nodes", lambda a: a.nodes), "--edges": ("edges", lambda a: a.edges),
    "--gamma": ("gamma", lambda a: a.gamma), "--batch-size": ("batch_size", lambda a: a.batch_size),
    "--lr": ("lr", lambda a: a.lr), "--momentum": ("momentum", lambda a: a.momentum),
    "--optimizer": ("optimizer", lambda a: a.optimizer), "--reg": ("reg", lambda a: a.reg),
    "--alpha": ("alpha", lambda a: a.alpha), "--reg-step": ("reg_step", lambda a: a.reg_step),
    "--activation": ("activation", lambda a: a.activation),
    "--init-scale": ("init_scale", lambda a: a.init_scale),
    "--patience": ("patience", lambda a: a.patience or None), "--seed": ("seed", lambda a: a.seed),
}


class _StopRequested(Exception):
    """Raised before a mini-batch once SIGINT or SIGTERM arrived."""


def _config_from_args(config_class, **fields):
    """``config_class(**fields)``; a ValueError names the command-line option
    (``--batch-size: ...``) rather than the config field (``batch_size: ...``)."""
    try:
        return config_class(**fields)
    except ValueError as exc:
        field, sep, rest = str(exc).partition(":")
        option = {f: opt for opt, (f, _) in CONFIG_OPTIONS.items()} | {"epochs": "--epochs"}
        if sep and field in option:
            raise ValueError(f"{option[field]}:{rest}") from None
        raise


def _given_options(args):
    """The long options typed on the command line (argparse's unique prefixes resolved),
    or None when the command was not run through :func:`refimpl.cli.main`."""
    argv = getattr(args, "argv", None)
    if argv is None:
        return None
    known = [o for o in args.parser._option_string_actions if o.startswith("--")]
    given = set()
    for token in argv:
        if not token.startswith("--"):
            continue
        name = token.split("=", 1)[0]
        matches = [o for o in known if o == name] or [o for o in known if o.startswith(name)]
        if len(matches) == 1:
            given.add(matches[0])
    return given


def _given(typed, opt, value, default):
    """Whether option ``opt`` was typed on the command line (``typed``: from
    :func:`_given_options`; None, without argv: whether its ``value`` differs from its
    ``default``)."""
    return opt in typed if typed is not None else value != default


def _contradictions(args, defaults, trainer, info):
    """Options given on the command line that differ from the checkpoint's run."""
    typed = _given_options(args)

    def given(opt, value, default):
        return _given(typed, opt, value, default)

    bad = []
    for opt, (field, value) in CONFIG_OPTIONS.items():
        saved = getattr(trainer.config, field)
        if given(opt, value(args), value(defaults)) and value(args) != saved:
            bad.append(f"{opt} {value(args)} (the run has {saved})")
    for opt, value, default, saved in (
            ("--dataset", args.dataset, defaults.dataset, info.get("dataset")),
            ("--data-path", args.data_path, defaults.data_path, info.get("data_path"))):
        if given(opt, value, default) and value != saved:
            bad.append(f"{opt} {value} (the run has {saved})")
    if given("--epochs", args.epochs, defaults.epochs) and args.epochs < trainer.config.epochs:
        bad.append(f"--epochs {args.epochs} (the run has {trainer.config.epochs}; "
                   "--epochs may only grow)")
    return bad


def _summary(trainer, info, status, elapsed, test_error=None):
    per_epoch = [h["seconds"] for h in trainer.history]
    return {
        "status": status, "dataset": info["dataset"], "test_error": test_error,
        "monitor": trainer.config.monitor, "best_epoch": trainer.best_epoch,
        "best_val": None if not np.isfinite(trainer.best_val) else trainer.best_val,
        "epochs": trainer.epoch,
        "seconds_per_epoch": float(np.mean(per_epoch)) if per_epoch else None,
        "seconds": elapsed, "gamma": None if np.isnan(trainer.gamma) else trainer.gamma,
        "config": trainer.config.to_dict(),
    }


def run(args) -> int:
    from tqdm import tqdm

    from ..train import Trainer, TrainConfig, predict
    from . import _data

    ckpt = os.path.join(args.out, "checkpoint.npz")
    has_run = os.path.exists(ckpt)
    if args.resume and args.overwrite:
        raise ValueError("--resume and --overwrite: choose one")
    if args.resume:
        if not has_run:
            raise FileNotFoundError(f"--resume: no checkpoint at {ckpt}")
        trainer = Trainer.load(ckpt, backend=args.backend)  # (--backend: given or the run's)
        saved_target = trainer.config.epochs
        info = trainer.extra
        if "dataset" not in info or "split_seed" not in info:
            raise ValueError(f"--resume: {ckpt} was not written by `refimpl train` (it has no "
                             "record of its data set); continue it with Trainer.load and fit")
        defaults = args.parser.parse_args([])
        bad = _contradictions(args, defaults, trainer, info)
        if bad:
            raise ValueError("--resume: these options contradict the run in "
                             f"{args.out}: {'; '.join(bad)}")
        data = _data.load(info["dataset"], seed=info["split_seed"], path=info.get("data_path"))
        # only a typed --epochs grows the run (its default is not a request); a run that
        # early stopping ended stays ended, said in one line
        if trainer.stopping.stopped:
            print(f"refimpl train: the run in {args.out} was ended by early stopping at epoch "
                  f"{trainer.epoch} (patience {trainer.config.patience}); nothing to train",
                  file=sys.stderr)
        elif (_given(_given_options(args), "--epochs", args.epochs, defaults.epochs)
                and args.epochs > trainer.config.epochs):
            trainer.config = dataclasses.replace(trainer.config, epochs=args.epochs)
    else:
        if has_run and not args.overwrite:
            raise FileExistsError(f"--out {args.out} holds a run (checkpoint.npz): continue it "
                                  "with --resume or replace it with --overwrite")
        config = _config_from_args(
            TrainConfig, nodes=args.nodes, edges=args.edges, gamma=args.gamma, epochs=args.epochs,
            batch_size=args.batch_size, lr=args.lr, momentum=args.momentum,
            optimizer=args.optimizer, reg=args.reg, alpha=args.alpha,
            reg_step=args.reg_step, activation=args.activation, init_scale=args.init_scale,
            patience=args.patience or None, seed=args.seed,
            backend=args.backend or "numpy")
        data = _data.load(args.dataset, seed=args.seed, path=args.data_path)
        trainer = Trainer(config, data.n_features, data.n_classes)
        saved_target = None
        info = {"dataset": args.dataset, "split_seed": args.seed, "data_path": args.data_path,
                "n_features": data.n_features, "classes": data.classes.tolist()}
    # a data set without a validation split (fashion_mnist, cifar10: val_size 0) trains
    # without one
    X_val, y_val = (data.X_val, data.y_val) if len(data.y_val) else (None, None)
    created = not os.path.isdir(args.out)
    os.makedirs(args.out, exist_ok=True)
    # --overwrite: the old run's files stay until the new run's first checkpoint replaces
    # them; from then on the history and summary follow the checkpoint (also on failure)
    wrote = []  # the epochs this run saved (each checkpoint written atomically)
    show = not args.quiet and sys.stderr.isatty()
    bar = tqdm(total=trainer.config.epochs, initial=trainer.epoch, unit="epoch",
               desc=f"NM {info['dataset']}", disable=not show)
    stop = []

    def on_signal(signum, frame):
        if stop:  # a second signal: stop at once
            raise KeyboardInterrupt
        stop.append(signal.Signals(signum).name)

    from ..loop import Hook

    class StopHook(Hook):
        keeps_params = True  # it only raises: the trainer keeps its pruning scan

        def before_batch(self, learner):
            if stop:
                raise _StopRequested

    t0 = time.perf_counter()

    def callback(tr, rec):
        bar.update(1)
        val = "-" if rec.val_error is None else f"{rec.val_error:.3f}"  # (no validation)
        bar.set_postfix(loss=f"{rec.loss:.3f}", val_err=val, modules=rec.modules,
                        largest=rec.largest_module)
        tr.save(ckpt, extra=info)  # every epoch, atomically: nothing lost on interruption
        wrote.append(tr.epoch)
        write_history(args.out, tr.history)
        write_json(os.path.join(args.out, "summary.json"),
                   _summary(tr, info, "running", time.perf_counter() - t0))
        return bool(stop)

    def close(status, exc=None):
        """After a failure or an interrupt: the history and summary of what the checkpoint
        holds, when this run wrote it (else the folder is as it was: nothing to say)."""
        if not wrote:
            return None
        try:
            saved = Trainer.load(ckpt, backend=args.backend)
            write_history(args.out, saved.history)
            extra = {} if exc is None else {"error": f"{type(exc).__name__}: {exc}"}
            write_json(os.path.join(args.out, "summary.json"),
                       {**_summary(saved, info, status, time.perf_counter() - t0), **extra})
            return saved
        except Exception:  # noqa: BLE001 - the run's own error is the one to report
            return None

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            for s in previous:
                signal.signal(s, on_signal)
            trainer.fit(data.X_train, data.y_train, X_val, y_val, callback=callback,
                        hooks=[StopHook()])
        except _StopRequested:
            pass
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
            bar.close()
        elapsed = time.perf_counter() - t0
        if stop:
            saved = close("interrupted")
            if saved is not None or args.resume:
                epochs = saved.epoch if saved is not None else trainer.epoch
                target = saved.config.epochs if saved is not None else saved_target
                more = (f" --epochs {trainer.config.epochs}"
                        if trainer.config.epochs > target else "")
                if args.backend is not None:
                    more += f" --backend {args.backend}"
                print(f"refimpl train: interrupted ({stop[0]}); epoch {epochs} is saved in "
                      f"{ckpt}: continue with `refimpl train --out {args.out} --resume{more}`",
                      file=sys.stderr)
            else:
                if created and not os.listdir(args.out):
                    os.rmdir(args.out)
                kept = (f"; the previous run in {args.out} is unchanged" if has_run else "")
                print(f"refimpl train: interrupted ({stop[0]}) before the first epoch ended; "
                      f"nothing was saved{kept}", file=sys.stderr)
            return 130
        trainer.save(ckpt, extra=info)
        write_history(args.out, trainer.history)
        final = Trainer.load(ckpt)
        final.restore_best()
        test_error = float(np.mean(predict(final.net, data.X_test, final.gamma,
                                           backend=trainer.config.backend) != data.y_test))
    except BaseException as exc:
        if created and not os.listdir(args.out):
            os.rmdir(args.out)  # a failed start leaves no empty folder
        else:
            close("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed", exc)
        raise
    summary = _summary(trainer, info, "finished", elapsed, test_error)
    write_json(os.path.join(args.out, "summary.json"), summary)
    print(f"{info['dataset']}: test error {test_error:.4f} after {trainer.epoch} epochs "
          f"({summary['seconds_per_epoch'] or 0:.2f} s/epoch); wrote {args.out}/")
    return 0
