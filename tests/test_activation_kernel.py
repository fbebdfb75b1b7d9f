"""The packed tanh (``refimpl.activations.tanh_packed``, exp written out in arithmetic)
against np.tanh, in the fixed-point kernel's row loop and as the hidden activation's
tanh of large float64 arrays."""
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


def test_hidden_tanh_takes_the_packed_kernel_where_numpy_has_no_simd_tanh(monkeypatch):
    """The hidden activation f = tanh (Eq. 3) of float64 NumPy arrays of at least
    PACKED_TANH_MIN_SIZE values runs tanh_packed in one compiled loop where NumPy's tanh
    is not vectorized (no AVX-512); the values stay within the kernel's bound of
    np.tanh, the shape (also of a non-contiguous view) is kept, and small arrays, other
    dtypes and other namespaces keep their namespace's tanh."""
    import array_api_strict as xps

    import refimpl.activations as acts

    f = acts.get_activation("tanh")
    x = np.random.default_rng(3).standard_normal((40, 60)) * 4
    calls = []
    real = acts.tanh_float64
    monkeypatch.setattr(acts, "tanh_float64", lambda a: calls.append(a.shape) or real(a))
    for packed in (True, False):
        monkeypatch.setattr(acts, "_PACKED_TANH", packed)
        calls.clear()
        view = x[:, ::2]  # non-contiguous, 1200 values
        fortran = np.asfortranarray(x)
        for a in (x, view, fortran):
            got = f.f(a)
            assert got.shape == a.shape
            np.testing.assert_allclose(got, np.tanh(a), rtol=0, atol=TANH_ATOL)
            np.testing.assert_allclose(f.df(a), 1 - np.tanh(a) ** 2, rtol=0,
                                       atol=3 * TANH_ATOL)
            assert got.flags.f_contiguous == (a is fortran)  # the layout is kept
        assert len(calls) == (6 if packed else 0)  # f and f' of x, the view, the F-order copy
        calls.clear()
        small = x[0, :acts.PACKED_TANH_MIN_SIZE - 1]
        np.testing.assert_array_equal(f.f(small), np.tanh(small))
        np.testing.assert_array_equal(f.f(x.astype(np.float32)), np.tanh(x.astype(np.float32)))
        xs = xps.asarray(x)
        assert isinstance(f.f(xs), type(xs))
        assert calls == []


def test_packed_tanh_choice_follows_numpys_cpu_dispatch(monkeypatch):
    """packed_tanh_is_faster: NumPy's float64 tanh is SVML-vectorized with AVX512_SKX
    only; the choice reads NumPy's dispatch table, so a machine always computes the
    same bits (no timing decides)."""
    import refimpl.activations as acts

    umath = (getattr(np, "_core", None) or np.core)._multiarray_umath
    for skx, expected in ((True, False), (False, True)):
        monkeypatch.setattr(umath, "__cpu_features__",
                            {**umath.__cpu_features__, "AVX512_SKX": skx})
        assert acts.packed_tanh_is_faster() is expected


def test_packed_tanh_keeps_relative_accuracy_and_sign_near_zero():
    """For |x| < ~0.173 (k = 0) tanh_packed is -em1 / (2 + em1) with em1 = exp(-2|x|) - 1
    from the series without its leading 1, so tiny arguments keep their relative
    accuracy (the form (1 - e) / (1 + e) lost it: 2.2e-5 relative error at 1e-12, 0 below
    ~1e-17), and the sign is x's, -0.0 included.  Bound: 4 ulp (measured 1.5), against
    np.tanh, over 40 decades and both signs, in the kernel's row loop and alone."""
    x = np.geomspace(1e-300, 0.2, 4001)
    x = np.concatenate([x, -x, [np.finfo(float).tiny / 8, -np.finfo(float).tiny / 8]])
    f = np.empty_like(x)
    df = np.empty_like(x)
    _tanh_loop(x, f, df)
    ref = np.tanh(x)
    np.testing.assert_allclose(f, ref, rtol=4 * np.finfo(float).eps, atol=0)
    assert all(tanh_packed(v) == w for v, w in zip(x[::97], f[::97]))  # scalar = loop
    z = np.array([0.0, -0.0] * 200)
    _tanh_loop(z, f[:z.size], df[:z.size])
    np.testing.assert_array_equal(np.signbit(f[:z.size]), np.signbit(z))
