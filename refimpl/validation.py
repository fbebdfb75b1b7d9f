"""Input checks shared by every layer: clear errors naming the argument (DESIGN.md sec. 14).

The single home of the package's argument checks, in the manner of scikit-learn's
``utils/validation.py``: each function returns the checked value in canonical form
(a Python number, a contiguous float64 array, int64 labels) or raises ValueError
whose message starts with the argument's name and says what was expected.
"""
from __future__ import annotations

import operator
import warnings

import numpy as np

__all__ = ["as_float_array", "check_array", "check_fit_data", "check_finite_array", "check_int",
           "check_labels", "check_rows", "check_scalar", "check_samples", "check_threads",
           "encode_class_labels"]


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


def check_int(value, name, minimum=0):
    """``value`` as a Python int >= ``minimum`` (any integer type; not a bool)."""
    what = {0: "a non-negative integer", 1: "a positive integer"}.get(
        minimum, f"an integer >= {minimum}")
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}: expected {what}, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise ValueError(f"{name}: expected {what}, got {value!r}") from None
    if v < minimum:
        raise ValueError(f"{name}: expected {what}, got {v}")
    return v


def check_threads(threads, name="threads"):
    """``threads`` as None or an int ``>= 1``; ValueError naming ``name`` otherwise
    (the ``threads=`` argument of DESIGN.md section 3, "Threads"; :mod:`refimpl.threads`)."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not hasattr(threads, "__index__"):
        raise ValueError(f"{name}: expected None or an integer >= 1, got {threads!r}")
    n = int(threads.__index__())
    if n < 1:
        raise ValueError(f"{name}: expected None or an integer >= 1, got {threads!r}")
    return n


def check_scalar(value, name, *, minimum=None, strict=False):
    """``value`` as a finite float; ``> minimum`` if ``strict`` else ``>= minimum``
    (no bound when ``minimum`` is None)."""
    if isinstance(value, (bool, np.bool_, str, bytes)):  # (float("0.5") would take a str)
        raise ValueError(f"{name}: expected a real number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a real number, got {value!r}") from None
    bad = minimum is not None and (v < minimum or (strict and v == minimum))
    if not np.isfinite(v) or bad:
        bound = "" if minimum is None else f" {'>' if strict else '>='} {minimum:g}"
        raise ValueError(f"{name}: expected a finite number{bound}, got {v!r}")
    return v


def check_finite_array(value, name, ndim):
    """``value`` as a finite float64 array of ``ndim`` dimensions."""
    a = np.asarray(value, dtype=np.float64)
    if a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: contains NaN or inf")
    return a


def check_samples(X, n_features, name="X"):
    """``X`` as a finite float64 (B, n_features) batch of at least one row."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != n_features:
        raise ValueError(f"{name}: expected shape (B, {n_features}), got {X.shape}")
    if X.shape[0] < 1:
        raise ValueError(f"{name}: expected at least one sample")
    if not np.isfinite(X).all():
        raise ValueError(f"{name}: entries must be finite")
    return X


def check_rows(X, n_features, name="X0"):
    """``X`` as a float64 (B, n_features) array; a single sample (n_features,) becomes
    one row."""
    X = np.asarray(X)
    return as_float_array(X[None, :] if X.ndim == 1 else X, name, (None, n_features))


def check_labels(y, n, n_classes, name="y"):
    """``y`` as ``n`` int64 class labels in ``[0, n_classes)``."""
    y = np.asarray(y)
    if y.shape != (n,) or y.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected {n} integer class labels, got shape {y.shape} "
                         f"dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"{name}: labels must lie in [0, {n_classes}), got "
                         f"[{y.min()}, {y.max()}]")
    return y.astype(np.int64, copy=False)


def check_fit_data(X, y, X_val, y_val, n_in, n_out):
    """Training and (optional) validation data checked for a fit: float64
    (B, n_in) inputs, integer labels in ``[0, n_out)``, at least two classes present
    in the training labels."""
    X = check_rows(X, n_in, "X")
    y = check_labels(y, X.shape[0], n_out, "y")
    present = np.unique(y)
    if present.size < 2:
        raise ValueError(f"y: the training labels hold a single class ({present.tolist()}); "
                         "a classifier needs at least two classes to learn anything")
    if (X_val is None) != (y_val is None):
        given, missing = ("X_val", "y_val") if y_val is None else ("y_val", "X_val")
        raise ValueError(f"{missing}: missing ({given} was given; pass both or neither)")
    if X_val is not None:
        X_val = check_rows(X_val, n_in, "X_val")
        y_val = check_labels(y_val, X_val.shape[0], n_out, "y_val")
        if X_val.shape[0] == 0:
            raise ValueError("X_val: the validation split is empty (pass None for no "
                             "validation)")
    return X, y, X_val, y_val


def check_array(X, n_features=None, *, estimator="NMClassifier"):
    """``X`` as a finite float64 (n_samples, n_features) array for a scikit-learn-style
    estimator (scikit-learn's ``check_array`` messages, which its checks match);
    ValueError naming X."""
    if hasattr(X, "tocsr") or hasattr(X, "toarray"):
        raise ValueError("X: sparse input is not supported; pass a dense array "
                         "(X.toarray())")
    X = np.asarray(X)
    if X.dtype.kind == "O":
        try:
            X = X.astype(np.float64)
        except TypeError as exc:  # TypeError as numpy and scikit-learn raise it
            raise TypeError(f"X: expected numeric values: {exc}") from None
        except ValueError as exc:
            raise ValueError(f"X: expected numeric values: {exc}") from None
    if X.ndim != 2:
        hint = ("; Reshape your data with X.reshape(-1, 1) for one feature or "
                "X.reshape(1, -1) for one sample") if X.ndim == 1 else ""
        raise ValueError(f"X: expected a 2-D array (n_samples, n_features), got shape "
                         f"{X.shape}{hint}")
    if X.dtype.kind == "c":
        raise ValueError("X: Complex data not supported")
    if X.dtype.kind not in "fiub":
        raise ValueError(f"X: expected a real numeric array, got dtype {X.dtype}")
    # The next two messages are scikit-learn's (check_array), which its checks match.
    if X.shape[0] == 0:
        raise ValueError(f"X: Found array with 0 sample(s) (shape={X.shape}) while a "
                         "minimum of 1 is required.")
    if X.shape[1] == 0:
        raise ValueError(f"X: Found array with 0 feature(s) (shape={X.shape}) while a "
                         "minimum of 1 is required.")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} features, but {estimator} is expecting "
                         f"{n_features} features as input.")
    X = np.ascontiguousarray(X, dtype=np.float64)
    if not np.isfinite(X).all():
        raise ValueError("X: contains NaN or infinity")
    return X


def encode_class_labels(y, n_samples, *, estimator="NMClassifier", conversion_warning=UserWarning):
    """The sorted distinct labels of ``y`` and the code (0..n_classes-1) of each row, for a
    classifier (at least 2 classes; a column vector is raveled with ``conversion_warning``)."""
    if y is None:
        raise ValueError(f"y: {estimator} requires y to be passed, but the target y is None")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:  # a column vector: scikit-learn warns and ravels
        warnings.warn("A column-vector y was passed when a 1d array was expected; "
                      "y.ravel() is used", conversion_warning, stacklevel=3)
        y = y.ravel()
    if y.ndim != 1:
        raise ValueError(f"y: expected a 1-D array of labels, got shape {y.shape}")
    if y.shape[0] != n_samples:
        raise ValueError(f"y: has {y.shape[0]} labels but X has {n_samples} samples")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            raise ValueError("y: contains NaN or infinity")
        if np.any(y != np.round(y)):  # scikit-learn's type_of_target says "continuous"
            raise ValueError("y: Unknown label type: continuous (non-integer floats); a "
                             "classifier needs discrete labels")
    if y.dtype.kind == "c":
        raise ValueError("y: Unknown label type: complex")
    if y.dtype.kind == "O" and any(v is None for v in y):
        raise ValueError("y: contains None")
    try:
        classes, codes = np.unique(y, return_inverse=True)
    except TypeError as exc:
        raise ValueError(f"y: labels must be mutually comparable ({exc})") from None
    if classes.size < 2:
        raise ValueError(f"y: a classifier needs at least 2 classes, got 1 class "
                         f"({classes[0]!r})")
    return classes, codes.reshape(-1).astype(np.int64)
