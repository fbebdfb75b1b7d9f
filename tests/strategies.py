"""Shared hypothesis strategies: small, bounded, finite inputs."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from hypothesis import strategies as st


def csr_from_edges(n, edges):
    """Canonical CSR (row j = successors of j) from a list of (j, i) pairs."""
    if edges:
        rows, cols = np.asarray(edges, dtype=np.int64).T
    else:
        rows = cols = np.empty(0, dtype=np.int64)
    A = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n, n))
    A.sum_duplicates()
    return A


@st.composite
def digraphs(draw, max_nodes=30, max_edges=90, self_loops=True):
    """A random directed graph as canonical CSR (duplicates summed)."""
    n = draw(st.integers(0, max_nodes))
    if n == 0:
        return csr_from_edges(0, [])
    pair = st.tuples(st.integers(0, n - 1), st.integers(0, n - 1))
    if not self_loops:
        pair = pair.filter(lambda e: e[0] != e[1])
    edges = draw(st.lists(pair, max_size=max_edges))
    return csr_from_edges(n, edges)


@st.composite
def modular_digraphs(draw, max_modules=8, max_size=5):
    """Planted cycles (modules) wired by random forward edges between them:
    a graph with known non-trivial SCCs and several levels."""
    sizes = draw(st.lists(st.integers(1, max_size), min_size=1, max_size=max_modules))
    perm_seed = draw(st.integers(0, 2**16))
    n = sum(sizes)
    rng = np.random.default_rng(perm_seed)
    perm = rng.permutation(n)
    edges = []
    start = 0
    blocks = []
    for q in sizes:
        nodes = perm[start:start + q]
        blocks.append(nodes)
        if q > 1:
            edges += [(int(nodes[a]), int(nodes[(a + 1) % q])) for a in range(q)]
        start += q
    n_fwd = draw(st.integers(0, 3 * len(sizes)))
    for _ in range(n_fwd):
        a, c = sorted(rng.choice(len(sizes), size=2, replace=True))
        if a == c:
            continue
        edges.append((int(rng.choice(blocks[a])), int(rng.choice(blocks[c]))))
    return csr_from_edges(n, edges)


def dense_K(draw_seed, p, scale=1.0):
    """A seeded dense (p, p) matrix of standard normals."""
    return scale * np.random.default_rng(draw_seed).standard_normal((p, p))


@st.composite
def convex_qps(draw, max_n=6, max_m=8, max_batch=4):
    """A strictly convex QP batch ``(Q, q, G, h)`` of OptNet's form (Amos &
    Kolter 2017, Eq. 2) with ``z = 0`` strictly feasible (``h > 0``): small,
    bounded, seeded."""
    n = draw(st.integers(1, max_n))
    m = draw(st.integers(1, max_m))
    B = draw(st.integers(1, max_batch))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    A = rng.standard_normal((n, n))
    Q = A @ A.T + draw(st.floats(0.05, 2.0)) * np.eye(n)
    q = draw(st.floats(0.1, 10.0)) * rng.standard_normal((B, n))
    G = rng.standard_normal((m, n))
    h = rng.uniform(0.05, 1.0, m)
    return Q, q, G, h
