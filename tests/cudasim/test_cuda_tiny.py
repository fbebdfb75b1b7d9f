"""The tiny-module CUDA kernels (refimpl/xp/cuda_tiny.py) in numba's CUDA simulator.

Runs only in a process started with ``NUMBA_ENABLE_CUDASIM=1`` and
``REFIMPL_CUDA_TINY=1`` (tests/test_xp.py starts one); elsewhere it skips.
Oracles: the numba CPU Newton kernel and NumPy's dense solve.  Sizes are tiny:
the simulator runs every thread in Python.
"""
import os

import numpy as np
import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM") != "1" or os.environ.get("REFIMPL_CUDA_TINY") != "1":
    pytest.skip("needs NUMBA_ENABLE_CUDASIM=1 and REFIMPL_CUDA_TINY=1 (a separate process)",
                allow_module_level=True)

import array_api_compat.numpy as cxp  # noqa: E402

import refimpl  # noqa: E402
from refimpl import NMNetwork  # noqa: E402
from refimpl.activations import get_activation  # noqa: E402
from refimpl.graph import graph_from_mask  # noqa: E402
from refimpl.solvers.result import SolveStatus  # noqa: E402
from refimpl.xp import cuda_tiny  # noqa: E402


def stalled_module(B=12):
    rng = np.random.default_rng(13)
    q = int(rng.integers(2, 5))
    blocks = rng.standard_normal((1, q, q)) * rng.uniform(2, 8)
    np.fill_diagonal(blocks[0], 0.0)
    return blocks, rng.standard_normal((1, q, B)) * 3


def test_newton_kernel_solves_eq3_and_continues_where_newton_stalls():
    blocks, C = stalled_module()
    act = get_activation("tanh")
    X, st, it, rr = cuda_tiny.solve_stage(cxp, blocks.transpose(0, 2, 1), C, act, 1e-11,
                                          1e-11, 50, None)
    assert np.all(st == SolveStatus.CONVERGED)
    R = X - C - np.einsum("mba,mbs->mas", blocks, np.tanh(X))  # Eq. (3) on the module
    assert np.abs(R).max() <= 1e-11 * (1 + np.abs(X).max()) + 1e-15
    assert it.max() > 20, "this case needs continuation"
    D = 1.0 - np.tanh(X) ** 2
    RHS = np.random.default_rng(1).standard_normal(C.shape)
    U = cuda_tiny.adjoint_stage(cxp, blocks.transpose(0, 2, 1), D, RHS, 0.0, 0.0)
    for s in range(C.shape[2]):
        J = np.eye(C.shape[1]) - blocks[0].T * D[0, :, s][None, :]
        np.testing.assert_allclose(J.T @ U[0, :, s], RHS[0, :, s], rtol=1e-12, atol=1e-12)


def test_generic_path_with_the_kernels_matches_numba():
    rng = np.random.default_rng(3)
    p = 14
    mask = np.zeros((p, p), dtype=bool)
    for nodes in (range(0, 3), range(3, 7), range(7, 9)):  # modules of 3, 4, 2 nodes
        nodes = list(nodes)
        mask[nodes, np.roll(nodes, -1)] = True
    mask[0, 5] = mask[4, 8] = mask[8, 11] = mask[2, 12] = mask[12, 13] = True
    K = 2.0 * rng.standard_normal((p, p))  # non-contractive modules
    net = NMNetwork(K, rng.standard_normal((p, 3)), rng.standard_normal((2, p)))
    g = graph_from_mask(K, mask)
    X0, T = rng.standard_normal((3, 3)), rng.integers(0, 2, 3)
    tol = dict(atol=1e-12, rtol=1e-12)
    l0, g0, f0 = refimpl.loss_and_grad(net, X0, T, g, **tol)
    l1, g1, f1 = refimpl.loss_and_grad(net, X0, T, g, backend=np, **tol)
    used = [r for _, recs in f1.steps for r in recs if "newton_cuda" in r.other]
    assert used, "the kernel stage was not used"
    np.testing.assert_allclose(f1.X, f0.X, rtol=0, atol=1e-9)
    assert f1.status == f0.status
    for name in ("K", "W1", "Wm"):
        np.testing.assert_allclose(getattr(g1, name), getattr(g0, name), rtol=1e-8,
                                   atol=1e-12, err_msg=name)
