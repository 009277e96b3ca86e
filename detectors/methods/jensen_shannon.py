"""Jensen-Shannon distance, base 2 (in [0, 1]).

``sqrt((KL(p || m) + KL(q || m)) / 2)`` with ``m = (p + q) / 2``; equals
``scipy.spatial.distance.jensenshannon(p, q, base=2)``. Needs no smoothing.
"""

from __future__ import annotations

import numpy as np

from detectors._arrays import FloatArray, IntArray
from detectors.methods._binned import HistogramDistance, both_proportions
from detectors.methods.base import register


def _kl_to_mixture(p: FloatArray, m: FloatArray) -> float:
    mask = p > 0
    return float(np.sum(p[mask] * np.log2(p[mask] / m[mask])))


@register
class JensenShannon(HistogramDistance):
    """Jensen-Shannon distance (numeric on deciles, categorical)."""

    name = "jensen_shannon"
    title = "Jensen-Shannon"
    default_threshold = 0.1

    def distance(self, reference: IntArray, current: IntArray) -> float:
        """Return the base-2 Jensen-Shannon distance between the two histograms."""
        p, q = both_proportions(reference, current)
        m = (p + q) / 2
        divergence = (_kl_to_mixture(p, m) + _kl_to_mixture(q, m)) / 2
        return float(np.sqrt(max(divergence, 0.0)))
