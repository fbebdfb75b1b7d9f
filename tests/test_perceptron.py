"""Graph perceptrons: S-Thm. 1 against a plain NumPy MLP, the S-Eq. 11 layout, the
explicit backward pass against central differences, and the errata of the supplement.
"""
import numpy as np
from numdiff import central_gradient
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from refimpl.perceptron import (
    gp_backward,
    gp_forward,
    gp_trace,
    infer_n_out,
    mlp_to_graph,
)
from refimpl.sagp import GPBatchNorm, SAGPStepTransform, sagp_layout

# --------------------------------------------------------------------------- oracle
# Activations written here, independently of refimpl.activations.
_ACT = {
    "tanh": np.tanh,
    "sigmoid": lambda h: 1.0 / (1.0 + np.exp(-h)),
    "swish": lambda h: h / (1.0 + np.exp(-h)),
}


def mlp(weights, biases, x, act, readout="activated"):
    """The MLP of S-Eq. 1, as plain NumPy (rows are samples).

    ``readout="activated"`` is the corrected z = W_L^T x^L; ``"pre-activation"`` is
    S-Eq. 1 as printed, z = W_L^T h^L.
    """
    f = _ACT[act]
    xl, hl = x, None
    for W, c in zip(weights[:-1], biases):
        hl = xl @ W + c
        xl = f(hl)
    last = xl if readout == "activated" else hl
    return last @ weights[-1]


# --------------------------------------------------------------------------- strategies
# Bounded, finite, and bounded away from zero so that no neuron of the last hidden layer
# sends an all-zero row (that would make the output count ambiguous, see infer_n_out).
_mag = st.floats(0.05, 1.0, allow_nan=False, allow_infinity=False)
_val = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False)


@st.composite
def mlps(draw, max_depth=5, max_width=8):
    L = draw(st.integers(0, max_depth))
    sizes = draw(st.lists(st.integers(1, max_width), min_size=L + 2, max_size=L + 2))
    weights = []
    for l in range(L + 1):
        shape = (sizes[l], sizes[l + 1])
        mag = draw(hnp.arrays(np.float64, shape, elements=_mag))
        sign = draw(hnp.arrays(np.float64, shape, elements=st.sampled_from([-1.0, 1.0])))
        weights.append(mag * sign)
    biases = [draw(hnp.arrays(np.float64, (sizes[l + 1],), elements=_val)) for l in range(L)]
    B = draw(st.integers(1, 3))
    x = draw(hnp.arrays(np.float64, (B, sizes[0]), elements=_val))
    return weights, biases, x


def _random_mlp(rng, sizes):
    W = [rng.normal(size=(sizes[l], sizes[l + 1])) for l in range(len(sizes) - 1)]
    c = [rng.normal(size=sizes[l + 1]) for l in range(len(sizes) - 2)]
    return W, c


# --------------------------------------------------------------------------- S-Thm. 1
@given(net=mlps(), act=st.sampled_from(sorted(_ACT)))
def test_s_thm1_graph_perceptron_equals_mlp(net, act):
    """S-Thm. 1: steps = L + 1 message-passing steps on the S-Eq. 2 graph give the MLP."""
    weights, biases, x = net
    L = len(biases)
    A, b = mlp_to_graph(weights, biases)
    z_gp = gp_forward(A, b, x, L + 1, act)
    z_mlp = mlp(weights, biases, x, act)
    assert z_gp.shape == z_mlp.shape
    # Both sides do the same float64 products; only the summation order of the matrix
    # products differs (the graph adds exact zeros), so they agree to rounding.
    np.testing.assert_allclose(z_gp, z_mlp, rtol=1e-12, atol=1e-12, err_msg="S-Thm. 1 / S-Eq. 4")


def test_s_thm1_single_sample_and_hand_example():
    # One input, one hidden neuron, one output: z = w1 * tanh(w0 * x + c0).
    A, b = mlp_to_graph([np.array([[2.0]]), np.array([[3.0]])], [np.array([0.5])])
    expected_A = np.array([[1.0, 2.0, 0.0], [0.0, 0.0, 3.0], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(A, expected_A)
    np.testing.assert_array_equal(b, [0.0, 0.5, 0.0])
    z = gp_forward(A, b, np.array([0.7]), 2, "tanh")
    assert z.shape == (1,)
    assert z[0] == pytest.approx(3.0 * np.tanh(2.0 * 0.7 + 0.5), rel=1e-15)


def test_s_thm1_steps_other_than_L_plus_1_differ():
    rng = np.random.default_rng(1)
    W, c = _random_mlp(rng, [3, 4, 4, 2])  # L = 2
    A, b = mlp_to_graph(W, c)
    x = rng.normal(size=(5, 3))
    z = mlp(W, c, x, "tanh")
    np.testing.assert_allclose(gp_forward(A, b, x, 3), z, rtol=1e-12, atol=1e-12)
    for steps in (2, 4):
        assert not np.allclose(gp_forward(A, b, x, steps), z, atol=1e-6)


def test_s_thm1_does_not_need_zero_initial_hidden_state():
    """Proof step of S-Eq. 9: block k after k steps depends only on x, so the zero
    padding of S-Eq. 3 may be any vector (the proof's "let a_1 = ... = 0" is not needed)."""
    rng = np.random.default_rng(8)
    W, c = _random_mlp(rng, [3, 4, 5, 2])
    A, b = mlp_to_graph(W, c)
    x = rng.normal(size=3)
    a = np.concatenate([x, rng.normal(size=A.shape[0] - 3)])  # garbage in the hidden blocks
    for _ in range(2):
        a = np.tanh(A.T @ a + b)
    z = (A.T @ a + b)[-2:]
    np.testing.assert_allclose(z, mlp(W, c, x[None], "tanh")[0], rtol=1e-12, atol=1e-12)


def test_n_out_inference_and_override():
    rng = np.random.default_rng(2)
    W, c = _random_mlp(rng, [2, 3, 2])
    A, b = mlp_to_graph(W, c)
    assert infer_n_out(A, 2) == 2
    # A neuron of the last hidden layer that sends nothing makes the count ambiguous:
    W[-1][2, :] = 0.0
    A, b = mlp_to_graph(W, c)
    assert infer_n_out(A, 2) == 3
    x = rng.normal(size=(4, 2))
    np.testing.assert_allclose(gp_forward(A, b, x, 2, n_out=2), mlp(W, c, x, "tanh"), rtol=1e-12, atol=1e-12)


def test_mlp_to_graph_rejects_bad_shapes():
    W = [np.ones((2, 3)), np.ones((3, 1))]
    with pytest.raises(ValueError, match="weights"):
        mlp_to_graph(W, [])
    with pytest.raises(ValueError, match="weights"):
        mlp_to_graph([np.ones((2, 3)), np.ones((4, 1))], [np.ones(3)])
    with pytest.raises(ValueError, match="biases"):
        mlp_to_graph(W, [np.ones(2)])


def test_gp_forward_rejects_bad_input():
    A, b = mlp_to_graph([np.ones((2, 2))], [])
    with pytest.raises(ValueError, match="steps"):
        gp_forward(A, b, np.ones(2), 0)
    with pytest.raises(ValueError, match="x"):
        gp_forward(A, b, np.ones(4), 1)
    with pytest.raises(ValueError, match="b"):
        gp_forward(A, b[:3], np.ones(2), 1)
    with pytest.raises(ValueError, match="A"):
        gp_forward(A[:3], b, np.ones(2), 1)
    with pytest.raises(ValueError, match="activation"):
        gp_forward(A, b, np.ones(2), 1, "nope")
    with pytest.raises(ValueError, match="n_out"):
        gp_forward(A, b, np.ones(2), 1, n_out=3)


# --------------------------------------------------------------------------- errata
def test_erratum_s_eq1_readout_is_activated():
    """S-Eq. 1 prints z = W_L^T h^L; the graph perceptron (and S-Eq. 10) give W_L^T x^L."""
    rng = np.random.default_rng(3)
    W, c = _random_mlp(rng, [3, 5, 4, 2])
    A, b = mlp_to_graph(W, c)
    x = rng.normal(size=(6, 3))
    z_gp = gp_forward(A, b, x, 3, "sigmoid")
    np.testing.assert_allclose(z_gp, mlp(W, c, x, "sigmoid", "activated"), rtol=1e-12, atol=1e-12)
    literal = mlp(W, c, x, "sigmoid", "pre-activation")
    assert np.abs(z_gp - literal).max() > 1e-2


def test_erratum_s_eq6_block_rows_are_activated():
    """S-Eq. 6 writes the block rows of f(a) as g_i(a_i); they are sigma(g_i(a_i))."""
    rng = np.random.default_rng(4)
    sizes = [2, 3, 3, 2]
    W, c = _random_mlp(rng, sizes)
    A, b = mlp_to_graph(W, c)
    off = np.cumsum([0] + sizes)
    a = rng.normal(size=off[-1])
    fa = np.tanh(A.T @ a + b)  # f(a) = sigma(A^T a + b), S-Eq. 3
    for i in range(len(c)):
        a_i = a[off[i] : off[i + 1]]
        g_i = W[i].T @ a_i + c[i]
        block = fa[off[i + 1] : off[i + 2]]
        np.testing.assert_allclose(block, np.tanh(g_i), rtol=1e-14, atol=1e-15)
        assert np.abs(block - g_i).max() > 1e-3  # the printed row is wrong
    # Consequence for S-Eq. 8-9: the L-fold composition yields sigma(g(...)), i.e. x^L,
    # which the graph perceptron reproduces (hidden block after L = 2 steps).
    x = rng.normal(size=(1, 2))
    tr = gp_trace(A, b, x, 3, "tanh", n_out=2)
    xL = np.tanh(np.tanh(x @ W[0] + c[0]) @ W[1] + c[1])
    np.testing.assert_allclose(tr.Xhat[2][:, off[2] : off[3]], xL, rtol=1e-12, atol=1e-14)
    linear = (x @ W[0] + c[0]) @ W[1] + c[1]  # g_1 o g_0 as printed in S-Eq. 8
    assert np.abs(tr.Xhat[2][:, off[2] : off[3]] - linear).max() > 1e-3


def test_erratum_s_eq3_last_step_uses_A_transpose():
    """S-Eq. 3 prints the last step as A . f^L(...) + b; with f(a) = sigma(A^T a + b) it is A^T."""
    rng = np.random.default_rng(5)
    sizes = [3, 4, 4, 2]
    W, c = _random_mlp(rng, sizes)
    A, b = mlp_to_graph(W, c)
    x = rng.normal(size=3)
    a = np.concatenate([x, np.zeros(A.shape[0] - 3)])
    for _ in range(2):  # L = 2 applications of f
        a = np.tanh(A.T @ a + b)
    z_transpose = (A.T @ a + b)[-2:]
    z_printed = (A @ a + b)[-2:]
    z_mlp = mlp(W, c, x[None], "tanh")[0]
    np.testing.assert_allclose(z_transpose, z_mlp, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gp_forward(A, b, x, 3), z_mlp, rtol=1e-12, atol=1e-12)
    assert np.abs(z_printed - z_mlp).max() > 1e-2


def test_erratum_s_alg1_line14_sums_over_senders():
    """S-Alg. 1 line 14 prints h_i = b_i + sum_j m_j m_ij A_ij x_i; it is A_ji x_j."""
    rng = np.random.default_rng(6)
    W, c = _random_mlp(rng, [3, 4, 2])
    A, b = mlp_to_graph(W, c)
    N = A.shape[0]

    def literal(x, steps):
        xh = np.concatenate([x, np.zeros(N - 3)])
        for l in range(steps):
            h = np.array([b[i] + sum(A[i, j] * xh[i] for j in range(N)) for i in range(N)])
            xh = np.tanh(h)
        return h[-2:]

    def corrected(x, steps):
        xh = np.concatenate([x, np.zeros(N - 3)])
        for l in range(steps):
            h = np.array([b[i] + sum(A[j, i] * xh[j] for j in range(N)) for i in range(N)])
            xh = np.tanh(h)
        return h[-2:]

    x1, x2 = rng.normal(size=3), rng.normal(size=3)
    for x in (x1, x2):
        np.testing.assert_allclose(gp_forward(A, b, x, 2), corrected(x, 2), rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(corrected(x, 2), mlp(W, c, x[None], "tanh")[0], rtol=1e-12, atol=1e-13)
    # The printed rule never moves information between neurons: the output ignores x.
    np.testing.assert_allclose(literal(x1, 2), literal(x2, 2), rtol=0, atol=0)
    assert np.abs(corrected(x1, 2) - corrected(x2, 2)).max() > 1e-3


def test_output_self_loops_of_s_eq11_break_s_thm1():
    """S-Eq. 11 puts I on the outputs, S-Eq. 2 a 0 block: with self-loops z != z_MLP."""
    rng = np.random.default_rng(7)
    # L = 2: the outputs receive sigma(b_1)-driven values at step 2, which a self-loop
    # carries into the readout.  (With L = 1 and sigma(0) = 0 the loop would add 0.)
    W, c = _random_mlp(rng, [3, 4, 4, 2])
    A, b = mlp_to_graph(W, c)
    x = rng.normal(size=(4, 3))
    z_mlp = mlp(W, c, x, "tanh")
    A_loop = A.copy()
    A_loop[-2:, -2:] += np.eye(2)
    np.testing.assert_allclose(gp_forward(A, b, x, 3), z_mlp, rtol=1e-12, atol=1e-12)
    assert np.abs(gp_forward(A_loop, b, x, 3, n_out=2) - z_mlp).max() > 1e-3


# --------------------------------------------------------------------------- S-Eq. 11
def test_sagp_layout_blocks_and_numbering():
    lay = sagp_layout(2, 3, 2)
    assert lay.N == 7
    np.testing.assert_array_equal(lay.inputs, [0, 1])
    np.testing.assert_array_equal(lay.hidden, [2, 3, 4])
    np.testing.assert_array_equal(lay.outputs, [5, 6])
    T = lay.trainable.astype(int)
    expected = np.array(
        [
            # I   I   H   H   H   O   O
            [0, 0, 1, 1, 1, 1, 1],
            [0, 0, 1, 1, 1, 1, 1],
            [0, 0, 1, 1, 1, 1, 1],
            [0, 0, 1, 1, 1, 1, 1],
            [0, 0, 1, 1, 1, 1, 1],
            [0, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0],
        ]
    )
    np.testing.assert_array_equal(T, expected)
    F = np.zeros((7, 7))
    F[0, 0] = F[1, 1] = 1.0
    np.testing.assert_array_equal(lay.fixed, F)
    F[5, 5] = F[6, 6] = 1.0
    np.testing.assert_array_equal(sagp_layout(2, 3, 2, output_self_loops=True).fixed, F)
    with pytest.raises(ValueError, match="n_in"):
        sagp_layout(0, 3, 2)


# --------------------------------------------------------------------------- backward
def _fd_check(loss, theta, grad, h=1e-6, rtol=1e-6, atol=1e-8, msg=""):
    """Central differences entry by entry.

    Error budget in float64: truncation h^2 |L'''| / 6 ~ 1e-12 and rounding
    eps |L| / h ~ 1e-10 for |L| ~ 1, far below atol = 1e-8 and rtol = 1e-6.
    """
    fd = central_gradient(loss, theta, h)
    np.testing.assert_allclose(grad, fd, rtol=rtol, atol=atol, err_msg=msg)


def _setup(seed, N=7, n0=2, n_out=2, B=4):
    rng = np.random.default_rng(seed)
    A = rng.normal(scale=0.5, size=(N, N))
    b = rng.normal(scale=0.3, size=N)
    X0 = rng.normal(size=(B, n0))
    T = rng.normal(size=(B, n_out))
    return A, b, X0, T


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "swish"])
def test_gp_backward_matches_central_differences(act):
    A, b, X0, T = _setup(10)
    steps = 3

    def loss():
        z = gp_trace(A, b, X0, steps, act, n_out=2).z
        return 0.5 * np.sum((z - T) ** 2)

    tr = gp_trace(A, b, X0, steps, act, n_out=2)
    g = gp_backward(A, tr, tr.z - T)
    _fd_check(loss, A, g.A, msg="dL/dA through the unrolled S-Alg. 2")
    _fd_check(loss, b, g.b, msg="dL/db through the unrolled S-Alg. 2")
    _fd_check(loss, X0, g.X0, msg="dL/dx through the unrolled S-Alg. 2")


@pytest.mark.parametrize("training", [True, False])
def test_gp_backward_with_batchnorm_and_dropout(training):
    A, b, X0, T = _setup(11, B=5)
    N, steps = A.shape[0], 3
    rng = np.random.default_rng(12)
    where = np.zeros(N, dtype=bool)
    where[2:5] = True
    bn = GPBatchNorm(
        gamma=rng.uniform(0.5, 1.5, N),
        beta=rng.normal(scale=0.2, size=N),
        running_mean=rng.normal(scale=0.2, size=(steps - 1, N)),
        running_var=rng.uniform(0.5, 1.5, (steps - 1, N)),
        where=where,
    )
    def transform():
        # The same dropout masks at every evaluation: a freshly seeded generator.
        return SAGPStepTransform(bn, training=training, dropout=0.3, dropout_where=where,
                                 rng=np.random.default_rng(99))

    def loss():
        z = gp_trace(A, b, X0, steps, "swish", n_out=2, transform=transform()).z
        return 0.5 * np.sum((z - T) ** 2)

    tf = transform()
    tr = gp_trace(A, b, X0, steps, "swish", n_out=2, transform=tf)
    if training:
        assert tf.dropout_masks and np.any(tf.dropout_masks[0][:, where] == 0.0)
    g = gp_backward(A, tr, tr.z - T)
    _fd_check(loss, A, g.A, msg="dL/dA with batch norm and dropout")
    _fd_check(loss, b, g.b, msg="dL/db with batch norm and dropout")
    _fd_check(loss, bn.gamma, tf.dgamma, msg="dL/dgamma")
    _fd_check(loss, bn.beta, tf.dbeta, msg="dL/dbeta")
    _fd_check(loss, X0, g.X0, msg="dL/dx with batch norm and dropout")


def test_gp_backward_dot_product_test():
    """<u, J v> (forward differences of z along v) against <J^T u, v> (the backward)."""
    A, b, X0, _ = _setup(13, N=9, n0=3, n_out=3, B=3)
    rng = np.random.default_rng(14)
    U = rng.normal(size=(3, 3))
    V = rng.normal(size=A.shape)
    h = 1e-6
    zp = gp_trace(A + h * V, b, X0, 4, "tanh", n_out=3).z
    zm = gp_trace(A - h * V, b, X0, 4, "tanh", n_out=3).z
    lhs = np.sum(U * (zp - zm) / (2 * h))
    tr = gp_trace(A, b, X0, 4, "tanh", n_out=3)
    rhs = np.sum(gp_backward(A, tr, U).A * V)
    assert lhs == pytest.approx(rhs, rel=1e-7, abs=1e-9)
