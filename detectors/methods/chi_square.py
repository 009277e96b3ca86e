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
from detectors.methods.base import DRIFT_METHODS


@DRIFT_METHODS.register
class ChiSquare(HomogeneityTest):
    """Chi-square test of homogeneity (categorical).

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
    >>> method = ChiSquare()
    >>> [round(method.compare(pair).statistic, 3) for pair in (same, shifted)]
    [1.242, 142.089]
    >>> [method.compare(pair).p_value < 0.05 for pair in (same, shifted)]
    [False, True]
    """

    name = "chi_square"
    title = "Chi-square"

    def statistic(self, observed: FloatArray, expected: FloatArray) -> float:
        """Return ``sum (O - E)^2 / E``."""
        return float(np.sum((observed - expected) ** 2 / expected))
