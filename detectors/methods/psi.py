"""Population stability index.

``PSI = sum_i (q_i - p_i) * ln(q_i / p_i)`` over the cells (reference deciles
for numeric features, categories for categorical ones), where ``p`` and ``q``
are the reference and current proportions and a zero proportion is replaced by
0.0001 (the industry convention, also Evidently's). Rule of thumb: below 0.1 no
change, 0.1-0.2 moderate, above 0.2 (the default threshold) significant.
"""

from __future__ import annotations

import numpy as np

from detectors._arrays import IntArray
from detectors.methods._binned import HistogramDistance, both_proportions, smoothed
from detectors.methods.base import DRIFT_METHODS

#: Replacement for a zero proportion.
PSI_FLOOR = 1e-4


@DRIFT_METHODS.register
class PopulationStabilityIndex(HistogramDistance):
    """Population stability index (numeric on deciles, categorical).

    Same distribution, then a shifted one:

    >>> import numpy as np
    >>> from detectors.pairs import NumericPair
    >>> rng = np.random.default_rng(0)
    >>> reference = rng.normal(0, 1, 500)
    >>> same = NumericPair.from_values(reference, rng.normal(0, 1, 200))
    >>> shifted = NumericPair.from_values(reference, rng.normal(0.5, 1, 200))  # mean + 0.5 sd
    >>> method = PopulationStabilityIndex()
    >>> [round(method.compare(pair).statistic, 3) for pair in (same, shifted)]
    [0.019, 0.313]
    >>> [method.compare(pair).statistic > method.default_threshold for pair in (same, shifted)]
    [False, True]
    """

    name = "psi"
    title = "PSI"
    default_threshold = 0.2

    def distance(self, reference: IntArray, current: IntArray) -> float:
        """Return the PSI of ``current`` against ``reference`` counts."""
        p, q = both_proportions(reference, current)
        p, q = smoothed(p, PSI_FLOOR), smoothed(q, PSI_FLOOR)
        return float(np.sum((q - p) * np.log(q / p)))
