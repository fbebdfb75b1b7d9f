"""The PyTorch whole-graph peer of the benchmarks (benchmarks/peer_torch.py)
against the library's forward / backward on a small graph.  Skipped without torch."""
import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "benchmarks"))
from peer_torch import torch_equilibrium  # noqa: E402

from refimpl import NMNetwork, backward, forward  # noqa: E402
from refimpl.graph import graph_from_mask  # noqa: E402


def test_torch_peer_matches_forward_and_backward():
    rng = np.random.default_rng(0)
    p, n_in, n_out, B = 12, 3, 2, 5
    mask = rng.random((p, p)) < 0.3
    np.fill_diagonal(mask, False)
    K = np.where(mask, 0.3 * rng.standard_normal((p, p)), 0.0)  # contractive: ||A|| small
    np.fill_diagonal(K, 0.1 * rng.standard_normal(p))
    net = NMNetwork(K, rng.standard_normal((p, n_in)), rng.standard_normal((n_out, p)),
                    output="identity")
    g = graph_from_mask(K, mask)
    X0 = rng.standard_normal((B, n_in))
    G = rng.standard_normal((B, n_out))
    fwd = forward(net, X0, g, atol=1e-13, rtol=1e-13)
    grads = backward(net, fwd, G)
    out = torch_equilibrium(g.A, g.b, net.W1, net.Wm, X0, G, tol=1e-13)
    # both solves stop at 1e-13 relative steps of contractions (rate < 0.5): a
    # few 1e-13 of error; the gradients add one adjoint solve at the same tolerance
    np.testing.assert_allclose(out["X"], fwd.X, rtol=1e-11, atol=1e-11, err_msg="Eq. (3)")
    np.testing.assert_allclose(out["Z"], fwd.Z, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(out["dA"], grads.K[out["rows"], out["cols"]], rtol=1e-10,
                               atol=1e-10, err_msg="Eq. (6) on the kept edges")
    np.testing.assert_allclose(out["db"], np.diag(grads.K), rtol=1e-10, atol=1e-10,
                               err_msg="Eq. (6) biases")
    np.testing.assert_allclose(out["dW1"], grads.W1, rtol=1e-10, atol=1e-10, err_msg="Eq. (8)")
    np.testing.assert_allclose(out["dWm"], grads.Wm, rtol=1e-10, atol=1e-10, err_msg="Eq. (7)")
    assert out["iterations"] > 1 and out["adjoint_iterations"] > 1
