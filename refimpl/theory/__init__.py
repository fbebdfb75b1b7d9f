"""Theory helpers of the paper: Thm. 3.2, Thm. 3.3, Eq. (1), (2) and (16).

One module per result: :mod:`.posterior`, :mod:`.edges`, :mod:`.merge`, :mod:`.thm33`.

- :func:`posterior`: the Gaussian posterior of Thm. 3.2 (Eq. 13), the Bayesian
  reading of NM regularization (Appendix K).
- :func:`max_edges_dag`, :func:`max_edges_graph`: the edge counts of Eq. (1)
  and Eq. (2).
- :func:`merge_probability`, :func:`merge_probability_mc`: Eq. (16) of
  Appendix H.1 and a Monte Carlo simulation of the event it models.
- :func:`thm33_study`: an empirical study of the bound of Thm. 3.3 (Eq. 14)
  for DPF-style training (Lin et al., 2020) of a smooth objective.  A figure,
  not a proof: see ``proofs/thm3_3.md``.

The derivations and the errata live in ``proofs/thm3_2.md``,
``proofs/thm3_3.md``, ``proofs/eq16.md`` and ``proofs/errata.md``.

References
----------
.. [1] T. Lin, S. U. Stich, L. Barba, D. Dmitriev, M. Jaggi, "Dynamic Model
   Pruning with Feedback", ICLR 2020.
"""
from __future__ import annotations

from .edges import max_edges_dag, max_edges_graph
from .merge import merge_probability, merge_probability_mc
from .posterior import posterior
from .thm33 import Thm33Study, thm33_study

__all__ = [
    "posterior",
    "max_edges_dag",
    "max_edges_graph",
    "merge_probability",
    "merge_probability_mc",
    "Thm33Study",
    "thm33_study",
]
