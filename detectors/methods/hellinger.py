"""Hellinger distance (in [0, 1]).

``H = sqrt(1 - sum_i sqrt(p_i * q_i))``, equivalently
``||sqrt(p) - sqrt(q)||_2 / sqrt(2)``.
"""

from __future__ import annotations

import numpy as np

from detectors._arrays import IntArray
from detectors.methods._binned import HistogramDistance, both_proportions
from detectors.methods.base import DRIFT_METHODS


@DRIFT_METHODS.register
class Hellinger(HistogramDistance):
    """Hellinger distance (numeric on deciles, categorical).

    Same distribution, then a shifted one:

    >>> import numpy as np
    >>> from detectors.pairs import NumericPair
    >>> rng = np.random.default_rng(0)
    >>> reference = rng.normal(0, 1, 500)
    >>> same = NumericPair.from_values(reference, rng.normal(0, 1, 200))
    >>> shifted = NumericPair.from_values(reference, rng.normal(0.5, 1, 200))  # mean + 0.5 sd
    >>> method = Hellinger()
    >>> [round(method.compare(pair).statistic, 3) for pair in (same, shifted)]
    [0.049, 0.196]
    >>> [method.compare(pair).statistic > method.default_threshold for pair in (same, shifted)]
    [False, True]
    """

    name = "hellinger"
    title = "Hellinger"
    default_threshold = 0.1

    def distance(self, reference: IntArray, current: IntArray) -> float:
        """Return the Hellinger distance between the two histograms."""
        p, q = both_proportions(reference, current)
        # The L2 form, not sqrt(1 - sum sqrt(p q)): that one cancels to ~1e-8 on
        # identical histograms instead of 0.
        return float(np.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2) / 2))
