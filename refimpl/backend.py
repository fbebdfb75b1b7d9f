"""The one place that chooses the array namespace.

Everything in :mod:`refimpl` that allocates arrays takes its namespace from
:func:`get_backend`; no other module imports :mod:`cupy`.  NumPy/SciPy is the
default.  CuPy (with :mod:`cupyx.scipy.sparse`) is used only when asked for by
name and when a CUDA device is available; otherwise a :class:`BackendError`
says why it cannot be used (nothing silently falls back to the CPU).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from types import ModuleType

__all__ = ["Backend", "BackendError", "get_backend", "to_numpy"]

#: Environment variable that sets the default backend ("numpy" or "cupy").
ENV_VAR = "REFIMPL_BACKEND"


class BackendError(RuntimeError):
    """The requested array backend cannot be used on this machine."""


@dataclass(frozen=True)
class Backend:
    """An array namespace and its matching sparse module.

    Attributes
    ----------
    name : str
        ``"numpy"`` or ``"cupy"``.
    xp : module
        :mod:`numpy` or :mod:`cupy`.
    sparse : module
        :mod:`scipy.sparse` or :mod:`cupyx.scipy.sparse`.
    """

    name: str
    xp: ModuleType
    sparse: ModuleType

    @property
    def is_gpu(self) -> bool:
        return self.name == "cupy"


_CACHE: dict[str, Backend] = {}


def get_backend(name: str | Backend | None = None) -> Backend:
    """Return the array backend called ``name``.

    Parameters
    ----------
    name : {"numpy", "cupy"}, Backend or None
        ``None`` reads the environment variable ``REFIMPL_BACKEND`` and
        defaults to ``"numpy"``.  A :class:`Backend` is returned unchanged.

    Raises
    ------
    BackendError
        ``"cupy"`` was asked for but CuPy is not installed or no CUDA device
        is available.
    ValueError
        ``name`` is not a known backend.
    """
    if isinstance(name, Backend):
        return name
    if name is None:
        name = os.environ.get(ENV_VAR, "numpy")
    name = str(name).lower()
    if name in _CACHE:
        return _CACHE[name]
    if name == "numpy":
        import numpy
        import scipy.sparse

        backend = Backend("numpy", numpy, scipy.sparse)
    elif name == "cupy":
        try:
            import cupy
            import cupyx.scipy.sparse
        except ImportError as exc:  # pragma: no cover - depends on the machine
            raise BackendError(
                "backend='cupy' needs CuPy: install the 'gpu' extra "
                "(pip install -e '.[gpu]')"
            ) from exc
        try:  # pragma: no cover - depends on the machine
            available = bool(cupy.cuda.is_available())
        except Exception:  # pragma: no cover
            available = False
        if not available:  # pragma: no cover
            raise BackendError("backend='cupy' asked for, but no CUDA device is available")
        backend = Backend("cupy", cupy, cupyx.scipy.sparse)  # pragma: no cover
    else:
        raise ValueError(f"backend: unknown backend {name!r}; expected 'numpy' or 'cupy'")
    _CACHE[name] = backend
    return backend


def to_numpy(a):
    """Return ``a`` as a NumPy array (copying from the GPU when needed)."""
    get = getattr(a, "get", None)
    if callable(get) and type(a).__module__.startswith("cupy"):
        return get()  # pragma: no cover - GPU only
    import numpy

    return numpy.asarray(a)
