"""Pearson's chi-square test of homogeneity on the 2 x k table of category counts.

A two-sample test: the reference is a sample too, not a known population, so
its noise is accounted for and the false-positive rate stays at alpha when
both sides are samples of one distribution (the goodness-of-fit form used by
some tools rejects too often). Equals
``scipy.stats.chi2_contingency(table, correction=False)``; Yates' correction
is not applied because it makes the 2-category case conservative. Categories
empty on both sides are dropped; unseen categories form one cell.
"""

from __future__ import annotations

import numpy as np

from detectors._arrays import FloatArray
from detectors.methods._contingency import HomogeneityTest
from detectors.methods.base import register


@register
class ChiSquare(HomogeneityTest):
    """Chi-square test of homogeneity (categorical)."""

    name = "chi_square"
    title = "Chi-square"

    def statistic(self, observed: FloatArray, expected: FloatArray) -> float:
        """Return ``sum (O - E)^2 / E``."""
        return float(np.sum((observed - expected) ** 2 / expected))
