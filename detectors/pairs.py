"""Reference and current counts side by side: what every drift method reads.

A pair is built either from two sketches (the service path, and ``check`` by
default) or from two arrays of raw values (the exact path). The exact path
puts one bin on every distinct value, so every statistic computed from an
exact pair equals the textbook statistic on the raw rows; tests check this
against scipy. From sketches the same formulas see values grouped in bins,
and each method reports a bound on the difference (see ``MethodResult.bound``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

import numpy as np

from detectors._arrays import FloatArray, IntArray
from detectors.errors import IncompatibleSketchError
from detectors.profile import COARSE_BINS, quantile_indices
from detectors.sketch import CategoricalSketch, NumericSketch

#: Name of the cell that pools every category absent from the reference.
UNSEEN = "<unseen>"


class _TwoSides:
    """Sample sizes of a pair, from its ``reference`` and ``current`` count vectors."""

    __slots__ = ()
    reference: IntArray
    current: IntArray

    @property
    def n_reference(self) -> int:
        """Number of reference values."""
        return int(self.reference.sum())

    @property
    def n_current(self) -> int:
        """Number of current values."""
        return int(self.current.sum())


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class NumericPair(_TwoSides):
    """Counts of reference and current values on shared bins.

    Bin ``0`` is ``(-inf, edges[0]]``, bin ``j`` is ``(edges[j-1], edges[j]]``
    and the last bin is ``(edges[-1], +inf)``. ``exact`` is true when every
    value lies on its bin's upper edge (the pair was built from raw values).
    ``*_outer`` hold the sums of the values in the first and last bin.
    """

    edges: FloatArray
    reference: IntArray
    current: IntArray
    reference_outer: tuple[float, float]
    current_outer: tuple[float, float]
    reference_std: float
    coarse_reference: IntArray
    coarse_current: IntArray
    exact: bool

    @classmethod
    def from_sketches(cls, reference: NumericSketch, current: NumericSketch) -> NumericPair:
        """Return the pair of two sketches built on the same spec."""
        if not reference.spec == current.spec:
            raise IncompatibleSketchError(
                f"sketches of {reference.spec.name!r} were built on different bins"
            )
        spec = reference.spec
        # Coarse edges are a subset of the fine edges: regroup the fine counts exactly.
        cut = np.searchsorted(spec.edges, spec.coarse_edges) + 1
        return cls(
            edges=spec.edges,
            reference=reference.counts,
            current=current.counts,
            reference_outer=(reference.under_sum, reference.over_sum),
            current_outer=(current.under_sum, current.over_sum),
            reference_std=reference.std,
            coarse_reference=_regroup(reference.counts, cut),
            coarse_current=_regroup(current.counts, cut),
            exact=False,
        )

    @classmethod
    def from_values(cls, reference: FloatArray, current: FloatArray) -> NumericPair:
        """Return the exact pair of two arrays of finite values (one bin per distinct value)."""
        ref = np.sort(np.asarray(reference, dtype=np.float64))
        cur = np.sort(np.asarray(current, dtype=np.float64))
        edges = np.unique(np.concatenate([ref, cur]))
        ref_counts = _counts_on_edges(ref, edges)
        cur_counts = _counts_on_edges(cur, edges)
        if ref.size:
            coarse_edges = np.unique(ref[quantile_indices(ref.size, COARSE_BINS)[1:-1]])
        else:
            coarse_edges = np.empty(0)
        low = edges[0] if edges.size else 0.0
        return cls(
            edges=edges,
            reference=ref_counts,
            current=cur_counts,
            reference_outer=(float(ref_counts[0] * low), 0.0),
            current_outer=(float(cur_counts[0] * low), 0.0),
            reference_std=float(ref.std()) if ref.size else float("nan"),
            coarse_reference=_counts_on_edges(ref, coarse_edges),
            coarse_current=_counts_on_edges(cur, coarse_edges),
            exact=True,
        )


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class CategoricalPair(_TwoSides):
    """Counts of reference and current values per category; the last cell is :data:`UNSEEN`."""

    categories: tuple[str, ...]
    reference: IntArray
    current: IntArray

    @classmethod
    def from_sketches(
        cls, reference: CategoricalSketch, current: CategoricalSketch
    ) -> CategoricalPair:
        """Return the pair of two sketches built on the same categories."""
        if reference.spec != current.spec:
            raise IncompatibleSketchError(
                f"sketches of {reference.spec.name!r} were built on different categories"
            )
        return cls(
            categories=(*reference.spec.categories, UNSEEN),
            reference=np.append(reference.counts, reference.unseen),
            current=np.append(current.counts, current.unseen),
        )


Pair: TypeAlias = NumericPair | CategoricalPair


def _counts_on_edges(ordered: FloatArray, edges: FloatArray) -> IntArray:
    """Counts of sorted values in the bins ``(-inf, e0], ..., (e_last, inf)``."""
    at_or_below = np.searchsorted(ordered, edges, side="right")
    return np.diff(np.concatenate(([0], at_or_below, [ordered.size]))).astype(np.int64)


def _regroup(counts: IntArray, cut: IntArray) -> IntArray:
    """Sum consecutive fine bins into coarse ones; ``cut`` are the fine indices starting each."""
    cumulative = np.concatenate(([0], np.cumsum(counts)))
    bounds = np.concatenate(([0], cut, [counts.size]))
    return np.diff(cumulative[bounds]).astype(np.int64)
