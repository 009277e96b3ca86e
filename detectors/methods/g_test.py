"""G-test (log-likelihood ratio test) of homogeneity on the 2 x k table of category counts.

``G = 2 * sum O * ln(O / E)``, chi-square distributed with ``k - 1`` degrees
of freedom; equals ``scipy.stats.chi2_contingency(table, correction=False,
lambda_="log-likelihood")``. Same table as the chi-square test.
"""

from __future__ import annotations

import numpy as np

from detectors._arrays import FloatArray
from detectors.methods._contingency import HomogeneityTest
from detectors.methods.base import register


@register
class GTest(HomogeneityTest):
    """G-test of homogeneity (categorical)."""

    name = "g_test"
    title = "G-test"

    def statistic(self, observed: FloatArray, expected: FloatArray) -> float:
        """Return ``2 * sum O ln(O / E)`` over the non-empty cells."""
        present = observed > 0
        return float(2 * np.sum(observed[present] * np.log(observed[present] / expected[present])))
