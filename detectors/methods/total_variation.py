"""Total variation distance: half the L1 distance between the category proportions.

The share of probability mass that would have to move to turn one
distribution into the other; in [0, 1].
"""

from __future__ import annotations

from detectors.kinds import ColumnKind
from detectors.methods.base import DriftMethod, MethodResult, register, result, total_variation
from detectors.pairs import CategoricalPair


@register
class TotalVariation(DriftMethod):
    """Total variation distance (categorical)."""

    name = "total_variation"
    title = "Total variation"
    kinds = frozenset({ColumnKind.CATEGORICAL})
    is_test = False
    default_threshold = 0.1

    def categorical(self, pair: CategoricalPair) -> MethodResult:
        """Return the distance, which is also the effect size."""
        tvd = total_variation(pair)
        return result(pair, tvd, None, tvd)
