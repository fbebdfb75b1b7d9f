"""Baselines of the paper's Table 1 (DESIGN.md sec. 10).

- NN: :class:`MLPTrainer` (:mod:`refimpl.baselines.mlp`), a plain MLP with
  explicit forward and backward.
- DEQ: :class:`refimpl.train.Trainer` with ``mode="whole"`` (the whole hidden
  graph as one implicit layer, fixed-point forward, implicit adjoint).
- DAG: :class:`refimpl.train.Trainer` with ``structure="dag"``.

The other comparisons of the paper live in their own modules (import them from there):
:mod:`~refimpl.baselines.cff` (cyclic Forward-Forward, Sec. 4.2), :mod:`~refimpl.baselines.
darts` (first-order DARTS, Sec. 4.2), :mod:`~refimpl.baselines.binary` (the binary tasks
of Fig. 2), :mod:`~refimpl.baselines.gcn` and :mod:`~refimpl.baselines.graph_data` (the
GCN and the graphs of Appendix G.2, Fig. 8).

:mod:`refimpl.experiments` maps the Table 1 method names onto these.
"""
from .mlp import (MLP, MLPGradients, MLPTrainer, mlp_backward, mlp_forward, mlp_loss_and_grad,
                  mlp_predict, mlp_predict_proba)

__all__ = ["MLP", "MLPGradients", "MLPTrainer", "mlp_forward", "mlp_backward",
           "mlp_loss_and_grad", "mlp_predict", "mlp_predict_proba"]
