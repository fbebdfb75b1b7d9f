"""Errata of the paper's Eq. (4), (7) and Alg. 1-3 (DESIGN.md section 9, proofs/errata.md).

Each test implements the paper's literal reading next to the corrected one and shows,
against an oracle (central differences, the library's level schedule and forward), that
the literal reading fails and the corrected one holds.
"""
import numpy as np
import pytest
from scipy.sparse.csgraph import connected_components

from refimpl import forward
from refimpl.activations import get_activation, sigmoid, softmax
from refimpl.graph import graph_from_mask
from refimpl.model import loss_and_grad
from refimpl.testing import central_difference, random_case, rel_error

TIGHT = dict(atol=1e-13, rtol=1e-13)


# ----------------------------------------------------------------------------
# Eq. (4) and Eq. (7): g' at the output X^m = g(Z), or at Z
# ----------------------------------------------------------------------------


def _sq_loss_through(g, Z, T):
    """0.5 mean_b ||g(Z) - T||^2: a loss on the output Y = g(Z), not on Z."""
    D = g(Z) - T
    return 0.5 * float(np.sum(D * D)) / Z.shape[0]


def _wm_case(seed=3):
    net, X0, _ = random_case(seed, p=10, k=30, n_out=3, output="sigmoid")
    fwd = forward(net, X0, **TIGHT)
    T = np.random.default_rng(seed + 7).uniform(0.0, 1.0, size=fwd.Z.shape)
    return net, X0, T, fwd


def test_erratum_eq7_g_prime_at_z_not_at_output():
    """Eq. (7) reads dW^m = (dX^m o g'(X^m))^T f(X) with X^m = g(Z), the output.
    With a sigmoid output and a loss on Y = g(Z), central differences in W^m agree with
    g'(Z) and not with g'(g(Z))."""
    net, X0, T, fwd = _wm_case()
    F = fwd.F  # f(X); W^m does not enter Eq. (3), so X is fixed under changes of W^m
    B = X0.shape[0]
    Z = F @ net.Wm.T
    Y = sigmoid(Z)
    dY = (Y - T) / B  # dL/dY
    dsig = lambda a: sigmoid(a) * (1.0 - sigmoid(a))  # noqa: E731
    literal = (dY * dsig(Y)).T @ F  # g' evaluated at the output X^m = Y (Eq. 7 as printed)
    corrected = (dY * dsig(Z)).T @ F  # g' at Z
    fd = central_difference(lambda Wm: _sq_loss_through(sigmoid, F @ Wm.T, T), net.Wm)
    # FD error budget (h = 1e-6, |L| ~ 0.1): ~1e-10 absolute; rtol 1e-6, atol 1e-9.
    np.testing.assert_allclose(corrected, fd, rtol=1e-6, atol=1e-9)
    assert rel_error(literal, fd) > 0.05, "the literal g'(X^m) would be right"


def test_erratum_eq4_g_prime_at_z_not_at_output():
    """Eq. (4)'s output term sum_j dx^m_j g'(x^m_j) w^m_ij: with g' at the output the node
    gradients are wrong; with g' at Z the library's adjoint gives dL/db (central differences
    of the full loss through the forward solve)."""
    net, X0, T, fwd = _wm_case(4)
    g = fwd.graph
    B = X0.shape[0]
    dsig = lambda a: sigmoid(a) * (1.0 - sigmoid(a))  # noqa: E731
    dY = (fwd.Y - T) / B

    def bias_grad(G):
        # backward with dL/dZ = G: the bias gradient is sum_b U (Eq. 6 on the diagonal)
        from refimpl.propagate import backward

        return np.diag(backward(net, fwd, G).K)

    literal = bias_grad(dY * dsig(fwd.Y))
    corrected = bias_grad(dY * dsig(fwd.Z))

    def loss(K):
        Z = forward(net, X0, g.with_weights(K), **TIGHT).Z
        return _sq_loss_through(sigmoid, Z, T)

    fd = central_difference(loss, net.K, index=[(i, i) for i in range(net.p)])
    # Solves to 1e-13 over h = 1e-6: 1e-7 absolute at worst; atol 1e-7, rtol 1e-5.
    np.testing.assert_allclose(corrected, fd, rtol=1e-5, atol=1e-7)
    assert rel_error(literal, fd) > 0.05


def test_erratum_eq7_softmax_g_prime_is_a_jacobian():
    """For a softmax output g' is a Jacobian: the elementwise s(1 - s) (even at Z) is wrong;
    J^T dY = s o (dY - <dY, s>) matches central differences."""
    net, X0, T, fwd = _wm_case(5)
    F, B = fwd.F, X0.shape[0]
    Z = F @ net.Wm.T
    S = softmax(Z)
    dY = (S - T) / B
    elementwise = (dY * S * (1.0 - S)).T @ F
    jacobian = (S * (dY - np.sum(dY * S, axis=1, keepdims=True))).T @ F
    fd = central_difference(lambda Wm: _sq_loss_through(softmax, F @ Wm.T, T), net.Wm)
    np.testing.assert_allclose(jacobian, fd, rtol=1e-6, atol=1e-9)
    assert rel_error(elementwise, fd) > 0.05


# ----------------------------------------------------------------------------
# Alg. 1: the queues (line 12) and the final step of the backward (line 44)
# ----------------------------------------------------------------------------


def alg1_forward(A, b, X0W1, f, *, join="and", replace=False, max_rounds=100):
    """Alg. 1 (Forward) transcribed from the paper, push form.

    Node_Queue holds nodes on no cycle, NM_Queue the neural modules (SCCs of size >= 2,
    found here by scipy, independently of refimpl).  A processed node pushes f(x_i) w_ij
    along its remaining out-edges, which are then deleted (lines 13-21); a processed module
    solves its equations given what has been pushed into it (line 23, Newton), pushes out
    and its edges are deleted (line 28).  Lines 29-38 enqueue what has become ready.

    ``join="and"`` / ``replace=False`` with the OutArc/has-edges conditions is the
    printed algorithm (line 12, the queues only ever grow); ``join="or"`` with
    ``replace=True`` is the corrected reading (each round's queues replaced by the newly
    ready set; sinks are enqueued too, they push nothing).

    Returns ``(X, rounds, terminated)``: node values, the list of processed node sets per
    round, and whether the while loop ended within ``max_rounds``.
    """
    p = A.shape[0]
    n_comp, lab = connected_components(A != 0, directed=True, connection="strong")
    members = [np.flatnonzero(lab == c) for c in range(n_comp)]
    C = A != 0  # the coefficient matrix's edges, deleted as the algorithm runs
    X = (X0W1 + b).copy()  # line 4 (with the biases of Eq. 3)
    literal = not replace

    def in_arc(c):  # edges into component c from outside it
        m = members[c]
        return int(C[np.setdiff1d(np.arange(p), m)][:, m].sum())

    def has_edges(c):
        m = members[c]
        return bool(C[m].any() or C[:, m].any())

    single = [c for c in range(n_comp) if members[c].size == 1]
    multi = [c for c in range(n_comp) if members[c].size > 1]
    node_q = [c for c in single if in_arc(c) == 0]  # line 10
    nm_q = [c for c in multi if in_arc(c) == 0]  # line 11
    done, rounds = set(), []

    def push(m):
        for i in m:
            out = np.flatnonzero(C[i])
            out = out[~np.isin(out, m)]
            X[:, out] += f(X[:, [i]]) * A[i, out]

    def solve(m):
        for s in range(X.shape[0]):
            c = X[s, m].copy()
            x = c.copy()
            Amm = A[np.ix_(m, m)]
            for _ in range(60):
                F = x - c - f(x) @ Amm
                J = np.eye(m.size) - Amm.T * ((1 - f(x) ** 2)[None, :])  # f = tanh
                x = x - np.linalg.solve(J, F)
            X[s, m] = x

    for r in range(max_rounds):
        if join == "and" and not (node_q and nm_q):  # line 12 as printed
            return X, rounds, True
        if join == "or" and not (node_q or nm_q):
            return X, rounds, True
        processed = []
        for c in node_q:  # lines 13-21
            if c in done and literal:
                continue  # already pushed: its out-edges are gone
            push(members[c])
            C[members[c], :] = False
            processed.append(c)
        for c in nm_q:  # lines 22-28
            if c in done and literal:
                continue
            solve(members[c])
            push(members[c])
            C[members[c], :] = False
            C[:, members[c]] = False
            processed.append(c)
        done.update(processed)
        rounds.append(sorted(int(i) for c in processed for i in members[c]))
        if literal:  # lines 29-38: enqueue (never dequeue)
            for c in single:
                m = members[c]
                if c not in node_q and in_arc(c) == 0 and C[m].any():
                    node_q.append(c)
            for c in multi:
                if c not in nm_q and in_arc(c) == 0 and has_edges(c):
                    nm_q.append(c)
        else:
            node_q = [c for c in single if c not in done and in_arc(c) == 0]
            nm_q = [c for c in multi if c not in done and in_arc(c) == 0]
    return X, rounds, False


def _alg1_case(seed, p=12, k=30):
    net, X0, _ = random_case(seed, p=p, k=k, scale=0.6)
    g = net.prune()
    return net, X0, g, g.A.toarray()


@pytest.mark.parametrize("seed", [0, 2, 5])
def test_erratum_alg1_line12_or_and_replaced_queues_is_the_level_schedule(seed):
    """The corrected Alg. 1 (OR, each round's queues replaced by the newly ready set) ends
    after n_levels rounds, its rounds are Schedule's levels and its values are Eq. (3)'s
    solution; the printed Alg. 1 (AND, queues never emptied) does neither."""
    net, X0, g, A = _alg1_case(seed)
    fwd = forward(net, X0, g, **TIGHT)
    X, rounds, done = alg1_forward(A, g.b, X0 @ net.W1.T, np.tanh, join="or", replace=True)
    assert done and len(rounds) == g.schedule.n_levels
    for lev, nodes in zip(g.schedule.levels, rounds):
        assert sorted(lev.nodes.tolist()) == nodes
    # Newton to machine precision in both: rounding only (cond ~ 10).
    np.testing.assert_allclose(X, fwd.X, rtol=1e-10, atol=1e-12)
    # The printed loop condition: with AND it either never starts (no module or no
    # source node) or never ends (the queues are never emptied).
    Xl, rl, done_l = alg1_forward(A, g.b, X0 @ net.W1.T, np.tanh, join="and", max_rounds=40)
    assert (not done_l) or rl == [] or not np.allclose(Xl, fwd.X)


def test_erratum_alg1_line12_and_on_a_dag_propagates_nothing():
    """On a DAG there is no neural module: NM_Queue starts empty, so the printed
    `while Node_Queue is not null and NM_Queue is not null` never runs."""
    net, X0, _, _ = _alg1_case(1)
    K = net.K.copy()
    upper = np.triu(np.abs(K) > 0.15, 1)
    g = graph_from_mask(K, upper)
    assert g.schedule.is_dag and g.schedule.n_levels > 1
    A = g.A.toarray()
    fwd = forward(net, X0, g, **TIGHT)
    Xl, rl, done = alg1_forward(A, g.b, X0 @ net.W1.T, np.tanh, join="and")
    assert done and rl == []
    np.testing.assert_array_equal(Xl, X0 @ net.W1.T + g.b)  # nothing propagated
    assert rel_error(Xl, fwd.X) > 0.05
    Xc, rc, done_c = alg1_forward(A, g.b, X0 @ net.W1.T, np.tanh, join="or", replace=True)
    assert done_c and len(rc) == g.schedule.n_levels
    np.testing.assert_allclose(Xc, fwd.X, rtol=1e-12, atol=1e-13)


def test_erratum_alg1_line12_and_never_terminates_when_both_queues_start_nonempty():
    """A graph with a source node and a source module: the printed loop runs forever
    (bounded here at 40 rounds); the corrected one ends after n_levels rounds."""
    p = 5
    K = np.zeros((p, p))
    K[0, 3] = 0.5  # node 0 (a source) -> node 3
    K[1, 2], K[2, 1] = 0.4, -0.3  # module {1, 2}, a source module
    K[2, 4] = 0.7  # module -> node 4
    K[3, 4] = -0.6
    g = graph_from_mask(K, K != 0)
    assert g.schedule.max_module_size == 2
    rng = np.random.default_rng(0)
    X0W1 = rng.standard_normal((3, p))
    A = g.A.toarray()
    _, rl, done = alg1_forward(A, g.b, X0W1, np.tanh, join="and", max_rounds=40)
    assert not done and len(rl) == 40
    assert all(r == [] for r in rl[2:])  # rounds that do nothing, forever
    _, rc, done_c = alg1_forward(A, g.b, X0W1, np.tanh, join="or", replace=True)
    assert done_c and len(rc) == g.schedule.n_levels


def test_erratum_alg1_line44_backward_is_f_prime_of_forward_times_v():
    """Alg. 1 line 44 ends the backward with X = f'(X) applied to the propagated gradient
    V; the node gradient is dL/dX = f'(X_forward) * V. Central differences of the loss in
    the biases (dL/db_i = sum_b dL/dx_i) pick the corrected one."""
    net, X0, T = random_case(7, p=12, k=36)
    g = net.prune()
    _, grads, fwd = loss_and_grad(net, X0, T, g, **TIGHT)
    df = get_activation(net.activation).df
    V = grads.V  # the propagated gradient (Eq. 4)
    literal = df(V).sum(0)  # f' applied to the gradient vector
    corrected = (df(fwd.X) * V).sum(0)

    def loss(K):
        return loss_and_grad(net, X0, T, g.with_weights(K), **TIGHT)[0]

    fd = central_difference(loss, net.K, index=[(i, i) for i in range(net.p)])
    # Solves to 1e-13 over h = 1e-6: 1e-7 absolute; atol 1e-7, rtol 1e-6.
    np.testing.assert_allclose(corrected, fd, rtol=1e-6, atol=1e-7)
    assert rel_error(literal, fd) > 0.05


# ----------------------------------------------------------------------------
# Alg. 2 line 7 and Alg. 3 line 5: Y~ = X W^mT drops g
# ----------------------------------------------------------------------------


def test_erratum_alg3_line5_prediction_drops_the_output_activation():
    """Alg. 2 line 7 / Alg. 3 line 5 compute Y~ = X W^mT (X = f(X) after Alg. 1 line 41):
    that is Z, not the output g(Z) of Sec. 3.3. With a sigmoid output the literal Y~ is no
    probability (entries outside [0, 1]); with softmax the arg max, hence the predicted
    class, happens to agree."""
    net, X0, _ = random_case(8, p=10, k=30, n_out=3, output="sigmoid", B=20)
    net.Wm *= 4.0
    fwd = forward(net, X0, **TIGHT)
    literal = fwd.F @ net.Wm.T
    assert (literal < 0).any() or (literal > 1).any()
    np.testing.assert_allclose(fwd.Y, sigmoid(literal), rtol=1e-14, atol=1e-15)
    assert rel_error(literal, fwd.Y) > 0.5
    net.output = "softmax"
    fwd = forward(net, X0, **TIGHT)
    literal = fwd.F @ net.Wm.T
    np.testing.assert_array_equal(np.argmax(literal, 1), np.argmax(fwd.Y, 1))
    assert rel_error(literal, fwd.Y) > 0.5
