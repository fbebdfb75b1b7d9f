"""Central finite differences shared by the derivative tests (now in :mod:`refimpl.testing`)."""
from refimpl.testing import central_difference, central_gradient  # noqa: F401
