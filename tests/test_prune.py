"""Pruning (Sec. 3.2, Alg. 2 lines 5 and 13)."""
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refimpl import prune


@given(st.integers(1, 12), st.integers(0, 2**16), st.data())
def test_top_k_keeps_the_k_largest_off_diagonal(p, seed, data):
    K = np.random.default_rng(seed).standard_normal((p, p))
    k = data.draw(st.integers(0, p * (p - 1)))
    g = prune(K, k=k)
    assert g.n_edges == k
    M = g.mask()
    assert not np.any(np.diag(M)), "a diagonal entry (bias) was kept as an edge"
    off = ~np.eye(p, dtype=bool)
    kept, dropped = np.abs(K[M]), np.abs(K[off & ~M])
    if k:
        assert g.gamma == np.sort(np.abs(K[off]))[::-1][k - 1]
        assert kept.min() >= g.gamma
        if dropped.size:
            assert dropped.max() <= g.gamma
    else:
        assert g.gamma == np.inf
    # A holds the kept weights, A[j, i] = K[j, i]; b is the diagonal.
    np.testing.assert_array_equal(g.A.toarray()[M], K[M])
    np.testing.assert_array_equal(g.A.toarray()[~M], 0.0)
    np.testing.assert_array_equal(g.b, np.diag(K))


def test_gamma_threshold_is_inclusive():
    K = np.array([[9.0, 0.5, -2.0], [1.0, 9.0, 0.2], [-1.0, 3.0, 9.0]])
    g = prune(K, gamma=1.0)
    assert g.gamma == 1.0
    assert sorted(zip(*np.nonzero(g.mask()))) == [(0, 2), (1, 0), (2, 0), (2, 1)]
    np.testing.assert_array_equal(g.b, [9.0, 9.0, 9.0])


def test_ties_broken_by_row_major_index():
    # All off-diagonal magnitudes equal: the first k in row-major (j, i) order are kept.
    K = np.ones((4, 4))
    g = prune(K, k=5)
    assert sorted(zip(*np.nonzero(g.mask()))) == [(0, 1), (0, 2), (0, 3), (1, 0), (1, 2)]
    assert g.gamma == 1.0
    # Deterministic: same result again and for a sign-flipped copy.
    np.testing.assert_array_equal(prune(-K, k=5).mask(), g.mask())


def test_all_edges_and_zero_edges():
    K = np.random.default_rng(1).standard_normal((5, 5))
    g = prune(K, k=20)
    assert g.n_edges == 20 and g.n_modules == 1
    g = prune(K, gamma=0.0)
    assert g.n_edges == 20
    g = prune(K, k=0)
    assert g.n_edges == 0 and g.n_modules == 5 and g.schedule.n_levels == 1


def test_labels_are_modules_of_the_schedule():
    K = np.zeros((4, 4))
    K[0, 1] = K[1, 0] = 1.0  # module {0, 1}
    K[1, 2] = 1.0            # 1 -> 2
    g = prune(K, gamma=0.5)
    assert g.labels[0] == g.labels[1] != g.labels[2]
    assert g.schedule.n_levels == 2


def test_with_weights_keeps_structure():
    rng = np.random.default_rng(3)
    K = rng.standard_normal((6, 6))
    g = prune(K, k=12)
    K2 = rng.standard_normal((6, 6))
    h = g.with_weights(K2)
    np.testing.assert_array_equal(h.mask(), g.mask())
    np.testing.assert_array_equal(h.A.toarray()[g.mask()], K2[g.mask()])
    np.testing.assert_array_equal(h.b, np.diag(K2))
    assert h.schedule is g.schedule


@pytest.mark.parametrize(
    "K, kwargs, match",
    [
        (np.ones((2, 3)), {"k": 1}, "K: expected a square"),
        (np.ones(3), {"k": 1}, "K: expected a square"),
        (np.array([[0.0, np.nan], [1.0, 0.0]]), {"k": 1}, "K: contains NaN"),
        (np.array([[0.0, np.inf], [1.0, 0.0]]), {"k": 1}, "K: contains NaN or inf"),
        (np.ones((3, 3)), {"k": 7}, r"k: must lie in \[0, p\(p-1\)\]"),
        (np.ones((3, 3)), {"k": -1}, "k: must lie"),
        (np.ones((3, 3)), {"k": 1.5}, "k: expected an integer"),
        (np.ones((3, 3)), {}, "exactly one of k and gamma"),
        (np.ones((3, 3)), {"k": 1, "gamma": 0.1}, "exactly one of k and gamma"),
        (np.ones((3, 3)), {"gamma": -0.1}, "gamma: must be a number >= 0"),
        (np.ones((3, 3)), {"gamma": np.nan}, "gamma: must be a number >= 0"),
    ],
)
def test_bad_input_raises(K, kwargs, match):
    with pytest.raises(ValueError, match=match):
        prune(K, **kwargs)


# ---------------------------------------------------------------- incremental top-k
from refimpl.graph import prune_top_k_incremental  # noqa: E402
from refimpl.graph.prune import _select_top_k_incremental  # noqa: E402


def _full(K, k):
    """The full selection of prune (flat indices, gamma), the reference."""
    g = prune(K, k=k)
    return np.flatnonzero(g.mask().ravel()), g.gamma


@given(p=st.integers(2, 9), seed=st.integers(0, 2**16), data=st.data())
def test_incremental_top_k_is_bit_identical(p, seed, data):
    rng = np.random.default_rng(seed)
    # small integer magnitudes: many ties at the threshold
    K = rng.integers(-4, 5, (p, p)).astype(float) * data.draw(st.sampled_from([1.0, 0.37]))
    k = data.draw(st.integers(0, p * (p - 1)))
    keep_ref, gamma_ref = _full(K, k)
    g = gamma_ref if np.isfinite(gamma_ref) else 1.0
    gamma_prev = data.draw(st.one_of(
        st.floats(0.5 * g, 2.0 * g), st.sampled_from([0.0, np.nan, np.inf, 1e-300, 1e300])))
    keep, gamma, _ = _select_top_k_incremental(K, k, gamma_prev)
    np.testing.assert_array_equal(keep, keep_ref)
    assert gamma == gamma_ref or (np.isinf(gamma) and np.isinf(gamma_ref))
    G = prune_top_k_incremental(K, k, gamma_prev)
    R = prune(K, k=k)
    assert (G.A != R.A).nnz == 0 and np.array_equal(G.A.indices, R.A.indices)
    assert G.gamma == R.gamma and np.array_equal(G.labels, R.labels)


def test_incremental_top_k_paths(monkeypatch):
    """Each path of the incremental top-k gives prune's selection: the first scan at
    0.97 gamma_prev; when it finds fewer than k or more than the capacity, the scan at the
    threshold a sample of the rows suggests; when that misses too, the full histogram."""
    P = sys.modules["refimpl.graph.prune"]  # the module (refimpl.graph.prune is the function)

    rng = np.random.default_rng(3)
    p, k = 60, 200
    K = np.round(rng.standard_normal((p, p)), 1)  # rounded: ties
    keep_ref, gamma_ref = _full(K, k)
    calls = []
    sample, full = P._select_by_sample, P._select_by_histogram
    monkeypatch.setattr(P, "_select_by_sample",
                        lambda *a: calls.append(("sample", r := sample(*a))) or r)
    monkeypatch.setattr(P, "_select_by_histogram",
                        lambda *a: calls.append(("full", None)) or full(*a))

    def check(K, k, gamma_prev, path, ref):
        calls.clear()
        keep, gamma, fallback = _select_top_k_incremental(K, k, gamma_prev)
        assert gamma == ref[1] and fallback == (path == "full")
        np.testing.assert_array_equal(keep, ref[0])
        if path == "first":
            assert calls == []
        elif path == "sample":
            assert [c[0] for c in calls] == ["sample"] and calls[0][1] is not None
        else:
            assert [c[0] for c in calls] == ["sample", "full"] and calls[0][1] is None

    check(K, k, gamma_ref * 1.02, "first", (keep_ref, gamma_ref))  # gamma_prev near
    check(K, k, gamma_ref * 3, "sample", (keep_ref, gamma_ref))  # gamma fell: too few
    check(K, k, 1e-6, "sample", (keep_ref, gamma_ref))  # gamma rose: more than the capacity
    for gp in (np.nan, 0.0, np.inf):  # no usable gamma_prev: no first scan
        check(K, k, gp, "sample", (keep_ref, gamma_ref))
    # rows 0, 16, 32, 48 (the sample) far smaller than the rest: the sample's threshold
    # lets nearly every entry through (more than the capacity): the full histogram
    Ks = K.copy()
    Ks[::16] *= 1e-3
    check(Ks, 100, 1e-6, "full", _full(Ks, 100))  # (capacity 1600 of 3540 entries)
    Ks[59, 58] = np.nan  # after the sampled scan's overflow: the full histogram raises
    with pytest.raises(ValueError, match="^K: contains NaN or inf"):
        _select_top_k_incremental(Ks, 100, np.nan)
    assert [c[0] for c in calls][-2:] == ["sample", "full"]
    # ... and with the sample rows far larger: too few above its threshold
    Kl = K.copy()
    Kl[::16] *= 1e3
    check(Kl, 150, np.nan, "full", _full(Kl, 150))
    with pytest.raises(ValueError, match="k"):
        prune_top_k_incremental(K, -1, 1.0)
    with pytest.raises(ValueError, match="gamma_prev"):
        prune_top_k_incremental(K, 3, "x")
    for bad in (np.nan, np.inf, -np.inf):  # found by the scan, on either path
        for where in ((0, 0), (5, 7), (59, 58)):
            Kb = K.copy()
            Kb[where] = bad
            for gp in (gamma_ref, np.nan, 1e-6):
                with pytest.raises(ValueError, match="^K: contains NaN or inf"):
                    prune_top_k_incremental(Kb, k, gp)


@given(st.integers(2, 9), st.integers(0, 2**16), st.data())
def test_eligible_top_k_is_the_dag_baseline_selection(p, seed, data):
    """With the strict upper triangle eligible, top-k keeps the k largest upper entries,
    ties by row-major index (the DAG baseline of Table 1), against a sort written here."""
    rng = np.random.default_rng(seed)
    K = np.round(rng.standard_normal((p, p)), 1)          # rounding makes ties common
    k = data.draw(st.integers(0, p * (p - 1) // 2))
    upper = np.triu(np.ones((p, p), dtype=bool), 1)
    g = prune(K, k=k, eligible=upper)
    iu = np.flatnonzero(upper.ravel())
    order = np.argsort(-np.abs(K.ravel()[iu]), kind="stable")[:k]   # oracle
    expect = np.zeros(p * p, dtype=bool)
    expect[iu[order]] = True
    np.testing.assert_array_equal(g.mask().ravel(), expect)
    assert g.gamma == (np.abs(K.ravel()[iu[order]]).min() if k else np.inf)
    with pytest.raises(ValueError, match="k: at most"):
        prune(K, k=p * (p - 1) // 2 + 1, eligible=upper)


def test_top_k_mask_rows_and_ties():
    from refimpl.graph.prune import top_k_mask

    V = np.array([[1.0, 3.0, 3.0, 2.0, 3.0],
                  [0.0, 0.0, 0.0, 0.0, 0.0]])
    mask, gamma = top_k_mask(V, 2)
    np.testing.assert_array_equal(mask, [[0, 1, 1, 0, 0], [1, 1, 0, 0, 0]])
    np.testing.assert_array_equal(gamma, [3.0, 0.0])
    m1, g1 = top_k_mask(V[0], 4)
    np.testing.assert_array_equal(m1, [0, 1, 1, 1, 1])
    assert g1 == 2.0
    assert not top_k_mask(V, 0)[0].any() and np.all(top_k_mask(V, 0)[1] == np.inf)


@given(n=st.integers(1, 300), seed=st.integers(0, 2**16), data=st.data())
def test_candidate_top_k_is_top_k_mask(n, seed, data):
    """The incremental top-k's selection among its candidates (a partition, then one
    branch-free compaction) keeps what ``top_k_mask`` keeps, in order, values included:
    ties at gamma (the smallest indices first), zeros of both signs, k = n."""
    from refimpl.graph.prune import _top_k_of, top_k_mask

    rng = np.random.default_rng(seed)
    kind = data.draw(st.sampled_from(["normal", "ties", "zeros"]))
    if kind == "normal":
        vals = rng.standard_normal(n)
    elif kind == "ties":
        vals = rng.integers(-3, 4, n) * 0.25
    else:
        vals = rng.integers(0, 2, n) * np.where(rng.random(n) < 0.5, -0.0, 0.0)
    idx = np.sort(rng.choice(10 * n + 10, n, replace=False)).astype(np.int64)
    k = data.draw(st.integers(1, n))
    mask, gamma_ref = top_k_mask(np.abs(vals), k)
    keep, gamma, kept_vals = _top_k_of(idx, vals, k)
    assert gamma == gamma_ref and keep.size == k
    np.testing.assert_array_equal(keep, idx[mask])
    np.testing.assert_array_equal(kept_vals.view(np.int64), vals[mask].view(np.int64))


@given(p=st.integers(2, 40), seed=st.integers(0, 2**16), data=st.data())
def test_sampled_selection_is_the_full_selection_or_none(p, seed, data):
    """The second scan's threshold from a sample of the rows: whenever it answers, the
    answer is prune's (edges, gamma, values); it may only miss (None), never be wrong.
    A NaN or inf anywhere raises, here or in the full histogram after a miss."""
    from refimpl.graph.prune import _select_by_histogram, _select_by_sample

    rng = np.random.default_rng(seed)
    kind = data.draw(st.sampled_from(["normal", "ties", "rows", "tiny"]))
    if kind == "normal":
        K = rng.standard_normal((p, p))
    elif kind == "ties":  # zeros of both signs too
        K = rng.integers(-3, 4, (p, p)) * 0.5
        K[rng.random((p, p)) < 0.2] *= -0.0
    elif kind == "rows":  # rows of very different scales
        K = rng.standard_normal((p, p)) * 10.0 ** rng.integers(-5, 5, (p, 1))
    else:
        K = rng.standard_normal((p, p)) * 1e-310
    k = data.draw(st.integers(1, p * (p - 1)))
    stride = data.draw(st.sampled_from([1, 2, 3, 16]))
    bad = data.draw(st.sampled_from([None, np.nan, np.inf]))
    if bad is not None:
        K[tuple(rng.integers(0, p, 2))] = bad
        with pytest.raises(ValueError, match="^K: contains NaN or inf"):
            if _select_by_sample(K, k, stride) is None:
                _select_by_histogram(K, k)
        return
    keep_ref, gamma_ref = _full(K, k)
    got = _select_by_sample(K, k, stride)
    if got is not None:
        keep, gamma, vals = got
        assert gamma == gamma_ref
        np.testing.assert_array_equal(keep, keep_ref)
        np.testing.assert_array_equal(vals.view(np.int64), K.ravel()[keep_ref].view(np.int64))


@given(p=st.integers(2, 9), seed=st.integers(0, 2**16), data=st.data())
def test_histogram_selection_is_the_full_selection(p, seed, data):
    """The exact fallback of the incremental top-k (a histogram of the magnitudes' top
    bits, then the entries in and above the k-th largest's bucket) keeps what prune keeps:
    magnitudes over many binades, in one bucket, ties, zeros of both signs, subnormals."""
    from refimpl.graph.prune import _select_by_histogram

    rng = np.random.default_rng(seed)
    kind = data.draw(st.sampled_from(["binades", "one bucket", "ties", "tiny"]))
    if kind == "binades":
        K = rng.standard_normal((p, p)) * 10.0 ** rng.integers(-30, 30, (p, p))
    elif kind == "one bucket":
        K = 1.0 + rng.random((p, p)) / 64  # all within 1/16 of a binade
    elif kind == "ties":
        K = rng.integers(-2, 3, (p, p)) * 0.5  # zeros (and -0.0 after the sign flip below)
        K[rng.random((p, p)) < 0.3] *= -0.0
    else:
        K = rng.standard_normal((p, p)) * 5e-324 * rng.integers(0, 4, (p, p))
    k = data.draw(st.integers(1, p * (p - 1)))
    keep_ref, gamma_ref = _full(K, k)
    keep, gamma = _select_by_histogram(K, k)
    np.testing.assert_array_equal(keep, keep_ref)
    assert gamma == gamma_ref


def test_incremental_top_k_takes_a_given_first_scan():
    """``candidates`` (the scan the trainer's update pass does) gives the graph prune gives;
    a buffer of the wrong size or a count out of range is refused."""
    from refimpl.graph.prune import (_collect_above, candidate_capacity, candidate_threshold,
                                     prune_top_k_incremental)

    rng = np.random.default_rng(8)
    p, k = 50, 150
    K = np.round(rng.standard_normal((p, p)), 2)
    ref = prune(K, k=k)
    # a hit; too few above the threshold (the sampled scan); a hit at a wide margin
    for gamma_prev in (ref.gamma, 1.4 * ref.gamma, 0.3 * ref.gamma):
        idx = np.empty(candidate_capacity(k), dtype=np.int64)
        vals = np.empty(idx.size)
        count = _collect_above(K, candidate_threshold(gamma_prev), idx, vals)
        if count > 0:
            np.testing.assert_array_equal(vals[:count], K.ravel()[idx[:count]])
        g = prune_top_k_incremental(K, k, gamma_prev, candidates=(idx, vals, count))
        assert (g.A != ref.A).nnz == 0 and np.array_equal(g.A.indices, ref.A.indices)
        np.testing.assert_array_equal(g.A.data, ref.A.data)  # the candidates' values
        assert g.gamma == ref.gamma and np.array_equal(g.labels, ref.labels)
    for bad in ((np.empty(10, dtype=np.int64), vals, 0), (idx, vals, idx.size + 1),
                (idx.astype(np.int32), vals, 0), (idx, vals[:10], 0), (idx, 0)):
        with pytest.raises(ValueError, match="candidates"):
            prune_top_k_incremental(K, k, ref.gamma, candidates=bad)


def _candidates_oracle(K, t, cap, *, nonfinite_after_overflow):
    """The candidate scans' contract in plain NumPy: the off-diagonal entries with
    ``not |K| <= t`` at their flat (row-major) indices, increasing; -1 when more than
    ``cap`` qualify; -2 at a NaN or inf entry (diagonal included).  The value scan
    (_collect_above) stops at the first of the two events in row-major order (an entry
    that is both gives -2); the flagged scan keeps looking for NaN / inf after an overflow
    (``nonfinite_after_overflow``).  Returns (count, flat indices or None)."""
    p = K.shape[0]
    hit = ~(np.abs(K) <= t)  # a NaN is a hit
    cand = np.flatnonzero(hit & ~np.eye(p, dtype=bool))
    bad = np.flatnonzero(~np.isfinite(K))
    if cand.size > cap:
        if bad.size and (nonfinite_after_overflow or bad[0] <= cand[cap]):
            return -2, None
        return -1, None
    if bad.size:
        return -2, None
    return cand.size, cand


@given(p=st.integers(1, 20), seed=st.integers(0, 2**16), data=st.data())
def test_flagged_scan_is_the_scan(p, seed, data):
    """The candidate scans against a NumPy oracle (_candidates_oracle): the value scan
    _collect_above, whose candidates prune uses, and the trainer's update pass, which flags
    |K| > t as it writes each row and collects the flagged entries 8 at a time
    (_collect_flagged): the same indices and values, overflow (-1) and NaN / inf (-2)."""
    from refimpl.graph.prune import _collect_above, _collect_flagged

    rng = np.random.default_rng(seed)
    K = np.round(rng.standard_normal((p, p)), 1)
    for _ in range(data.draw(st.integers(0, 2))):  # NaN / inf, on the diagonal or off it
        K[tuple(rng.integers(0, p, 2))] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    t = data.draw(st.sampled_from([0.0, 0.5, 1.5, 1e300]))
    cap = data.draw(st.integers(0, p * p))

    n_ref, cand = _candidates_oracle(K, t, cap, nonfinite_after_overflow=False)
    idx, vals = np.empty(cap, dtype=np.int64), np.empty(cap)
    assert _collect_above(K, t, idx, vals) == n_ref
    if n_ref >= 0:
        np.testing.assert_array_equal(idx[:n_ref], cand)
        np.testing.assert_array_equal(vals[:n_ref], K.ravel()[cand])

    n_flag, cand = _candidates_oracle(K, t, cap, nonfinite_after_overflow=True)
    idx, vals, count = np.empty(cap, dtype=np.int64), np.empty(cap), 0
    flag = np.zeros(-(-p // 8) * 8, dtype=np.uint8)
    for j in range(p):
        flag[:p] = ~(np.abs(K[j]) <= t)
        count = _collect_flagged(K[j], j, flag, idx, vals, count)
        if count == -2:
            break
    assert count == n_flag
    if n_flag >= 0:
        np.testing.assert_array_equal(idx[:count], cand)
        np.testing.assert_array_equal(vals[:count], K.ravel()[cand])
