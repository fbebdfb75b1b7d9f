r"""An empirical study of the convergence bound of Thm. 3.3 (Eq. 14) for DPF-style training
with L2 or NM regularization (Eq. 9-11, R held constant).

A figure, not a proof: see ``proofs/thm3_3.md``.

References
----------
.. [1] T. Lin, S. U. Stich, L. Barba, D. Dmitriev, M. Jaggi, "Dynamic Model
   Pruning with Feedback", ICLR 2020.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize, nnls
from scipy.special import expit

from ..graph.prune import graph_from_mask, top_k_mask
from ..regularization import nm_repulsion
from ..validation import check_int
from ..validation import check_scalar

__all__ = ["Thm33Study", "thm33_study"]


@dataclass(frozen=True)
class Thm33Study:
    r"""Data of the Thm. 3.3 study (one entry per T in ``T``).

    Attributes
    ----------
    T : ndarray of int, shape (m,)
        Iteration counts; each T is a separate run with step ``c / sqrt(T)``.
    step : ndarray, shape (m,)
        The learning rate zeta = c / sqrt(T) of Thm. 3.3.
    grad_sq : ndarray, shape (m,)
        :math:`\frac{1}{T+1}\sum_{t=0}^{T} E\|\nabla f(w_t)\|^2` at the dense
        iterates, the left-hand side of the proof (Appendix L); E is the mean
        over ``n_repeats`` independent mini-batch streams.
    grad_sq_se : ndarray, shape (m,)
        Standard error of ``grad_sq`` over the repeats.
    grad_sq_pruned : ndarray, shape (m,)
        The same average of :math:`\|m_t \odot \nabla f(\tilde w_t)\|^2`, the
        gradient of the pruned model over the kept coordinates (the
        statement's "selected edges u").
    prune_err_sq : ndarray, shape (m,)
        :math:`\frac{1}{T+1}\sum_t E\|w_t - \tilde w_t\|^2`.
    prune_err_sq_max : ndarray, shape (m,)
        :math:`\max_{1 \le t \le T} E\|w_t - \tilde w_t\|^2` (Eq. 23
        claims it is below ``prune_err0``).
    fit : ndarray, shape (m,)
        The fitted shape ``C_rate G sqrt(L Delta / T) + floor``.
    bound : ndarray, shape (m,)
        The bound the argument proves, with the measured pruning error:
        :math:`2\Delta/(\zeta(T+1)) + L\zeta G^2 + L^2 \cdot`
        ``prune_err_sq``.
    bound_paper : ndarray, shape (m,)
        The last line of the paper's proof, which replaces the averaged pruning
        error by :math:`\|w_0 - \tilde w_0\|^2` through Eq. (23).
    L, G, G0, f0, f_star : float
        Smoothness constant of f, :math:`G = \sqrt{\max_t E\|g_t\|^2}` over all
        runs, :math:`G_0 = \sqrt{E\|g_0\|^2}`, f(w0), and min f.
    prune_err0 : float
        :math:`\|w_0 - \tilde w_0\|^2`.
    c : float
        :math:`\sqrt{(f(w_0) - f^*)/(L G_0^2)}` with :math:`G_0^2 =
        E\|g_0\|^2` (G is not known before the run; see ``thm33_study``).
    C_rate : float
        Fitted constant of :math:`G\sqrt{L\Delta/T}`; the argument gives at
        most :math:`2 G_0/G + G/G_0` (3 when G = G_0).
    floor : float
        Fitted T-independent term.
    C_prune : float
        ``floor / (L^2 prune_err0)``, the fitted constant of the paper's second
        term (inf when ``prune_err0`` is 0 and ``floor`` > 0).
    fit_rel_err : float
        Largest relative deviation ``|fit / grad_sq - 1|``.
    regularizer : str
        ``"l2"`` or ``"nm"`` (see ``thm33_study``).
    r : ndarray, shape (d,)
        The repulsion of each weight in the penalty
        :math:`\frac{\mu}{2}\sum_j r_j w_j^2`: all 1 for L2, Eq. (10)'s
        :math:`r_j = z_j z_{out} e^{\tilde w_j}` of the initial pruned graph for NM.
    w0 : ndarray, shape (d,)
        The initial weights.
    """

    T: np.ndarray
    step: np.ndarray
    grad_sq: np.ndarray
    grad_sq_se: np.ndarray
    grad_sq_pruned: np.ndarray
    prune_err_sq: np.ndarray
    prune_err_sq_max: np.ndarray
    fit: np.ndarray
    bound: np.ndarray
    bound_paper: np.ndarray
    L: float
    G: float
    G0: float
    f0: float
    f_star: float
    prune_err0: float
    c: float
    C_rate: float
    floor: float
    C_prune: float
    fit_rel_err: float
    regularizer: str = "l2"
    r: np.ndarray = None
    w0: np.ndarray = None


class _Logistic:
    r"""The smooth objective of the study: regularized logistic regression.

    .. math::

        f(w) = J(w) + \frac{\mu}{2}\sum_j r_j w_j^2, \qquad
        J(w) = \frac{1}{n}\sum_i \log(1 + e^{x_i^T w}) - y_i x_i^T w ,

    with a constant repulsion ``r`` (all 1: L2).  ``J`` is
    :math:`\|X\|_2^2/(4n)`-smooth, so ``f`` is L-smooth with
    :math:`L = \lambda_{\max}(X^T X)/(4n) + \mu \max_j r_j`.  Every method takes
    a batch of weight vectors, shape (R, d), one row per independent run.
    """

    def __init__(self, X, y, mu, r):
        self.X, self.y, self.mu, self.r = X, y, mu, r
        self.n = X.shape[0]
        self.x_sq = np.einsum("ij,ij->i", X, X)
        self.L_J = np.linalg.eigvalsh(X.T @ X)[-1] / (4.0 * self.n)
        self.L = self.L_J + mu * float(r.max())

    def value(self, W):
        S = W @ self.X.T
        data = np.mean(np.logaddexp(0.0, S) - self.y * S, axis=-1)
        return data + 0.5 * self.mu * np.sum(self.r * W * W, axis=-1)

    def grad_J(self, W):
        return (expit(W @ self.X.T) - self.y) @ self.X / self.n

    def grad(self, W):
        return self.grad_J(W) + self.mu * self.r * W

    def step_second_moment(self, Wp, V, batch):
        """Exact E||g||^2 over the mini-batch draw for the step direction
        g = (1/b) sum_{i in batch} grad J_i(Wp) + mu r * V, batch drawn uniformly
        with replacement: ||E g||^2 + (E||h_i||^2 - ||E g||^2) / b."""
        S = Wp @ self.X.T
        res = expit(S) - self.y
        RV = self.r * V
        mean_g = res @ self.X / self.n + self.mu * RV
        mean_sq = np.sum(mean_g * mean_g, axis=-1)
        h_sq = (np.mean(res * res * self.x_sq, axis=-1)
                + 2.0 * self.mu * np.mean(res * (RV @ self.X.T), axis=-1)
                + self.mu**2 * np.sum(RV * RV, axis=-1))
        return mean_sq + (h_sq - mean_sq) / batch

    def minimum(self):
        d = self.X.shape[1]

        def hess(w):
            s = expit(self.X @ w)
            return (self.X.T * (s * (1.0 - s))) @ self.X / self.n + self.mu * np.diag(self.r)

        res = minimize(lambda w: self.value(w[None])[0], np.zeros(d),
                       jac=lambda w: self.grad(w[None])[0], hess=hess,
                       method="trust-exact", options={"gtol": 1e-12})
        return float(res.fun)


def _top_k_mask(W, k):
    """Magnitude pruning of each row to its k largest |w| (Alg. 2 line 13; ties keep the
    smaller index), with the pruning's own top-k."""
    return top_k_mask(np.abs(W), k)[0]


def _nm_repulsion_of_weights(w, keep):
    r"""Eq. (9)-(10) for the logistic model as a graph: d input nodes and one
    output node, edge j -> out of weight ``w[j]``, kept where ``keep``.

    Returns ``r[j] = R[j, out]`` from :func:`refimpl.regularization.nm_repulsion`
    (the graph is a DAG, so every module is a singleton, z = 1, and
    :math:`r_j = e^{|w_j| / \max_{kept} |w|}` on kept edges, 1 on pruned ones).
    """
    d = w.shape[0]
    K = np.zeros((d + 1, d + 1))
    K[:d, d] = w
    M = np.zeros((d + 1, d + 1), dtype=bool)
    M[:d, d] = keep
    return nm_repulsion(graph_from_mask(K, M)).R[:d, d].copy()


def thm33_study(T_values=(25, 50, 100, 200, 400, 800, 1600, 3200), seed=0, *,
                n_samples=256, n_features=20, k=10, teacher_support=10,
                batch_size=16, reg=1e-2, init_scale=1.0, n_repeats=16,
                decay="dense", regularizer="l2"):
    r"""Empirical study of the convergence bound of Thm. 3.3 (Eq. 14).

    Implements the setting of Thm. 3.3 of the paper on a smooth objective:
    DPF training (Lin et al., 2020) of regularized logistic regression
    :math:`f = J + \frac{\mu}{2}\sum_j r_j w_j^2` (see ``_Logistic``) with
    top-k magnitude pruning; L2 (r = 1) or NM regularization (r from Eq. (10)).
    For each T a separate run of T steps with the theorem's learning rate
    :math:`\zeta = c/\sqrt{T}` is made:

    .. math::

        \tilde w_t = m_t \odot w_t, \quad m_t = \text{top-}k(|w_t|), \qquad
        w_{t+1} = w_t - \zeta\,\big(\hat\nabla J(\tilde w_t) + \mu\, r \odot v_t\big),

    with :math:`\hat\nabla J` a mini-batch gradient evaluated at the pruned
    weights and applied to the dense weights, and :math:`v_t = w_t`
    (``decay="dense"``: the shrinkage acts on the dense weights, as the update
    of Thm. 3.1 and Alg. 2 apply it) or :math:`v_t = \tilde w_t`
    (``decay="pruned"``: plain DPF on f).  The measured quantity is the left
    side of the proof, and the argument (``proofs/thm3_3.md``) proves

    .. math::

        \frac{1}{T+1}\sum_{t=0}^{T} E\|\nabla f(w_t)\|^2 \le
        \frac{2(f(w_0) - f^*)}{\zeta (T+1)} + L\zeta G^2
        + \frac{L^2}{T+1}\sum_{t=0}^{T} E\|w_t - \tilde w_t\|^2 ,

    which is ``bound``; Eq. (14)'s shape
    :math:`O(\sqrt{L\Delta/T}\,G + L^2\|w_0 - \tilde w_0\|^2)` is fitted to
    the measurements as ``C_rate G sqrt(L Delta / T) + floor`` by non-negative
    least squares on relative residuals.

    Documented choices (the paper is silent): G is the smallest constant that
    makes the assumption :math:`E\|g_t\|^2 \le G^2` true on the observed
    trajectories (``max_t`` of the exact mini-batch second moment averaged over
    the repeats, over all runs); the step constant c uses
    :math:`G_0^2 = E\|g_0\|^2` because G is unknown before the run (the
    inequality above holds for any zeta).  ``E`` is the mean over
    ``n_repeats`` mini-batch streams from a fixed data set and a fixed w0.

    Parameters
    ----------
    T_values : sequence of int
        Iteration counts, each >= 1.
    seed : int
        Seed; ``np.random.SeedSequence(seed)`` is spawned into one generator
        for the data and w0 and one independent generator per T.
    n_samples, n_features : int
        Data size; X ~ N(0, 1), labels from a logistic teacher.
    k : int
        Weights kept by pruning (1 <= k <= n_features).
    teacher_support : int
        Nonzero coefficients of the teacher (the first ones), 0..n_features.
    batch_size : int
        Mini-batch size (drawn with replacement).
    reg : float
        Regularization coefficient mu (> 0).
    init_scale : float
        w0 ~ init_scale * N(0, I) (>= 0).
    n_repeats : int
        Independent mini-batch streams per T (the expectation).
    decay : {"dense", "pruned"}
        Where the shrinkage term mu r v_t is evaluated (see above).
    regularizer : {"l2", "nm"}
        ``"l2"``: r = 1.  ``"nm"``: NM regularization (Eq. 11) with the
        repulsion of Eq. (9)-(10) computed by
        :func:`refimpl.regularization.nm_repulsion` for the initial pruned
        graph :math:`\tilde{\mathcal G}_0` (the logistic model as a graph of
        d input nodes and one output node, the top-k edges of w0 kept) and held
        constant, as Thm. 3.1 (a stop-gradient) and Thm. 3.2 (a fixed r) treat
        it.  With R fixed, f is L-smooth, as Thm. 3.3 assumes; refreshing R
        from every step's pruned graph (as Alg. 2 does) makes the objective
        change with t and jump when the mask changes, which the theorem's
        assumptions do not cover.

    Returns
    -------
    Thm33Study
    """
    T_arr = np.array([check_int(t, "T_values entry", 1) for t in T_values], dtype=np.int64)
    if T_arr.size < 2:
        raise ValueError("T_values needs at least two entries for the fit")
    n = check_int(n_samples, "n_samples", 2)
    d = check_int(n_features, "n_features", 1)
    k = check_int(k, "k", 1)
    if k > d:
        raise ValueError(f"k must be <= n_features = {d}, got {k}")
    support = check_int(teacher_support, "teacher_support")
    if support > d:
        raise ValueError(f"teacher_support must be <= n_features = {d}")
    b = check_int(batch_size, "batch_size", 1)
    R = check_int(n_repeats, "n_repeats", 2)
    mu = check_scalar(reg, "reg", minimum=0.0, strict=True)
    init_scale = float(init_scale)
    if not np.isfinite(init_scale) or init_scale < 0.0:
        raise ValueError(f"init_scale must be finite and >= 0, got {init_scale}")
    if decay not in ("dense", "pruned"):
        raise ValueError(f"decay must be 'dense' or 'pruned', got {decay!r}")
    if regularizer not in ("l2", "nm"):
        raise ValueError(f"regularizer must be 'l2' or 'nm', got {regularizer!r}")

    seeds = np.random.SeedSequence(seed).spawn(T_arr.size + 1)
    rng = np.random.default_rng(seeds[0])
    X = rng.standard_normal((n, d))
    w_teacher = np.zeros(d)
    w_teacher[:support] = rng.standard_normal(support) * 2.0 / np.sqrt(max(support, 1))
    y = (rng.random(n) < expit(X @ w_teacher)).astype(np.float64)
    w0 = init_scale * rng.standard_normal(d)

    W0 = w0[None]
    m0 = _top_k_mask(W0, k)
    if regularizer == "nm":  # Eq. (9)-(10) of G~_0, held constant
        r = _nm_repulsion_of_weights(w0, m0[0])
    else:
        r = np.ones(d)
    obj = _Logistic(X, y, mu, r)
    f_star = obj.minimum()
    f0 = float(obj.value(w0[None])[0])
    delta_f = max(f0 - f_star, 0.0)
    prune_err0 = float(np.sum((W0 - W0 * m0) ** 2))
    V0 = W0 if decay == "dense" else W0 * m0
    G0_sq = float(obj.step_second_moment(W0 * m0, V0, b)[0])
    c = np.sqrt(delta_f / (obj.L * G0_sq)) if G0_sq > 0 else 1.0

    m = T_arr.size
    grad_sq = np.empty(m)
    grad_sq_se = np.empty(m)
    grad_sq_pruned = np.empty(m)
    prune_err_sq = np.empty(m)
    prune_err_sq_max = np.empty(m)
    g_sq_max = G0_sq
    steps = c / np.sqrt(T_arr.astype(np.float64))  # Thm. 3.3: zeta = c / sqrt(T)

    for j, T in enumerate(T_arr):
        run_rng = np.random.default_rng(seeds[j + 1])
        zeta = steps[j]
        # State of the R independent runs (rows):
        #   W        dense weights w_t
        #   sum_*    running sums over t = 0..T of the recorded squared norms
        W = np.repeat(W0, R, axis=0)
        sum_g = np.zeros(R)
        sum_gp = np.zeros(R)
        sum_e = np.zeros(R)
        e_max = 0.0
        for t in range(T + 1):
            mask = _top_k_mask(W, k)
            Wp = W * mask  # pruned weights w~_t
            V = W if decay == "dense" else Wp
            g = obj.grad(W)
            sum_g += np.sum(g * g, axis=1)
            gp = obj.grad(Wp) * mask
            sum_gp += np.sum(gp * gp, axis=1)
            e = np.sum((W - Wp) ** 2, axis=1)
            sum_e += e
            if t > 0:  # Eq. (23) is a claim about t >= 1
                e_max = max(e_max, float(e.mean()))
            g_sq_max = max(g_sq_max, float(obj.step_second_moment(Wp, V, b).mean()))
            if t == T:
                break
            idx = run_rng.integers(0, n, size=(R, b))
            Xb = X[idx]  # (R, b, d)
            res = expit(np.einsum("rbd,rd->rb", Xb, Wp)) - y[idx]
            step_dir = np.einsum("rb,rbd->rd", res, Xb) / b + mu * r * V
            W = W - zeta * step_dir  # DPF: gradient at w~_t applied to w_t
        per_run = sum_g / (T + 1)
        grad_sq[j] = per_run.mean()
        grad_sq_se[j] = per_run.std(ddof=1) / np.sqrt(R)
        grad_sq_pruned[j] = np.mean(sum_gp) / (T + 1)
        prune_err_sq[j] = np.mean(sum_e) / (T + 1)
        prune_err_sq_max[j] = e_max

    L = obj.L
    G = float(np.sqrt(g_sq_max))
    Tf = T_arr.astype(np.float64)
    # The inequality the argument proves (proofs/thm3_3.md), and the paper's last line.
    head = 2.0 * delta_f / (steps * (Tf + 1.0)) + L * steps * G**2
    bound = head + L**2 * prune_err_sq  # Thm. 3.3 proof, first line (factor 2)
    bound_paper = head + L**2 * prune_err0  # Thm. 3.3 proof, last line (uses Eq. 23)

    # Fit of the Eq. (14) shape: grad_sq ~ C_rate G sqrt(L Delta / T) + floor,
    # non-negative least squares on relative residuals.
    scale = G * np.sqrt(L * delta_f)
    basis = np.column_stack([scale / np.sqrt(Tf), np.ones(m)])
    (C_rate, floor), _ = nnls(basis / grad_sq[:, None], np.ones(m))
    fit = basis @ np.array([C_rate, floor])  # Eq. (14) shape, fitted constants
    with np.errstate(divide="ignore", invalid="ignore"):
        C_prune = float(np.divide(floor, L**2 * prune_err0)) if floor > 0 else 0.0

    return Thm33Study(
        T=T_arr, step=steps, grad_sq=grad_sq, grad_sq_se=grad_sq_se,
        grad_sq_pruned=grad_sq_pruned, prune_err_sq=prune_err_sq,
        prune_err_sq_max=prune_err_sq_max, fit=fit, bound=bound,
        bound_paper=bound_paper, L=float(L), G=G, G0=float(np.sqrt(G0_sq)),
        f0=f0, f_star=f_star,
        prune_err0=prune_err0, c=float(c), C_rate=float(C_rate),
        floor=float(floor), C_prune=C_prune,
        fit_rel_err=float(np.max(np.abs(fit / grad_sq - 1.0))),
        regularizer=regularizer, r=r, w0=w0,
    )
