"""Baselines of the paper's Table 1 (DESIGN.md sec. 10).

- NN: :class:`MLPTrainer` (:mod:`refimpl.baselines.mlp`), a plain MLP with
  explicit forward and backward.
- DEQ: :class:`DEQTrainer` (:mod:`refimpl.baselines.deq`), one implicit layer
  over a dense p x p W (no pruning, no modules), Anderson forward, implicit
  adjoint backward.
- DAG: :class:`refimpl.train.Trainer` with ``structure="dag"``.
- OPTNET: :class:`OptNetTrainer` (:mod:`refimpl.baselines.optnet`), a QP layer
  (batched interior point, KKT backward) and a linear output layer.

The other comparisons of the paper live in their own modules (import them from there):
:mod:`~refimpl.baselines.cff` (cyclic Forward-Forward, Sec. 4.2), :mod:`~refimpl.baselines.
darts` (first-order DARTS, Sec. 4.2), :mod:`~refimpl.baselines.binary` (the binary tasks
of Fig. 2), :mod:`~refimpl.baselines.gcn` and :mod:`~refimpl.baselines.graph_data` (the
GCN and the graphs of Appendix G.2, Fig. 8).

:mod:`refimpl.experiments` maps the Table 1 method names onto these.
"""
from .deq import DEQNetwork, DEQTrainer
from .mlp import (MLP, MLPGradients, MLPTrainer, mlp_backward, mlp_forward, mlp_loss_and_grad,
                  mlp_predict, mlp_predict_proba)
from .optnet import OptNetLayer, OptNetTrainer, qp_solve, qp_solve_grad

__all__ = ["MLP", "MLPGradients", "MLPTrainer", "mlp_forward", "mlp_backward",
           "mlp_loss_and_grad", "mlp_predict", "mlp_predict_proba", "DEQNetwork", "DEQTrainer",
           "OptNetLayer", "OptNetTrainer", "qp_solve", "qp_solve_grad"]
