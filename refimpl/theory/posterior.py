"""Thm. 3.2: the Gaussian posterior of NM-regularized least squares (Eq. 13, Appendix K)."""
from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from ..validation import check_finite_array
from ..validation import check_scalar

__all__ = ["posterior"]


def posterior(X, y, r, delta, tau):
    r"""Gaussian posterior of the weights of one node under NM regularization.

    Implements Thm. 3.2 (Eq. 13) of the paper.  Model: ``y = X w + eps`` with
    ``eps ~ N(0, delta^2 I)`` and prior ``w ~ N(0, tau^2 diag(r)^-1)``, where
    ``w`` is one column ``w_{:i}`` of the coefficient matrix and ``r`` the
    matching column of the repulsion matrix R (Eq. 10).  The posterior is

    .. math::

        w \mid y, X \sim \mathcal{N}\big(P^{-1} X^T y,\;
        \delta^2 P^{-1}\big), \qquad
        P = X^T X + \lambda\,\mathrm{diag}(r), \qquad
        \lambda = \delta^2 / \tau^2 .

    Its mean is the minimizer of the NM-regularized least squares
    :math:`\|y - Xw\|^2 + \lambda \sum_j r_j w_j^2` (Eq. 21 with
    :math:`\alpha = \lambda`).  The proof (Appendix K) writes the prior
    exponent as :math:`\|w^T \mathrm{diag}(r) w\|^2`; the closed form holds
    only for :math:`w^T \mathrm{diag}(r) w` (``proofs/errata.md``).

    Parameters
    ----------
    X : array_like, shape (n, d)
        Design matrix (the inputs of the node, one row per sample).
    y : array_like, shape (n,)
        Targets.
    r : array_like, shape (d,)
        Prior precision weights (repulsion coefficients), all > 0.
    delta : float
        Noise standard deviation, > 0 (the proof's sigma is the same symbol).
    tau : float
        Prior scale, > 0.

    Returns
    -------
    mean : ndarray, shape (d,)
    cov : ndarray, shape (d, d)
        Symmetric positive definite.

    Raises
    ------
    ValueError
        On a wrong shape, a non-finite value, ``r <= 0``, ``delta <= 0`` or
        ``tau <= 0``; the message names the argument.
    numpy.linalg.LinAlgError
        If ``P`` is not numerically positive definite.
    """
    X = check_finite_array(X, "X", 2)
    y = check_finite_array(y, "y", 1)
    r = check_finite_array(r, "r", 1)
    n, d = X.shape
    if y.shape[0] != n:
        raise ValueError(f"y must have length {n} (rows of X), got {y.shape[0]}")
    if r.shape[0] != d:
        raise ValueError(f"r must have length {d} (columns of X), got {r.shape[0]}")
    if np.any(r <= 0.0):
        raise ValueError("r must be > 0 elementwise")
    delta = check_scalar(delta, "delta", minimum=0.0, strict=True)
    tau = check_scalar(tau, "tau", minimum=0.0, strict=True)

    lam = delta**2 / tau**2  # Thm. 3.2: lambda = delta^2 / tau^2
    P = X.T @ X + lam * np.diag(r)  # Thm. 3.2: X^T X + lambda diag(r)
    chol = cho_factor(P, lower=True)
    mean = cho_solve(chol, X.T @ y)  # Eq. (13): P^-1 X^T y
    cov = delta**2 * cho_solve(chol, np.eye(d))  # Eq. (13): delta^2 P^-1
    cov = 0.5 * (cov + cov.T)
    return mean, cov
