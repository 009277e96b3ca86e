"""Shared base of the homogeneity tests on the 2 x k table of category counts.

Categories empty on both sides are dropped; unseen categories form one cell.
The statistic is chi-square distributed with ``k - 1`` degrees of freedom;
the effect size is that of :func:`detectors.effect.effect_size`.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np

from detectors._arrays import FloatArray, IntArray
from detectors._distributions import chi2_sf
from detectors.kinds import ColumnKind
from detectors.methods.base import CategoricalMethod, MethodResult, effect_size, result
from detectors.pairs import CategoricalPair


def expected_counts(reference: IntArray, current: IntArray) -> tuple[FloatArray, FloatArray]:
    """Return the observed 2 x k table (non-empty columns) and its expected counts."""
    table = np.vstack([reference, current]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    return table, expected


class HomogeneityTest(CategoricalMethod):
    """A test of homogeneity of two category distributions; subclasses give the statistic."""

    kinds = frozenset({ColumnKind.CATEGORICAL})
    is_test = True
    default_threshold = 0.05

    @abstractmethod
    def statistic(self, observed: FloatArray, expected: FloatArray) -> float:
        """Return the test statistic of an observed table and its expected counts."""

    def categorical(self, pair: CategoricalPair) -> MethodResult:
        """Return the statistic, its chi-square p-value and the effect size."""
        observed, expected = expected_counts(pair.reference, pair.current)
        dof = observed.shape[1] - 1
        if dof == 0:  # one category on both sides: nothing can differ
            return result(pair, 0.0, 1.0, 0.0)
        statistic = self.statistic(observed, expected)
        return result(pair, statistic, chi2_sf(statistic, dof), effect_size(pair))
