"""Jensen-Shannon distance, base 2 (in [0, 1]).

``sqrt((KL(p || m) + KL(q || m)) / 2)`` with ``m = (p + q) / 2``; equals
``scipy.spatial.distance.jensenshannon(p, q, base=2)``. Needs no smoothing.
"""

from __future__ import annotations

import numpy as np

from detectors._arrays import FloatArray, IntArray
from detectors.methods._binned import HistogramDistance, both_proportions
from detectors.methods.base import DRIFT_METHODS


def _kl_to_mixture(p: FloatArray, m: FloatArray) -> float:
    mask = p > 0
    return float(np.sum(p[mask] * np.log2(p[mask] / m[mask])))


@DRIFT_METHODS.register
class JensenShannon(HistogramDistance):
    """Jensen-Shannon distance (numeric on deciles, categorical).

    Same distribution, then a shifted one:

    >>> import numpy as np
    >>> from detectors.pairs import NumericPair
    >>> rng = np.random.default_rng(0)
    >>> reference = rng.normal(0, 1, 500)
    >>> same = NumericPair.from_values(reference, rng.normal(0, 1, 200))
    >>> shifted = NumericPair.from_values(reference, rng.normal(0.5, 1, 200))  # mean + 0.5 sd
    >>> method = JensenShannon()
    >>> [round(method.compare(pair).statistic, 3) for pair in (same, shifted)]
    [0.059, 0.234]
    >>> [method.compare(pair).statistic > method.default_threshold for pair in (same, shifted)]
    [False, True]
    """

    name = "jensen_shannon"
    title = "Jensen-Shannon"
    default_threshold = 0.1

    def distance(self, reference: IntArray, current: IntArray) -> float:
        """Return the base-2 Jensen-Shannon distance between the two histograms."""
        p, q = both_proportions(reference, current)
        m = (p + q) / 2
        divergence = (_kl_to_mixture(p, m) + _kl_to_mixture(q, m)) / 2
        return float(np.sqrt(max(divergence, 0.0)))
