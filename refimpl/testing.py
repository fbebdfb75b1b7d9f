r"""Shared oracles for the tests and ``refimpl verify`` (in the manner of ``numpy.testing``).

Everything here is *oracle* mathematics written independently of the code
under test: it reads a network's parameters but never calls the propagation
engine (:mod:`refimpl.propagate`, :mod:`refimpl.solvers`).

- :func:`central_difference`: central differences of a scalar function of an
  array, every entry or selected entries (returns a new array).
- :func:`central_gradient`: the same, perturbing ``theta`` in place for a
  closure that reads it (autograd's ``test_util`` style).
- :func:`eq3_residual`: the residual of the node equations, Eq. (3).
- :func:`dense_newton_forward`: the forward of Eq. (3) by Newton's method on
  the whole graph (one dense p x p system per sample, no modules, no
  schedule), the oracle of the NM forward.
- :func:`dense_adjoint`: the backward of Eq. (4) by one dense solve per
  sample, the oracle of the NM backward.
- :func:`plain_mlp`: an MLP written out layer by layer (S-Eq. 1, corrected).
- :func:`random_case`: a seeded random network, batch and targets.
- :func:`toy_classification`: seeded Gaussian blobs.
- :func:`rel_error`: ``max |a - b| / max |b|``.

Error budget of the central differences in float64, step h and a function of
size ~1: truncation ``h^2 |f'''| / 6`` and rounding ``eps |f| / h``; with the
default ``h = 1e-6`` about 1e-12 + 1e-10, so tolerances of 1e-8 absolute or
1e-6 relative hold with a wide margin.
"""
from __future__ import annotations

import numpy as np

from .activations import get_activation

__all__ = [
    "central_difference",
    "central_gradient",
    "eq3_residual",
    "dense_newton_forward",
    "dense_adjoint",
    "plain_mlp",
    "random_case",
    "toy_classification",
    "rel_error",
]


def central_difference(fun, x, h=1e-6, index=None):
    r"""Central differences of the scalar ``fun`` at the array ``x``.

    Implements :math:`\partial f / \partial x_i \approx (f(x + h e_i) - f(x - h e_i)) / (2h)`,
    the oracle of every gradient check (Eq. (4)-(8), Thm. 3.1, S-Alg. 1).

    Parameters
    ----------
    fun : callable
        ``fun(x_perturbed) -> float``; it receives a perturbed copy, ``x`` is
        never modified.
    x : array_like
        The point.
    h : float
        The step (> 0).
    index : tuple of int, or list of tuples, optional
        One entry (returns a float) or several (returns a 1-D array in that
        order); default every entry (returns an array shaped like ``x``).
    """
    if not (np.isfinite(h) and h > 0):
        raise ValueError(f"h: expected a finite step > 0, got {h!r}")
    x = np.asarray(x, dtype=np.float64)

    def one(idx):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        return (float(fun(xp)) - float(fun(xm))) / (2.0 * h)

    if index is None:
        out = np.empty_like(x)
        for idx in np.ndindex(*x.shape):
            out[idx] = one(idx)
        return out
    if isinstance(index, tuple):
        return one(index)
    return np.array([one(tuple(i)) for i in index])


def central_gradient(fun, theta, h=1e-6):
    """Central differences of ``fun()`` in every entry of ``theta`` (perturbed in place).

    The closure form of :func:`central_difference` (Eq. (4)-(8) and S-Alg. 1
    gradient checks): ``theta`` is a parameter array that ``fun`` reads; each
    entry is moved by +-h and restored.
    """
    if not (np.isfinite(h) and h > 0):
        raise ValueError(f"h: expected a finite step > 0, got {h!r}")
    g = np.zeros_like(theta, dtype=np.float64)
    for i in np.ndindex(*theta.shape):
        old = theta[i]
        theta[i] = old + h
        lp = fun()
        theta[i] = old - h
        lm = fun()
        theta[i] = old
        g[i] = (lp - lm) / (2 * h)
    return g


def _parts(net, graph):
    A = graph.A.toarray() if hasattr(graph.A, "toarray") else np.asarray(graph.A)
    return A, np.asarray(graph.b), get_activation(net.activation)


def eq3_residual(net, graph, X0, X):
    r"""Residual of the node equations, Eq. (3): ``X - (1 b^T + f(X) A + X0 W1^T)``.

    Parameters
    ----------
    net : NMNetwork
        For ``W1`` and the activation f.
    graph : PrunedGraph
        The kept edges ``A`` (``A[j, i]`` = w_ji) and biases ``b``.
    X0 : (B, n_in) array
    X : (B, p) array
        Node values (pre-activation) to test.

    Returns
    -------
    (B, p) array
        Zero exactly at a solution of Eq. (3).
    """
    act = get_activation(net.activation)
    X = np.asarray(X, dtype=np.float64)
    A = graph.A
    # f(X) A as (A^T f(X)^T)^T: a sparse A stays sparse (no p x p array).
    FA = (A.T @ act.f(X).T).T if hasattr(A, "toarray") else act.f(X) @ np.asarray(A)
    return X - (np.asarray(graph.b) + FA + np.asarray(X0) @ net.W1.T)


def dense_newton_forward(net, X0, graph, tol=1e-13, maxiter=100):
    r"""Oracle forward: Eq. (3) by Newton's method on the whole dense graph.

    Implements Eq. (3) per sample as one p-dimensional system
    :math:`F(x) = x - b - A^T f(x) - W_1 x_0 = 0`, Jacobian
    :math:`I - A^T \operatorname{diag}(f'(x))`, without modules or schedule.

    Returns
    -------
    X : (B, p) array
        Node values.
    Z : (B, n_out) array
        ``f(X) Wm^T`` (before the output activation g).

    Raises
    ------
    RuntimeError
        When a sample does not converge to ``tol`` in ``maxiter`` steps.
    """
    A, b, act = _parts(net, graph)
    X0 = np.asarray(X0, dtype=np.float64)
    p = A.shape[0]
    X = np.empty((X0.shape[0], p))
    I = np.eye(p)
    for s in range(X0.shape[0]):
        c = b + net.W1 @ X0[s]
        x = c.copy()
        for _ in range(maxiter):
            F = x - c - act.f(x) @ A
            if np.abs(F).max() <= tol * (1.0 + np.abs(x).max()):
                break
            x = x - np.linalg.solve(I - A.T * act.df(x)[None, :], F)
        else:
            raise RuntimeError(f"dense_newton_forward: sample {s} did not converge")
        X[s] = x
    return X, act.f(X) @ net.Wm.T


def dense_adjoint(net, graph, X, G):
    r"""Oracle backward: V = dL/df(X) from Eq. (4) by one dense solve per sample.

    Eq. (4) reads :math:`V = G W^m + (f'(X) \circ V) A^T`; per sample
    :math:`(I - \operatorname{diag}(f'(x)) A)^T`-type system solved densely.
    Returns ``(V, U)`` with ``U = f'(X) * V = dL/dX``.
    """
    A, _, act = _parts(net, graph)
    X = np.asarray(X, dtype=np.float64)
    G = np.asarray(G, dtype=np.float64)
    p = A.shape[0]
    V = np.empty_like(X)
    for s in range(X.shape[0]):
        d = act.df(X[s])
        # v = G Wm + A (d * v)  <=>  (I - A diag(d)) v = Wm^T g
        V[s] = np.linalg.solve(np.eye(p) - A * d[None, :], net.Wm.T @ G[s])
    return V, act.df(X) * V


def plain_mlp(X0, Ws, bs, f):
    """Oracle MLP ``x^{l+1} = f(x^l W_l + b_l)``, ``z = x^L W_L`` (S-Eq. 1, activated readout).

    ``Ws`` has one more matrix than ``bs``: the last is the readout (no
    bias, no activation).  Pass ``Ws`` and ``bs`` of equal length to get the
    last hidden layer ``x^L`` instead.
    """
    H = np.asarray(X0, dtype=np.float64)
    for W, c in zip(Ws, bs):
        H = f(H @ W + c)
    if len(Ws) == len(bs):
        return H
    if len(Ws) != len(bs) + 1:
        raise ValueError(f"Ws: expected len(bs) or len(bs) + 1 matrices, got {len(Ws)}")
    return H @ Ws[-1]


def random_case(seed, p=10, n_in=4, n_out=3, B=5, k=30, scale=0.6, activation="tanh",
                output="softmax", bias=0.3):
    """A seeded random network (Alg. 2 line 3) with non-zero biases, a batch and targets.

    Returns ``(net, X0, T)``: ``T`` are class labels for a softmax output,
    a (B, n_out) array otherwise.
    """
    from .model import NMNetwork

    net = NMNetwork.random(n_in, p, n_out, seed=seed, k=k, scale=scale,
                           activation=activation, output=output)
    rng = np.random.default_rng(seed + 1)
    net.K[np.diag_indices(p)] = bias * rng.standard_normal(p)
    X0 = rng.standard_normal((B, n_in))
    if output == "softmax":
        T = rng.integers(0, n_out, size=B)
    elif output == "sigmoid":
        T = rng.integers(0, 2, size=(B, n_out)).astype(np.float64)
    else:
        T = rng.standard_normal((B, n_out))
    return net, X0, T


def toy_classification(seed=0, n=150, n_in=5, n_classes=3, spread=2.0, noise=0.7,
                       balanced=False):
    """Seeded Gaussian blobs: ``X = centers[y] + noise * N(0, 1)``, labels ``y``.

    ``balanced=True`` cycles the labels (``y = arange(n) % n_classes``);
    otherwise they are drawn uniformly.
    """
    rng = np.random.default_rng(seed)
    centers = spread * rng.standard_normal((n_classes, n_in))
    y = np.arange(n) % n_classes if balanced else rng.integers(0, n_classes, n)
    X = centers[y] + noise * rng.standard_normal((n, n_in))
    return X, y


def rel_error(a, b):
    """``max |a - b| / max |b|`` (divided by 1 when b is all 0)."""
    a, b = np.asarray(a), np.asarray(b)
    scale = float(np.abs(b).max()) if b.size else 0.0
    if a.size == 0:
        return 0.0
    return float(np.abs(a - b).max() / (scale if scale > 0 else 1.0))
