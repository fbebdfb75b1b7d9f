"""Neuron numbering and block layout of a SAGP adjacency (S-Eq. 11)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..validation import check_int

__all__ = ["SAGPLayout", "sagp_layout"]


@dataclass(frozen=True)
class SAGPLayout:
    """Neuron numbering and block structure of a SAGP graph (S-Eq. 11).

    Attributes
    ----------
    n_in, h_max, n_out : int
        |I|, |H|max, |O|.
    fixed : (N, N) ndarray
        The identity blocks of S-Eq. 11: ``I`` on the inputs and, when
        ``output_self_loops``, ``I`` on the outputs.  Not trained, not masked, not counted
        as synapses.
    trainable : (N, N) bool ndarray
        The synapses that may exist: the blocks A_{I->H}, A_{I->O}, A_{H->H}
        (diagonal included), A_{H->O}.
    output_self_loops : bool
    """

    n_in: int
    h_max: int
    n_out: int
    fixed: np.ndarray = field(repr=False)
    trainable: np.ndarray = field(repr=False)
    output_self_loops: bool = False

    @property
    def N(self) -> int:
        return self.n_in + self.h_max + self.n_out

    @property
    def inputs(self) -> np.ndarray:
        """Indices 0 .. |I|-1 (the supplement's 1 .. |I|)."""
        return np.arange(self.n_in)

    @property
    def hidden(self) -> np.ndarray:
        """Indices |I| .. |I|+|H|max-1 (the supplement's |I|+1 .. |I|+|H|max)."""
        return np.arange(self.n_in, self.n_in + self.h_max)

    @property
    def outputs(self) -> np.ndarray:
        """The last |O| indices."""
        return np.arange(self.n_in + self.h_max, self.N)


def sagp_layout(n_in: int, h_max: int, n_out: int, *, output_self_loops: bool = False) -> SAGPLayout:
    r"""Block layout of a SAGP adjacency (S-Eq. 11) with the pseudo-code's numbering.

    Implements S-Eq. 11:

    .. math::

        A = \begin{bmatrix} I_{|I|} & A_{I\to H} & A_{I\to O} \\
            0 & A_{H\to H} & A_{H\to O} \\ 0 & 0 & I_{|O|} \end{bmatrix}

    with inputs at indices 0..|I|-1, all potential hidden neurons next, outputs last
    (supplement Sec. 3.3 "Pseudo-code", 0-based).

    The output identity block is the "output enhancement" that the supplement says it
    "considered"; S-Alg. 1 line 14 sums only over senders in I and H, which leaves it
    out.  Documented choice: off by default (S-Alg. 1), on with ``output_self_loops``.

    Parameters
    ----------
    n_in, h_max, n_out : int
        |I| >= 1, |H|max >= 0, |O| >= 1.
    output_self_loops : bool, default False

    Returns
    -------
    SAGPLayout

    Raises
    ------
    ValueError
        If a size is out of range.
    """
    n_in, h_max, n_out = check_int(n_in, "n_in", 1), check_int(h_max, "h_max"), check_int(n_out, "n_out", 1)
    N = n_in + h_max + n_out
    I, H, O = slice(0, n_in), slice(n_in, n_in + h_max), slice(n_in + h_max, N)
    fixed = np.zeros((N, N))
    fixed[I, I] = np.eye(n_in)  # S-Eq. (11): I_{|I|x|I|}
    if output_self_loops:
        fixed[O, O] = np.eye(n_out)  # S-Eq. (11): I_{|O|x|O|}
    trainable = np.zeros((N, N), dtype=bool)
    trainable[I, H] = True  # S-Eq. (11): A_{I->H}
    trainable[I, O] = True  # S-Eq. (11): A_{I->O}
    trainable[H, H] = True  # S-Eq. (11): A_{H->H}
    trainable[H, O] = True  # S-Eq. (11): A_{H->O}
    return SAGPLayout(n_in, h_max, n_out, fixed, trainable, bool(output_self_loops))

