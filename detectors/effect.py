"""Effect sizes: how much of the population a change moved, whatever method tested it.

Every drift method reports the same effect size for a feature, chosen by the
feature's data, not by the method, so one materiality threshold
(``min_effect_size``) means the same thing everywhere:

* numeric features: the Kolmogorov-Smirnov distance ``max_t |F_ref(t) - F_cur(t)|``,
  the largest change in the share of values at or below any threshold ``t``;
* categorical features whose labels are all numbers (integer columns with few
  levels, which are profiled as categorical) and that saw no unseen value: the
  same KS distance over the labels in numeric order;
* other categorical features: the total variation distance
  ``max_A |P_ref(A) - P_cur(A)|``, the largest change in the share of any set
  of categories (half the L1 distance of the proportions).

All three are "the largest share of the population whose answer to one yes/no
question about the value changed", in [0, 1]. For a normal feature a location
shift of ``delta`` standard deviations has KS distance ``2 Phi(delta / 2) - 1``
(0.030 at 0.075 sd, 0.080 at 0.2 sd).

:func:`effect_lower_bound` is the one-sided lower confidence bound the
materiality rule compares with ``min_effect_size`` (see
:mod:`detectors.decisions`).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from detectors._arrays import FloatArray, IntArray
from detectors._distributions import chi2_isf, kolmogorov_isf
from detectors.pairs import UNSEEN, CategoricalPair, NumericPair, Pair


def cdf_gap(pair: NumericPair) -> FloatArray:
    """Return ``F_ref(e) - F_cur(e)`` at every finite bin edge."""
    f = np.cumsum(pair.reference)[:-1] / pair.n_reference
    g = np.cumsum(pair.current)[:-1] / pair.n_current
    return np.asarray(f - g, dtype=np.float64)


def ks_distance(pair: NumericPair) -> float:
    """Return the Kolmogorov-Smirnov distance evaluated at the pair's bin edges."""
    gap = cdf_gap(pair)
    return float(np.max(np.abs(gap))) if gap.size else 0.0


def total_variation(pair: CategoricalPair) -> float:
    """Return the total variation distance between the two category distributions."""
    p = pair.reference / pair.reference.sum()
    q = pair.current / pair.current.sum()
    return float(0.5 * np.abs(p - q).sum())


def numeric_order(pair: CategoricalPair) -> IntArray | None:
    """Return the seen categories' indices in numeric order, or None if the data is not ordinal.

    Ordinal means every category label parses as a finite number and no value
    on either side was unseen in the reference (an unseen value has no place
    in the order).
    """
    if pair.categories[-1] == UNSEEN and (pair.reference[-1] or pair.current[-1]):
        return None
    labels = pair.categories[:-1] if pair.categories[-1] == UNSEEN else pair.categories
    return _label_order(labels)


@lru_cache(maxsize=1024)
def _label_order(labels: tuple[str, ...]) -> IntArray | None:
    # A profile's categories are the same in every window: parse them once (read-only result).
    try:
        values = np.array([float(label) for label in labels], dtype=np.float64)
    except ValueError:
        return None
    if not np.isfinite(values).all():
        return None
    order = np.argsort(values, kind="stable")
    order.setflags(write=False)
    return order


def ordered_ks_distance(pair: CategoricalPair, order: IntArray) -> float:
    """Return the KS distance of a categorical pair over its categories in ``order``."""
    p = pair.reference[order] / pair.n_reference
    q = pair.current[order] / pair.n_current
    gap = np.cumsum(p - q)[:-1]
    return float(np.max(np.abs(gap))) if gap.size else 0.0


def effect_size(pair: Pair) -> float:
    """Return the pair's effect size: KS distance (numeric, ordinal) or total variation."""
    if isinstance(pair, NumericPair):
        return ks_distance(pair)
    order = numeric_order(pair)
    return total_variation(pair) if order is None else ordered_ks_distance(pair, order)


def noise_quantile(pair: Pair, confidence: float) -> float:
    """Return ``q``: the effect size's sampling error exceeds ``q sqrt(1/n + 1/m)``
    with probability at most ``1 - confidence``.

    * KS distance (numeric and ordinal features): the error is at most the KS
      distance of the two samples' own noise, ``sup_t |(F_n - F)(t) - (G_m - G)(t)|``,
      whose limit scaled by ``sqrt(nm / (n + m))`` is Kolmogorov's distribution
      (exactly so for continuous data, conservatively for tied or discrete
      data): ``q`` is its quantile (1.36 at 0.95).
    * Total variation over ``k`` categories: by Cauchy-Schwarz the error is at
      most ``1/2 sqrt(X2 (1/n + 1/m))`` with ``X2`` the chi-square statistic of
      the noise, chi-square with ``k - 1`` degrees of freedom: ``q = 1/2
      sqrt(chi2_{k-1} quantile)`` (1.66 at 0.95 with 6 categories). Choosing the
      best of many sets of categories inflates the plain estimate far more
      than choosing the best threshold does for KS; this is the price.
    """
    if isinstance(pair, CategoricalPair) and numeric_order(pair) is None:
        cells = int(np.count_nonzero(pair.reference + pair.current))
        if cells < 2:
            return 0.0
        return 0.5 * math.sqrt(chi2_isf(1.0 - confidence, cells - 1))
    return kolmogorov_isf(1.0 - confidence)


def effect_lower_bound(pair: Pair, effect: float, confidence: float | None) -> float:
    """Return a lower confidence bound (at ``confidence``) of the true effect size, at least 0.

    ``effect - q sqrt(1/n + 1/m)`` with ``q`` from :func:`noise_quantile`: for
    any pair of distributions whose true effect is at most ``x``, the bound
    reaches ``x`` in at most ``1 - confidence`` of samples (asymptotically;
    the calibration study, ``benchmarks/calibration.py``, measures it from
    500 rows per side on). ``confidence`` None returns the plain estimate. NaN
    when either side is empty or the effect is not finite.
    """
    n, m = pair.n_reference, pair.n_current
    if n == 0 or m == 0 or not math.isfinite(effect):
        return math.nan
    if confidence is None:
        return effect
    margin = noise_quantile(pair, confidence) * math.sqrt(1.0 / n + 1.0 / m)
    return max(0.0, effect - margin)
