"""Tarjan's SCC kernel (Sec. 3.5-3.6): oracles scipy and networkx, fixtures, label order."""
import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from scipy.sparse.csgraph import connected_components

from refimpl import strongly_connected_components
from strategies import csr_from_edges, digraphs, modular_digraphs


def canonical_partition(labels):
    """The partition as a set of frozensets (label-independent)."""
    labels = np.asarray(labels)
    return {frozenset(np.flatnonzero(labels == c).tolist()) for c in np.unique(labels)}


def assert_reverse_topological(A, labels):
    rows = np.repeat(np.arange(A.shape[0]), np.diff(A.indptr))
    assert np.all(labels[rows] >= labels[A.indices]), "an edge u -> v has labels[u] < labels[v]"


def check_against_oracles(A):
    n_comp, labels = strongly_connected_components(A.indptr, A.indices)
    assert labels.dtype == np.int32
    assert labels.shape == (A.shape[0],)
    n_sp, lab_sp = connected_components(A, directed=True, connection="strong")
    assert n_comp == n_sp
    assert canonical_partition(labels) == canonical_partition(lab_sp)
    G = nx.from_scipy_sparse_array(A, create_using=nx.DiGraph)
    G.add_nodes_from(range(A.shape[0]))
    assert canonical_partition(labels) == {
        frozenset(c) for c in nx.strongly_connected_components(G)
    }
    # Labels are 0..n_comp-1, each used.
    assert set(np.unique(labels).tolist()) == set(range(n_comp))
    assert_reverse_topological(A, labels)


@given(digraphs())
def test_partition_matches_scipy_and_networkx(A):
    check_against_oracles(A)


@given(modular_digraphs())
def test_planted_modules(A):
    check_against_oracles(A)


def test_tarjan_paper_example():
    # Tarjan (1972)-style fixture, solved by hand:
    # {0,1,2} cycle, {3,4} cycle, 5 alone, 6->7->6; 2->3, 4->5, 5->6.
    edges = [(0, 1), (1, 2), (2, 0), (2, 3), (3, 4), (4, 3), (4, 5), (5, 6), (6, 7), (7, 6)]
    A = csr_from_edges(8, edges)
    n, labels = strongly_connected_components(A.indptr, A.indices)
    assert n == 4
    assert canonical_partition(labels) == {
        frozenset({0, 1, 2}), frozenset({3, 4}), frozenset({5}), frozenset({6, 7})
    }
    # Reverse topological: the sink {6, 7} is completed first, the source last.
    assert labels[6] == 0 and labels[5] == 1 and labels[3] == 2 and labels[0] == 3


def test_empty_graph():
    n, labels = strongly_connected_components(np.array([0]), np.array([], dtype=np.int64))
    assert n == 0 and labels.shape == (0,)


def test_one_node_with_and_without_self_loop():
    for edges in ([], [(0, 0)]):
        A = csr_from_edges(1, edges)
        n, labels = strongly_connected_components(A.indptr, A.indices)
        assert n == 1 and labels.tolist() == [0]


def test_isolated_nodes_are_singletons():
    A = csr_from_edges(5, [])
    n, labels = strongly_connected_components(A.indptr, A.indices)
    assert n == 5 and sorted(labels.tolist()) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("closed", [False, True], ids=["chain", "cycle"])
def test_million_node_chain_and_cycle(closed):
    n = 1_000_000
    src = np.arange(n if closed else n - 1)
    dst = (src + 1) % n
    A = sp.csr_matrix((np.ones(src.size), (src, dst)), shape=(n, n))
    n_comp, labels = strongly_connected_components(A.indptr, A.indices)
    n_sp, lab_sp = connected_components(A, connection="strong")
    assert n_comp == n_sp == (1 if closed else n)
    if closed:
        assert np.all(labels == 0)
    else:
        # The chain's sink (n-1) completes first: labels are n-1-i.
        np.testing.assert_array_equal(labels, np.arange(n - 1, -1, -1))


def test_bad_input_raises_naming_the_argument():
    with pytest.raises(ValueError, match="indices"):
        strongly_connected_components(np.array([0, 1, 2]), np.array([0, 5]))
    with pytest.raises(ValueError, match="indptr"):
        strongly_connected_components(np.array([0, 2, 1]), np.array([0, 1]))
    with pytest.raises(ValueError, match="indptr"):
        strongly_connected_components(np.array([0, 1, 3]), np.array([0, 1]))
    with pytest.raises(ValueError, match="indices"):
        strongly_connected_components(np.array([0, 1]), np.array([0.5]))
    with pytest.raises(ValueError, match="indptr"):
        strongly_connected_components(np.zeros((2, 2), dtype=int), np.array([0]))


def test_int64_and_int32_index_arrays_agree():
    A = csr_from_edges(6, [(0, 1), (1, 0), (2, 3), (3, 4), (4, 2), (5, 0)])
    a = strongly_connected_components(A.indptr.astype(np.int64), A.indices.astype(np.int64))
    b = strongly_connected_components(A.indptr.astype(np.int32), A.indices.astype(np.int32))
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])
