"""Total variation distance: half the L1 distance between the category proportions.

The share of probability mass that would have to move to turn one
distribution into the other; in [0, 1].
"""

from __future__ import annotations

from detectors.kinds import ColumnKind
from detectors.methods.base import (
    DRIFT_METHODS,
    CategoricalMethod,
    MethodResult,
    effect_size,
    result,
    total_variation,
)
from detectors.pairs import CategoricalPair


@DRIFT_METHODS.register
class TotalVariation(CategoricalMethod):
    """Total variation distance (categorical).

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
    >>> method = TotalVariation()
    >>> [round(method.compare(pair).statistic, 3) for pair in (same, shifted)]
    [0.023, 0.216]
    >>> [method.compare(pair).statistic > method.default_threshold for pair in (same, shifted)]
    [False, True]
    """

    name = "total_variation"
    title = "Total variation"
    kinds = frozenset({ColumnKind.CATEGORICAL})
    is_test = False
    default_threshold = 0.1

    def categorical(self, pair: CategoricalPair) -> MethodResult:
        """Return the distance and the effect size (the distance unless the labels are ordinal)."""
        return result(pair, total_variation(pair), None, effect_size(pair))
