r"""Graph perceptrons (the supplement, Sec. 2 and 3.3): message passing and S-Thm. 1.

Conventions (DESIGN.md sections 2 and 8, binding)
--------------------------------------------------
Neurons are numbered inputs first, then hidden, then outputs (the numbering of the
supplement's pseudo-code, 0-based here).  ``A`` is an (N, N) array with
``A[j, i]`` = weight of the synapse j -> i (column i holds the in-synapses of
neuron i), ``b`` is the (N,) bias.  Batches are rows.  One message-passing step is

.. math::

    h^{l+1} = A^T \hat x^l + b, \qquad \hat x^{l+1} = \sigma(h^{l+1}),
    \qquad \hat x^0 = [x; 0],

written row-wise as ``H = Xhat @ A + b``.  After ``steps`` steps the readout is the
pre-activation ``z = h^steps`` of the output neurons (S-Alg. 2 lines 4-9).

State arrays of :func:`gp_trace` (one entry per step, batch rows):

- ``Xhat[l]``  (B, N): :math:`\hat x^l`, the activated values sent at step l+1
  (after the step transform, if any); ``Xhat[0] = [X0, 0]``.
- ``H[l]``     (B, N): :math:`h^{l+1}`, the pre-activation received at step l+1.
- ``P[l]``     (B, N): the value fed to sigma at step l+1 (``H[l]`` after the step transform's ``pre``);
  only for l + 1 < steps, since the last step is read out before sigma.

Batch norm and dropout, the optional "common hyper-parameters" of the supplement's
Table 3, act through a :class:`StepTransform` (SAGP's, :mod:`refimpl.sagp.norm`); the
S-Eq. 11 layout of a SAGP lives in :mod:`refimpl.sagp.layout`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .activations import Activation, get_activation
from .validation import check_int

__all__ = [
    "GPGradients",
    "GPTrace",
    "StepTransform",
    "gp_backward",
    "gp_forward",
    "gp_trace",
    "infer_n_out",
    "mlp_to_graph",
]


# --------------------------------------------------------------------------- validation
def _check_graph(A, b) -> tuple[np.ndarray, np.ndarray]:
    A = np.asarray(A, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"A: expected a square (N, N) array, got shape {A.shape}")
    if b.shape != (A.shape[0],):
        raise ValueError(f"b: expected shape ({A.shape[0]},) to match A, got {b.shape}")
    if not (np.isfinite(A).all() and np.isfinite(b).all()):
        raise ValueError("A, b: entries must be finite")
    return A, b


def _check_steps(steps) -> int:
    return check_int(steps, "steps", 1)


def _check_input(x, N: int) -> tuple[np.ndarray, bool]:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim not in (1, 2):
        raise ValueError(f"x: expected shape (n0,) or (B, n0), got {x.shape}")
    single = x.ndim == 1
    X0 = x[None, :] if single else x
    if X0.shape[1] < 1 or X0.shape[1] >= N:
        raise ValueError(
            f"x: has {X0.shape[1]} features but the graph has {N} neurons; "
            "need 1 <= n0 < N (inputs are the first n0 neurons)"
        )
    if not np.isfinite(X0).all():
        raise ValueError("x: entries must be finite")
    return X0, single


def infer_n_out(A, n_in: int) -> int:
    """Number of output neurons of a graph perceptron, read off its adjacency.

    The outputs are the trailing neurons that send no synapse to another neuron
    (rows of ``A`` that are zero off the diagonal; a self-loop is allowed, as in the
    output identity block of S-Eq. 11), capped so that no input neuron is counted.
    This is what the S-Eq. 2 layout gives.

    It is ambiguous when the last non-output neuron sends nothing (e.g. a neuron of the
    last hidden layer whose row of ``W_L`` is zero): it is then counted as an output.
    Pass ``n_out`` to :func:`gp_forward` in that case.

    Parameters
    ----------
    A : (N, N) array
    n_in : int
        Number of input neurons.

    Returns
    -------
    int
        At least 1.

    Raises
    ------
    ValueError
        If no trailing neuron is a sink (no outputs can be identified).
    """
    A = np.asarray(A)
    N = A.shape[0]
    offdiag = A.copy()
    np.fill_diagonal(offdiag, 0.0)
    sends = np.any(offdiag != 0.0, axis=1)
    n_out = 0
    for j in range(N - 1, n_in - 1, -1):
        if sends[j]:
            break
        n_out += 1
    if n_out == 0:
        raise ValueError(
            "A: cannot infer the output neurons (the last neuron sends synapses); pass n_out"
        )
    return n_out


# --------------------------------------------------------------------------- S-Thm. 1
def mlp_to_graph(weights: Sequence, biases: Sequence) -> tuple[np.ndarray, np.ndarray]:
    r"""Adjacency and bias of the graph perceptron equal to an MLP (S-Eq. 2, S-Thm. 1).

    Implements the block construction of S-Eq. 2.  With blocks of sizes
    n_0, n_1, ..., n_{L+1} (inputs, L hidden layers, outputs),

    .. math::

        A^T = \begin{bmatrix} I \\ W_0^T \\ & \ddots \\ & & W_{L-1}^T \\
              & & & W_L^T & 0 \end{bmatrix},\qquad
        b = [0; b_0; \dots; b_{L-1}; 0],

    i.e. ``A[block l, block l+1] = W_l`` and an identity on the input block.
    S-Thm. 1: ``gp_forward(A, b, x, steps=L + 1)`` equals the MLP
    :math:`z = W_L^T x^L` with :math:`x^{l+1} = \sigma(W_l^T x^l + b_l)`,
    :math:`x^0 = x` (the activated readout: the supplement's S-Eq. 1 writes
    :math:`W_L^T h^L`, an erratum, see ``proofs/errata.md``).

    Parameters
    ----------
    weights : sequence of L + 1 arrays
        ``weights[l]`` has shape (n_l, n_{l+1}) as in S-Eq. 1.
    biases : sequence of L arrays
        ``biases[l]`` has shape (n_{l+1},); the output layer has no bias in S-Eq. 1.

    Returns
    -------
    A : (N, N) ndarray
        ``N = n_0 + ... + n_{L+1}``; ``A[j, i]`` is the synapse j -> i.
    b : (N,) ndarray

    Raises
    ------
    ValueError
        If the counts or shapes of ``weights`` and ``biases`` do not chain.

    References
    ----------
    The supplement of "Self-Assembling Graph Perceptrons", Theorem 1 and Eq. (2).
    """
    weights = [np.asarray(W, dtype=np.float64) for W in weights]
    biases = [np.asarray(c, dtype=np.float64) for c in biases]
    L = len(biases)
    if len(weights) != L + 1:
        raise ValueError(
            f"weights: expected len(biases) + 1 = {L + 1} matrices (S-Eq. 1), got {len(weights)}"
        )
    for l, W in enumerate(weights):
        if W.ndim != 2 or W.shape[0] < 1 or W.shape[1] < 1:
            raise ValueError(f"weights: weights[{l}] must be a non-empty 2-D array, got shape {W.shape}")
        if l > 0 and W.shape[0] != weights[l - 1].shape[1]:
            raise ValueError(
                f"weights: weights[{l}] has {W.shape[0]} rows but weights[{l - 1}] has "
                f"{weights[l - 1].shape[1]} columns"
            )
        if not np.isfinite(W).all():
            raise ValueError(f"weights: weights[{l}] has non-finite entries")
    for l, c in enumerate(biases):
        if c.shape != (weights[l].shape[1],):
            raise ValueError(
                f"biases: biases[{l}] must have shape ({weights[l].shape[1]},), got {c.shape}"
            )
        if not np.isfinite(c).all():
            raise ValueError(f"biases: biases[{l}] has non-finite entries")
    sizes = [weights[0].shape[0]] + [W.shape[1] for W in weights]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    N = int(offsets[-1])
    A = np.zeros((N, N))
    b = np.zeros(N)
    n0 = sizes[0]
    A[:n0, :n0] = np.eye(n0)  # S-Eq. (2): identity block of the inputs
    for l, W in enumerate(weights):
        rows = slice(offsets[l], offsets[l + 1])
        cols = slice(offsets[l + 1], offsets[l + 2])
        A[rows, cols] = W  # S-Eq. (2): block (l+1, l) of A^T is W_l^T
        if l < L:
            b[cols] = biases[l]  # S-Eq. (2): b = [0; b_0; ...; b_{L-1}; 0]
    return A, b


# --------------------------------------------------------------------------- forward
class StepTransform:
    """What acts between the message-passing steps of S-Alg. 2 besides sigma (identity here).

    :func:`gp_trace` calls ``pre(l, H)`` on step ``l + 1``'s pre-activation before sigma
    and ``post(l, X)`` on its activated values; :func:`gp_backward` calls the adjoints
    ``post_backward(l, dX)`` and ``pre_backward(l, dP)``.  The supplement's batch norm and
    dropout (:class:`refimpl.sagp.SAGPStepTransform`) are such a transform.
    """

    def pre(self, l, H):
        return H

    def post(self, l, X):
        return X

    def pre_backward(self, l, dP):
        return dP

    def post_backward(self, l, dX):
        return dX


@dataclass
class GPTrace:
    """Everything the backward pass of :func:`gp_trace` needs: the states of S-Alg. 2's
    message-passing steps (see the module docstring).

    ``z`` is the readout (B, n_out); ``transform`` the :class:`StepTransform` of the
    pass, if any (it keeps its own caches).
    """

    Xhat: list
    H: list
    P: list
    z: np.ndarray
    n_in: int
    n_out: int
    steps: int
    activation: Activation
    transform: StepTransform | None = None


def gp_trace(
    A,
    b,
    X0,
    steps: int,
    activation="tanh",
    *,
    n_out: int | None = None,
    transform: StepTransform | None = None,
) -> GPTrace:
    r"""Message passing of a graph perceptron, keeping the state for the backward pass.

    Implements S-Alg. 2 lines 4-9 (and S-Alg. 1 lines 12-17 with the masks already
    folded into ``A``): :math:`\hat x^0 = [x; 0]`, ``steps`` times
    :math:`h^{l+1} = A^T \hat x^l + b` (S-Eq. 3), :math:`\hat x^{l+1} = \sigma(h^{l+1})`,
    readout :math:`z = h^{steps}` at the outputs.  The activation of the last step is
    never used, so it is not computed.

    Parameters
    ----------
    A : (N, N) array
    b : (N,) array
    X0 : (B, n0) array
        A batch of inputs (a single sample must be given as one row).
    steps : int
        Number of message-passing steps (>= 1).
    activation : str or Activation
    n_out : int, optional
        Number of output neurons; inferred by :func:`infer_n_out` when omitted.
    transform : StepTransform, optional
        Acts before and after sigma at every step whose activation is used (SAGP's batch
        norm and dropout, :class:`refimpl.sagp.SAGPStepTransform`).

    Returns
    -------
    GPTrace

    Raises
    ------
    ValueError
        On shapes or a non-integer ``steps``.
    """
    A, b = _check_graph(A, b)
    steps = _check_steps(steps)
    X0 = np.asarray(X0, dtype=np.float64)
    if X0.ndim != 2:
        raise ValueError(f"X0: expected a (B, n0) batch, got shape {X0.shape}")
    X0, _ = _check_input(X0, A.shape[0])
    act = get_activation(activation)
    N = A.shape[0]
    B, n0 = X0.shape
    if n_out is None:
        n_out = infer_n_out(A, n0)
    if isinstance(n_out, bool) or not isinstance(n_out, (int, np.integer)) or not 1 <= n_out <= N - n0:
        raise ValueError(f"n_out: expected an integer in [1, {N - n0}], got {n_out!r}")
    Xhat = np.zeros((B, N))
    Xhat[:, :n0] = X0  # S-Alg. 2 line 4: x^0 = [x; 0]
    trace = GPTrace([Xhat], [], [], np.empty((B, n_out)), n0, int(n_out), steps, act, transform)
    for l in range(steps):
        H = trace.Xhat[l] @ A + b  # S-Alg. 2 line 6 / S-Eq. (3): h^{l+1} = A^T x^l + b
        trace.H.append(H)
        if l == steps - 1:
            break
        P = H if transform is None else transform.pre(l, H)
        trace.P.append(P)
        Xn = act.f(P)  # S-Alg. 2 line 7: x^{l+1} = sigma(h^{l+1})
        if transform is not None:
            Xn = transform.post(l, Xn)
        trace.Xhat.append(Xn)
    trace.z = trace.H[-1][:, N - n_out:]  # S-Alg. 2 line 9: z = [h^L_i], i in O
    return trace


def gp_forward(A, b, x, steps: int, activation="tanh", *, n_out: int | None = None) -> np.ndarray:
    r"""Output of a graph perceptron after ``steps`` message-passing steps.

    Implements S-Alg. 2 lines 4-9 (equivalently S-Eq. 3 with ``steps`` = L + 1):
    :math:`\hat x^0 = [x; 0]`, :math:`h^{l+1} = A^T \hat x^l + b`,
    :math:`\hat x^{l+1} = \sigma(h^{l+1})`, readout :math:`z = h^{steps}` at the output
    neurons.  S-Thm. 1: with ``(A, b) = mlp_to_graph(weights, biases)`` and
    ``steps = L + 1`` this equals the MLP with L hidden layers.

    Parameters
    ----------
    A : (N, N) array
        ``A[j, i]`` = synapse j -> i.
    b : (N,) array
    x : (n0,) or (B, n0) array
        Input values of the first n0 neurons.
    steps : int
        Number of message-passing steps, >= 1.
    activation : str or Activation, default "tanh"
    n_out : int, optional
        Number of output neurons (the last ones); inferred by :func:`infer_n_out`
        when omitted.

    Returns
    -------
    z : (n_out,) or (B, n_out) ndarray
        The pre-activation of the output neurons at the last step.

    Raises
    ------
    ValueError
        On inconsistent shapes, non-finite values or ``steps`` < 1.
    """
    A, b = _check_graph(A, b)
    X0, single = _check_input(x, A.shape[0])
    z = gp_trace(A, b, X0, steps, activation, n_out=n_out).z
    return z[0] if single else z


# --------------------------------------------------------------------------- backward
@dataclass
class GPGradients:
    """Gradients of a scalar loss through :func:`gp_trace`, the unrolled steps of
    S-Alg. 2 (batch summed).

    Attributes
    ----------
    A : (N, N) ndarray
        Dense: every entry, whether or not it is a synapse.
    b : (N,) ndarray
    X0 : (B, n0) ndarray

    The gradients of a :class:`StepTransform`'s own parameters stay on the transform.
    """

    A: np.ndarray
    b: np.ndarray
    X0: np.ndarray


def gp_backward(A, trace: GPTrace, G) -> GPGradients:
    r"""Explicit backward pass through the unrolled message passing of :func:`gp_trace`.

    Implements the adjoint of S-Alg. 2 lines 5-9 (reverse-mode through the ``steps``
    unrolled steps).  With :math:`\delta^{l+1} = \partial L / \partial h^{l+1}` (rows):

    .. math::

        \partial L/\partial A \mathrel{+}= (\hat x^l)^T \delta^{l+1},\quad
        \partial L/\partial b \mathrel{+}= 1^T \delta^{l+1},\quad
        \partial L/\partial \hat x^l = \delta^{l+1} A^T,\quad
        \delta^{l} = \sigma'(p^l) \odot (\partial L/\partial \hat x^l)

    (through the trace's :class:`StepTransform` where used); :math:`\delta^{steps}` is ``G`` on
    the output neurons and zero elsewhere.

    Parameters
    ----------
    A : (N, N) array
        The adjacency used by the forward pass.
    trace : GPTrace
        From :func:`gp_trace`.
    G : (B, n_out) array
        dL/dz.

    Returns
    -------
    GPGradients

    Raises
    ------
    ValueError
        If ``G`` does not match the readout's shape.
    """
    A = np.asarray(A, dtype=np.float64)
    G = np.asarray(G, dtype=np.float64)
    if G.shape != trace.z.shape:
        raise ValueError(f"G: expected shape {trace.z.shape} (the readout), got {G.shape}")
    B, N = trace.H[0].shape
    act = trace.activation
    dA = np.zeros_like(A)
    db = np.zeros(N)
    delta = np.zeros((B, N))
    delta[:, N - trace.n_out:] = G  # z = h^steps at the outputs
    dX0 = None
    for l in range(trace.steps - 1, -1, -1):
        dA += trace.Xhat[l].T @ delta  # d(X^l A)/dA
        db += delta.sum(axis=0)
        dX = delta @ A.T  # dL/dx^l
        if l == 0:
            dX0 = dX[:, : trace.n_in].copy()
            break
        tf = trace.transform
        if tf is not None:
            dX = tf.post_backward(l - 1, dX)
        dP = dX * act.df(trace.P[l - 1])  # through sigma
        if tf is not None:
            dP = tf.pre_backward(l - 1, dP)
        delta = dP
    return GPGradients(dA, db, dX0)
