"""Eq. (16) of Appendix H.1: the probability that two modules merge, exact and Monte Carlo."""
from __future__ import annotations

import numpy as np
from scipy.special import ndtri

from ..validation import check_int

__all__ = ["merge_probability", "merge_probability_mc"]


def _merge_args(theta, q):
    theta = np.asarray(theta, dtype=np.float64)
    q_arr = np.asarray(q)
    if not np.all(np.isfinite(theta)) or np.any((theta < 0.0) | (theta > 1.0)):
        raise ValueError("theta must lie in [0, 1]")
    q_float = q_arr.astype(np.float64)
    if (not np.all(np.isfinite(q_float)) or np.any(q_float < 0.0)
            or np.any(q_float != np.round(q_float))):
        raise ValueError("q must be a non-negative integer")
    return theta, q_float


def merge_probability(theta, q):
    r"""Probability that a new edge integrates into a neural module of size q.

    Implements Eq. (16) of the paper (Appendix H.1): with ``theta`` the
    probability that an edge weight is below the pruning threshold gamma,

    .. math:: p_{\mathrm{merge}} = 1 - \theta^{q}.

    This is the probability that at least one of ``q`` independent candidate
    edges (one to each node of the module) survives pruning; see
    :func:`merge_probability_mc` for the simulated event.

    Parameters
    ----------
    theta : float or array_like
        In [0, 1].
    q : int or array_like of int
        Module size(s), >= 0.  ``theta`` and ``q`` broadcast (Figure 10a).

    Returns
    -------
    float or ndarray
    """
    theta, q = _merge_args(theta, q)
    out = 1.0 - np.power(theta, q)  # Eq. (16)
    return float(out) if out.ndim == 0 else out


def merge_probability_mc(theta, q, n_trials, rng):
    r"""Monte Carlo estimate of the merge event of Eq. (16).

    Simulates the assumption under which Eq. (16) holds: the ``q`` candidate
    edges between a node and the ``q`` nodes of a module carry independent
    weights, and each is pruned when its magnitude is below gamma.  Weights are
    drawn ``w ~ N(0, 1)`` (so ``|w|`` is the folded normal of Appendix L,
    Eq. 22) and the threshold is set so that an edge is pruned with
    probability ``theta``:

    .. math::

        \gamma = \Phi^{-1}\!\big(\tfrac{1 + \theta}{2}\big), \qquad
        P(|w| < \gamma) = 2\Phi(\gamma) - 1 = \theta, \qquad
        \hat p = \frac{1}{N} \sum_{t=1}^{N}
        \mathbf{1}\big[\max_{j \le q} |w_{tj}| \ge \gamma\big].

    The event is "at least one of the q edges survives pruning", i.e. the new
    node gets connected to the module.  (Joining the module as a strongly
    connected component would also need an edge back; the paper's formula does
    not model that, and neither does this simulation.)

    Parameters
    ----------
    theta : float
        Pruning probability of one edge, in [0, 1].
    q : int
        Module size, >= 0.
    n_trials : int
        Number of independent trials, >= 1.
    rng : numpy.random.Generator or int
        Random generator (or a seed for ``np.random.default_rng``).

    Returns
    -------
    float
        The fraction of trials in which the event happened; its binomial
        standard error is ``sqrt(p (1 - p) / n_trials)``.
    """
    theta, q_f = _merge_args(theta, q)
    if theta.ndim or q_f.ndim:
        raise ValueError("theta and q must be scalars for the Monte Carlo estimate")
    theta = float(theta)
    q = int(q_f)
    n_trials = check_int(n_trials, "n_trials", 1)
    rng = np.random.default_rng(rng)

    gamma = ndtri(0.5 * (1.0 + theta))  # P(|w| < gamma) = theta; inf at theta = 1
    if q == 0:
        return 0.0
    hits = 0
    rows = max(1, (1 << 22) // q)  # bound the block at about 4 M draws (32 MiB)
    done = 0
    while done < n_trials:
        m = min(rows, n_trials - done)
        w = rng.standard_normal((m, q))
        hits += int(np.count_nonzero(np.max(np.abs(w), axis=1) >= gamma))
        done += m
    return hits / n_trials  # estimate of Eq. (16)
