"""Benchmark peer: the PyTorch whole-graph equilibrium solve a user would write.

What a torchdeq / "deep implicit layers" user writes for Eq. (3) on the
pruned graph (DESIGN.md sec. 10, the whole-graph peer): no modules, one
implicit layer over all p nodes,

    X = 1 b^T + f(X) A + X0 W1^T          (Eq. 3, all nodes at once)

solved by plain fixed-point iteration without autograd, then one step of
the map with autograd attached and a backward hook that solves the adjoint
fixed point ``y = g + J^T y`` (the implicit-function-theorem gradient,
Eq. 4) with vector-Jacobian products.  The sparse product f(X) A runs as a
gather + ``index_add_`` over the edge list, which autograd differentiates
with respect to the edge weights.  Benchmark-only: torch is the ``bench``
extra, never a dependency of the library.
"""
from __future__ import annotations

import numpy as np


def _torch():
    import torch  # the `bench` extra

    return torch


def torch_equilibrium(A, b, W1, Wm, X0, G, tol=1e-10, max_iter=2000):
    """Forward Eq. (3) and implicit backward Eq. (4)-(8) on the whole graph, in PyTorch.

    Parameters
    ----------
    A : scipy.sparse matrix (p, p)
        Kept edges, ``A[j, i]`` = w_ji (edge j -> i), diagonal excluded.
    b : (p,) array
        Biases.
    W1 : (p, n_in) array, Wm : (n_out, p) array
    X0 : (B, n_in) array
    G : (B, n_out) array
        dL/dZ (the loss is ``sum(G * Z)``).
    tol : float
        Stop both fixed points when the step's max-norm is at most
        ``tol * (1 + max|X|)``.
    max_iter : int

    Returns
    -------
    dict
        ``X``, ``Z`` (numpy arrays), ``dA`` (gradient of the kept edge
        weights, in ``A.tocoo()`` order, with ``rows``, ``cols``), ``db``,
        ``dW1``, ``dWm``, ``iterations`` (forward) and ``adjoint_iterations``.
    """
    torch = _torch()
    Acoo = A.tocoo()
    dt = torch.float64
    rows = torch.as_tensor(Acoo.row, dtype=torch.long)
    cols = torch.as_tensor(Acoo.col, dtype=torch.long)
    w = torch.tensor(Acoo.data, dtype=dt, requires_grad=True)
    bt = torch.tensor(np.asarray(b), dtype=dt, requires_grad=True)
    W1t = torch.tensor(np.asarray(W1), dtype=dt, requires_grad=True)
    Wmt = torch.tensor(np.asarray(Wm), dtype=dt, requires_grad=True)
    X0t = torch.as_tensor(np.asarray(X0), dtype=dt)
    B, p = X0t.shape[0], bt.shape[0]

    def cell(X, inj):
        F = torch.tanh(X)
        FA = torch.zeros((B, p), dtype=dt).index_add_(1, cols, F[:, rows] * w)  # f(X) A
        return inj + FA  # Eq. (3)

    inj = bt + X0t @ W1t.T  # 1 b^T + X0 W1^T
    with torch.no_grad():
        X = inj.detach().clone()
        it = 0
        for it in range(1, max_iter + 1):
            Xn = cell(X, inj.detach())
            step = (Xn - X).abs().max()
            X = Xn
            if step <= tol * (1.0 + X.abs().max()):
                break
    Xs = X.detach().requires_grad_()
    Xout = cell(Xs, inj)  # one step with autograd attached: depends on w, b, W1
    Xs0 = Xs.detach().requires_grad_()
    f0 = cell(Xs0, inj.detach())
    counts = {"adjoint": 0}

    def implicit_backward(grad):  # solve y = grad + J^T y (Eq. 4) at X*
        y = grad
        for k in range(1, max_iter + 1):
            yn = torch.autograd.grad(f0, Xs0, y, retain_graph=True)[0] + grad
            step = (yn - y).abs().max()
            y = yn
            if step <= tol * (1.0 + y.abs().max()):
                break
        counts["adjoint"] = k
        return y

    Xout.register_hook(implicit_backward)
    Z = torch.tanh(Xout) @ Wmt.T
    (Z * torch.as_tensor(np.asarray(G), dtype=dt)).sum().backward()
    return dict(X=Xout.detach().numpy(), Z=Z.detach().numpy(), dA=w.grad.numpy(),
                rows=Acoo.row, cols=Acoo.col, db=bt.grad.numpy(), dW1=W1t.grad.numpy(),
                dWm=Wmt.grad.numpy(), iterations=it, adjoint_iterations=counts["adjoint"])
