"""Central finite differences shared by the derivative tests."""
import numpy as np


def central_gradient(fun, theta, h=1e-6):
    """Central differences of ``fun()`` in every entry of ``theta``.

    ``theta`` is perturbed in place (and restored), so ``fun`` reads it.
    Error budget in float64: truncation h^2 |L'''| / 6 ~ 1e-12 and rounding
    eps |L| / h ~ 1e-10 for |L| ~ 1.
    """
    g = np.zeros_like(theta)
    it = np.nditer(theta, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = theta[i]
        theta[i] = old + h
        lp = fun()
        theta[i] = old - h
        lm = fun()
        theta[i] = old
        g[i] = (lp - lm) / (2 * h)
    return g
