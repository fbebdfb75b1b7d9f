"""The level schedule (Alg. 1 lines 9-11, 29-38): invariants and networkx oracle."""
import networkx as nx
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from refimpl import Schedule, strongly_connected_components
from strategies import csr_from_edges, digraphs, modular_digraphs


def edges_of(A):
    rows = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
    return rows, A.indices.astype(np.int64)


def check_schedule(A):
    # Self-loops are not edges of the pruned graph; drop them here.
    A = A.copy()
    A.setdiag(0)
    A.eliminate_zeros()
    A.sum_duplicates()
    S = Schedule.from_csr(A)
    p = A.shape[0]
    src, dst = edges_of(A)
    mod = S.labels
    # Every node exactly once; position is the inverse of order.
    assert sorted(S.order.tolist()) == list(range(p))
    np.testing.assert_array_equal(S.position[S.order], np.arange(p))
    # Module ids are a topological order and levels respect every edge.
    lev = S.module_level[mod]
    cross = mod[src] != mod[dst]
    assert np.all(mod[src][cross] < mod[dst][cross])
    assert np.all(lev[src][cross] < lev[dst][cross]), "a cross-module edge does not go up a level"
    # Modules are exactly the SCCs.
    n_comp, lab = strongly_connected_components(A.indptr, A.indices)
    assert S.n_modules == n_comp
    pairs = set(zip(lab.tolist(), mod.tolist()))
    assert len(pairs) == n_comp
    # Levels are the earliest topological generations (networkx contract).
    G = nx.from_scipy_sparse_array(A, create_using=nx.DiGraph)
    G.add_nodes_from(range(p))
    C = nx.condensation(G)
    expected = np.empty(p, dtype=int)
    for g, gen in enumerate(nx.topological_generations(C)):
        for c in gen:
            expected[list(C.nodes[c]["members"])] = g
    np.testing.assert_array_equal(lev, expected)
    assert S.n_levels == (expected.max() + 1 if p else 0)
    # InArc / OutArc counts.
    np.testing.assert_array_equal(S.in_arcs, np.bincount(mod[dst][cross], minlength=S.n_modules))
    np.testing.assert_array_equal(S.out_arcs, np.bincount(mod[src][cross], minlength=S.n_modules))
    # External in/out edge lists reproduce the cross edges, in positions.
    pos = S.position
    ext = sorted(zip(pos[src][cross].tolist(), pos[dst][cross].tolist(), np.flatnonzero(cross).tolist()))
    in_list = sorted(
        (int(S.in_src[k]), t, int(S.in_edge[k]))
        for t in range(p) for k in range(S.in_ptr[t], S.in_ptr[t + 1])
    )
    out_list = sorted(
        (t, int(S.out_dst[k]), int(S.out_edge[k]))
        for t in range(p) for k in range(S.out_ptr[t], S.out_ptr[t + 1])
    )
    assert in_list == ext and out_list == ext
    for t in range(p):  # in-lists are ascending (memory locality)
        seg = S.in_src[S.in_ptr[t]:S.in_ptr[t + 1]]
        assert np.all(np.diff(seg) >= 0)
    # Levels: contiguous, singletons first, groups by ascending size; blocks = A_SS.
    seen = []
    dense = A.toarray()
    for L in S.levels:
        assert np.all(S.module_level[mod[L.nodes]] == L.index)
        np.testing.assert_array_equal(L.nodes, S.order[L.start:L.stop])
        assert np.all(S.module_sizes[mod[L.singletons]] == 1)
        sizes = [g.size for g in L.modules]
        assert sizes == sorted(set(sizes)) and all(q >= 2 for q in sizes)
        n_in_groups = 0
        for g in L.modules:
            assert g.nodes.shape == (g.n_modules, g.size)
            assert np.all(S.module_sizes[g.ids] == g.size)
            for m in range(g.n_modules):
                assert len(set(mod[g.nodes[m]].tolist())) == 1
            data = A.data.copy()
            data[:] = np.arange(1, data.size + 1)  # identify edges by id + 1
            blocks = g.blocks(data)
            for m in range(g.n_modules):
                nodes = g.nodes[m]
                expect = np.where(dense[np.ix_(nodes, nodes)] != 0, 0, 0.0)
                for a, j in enumerate(nodes):
                    for c, i in enumerate(nodes):
                        hit = np.flatnonzero((src == j) & (dst == i))
                        expect[a, c] = hit[0] + 1 if hit.size else 0
                np.testing.assert_array_equal(blocks[m], expect)
            n_in_groups += g.nodes.size
        assert L.singletons.size + n_in_groups == L.stop - L.start
        seen.extend(L.nodes.tolist())
    assert sorted(seen) == list(range(p))
    return S


@given(digraphs(self_loops=False))
def test_schedule_invariants_random(A):
    check_schedule(A)


@given(modular_digraphs())
def test_schedule_invariants_planted_modules(A):
    check_schedule(A)


def test_hand_solved_schedule():
    # 0 -> {1,2} cycle -> 3 ; 4 -> 3 ; {5,6,7} cycle fed by 3.
    edges = [(0, 1), (1, 2), (2, 1), (2, 3), (4, 3), (3, 5), (5, 6), (6, 7), (7, 5)]
    S = check_schedule(csr_from_edges(8, edges))
    assert S.n_levels == 4
    L0, L1, L2, L3 = S.levels
    assert L0.singletons.tolist() == [0, 4] and L0.modules == []
    assert L1.singletons.tolist() == [] and [g.size for g in L1.modules] == [2]
    assert L1.modules[0].nodes.tolist() == [[1, 2]]
    assert L2.singletons.tolist() == [3]
    assert L3.modules[0].nodes.tolist() == [[5, 6, 7]]
    assert S.module_sizes.tolist() == [1, 1, 2, 1, 3]
    assert S.in_arcs.tolist() == [0, 0, 1, 2, 1]
    assert S.out_arcs.tolist() == [1, 1, 1, 1, 0]


def test_same_size_modules_grouped():
    # Three 2-cycles and one 3-cycle all at level 0.
    edges = [(0, 1), (1, 0), (2, 3), (3, 2), (4, 5), (5, 4), (6, 7), (7, 8), (8, 6)]
    S = check_schedule(csr_from_edges(9, edges))
    (L0,) = S.levels
    assert [(g.size, g.n_modules) for g in L0.modules] == [(2, 3), (3, 1)]


def test_dag_is_all_singletons():
    edges = [(j, i) for j in range(6) for i in range(j + 1, 6)]
    S = check_schedule(csr_from_edges(6, edges))
    assert S.is_dag and S.n_levels == 6 and S.max_module_size == 1


def test_empty_and_one_node():
    S = check_schedule(csr_from_edges(0, []))
    assert S.n_levels == 0 and S.levels == []
    S = check_schedule(csr_from_edges(1, []))
    assert S.n_levels == 1 and S.levels[0].singletons.tolist() == [0]


def test_bad_input():
    A = csr_from_edges(3, [(0, 1)])
    with pytest.raises(ValueError, match="A: expected a scipy CSR"):
        Schedule.from_csr(A.toarray())
    with pytest.raises(ValueError, match="square"):
        Schedule.from_csr(A[:2])
    # Labels that are not in reverse topological order are refused.
    with pytest.raises(ValueError, match="scc_labels"):
        Schedule.from_csr(A, n_components=3, scc_labels=np.array([0, 1, 2], dtype=np.int32))
    # Labels the kernels would read or write past their arrays with (a count too large,
    # too few labels, an id out of range) are refused before they run.
    chain = csr_from_edges(3, [(0, 1), (1, 2)])
    good = strongly_connected_components(chain.indptr, chain.indices)[1]
    for n_comp, labels, match in ((4, good, "n_components: a graph of 3 nodes has at most 3"),
                                  (2, good, "scc_labels: expected every id"),
                                  (3, good[:2], "scc_labels: expected 3 integer labels"),
                                  (3, np.array([0, 1, 5]), "scc_labels: expected every id"),
                                  (3, np.array([0.0, 1.0, 2.0]), "integer labels"),
                                  (-1, good, "n_components: expected a non-negative")):
        with pytest.raises(ValueError, match=match):
            Schedule.from_csr(chain, n_components=n_comp, scc_labels=labels)
    assert Schedule.from_csr(chain, n_components=3, scc_labels=good).n_levels == 3


def test_a_module_past_46341_nodes_places_its_edges():
    """The within-module edge index a * q + c of a q-node module passes int32 at
    q = 46 341; it is int64, so a ring of 50 000 nodes (one module) places every edge."""
    q = 50_000
    A = csr_from_edges(q, [(i, (i + 1) % q) for i in range(q)])
    S = Schedule.from_csr(A)
    (grp,) = S.levels[0].modules
    assert grp.size == q and grp.flat.dtype == np.int64 and grp.flat.min() >= 0
    a, c = np.divmod(grp.flat, q)  # positions within the module, ascending node order
    src, dst = grp.nodes[0][a], grp.nodes[0][c]
    rows = np.repeat(np.arange(q), np.diff(A.indptr))
    np.testing.assert_array_equal(src, rows[grp.edge])
    np.testing.assert_array_equal(dst, A.indices[grp.edge])


@given(n=st.integers(1, 80), seed=st.integers(0, 2**16), data=st.data())
def test_module_order_is_lexsort(n, seed, data):
    """The schedule's module order (level, then size, then smallest node) by counting
    sorts is NumPy's lexsort of the three keys."""
    from refimpl.graph.schedule import _module_order

    rng = np.random.default_rng(seed)
    n_comp = data.draw(st.integers(1, n))
    min_node = rng.choice(n, n_comp, replace=False).astype(np.int32)
    size = rng.integers(1, n + 1, n_comp).astype(np.int32)
    level = rng.integers(0, data.draw(st.integers(1, 6)), n_comp).astype(np.int32)
    np.testing.assert_array_equal(_module_order(size, min_node, level, n),
                                  np.lexsort((min_node, size, level)))
