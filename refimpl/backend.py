"""The one place that resolves an array backend (DESIGN.md section 3, "Backends").

``backend="numpy"`` (the default) is the numba CPU path, the reference.  Any
other backend runs the *generic path* (:mod:`refimpl.xp`), written once
against an array-API namespace ``xp``: ``"cupy"`` (CuPy through
``array_api_compat.cupy``, only when a CUDA device is available; otherwise a
:class:`BackendError` says why, nothing silently falls back to the CPU), or
an array-API namespace module such as :mod:`array_api_strict` (tests run the
generic path on the CPU with it, on its non-default device, where any stray
NumPy call raises) or :mod:`numpy` itself (the generic path on NumPy arrays).
Namespace detection of arrays is :func:`array_api_compat.array_namespace`;
no other module of :mod:`refimpl` imports :mod:`cupy`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from types import ModuleType

__all__ = ["Backend", "BackendError", "get_backend", "is_reference", "to_numpy"]

#: Environment variable that sets the default backend ("numpy" or "cupy").
ENV_VAR = "REFIMPL_BACKEND"


class BackendError(RuntimeError):
    """The requested array backend cannot be used on this machine."""


@dataclass(frozen=True)
class Backend:
    """An array namespace, its device, and whether it is the numba reference
    (the backends of DESIGN.md section 3).

    Attributes
    ----------
    name : str
        ``"numpy"`` (the numba path), ``"cupy"``, or the namespace's module
        name (``"array_api_strict"``, ``"numpy-generic"``).
    xp : module
        The array-API namespace the generic path computes with (the
        ``array_api_compat`` wrapper for NumPy and CuPy).
    device : object or None
        Where the generic path allocates when the input arrays are not
        already in ``xp`` (None: the namespace's default device).
    generic : bool
        False only for ``"numpy"``: the numba kernels of :mod:`refimpl.propagate`.
    """

    name: str
    xp: ModuleType
    device: object = None
    generic: bool = True

    @property
    def is_gpu(self) -> bool:
        return self.name == "cupy"


_CACHE: dict = {}


def _compat_namespace(module):
    """The array-API namespace of ``module`` (compat wrapper for NumPy/CuPy)."""
    import array_api_compat

    name = getattr(module, "__name__", "")
    if name in ("numpy", "array_api_compat.numpy"):
        import array_api_compat.numpy as cnp

        return cnp
    if name in ("cupy", "array_api_compat.cupy"):  # pragma: no cover - GPU only
        return _cupy_namespace()
    if not hasattr(module, "asarray") or not hasattr(module, "linalg"):
        raise ValueError(f"backend: {name!r} is not an array-API namespace with a linalg "
                         "extension")
    return array_api_compat.array_namespace(module.asarray(0.0))


def _cupy_namespace():
    try:
        import cupy
        import array_api_compat.cupy as ccp
    except ImportError as exc:
        raise BackendError(
            "backend='cupy' needs CuPy: install the 'gpu' extra (CUDA 12, "
            "pip install -e '.[gpu]') or 'gpu-cuda13' (CUDA 13)") from exc
    try:  # pragma: no cover - depends on the machine
        available = bool(cupy.cuda.is_available())
    except Exception:  # pragma: no cover
        available = False
    if not available:  # pragma: no cover
        raise BackendError("backend='cupy' asked for, but no CUDA device is available")
    return ccp  # pragma: no cover


def get_backend(name=None, device=None) -> Backend:
    """Resolve a backend (DESIGN.md section 3 and section 13).

    Parameters
    ----------
    name : str, array-API namespace module, Backend or None
        ``"numpy"`` (numba), ``"cupy"``, ``"numpy-generic"`` (the generic
        path on NumPy) or ``"array_api_strict"``.  ``None`` reads the environment variable ``REFIMPL_BACKEND`` and
        defaults to ``"numpy"`` (the numba reference path).  A module (for
        example :mod:`array_api_strict`, or :mod:`numpy` for the generic
        path on NumPy arrays) selects the generic path in that namespace.
        A :class:`Backend` is returned unchanged (``device`` then replaces
        its device when given).
    device : optional
        The device of the generic path when the inputs are not already in
        its namespace (e.g. ``array_api_strict.Device("device1")``).

    Raises
    ------
    BackendError
        ``"cupy"`` was asked for but CuPy is not installed or no CUDA device
        is available.
    ValueError
        ``name`` is not a known backend.
    """
    if isinstance(name, Backend):
        if device is None:
            return name
        return Backend(name.name, name.xp, device, name.generic)
    if name is None:
        name = os.environ.get(ENV_VAR, "numpy")
    if isinstance(name, ModuleType):
        xp = _compat_namespace(name)
        label = getattr(name, "__name__", "module").split(".")[-1]
        if label == "numpy":
            label = "numpy-generic"
        return Backend(label, xp, device, True)
    if not isinstance(name, str):
        raise ValueError(f"backend: expected 'numpy', 'cupy', an array-API namespace module "
                         f"or a Backend, got {name!r}")
    key = name.lower()
    if key == "numpy":
        if device is not None:
            raise ValueError("backend: 'numpy' (the numba path) runs on the CPU; device "
                             "must be None")
        import numpy

        return Backend("numpy", numpy, None, False)
    if key == "cupy":
        if key not in _CACHE:
            _CACHE[key] = _cupy_namespace()
        return Backend("cupy", _CACHE[key], device, True)  # pragma: no cover - GPU only
    if key == "numpy-generic":
        import numpy

        return get_backend(numpy, device)
    if key in _NAMESPACES:
        import importlib

        try:
            module = importlib.import_module(key)
        except ImportError as exc:
            raise BackendError(f"backend={name!r} needs the package {key!r} "
                               "(pip install -e '.[test]')") from exc
        return get_backend(module, device)
    raise ValueError(f"backend: unknown backend {name!r}; expected one of "
                     f"{['numpy', 'cupy', 'numpy-generic', *_NAMESPACES]} or an array-API "
                     "namespace module")


#: Array-API namespaces that may be named by a string (``--backend`` on the CLI).
_NAMESPACES = ("array_api_strict",)


def is_reference(backend) -> bool:
    """True when ``backend`` selects the numba reference path (``"numpy"``,
    DESIGN.md section 3); ``None`` reads ``REFIMPL_BACKEND``."""
    if backend is None:
        backend = os.environ.get(ENV_VAR, "numpy")
    if isinstance(backend, str):
        return backend.lower() == "numpy"
    if isinstance(backend, Backend):
        return not backend.generic
    return False


def to_numpy(a):
    """Return ``a`` as a NumPy array (copying from the GPU or another device):
    the host side of the boundary of DESIGN.md section 3's generic path."""
    import numpy

    if isinstance(a, (numpy.ndarray, numpy.generic)):
        return numpy.asarray(a)
    get = getattr(a, "get", None)
    if callable(get) and type(a).__module__.startswith("cupy"):
        return get()  # pragma: no cover - GPU only
    import array_api_compat

    if array_api_compat.is_array_api_strict_namespace(array_api_compat.array_namespace(a)):
        import array_api_strict

        a = a.to_device(array_api_strict.Device("CPU_DEVICE"))
    return numpy.asarray(a)
