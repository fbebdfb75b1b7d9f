r"""Appendix A of the paper: the coefficient matrix C (Fig. 5, 6 and 7).

Appendix A writes a network as one linear system in the values of all its
nodes.  With the row vector of variables

.. math::

    \mathcal X = (X^0,\ 1,\ X^1, X^2, \dots, X^m)

(inputs, the constant 1 that carries the biases, then the unknown values
level by level) the system is

.. math:: \mathcal X\, \mathcal C^T = 0 \qquad \text{(Appendix A, after Eq. 15)}

and one block row of C per unknown level.  Conventions of this module
(binding for every function below):

- **Rows** of C are equations, one per unknown node; **columns** are
  variables, in the order of :math:`\mathcal X`.  The leading ``n_known``
  columns (``X^0``, and the constant column ``1`` when there are biases) are
  given; the rest form the square block ``C_u``, whose diagonal is -1 (the
  -E^i blocks of Fig. 5-6 and the -1 of Fig. 7).
- Batches are rows (DESIGN.md section 2): the unknowns solve
  ``X C_u^T = -[X^0, 1] C_k^T``.
- **Layered weights** follow the paper's Eq. (15), ``X^i = X^{i-1} W^{iT}``,
  so ``W^i`` has shape (n_i, n_{i-1}) (the transpose of the S-Eq. 1 convention
  used by :func:`refimpl.perceptron.mlp_to_graph`).
- **Nonlinear reading.**  Appendix A omits the activation (Eq. 15 is linear).
  With a hidden activation f the same matrix defines the network of Eq. (3):
  the coefficients in unknown columns multiply the *activated* values
  f(x_j), the -1 diagonal multiplies x_i itself, the known columns multiply
  X^0 and 1 as they are (:func:`coefficient_residual`).  For a layered C this
  is the MLP ``X^1 = X^0 W^{1T} + c^1``, ``X^i = f(X^{i-1}) W^{iT} + c^i``, and the
  last level is the output pre-activation Z of Sec. 3.3.

Functions: :func:`tree_coefficients` (Fig. 5), :func:`dag_coefficients`
(Fig. 6), :func:`graph_coefficients` (Fig. 7), :func:`solve_coefficients`,
:func:`coefficient_residual` and :func:`to_network` (C read as the
parameters ``K, W1, Wm`` of an :class:`~refimpl.model.NMNetwork`).  The
derivations and the two sign/notation errata of Fig. 5-6 are in
``proofs/appendix_a.md``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import solve_triangular

from .activations import get_activation
from .model import NMNetwork
from .propagate import check_input
from .validation import as_float_array

__all__ = [
    "CoefficientSystem",
    "tree_coefficients",
    "dag_coefficients",
    "graph_coefficients",
    "solve_coefficients",
    "coefficient_residual",
    "to_network",
]


@dataclass(frozen=True)
class CoefficientSystem:
    r"""The linear system :math:`\mathcal X \mathcal C^T = 0` of Appendix A.

    Attributes
    ----------
    C : (n, n_known + n) array
        The coefficient matrix; row r is the equation of the r-th unknown.
    structure : (n, n_known + n) bool array
        Which entries of C are coefficients of the network (edges, biases,
        the -1 diagonal), as opposed to structural zeros.  A weight that
        happens to be 0 is still an edge here.
    blocks : tuple of (name, start, stop)
        Column blocks in the order of :math:`\mathcal X`: ``"X0"``, ``"1"``
        (only when there are biases), then the unknown blocks (``"X1"`` ...
        ``"Xm"`` for a layered network, ``"X"`` and ``"Z"`` for a graph).
    n_known : int
        Number of given leading columns (X^0 and the constant 1).
    n_out : int
        The last ``n_out`` unknowns are the outputs Z (pre-activation).
    """

    C: np.ndarray
    structure: np.ndarray
    blocks: tuple
    n_known: int
    n_out: int

    @property
    def n_in(self) -> int:
        """Number of inputs (width of the ``X0`` block)."""
        return self.block("X0").stop

    @property
    def has_bias(self) -> bool:
        """True when the constant column ``1`` (the biases) is present."""
        return any(name == "1" for name, _, _ in self.blocks)

    @property
    def C_known(self) -> np.ndarray:
        """The columns of the given variables (X^0, 1)."""
        return self.C[:, :self.n_known]

    @property
    def C_unknown(self) -> np.ndarray:
        """The square block of the unknowns; diagonal -1."""
        return self.C[:, self.n_known:]

    def block(self, name) -> slice:
        """Column slice of the block called ``name``."""
        for b, start, stop in self.blocks:
            if b == name:
                return slice(start, stop)
        raise KeyError(f"no column block {name!r}; blocks are {[b for b, _, _ in self.blocks]}")

    def rows(self, name) -> slice:
        """Row slice of the equations of the unknown block ``name``."""
        s = self.block(name)
        if s.start < self.n_known:
            raise KeyError(f"block {name!r} is given, it has no equations")
        return slice(s.start - self.n_known, s.stop - self.n_known)


# ----------------------------------------------------------------------------
# Fig. 5 and Fig. 6: layered networks
# ----------------------------------------------------------------------------


def _check_layers(weights, biases, skips):
    weights = [as_float_array(W, f"weights[{i}]", (None, None)) for i, W in enumerate(weights)]
    if not weights:
        raise ValueError("weights: expected at least one matrix W^1")
    widths = [weights[0].shape[1]] + [W.shape[0] for W in weights]
    for i, W in enumerate(weights):
        if W.shape != (widths[i + 1], widths[i]) or 0 in W.shape:
            raise ValueError(f"weights[{i}]: expected shape (n_{i + 1}, n_{i}) = "
                             f"({widths[i + 1]}, {widths[i]}) (Eq. 15: X^i = X^(i-1) W^iT), "
                             f"got {W.shape}")
    m = len(weights)
    if biases is not None:
        if len(biases) != m:
            raise ValueError(f"biases: expected {m} vectors (one per level 1..m), "
                             f"got {len(biases)}")
        biases = [as_float_array(c, f"biases[{i}]", (widths[i + 1],)) for i, c in enumerate(biases)]
    out_skips = {}
    for key, V in dict(skips or {}).items():
        k, i = (int(v) for v in key)
        if not (0 <= k < i - 1 and i <= m):
            raise ValueError(f"skips: key {key}: expected (k, i) with 0 <= k < i - 1 and i <= {m} "
                             "(level k feeds level i past level i - 1)")
        out_skips[(k, i)] = as_float_array(V, f"skips[{key}]", (widths[i], widths[k]))
    return weights, biases, out_skips, widths


def _layered_system(weights, biases, skips):
    weights, biases, skips, widths = _check_layers(weights, biases, skips)
    m = len(weights)
    n0 = widths[0]
    has_bias = biases is not None
    n_known = n0 + int(has_bias)
    starts = np.concatenate([[0], np.cumsum(widths)])  # level l occupies starts[l]:starts[l+1]
    col = starts.copy()
    col[1:] += int(has_bias)  # unknown levels are shifted by the constant column
    n = int(starts[-1] - n0)
    C = np.zeros((n, n_known + n))
    S = np.zeros(C.shape, dtype=bool)

    def put(i, k, block, structure=True):  # block of equation level i, variable level k
        r = slice(starts[i] - n0, starts[i + 1] - n0)
        c = slice(col[k], col[k] + widths[k])
        C[r, c] = block
        S[r, c] = structure

    for i in range(1, m + 1):
        put(i, i - 1, weights[i - 1])  # Fig. 5: W^i in block column i-1
        E = np.eye(widths[i], dtype=bool)
        put(i, i, -1.0 * E, E)  # Fig. 5: -E^i on the block diagonal (Eq. 15)
        if has_bias:
            r = slice(starts[i] - n0, starts[i + 1] - n0)
            C[r, n0] = biases[i - 1]
            S[r, n0] = True
    for (k, i), V in skips.items():
        put(i, k, V)  # Fig. 6: skip weights in the lower triangle
    blocks = [("X0", 0, n0)] + ([("1", n0, n0 + 1)] if has_bias else [])
    blocks += [(f"X{l}", int(col[l]), int(col[l] + widths[l])) for l in range(1, m + 1)]
    return CoefficientSystem(C, S, tuple(blocks), n_known, widths[-1])


def tree_coefficients(weights, biases=None):
    r"""The coefficient matrix C of a tree-like (layered) network, Fig. 5.

    Implements Appendix A, Eq. (15) and Fig. 5 of the paper:

    .. math::

        X^i = X^{i-1} W^{iT} \ (i = 1..m)
        \iff \mathcal X \mathcal C^T = 0, \qquad
        \mathcal C = \begin{pmatrix}
        W^1 & -E^1 &       &        & \\
            & W^2  & -E^2  &        & \\
            &      & \ddots & \ddots & \\
            &      &       & W^m    & -E^m
        \end{pmatrix}

    with :math:`\mathcal X = (X^0, X^1, \dots, X^m)`.  Fig. 5 prints the last
    diagonal block as :math:`+E^m`; with it the last equation would read
    :math:`X^m = -X^{m-1} W^{mT}`, contradicting Eq. (15), so it is
    :math:`-E^m` (``proofs/appendix_a.md``).  The paper omits the biases
    "for brevity"; given, they become the constant column ``1`` after
    ``X0`` (:math:`X^i = X^{i-1} W^{iT} + 1 c^{iT}`).

    Parameters
    ----------
    weights : sequence of m arrays
        ``weights[i-1]`` = W^i, shape (n_i, n_{i-1}).
    biases : sequence of m arrays, optional
        ``biases[i-1]`` = c^i, shape (n_i,).

    Returns
    -------
    CoefficientSystem
        Unknown blocks ``"X1"`` ... ``"Xm"``; ``n_out = n_m``.
    """
    return _layered_system(weights, biases, None)


def dag_coefficients(weights, skips, biases=None):
    r"""The coefficient matrix C of a DAG with skip connections (ResNet-like), Fig. 6.

    Implements Appendix A, Fig. 6 of the paper: the tree of Fig. 5
    (:func:`tree_coefficients`) plus skip weights in the lower block
    triangle of C,

    .. math::

        X^i = X^{i-1} W^{iT} + \sum_{k < i-1} X^k V^{(i,k)T}, \qquad
        \mathcal C_{i,k} = V^{(i,k)} .

    Fig. 6 labels the skip blocks of every row ``V^1, V^2, ...`` by column
    only; the blocks of different rows differ (their shapes already do), so
    they carry both levels here, ``V^(i,k)`` (``proofs/appendix_a.md``).  The
    block of the unknowns stays lower triangular: the system is still solved
    level by level (asynchronously).

    Parameters
    ----------
    weights : sequence of m arrays
        ``weights[i-1]`` = W^i, shape (n_i, n_{i-1}).
    skips : mapping (k, i) -> array
        Skip weights from level k to level i, ``0 <= k < i - 1``, ``i <= m``,
        shape (n_i, n_k).
    biases : sequence of m arrays, optional

    Returns
    -------
    CoefficientSystem
    """
    return _layered_system(weights, biases, skips)


# ----------------------------------------------------------------------------
# Fig. 7: the general graph
# ----------------------------------------------------------------------------


def graph_coefficients(net, graph=None):
    r"""The coefficient matrix C of the general graph, Fig. 7 (with inputs and outputs).

    Implements Appendix B, Fig. 7 of the paper ("A key design choice ...
    input- and bias-related terms are assigned to the right-hand side"): the
    equation of node i is Eq. (3),

    .. math::

        w_{ii} + \sum_{j \ne i} w_{ji} f(x_j) + \sum_k w^1_{ki} x^0_k - x_i = 0,
        \qquad \mathcal C_{ij} = w_{ji}\ (j \ne i),\quad \mathcal C_{ii} = -1,

    so the node block of C is the transposed adjacency of the pruned graph
    with -1 on the diagonal.  Here the right-hand side is kept as columns,
    :math:`\mathcal X = (X^0, 1, X, Z)`, and the output equations
    :math:`Z = f(X) W_m^T` (Sec. 3.3) are appended as rows, so that the
    three figures share one form:

    .. math::

        \mathcal C = \begin{pmatrix}
        W_1 & b & A^T - I & 0 \\
        0   & 0 & W_m     & -I
        \end{pmatrix}.

    Parameters
    ----------
    net : NMNetwork
    graph : PrunedGraph, optional
        The pruned graph (its kept edges are the coefficients); default
        ``net.prune()``.  Use :func:`refimpl.graph.graph_from_mask` for an
        exact edge set.

    Returns
    -------
    CoefficientSystem
        Blocks ``"X0"``, ``"1"``, ``"X"`` (p nodes), ``"Z"`` (n_out outputs).
    """
    if graph is None:
        graph = net.prune()
    p, n0, n_out = net.p, net.n_in, net.n_out
    if graph.p != p:
        raise ValueError(f"graph: has {graph.p} nodes, the network has {p}")
    n_known = n0 + 1
    C = np.zeros((p + n_out, n_known + p + n_out))
    S = np.zeros(C.shape, dtype=bool)
    X, Z = slice(n_known, n_known + p), slice(n_known + p, n_known + p + n_out)
    C[:p, :n0] = net.W1  # Eq. (3): sum_k w^1_ki x^0_k
    S[:p, :n0] = True
    C[:p, n0] = graph.b  # Eq. (3): the bias w_ii, on the right-hand side
    S[:p, n0] = True
    C[:p, X] = graph.A.T.toarray()  # Fig. 7: C[i, j] = w_ji
    S[:p, X] = graph.mask().T
    C[:p, X][np.diag_indices(p)] = -1.0  # Fig. 7: -1 on the diagonal
    S[:p, X][np.diag_indices(p)] = True
    C[p:, X] = net.Wm  # Sec. 3.3: Z = f(X) Wm^T
    S[p:, X] = True
    C[p:, Z] = -np.eye(n_out)
    S[p:, Z] = np.eye(n_out, dtype=bool)
    blocks = (("X0", 0, n0), ("1", n0, n0 + 1), ("X", X.start, X.stop), ("Z", Z.start, Z.stop))
    return CoefficientSystem(C, S, blocks, n_known, n_out)


# ----------------------------------------------------------------------------
# solving, residual, conversion
# ----------------------------------------------------------------------------


def _known(system, X0):
    X0 = check_input(X0, system.n_in)
    if system.has_bias:
        return np.hstack([X0, np.ones((X0.shape[0], 1))])
    return X0


def solve_coefficients(system, X0):
    r"""Solve :math:`\mathcal X \mathcal C^T = 0` for the unknowns (linear networks).

    Implements the linear system of Appendix A (Eq. 15, Fig. 5-7) with the
    given columns moved to the right-hand side:

    .. math:: X\, \mathcal C_u^T = -[X^0, 1]\, \mathcal C_k^T .

    A lower-triangular :math:`\mathcal C_u` (the tree and the DAG, Fig. 5-6)
    is solved by forward substitution, level after level: the asynchronous
    computation of a layered network.  Any other :math:`\mathcal C_u` (a
    graph with cycles, Fig. 7) is solved at once by LU (numpy.linalg.solve):
    the synchronous computation.  This is the network with the identity
    activation; for a nonlinear f use :func:`refimpl.forward` on
    :func:`to_network` and check with :func:`coefficient_residual`.

    Parameters
    ----------
    system : CoefficientSystem
    X0 : (B, n0) or (n0,) array

    Returns
    -------
    (B, n) array
        The unknowns in column order (hidden levels, then outputs).

    Raises
    ------
    numpy.linalg.LinAlgError
        When :math:`\mathcal C_u` is singular.
    """
    known = _known(system, X0)
    Cu = system.C_unknown
    rhs = -(known @ system.C_known.T)  # Appendix A: given terms to the right-hand side
    if not np.any(np.triu(Cu, 1)):
        return solve_triangular(Cu, rhs.T, lower=True).T
    return np.linalg.solve(Cu, rhs.T).T


def coefficient_residual(system, X0, X, activation="identity"):
    r"""Residual of the system of C at given unknown values.

    Implements the system of Appendix A, read with a hidden activation f as
    Eq. (3) (module docstring): with :math:`\mathcal C_u = N - I`,

    .. math:: R = [X^0, 1]\, \mathcal C_k^T + f(X) N^T - X ,

    which is :math:`\mathcal X \mathcal C^T` for the identity activation.
    For a layered C the residual is zero exactly at the MLP's values; for
    the graph of Fig. 7 exactly at a solution of Eq. (3) (the columns of the
    outputs Z are not activated: no unknown reads them).

    Parameters
    ----------
    system : CoefficientSystem
    X0 : (B, n0) array
    X : (B, n) array
        Values of all unknowns in column order.
    activation : str
        Hidden activation f (identity by default: Appendix A's linear case).

    Returns
    -------
    (B, n) array
    """
    known = _known(system, X0)
    n = system.C.shape[0]
    X = as_float_array(np.atleast_2d(X), "X", (known.shape[0], n))
    Cu = system.C_unknown
    if not np.all(np.diag(Cu) == -1.0):
        raise ValueError("system: the diagonal of the unknown block must be -1 (Fig. 5-7)")
    N = Cu + np.eye(n)  # the coefficients that multiply f(x_j)
    f = get_activation(activation).f
    return known @ system.C_known.T + f(X) @ N.T - X


def to_network(system, *, activation="identity", output="identity"):
    r"""Read C as the parameters of a neural-module network (Appendix A, Eq. 3).

    Implements the correspondence of Appendix A-B between the coefficient
    matrix and the network of Sec. 3.1: the first ``n - n_out`` unknowns are
    the hidden nodes, the last ``n_out`` the outputs Z, and

    .. math::

        K = N_{HH}^T + \mathrm{diag}(c_H), \qquad
        W_1 = \mathcal C_{H, X^0}, \qquad W_m = N_{OH},

    where :math:`N = \mathcal C_u + I` and :math:`c` is the column of the
    constant 1 (the biases; K's diagonal holds them, DESIGN.md section 2).
    For a layered C (Fig. 5-6) the levels 1..m-1 become the hidden nodes, in
    level order, and K is strictly block upper triangular: the network's
    graph is a DAG whose modules are all singletons.

    The NM network has no input -> output edges and no output bias
    (:math:`Z = f(X) W_m^T`), and its outputs feed nothing; a C with such
    coefficients raises ValueError (e.g. a skip from X^0 to X^m).

    Parameters
    ----------
    system : CoefficientSystem
        With at least one hidden node and one output.
    activation, output : str
        f and g of the network.

    Returns
    -------
    net : NMNetwork
    mask : (p, p) bool array
        The edges of the network (``mask[j, i]``: edge j -> i, from
        ``system.structure``, zero weights included); pass it to
        :func:`refimpl.graph.graph_from_mask` to get exactly these edges.
    """
    n = system.C.shape[0]
    n_out = system.n_out
    p = n - n_out
    if p < 1 or n_out < 1:
        raise ValueError(f"system: needs at least one hidden node and one output, got "
                         f"{p} and {n_out}")
    nk = system.n_known
    N = system.C_unknown + np.eye(n)
    SN = system.structure[:, nk:] & ~np.eye(n, dtype=bool)
    H, O = slice(0, p), slice(p, n)
    if np.any(SN[H, O]) or np.any(SN[O, O]):
        raise ValueError("system: outputs feed other unknowns; the NM outputs feed nothing")
    if np.any(system.structure[O, :nk] & (system.C_known[O] != 0)):
        raise ValueError("system: an output has an input edge or a bias; NM outputs are "
                         "Z = f(X) Wm^T (Sec. 3.3)")
    K = N[H, H].T.copy()  # K[j, i] = w_ji = C[i, j]
    if system.has_bias:
        K[np.diag_indices(p)] = system.C[H, system.n_in]  # the diagonal of K is the bias
    W1 = system.C[H, system.block("X0")]
    Wm = N[O, H]
    mask = SN[H, H].T.copy()
    net = NMNetwork(K, W1, Wm, activation=activation, output=output)
    return net, mask
