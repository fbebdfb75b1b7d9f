"""The generic (array-API) path of Alg. 1: forward, backward, losses (DESIGN.md section 3).

Every per-batch computation of :mod:`refimpl.propagate` written once against
an array-API namespace ``xp``; it runs on CuPy (``backend="cupy"``) and, on
machines without a GPU, on NumPy and :mod:`array_api_strict`.  Select it with
``backend=`` on :func:`refimpl.forward` and friends, or call it directly.
"""
from .propagate import (GenericForwardResult, GenericGradients, backward, forward,
                        loss_and_grad, output_loss)
from .solvers import module_solver_stages

__all__ = ["forward", "backward", "loss_and_grad", "output_loss", "GenericForwardResult",
           "GenericGradients", "module_solver_stages"]
