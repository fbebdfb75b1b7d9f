"""Dataset lookup shared by the commands (no mathematics)."""
from __future__ import annotations

BUILTIN = ("digits", "wine", "breast_cancer", "iris")
UCI = ("codon", "gas_drift", "daily_sports", "facebook")


def load(name, *, seed=0, path=None):
    """A :class:`refimpl.datasets.Dataset` by name (built-in or a UCI local copy)."""
    from .. import datasets

    if name in BUILTIN:
        return datasets.load_builtin(name, seed=seed)
    loader = getattr(datasets, f"load_{name}", None)
    if name not in UCI or loader is None:
        raise SystemExit(f"--dataset: unknown data set {name!r}; choose from "
                         f"{', '.join(BUILTIN + UCI)}")
    return loader(path, seed=seed)
