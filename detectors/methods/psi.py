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
from detectors.methods.base import register

#: Replacement for a zero proportion.
PSI_FLOOR = 1e-4


@register
class PopulationStabilityIndex(HistogramDistance):
    """Population stability index (numeric on deciles, categorical)."""

    name = "psi"
    title = "PSI"
    default_threshold = 0.2

    def distance(self, reference: IntArray, current: IntArray) -> float:
        """Return the PSI of ``current`` against ``reference`` counts."""
        p, q = both_proportions(reference, current)
        p, q = smoothed(p, PSI_FLOOR), smoothed(q, PSI_FLOOR)
        return float(np.sum((q - p) * np.log(q / p)))
