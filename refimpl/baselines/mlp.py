"""The NN baseline of Table 1: a plain MLP with explicit forward and backward.

The network is the MLP of S-Eq. 1 (the supplement), with L hidden layers:

.. math::

    x^0 = x,\\qquad h^{l+1} = x^l W_l + b_l,\\quad x^{l+1} = f(h^{l+1})
    \\quad (l = 0, \\dots, L-1),\\qquad Z = x^L W_L,\\quad Y = g(Z)

in row form (one row per sample); ``weights[l]`` has shape (n_l, n_{l+1}) and
the output layer has no bias, exactly the convention of
:func:`refimpl.perceptron.mlp_to_graph` (so S-Thm. 1 maps it onto a graph
perceptron, which the tests use as an oracle).  Like the NM network's
``W^m`` the output layer carries no bias.

Training mirrors :class:`refimpl.train.Trainer` (Alg. 2 without pruning):
the same :class:`refimpl.train.TrainConfig` (``nodes``, ``epochs``,
``batch_size``, ``lr``, ``momentum``, ``optimizer``, ``reg`` in
{"none", "l2"}, ``alpha``, ``reg_step``, ``activation``, ``output``,
``patience``, ``seed``; the graph fields ``edges``, ``gamma``, ``solver``,
``mode``, ``structure``, ``init_scale``, ``atol``, ``rtol`` do not apply), the
same loss (:func:`refimpl.model.output_loss`), the same optimizer
(:class:`refimpl.optim.Optimizer`: SGD with momentum 0.5 of the paper's Table 3,
or Adam), the same epoch loop (:func:`refimpl.loop.run_epochs`), the same L2
step (:func:`refimpl.regularization.l2_gradient` / ``l2_proximal``), the same
seeding (``SeedSequence(seed)`` spawned into an initialization seed and a
batch-order RNG), the same early stopping on the validation score
(:class:`refimpl.loop.EarlyStopping`, ``config.monitor``: loss or error),
and history rows with the fields of
:class:`refimpl.train.EpochRecord` (``edges`` = number of weights,
``levels`` = number of hidden layers; the module fields are 0).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..activations import get_activation, get_output
from ..model import output_loss
from ..regularization import l2_gradient, l2_proximal
from ..train import TrainConfig
from ..validation import check_int, check_rows
from ._common import BaselineTrainer

__all__ = ["MLP", "MLPCache", "MLPGradients", "mlp_forward", "mlp_backward",
           "mlp_loss_and_grad", "mlp_predict", "mlp_predict_proba", "MLPTrainer"]


def _widths(widths):
    if isinstance(widths, (int, np.integer)) and not isinstance(widths, bool):
        widths = (int(widths),)
    try:
        widths = tuple(widths)
    except TypeError:
        raise ValueError(f"widths: expected a positive integer or a sequence of them, "
                         f"got {widths!r}") from None
    if not widths:
        raise ValueError(f"widths: expected one or more positive integers, got {widths!r}")
    return tuple(check_int(w, "widths", 1) for w in widths)


@dataclass
class MLP:
    """The parameters of the MLP of S-Eq. 1.

    Attributes
    ----------
    weights : list of L + 1 arrays
        ``weights[l]`` (n_l, n_{l+1}); n_0 = inputs, n_{L+1} = outputs.
    biases : list of L arrays
        ``biases[l]`` (n_{l+1},), hidden layers only.
    activation, output : str
        f (hidden) and g (output) as in DESIGN.md sec. 2.
    """

    weights: list
    biases: list
    activation: str = "tanh"
    output: str = "softmax"

    def __post_init__(self):
        self.weights = [np.array(W, dtype=np.float64) for W in self.weights]
        self.biases = [np.array(c, dtype=np.float64) for c in self.biases]
        if len(self.weights) != len(self.biases) + 1:
            raise ValueError(f"weights: expected len(biases) + 1 = {len(self.biases) + 1} "
                             f"matrices (S-Eq. 1), got {len(self.weights)}")
        for l, W in enumerate(self.weights):
            if W.ndim != 2 or (l and W.shape[0] != self.weights[l - 1].shape[1]):
                raise ValueError(f"weights: weights[{l}] has shape {W.shape}, which does not "
                                 f"chain with the layer before")
        for l, c in enumerate(self.biases):
            if c.shape != (self.weights[l].shape[1],):
                raise ValueError(f"biases: biases[{l}] must have shape "
                                 f"({self.weights[l].shape[1]},), got {c.shape}")
        get_activation(self.activation)
        get_output(self.output)

    @classmethod
    def random(cls, n_in, widths, n_out, seed=0, *, activation="tanh", output="softmax"):
        """A randomly initialized MLP: ``weights[l]`` normal with standard
        deviation ``1 / sqrt(n_l)`` (the scale of the NM network's ``W1``
        and ``Wm``, :meth:`refimpl.NMNetwork.random`), biases 0.

        ``widths`` is one hidden width (the Table 1 "nodes") or a sequence.
        """
        sizes = (check_int(n_in, "n_in", 1), *_widths(widths), check_int(n_out, "n_out", 1))
        rng = np.random.default_rng(seed)
        weights = [rng.standard_normal((a, b)) / np.sqrt(a) for a, b in zip(sizes, sizes[1:])]
        biases = [np.zeros(b) for b in sizes[1:-1]]
        return cls(weights, biases, activation=activation, output=output)

    @property
    def n_in(self) -> int:
        return int(self.weights[0].shape[0])

    @property
    def n_out(self) -> int:
        return int(self.weights[-1].shape[1])

    @property
    def widths(self) -> tuple:
        return tuple(int(c.shape[0]) for c in self.biases)

    @property
    def n_weights(self) -> int:
        """Number of connections (the MLP's "edges")."""
        return int(sum(W.size for W in self.weights))

    def params(self) -> dict:
        """The parameter arrays by name (``W0, ..., WL, b0, ..., b{L-1}``);
        the arrays themselves, so an in-place update changes the MLP."""
        out = {f"W{l}": W for l, W in enumerate(self.weights)}
        out.update({f"b{l}": c for l, c in enumerate(self.biases)})
        return out

    def copy(self) -> "MLP":
        return MLP([W.copy() for W in self.weights], [c.copy() for c in self.biases],
                   self.activation, self.output)


@dataclass
class MLPCache:
    """What the backward pass through S-Eq. 1 needs: ``X`` (the layer inputs x^0..x^L) and
    ``H`` (the pre-activations h^1..h^L), and the output ``Z``."""

    X: list
    H: list
    Z: np.ndarray


@dataclass
class MLPGradients:
    """Gradients of the mean loss through S-Eq. 1: ``weights[l]`` and ``biases[l]`` shaped like the MLP's."""

    weights: list
    biases: list

    def as_dict(self) -> dict:
        out = {f"W{l}": g for l, g in enumerate(self.weights)}
        out.update({f"b{l}": g for l, g in enumerate(self.biases)})
        return out


def mlp_forward(mlp, X0):
    """Forward pass of S-Eq. 1 for a batch (rows); returns :class:`MLPCache`.

    .. math:: h^{l+1} = x^l W_l + b_l,\\quad x^{l+1} = f(h^{l+1}),\\quad Z = x^L W_L
    """
    X0 = check_rows(X0, mlp.n_in)
    f = get_activation(mlp.activation).f
    xs, hs = [X0], []
    for W, c in zip(mlp.weights[:-1], mlp.biases):
        h = xs[-1] @ W + c  # S-Eq. 1: h^{l+1} = x^l W_l + b_l
        hs.append(h)
        xs.append(f(h))
    Z = xs[-1] @ mlp.weights[-1]  # S-Eq. 1: Z = x^L W_L (no output bias)
    return MLPCache(xs, hs, Z)


def mlp_backward(mlp, cache, G):
    """Backpropagation through S-Eq. 1 given ``G = dL/dZ`` (B, n_out).

    .. math::

        \\partial L/\\partial W_L = (x^L)^T G,\\qquad
        \\delta^{L} = (G W_L^T) \\odot f'(h^L),\\qquad
        \\delta^{l} = (\\delta^{l+1} W_l^T) \\odot f'(h^l)

        \\partial L/\\partial W_l = (x^l)^T \\delta^{l+1},\\qquad
        \\partial L/\\partial b_l = 1^T \\delta^{l+1}

    Gradients are summed over the batch (``G`` carries the 1/B of a mean loss).
    """
    G = np.asarray(G, dtype=np.float64)
    B = cache.X[0].shape[0]
    if G.shape != (B, mlp.n_out):
        raise ValueError(f"G: expected shape ({B}, {mlp.n_out}), got {G.shape}")
    act = get_activation(mlp.activation)
    L = len(mlp.biases)
    gW = [None] * (L + 1)
    gb = [None] * L
    gW[L] = cache.X[L].T @ G
    D = G @ mlp.weights[L].T  # dL/dx^L
    for l in range(L - 1, -1, -1):
        delta = D * act.derivative(cache.H[l], cache.X[l + 1])  # dL/dh^{l+1}
        gW[l] = cache.X[l].T @ delta
        gb[l] = delta.sum(axis=0)
        if l:
            D = delta @ mlp.weights[l].T
    return MLPGradients(gW, gb)


def mlp_loss_and_grad(mlp, X0, T):
    """Mean loss (:func:`refimpl.model.output_loss`, Sec. 3.3: cross-entropy
    for a softmax output, squared error for identity) and its gradients
    through S-Eq. 1.

    Returns ``(loss, MLPGradients, cache)``.
    """
    cache = mlp_forward(mlp, X0)
    loss, G = output_loss(cache.Z, T, mlp.output)
    return loss, mlp_backward(mlp, cache, G), cache


def mlp_predict_proba(mlp, X):
    """``Y = g(Z)`` of S-Eq. 1 (class probabilities for a softmax output)."""
    return get_output(mlp.output)(mlp_forward(mlp, X).Z)


def mlp_predict(mlp, X):
    """Class indices ``argmax Z`` (the NN's analogue of Alg. 3)."""
    return np.argmax(mlp_forward(mlp, X).Z, axis=1)


class MLPTrainer(BaselineTrainer):
    """Train the NN baseline of Table 1 with the semantics of
    :class:`refimpl.train.Trainer` (see the module docstring).

    Parameters
    ----------
    config : TrainConfig
        ``reg`` must be "none" or "l2" (NM regularization needs a graph).
    n_in, n_out : int
    widths : int or sequence of int, optional
        Hidden widths; default one layer of ``config.nodes`` units.

    Attributes
    ----------
    net : MLP
    history : list of dict
        One :class:`refimpl.train.EpochRecord` (as a dict) per epoch.
    best, best_val, best_epoch : the parameters, the score and the number of
        the best validation epoch (the score is ``config.monitor``: the
        validation loss or error, as in ``Trainer``).
    """

    def __init__(self, config: TrainConfig, n_in: int, n_out: int, widths=None):
        if not isinstance(config, TrainConfig):
            raise ValueError(f"config: expected a TrainConfig, got {type(config).__name__}")
        if config.reg not in ("none", "l2"):
            raise ValueError(f"reg: the MLP baseline takes 'none' or 'l2' (NM regularization "
                             f"needs a graph), got {config.reg!r}")
        widths = config.nodes if widths is None else widths
        self._setup(config, n_in, n_out,
                    lambda seed: MLP.random(self.n_in, widths, self.n_out, seed=seed,
                                            activation=config.activation,
                                            output=config.output))

    def _step(self, grads):
        c = self.config
        params = self.net.params()
        g = grads.as_dict()
        if c.reg == "l2" and c.reg_step == "thm31":
            for l, W in enumerate(self.net.weights):  # explicit: + alpha W (biases free)
                g[f"W{l}"] = g[f"W{l}"] + l2_gradient(W, c.alpha / 2, biases_on_diagonal=False)
        self.opt.step(params, g)
        if c.reg == "l2" and c.reg_step == "proximal":
            for W in self.net.weights:  # implicit form, as Trainer's "proximal"
                # the optimizer's current rate (a schedule may have changed it)
                l2_proximal(W, c.alpha, self.opt.lr, biases_on_diagonal=False, out=W)

    def train_batch(self, X, y):
        """One mini-batch: the loss through S-Eq. 1, its gradients and the optimizer step."""
        loss, grads, cache = mlp_loss_and_grad(self.net, X, y)
        self._step(grads)
        self._add_batch(loss, cache.Z, y)
        return loss

    def _outputs(self, X):
        return mlp_forward(self.net, X).Z

    def _structure(self):
        return {"modules": 0, "largest_module": 0, "levels": len(self.net.biases),
                "newton_iterations": 0.0}

    def predict(self, X):
        """Class indices for X (the NN's Alg. 3 analogue)."""
        return mlp_predict(self.net, X)

