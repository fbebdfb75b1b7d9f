"""Soft and hard masks of SAGP neurons and synapses (S-Alg. 1 lines 5-6; DESIGN.md sec. 8)."""
from __future__ import annotations

import numpy as np

from ..activations import sigmoid

__all__ = ["hard_mask", "soft_mask", "ste"]


def soft_mask(logits, alpha: float) -> np.ndarray:
    r"""Soft mask :math:`m^S = \mathrm{sigmoid}(\hat m / \alpha)` (S-Alg. 1 lines 5-6).

    Implements the soft half of the supplement's "Eq. (10)-(12)" (main text; the
    project's choice in DESIGN.md section 8).

    Parameters
    ----------
    logits : array
        The mask parameters :math:`\hat m`.
    alpha : float
        Temperature (Table 2: 0.2).

    Returns
    -------
    ndarray
        Values in (0, 1).
    """
    return sigmoid(np.asarray(logits, dtype=np.float64) / alpha)  # main-text Eq. (10), S-Alg. 1 line 5


def hard_mask(logits) -> np.ndarray:
    r"""Hard mask :math:`m^H = [m^S > 0.5] = [\hat m > 0]` as 0/1 floats (S-Alg. 1 lines 5-6).

    Computed from the sign of the logit, which is exact; thresholding the rounded soft
    mask would switch off logits within ~1e-16 * alpha of zero, where the sigmoid
    rounds to 0.5.

    Parameters
    ----------
    logits : array

    Returns
    -------
    ndarray
        0.0 or 1.0.
    """
    return (np.asarray(logits, dtype=np.float64) > 0.0).astype(np.float64)


def ste(soft: np.ndarray, alpha: float) -> np.ndarray:
    """Straight-through derivative dm^H/dm^ := dm^S/dm^ = m^S (1 - m^S) / alpha."""
    return soft * (1.0 - soft) / alpha

