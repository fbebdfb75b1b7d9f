"""Dataset lookup shared by the commands (no mathematics)."""
from __future__ import annotations

from ..datasets import BUILTIN_DATASETS as BUILTIN
from ..datasets import PAPER_DATASETS, SUPPLEMENT_DATASETS

UCI = PAPER_DATASETS + SUPPLEMENT_DATASETS  # every data set read from a local copy


def load(name, *, seed=0, path=None):
    """A :class:`refimpl.datasets.Dataset` by name (built-in, or a local copy of a paper or supplement data set),
    through :func:`refimpl.datasets.load`; an unknown name raises a ValueError naming
    ``--dataset`` (reported by the CLI as one line, exit code 2)."""
    from .. import datasets

    if name not in BUILTIN + UCI:
        raise ValueError(f"--dataset: unknown data set {name!r}; choose from "
                         f"{', '.join(BUILTIN + UCI)}")
    if path is not None and name in BUILTIN:
        raise ValueError(f"--data-path: the data set {name!r} is built in (not read from disk); "
                         f"drop --data-path, got {path!r}")
    try:
        return datasets.load(name, path, seed=seed)
    except FileNotFoundError as exc:  # the library says path=...; the command line --data-path
        raise FileNotFoundError(str(exc).replace("pass path=...", "pass --data-path DIR")
                                .replace("Pass path=...", "Pass --data-path DIR")) from None
