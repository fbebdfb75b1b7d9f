"""Pruning the complete graph G to G~ (Sec. 3.2; Alg. 2 lines 5 and 13).

The hidden units form a complete directed graph with dense adjacency ``K``
(``K[j, i]`` = weight of edge n_j -> n_i; the diagonal holds the biases and is
never an edge).  Pruning keeps the off-diagonal entries with ``|K| >= gamma``
or the ``k`` largest magnitudes; the kept entries form the sparse matrix ``A``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse as sp

from ..validation import as_float_array
from .schedule import Schedule
from .tarjan import strongly_connected_components

__all__ = ["PrunedGraph", "prune", "prune_top_k_incremental", "graph_from_mask",
           "check_square_finite", "top_k_mask"]


def check_square_finite(K, name="K"):
    """Return ``K`` as a float64 array after checking it is square and finite:
    the (p, p) weight matrix of the complete graph that Sec. 3.5 prunes
    (DESIGN.md sec. 2)."""
    K = np.asarray(K)
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"{name}: expected a square (p, p) matrix, got shape {K.shape}")
    return as_float_array(K, name)


@dataclass(frozen=True)
class PrunedGraph:
    """The pruned graph G~ of Sec. 3.2 and its neural modules.

    Attributes
    ----------
    A : scipy.sparse.csr_matrix, shape (p, p)
        Kept off-diagonal entries, ``A[j, i]`` = w_ji (edge j -> i); canonical
        CSR (row j lists the successors of node j); never a diagonal entry.
        Kept entries that equal zero are stored explicitly: they are edges.
    b : (p,) array
        The biases ``diag(K)``.
    gamma : float
        The threshold: every kept entry has ``|K| >= gamma`` and every
        dropped off-diagonal entry that was eligible (all of them unless
        ``prune(..., eligible=)``) has ``|K| <= gamma`` (Alg. 2 line 13);
        NaN for a graph from :func:`graph_from_mask` without one.
    labels : (p,) int32
        Module (strongly connected component) of each node, numbered in
        schedule order (see :class:`Schedule`).
    schedule : Schedule
        The levels of the condensation.
    """

    A: sp.csr_matrix
    b: np.ndarray
    gamma: float
    labels: np.ndarray
    schedule: Schedule

    @property
    def p(self) -> int:
        return int(self.A.shape[0])

    @property
    def n_edges(self) -> int:
        return int(self.A.nnz)

    @property
    def n_modules(self) -> int:
        return self.schedule.n_modules

    def mask(self) -> np.ndarray:
        """Dense (p, p) boolean mask of the kept edges."""
        M = np.zeros(self.A.shape, dtype=bool)
        rows = np.repeat(np.arange(self.p), np.diff(self.A.indptr))
        M[rows, self.A.indices] = True
        return M

    def with_weights(self, K) -> "PrunedGraph":
        """The same structure (mask, modules, schedule) with weights from ``K``.

        Used to evaluate the pruned model at perturbed weights with the mask
        held fixed (finite differences, Eq. 6).
        """
        K = check_square_finite(K)
        if K.shape != self.A.shape:
            raise ValueError(f"K: expected shape {self.A.shape}, got {K.shape}")
        rows = np.repeat(np.arange(self.p), np.diff(self.A.indptr))
        A = sp.csr_matrix(
            (K[rows, self.A.indices].copy(), self.A.indices, self.A.indptr), shape=self.A.shape
        )
        return PrunedGraph(A, np.diag(K).copy(), self.gamma, self.labels, self.schedule)


def graph_from_mask(K, mask, gamma=float("nan")):
    """The pruned graph with a given edge set: ``A[j, i] = K[j, i]`` where
    ``mask[j, i]`` (off-diagonal; the diagonal of ``mask`` must be False).

    Holds the structure fixed whatever the weights, e.g. to check Eq. (6)
    for an entry that the threshold would drop (the edge is present with
    weight ``K[j, i]``, possibly 0).
    """
    K = check_square_finite(K)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != K.shape:
        raise ValueError(f"mask: expected shape {K.shape}, got {mask.shape}")
    if np.any(np.diag(mask)):
        raise ValueError("mask: the diagonal holds biases and cannot be an edge")
    return _build(K, np.flatnonzero(mask.ravel()), gamma)


def _build(K, keep, gamma, values=None):
    """PrunedGraph of the entries ``keep`` (sorted flat indices) of K; ``values``:
    ``K.ravel()[keep]`` when the caller has them (the candidates' values: no gather of
    scattered entries from the p x p array)."""
    p = K.shape[0]
    rows, cols = np.divmod(keep, p)
    counts = np.bincount(rows, minlength=p)
    indptr = np.zeros(p + 1, dtype=np.int32 if keep.size < 2**31 else np.int64)
    np.cumsum(counts, out=indptr[1:])
    data = K.ravel()[keep] if values is None else values
    A = sp.csr_matrix((data, cols.astype(indptr.dtype), indptr), shape=(p, p))
    # keep is sorted row-major, so A is canonical by construction.
    A.has_canonical_format = True
    n_comp, scc_labels = strongly_connected_components(A.indptr, A.indices, check=False)
    schedule = Schedule.from_csr(A, n_components=n_comp, scc_labels=scc_labels)
    return PrunedGraph(A, np.diag(K).copy(), float(gamma), schedule.labels, schedule)


def top_k_mask(values, k):
    """The k largest entries of each row of ``values``, and the k-th largest value.

    Implements the top-k selection of Alg. 2 lines 5 and 13 (gamma = the k-th
    largest magnitude), the one used by pruning, the DAG baseline and the Thm. 3.3
    study.  Ties at the k-th largest value are broken deterministically: the entries
    with the smallest index are kept.

    Parameters
    ----------
    values : (n,) or (m, n) array
        Rows to select from (a 1-D array is one row); an entry that must never be
        kept can be given a value below every candidate (pruning uses -1).
    k : int
        Entries kept per row, ``0 <= k <= n``.

    Returns
    -------
    mask : bool ndarray, the shape of ``values``
    gamma : float ndarray, shape (m,) (a float for 1-D ``values``)
        The k-th largest value of each row (inf for ``k = 0``).
    """
    values = np.asarray(values)
    v = values.reshape(1, -1) if values.ndim == 1 else values
    n = v.shape[1]
    if not 0 <= k <= n:
        raise ValueError(f"k: must lie in [0, {n}], got {k}")
    if k == 0:
        mask, gamma = np.zeros(v.shape, dtype=bool), np.full(v.shape[0], np.inf)
    else:
        # (the same rule, on candidates: _compact_top; test_candidate_top_k_is_top_k_mask)
        gamma = np.partition(v, n - k, axis=1)[:, n - k]  # Alg. 2 line 13: k-th largest
        mask = v > gamma[:, None]
        ties = v == gamma[:, None]
        room = k - mask.sum(axis=1)
        if np.any(ties.sum(axis=1) > room):  # keep the first ``room`` ties of each row
            ties &= np.cumsum(ties, axis=1) <= room[:, None]
        mask |= ties
    if values.ndim == 1:
        return mask.reshape(values.shape), float(gamma[0])
    return mask, gamma


def prune(K, k=None, gamma=None, *, eligible=None):
    """Prune the complete graph to G~ and find its neural modules.

    Implements Sec. 3.2 and Alg. 2 lines 5 and 13 of the paper: keep the
    off-diagonal entries of ``K`` with ``|K[j, i]| >= gamma`` (fixed threshold)
    or the ``k`` largest magnitudes (then ``gamma`` is the k-th largest
    ``|K|``).  Then find the modules (Tarjan, Sec. 3.5-3.6) and their levels
    (Alg. 1 lines 9-11).

    Parameters
    ----------
    K : (p, p) array
        Dense adjacency, ``K[j, i]`` = w_ji; the diagonal holds the biases.
    k : int, optional
        Number of edges to keep, in ``[0, p (p - 1)]``.  Ties at the k-th
        largest magnitude are broken deterministically: among equal
        magnitudes the entries with the smallest row-major index (j, i) are
        kept.  ``k = 0`` keeps nothing (``gamma = inf``).
    gamma : float, optional
        Keep every off-diagonal entry with ``|K| >= gamma``; ``gamma >= 0``.
        ``gamma = 0`` keeps all p (p - 1) entries, zeros included.

    eligible : (p, p) bool array, optional
        Only these off-diagonal entries may be kept (e.g. the strict upper triangle
        for the DAG baseline of Table 1); default all.

    Exactly one of ``k`` and ``gamma`` must be given.

    Returns
    -------
    PrunedGraph
        ``.A`` (CSR, ``A[j, i]`` = edge j -> i), ``.b``, ``.gamma``,
        ``.labels``, ``.schedule``.
    """
    K = check_square_finite(K)
    p = K.shape[0]
    if (k is None) == (gamma is None):
        raise ValueError("prune: give exactly one of k and gamma")
    absK = np.abs(K)
    np.fill_diagonal(absK, -1.0)  # the diagonal is the bias, never an edge
    n_candidates = p * (p - 1)
    if eligible is not None:
        eligible = np.asarray(eligible, dtype=bool)
        if eligible.shape != K.shape:
            raise ValueError(f"eligible: expected shape {K.shape}, got {eligible.shape}")
        absK[~eligible] = -1.0  # never kept
        n_candidates = int(np.count_nonzero(eligible)) - int(np.count_nonzero(np.diag(eligible)))
    if k is not None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise ValueError(f"k: expected an integer, got {k!r}")
        k = int(k)
        if not 0 <= k <= p * (p - 1):
            raise ValueError(f"k: must lie in [0, p(p-1)] = [0, {p * (p - 1)}], got {k}")
        if k > n_candidates:
            raise ValueError(f"k: at most {n_candidates} eligible entries, got {k}")
        mask, gamma = top_k_mask(absK.ravel(), k)
        keep = np.flatnonzero(mask)
    else:
        gamma = float(gamma)
        if not np.isfinite(gamma) and gamma != np.inf or gamma < 0:
            raise ValueError(f"gamma: must be a number >= 0, got {gamma}")
        keep = np.flatnonzero(absK.ravel() >= gamma)
    return _build(K, keep, gamma)


# ----------------------------------------------------------------------------
# incremental top-k (training: gamma moves little from one batch to the next)
# ----------------------------------------------------------------------------

#: The incremental top-k partitions the entries with ``|K| > INCREMENTAL_FRACTION *
#: gamma_prev`` (the first scan, done by the trainer's update pass), at most
#: ``max(INCREMENTAL_CAP k, k + 1024)`` of them.  Every entry above the threshold costs
#: the pass and the selection, and in training gamma seldom falls from one batch to the
#: next (digits, p = 3000, NM regularization: after the first five batches never by more
#: than 0.9 % in 117 batches): at 0.97 gamma_prev about 1.3 k entries qualify, at 0.9
#: about 2.2 k (a training batch ~1 % faster).
INCREMENTAL_FRACTION = 0.97
#: After a fall of gamma that the first scan at INCREMENTAL_FRACTION missed and one at
#: FALLEN_FRACTION would have caught, the trainer's fused update pass scans at
#: FALLEN_FRACTION for the next FALLEN_BATCHES prunings (:func:`fallen_countdown`), so
#: that a steadily falling gamma does not cost a second scan of K per batch.
FALLEN_FRACTION = 0.9
FALLEN_BATCHES = 16
INCREMENTAL_CAP = 16
#: When the first scan misses (fewer than k or more than the capacity qualify), the
#: threshold of a second scan is read off a histogram of every SAMPLE_ROW_STRIDE-th row
#: of K, placed where it expects SAMPLE_TARGET * k entries above it.
SAMPLE_ROW_STRIDE = 16
SAMPLE_TARGET = 2.0


@numba.njit(cache=True)
def _collect_row(Kj, j, t, idx, vals, count):
    """Append to ``idx[count:]`` the flat indices ``j * p + i`` (increasing) of the
    off-diagonal entries of row ``j`` (``Kj = K[j]``) with ``|K| > t``, and their values
    to ``vals[count:]`` (as long as ``idx``); returns the new
    count, -1 when more than ``idx.size`` qualify, -2 at a NaN or inf entry.  Blocks of
    16 entries are tested first by a branch-free (SIMD) count; only the rare blocks with
    a candidate (~k / p^2 of the entries) are collected, without a branch per entry
    while the buffer has room for the whole block."""
    p = Kj.shape[0]
    cap = idx.shape[0]
    base = j * p
    for b0 in range(0, p, 16):
        hits = 0
        if b0 + 16 <= p:
            for i in range(16):  # a fixed trip count: unrolled and vectorized
                hits += 0 if abs(Kj[b0 + i]) <= t else 1  # NaN counts as a hit
            if hits == 0:
                continue
        b1 = min(b0 + 16, p)
        if count + (b1 - b0) <= cap:  # room for the whole block: write, then advance
            for i in range(b0, b1):
                a = abs(Kj[i])
                if a != a or a == np.inf:
                    return -2
                idx[count] = base + i
                vals[count] = Kj[i]
                count += 1 if (not a <= t) and i != j else 0
            continue
        for i in range(b0, b1):
            a = abs(Kj[i])
            if not a <= t:
                if a != a or a == np.inf:
                    return -2
                if i != j:
                    if count == cap:
                        return -1
                    idx[count] = base + i
                    vals[count] = Kj[i]
                    count += 1
    return count


#: The largest float64: ``not |x| <= _FLOAT64_MAX`` is NaN or inf.
_FLOAT64_MAX = float(np.finfo(np.float64).max)


@numba.njit(cache=True)
def _collect_flagged(Kj, j, flag, idx, vals, count):
    """:func:`_collect_row` for a row whose entries above the threshold were flagged
    when it was written (``flag[i] = not |K[j, i]| <= t``, uint8, length a multiple of 8:
    tested 8 at a time).  ``count = -1`` on entry (an earlier row overflowed) only looks
    for NaN and inf (in the whole row, a branch-free sweep: when the threshold fell far
    behind gamma, nearly every entry is flagged, and visiting them one by one made an
    overflowed pass of the first epoch 59-70 ms instead of 33-36 ms at p = 3000).
    Returns the new count, -1 (more than ``idx.size``) or -2 (NaN/inf)."""
    p = Kj.shape[0]
    if count == -1:  # overflowed: only NaN and inf count, found by a branch-free sweep
        bad = 0  # (below a finite threshold every NaN and inf is flagged: the same)
        for i in range(p):
            bad += 0 if abs(Kj[i]) <= _FLOAT64_MAX else 1
        return -2 if bad else -1
    cap = idx.shape[0]
    words = flag.view(np.uint64)
    base = j * p
    for w in range((p + 7) // 8):
        if words[w] == 0:
            continue
        for i in range(8 * w, min(8 * w + 8, p)):
            if flag[i]:
                a = abs(Kj[i])
                if a != a or a == np.inf:
                    return -2
                if i == j or count == -1:
                    continue
                if count == cap:
                    count = -1  # overflow: keep looking for NaN and inf only
                    continue
                idx[count] = base + i
                vals[count] = Kj[i]
                count += 1
    return count


@numba.njit(cache=True)
def _collect_above(K, t, idx, vals):
    """Flat (row-major) indices of the off-diagonal entries with ``|K| > t``
    into ``idx`` (preallocated, in increasing order) and their values into
    ``vals``; returns their count, -1 when more than ``idx.size`` qualify, -2 at
    a NaN or inf entry."""
    # idx[:count] : the candidates found so far (flat index j * p + i)
    count = 0
    for j in range(K.shape[0]):
        count = _collect_row(K[j], j, t, idx, vals, count)
        if count < 0:
            return count
    return count


@numba.njit(cache=True, nogil=True)
def _compact_top(idx, vals, k, gamma):
    """The candidates ``idx, vals`` (flat indices ascending) with ``|v| > gamma``, and the
    first of those with ``|v| = gamma`` until there are ``k``: :func:`top_k_mask`'s rule
    when gamma is the k-th largest ``|v|`` (exactly k kept).  Branch-free (a boolean
    mask of ~50 % density makes NumPy's compaction mispredict every other entry)."""
    n = idx.shape[0]
    above = 0
    for i in range(n):
        above += np.int64(abs(vals[i]) > gamma)
    room = k - above
    out_idx = np.empty(k + 1, dtype=np.int64)
    out_val = np.empty(k + 1)
    kept, ties = 0, 0
    for i in range(n):
        v = vals[i]
        a = abs(v)
        tie = np.int64(a == gamma)
        take = np.int64(a > gamma) | (tie & np.int64(ties < room))
        ties += tie
        out_idx[kept] = idx[i]  # written always, kept only when take (kept <= k)
        out_val[kept] = v
        kept += take
    return out_idx[:k], out_val[:k]


def _top_k_of(idx, vals, k):
    """``top_k_mask(|vals|, k)`` applied to the candidates (Alg. 2 line 13): the kept
    flat indices and values, and gamma (the k-th largest ``|v|``); ``idx`` ascending, so
    ties keep the smallest indices as in :func:`prune`.  ``1 <= k <= idx.size``."""
    a = np.abs(vals)
    gamma = float(np.partition(a, a.size - k)[a.size - k])  # the k-th largest
    keep, kept_vals = _compact_top(idx, vals, k, gamma)
    return keep, gamma, kept_vals


def candidate_capacity(k):
    """Size of the candidate buffer of the incremental top-k (Alg. 2 line 13):
    ``max(INCREMENTAL_CAP k, k + 1024)`` flat indices."""
    return max(INCREMENTAL_CAP * int(k), int(k) + 1024)


def candidate_threshold(gamma_prev, fallen=False):
    """The first scan's threshold ``INCREMENTAL_FRACTION * gamma_prev`` of the
    incremental top-k (Alg. 2 line 13; :func:`prune_top_k_incremental`), or
    ``FALLEN_FRACTION * gamma_prev`` with ``fallen`` (:func:`fallen_countdown`)."""
    return (FALLEN_FRACTION if fallen else INCREMENTAL_FRACTION) * float(gamma_prev)


def fallen_countdown(left, gamma, gamma_prev):
    """The prunings (Alg. 2 line 5) left whose first scan takes :data:`FALLEN_FRACTION`,
    after a pruning that moved the threshold from ``gamma_prev`` to ``gamma``:
    :data:`FALLEN_BATCHES` when ``FALLEN_FRACTION * gamma_prev < gamma <=
    INCREMENTAL_FRACTION * gamma_prev`` (a fall the narrow scan, which collects
    ``|K| > t``, misses and the wide one catches), else ``left - 1`` (not below 0).  Any
    gamma_prev that is not a number > 0 is no fall."""
    # the scans' own thresholds, so that "missed" and "caught" agree with them to the bit
    if gamma_prev > 0 and (candidate_threshold(gamma_prev, fallen=True) < gamma
                           <= candidate_threshold(gamma_prev)):
        return FALLEN_BATCHES
    return max(int(left) - 1, 0)


#: Buckets of the exact fallback's histogram: the top 16 bits of |K| (the exponent and
#: the 4 leading mantissa bits: 16 buckets per binade).
_HIST_SHIFT = 48


@numba.njit(cache=True)
def _magnitude_histogram(bits, hist, step):
    """Count the off-diagonal entries of K (``bits``: K viewed as int64) per bucket of
    the top bits of |K| (``hist[(bits >> 48) & 0x7fff] += 1``); NaN and inf fall in the
    buckets from ``0x7ff0`` (a non-finite bias too).  Bucket order is magnitude order
    (IEEE 754).  ``step``: only the rows ``0, step, 2 step, ...`` (a sample)."""
    p = bits.shape[0]
    for j in range(0, p, step):
        bj = bits[j]
        for i in range(p):
            key = (bj[i] >> _HIST_SHIFT) & 0x7FFF
            if i != j or key >= 0x7FF0:
                hist[key] += 1


def _histogram(K, step):
    """``(K, hist)``: K C-contiguous and the :func:`_magnitude_histogram` of its rows
    ``0, step, 2 step, ...``; raises ValueError on a NaN or inf among them."""
    K = np.ascontiguousarray(K)
    hist = np.zeros(1 << 15, dtype=np.int64)
    _magnitude_histogram(K.view(np.int64), hist, step)
    if hist[0x7FF0:].any():
        raise ValueError("K: contains NaN or inf")
    return K, hist


def _select_by_histogram(K, k):
    """The exact top-k of ``|K|`` (diagonal excluded) with two passes over K and no
    p x p temporary: a histogram of the magnitudes' top bits finds the bucket of the
    k-th largest, then the entries in and above it (at least k, and their exact
    number is known) are collected and selected among.  Returns ``(keep, gamma)``."""
    K, hist = _histogram(K, 1)
    b, t = _threshold_bucket(hist, k)  # the bucket of the k-th largest
    n = int(hist[b:].sum())  # entries in it and above it
    idx, vals = np.empty(n, dtype=np.int64), np.empty(n)
    count = _collect_above(K, t, idx, vals)
    assert count == idx.size, "the histogram counts the entries the scan collects"
    keep, gamma, _ = _top_k_of(idx, vals, k)  # Alg. 2 line 13
    return keep, gamma


def _threshold_bucket(hist, n_above):
    """The bucket of a magnitude histogram (:func:`_magnitude_histogram`) with at least
    ``n_above`` counted entries in it or above it, the highest such (None if none), and
    the threshold ``t`` just below its lower end (``|K| > t  <=>  |K| >= edge``)."""
    above = np.cumsum(hist[::-1])[::-1]  # above[b]: entries in bucket b or higher
    where = np.flatnonzero(above >= n_above)
    if where.size == 0:
        return None, None
    b = int(where[-1])
    edge = np.array(b << _HIST_SHIFT, dtype=np.int64).view(np.float64)
    return b, float(np.nextafter(edge, -np.inf))


def _select_by_sample(K, k, stride=None):
    """The exact top-k of ``|K|`` (Alg. 2 line 13, diagonal excluded) by one scan of K at a
    threshold read off a sample: a magnitude histogram of every ``stride``-th row
    (:data:`SAMPLE_ROW_STRIDE`), scaled to all rows, gives the bucket above which
    :data:`SAMPLE_TARGET` k entries are expected; the entries above it are collected (at
    most :func:`candidate_capacity`) and, when at least k were, selected among: exact by
    the argument of :func:`_select_top_k_incremental`.  Returns ``(keep, gamma, values)``,
    or None when the sample misses (fewer than k or more than the capacity above its
    threshold: the caller takes the full histogram).  A histogram of 1/16 of the rows
    plus one scan of K, where the full fallback histograms every row (8 ms at p = 3000)
    before its scan.  K: float64 (read as int64 bits), as
    :func:`prune_top_k_incremental` passes it."""
    step = SAMPLE_ROW_STRIDE if stride is None else int(stride)
    K, hist = _histogram(K, step)
    p = K.shape[0]
    n_rows = len(range(0, p, step))
    b, t = _threshold_bucket(hist, SAMPLE_TARGET * k * n_rows / p)
    if b is None:
        return None
    n = candidate_capacity(k)
    idx, vals = np.empty(n, dtype=np.int64), np.empty(n)
    count = _collect_above(K, t, idx, vals)
    if count == -2:
        raise ValueError("K: contains NaN or inf")
    if count < k:  # (-1: more than the capacity)
        return None
    return _top_k_of(idx[:count], vals[:count], k)


def _select_top_k_incremental(K, k, gamma_prev, first=None, with_values=False):
    """:func:`top_k_mask` of ``|K|`` (diagonal excluded, as in :func:`prune`) scanning only the
    entries above a threshold ``t``.

    Exact: whenever at least ``k`` (and at most ``cap``) entries exceed a
    threshold t, the k-th largest magnitude is one of them and
    exceeds t, so every entry above it and every tie with it is a
    candidate, found in increasing flat order: the same ``keep`` and
    ``gamma`` as the full selection, tie rule included.  The first scan uses
    ``t = INCREMENTAL_FRACTION * gamma_prev`` (or was ``first``, at its own threshold).
    When it finds fewer than k (gamma fell: NM regularization shrinks a whole module's
    weights) or more than ``cap`` entries (gamma rose), or ``gamma_prev`` is not a finite
    number > 0, a second scan takes its
    threshold from a sample of the rows (:func:`_select_by_sample`); if that misses too,
    the exact selection of :func:`_select_by_histogram` (two more passes over K; ``k = 0``:
    the full selection).  ``first``: ``(idx, vals, count)``, the first scan's result
    when it was done elsewhere (the trainer's fused update pass: the
    :func:`_collect_row` scan of this K at :func:`candidate_threshold`, into a
    buffer of :func:`candidate_capacity`; exact at any threshold, by the argument
    above).  Returns ``(keep, gamma, fallback)``
    (``fallback``: the full histogram or the k = 0 selection ran), and
    with ``with_values`` the kept entries' values too (``K.ravel()[keep]``, or None
    from the fallbacks).
    """
    t = candidate_threshold(gamma_prev)
    found = None
    if 0 < k and np.isfinite(t) and t > 0.0:
        if first is not None:
            idx, vals, count = first
        else:
            n = candidate_capacity(k)
            idx, vals = np.empty(n, dtype=np.int64), np.empty(n)
            count = _collect_above(K, t, idx, vals)
        if count == -2:
            raise ValueError("K: contains NaN or inf")
        if count >= k:
            # the candidates are in increasing flat order: top_k_mask's tie rule is prune's
            found = _top_k_of(idx[:count], vals[:count], k)  # Alg. 2 line 13
    if found is None and k > 0:
        found = _select_by_sample(K, k)
    if found is not None:
        keep, gamma, kept_vals = found
        return (keep, gamma, False, kept_vals) if with_values else (keep, gamma, False)
    if k > 0:
        keep, gamma = _select_by_histogram(K, k)
    else:
        K = check_square_finite(K)  # the scan above may have stopped early
        absK = np.abs(K)
        np.fill_diagonal(absK, -1.0)
        mask, gamma = top_k_mask(absK.ravel(), k)
        keep = np.flatnonzero(mask)
    return (keep, gamma, True, None) if with_values else (keep, gamma, True)


def prune_top_k_incremental(K, k, gamma_prev, *, candidates=None):
    """:func:`prune` with ``k`` (top-k), given the previous threshold.

    Implements Alg. 2 lines 5 and 13 like ``prune(K, k=k)`` and returns the
    identical graph (same edges, same ``gamma``, same tie rule); during
    training gamma moves little between mini-batches, so only the entries
    with ``|K| > 0.97 gamma_prev`` are partitioned (:data:`INCREMENTAL_FRACTION`; at most
    ``max(16 k, k + 1024)``).  When fewer than ``k`` or more qualify, one more scan takes
    its threshold from a magnitude histogram of every 16th row of K
    (:data:`SAMPLE_ROW_STRIDE`), aiming at ``2 k`` entries; when that misses too, an exact
    fallback: a histogram of all magnitudes' top bits finds the k-th largest's bucket, and
    only the entries in and above it are selected among.

    Parameters
    ----------
    K : (p, p) array
    k : int
        Edges to keep, in ``[0, p (p - 1)]``.
    gamma_prev : float
        The previous threshold (any value: NaN, inf or 0 skip the first scan).
    candidates : (idx, vals, count), optional
        The first scan, already done on this very ``K`` (the trainer does it inside
        its update pass): ``count`` as :func:`_collect_row` returns it over the rows
        of K at one threshold (the trainer's: ``candidate_threshold(gamma_prev)``, or
        with :data:`FALLEN_FRACTION` after gamma fell), ``idx[:count]`` the flat
        indices found and ``vals[:count]`` their values; ``idx`` (int64) and ``vals``
        (float64) of size ``candidate_capacity(k)``.  Candidates of
        another K give another graph: the caller guarantees K was not changed since.
    """
    if not (isinstance(K, np.ndarray) and K.dtype == np.float64 and K.flags.c_contiguous
            and K.ndim == 2 and K.shape[0] == K.shape[1]):
        K = check_square_finite(K)  # else finiteness is checked during the scan
        candidates = None
    p = K.shape[0]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"k: expected an integer, got {k!r}")
    k = int(k)
    if not 0 <= k <= p * (p - 1):
        raise ValueError(f"k: must lie in [0, p(p-1)] = [0, {p * (p - 1)}], got {k}")
    try:
        gamma_prev = float(gamma_prev)
    except (TypeError, ValueError):
        raise ValueError(f"gamma_prev: expected a number, got {gamma_prev!r}") from None
    if candidates is not None:
        n = candidate_capacity(k)
        idx, vals, count = candidates if len(candidates) == 3 else (None, None, 0)
        if not (isinstance(idx, np.ndarray) and idx.dtype == np.int64 and idx.shape == (n,)
                and isinstance(vals, np.ndarray) and vals.dtype == np.float64
                and vals.shape == (n,) and -2 <= int(count) <= n):
            raise ValueError(f"candidates: expected (idx, vals, count) with idx int64 and "
                             f"vals float64 arrays of size {n} and -2 <= count <= {n}")
        candidates = (idx, vals, int(count))
    keep, gamma, _, values = _select_top_k_incremental(K, k, gamma_prev, candidates,
                                                       with_values=True)
    return _build(K, keep, gamma, values)
