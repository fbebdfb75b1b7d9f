"""Input checks shared by every layer: clear errors naming the argument."""
from __future__ import annotations

import operator

import numpy as np


def as_float_array(a, name, shape=None):
    """``a`` as a contiguous float64 array, checked to be real, finite and
    (when ``shape`` is given; ``None`` entries match any size) of that shape.

    Raises ValueError naming ``name`` and the problem.
    """
    a = np.asarray(a)
    if shape is not None and (a.ndim != len(shape) or any(
            s is not None and s != d for s, d in zip(shape, a.shape))):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name}: expected shape {want}, got {a.shape}")
    if a.dtype.kind not in "fiub":
        raise ValueError(f"{name}: expected a real array, got dtype {a.dtype}")
    a = np.ascontiguousarray(a, dtype=np.float64)
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return a


def check_positive_scalar(value, name):
    """``value`` as a float, finite and > 0; ValueError naming ``name``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real scalar, got {value!r}") from None
    if not np.isfinite(v) or v <= 0.0:
        raise ValueError(f"{name} must be finite and > 0, got {v!r}")
    return v


def check_finite_array(value, name, ndim):
    """``value`` as a finite float64 array of ``ndim`` dimensions; ValueError naming ``name``."""
    a = np.asarray(value, dtype=np.float64)
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite")
    return a


def check_count(value, name, minimum=0):
    """``value`` as a Python int (``operator.index``) >= ``minimum``; ValueError naming ``name``."""
    try:
        v = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    return v


def json_default(o):
    """``json.dump(..., default=json_default)``: NumPy scalars and arrays as
    plain numbers and lists."""
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")
