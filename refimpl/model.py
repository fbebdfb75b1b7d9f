"""The network of the paper (Sec. 3.1-3.3) and its losses.

:class:`NMNetwork` holds the parameters ``K`` (dense adjacency of the
complete hidden graph; diagonal = biases), ``W1`` (input edges) and ``Wm``
(output edges), with the activation f and output g.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .activations import ACTIVATIONS, OUTPUTS, get_activation, get_output, softmax
from .backend import is_reference
from .graph.prune import check_square_finite, prune
from .propagate import backward, check_input, forward
from .threads import with_threads
from .validation import as_float_array

__all__ = ["NMNetwork", "loss_and_grad", "output_loss"]


@dataclass
class NMNetwork:
    """A neural network on a complete directed graph of p hidden nodes (Sec. 3.1).

    Attributes
    ----------
    K : (p, p) array
        ``K[j, i]`` = weight of edge n_j -> n_i; ``K[i, i]`` = bias of node i.
    W1 : (p, n_in) array
        ``W1[i, k]`` = weight of input k -> node i.
    Wm : (n_out, p) array
        ``Wm[o, i]`` = weight of node i -> output o.
    activation : str
        Hidden activation f (tanh, sigmoid, swish, relu, identity).
    output : str
        Output activation g (identity, sigmoid, softmax).
    k, gamma : optional
        The pruning rule used by :meth:`prune` (top-k or a fixed threshold,
        Sec. 3.2); both None keeps every off-diagonal entry.
    """

    K: np.ndarray
    W1: np.ndarray
    Wm: np.ndarray
    activation: str = "tanh"
    output: str = "softmax"
    k: int | None = None
    gamma: float | None = None
    _checked: bool = field(default=False, repr=False)

    def __post_init__(self):
        self.K = check_square_finite(np.array(self.K, dtype=np.float64), "K")
        p = self.K.shape[0]
        W1 = np.asarray(self.W1)
        if W1.ndim != 2 or W1.shape[0] != p:
            raise ValueError(f"W1: expected shape ({p}, n_in), got {W1.shape}")
        self.W1 = np.array(as_float_array(W1, "W1"))
        Wm = np.asarray(self.Wm)
        if Wm.ndim != 2 or Wm.shape[1] != p:
            raise ValueError(f"Wm: expected shape (n_out, {p}), got {Wm.shape}")
        self.Wm = np.array(as_float_array(Wm, "Wm"))
        get_activation(self.activation)
        get_output(self.output)
        if self.k is not None and self.gamma is not None:
            raise ValueError("NMNetwork: give at most one of k and gamma")

    @property
    def p(self) -> int:
        return int(self.K.shape[0])

    @property
    def n_in(self) -> int:
        return int(self.W1.shape[1])

    @property
    def n_out(self) -> int:
        return int(self.Wm.shape[0])

    @classmethod
    def random(cls, n_in, p, n_out, seed=0, *, activation="tanh", output="softmax", k=None,
               gamma=None, scale=1.0):
        """A randomly initialized network (Alg. 2 line 1).

        Entries are independent normals.  The off-diagonal of ``K`` has
        standard deviation chosen so that the edges *kept* by top-k pruning
        (the k largest of p(p-1) magnitudes, whose root mean square is
        ``sigma * sqrt(1 + 2 t phi(t) / fraction)`` for the normal quantile
        ``t`` of the kept fraction) have root mean square ``scale / sqrt(d)``,
        d = k / p the mean in-degree: each node's summed input then has
        variance about ``scale^2`` and the pruned graph's spectral radius is
        about ``scale`` (below 1: the fixed-point map starts contractive).
        Without k, d = p - 1.  Biases ``diag(K) = 0``; ``W1`` has standard
        deviation ``1 / sqrt(n_in)`` and ``Wm`` ``1 / sqrt(p)``.
        """
        for name, v in (("n_in", n_in), ("p", p), ("n_out", n_out)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")
        if activation not in ACTIVATIONS:
            get_activation(activation)
        if output not in OUTPUTS:
            get_output(output)
        rng = np.random.default_rng(seed)
        d = max(1.0, (k / p) if k is not None else p - 1.0)
        sigma = scale / np.sqrt(d)
        if k is not None and 0 < k < p * (p - 1):
            from scipy.stats import norm

            frac = k / (p * (p - 1))
            t = norm.isf(frac / 2)
            sigma /= np.sqrt(1.0 + 2.0 * t * norm.pdf(t) / frac)
        K = rng.standard_normal((p, p)) * sigma
        np.fill_diagonal(K, 0.0)
        W1 = rng.standard_normal((p, n_in)) / np.sqrt(n_in)
        Wm = rng.standard_normal((n_out, p)) / np.sqrt(p)
        return cls(K, W1, Wm, activation=activation, output=output, k=k, gamma=gamma)

    def prune(self):
        """The pruned graph of K by this network's rule (Sec. 3.2, Alg. 2 line 5)."""
        if self.k is not None:
            return prune(self.K, k=self.k)
        return prune(self.K, gamma=0.0 if self.gamma is None else self.gamma)

    def copy(self) -> "NMNetwork":
        return NMNetwork(self.K.copy(), self.W1.copy(), self.Wm.copy(), self.activation,
                         self.output, self.k, self.gamma)


def _targets(T, Z, output):
    """Targets as an array shaped like Z (class labels become one-hot)."""
    T = np.asarray(T)
    B, m = Z.shape
    if output in ("softmax",) and T.ndim == 1:
        if T.shape[0] != B or T.dtype.kind not in "iu":
            raise ValueError(f"T: expected {B} integer class labels or a ({B}, {m}) array, "
                             f"got shape {T.shape} dtype {T.dtype}")
        if T.size and (T.min() < 0 or T.max() >= m):
            raise ValueError(f"T: class labels must lie in [0, {m}), got range "
                             f"[{T.min()}, {T.max()}]")
        out = np.zeros((B, m))
        out[np.arange(B), T] = 1.0
        return out
    if T.ndim == 1 and m == 1:
        T = T[:, None]
    if T.shape != (B, m):
        raise ValueError(f"T: expected shape ({B}, {m}), got {T.shape}")
    T = T.astype(np.float64)
    if not np.isfinite(T).all():
        raise ValueError("T: contains NaN or inf")
    return T


def output_loss(Z, T, output):
    """Mean loss over the batch and G = dL/dZ, at the output g of Sec. 3.3 (Alg. 2 line 8).

    softmax: cross-entropy ``-mean_b sum_o t log softmax(z)``, G = (softmax(Z) - T) / B;
    sigmoid: binary cross-entropy, G = (sigmoid(Z) - T) / B;
    identity: squared error ``mean_b 0.5 ||z - t||^2``, G = (Z - T) / B.
    """
    B = Z.shape[0]
    if B == 0:
        raise ValueError("Z: an empty batch (0 rows) has no mean loss")
    T = _targets(T, Z, output)
    if output == "softmax":
        Zs = Z - Z.max(axis=1, keepdims=True)
        logp = Zs - np.log(np.exp(Zs).sum(axis=1, keepdims=True))
        loss = -(T * logp).sum() / B
        G = (softmax(Z) - T) / B
    elif output == "sigmoid":
        # log(1 + e^z) computed stably: logaddexp(0, z).
        loss = (np.logaddexp(0.0, Z) - T * Z).sum() / B
        from .activations import sigmoid

        G = (sigmoid(Z) - T) / B
    else:
        D = Z - T
        loss = 0.5 * (D * D).sum() / B
        G = D / B
    return float(loss), G


@with_threads  # threads=: refimpl.threads.threads_policy
def loss_and_grad(net, X0, T, graph=None, *, backend="numpy", grad_K="dense",
                  **forward_options):
    """Mean loss of the pruned network and its gradients (Alg. 2 lines 6-10).

    Runs :func:`forward` (Eq. 3), the loss of :func:`output_loss` and
    :func:`backward` (Eq. 4-8).  ``backend`` other than ``"numpy"`` (see
    :func:`refimpl.get_backend`) runs :func:`refimpl.xp.loss_and_grad`
    instead: the same three steps on the generic path, results in the
    caller's namespace and device.  ``grad_K`` as in :func:`backward`
    (``"factors"``: dL/dK of Eq. (6) as its two (p, B) factors, NumPy path
    only; the trainer's blocked update forms the product itself).

    Returns
    -------
    loss : float
    grads : Gradients
        ``.K`` (dense; None with ``grad_K="factors"``), ``.W1``, ``.Wm``.
    fwd : ForwardResult
    """
    if not is_reference(backend):
        if grad_K != "dense":
            raise ValueError("grad_K: 'factors' is only available on the NumPy path")
        from .xp import loss_and_grad as generic_loss_and_grad

        return generic_loss_and_grad(net, X0, T, graph, backend=backend, **forward_options)
    X0 = check_input(X0, net.n_in)
    fwd = forward(net, X0, graph, **forward_options)
    loss, G = output_loss(fwd.Z, T, net.output)
    return loss, backward(net, fwd, G, grad_K=grad_K), fwd
