r"""The DEQ baseline of Table 1 (DESIGN.md sec. 10): one implicit layer over a dense graph.

A deep equilibrium model (Bai, Kolter & Koltun 2019) whose hidden layer is the
equilibrium of the paper's Eq. (3) on the *complete* graph: a dense p x p
weight matrix ``W`` (every entry learned, self-loops included), no pruning and
no modules, with its own bias ``b``:

.. math::

    X = 1 b^T + f(X) W + X^0 W_1^T,\qquad Z = f(X) W_m^T,\quad Y = g(Z)

(row form; node-major ``x = b + W^T f(x) + W_1 x^0`` per sample;
``W[j, i]`` is the weight of node j -> node i as ``K`` of DESIGN.md sec. 2).
The forward is Anderson acceleration of the fixed-point map
(:func:`refimpl.solvers.anderson.anderson_fixed_point`, all samples at
once); the backward is the implicit (adjoint) one of DEQ: the gradient
``V = dL/df(X)`` solves the linear fixed point

.. math:: V = G W_m + (f'(X) \odot V) W^T,\qquad U = f'(X) \odot V

(Eq. 4 with the dense W), by Anderson acceleration too, then

.. math::

    \partial L/\partial W = f(X)^T U,\quad \partial L/\partial b = 1^T U,\quad
    \partial L/\partial W_1 = U^T X^0,\quad \partial L/\partial W_m = G^T f(X)

(Eq. 6-8).  With ``diag(W) = 0`` this is the NM network with ``K = W + diag(b)``
and pruning that keeps every edge (the tests check it against
:func:`refimpl.forward` / :func:`refimpl.backward`).

References
----------
S. Bai, J. Z. Kolter and V. Koltun, "Deep equilibrium models", NeurIPS 2019
(the forward root solve and the implicit backward); its torchdeq library
(Anderson solver, implicit adjoint).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..activations import get_activation, get_output
from ..model import output_loss
from ..solvers.anderson import anderson_fixed_point
from ..validation import as_float_array, check_int, check_rows
from ._common import LayerConvergenceError, LayerModel, LayerTrainer

__all__ = ["DEQResult", "DEQNetwork", "deq_forward", "deq_backward", "deq_loss_and_grad",
           "DEQTrainer"]


@dataclass
class DEQNetwork(LayerModel):
    """Parameters of Table 1's DEQ: dense ``W`` (p, p), bias ``b`` (p,),
    ``W1`` (p, n_in), ``Wm`` (n_out, p); f and g as in DESIGN.md sec. 2.

    ``atol``, ``rtol``, ``max_iter``, ``m`` (Anderson's history) configure the
    forward and adjoint solves.
    """

    W: np.ndarray
    b: np.ndarray
    W1: np.ndarray
    Wm: np.ndarray
    activation: str = "tanh"
    output: str = "softmax"
    atol: float = 1e-8
    rtol: float = 1e-8
    max_iter: int = 500
    m: int = 5

    NAMES = ("W", "b", "W1", "Wm")

    def __post_init__(self):
        self.W = np.array(as_float_array(self.W, "W"))
        if self.W.ndim != 2 or self.W.shape[0] != self.W.shape[1]:
            raise ValueError(f"W: expected a square (p, p) matrix, got shape {self.W.shape}")
        p = self.W.shape[0]
        self.b = np.array(as_float_array(self.b, "b", (p,)))
        self.W1 = np.array(as_float_array(self.W1, "W1", (p, None)))
        self.Wm = np.array(as_float_array(self.Wm, "Wm", (None, p)))
        get_activation(self.activation)
        get_output(self.output)

    @classmethod
    def random(cls, n_in, p, n_out, seed=0, *, scale=0.5, activation="tanh", output="softmax",
               **solver):
        """A random DEQ (Alg. 2 line 1's analogue): ``W`` normal with standard
        deviation ``scale / sqrt(p)`` (spectral radius about ``scale``: the map
        starts contractive for ``scale < 1``), ``b = 0``, ``W1`` and ``Wm`` with
        1 / sqrt(fan-in) (as :meth:`refimpl.NMNetwork.random`)."""
        n_in, p, n_out = (check_int(v, name, 1) for name, v in
                          (("n_in", n_in), ("p", p), ("n_out", n_out)))
        rng = np.random.default_rng(seed)
        return cls(W=rng.standard_normal((p, p)) * (scale / np.sqrt(p)), b=np.zeros(p),
                   W1=rng.standard_normal((p, n_in)) / np.sqrt(n_in),
                   Wm=rng.standard_normal((n_out, p)) / np.sqrt(p), activation=activation,
                   output=output, **solver)

    @property
    def p(self) -> int:
        return int(self.W.shape[0])

    def copy(self) -> "DEQNetwork":
        return DEQNetwork(**{n: getattr(self, n).copy() for n in self.NAMES},
                          activation=self.activation, output=self.output, atol=self.atol,
                          rtol=self.rtol, max_iter=self.max_iter, m=self.m)

    def outputs(self, X0):
        """``Z = f(X) W_m^T`` at the equilibrium (Sec. 3.3)."""
        return deq_forward(self, X0).Z

    def loss_and_grad(self, X0, T):
        """``(loss, grads, Z, iterations)`` for :class:`~refimpl.baselines._common.LayerTrainer`
        (:func:`deq_loss_and_grad`, Eq. 3-8)."""
        loss, grads, res = deq_loss_and_grad(self, X0, T)
        return loss, grads, res.Z, res.iterations


@dataclass
class DEQResult:
    """The DEQ equilibrium (Eq. 3 on the dense graph) for a batch: ``X``, ``F`` = f(X),
    ``DF`` = f'(X) (B, p), ``Z`` (B, n_out), ``X0``, Anderson's ``iterations`` and
    ``residual`` (``||g(x) - x||_inf``)."""

    X0: np.ndarray
    X: np.ndarray
    F: np.ndarray
    DF: np.ndarray
    Z: np.ndarray
    iterations: int
    residual: float


def deq_forward(net, X0):
    """Solve the DEQ's Eq. (3) on the dense graph, ``x = b + W^T f(x) + W_1 x^0``,
    by Anderson acceleration from ``x = b + W_1 x^0`` (all samples at once).

    Raises
    ------
    LayerConvergenceError
        (a :class:`refimpl.ConvergenceError`) when Anderson does not converge.
    """
    X0 = check_rows(X0, net.n_in)
    act = get_activation(net.activation)
    CT = net.b[:, None] + net.W1 @ X0.T  # (p, B): the constant term of Eq. (3)
    WT = net.W.T

    def g(XT):
        return CT + WT @ act.f(XT)  # Eq. (3), node-major

    res = anderson_fixed_point(g, CT, m=net.m, atol=net.atol, rtol=net.rtol,
                               max_iter=net.max_iter)
    if not res.converged:
        raise LayerConvergenceError("DEQ equilibrium (Anderson)", net.p, res.residual,
                                    res.iterations, res.status, res)
    X = res.x.T
    F = act.f(X)
    return DEQResult(X0, X, F, act.derivative(X, F), F @ net.Wm.T, res.iterations,
                     res.residual)


def deq_backward(net, fwd, G):
    """The implicit (adjoint) backward of the DEQ given ``G = dL/dZ``:
    Eq. (4) on the dense graph solved by Anderson acceleration, then Eq. (6)-(8)
    (see the module docstring).  Returns a dict of gradients keyed like
    :meth:`DEQNetwork.params`, and the adjoint ``U = dL/dX`` under "U".

    Raises
    ------
    LayerConvergenceError
        When the adjoint fixed point does not converge.
    """
    G = np.asarray(G, dtype=np.float64)
    if G.shape != fwd.Z.shape:
        raise ValueError(f"G: expected shape {fwd.Z.shape}, got {G.shape}")
    GWT = (G @ net.Wm).T  # (p, B)
    DFT = fwd.DF.T
    W = net.W

    def g(VT):
        return GWT + W @ (DFT * VT)  # Eq. (4): V = G Wm + (f'(X) * V) W^T, node-major

    res = anderson_fixed_point(g, GWT, m=net.m, atol=net.atol, rtol=net.rtol,
                               max_iter=net.max_iter)
    if not res.converged:
        raise LayerConvergenceError("DEQ adjoint (Anderson)", net.p, res.residual,
                                    res.iterations, res.status, res)
    U = fwd.DF * res.x.T
    return {"W": fwd.F.T @ U,  # Eq. (6): dL/dW[j, i] = sum_b f(x_j) u_i
            "b": U.sum(axis=0),
            "W1": U.T @ fwd.X0,  # Eq. (8)
            "Wm": G.T @ fwd.F,  # Eq. (7)
            "U": U}


def deq_loss_and_grad(net, X0, T):
    """Mean loss (:func:`refimpl.model.output_loss`) of the DEQ and its
    gradients (Eq. 3 forward, Eq. 4-8 implicit backward).

    Returns ``(loss, grads, DEQResult)``; ``grads`` has the keys of
    :meth:`DEQNetwork.params`.
    """
    fwd = deq_forward(net, X0)
    loss, G = output_loss(fwd.Z, T, net.output)
    grads = deq_backward(net, fwd, G)
    grads.pop("U")
    return loss, grads, fwd


class DEQTrainer(LayerTrainer):
    """Train Table 1's DEQ (:class:`DEQNetwork` with ``p = config.nodes``,
    ``W`` scaled by ``config.init_scale``, solves to ``config.atol`` /
    ``config.rtol``) with the semantics of :class:`refimpl.train.Trainer`
    (see :mod:`refimpl.baselines._common`; Table 3's settings)."""

    name = "DEQ"

    def make_model(self, config, n_in, n_out, seed):
        return DEQNetwork.random(n_in, config.nodes, n_out, seed=seed, scale=config.init_scale,
                                 activation=config.activation, output=config.output,
                                 atol=config.atol, rtol=config.rtol)
