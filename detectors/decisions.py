"""Turning p-values and distances into drift decisions.

* Hypothesis tests: a feature drifts when ``p_value <= threshold``. The
  threshold is ``alpha`` with no correction, ``alpha / m`` with Bonferroni (m
  tests), and with Benjamini-Hochberg the step-up cut-off ``k* alpha / m``
  (``k*`` the largest rank whose p-value is at most ``k alpha / m``; when none
  is, the smallest cut-off ``alpha / m`` is reported). So a report always shows
  the threshold its p-value was compared with.
* Distances: a feature drifts when ``statistic >= threshold``.
* Materiality: a feature drifts only if, in addition, its effect size (see
  :mod:`detectors.effect`) is at least ``min_effect_size`` with confidence: its
  one-sided lower confidence bound (:func:`detectors.effect.effect_lower_bound`)
  reaches the threshold. With a million rows a test finds "significant" shifts
  of no practical size; with a few hundred, chance alone produces sizeable
  estimates. The bound keeps both out (see :mod:`detectors.drift`).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

import numpy as np

from detectors.errors import InvalidParameterError


class Correction(StrEnum):
    """Multiple-testing correction across the features of one report."""

    NONE = "none"
    BONFERRONI = "bonferroni"
    BENJAMINI_HOCHBERG = "bh"

    @classmethod
    def parse(cls, value: str | Correction) -> Correction:
        """Return the correction named by ``value`` ('none', 'bonferroni' or 'bh')."""
        try:
            return cls(value)
        except ValueError:
            raise InvalidParameterError(
                "correction", "'none', 'bonferroni' or 'bh'", value
            ) from None


def corrected_thresholds(
    p_values: Sequence[float], alphas: Sequence[float], correction: Correction
) -> list[float]:
    """Return the per-test p-value threshold after ``correction``.

    ``alphas`` gives each test's own level (usually all equal). Benjamini-Hochberg
    uses each test's level in its own cut-off, which reduces to the textbook
    procedure when the levels are equal.

    >>> corrected_thresholds([0.001, 0.02, 0.04, 0.3], [0.05] * 4, Correction.BENJAMINI_HOCHBERG)
    [0.025, 0.025, 0.025, 0.025]
    >>> corrected_thresholds([0.001, 0.02], [0.05] * 2, Correction.BONFERRONI)
    [0.025, 0.025]
    """
    m = len(p_values)
    if m == 0:
        return []
    levels = np.asarray(alphas, dtype=np.float64)
    if correction is Correction.NONE:
        return [float(x) for x in levels]
    if correction is Correction.BONFERRONI:
        return [float(x) for x in levels / m]
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    ranks = np.arange(1, m + 1)
    passing = p[order] <= ranks * levels[order] / m
    k_star = int(ranks[passing].max()) if passing.any() else 1
    return [float(x) for x in k_star * levels / m]
