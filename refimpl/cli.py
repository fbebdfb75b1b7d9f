"""The ``refimpl`` command line (layer 6: commands, no mathematics).

Each subcommand lives in its own module under :mod:`refimpl.commands` and
exposes ``register(subparsers)``, which adds its parser and sets
``func(args) -> int``.  Subcommand modules are imported lazily, only when
their command runs, so ``refimpl --version`` stays fast.

Errors: every failure of a command is reported as one line on stderr,
``refimpl COMMAND: ErrorType: message`` (with advice for the common ones), and
exit code 2; so is a command line argparse rejects (``refimpl train: error: argument
--nodes: invalid int value: 'abc' (see 'refimpl train --help')``, no usage block); an interrupt prints one line and exits with 130.  ``--debug``
(before or after the command name) shows the full traceback instead.
"""
from __future__ import annotations

import argparse
import functools
import importlib
import sys

from . import __version__

#: subcommand name -> (module under refimpl.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("train", "train a neural-module network (Alg. 2) and write a checkpoint"),
    "predict": ("predict", "predict with a trained checkpoint (Alg. 3)"),
    "verify": ("verify", "check the papers' claims numerically and print a table"),
    "table1": ("table1", "reproduce the structure of the paper's Table 1 (methods x nodes x seeds)"),
    "figures": ("figures", "regenerate the papers' figures (PNG + data) from the library"),
    "sagp": ("sagp", "train a self-assembling graph perceptron (the supplement)"),
    "bench": ("bench", "time the kernels against their peers (ratios)"),
}


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show ``(default: X)`` after an option's help, except where the help already
    states its default or the default is None (whose meaning the help gives)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default is None or "default" in text:
            return text
        return super()._get_help_string(action)


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line on stderr and exit code 2
    (argparse prints the whole usage block first; ``--help`` still shows it)."""

    def error(self, message: str):
        text = " ".join(str(message).split())
        self.exit(2, f"{self.prog}: error: {text} (see '{self.prog} --help')\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="refimpl",
        description="Reference implementation of Neural Modules and Self-Assembling Graph Perceptrons.",
    )
    parser.add_argument("--version", action="version", version=f"refimpl {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback when a command fails")
    # Every subcommand's --help shows the defaults.
    sub_class = functools.partial(OneLineParser,
                                  formatter_class=_DefaultsFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=sub_class)
    for name, (module, help_text) in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=help_text)
            continue
        mod = importlib.import_module(f"refimpl.commands.{module}")
        p = mod.register(sub, name, help_text)
        if p is not None:  # ``refimpl train ... --debug`` works too
            p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                           help="show the full traceback when the command fails")
        if "--threads" not in sub.choices[name]._option_string_actions:  # refimpl.threads
            sub.choices[name].add_argument("--threads", type=int, default=None,
                                           help="numba and BLAS threads (default 1)")
    return parser


def _advice(exc: BaseException) -> str:
    """A hint for the failures a user can fix from the command line."""
    from .solvers.result import ConvergenceError

    if isinstance(exc, ConvergenceError):
        return (" (try a lower --lr, standardized inputs, or a smaller --init-scale; "
                "--debug shows where it failed)")
    return ""


def error_line(command: str | None, exc: BaseException) -> str:
    """The one-line report of a failed command: ``refimpl CMD: Type: message``."""
    text = " ".join(str(exc).split()) or "(no message)"
    name = f"refimpl {command}" if command else "refimpl"
    return f"{name}: {type(exc).__name__}: {text}{_advice(exc)}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # Import only the module of the command that runs.
    only = next((a for a in argv if not a.startswith("-")), None)
    if only not in COMMANDS:
        only = "__none__"
    parser = build_parser(only)
    args = parser.parse_args(argv)
    args.argv = argv  # what the user typed: a command may ask which options were given
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0 if args.command is None else 2
    from .threads import threads_policy

    try:
        with threads_policy(getattr(args, "threads", None)):
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"refimpl {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI reports every failure in one line
        if args.debug:
            raise
        print(error_line(args.command, exc), file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
