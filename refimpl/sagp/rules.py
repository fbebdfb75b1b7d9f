"""The self-assembly rules of SAGP: apoptosis (Rule 1) and growth (Rule 2), S-Alg. 1 lines 5-11."""
from __future__ import annotations

import numpy as np

from .config import SAGPConfig
from .masks import soft_mask
from .model import SAGPModel

__all__ = ["apoptosis_rule", "apply_rules", "growth_rule"]


def apoptosis_rule(soft_neuron, alive, beta: float) -> np.ndarray:
    r"""Neurons removed by the apoptosis rule (Rule 1, S-Alg. 1 line 7).

    Implements :math:`H \leftarrow H \setminus \{ i \in H : m^S_i < \beta \cdot
    \mathrm{mean}_{j \in H} m^S_j \}` (strict inequality, mean over the current H).

    Parameters
    ----------
    soft_neuron : (n,) array
        Soft masks :math:`m^S_i`.
    alive : (n,) bool array
        Membership in H.
    beta : float
        Threshold (Table 2: 0.5).

    Returns
    -------
    (n,) bool ndarray
        True for the neurons to remove (a subset of ``alive``).

    Raises
    ------
    ValueError
        If the shapes differ or ``beta`` is negative.
    """
    soft = np.asarray(soft_neuron, dtype=np.float64)
    alive = np.asarray(alive, dtype=bool)
    if soft.shape != alive.shape or soft.ndim != 1:
        raise ValueError(f"alive: expected shape {soft.shape} like soft_neuron, got {alive.shape}")
    if not (np.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta: expected a finite number >= 0, got {beta!r}")
    if not alive.any():
        return np.zeros_like(alive)
    threshold = beta * soft[alive].mean()  # S-Alg. 1 line 7
    return alive & (soft < threshold)


def growth_rule(n_grown: int, quiet_epochs: int, patience: int, h_max: int) -> bool:
    """Whether one neuron grows this epoch (Rule 2, S-Alg. 1 line 8).

    Implements "if n < |H|max and no neurons are removed for N consecutive epochs".

    Parameters
    ----------
    n_grown : int
        n, the hidden neurons grown so far.
    quiet_epochs : int
        Consecutive epochs without a removal, the current one included.
    patience : int
        N.
    h_max : int
        |H|max.

    Returns
    -------
    bool
    """
    return n_grown < h_max and quiet_epochs >= patience  # S-Alg. 1 line 8


def apply_rules(model: SAGPModel, config: SAGPConfig, quiet: int) -> tuple[list, list, int]:
    """One epoch's self-assembly step, in place (S-Alg. 1 lines 5-11).

    Apoptosis (line 7, if ``config.apoptosis``) with the current soft neuron masks, then
    growth (lines 8-10, if ``config.growth``) of the next unused index |I| + n.

    Parameters
    ----------
    model : SAGPModel
        Modified in place (``alive``, ``n_grown``).
    config : SAGPConfig
    quiet : int
        Consecutive epochs without a removal before this one.

    Returns
    -------
    removed : list of int
        Indices removed this epoch.
    grown : list of int
        Index grown this epoch (empty or one).
    quiet : int
        The updated counter (0 after a removal, else ``quiet + 1``).
    """
    lay = model.layout
    h = lay.hidden
    removed: list[int] = []
    if config.apoptosis and h.size:
        soft = soft_mask(model.neuron_logits[h])  # S-Alg. 1 line 5
        dead = apoptosis_rule(soft, model.alive[h], config.beta)  # S-Alg. 1 line 7
        removed = [int(i) for i in h[dead]]
        model.alive[h[dead]] = False
    quiet = 0 if removed else quiet + 1
    grown: list[int] = []
    if config.growth and growth_rule(model.n_grown, quiet, config.patience, lay.h_max):
        new = lay.n_in + model.n_grown  # S-Alg. 1 lines 9-10: H = H u {|I| + n} (0-based)
        model.n_grown += 1
        model.alive[new] = True
        grown = [int(new)]
    return removed, grown, quiet

