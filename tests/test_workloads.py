"""The benchmark workloads (refimpl/workloads.py): the weak-modules regime is what
it claims, and `refimpl bench propagation` runs on a tiny case (no timing assertions)."""
import numpy as np

from refimpl import NMNetwork, forward
from refimpl.cli import main
from refimpl.graph import graph_from_mask
from refimpl.workloads import weak_modular_graph


def test_weak_modular_graph_is_what_it_claims():
    p, rho = 120, 0.25
    K, mask = weak_modular_graph(p, 3, seed=2, q_range=(4, 12), rho=rho)
    assert not mask.diagonal().any()
    g = graph_from_mask(K, mask)
    S = g.schedule
    assert S.n_levels == 3
    sizes = S.module_sizes
    assert sizes.min() >= 4 and sizes.max() <= 12  # every module is one SCC of q_range nodes
    start = np.concatenate([[0], np.cumsum(sizes)])
    order = S.order
    intra = 0
    for m in range(S.n_modules):  # oracle: numpy.linalg.eigvals of each A_SS
        nodes = order[start[m]:start[m + 1]]
        A_SS = K[np.ix_(nodes, nodes)] * mask[np.ix_(nodes, nodes)]
        np.testing.assert_allclose(np.abs(np.linalg.eigvals(A_SS)).max(), rho, rtol=1e-9)
        intra += mask[np.ix_(nodes, nodes)].sum()
    assert intra > 0.8 * mask.sum()  # most edges inside modules
    # the whole-graph fixed point contracts at rate <= rho: ~20 steps to 1e-10
    rng = np.random.default_rng(0)
    net = NMNetwork(K, rng.standard_normal((p, 3)), rng.standard_normal((2, p)))
    fwd = forward(net, rng.standard_normal((4, 3)), g, mode="whole",
                  whole_method="fixed_point")
    assert 5 <= fwd.iterations <= 30


def test_bench_propagation_tiny(capsys):
    assert main(["bench", "propagation", "--p", "60", "--batch", "4", "--repeat", "1",
                 "--no-mlp"]) == 0
    out = capsys.readouterr().out
    rows = [ln for ln in out.splitlines() if ln.startswith("| ") and "ms" in ln]
    assert [r.split("|")[1].strip().split()[0] for r in rows] == ["deep", "wide", "weak"]
    assert "fwd/(4)" in out
