"""Wasserstein-1 (earth mover's) distance, normalised by the reference's spread.

``W = integral |F_ref - F_cur| dx / max(std_ref, 0.001)``: in units of the
reference's (population) standard deviation, so one threshold fits every
feature; 0.001 guards constant references. On an exact pair it equals
``scipy.stats.wasserstein_distance(ref, cur) / max(np.std(ref), 0.001)``.

Sketch estimate and bound: inside a bin both CDFs are taken as linear; each
CDF stays within its bin's mass of that line, so bin ``j`` contributes at most
``width_j * (p_j + q_j)`` of error. In the underflow and overflow bins the
kept value sums give each side's integral exactly; the absolute difference of
those is used, off by at most twice the smaller integral (zero when the
reference is a profile of raw rows, whose extremes are the outer edges). The
bound reported is the sum, divided by the same spread.
"""

from __future__ import annotations

import numpy as np

from detectors.kinds import ColumnKind
from detectors.methods.base import (
    DRIFT_METHODS,
    MethodResult,
    NumericMethod,
    ks_distance,
    result,
)
from detectors.pairs import NumericPair

#: Smallest spread the distance is divided by (Evidently uses the same guard).
MIN_SPREAD = 1e-3


@DRIFT_METHODS.register
class Wasserstein(NumericMethod):
    """Normalised Wasserstein-1 distance (numeric).

    Same distribution, then a shifted one:

    >>> import numpy as np
    >>> from detectors.pairs import NumericPair
    >>> rng = np.random.default_rng(0)
    >>> reference = rng.normal(0, 1, 500)
    >>> same = NumericPair.from_values(reference, rng.normal(0, 1, 200))
    >>> shifted = NumericPair.from_values(reference, rng.normal(0.5, 1, 200))  # mean + 0.5 sd
    >>> method = Wasserstein()
    >>> [round(method.compare(pair).statistic, 3) for pair in (same, shifted)]
    [0.067, 0.477]
    >>> [method.compare(pair).statistic > method.default_threshold for pair in (same, shifted)]
    [False, True]
    """

    name = "wasserstein"
    title = "Wasserstein (normed)"
    kinds = frozenset({ColumnKind.NUMERIC})
    is_test = False
    default_threshold = 0.1

    def numeric(self, pair: NumericPair) -> MethodResult:
        """Return the normalised distance, the KS distance as effect size and the bound."""
        spread = max(pair.reference_std, MIN_SPREAD)
        distance, error = _integral(pair)
        return result(pair, distance / spread, None, ks_distance(pair), error / spread)


def _integral(pair: NumericPair) -> tuple[float, float]:
    """Return ``(integral |F - G| dx, bound on its error)``."""
    n, m = pair.n_reference, pair.n_current
    edges = pair.edges
    if edges.size == 0:
        return 0.0, 0.0
    f = np.cumsum(pair.reference)[:-1] / n
    g = np.cumsum(pair.current)[:-1] / m
    gap = f - g
    widths = np.diff(edges)
    if pair.exact:
        # All mass sits on the edges: the CDFs are steps, constant between edges.
        return float(np.sum(np.abs(gap[:-1]) * widths)), 0.0
    a, b = gap[:-1], gap[1:]
    same_sign = a * b >= 0
    span = np.abs(a) + np.abs(b)
    crossing = np.divide(a * a + b * b, 2 * span, out=np.zeros_like(span), where=span > 0)
    inner = float(np.sum(widths * np.where(same_sign, span / 2, crossing)))
    inner_error = float(np.sum(widths * (pair.reference[1:-1] / n + pair.current[1:-1] / m)))
    # Outer bins: integral of F below the lowest edge is sum(e0 - x) / n, and likewise above.
    low, high = edges[0], edges[-1]
    below = (
        (pair.reference[0] * low - pair.reference_outer[0]) / n,
        (pair.current[0] * low - pair.current_outer[0]) / m,
    )
    above = (
        (pair.reference_outer[1] - pair.reference[-1] * high) / n,
        (pair.current_outer[1] - pair.current[-1] * high) / m,
    )
    outer = abs(below[0] - below[1]) + abs(above[0] - above[1])
    outer_error = 2 * (min(below) + min(above))
    return inner + outer, inner_error + outer_error
