"""Hidden activations f, f' and output activations g (DESIGN.md section 2).

Each hidden activation is a pair ``(f, df)`` of elementwise functions.  Output
activations act on rows of ``Z`` (one row per sample).  All functions take the
array namespace from their argument, so they work on NumPy and CuPy arrays.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import math

import numba
import numpy as np

__all__ = [
    "Activation",
    "ACTIVATIONS",
    "OUTPUTS",
    "get_activation",
    "get_output",
    "softmax",
    "sigmoid",
]


def _xp(a):
    if isinstance(a, (np.ndarray, np.generic, float, int)):
        return np  # the fast path of the numba backend
    import array_api_compat

    return array_api_compat.array_namespace(a)


def sigmoid(x):
    r"""Logistic sigmoid, evaluated without overflow: a hidden activation f of
    Eq. (3) or the output activation g (DESIGN.md sec. 2).

    .. math:: \sigma(x) = 1 / (1 + e^{-x})
    """
    xp = _xp(x)
    # exp of a non-positive number never overflows.
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def tanh_packed(x):
    """tanh(x) in arithmetic only (the f of Eq. 3 for ``tanh``), for loops
    that LLVM packs into SIMD code: ``math.exp`` is a scalar libm call, so
    :func:`refimpl.solvers.newton._act`'s tanh keeps a loop scalar.

    tanh = (1 - e) / (1 + e), e = exp(y), y = -2|x| clamped at -40 (tanh is
    +-1 there in double precision); Cody-Waite reduction y = k ln2 + r,
    |r| <= ln2/2, k = round(y / ln2) by the 1.5 * 2^52 shift; exp(r) by its
    Taylor series to r^13 (remainder < 4e-18); 2^k (k in [-58, 0]) as the
    exact product of the factors 2^-32 .. 2^-1 that the bits of -k select.
    For k = 0 (|x| < ~0.173) it is -em1 / (2 + em1) with em1 = e - 1 from
    the series without its leading 1, so small |x| keep their relative
    accuracy (1 - e would cancel: 2.2e-5 relative error at x = 1e-12); the
    sign is x's (copysign: -0.0 stays -0.0).  NaN passes every step (its
    comparisons are false).  Absolute error against np.tanh <= 2.3e-16,
    relative error for |x| < 0.173 <= 4 ulp (tests/test_activation_kernel.py).  About
    45 flops: in a packed loop 2.3 ns per value (against 4.2 ns for the
    libm exp form, 1.2 ns for np.tanh), in a scalar loop ~11 ns, so it is
    used only in contiguous loops: the fixed-point kernel's rows
    (:func:`refimpl.solvers.fixed_point._act_row`) and :func:`tanh_float64`.
    """
    y = -2.0 * abs(x)
    if y < -40.0:
        y = -40.0
    kf = (y * 1.4426950408889634 + 6755399441055744.0) - 6755399441055744.0
    r = (y - kf * 6.93147180369123816490e-01) - kf * 1.90821492927058770002e-10
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    em1 = p * r  # exp(r) - 1, without the cancellation of exp(r) - 1 near r = 0
    p = em1 + 1.0
    n = -kf
    if n >= 32.0:
        p *= 2.3283064365386963e-10
        n -= 32.0
    if n >= 16.0:
        p *= 1.52587890625e-05
        n -= 16.0
    if n >= 8.0:
        p *= 0.00390625
        n -= 8.0
    if n >= 4.0:
        p *= 0.0625
        n -= 4.0
    if n >= 2.0:
        p *= 0.25
        n -= 2.0
    if n >= 1.0:
        p *= 0.5
    if kf == 0.0:  # |x| < ~0.173: (1 - e) / (1 + e) with 1 - e = -em1, exactly
        t = -em1 / (2.0 + em1)
    else:
        t = (1.0 - p) / (1.0 + p)
    return math.copysign(t, x)  # tanh is odd (-0.0 stays -0.0)


_tanh_packed = numba.njit(cache=True, inline="always", error_model="numpy")(tanh_packed)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _tanh_flat(x, out):
    for i in range(x.shape[0]):  # one loop over contiguous values: LLVM packs it
        out[i] = _tanh_packed(x[i])


#: Arrays of at least this many float64 values take :func:`tanh_float64`
#: where it is the faster tanh (:func:`packed_tanh_is_faster`).
PACKED_TANH_MIN_SIZE = 256


def packed_tanh_is_faster():
    """Whether :func:`tanh_float64` (the packed :func:`tanh_packed` in one numba loop)
    beats ``np.tanh`` on this CPU, for the f of Eq. (3).  Decided from NumPy's CPU
    dispatch, not by timing, so that on a machine the same array always gives the same
    bits (which tanh an array gets depends on the CPU and on its size, never on a
    clock): NumPy's float64 tanh is vectorized (SVML, in its Linux x86-64 wheels) only
    with AVX-512 (``AVX512_SKX``); elsewhere it calls libm per value.  Measured per
    value on large arrays: 2-core AMD EPYC VM (AVX2) np.tanh 16.9 ns, the kernel ~7 ns;
    Intel Xeon VM (AVX-512) np.tanh 1.2 ns, the kernel 2.3 ns."""
    core = getattr(np, "_core", None) or getattr(np, "core", None)  # NumPy 2 / 1
    umath = getattr(core, "_multiarray_umath", None)
    return not getattr(umath, "__cpu_features__", {}).get("AVX512_SKX", False)


_PACKED_TANH = packed_tanh_is_faster()


def tanh_float64(x):
    """tanh of a NumPy float64 array by :func:`tanh_packed` (the f of Eq. 3; absolute
    error <= 2.3e-16 against np.tanh, tests/test_activation_kernel.py) in one compiled
    loop; the result has x's shape."""
    x = np.asarray(x, dtype=np.float64)
    order = "F" if x.flags.f_contiguous and not x.flags.c_contiguous else "C"
    x = np.asarray(x, order=order)  # (a copy only when x is neither C- nor F-contiguous)
    out = np.empty_like(x, order=order)
    _tanh_flat(x.reshape(-1, order=order), out.reshape(-1, order=order))  # views
    return out


def _tanh(x):
    if (_PACKED_TANH and type(x) is np.ndarray and x.dtype == np.float64
            and x.size >= PACKED_TANH_MIN_SIZE):
        return tanh_float64(x)
    return _xp(x).tanh(x)


def _dtanh(x):
    t = _tanh(x)
    return 1.0 - t * t


def _dsigmoid(x):
    s = sigmoid(x)
    return s * (1.0 - s)


def _swish(x):
    return x * sigmoid(x)


def _dswish(x):
    s = sigmoid(x)
    return s + x * s * (1.0 - s)


def _relu(x):
    return _xp(x).maximum(x, 0.0)


def _drelu(x):
    # The derivative at 0 is taken as 0 (a subgradient).
    xp = _xp(x)
    if xp is np:
        return (x > 0).astype(x.dtype)
    return xp.astype(x > 0, x.dtype)


def _identity(x):
    return x


def _didentity(x):
    return _xp(x).ones_like(x)


@dataclass(frozen=True)
class Activation:
    r"""A hidden activation f with its derivative f'.

    ``lipschitz`` is :math:`\max_x |f'(x)|`, used by the contraction test of
    DESIGN.md section 3 (``||A_SS|| * max|f'| < 1``).
    """

    name: str
    f: Callable
    df: Callable
    lipschitz: float
    #: f'(x) from (x, f(x)) without re-evaluating f (tanh: 1 - f^2), when cheaper.
    df_from_f: Callable | None = None

    def __call__(self, x):
        return self.f(x)

    def derivative(self, x, fx):
        """f'(x), reusing ``fx = f(x)`` where the activation allows."""
        if self.df_from_f is not None:
            return self.df_from_f(x, fx)
        return self.df(x)


#: The hidden activations of DESIGN.md section 2, by name.
ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation("tanh", _tanh, _dtanh, 1.0, lambda x, t: 1.0 - t * t),
    "sigmoid": Activation("sigmoid", sigmoid, _dsigmoid, 0.25, lambda x, s: s * (1.0 - s)),
    # max of swish' is about 1.0998 (at x ~ 2.3994).
    "swish": Activation("swish", _swish, _dswish, 1.0998393),
    "relu": Activation("relu", _relu, _drelu, 1.0),
    "identity": Activation("identity", _identity, _didentity, 1.0),
}


def softmax(Z):
    r"""Row-wise softmax, shifted by the row maximum for stability: the output
    activation g of ``Y = g(Z)`` (Sec. 3.3, DESIGN.md sec. 3) for classification.

    .. math:: g(z)_o = e^{z_o} / \sum_{o'} e^{z_{o'}}
    """
    xp = _xp(Z)
    E = xp.exp(Z - xp.max(Z, axis=-1, keepdims=True))
    return E / xp.sum(E, axis=-1, keepdims=True)


#: Output activations g of Sec. 3.3 (applied to Z row-wise), by name.
OUTPUTS: dict[str, Callable] = {
    "identity": _identity,
    "sigmoid": sigmoid,
    "softmax": softmax,
}


def get_activation(name: str | Activation) -> Activation:
    """Return the hidden activation called ``name`` (or ``name`` itself): the
    f (and f') of Eq. (3) and Eq. (4) (DESIGN.md sec. 2)."""
    if isinstance(name, Activation):
        builtin = ACTIVATIONS.get(name.name)
        if builtin is not None and builtin != name:  # (a copy of the built-in is equal)
            # the compiled solvers pick f by name: they would solve with the built-in one
            raise ValueError(f"activation: a custom Activation may not take the built-in name "
                             f"{name.name!r} (the compiled module solvers would use the "
                             "built-in f); give it a name of its own")
        return name
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"activation: unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}"
        ) from None


def get_output(name: str) -> Callable:
    """Return the output activation g called ``name``: ``Y = g(Z)`` of the
    output layer (Sec. 3.3, DESIGN.md sec. 3), its g' in Eq. (4)."""
    try:
        return OUTPUTS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"output: unknown output activation {name!r}; expected one of {sorted(OUTPUTS)}"
        ) from None
