"""Hypothesis profiles: a relaxed ``dev`` profile and a derandomized ``ci`` one.

Select with ``HYPOTHESIS_PROFILE=ci`` (``.ci/run`` does) or pytest's
``--hypothesis-profile``.  ``CI=true`` in the environment also selects ``ci``.
"""
import os

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
