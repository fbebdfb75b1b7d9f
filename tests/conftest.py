"""Hypothesis profiles: a relaxed ``dev`` profile and a derandomized ``ci`` one.

Select with ``HYPOTHESIS_PROFILE=ci`` (``.ci/run`` does) or pytest's
``--hypothesis-profile``.  ``CI=true`` in the environment also selects ``ci``.

numba's on-disk cache (``cache=True``) decides that a compiled kernel is stale
from the file that defines it only, while kernels inline functions of other files
(``refimpl.activations.tanh_packed`` into the fixed-point kernels, ``newton._act``):
after an edit there, the cache would serve the old code and the tests could pass on
it.  So the tests keep numba's cache in ``.numba_cache/<hash of refimpl's sources>``
(unless ``NUMBA_CACHE_DIR`` is set): any edit to the package starts a fresh cache.
"""
import hashlib
import os
import shutil
from pathlib import Path


def _numba_cache_dir():
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted((root / "refimpl").rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    base = root / ".numba_cache"
    here = base / digest.hexdigest()[:16]
    if base.is_dir():  # caches of earlier sources: never read again
        for old in base.iterdir():
            if old != here:
                shutil.rmtree(old, ignore_errors=True)
    return str(here)


if "NUMBA_CACHE_DIR" not in os.environ:  # before anything imports numba
    os.environ["NUMBA_CACHE_DIR"] = _numba_cache_dir()

from hypothesis import HealthCheck, settings

settings.register_profile(
    "dev",
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "ci",
    max_examples=30,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
_default = "ci" if os.environ.get("CI", "").lower() in ("1", "true", "yes") else "dev"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", _default))


# ---------------------------------------------------------------- backends
import numpy as np  # noqa: E402
import pytest  # noqa: E402


class BackendCase:
    """One backend of the ``backend`` fixture: what to pass as ``backend=``,
    how to make its input arrays, and how to check where results live."""

    def __init__(self, name, backend, xp=None, device=None):
        self.name, self.backend, self.xp, self.device = name, backend, xp, device

    @property
    def reference(self):
        return self.name == "numpy"

    def asarray(self, a):
        """A NumPy array as this backend's input array (on its device)."""
        if self.xp is None:
            return np.asarray(a)
        return self.xp.asarray(np.asarray(a), device=self.device)

    def to_numpy(self, a):
        from refimpl.backend import to_numpy

        return to_numpy(a)

    def assert_on_device(self, a):
        """``a`` is an array of this backend's namespace on its device."""
        if self.xp is None:
            assert isinstance(a, np.ndarray), type(a)
            return
        import array_api_compat

        assert array_api_compat.array_namespace(a) is array_api_compat.array_namespace(
            self.xp.asarray(0.0, device=self.device)), type(a)
        assert array_api_compat.device(a) == self.device, array_api_compat.device(a)


def _backend_cases():
    cases = [pytest.param("numpy", id="numpy"),
             pytest.param("numpy-generic", id="numpy-generic"),
             pytest.param("array_api_strict", id="array_api_strict-device1")]
    try:
        import cupy

        if cupy.cuda.is_available():  # pragma: no cover - GPU machines only
            cases.append(pytest.param("cupy", id="cupy"))
    except Exception:
        pass
    return cases


@pytest.fixture(params=_backend_cases())
def backend(request):
    """The backends of DESIGN.md section 3: the numba path ("numpy"), the
    generic path on NumPy arrays, on ``array_api_strict`` on its non-default
    device (a stray NumPy call raises), and on CuPy where a GPU exists."""
    name = request.param
    if name == "numpy":
        return BackendCase(name, "numpy")
    if name == "numpy-generic":
        return BackendCase(name, np)
    if name == "array_api_strict":
        import array_api_strict

        return BackendCase(name, array_api_strict, array_api_strict,
                           array_api_strict.Device("device1"))
    import array_api_compat  # pragma: no cover - GPU machines only
    import array_api_compat.cupy as ccp  # pragma: no cover

    dev = array_api_compat.device(ccp.asarray(0.0))  # pragma: no cover
    return BackendCase(name, "cupy", ccp, dev)  # pragma: no cover
