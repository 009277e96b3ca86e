"""Shared base of the distances computed on a histogram of both samples.

Numeric features use the ten reference-decile bins (``coarse_*`` of the pair,
identical from sketches and raw rows, so these distances are exact from a
sketch); categorical features use the reference categories plus one cell for
every unseen value. The effect size is that of :func:`detectors.effect.effect_size`.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from detectors._arrays import FloatArray, IntArray
from detectors.kinds import ColumnKind
from detectors.methods.base import (
    CategoricalMethod,
    MethodResult,
    NumericMethod,
    effect_size,
    ks_distance,
    proportions,
    result,
)
from detectors.pairs import CategoricalPair, NumericPair


class HistogramDistance(NumericMethod, CategoricalMethod):
    """A distance between two histograms on the same cells, for numeric and categorical data."""

    kinds = frozenset({ColumnKind.NUMERIC, ColumnKind.CATEGORICAL})
    is_test = False

    @abstractmethod
    def distance(self, reference: IntArray, current: IntArray) -> float:
        """Return the distance between two count vectors on the same cells."""

    def numeric(self, pair: NumericPair) -> MethodResult:
        """Distance on the reference-decile bins; exact from a sketch."""
        value = self.distance(pair.coarse_reference, pair.coarse_current)
        return result(pair, value, None, ks_distance(pair))

    def categorical(self, pair: CategoricalPair) -> MethodResult:
        """Distance on the categories (unseen ones pooled)."""
        value = self.distance(pair.reference, pair.current)
        return result(pair, value, None, effect_size(pair))


def both_proportions(reference: IntArray, current: IntArray) -> tuple[FloatArray, FloatArray]:
    """Return both count vectors as proportions, dropping cells empty on both sides."""
    keep = (reference + current) > 0
    return proportions(reference[keep]), proportions(current[keep])


def smoothed(p: FloatArray, floor: float) -> FloatArray:
    """Replace zero proportions by ``floor`` so logarithms stay finite."""
    return np.where(p == 0, floor, p)
