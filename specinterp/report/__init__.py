"""The ``specinterp report`` main job: analyses of a real model on real data."""

from .digits import DigitsAnalysis, JacobianSummary, run_digits_analysis

__all__ = ["DigitsAnalysis", "JacobianSummary", "run_digits_analysis"]
