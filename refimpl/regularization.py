r"""NM regularization (Sec. 3.7 of the paper: Eq. (9)-(12), Thm. 3.1) and plain L2.

Conventions (DESIGN.md sections 2 and 5): ``K[j, i]`` = w_ji is the weight of
edge n_j -> n_i, the diagonal ``K[i, i]`` is the bias of node i, and the
repulsion matrix ``R`` is indexed like ``K``.  The penalties act on the
off-diagonal entries of the dense ``K`` (kept *and* pruned ones); the
biases are not edges and are not penalized.

- :func:`nm_repulsion`: W~, D (Eq. 9), z and R (Eq. 10) of a pruned graph.
- :func:`nm_penalty`, :func:`nm_gradient`: the penalty of Eq. (11) and its
  exact gradient with R held constant.
- :func:`nm_update`: the update of Thm. 3.1 (Eq. 12) exactly as stated.
- :func:`l2_penalty`, :func:`l2_gradient`: plain L2 (the "NMs&L2" rows of
  Table 1).
- :func:`nm_proximal`, :func:`l2_proximal`: the implicit (backward-Euler) form of
  the shrinkage, stable for every step size (the trainers' default).
- :func:`nm_rate_times`: the explicit training term ``alpha R * K``.
  Given a PrunedGraph, it and :func:`nm_proximal` run per mini-batch without any
  dense p x p intermediate: off the kept edges W~ = 0 and D = 1, so R = z z^T
  (rank one), and only the kept edges carry the correction ``exp(W~)``
  (DESIGN.md section 5).  :func:`nm_repulsion_sparse` gives z and the kept edges'
  D, which the trainer's one update pass over K reads (:mod:`refimpl.train`).  One pass over K plus O(edges + p) work; the dense
  :func:`nm_repulsion` route is the reference that the tests compare against.

Two errata (``proofs/thm3_1.md``, ``proofs/errata.md``): the gradient of
:math:`\alpha \sum r w^2` is :math:`2 \alpha r w`, not :math:`\alpha r w`
(Eq. 17), so the update of Thm. 3.1 is gradient descent on
:math:`J + (\alpha/2) \sum r w^2`; and R depends on the weights (through W~
and the module sizes z), so the update treats R as a stop-gradient.

Rate convention of training (DESIGN.md sec. 5): the trainers use Thm. 3.1's rate
for both regularizers, so that NM regularization with R = 1 (no kept edges: every
module a singleton, W~ = 0) is exactly L2 at the same alpha.  The shrinkage term of
an update is :math:`\alpha r_{ij} w_{ij}` (NM) and :math:`\alpha w_{ij}` (L2), i.e.
gradient descent on :math:`J + (\alpha/2)\sum r w^2` and :math:`J + (\alpha/2)\sum
w^2`; :func:`nm_proximal` and :func:`l2_proximal` are their implicit forms.  It is
also DeepLearnToolbox's ``weightPenaltyL2`` convention (``dW + alpha W``), whose
parameter names the paper's Table 3 uses.  The penalties :func:`nm_penalty` (Eq. 11)
and :func:`l2_penalty` keep the stated :math:`\alpha\sum r w^2` and
:math:`\alpha\sum w^2`: their gradients are twice the training terms, which the
trainers obtain as ``nm_gradient(K, graph, alpha / 2)`` and ``l2_gradient(K, alpha / 2)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from .graph.prune import PrunedGraph, check_square_finite
from .validation import as_float_array, check_scalar

__all__ = [
    "NMRepulsion",
    "nm_repulsion",
    "nm_penalty",
    "nm_gradient",
    "nm_update",
    "l2_penalty",
    "l2_gradient",
    "nm_proximal",
    "l2_proximal",
    "nm_rate_times",
    "nm_repulsion_sparse",
]


@dataclass(frozen=True)
class NMRepulsion:
    """The quantities of Eq. (9)-(10) for one pruned graph.

    Attributes
    ----------
    W_tilde : (p, p) array
        ``|A| / scale`` on the kept entries, 0 elsewhere (diagonal included);
        values in [0, 1].
    D : (p, p) array
        Distance matrix ``exp(-W_tilde)`` (Eq. 9); 1 where no edge is kept.
    z : (p,) array
        Size of the neural module (SCC of the pruned graph) of each node.
    R : (p, p) array
        Repulsion matrix ``R[i, j] = z_i z_j / D[i, j]`` (Eq. 10), so
        ``z_i z_j <= R[i, j] <= e z_i z_j``.  The diagonal ``z_i**2`` is
        defined by Eq. (10) but never used (biases are not penalized).
    scale : float
        The normalizer ``max |A|`` over the kept entries (0 when the graph
        has no edge or every kept weight is 0).
    """

    W_tilde: np.ndarray
    D: np.ndarray
    z: np.ndarray
    R: np.ndarray
    scale: float

    @property
    def p(self) -> int:
        return int(self.R.shape[0])


# ----------------------------------------------------------------------------
# input validation
# ----------------------------------------------------------------------------


def _scalar(value, name, *, strict):
    """``value`` as a finite float, ``> 0`` if ``strict`` else ``>= 0``."""
    return check_scalar(value, name, minimum=0.0, strict=strict)


def _repulsion_of(graph):
    """R for ``graph`` (a PrunedGraph, or an NMRepulsion computed before)."""
    if isinstance(graph, NMRepulsion):
        return graph
    if isinstance(graph, PrunedGraph):
        return nm_repulsion(graph)
    raise ValueError(f"graph: expected a PrunedGraph or NMRepulsion, got {type(graph).__name__}")


def _check_K(K, p):
    K = check_square_finite(K, "K")
    if K.shape != (p, p):
        raise ValueError(f"K: expected shape ({p}, {p}) to match the graph, got {K.shape}")
    return K


# ----------------------------------------------------------------------------
# Eq. (9)-(10)
# ----------------------------------------------------------------------------


def nm_repulsion(graph):
    r"""Distance and repulsion matrices of a pruned graph.

    Implements Eq. (9) and Eq. (10) of the paper.  With :math:`\mathcal{K}`
    the set of kept edges of :math:`\tilde{\mathcal G}` and :math:`z_i` the
    number of nodes of the neural module containing :math:`n_i`:

    .. math::

        \tilde w_{ij} = \frac{|A_{ij}|}{\max_{(k,l) \in \mathcal K} |A_{kl}|}
        \ \text{for}\ (i, j) \in \mathcal K, \qquad \tilde w_{ij} = 0\ \text{otherwise},

    .. math::

        d_{ij} = e^{-\tilde w_{ij}} \qquad \text{Eq. (9)}

    .. math::

        r_{ij} = \frac{z_i z_j}{d_{ij}} = z_i z_j\, e^{\tilde w_{ij}} \qquad \text{Eq. (10)}

    Documented choices (the paper says only "normalize the absolute value of
    its adjacency matrix"): the normalizer is the largest kept magnitude, so
    :math:`\tilde W \in [0, 1]`; entries not kept (and the diagonal, which
    holds biases) have :math:`\tilde w = 0`, i.e. :math:`d = 1`.  A graph
    with no edge, or whose kept weights are all 0, has
    :math:`\tilde W = 0` (no division by 0), so :math:`R = z z^T`.

    Parameters
    ----------
    graph : PrunedGraph
        From :func:`refimpl.graph.prune` or :func:`refimpl.graph.graph_from_mask`;
        its kept weights ``graph.A`` and modules ``graph.labels`` are used.

    Returns
    -------
    NMRepulsion
        ``W_tilde``, ``D``, ``z``, ``R`` (dense, indexed like ``K``) and ``scale``.
    """
    if not isinstance(graph, PrunedGraph):
        raise ValueError(f"graph: expected a PrunedGraph, got {type(graph).__name__}")
    A = graph.A
    p = graph.p
    absA = np.abs(np.asarray(A.data, dtype=np.float64))
    scale = float(absA.max()) if absA.size else 0.0
    W_tilde = np.zeros((p, p))
    if scale > 0.0:
        rows = np.repeat(np.arange(p), np.diff(A.indptr))
        W_tilde[rows, A.indices] = absA / scale  # normalization before Eq. (9)
    D = np.exp(-W_tilde)  # Eq. (9)
    sizes = np.asarray(graph.schedule.module_sizes, dtype=np.float64)
    z = sizes[graph.labels]  # Eq. (10) text: z_i = |module of n_i|
    R = np.outer(z, z) / D  # Eq. (10)
    return NMRepulsion(W_tilde=W_tilde, D=D, z=z, R=R, scale=scale)


# ----------------------------------------------------------------------------
# Eq. (11)-(12), Thm. 3.1
# ----------------------------------------------------------------------------


def nm_penalty(K, graph, alpha):
    r"""The NM regularization term of Eq. (11), summed over all nodes.

    Implements Eq. (11) of the paper (the penalty part, summed over the
    nodes i = 1..p):

    .. math::

        P(K) = \alpha \sum_{i \ne j} r_{ij}\, w_{ij}^2 \qquad \text{Eq. (11)}

    R is computed from ``graph`` (Eq. 10) and is **not** recomputed from
    ``K``: evaluated at weights other than the graph's, this is the penalty
    with R held constant, the function whose gradient Thm. 3.1 uses.

    Documented choice: Eq. (11) sums over every j including j = i; here the
    diagonal holds the biases, which are not edges and are not penalized.
    Pruned (not kept) off-diagonal entries are penalized, with
    :math:`r_{ij} = z_i z_j`.

    Parameters
    ----------
    K : (p, p) array
        Dense adjacency (``K[j, i]`` = w_ji; diagonal = biases).
    graph : PrunedGraph or NMRepulsion
        The pruned graph, or its :func:`nm_repulsion` (to reuse R).
    alpha : float
        Regularization parameter, ``>= 0``.

    Returns
    -------
    float
    """
    rep = _repulsion_of(graph)
    K = _check_K(K, rep.p)
    alpha = _scalar(alpha, "alpha", strict=False)
    RK2 = rep.R * K * K
    np.fill_diagonal(RK2, 0.0)  # i != j; zeroed, not subtracted (no cancellation)
    return float(alpha * RK2.sum())  # Eq. (11)


def nm_gradient(K, graph, alpha):
    r"""Exact gradient of the penalty of Eq. (11) with R held constant.

    .. math::

        \frac{\partial P}{\partial w_{ij}} = 2 \alpha\, r_{ij} w_{ij}
        \quad (i \ne j), \qquad \frac{\partial P}{\partial w_{ii}} = 0 .

    This is twice the term :math:`\alpha r_{ij} w_{ij}` of the paper's
    Eq. (17) (erratum, ``proofs/thm3_1.md``).  R depends on K through
    :math:`\tilde W` and z; this gradient treats it as a constant (a
    stop-gradient), as Thm. 3.1 does.  Use it with any optimizer; for the
    update exactly as Thm. 3.1 states it, use :func:`nm_update`.

    Parameters
    ----------
    K : (p, p) array
    graph : PrunedGraph or NMRepulsion
    alpha : float, ``>= 0``

    Returns
    -------
    (p, p) array
        Zero on the diagonal.
    """
    rep = _repulsion_of(graph)
    K = _check_K(K, rep.p)
    alpha = _scalar(alpha, "alpha", strict=False)
    G = (2.0 * alpha) * rep.R * K  # d/dw of Eq. (11) with R constant
    np.fill_diagonal(G, 0.0)
    return G


def nm_update(K, grad, graph, alpha, eta, *, out=None):
    r"""One step of the update of Thm. 3.1 (Eq. 12), exactly as stated.

    Implements Thm. 3.1 / Eq. (12) of the paper:

    .. math::

        w_{ij} \leftarrow w_{ij}\,(1 - \eta \alpha r_{ij})
        - \eta \frac{\partial J}{\partial w_{ij}} \quad (i \ne j),
        \qquad w_{ii} \leftarrow w_{ii} - \eta \frac{\partial J}{\partial w_{ii}}
        \qquad \text{Thm. 3.1}

    The biases (diagonal) are not penalized (the choice of :func:`nm_penalty`).

    Erratum (``proofs/thm3_1.md``): with R held constant this is one
    gradient-descent step on :math:`J + (\alpha/2)\sum_{i\ne j} r_{ij} w_{ij}^2`,
    i.e. on ``J + nm_penalty(K, graph, alpha / 2)``, not on Eq. (11) with
    ``alpha`` (that step is ``K - eta (grad + nm_gradient(K, graph, alpha))``).
    R is a stop-gradient: its dependence on the weights is ignored.  No step
    size control: with :math:`\eta\alpha r_{ij} > 1` the factor changes the
    sign of :math:`w_{ij}`, as the formula says.

    Parameters
    ----------
    K : (p, p) array
        Current weights (``K[j, i]`` = w_ji; diagonal = biases).
    grad : (p, p) array
        :math:`\partial J / \partial K` of the unregularized objective.
    graph : PrunedGraph or NMRepulsion
        The pruned graph whose R (Eq. 10) is used, or its :func:`nm_repulsion`.
    alpha : float
        Regularization parameter, ``>= 0``.
    eta : float
        Learning rate, ``> 0``.
    out : (p, p) float64 array, optional
        Where to write the result; may be ``K`` itself (in-place update).
        By default a new array is returned and ``K`` is not modified.

    Returns
    -------
    (p, p) array
        The updated weights (``out`` if given).
    """
    rep = _repulsion_of(graph)
    p = rep.p
    K = _check_K(K, p)
    grad = as_float_array(grad, "grad", shape=(p, p))
    alpha = _scalar(alpha, "alpha", strict=False)
    eta = _scalar(eta, "eta", strict=True)
    if out is not None:
        if not isinstance(out, np.ndarray) or out.shape != (p, p) or out.dtype != np.float64:
            raise ValueError(f"out: expected a float64 array of shape ({p}, {p})")
    factor = 1.0 - (eta * alpha) * rep.R  # Eq. (12), Thm. 3.1: (1 - eta alpha r_ij)
    np.fill_diagonal(factor, 1.0)  # biases: plain gradient step
    step = eta * grad  # a new array, so ``out`` may alias ``grad``
    out = np.multiply(K, factor, out=out)
    out -= step  # Eq. (12), Thm. 3.1: - eta dJ/dw_ij
    return out


def nm_proximal(K, graph, alpha, eta, *, out=None):
    r"""The implicit (backward-Euler) form of Thm. 3.1's shrinkage.

    Implements, off the diagonal,

    .. math::

        w_{ij} \leftarrow \frac{w_{ij}}{1 + \eta \alpha r_{ij}} \qquad (i \ne j),

    the proximal step of :math:`(\alpha/2)\sum r w^2` (Thm. 3.1's objective, see
    :func:`nm_update`): equal to Thm. 3.1's factor :math:`1 - \eta\alpha r_{ij}` to
    first order in eta, and stable for every :math:`\eta\alpha r_{ij}`.  Applied after
    an optimizer's step on dJ/dw.  Biases (the diagonal) are left as they are.

    Given a PrunedGraph, R of Eq. (10) is never formed: off the kept edges
    :math:`r_{ij} = z_i z_j` (rank one, D = 1), on them
    :math:`r_{ij} = z_i z_j / e^{-\tilde w_{ij}}` (Eq. 9), one pass over K plus
    O(edges + p) work per mini-batch.  Given an NMRepulsion, its dense R is used.

    Parameters
    ----------
    K : (p, p) array
    graph : PrunedGraph or NMRepulsion
    alpha : float, ``>= 0``
    eta : float, ``> 0``
    out : (p, p) float64 array, optional
        Where to write the result; may be ``K`` itself (in place).  C-contiguous
        when ``graph`` is a PrunedGraph.

    Returns
    -------
    (p, p) array
    """
    if isinstance(graph, PrunedGraph):
        K = _check_K(K, graph.p)
        alpha = _scalar(alpha, "alpha", strict=False)
        eta = _scalar(eta, "eta", strict=True)
        out = _rate_out(K, out, graph.p)
        z, indptr, indices, d = _sparse_repulsion(graph)
        _nm_rate_kernel(np.ascontiguousarray(K), z, indptr, indices, d, alpha, eta, True,
                        np.empty(d.size), out)
        return out
    rep = _repulsion_of(graph)
    K = _check_K(K, rep.p)
    alpha = _scalar(alpha, "alpha", strict=False)
    eta = _scalar(eta, "eta", strict=True)
    rho = alpha * rep.R  # Thm. 3.1: alpha r_ij
    np.fill_diagonal(rho, 0.0)  # biases are not penalized
    return np.divide(K, 1.0 + eta * rho, out=out)


# ----------------------------------------------------------------------------
# plain L2 ("NMs&L2" rows of Table 1)
# ----------------------------------------------------------------------------


def l2_penalty(K, alpha):
    r"""Plain L2 penalty on the edges, for the "NMs&L2" rows of Table 1.

    .. math::

        P_2(K) = \alpha \sum_{i \ne j} w_{ij}^2

    Documented choice: off-diagonal only, like :func:`nm_penalty` (the
    diagonal holds biases, which are not penalized).  Equals
    :func:`nm_penalty` with R replaced by ones.

    Parameters
    ----------
    K : (p, p) array
    alpha : float, ``>= 0``

    Returns
    -------
    float
    """
    K = check_square_finite(K, "K")
    alpha = _scalar(alpha, "alpha", strict=False)
    K2 = K * K
    np.fill_diagonal(K2, 0.0)  # biases are not penalized; zeroed, not subtracted
    return float(alpha * K2.sum())


def l2_gradient(K, alpha, *, biases_on_diagonal=True):
    r"""Gradient of :func:`l2_penalty` (the "NMs&L2" rows of Table 1):
    :math:`2\alpha w_{ij}` off the diagonal, 0 on it.

    Parameters
    ----------
    K : (p, p) array
        Or any weight matrix when ``biases_on_diagonal`` is False.
    alpha : float, ``>= 0``
    biases_on_diagonal : bool
        True (``K``): the diagonal holds biases, not penalized.  False (e.g. a weight
        matrix of the NN baseline): every entry is a weight.

    Returns
    -------
    array
    """
    K = check_square_finite(K, "K") if biases_on_diagonal else as_float_array(K, "K")
    alpha = _scalar(alpha, "alpha", strict=False)
    G = (2.0 * alpha) * K
    if biases_on_diagonal:
        np.fill_diagonal(G, 0.0)
    return G


def l2_proximal(K, alpha, eta, *, biases_on_diagonal=True, out=None):
    r"""The implicit (backward-Euler) form of the L2 shrinkage (the "NMs&L2" rows of Table 1).

    Implements :math:`w_{ij} \leftarrow w_{ij} / (1 + \eta\alpha)`, the proximal step
    of :math:`(\alpha/2)\sum w^2` (``l2_penalty`` at alpha / 2): the training rate
    convention of the module docstring, :func:`nm_proximal` with R = 1.  The diagonal
    (biases) is left as it is unless ``biases_on_diagonal`` is False.

    Parameters
    ----------
    K : (p, p) array
        Or any weight matrix when ``biases_on_diagonal`` is False.
    alpha : float, ``>= 0``
    eta : float, ``> 0``
    biases_on_diagonal : bool
    out : float64 array, optional
        Where to write the result; may be ``K`` itself (in place).

    Returns
    -------
    array
    """
    K = check_square_finite(K, "K") if biases_on_diagonal else as_float_array(K, "K")
    alpha = _scalar(alpha, "alpha", strict=False)
    eta = _scalar(eta, "eta", strict=True)
    rho = np.full(K.shape, alpha)  # the training rate: Thm. 3.1's alpha r_ij with r = 1
    if biases_on_diagonal:
        np.fill_diagonal(rho, 0.0)
    return np.divide(K, 1.0 + eta * rho, out=out)


# ----------------------------------------------------------------------------
# per mini-batch, without dense p x p intermediates (rank one + kept edges)
# ----------------------------------------------------------------------------


@numba.njit(cache=True, error_model="numpy", inline="always")
def _proximal_entry(w, eta, alpha, r):
    """``w / (1 + eta alpha r)``: one entry of the implicit form of Thm. 3.1."""
    return w / (1.0 + eta * (alpha * r))


@numba.njit(cache=True, error_model="numpy")
def _nm_rate_kernel(K, z, indptr, indices, d, alpha, eta, proximal, orig, out):
    """``out = alpha R * K`` (``proximal`` False) or ``K / (1 + eta alpha R)``
    (True) off the diagonal, ``out = 0`` resp. ``K`` on it, with
    ``R[j, i] = z_j z_i / d`` (Eq. 10) where ``d`` is the kept edge's
    ``exp(-W~)`` (Eq. 9) and 1 elsewhere.  ``out`` may be ``K``."""
    # orig[ptr] : K at kept edge ptr of row j, saved before the row is overwritten
    # Each row: one branch-free (SIMD) pass with the rank-one R = z z^T of the
    # entries off the kept edges (d = 1), then the diagonal and the row's kept
    # edges are rewritten: O(p) + O(edges of the row).
    p = K.shape[0]
    for j in range(p):
        zj = z[j]
        kjj = K[j, j]
        for ptr in range(indptr[j], indptr[j + 1]):
            orig[ptr] = K[j, indices[ptr]]
        Kj = K[j]
        oj = out[j]
        if proximal:
            for i in range(p):
                oj[i] = _proximal_entry(Kj[i], eta, alpha, zj * z[i])  # Eq. (10), d = 1
            oj[j] = kjj  # biases: not penalized
            for ptr in range(indptr[j], indptr[j + 1]):
                r = zj * z[indices[ptr]] / d[ptr]  # Eq. (10) on a kept edge
                oj[indices[ptr]] = _proximal_entry(orig[ptr], eta, alpha, r)
        else:
            for i in range(p):
                oj[i] = (alpha * (zj * z[i])) * Kj[i]  # Eq. (10), d = 1
            oj[j] = 0.0  # biases: not penalized
            for ptr in range(indptr[j], indptr[j + 1]):
                r = zj * z[indices[ptr]] / d[ptr]  # Eq. (10) on a kept edge
                oj[indices[ptr]] = (alpha * r) * orig[ptr]


def nm_repulsion_sparse(graph):
    r"""R of Eq. (10) as rank one plus the kept edges, without a dense p x p array.

    Implements Eq. (9)-(10) in the per-mini-batch form: off the kept edges
    :math:`\tilde w = 0`, so :math:`d = 1` and :math:`r_{ij} = z_i z_j`; on a kept edge
    :math:`r_{ij} = z_i z_j / d_{ij}` with :math:`d_{ij} = e^{-\tilde w_{ij}}` (Eq. 9).

    Parameters
    ----------
    graph : PrunedGraph

    Returns
    -------
    z : (p,) array
        Module size of each node (Eq. 10's text).
    indptr, indices : arrays
        The kept edges, CSR (those of ``graph.A``).
    d : array
        :math:`d_{ij}` of each kept edge, in CSR order (Eq. 9).
    """
    return _sparse_repulsion(graph)


def _sparse_repulsion(graph):
    """z (Eq. 10 text) and D on the kept edges only (Eq. 9), in CSR order."""
    if not isinstance(graph, PrunedGraph):
        raise ValueError(f"graph: expected a PrunedGraph, got {type(graph).__name__}")
    A = graph.A
    absA = np.abs(np.asarray(A.data, dtype=np.float64))
    scale = float(absA.max()) if absA.size else 0.0
    d = np.exp(-(absA / scale)) if scale > 0.0 else np.ones_like(absA)  # Eq. (9)
    sizes = np.asarray(graph.schedule.module_sizes, dtype=np.float64)
    z = sizes[graph.labels]  # Eq. (10) text
    return z, A.indptr, A.indices, d


def _rate_out(K, out, p):
    if out is None:
        return np.empty((p, p))
    if not isinstance(out, np.ndarray) or out.shape != (p, p) or out.dtype != np.float64 \
            or not out.flags.c_contiguous:
        raise ValueError(f"out: expected a C-contiguous float64 array of shape ({p}, {p})")
    return out


def nm_rate_times(K, graph, alpha, *, out=None):
    r"""The regularizer's term :math:`\alpha r_{ij} w_{ij}` of Thm. 3.1, per mini-batch.

    Implements the term :math:`\alpha r_{ij} w_{ij}` of Thm. 3.1 / Eq. (12)
    (half of :func:`nm_gradient`), with R of Eq. (10), computed as
    ``alpha * nm_repulsion(graph).R * K`` with a zero diagonal but without a
    dense p x p intermediate: off the kept edges
    :math:`r_{ij} = z_i z_j` (rank one), on them
    :math:`r_{ij} = z_i z_j / e^{-\tilde w_{ij}}`.

    Parameters
    ----------
    K : (p, p) array
    graph : PrunedGraph
    alpha : float, ``>= 0``
    out : (p, p) float64 C-contiguous array, optional
        Where to write (may be ``K``).

    Returns
    -------
    (p, p) array
    """
    if not isinstance(graph, PrunedGraph):
        raise ValueError(f"graph: expected a PrunedGraph, got {type(graph).__name__}")
    K = _check_K(K, graph.p)
    alpha = _scalar(alpha, "alpha", strict=False)
    out = _rate_out(K, out, graph.p)
    z, indptr, indices, d = _sparse_repulsion(graph)
    _nm_rate_kernel(np.ascontiguousarray(K), z, indptr, indices, d, alpha, 0.0, False,
                    np.empty(d.size), out)
    return out
