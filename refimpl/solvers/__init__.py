"""Layer 2: module solvers (Newton, fixed point) and their results."""
from .result import ConvergenceError, SolveStatus

__all__ = ["ConvergenceError", "SolveStatus"]
