r"""The OPTNET baseline of Table 1 (DESIGN.md sec. 10): a quadratic-program layer.

Amos & Kolter's OptNet layer maps its input to the solution of a QP

.. math::

    z^\star(x) = \arg\min_z \tfrac12 z^T Q z + q(x)^T z
    \quad\text{s.t.}\quad G z \le h

(equality constraints, optional in OptNet, are not used here).  The layer of
Table 1 (:class:`OptNetLayer`) has ``p`` QP variables and ``m`` inequalities,
with ``Q = L L^T + eps I``, ``q(x) = W_1 x + b_1``, learned ``G`` and
``h = G z_0 + s_0`` (``s_0 = exp(sigma) > 0``: ``z_0`` stays strictly feasible,
so the QP always has a solution, as in OptNet's experiments), followed by a
linear output layer ``Z = z W_m^T``.

:func:`qp_solve` is a batched primal-dual interior-point method (Mehrotra
predictor-corrector, as in qpth): every sample of the batch is solved at
once, one Cholesky factorization of the reduced KKT matrix
``Q + G^T diag(lambda / s) G`` per sample and iteration, shared by the
predictor and the corrector.  :func:`qp_solve_grad` differentiates the KKT
conditions at the solution (Amos & Kolter 2017, Eq. 7-8), reusing the
factorization at the solution, refined iteratively against the unreduced
system.

References
----------
B. Amos and J. Z. Kolter, "OptNet: differentiable optimization as a layer in
neural networks", ICML 2017 (Sec. 3, Eq. 6-8; its qpth solver).  S. Mehrotra,
"On the implementation of a primal-dual interior point method", SIAM J. Optim.
2 (1992).  J. Mattingley and S. Boyd, "CVXGEN", Optim. Eng. 13 (2012)
(the reduced KKT system).
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from ..activations import get_output
from ..model import output_loss
from ..solvers.result import SolveStatus
from ..validation import as_float_array, check_int, check_rows, check_scalar
from ._common import LayerConvergenceError, LayerModel, LayerTrainer

__all__ = ["QPSolution", "qp_solve", "qp_solve_full", "qp_solve_grad", "qp_backward",
           "OptNetLayer", "OptNetTrainer"]


@dataclass
class QPSolution:
    """A batched QP solution and what the backward needs (Amos & Kolter, Eq. 6-8).

    Attributes
    ----------
    z : (B, n) array
        Primal solutions.
    lam : (B, m) array
        Multipliers of ``G z <= h`` (>= 0).
    s : (B, m) array
        Slacks ``h - G z`` (> 0 in the interior-point iterates).
    chol : (B, n, n) array
        Lower Cholesky factors of ``Q + G^T diag(lam / s) G`` at the solution.
    iterations : int
        Interior-point iterations (the largest over the batch).
    residual : float
        The largest KKT residual ``max(||Q z + q + G^T lam||_inf,
        ||G z + s - h||_inf, mean(s * lam))`` over the batch.
    converged : bool
    status : SolveStatus
    """

    z: np.ndarray
    lam: np.ndarray
    s: np.ndarray
    chol: np.ndarray
    iterations: int
    residual: float
    converged: bool
    status: SolveStatus


def _check_qp(Q, q, G, h):
    Q = as_float_array(Q, "Q")
    if Q.ndim != 2 or Q.shape[0] != Q.shape[1]:
        raise ValueError(f"Q: expected a square (n, n) matrix, got shape {Q.shape}")
    n = Q.shape[0]
    if not np.allclose(Q, Q.T, rtol=1e-10, atol=1e-12 * (1 + np.abs(Q).max(initial=0))):
        raise ValueError("Q: must be symmetric")
    q = np.asarray(q)
    single = q.ndim == 1
    q = as_float_array(q[None] if single else q, "q", (None, n))
    G = as_float_array(G, "G")
    if G.ndim != 2 or G.shape[1] != n:
        raise ValueError(f"G: expected shape (m, {n}), got {G.shape}")
    h = as_float_array(h, "h", (G.shape[0],))
    return Q, q, G, h, single


def _factor(Q, G, d):
    """Lower Cholesky factors of ``Q + G^T diag(d_b) G`` for each sample b
    (the reduced KKT matrix of the Newton step); LinAlgError when rounding
    made one of them indefinite."""
    return np.linalg.cholesky(Q + np.matmul(G.T, d[:, :, None] * G))


@numba.njit(cache=True)
def _cho_solve_kernel(L, R, out):  # pragma: no cover - compiled
    """Forward then backward substitution with L (B, n, n) lower: out_b = (L_b L_b^T)^-1 r_b."""
    B, n = R.shape
    for b in range(B):
        for i in range(n):  # L y = r
            acc = R[b, i]
            for k in range(i):
                acc -= L[b, i, k] * out[b, k]
            out[b, i] = acc / L[b, i, i]
        for i in range(n - 1, -1, -1):  # L^T x = y
            acc = out[b, i]
            for k in range(i + 1, n):
                acc -= L[b, k, i] * out[b, k]
            out[b, i] = acc / L[b, i, i]


def _cho_solve(L, R):
    """Solve ``(L_b L_b^T) x_b = r_b`` for each sample (R: (B, n)) with the
    Cholesky factors L (B, n, n): two triangular solves (a numba kernel; a
    SciPy call per sample costs more than the arithmetic at these sizes)."""
    out = np.empty(R.shape)
    _cho_solve_kernel(np.ascontiguousarray(L), np.ascontiguousarray(R, dtype=np.float64), out)
    return out


def _newton_step(L, G, s, lam, rx, rp, rc):
    r"""The Newton step of the KKT system, reduced to the primal variables.

    .. math::

        \begin{bmatrix} Q & 0 & G^T \\ G & I & 0 \\ 0 & \Lambda & S \end{bmatrix}
        \begin{bmatrix} dz \\ ds \\ d\lambda \end{bmatrix}
        = -\begin{bmatrix} r_x \\ r_p \\ r_c \end{bmatrix}
        \;\Rightarrow\;
        (Q + G^T S^{-1}\Lambda G)\, dz = -r_x + G^T S^{-1}(r_c - \Lambda r_p)
    """
    dz = _cho_solve(L, -rx + ((rc - lam * rp) / s) @ G)
    ds = -rp - dz @ G.T
    dlam = (-rc - lam * ds) / s
    return dz, ds, dlam


def _refined_step(L, Q, G, s, lam, rx, rp, rc):
    """:func:`_newton_step` and, once ``lam / s`` spans more than ten orders of
    magnitude (near the solution), one round of iterative refinement against
    the unreduced system with the same factorization: there the reduced solve
    alone loses the dual residual's last digits (and the iteration stalls)."""
    dz, ds, dl = _newton_step(L, G, s, lam, rx, rp, rc)
    d = lam / s
    if d.max() <= 1e10 * d.min():  # well scaled: the reduced solve is accurate enough
        return dz, ds, dl
    e1 = rx + dz @ Q + dl @ G  # residuals of the three block rows
    e2 = rp + dz @ G.T + ds
    e3 = rc + lam * ds + s * dl
    cz, cs, cl = _newton_step(L, G, s, lam, e1, e2, e3)
    return dz + cz, ds + cs, dl + cl


def _max_step(v, dv):
    """Largest ``a <= 1`` with ``v + a dv >= 0``, per sample (rows)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(dv < 0, -v / dv, np.inf)
    return np.minimum(1.0, ratio.min(axis=1, initial=np.inf))


def qp_solve_full(Q, q, G, h, *, tol=1e-11, max_iter=50, throw=True) -> QPSolution:
    r"""Solve a batch of QPs ``min 1/2 z^T Q z + q_b^T z  s.t.  G z <= h``
    (OptNet's layer, Amos & Kolter 2017, Eq. 2) by a primal-dual
    interior-point method with Mehrotra's predictor-corrector.

    Each sample's iterate ``(z, s, lam)`` (slack ``s = h - G z >= 0``,
    multipliers ``lam >= 0``) takes Newton steps on the perturbed KKT conditions

    .. math::

        Q z + q + G^T \lambda = 0,\qquad G z + s - h = 0,\qquad
        s \odot \lambda = \sigma \mu \mathbf 1

    with the centring ``sigma = (mu_aff / mu)^3`` of the affine (predictor)
    step and 99 % of the step to the boundary.  The start is CVXOPT's: the
    solution of ``min 1/2 z^T Q z + q^T z + 1/2 ||h - G z||^2``, with slacks
    and multipliers shifted into the positive orthant.  A sample stops once
    its residuals and its duality measure ``mu = s^T lam / m`` are all
    ``<= tol * (1 + max(||q||_inf, ||h||_inf))``; converged samples are not
    touched again.

    Parameters
    ----------
    Q : (n, n) array
        Symmetric positive definite.
    q : (B, n) or (n,) array
        One linear term per sample.
    G : (m, n) array
    h : (m,) array
    tol : float
    max_iter : int
    throw : bool
        Raise :class:`~refimpl.baselines._common.LayerConvergenceError` (a
        ``ConvergenceError``) when some sample did not converge; else return
        the solution with its status.

    Returns
    -------
    QPSolution
        Batched even for a 1-D ``q`` (B = 1).
    """
    Q, q, G, h, _ = _check_qp(Q, q, G, h)
    tol = check_scalar(tol, "tol", minimum=0.0, strict=True)
    max_iter = check_int(max_iter, "max_iter", 1)
    B, n = q.shape
    m = G.shape[0]
    try:
        np.linalg.cholesky(Q)
    except np.linalg.LinAlgError:
        raise ValueError("Q: must be positive definite (a strictly convex QP)") from None
    # State arrays (rows = samples):
    #   z (B, n): primal iterate; s (B, m) > 0: slacks; lam (B, m) > 0: multipliers
    #   todo: samples still iterating
    if m == 0:  # unconstrained: Q z = -q
        L = np.broadcast_to(np.linalg.cholesky(Q), (B, n, n)).copy()
        z = _cho_solve(L, -q)
        e = np.zeros((B, 0))
        res = float(np.abs(z @ Q + q).max(initial=0.0))
        return QPSolution(z, e, e.copy(), L, 0, res, True, SolveStatus.CONVERGED)
    # Start (CVXOPT's initialization): (Q + G^T G) z = G^T h - q, r = h - G z.
    L0 = _factor(Q, G, np.ones((1, m)))
    z = _cho_solve(np.broadcast_to(L0, (B, n, n)), h @ G - q)
    r = h - z @ G.T
    shift_s = -r.min(axis=1)
    s = np.where((shift_s < 0)[:, None], r, r + (1.0 + shift_s)[:, None])
    shift_l = r.max(axis=1)
    lam = np.where((shift_l < 0)[:, None], -r, -r + (1.0 + shift_l)[:, None])
    scale = tol * (1.0 + np.maximum(np.abs(q).max(axis=1), np.abs(h).max()))
    iters = 0
    res = np.full(B, np.inf)
    status = SolveStatus.CONVERGED
    # an infeasible QP drives the iterates to inf: reported as NONFINITE below
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for it in range(max_iter + 1):
            rx = z @ Q + q + lam @ G
            rp = z @ G.T + s - h
            mu = (s * lam).mean(axis=1)
            res = np.maximum(np.maximum(np.abs(rx).max(axis=1), np.abs(rp).max(axis=1)), mu)
            if not np.all(np.isfinite(res)):
                status = SolveStatus.NONFINITE
                break
            todo = np.flatnonzero(res > scale)
            if todo.size == 0:
                break
            if it == max_iter:
                status = SolveStatus.MAX_ITERATIONS
                break
            iters = it + 1
            zt, st, lt = z[todo], s[todo], lam[todo]
            rxt, rpt, mut = rx[todo], rp[todo], mu[todo]
            try:
                L = _factor(Q, G, lt / st)
            except np.linalg.LinAlgError:  # rounding at extreme lam / s: no progress possible
                status = SolveStatus.NO_DECREASE
                break
            # predictor (affine scaling): r_c = s * lam
            dz, ds, dl = _refined_step(L, Q, G, st, lt, rxt, rpt, st * lt)
            a = np.minimum(_max_step(st, ds), _max_step(lt, dl))[:, None]
            mu_aff = ((st + a * ds) * (lt + a * dl)).mean(axis=1)
            sigma = (mu_aff / mut) ** 3
            # corrector: r_c = s * lam + ds_aff * dlam_aff - sigma mu (same factorization)
            rc = st * lt + ds * dl - (sigma * mut)[:, None]
            dz, ds, dl = _refined_step(L, Q, G, st, lt, rxt, rpt, rc)
            a = np.minimum(1.0, 0.99 * np.minimum(_max_step(st, ds), _max_step(lt, dl)))[:, None]
            z[todo] = zt + a * dz
            s[todo] = st + a * ds
            lam[todo] = lt + a * dl
    try:
        chol = _factor(Q, G, lam / s) if status != SolveStatus.NONFINITE else None
    except np.linalg.LinAlgError:
        chol, status = None, SolveStatus.NO_DECREASE
    residual = float(res.max(initial=0.0))
    converged = status == SolveStatus.CONVERGED
    sol = QPSolution(z, lam, s, chol, iters, residual, converged, status)
    if throw and not converged:
        raise LayerConvergenceError("QP layer (OPTNET interior point)", n, residual, iters,
                                    status, sol)
    return sol


def qp_solve(Q, q, G, h, **options):
    """The solutions ``z`` (B, n) of the batched QP of OptNet (Amos & Kolter
    2017, Eq. 2); a 1-D ``q`` gives a 1-D ``z``.  See :func:`qp_solve_full`
    (Table 1's OPTNET layer) for the method and the options."""
    _, _, _, _, single = _check_qp(Q, q, G, h)
    z = qp_solve_full(Q, q, G, h, **options).z
    return z[0] if single else z


def qp_backward(sol, Q, G, w, *, refine=20, rtol=1e-13):
    r"""Gradients of ``sum(w * z)`` by differentiating the KKT conditions at
    the solution (Amos & Kolter 2017, Eq. 7-8, inequality constraints).

    With ``y = diag(lam) d_lam`` (their Eq. 7 multiplied by ``diag(lam)``, which
    stays finite at active constraints where ``s -> 0``), each sample solves

    .. math::

        \begin{bmatrix} Q & G^T \\ \Lambda G & -S \end{bmatrix}
        \begin{bmatrix} d_z \\ y \end{bmatrix}
        = \begin{bmatrix} -w \\ 0 \end{bmatrix}
        \;\Rightarrow\;
        (Q + G^T S^{-1}\Lambda G)\, d_z = -w,\quad y = S^{-1}\Lambda G d_z

    with the factorization of the last KKT matrix (``sol.chol``), plus at
    most ``refine`` rounds of iterative refinement on the unreduced system
    (until a round changes ``d_z`` by less than ``rtol`` relative); then

    .. math::

        \nabla_Q = \tfrac12 \sum_b (d_z z^T + z d_z^T),\quad
        \nabla_q = d_z,\quad
        \nabla_G = \sum_b (y z^T + \lambda d_z^T),\quad
        \nabla_h = -\sum_b y

    (Eq. 8; ``Q``, ``G``, ``h`` are shared by the batch, so their gradients
    are summed over it).

    Returns
    -------
    dict
        ``"Q"`` (n, n), ``"q"`` (B, n), ``"G"`` (m, n), ``"h"`` (m,).
    """
    z, lam, s, L = sol.z, sol.lam, sol.s, sol.chol
    w = as_float_array(w, "w", z.shape)
    dz = _cho_solve(L, -w)
    y = lam * (dz @ G.T) / s
    # Iterative refinement: lam / s spans ~1e-13 .. 1e14 at a solution to 1e-12, and each
    # round with the reduced factorization gains about two digits (measured).
    for _ in range(refine):
        r1 = -w - dz @ Q - y @ G
        r2 = -(lam * (dz @ G.T) - s * y)
        ddz = _cho_solve(L, r1 + (r2 / s) @ G)
        dz += ddz
        y += (lam * (ddz @ G.T) - r2) / s
        if np.abs(ddz).max(initial=0.0) <= rtol * (1.0 + np.abs(dz).max(initial=0.0)):
            break
    dQ = 0.5 * (dz.T @ z + z.T @ dz)  # Eq. 8
    return {"Q": dQ, "q": dz, "G": y.T @ z + lam.T @ dz, "h": -y.sum(axis=0)}


def qp_solve_grad(Q, q, G, h, w, **options):
    """Gradients of ``sum(w * z*(Q, q, G, h))`` (OptNet's backward, Amos &
    Kolter 2017, Eq. 7-8): a dict with keys "Q", "q", "G", "h" shaped like
    the arguments (``"q"`` per sample).  Solves the QP with
    :func:`qp_solve_full` and differentiates it with :func:`qp_backward`."""
    Q, q_, G, h, single = _check_qp(Q, q, G, h)
    sol = qp_solve_full(Q, q_, G, h, **options)
    w = np.asarray(w, dtype=np.float64)
    w = as_float_array(w[None] if single and w.ndim == 1 else w, "w", sol.z.shape)
    g = qp_backward(sol, Q, G, w)
    if single:
        g["q"] = g["q"][0]
    return g


# --------------------------------------------------------------------------- the layer
@dataclass
class OptNetLayer(LayerModel):
    r"""Parameters of Table 1's OPTNET model: a QP layer of ``p`` variables
    and ``m`` inequalities (Amos & Kolter 2017, Eq. 2), then a linear output.

    .. math::

        q = W_1 x + b_1,\quad Q = L L^T + \epsilon I,\quad
        h = G z_0 + e^{\sigma},\quad
        z^\star = \arg\min_{G z \le h} \tfrac12 z^T Q z + q^T z,\quad
        Z = z^\star W_m^T,\ Y = g(Z)

    Attributes
    ----------
    W1 : (p, n_in); b1 : (p,); L : (p, p); G : (m, p); z0 : (p,); sigma : (m,);
    Wm : (n_out, p)
    eps : float
    output : str
    tol : float
        Interior-point tolerance (see :func:`qp_solve_full`).
    """

    W1: np.ndarray
    b1: np.ndarray
    L: np.ndarray
    G: np.ndarray
    z0: np.ndarray
    sigma: np.ndarray
    Wm: np.ndarray
    eps: float = 1e-4
    output: str = "softmax"
    tol: float = 1e-8

    NAMES = ("W1", "b1", "L", "G", "z0", "sigma", "Wm")

    def __post_init__(self):
        for name in self.NAMES:
            setattr(self, name, np.array(as_float_array(getattr(self, name), name)))
        p = self.L.shape[0]
        for name, shape in (("W1", (p, None)), ("b1", (p,)), ("L", (p, p)), ("G", (None, p)),
                            ("z0", (p,)), ("sigma", (self.G.shape[0],)),
                            ("Wm", (None, p))):
            as_float_array(getattr(self, name), name, shape)
        self.eps = check_scalar(self.eps, "eps", minimum=0.0, strict=True)
        get_output(self.output)

    @classmethod
    def random(cls, n_in, p, n_out, seed=0, *, m=None, scale=1.0, output="softmax",
               eps=1e-4, tol=1e-8):
        """A random layer: ``W1``, ``G``, ``Wm`` normal with standard deviation
        1 / sqrt(fan-in) (``W1``, ``Wm`` as :meth:`refimpl.NMNetwork.random`),
        ``L = scale * I``, ``b1 = z0 = 0``, ``sigma = 0`` (``h = 1``).
        ``m`` inequalities, default ``p`` (as OptNet's MNIST layer)."""
        n_in, p, n_out = (check_int(v, name, 1) for name, v in
                          (("n_in", n_in), ("p", p), ("n_out", n_out)))
        m = p if m is None else check_int(m, "m", 0)
        rng = np.random.default_rng(seed)
        return cls(W1=rng.standard_normal((p, n_in)) / np.sqrt(n_in), b1=np.zeros(p),
                   L=scale * np.eye(p), G=rng.standard_normal((m, p)) / np.sqrt(p),
                   z0=np.zeros(p), sigma=np.zeros(m),
                   Wm=rng.standard_normal((n_out, p)) / np.sqrt(p), eps=eps, output=output,
                   tol=tol)

    @property
    def p(self) -> int:
        return int(self.L.shape[0])

    def copy(self) -> "OptNetLayer":
        return OptNetLayer(**{n: getattr(self, n).copy() for n in self.NAMES}, eps=self.eps,
                           output=self.output, tol=self.tol)

    def qp(self, X0):
        """``(Q, q, G, h)`` of the layer for the inputs ``X0`` (B, n_in)."""
        Q = self.L @ self.L.T + self.eps * np.eye(self.p)
        q = X0 @ self.W1.T + self.b1
        h = self.G @ self.z0 + np.exp(self.sigma)
        return Q, q, self.G, h

    def forward(self, X0):
        """``(z*, Z, QPSolution)`` for a batch (rows)."""
        X0 = check_rows(X0, self.n_in)
        Q, q, G, h = self.qp(X0)
        sol = qp_solve_full(Q, q, G, h, tol=self.tol)
        return sol.z, sol.z @ self.Wm.T, sol

    def outputs(self, X0):
        """``Z = z*(X0) W_m^T`` (the output pre-activation)."""
        return self.forward(X0)[1]

    def loss_and_grad(self, X0, T):
        r"""Mean loss (:func:`refimpl.model.output_loss`) and its gradients.

        With ``G_Z = dL/dZ`` and ``w = G_Z W_m`` (``dL/dz``), :func:`qp_backward`
        gives the QP gradients; the chain rule through the parameterization:
        ``dW_m = G_Z^T z``, ``dW_1 = d_q^T X_0``, ``db_1 = 1^T d_q``,
        ``dL = 2 d_Q L``, ``dG = \nabla_G + \nabla_h z_0^T``,
        ``dz_0 = G^T \nabla_h``, ``d\sigma = \nabla_h \odot e^{\sigma}``.

        Returns ``(loss, grads, Z, iterations)``.
        """
        X0 = check_rows(X0, self.n_in)
        Q, q, G, h = self.qp(X0)
        sol = qp_solve_full(Q, q, G, h, tol=self.tol)
        z = sol.z
        Z = z @ self.Wm.T
        loss, GZ = output_loss(Z, T, self.output)
        g = qp_backward(sol, Q, G, GZ @ self.Wm)
        grads = {"W1": g["q"].T @ X0, "b1": g["q"].sum(axis=0), "L": 2.0 * g["Q"] @ self.L,
                 "G": g["G"] + np.outer(g["h"], self.z0), "z0": G.T @ g["h"],
                 "sigma": g["h"] * np.exp(self.sigma), "Wm": GZ.T @ z}
        return loss, grads, Z, sol.iterations


class OptNetTrainer(LayerTrainer):
    """Train Table 1's OPTNET model (:class:`OptNetLayer` with ``p =
    config.nodes`` QP variables and ``m`` inequalities, default p) with the
    semantics of :class:`refimpl.train.Trainer` (see
    :mod:`refimpl.baselines._common`; Table 3's settings).  ``L`` starts at
    the identity; the interior point's tolerance is ``config.atol``."""

    name = "OPTNET"

    def __init__(self, config, n_in, n_out, m=None):
        self._m = m
        super().__init__(config, n_in, n_out)

    def make_model(self, config, n_in, n_out, seed):
        if config.output != "softmax":
            get_output(config.output)
        return OptNetLayer.random(n_in, config.nodes, n_out, seed=seed, m=self._m,
                                  output=config.output,
                                  tol=config.atol)
