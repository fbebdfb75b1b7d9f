"""refimpl: reference implementation of Neural Modules and Self-Assembling Graph Perceptrons.

The public names of DESIGN.md section 13 are importable from here.
"""
__version__ = "0.1.0"

from . import threads  # noqa: F401  (first: sets OMP_WAIT_POLICY before OpenMP loads)
from .backend import BackendError, get_backend
from .graph import PrunedGraph, Schedule, prune, strongly_connected_components
from .model import NMNetwork, loss_and_grad, output_loss
from .propagate import ForwardResult, Gradients, backward, forward
from .regularization import l2_gradient, l2_penalty, nm_gradient, nm_penalty, nm_repulsion, nm_update
from .solvers import ConvergenceError, SolveStatus
from . import perceptron, theory  # noqa: E402  (refimpl.theory.posterior, refimpl.perceptron.*)
from . import propagate as _propagate, xp as _xp  # noqa: E402

# backend= other than "numpy" on forward/backward reaches the generic path (DESIGN.md
# sec. 3) through this table: refimpl.xp is not below refimpl.propagate in the layers.
_propagate.GENERIC.update(forward=_xp.forward, backward=_xp.backward)

__all__ = [
    "__version__",
    "strongly_connected_components",
    "prune",
    "PrunedGraph",
    "Schedule",
    "NMNetwork",
    "forward",
    "backward",
    "loss_and_grad",
    "output_loss",
    "ForwardResult",
    "Gradients",
    "ConvergenceError",
    "SolveStatus",
    "nm_repulsion",
    "nm_penalty",
    "nm_gradient",
    "nm_update",
    "l2_penalty",
    "l2_gradient",
    "theory",
    "perceptron",
    "NMClassifier",
    "get_backend",
    "BackendError",
]


def __getattr__(name):
    # NMClassifier is imported on first use: scikit-learn (optional) takes a
    # second to import and `import refimpl` must not need it.
    if name == "NMClassifier":
        from .estimator import NMClassifier

        return NMClassifier
    raise AttributeError(f"module 'refimpl' has no attribute {name!r}")
