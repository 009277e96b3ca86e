"""G-test (log-likelihood ratio test) of homogeneity on the 2 x k table of category counts.

``G = 2 * sum O * ln(O / E)``, chi-square distributed with ``k - 1`` degrees
of freedom; equals ``scipy.stats.chi2_contingency(table, correction=False,
lambda_="log-likelihood")``. Same table as the chi-square test.
"""

from __future__ import annotations

import numpy as np

from detectors._arrays import FloatArray
from detectors.methods._contingency import HomogeneityTest
from detectors.methods.base import DRIFT_METHODS


@DRIFT_METHODS.register
class GTest(HomogeneityTest):
    """G-test of homogeneity (categorical).

    Same distribution, then a shifted one:

    >>> import numpy as np
    >>> from detectors.pairs import UNSEEN, CategoricalPair
    >>> rng = np.random.default_rng(1)
    >>> reference = rng.multinomial(1000, [0.5, 0.3, 0.2, 0.0])  # counts of a, b, c, unseen
    >>> def versus(p):
    ...     current = rng.multinomial(400, p)
    ...     return CategoricalPair(categories=("a", "b", "c", UNSEEN), reference=reference,
    ...                            current=current)
    >>> same, shifted = versus([0.5, 0.3, 0.2, 0.0]), versus([0.3, 0.3, 0.3, 0.1])
    >>> method = GTest()
    >>> [round(method.compare(pair).statistic, 3) for pair in (same, shifted)]
    [1.235, 143.385]
    >>> [method.compare(pair).p_value < 0.05 for pair in (same, shifted)]
    [False, True]
    """

    name = "g_test"
    title = "G-test"

    def statistic(self, observed: FloatArray, expected: FloatArray) -> float:
        """Return ``2 * sum O ln(O / E)`` over the non-empty cells."""
        present = observed > 0
        return float(2 * np.sum(observed[present] * np.log(observed[present] / expected[present])))
