"""The threading policy (refimpl/threads.py): limits applied and restored,
nesting, bad values.  Mechanics only: no timing assertions."""
import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_info

import refimpl
from refimpl.threads import (check_threads, current_threads, default_threads, threads_policy,
                             with_threads)


def blas_threads():
    return [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]


def test_policy_applies_and_restores_limits():
    np.ones((4, 4)) @ np.ones((4, 4))  # BLAS loaded
    numba_before, blas_before = numba.get_num_threads(), blas_threads()
    assert current_threads() is None
    with threads_policy(1) as n:
        assert n == 1 and current_threads() == 1
        assert numba.get_num_threads() == 1
        assert all(t == 1 for t in blas_threads())
    assert current_threads() is None
    assert numba.get_num_threads() == numba_before
    assert blas_threads() == blas_before


def test_policy_restores_after_an_exception():
    numba_before, blas_before = numba.get_num_threads(), blas_threads()
    with pytest.raises(RuntimeError, match="boom"):
        with threads_policy(1):
            raise RuntimeError("boom")
    assert numba.get_num_threads() == numba_before and blas_threads() == blas_before
    assert current_threads() is None


def test_nesting_inherits_and_overrides():
    cap = numba.config.NUMBA_NUM_THREADS
    with threads_policy(2):
        assert numba.get_num_threads() == min(2, cap)
        with threads_policy(None) as inner:  # None inherits the outer setting
            assert inner == 2 and numba.get_num_threads() == min(2, cap)
        with threads_policy(1):
            assert numba.get_num_threads() == 1 and all(t == 1 for t in blas_threads())
            assert current_threads() == 1
        assert current_threads() == 2 and numba.get_num_threads() == min(2, cap)
        assert all(t == 2 for t in blas_threads())


def test_default_is_one_thread_or_the_environment(monkeypatch):
    monkeypatch.delenv("REFIMPL_THREADS", raising=False)
    assert default_threads() == 1
    with threads_policy() as n:
        assert n == 1 and numba.get_num_threads() == 1
    monkeypatch.setenv("REFIMPL_THREADS", "2")
    assert default_threads() == 2
    monkeypatch.setenv("REFIMPL_THREADS", "many")
    with pytest.raises(ValueError, match="REFIMPL_THREADS"):
        default_threads()


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True, [1]])
def test_bad_threads_raise_naming_the_argument(bad):
    with pytest.raises(ValueError, match="threads"):
        check_threads(bad)
    with pytest.raises(ValueError, match="threads"):
        with threads_policy(bad):
            pass


def test_decorator_adds_a_threads_keyword():
    @with_threads
    def seen(x):
        return x, current_threads(), numba.get_num_threads()

    assert seen(3, threads=1) == (3, 1, 1)
    assert "threads" in __import__("inspect").signature(seen).parameters
    with pytest.raises(ValueError, match="threads"):
        seen(3, threads=0)

    class Holder:
        def __init__(self, threads):
            self.threads = threads

        @with_threads(get=lambda self: self.threads)
        def run(self):
            return current_threads()

    assert Holder(1).run() == 1
    with pytest.raises(ValueError, match="threads"):
        Holder(-2).run()


def test_passive_openmp_waiting_is_the_default():
    import os

    assert "OMP_WAIT_POLICY" in os.environ  # set by `import refimpl` unless the user did
    assert refimpl.threads is not None


def test_entry_points_take_threads():
    from refimpl.train import TrainConfig

    net = refimpl.NMNetwork.random(3, 8, 2, seed=0, k=20)
    X0 = np.random.default_rng(0).standard_normal((4, 3))
    ref = refimpl.forward(net, X0)
    one = refimpl.forward(net, X0, threads=1)
    np.testing.assert_allclose(one.X, ref.X, rtol=1e-12, atol=1e-12)
    assert current_threads() is None
    for call in (lambda: refimpl.forward(net, X0, threads=0),
                 lambda: refimpl.backward(net, ref, np.ones((4, 2)), threads=-1),
                 lambda: refimpl.loss_and_grad(net, X0, np.array([0, 1, 0, 1]), threads=2.5),
                 lambda: TrainConfig(threads=0)):
        with pytest.raises(ValueError, match="threads"):
            call()


def test_cli_commands_have_threads():
    from refimpl.cli import COMMANDS, build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in COMMANDS:
        assert "--threads" in sub.choices[name]._option_string_actions, name
