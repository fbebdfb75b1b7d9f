"""Hidden activations f, f' and output activations g (DESIGN.md section 2).

Each hidden activation is a pair ``(f, df)`` of elementwise functions.  Output
activations act on rows of ``Z`` (one row per sample).  All functions take the
array namespace from their argument, so they work on NumPy and CuPy arrays.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

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


def _tanh(x):
    return _xp(x).tanh(x)


def _dtanh(x):
    t = _xp(x).tanh(x)
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
