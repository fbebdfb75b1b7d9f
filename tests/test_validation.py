"""refimpl.validation, the single home of input checks: each returns the canonical value
or raises ValueError starting with the argument's name."""
import numpy as np
import pytest

from refimpl.validation import (check_finite_array, check_int, check_labels, check_rows,
                                check_samples, check_scalar)


def test_check_int():
    assert check_int(np.int32(4), "n", 1) == 4 and type(check_int(np.int64(0), "n")) is int
    for bad, match in [(True, "n: expected a positive integer"), (2.0, "n: expected"),
                       (0, "n: expected a positive integer, got 0")]:
        with pytest.raises(ValueError, match=match):
            check_int(bad, "n", 1)
    with pytest.raises(ValueError, match="k: expected an integer >= 2"):
        check_int(1, "k", 2)


def test_check_scalar():
    assert check_scalar(np.float32(0.5), "a", minimum=0.0, strict=True) == 0.5
    assert check_scalar(0, "a", minimum=0.0) == 0.0
    for v, match in [(0.0, "a: expected a finite number > 0"), (np.nan, "a: expected a finite"),
                     ("x", "a: expected a real number"), (False, "a: expected a real number")]:
        with pytest.raises(ValueError, match=match):
            check_scalar(v, "a", minimum=0.0, strict=True)


def test_array_checks():
    np.testing.assert_array_equal(check_rows([1, 2], 2), [[1.0, 2.0]])
    with pytest.raises(ValueError, match=r"X0: expected shape \(\*, 3\)"):
        check_rows(np.zeros((2, 2)), 3)
    with pytest.raises(ValueError, match="X: expected at least one sample"):
        check_samples(np.zeros((0, 2)), 2)
    with pytest.raises(ValueError, match="X: entries must be finite"):
        check_samples([[np.inf, 0.0]], 2)
    with pytest.raises(ValueError, match="r: expected a 1-D array"):
        check_finite_array(np.zeros((2, 2)), "r", 1)
    y = check_labels(np.array([0, 2], dtype=np.int32), 2, 3)
    assert y.dtype == np.int64
    with pytest.raises(ValueError, match=r"y: labels must lie in \[0, 3\), got \[0, 3\]"):
        check_labels([0, 3], 2, 3)
    with pytest.raises(ValueError, match="y: expected 2 integer class labels"):
        check_labels([0.0, 1.0], 2, 3)
