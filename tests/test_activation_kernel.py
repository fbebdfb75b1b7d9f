"""The fixed-point kernel's packed tanh (``refimpl.solvers.fixed_point.tanh_packed``,
exp written out in arithmetic) against np.tanh, in the kernel's row loop."""
import numba
import numpy as np
import pytest

from refimpl.solvers.fixed_point import _act_row, _tanh_packed, tanh_packed

#: tanh_packed's stated absolute error bound (its docstring): the
#: division (1 - e) / (1 + e) and the reconstruction of e = exp(-2|x|) each
#: round once or twice near 1, so a couple of half-ulps of 1 (1.1e-16 each).
TANH_ATOL = 2.3e-16


@numba.njit(cache=True, error_model="numpy")
def _tanh_loop(x, f, df):
    """The kernel's call pattern (_act_row over a contiguous row), and f'."""
    _act_row(0, x, f)
    for i in range(x.shape[0]):
        df[i] = 1.0 - f[i] * f[i]


def _run(x):
    x = np.ascontiguousarray(x, dtype=np.float64)
    f = np.empty_like(x)
    df = np.empty_like(x)
    _tanh_loop(x, f, df)
    return f, df


def test_tanh_dense_grid_within_bound():
    # dense over [-40, 40] (beyond +-19.1 tanh is +-1 in double) plus random
    # values where tanh curves and tiny ones where it is ~x
    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-40.0, 40.0, 2_000_001),
                        rng.standard_normal(200_000) * 3.0,
                        rng.uniform(-1e-3, 1e-3, 50_000)])
    f, df = _run(x)
    ref = np.tanh(x)
    np.testing.assert_array_equal(f[:1000], [tanh_packed(v) for v in x[:1000]])
    np.testing.assert_allclose(f, ref, rtol=0, atol=TANH_ATOL)
    # f' = 1 - f^2: |d(1 - t^2)| <= 2 |dt| + rounding of 1 - t^2
    np.testing.assert_allclose(df, 1.0 - ref * ref, rtol=0, atol=2 * TANH_ATOL + 2.3e-16)
    assert np.all(np.abs(f) <= 1.0)
    assert np.array_equal(np.sign(f), np.sign(ref))


def test_tanh_extremes_inf_nan_subnormal():
    tiny = np.finfo(np.float64).tiny
    x = np.array([np.inf, -np.inf, np.finfo(np.float64).max, -np.finfo(np.float64).max,
                  1e300, -1e300, 19.0, 19.1, -19.1, 40.0, -40.0, 41.0,
                  0.0, -0.0, 5e-324, -5e-324, tiny, -tiny, tiny / 4, 1e-300, 1e-17])
    f, df = _run(x)
    np.testing.assert_allclose(f, np.tanh(x), rtol=0, atol=TANH_ATOL)
    assert np.array_equal(f[:4], [1.0, -1.0, 1.0, -1.0])
    assert np.array_equal(df[:4], [0.0, 0.0, 0.0, 0.0])
    fn, dfn = _run(np.array([np.nan, -np.nan]))
    assert np.isnan(fn).all() and np.isnan(dfn).all()


@pytest.mark.parametrize("x", [-3.7, -0.2, 0.0, 1e-9, 0.6, 12.5, np.inf, -np.inf])
def test_python_source_matches_compiled(x):
    # the plain-Python source gives the same bits as its numba compilation
    # (scalar and in the packed row loop)
    f, _ = _run(np.array([x] * 8))
    assert np.all(f == tanh_packed(x))
    assert _tanh_packed(x) == tanh_packed(x)
