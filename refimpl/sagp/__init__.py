r"""Self-Assembling Graph Perceptrons: S-Alg. 1 (training) and S-Alg. 2 (test).

A SAGP is a graph perceptron (:mod:`refimpl.perceptron`) on the S-Eq. 11 layout whose
hidden neurons and synapses carry masks, and whose set of hidden neurons H changes by
two rules, once per epoch: apoptosis (Rule 1) and growth (Rule 2).

Documented choices where the supplement is silent (its main-text Eq. 10-14, which define
the masks and AuxLoss, are not in the supplement; DESIGN.md section 8 and
``proofs/sagp_alpha.md`` fix them):

- soft mask :math:`m^S = \mathrm{sigmoid}(\hat m)`, hard mask :math:`m^H = [m^S > 0.5] =
  [\hat m > 0]`; the forward uses :math:`m^H`, the backward the straight-through
  estimator :math:`\partial m^H/\partial \hat m := \partial m^S/\partial \hat m =
  m^S(1-m^S)`.
- :math:`\mathrm{AuxLoss} = \gamma_1 \,\mathrm{SparseLoss}_\alpha(\{m^S_i\}_{i \in H})
  + \gamma_2 \,\mathrm{SparseLoss}_\alpha(\{m^S_{ji}\})` with
  :math:`\mathrm{SparseLoss}_\alpha(m) = \mathrm{mean}_i \log(1 + m_i/\alpha)`, alpha the
  temperature of the competition (S-Table 2); the second set is every potential synapse
  between neurons of the current topology (blocks of S-Eq. 11); the loss is TaskLoss +
  AuxLoss (S-Alg. 1 line 20 writes a single gamma; Table 2 has gamma1, gamma2).  A smaller
  alpha pushes every mask harder toward 0, relative to the task loss, and the weak ones
  hardest (supplement Sec. 4.6, Table 10; derivation in ``proofs/sagp_alpha.md``).
- Neuron masks exist for hidden neurons only and multiply the sender (S-Alg. 1 line 14,
  corrected to :math:`\sum_j m^H_j m^H_{ji} A_{ji} \hat x^l_j`); input neurons have
  mask 1.  The identity blocks of S-Eq. 11 are fixed, unmasked and untrained; input
  biases are fixed at 0.
- The rules run once at the start of every epoch (S-Alg. 1 lines 5-11), the mini-batch
  updates after them (lines 12-21).  "No neurons removed for N consecutive epochs" is
  read literally: a counter of consecutive epochs without removal (the current one
  included) is reset by a removal and not by a growth, so after N quiet epochs one
  neuron grows per epoch until a removal or |H|max grown neurons.
- All |H|max potential neurons own parameters from the start (the pseudo-code's
  numbering); a grown neuron starts from its initial parameters; removed indices are
  never reused.  Only the current topology is computed and updated.
- Initialization: synapse weights uniform in :math:`\pm 1/\sqrt{|I| + |H|_{max}}`
  (PyTorch ``Linear`` style with the largest possible fan-in), biases 0, mask logits
  ``mask_init`` (= 1, so every mask starts on).
- Optimizer: Adam (PyTorch defaults, betas 0.9/0.999, eps 1e-8) with L2 weight decay
  added to the gradients of the synapse weights and biases of the current topology.
- Classification loss: mean softmax cross-entropy of the readout z.
"""
from __future__ import annotations

from .config import ABLATIONS, SAGPConfig, ablation_config, config_dict
from .layout import SAGPLayout, sagp_layout
from .loss import SAGPGradients, evaluate, sagp_loss_and_grad, sagp_predict
from .masks import hard_mask, soft_mask, sparse_loss
from .model import SAGPModel, assembled_graph, init_sagp, input_out_degree, synapse_count
from .norm import GPBatchNorm, SAGPStepTransform
from .rules import apoptosis_rule, apply_rules, growth_rule
from .sweep import TABLE10_ALPHAS, alpha_sweep, alpha_sweep_markdown, best_and_last
from .train import SAGPResult, train_sagp

__all__ = [
    "ABLATIONS",
    "GPBatchNorm",
    "SAGPConfig",
    "SAGPGradients",
    "SAGPLayout",
    "SAGPModel",
    "SAGPResult",
    "SAGPStepTransform",
    "TABLE10_ALPHAS",
    "ablation_config",
    "alpha_sweep",
    "alpha_sweep_markdown",
    "apply_rules",
    "apoptosis_rule",
    "assembled_graph",
    "best_and_last",
    "config_dict",
    "evaluate",
    "growth_rule",
    "hard_mask",
    "init_sagp",
    "input_out_degree",
    "sagp_layout",
    "sagp_loss_and_grad",
    "sagp_predict",
    "soft_mask",
    "sparse_loss",
    "synapse_count",
    "train_sagp",
]
