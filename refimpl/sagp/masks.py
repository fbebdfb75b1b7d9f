r"""Soft and hard masks of SAGP neurons and synapses and the tempered SparseLoss
(S-Alg. 1 lines 5-6 and 19; S-Table 2; supplement Sec. 4.6; DESIGN.md sec. 8).

The supplement omits the main text's Eq. 10-14 (masks and AuxLoss); this module is the
project's documented choice, derived in ``proofs/sagp_alpha.md``:

- soft mask :math:`m^S = \mathrm{sigmoid}(\hat m)`, hard mask :math:`m^H = [\hat m > 0]`,
  straight-through derivative :math:`\partial m^H/\partial \hat m := m^S (1 - m^S)`;
- :math:`\mathrm{SparseLoss}_\alpha(m^S) = \mathrm{mean}_i \log(1 + m^S_i / \alpha)`, with
  alpha the temperature of the competition (S-Table 2: "Temperature in SparseLoss").

Its slope :math:`1 / (\alpha + m^S)` falls with alpha at every mask value, so relative to
the task loss a smaller alpha pushes every mask harder toward 0 and the weak ones hardest
(the ratio of the push on a weak mask to that on a full one, :math:`(1 + \alpha) /
(m^S + \alpha)`, grows as alpha falls): more intense competition, fewer neurons and
synapses (supplement Sec. 4.6, Table 10).  A temperature inside the mask itself,
:math:`\mathrm{sigmoid}(\hat m / \alpha)`, would cancel from that ratio and only make the
gradients vanish for small alpha.
"""
from __future__ import annotations

import numpy as np

from ..activations import sigmoid

__all__ = ["hard_mask", "soft_mask", "sparse_loss", "ste"]


def soft_mask(logits) -> np.ndarray:
    r"""Soft mask :math:`m^S = \mathrm{sigmoid}(\hat m)` (S-Alg. 1 lines 5-6).

    Implements the soft half of the supplement's "Eq. (10)-(12)" as the project chose it
    (DESIGN.md section 8, ``proofs/sagp_alpha.md``): no temperature in the mask; the
    temperature alpha acts in :func:`sparse_loss`.

    Parameters
    ----------
    logits : array
        The mask parameters :math:`\hat m`.

    Returns
    -------
    ndarray
        Values in (0, 1).
    """
    return sigmoid(np.asarray(logits, dtype=np.float64))  # S-Alg. 1 lines 5-6


def hard_mask(logits) -> np.ndarray:
    r"""Hard mask :math:`m^H = [m^S > 0.5] = [\hat m > 0]` as 0/1 floats (S-Alg. 1 lines 5-6).

    Computed from the sign of the logit, which is exact; thresholding the rounded soft
    mask would switch off logits within ~1e-16 of zero, where the sigmoid rounds to 0.5.

    Parameters
    ----------
    logits : array

    Returns
    -------
    ndarray
        0.0 or 1.0.
    """
    return (np.asarray(logits, dtype=np.float64) > 0.0).astype(np.float64)


def ste(soft: np.ndarray) -> np.ndarray:
    r"""Straight-through derivative :math:`\partial m^H/\partial \hat m := \partial m^S/\partial
    \hat m = m^S (1 - m^S)` (S-Alg. 1 line 21, the project's choice)."""
    return soft * (1.0 - soft)


def sparse_loss(soft, alpha: float) -> tuple[float, np.ndarray]:
    r"""SparseLoss at temperature alpha and its gradient (S-Alg. 1 line 19, S-Table 2).

    Implements the project's choice for the supplement's omitted SparseLoss
    (``proofs/sagp_alpha.md``):

    .. math:: \mathrm{SparseLoss}_\alpha(m) = \frac{1}{n} \sum_{i=1}^n \log(1 + m_i/\alpha),
              \qquad \frac{\partial}{\partial m_i} = \frac{1}{n (\alpha + m_i)}.

    The slope decreases in alpha for every m >= 0 (a smaller alpha: more intense
    competition, supplement Sec. 4.6); as alpha grows, :math:`\alpha \cdot
    \mathrm{SparseLoss}_\alpha` tends to the plain mean of the masks (no competition
    between weak and strong masks).

    Parameters
    ----------
    soft : (n,) array
        Soft masks in [0, 1] (an empty array gives 0).
    alpha : float
        Temperature > 0 (S-Table 2: 0.2).

    Returns
    -------
    value : float
    grad : (n,) ndarray
        d value / d soft.

    Raises
    ------
    ValueError
        If ``alpha`` is not a finite number > 0.
    """
    if not (np.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha: expected a finite number > 0, got {alpha!r}")
    m = np.asarray(soft, dtype=np.float64)
    if m.size == 0:
        return 0.0, np.zeros_like(m)
    value = float(np.log1p(m / alpha).mean())
    return value, 1.0 / (m.size * (alpha + m))
