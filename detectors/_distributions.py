"""Survival functions (and their inverses) of the default tests' null distributions, in pure Python.

``kolmogorov_sf`` is ``scipy.special.kolmogorov`` (``scipy.stats.kstwobign.sf``)
and ``chi2_sf(x, dof)`` is ``scipy.special.chdtrc(dof, x)``
(``scipy.stats.chi2.sf``) for an integer ``dof``. They are written out here,
not imported, because importing ``scipy.stats`` takes about 0.6 s and even
``scipy.special`` about 0.1 s, as much as ``driftline check`` spends on the
statistics of 100,000 rows. ``tests/detectors/test_distributions.py`` checks
them against scipy's to 1e-10 relative; ``tests/detectors/test_scipy_parity.py``
checks the tests' p-values against ``scipy.stats``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

#: Below this ``x`` the Kolmogorov CDF is summed (Jacobi's theta form), above it the
#: survival function (the alternating series): both need few terms there (scipy's cut-over).
_KOLMOGOROV_CUTOVER = 0.82


def kolmogorov_sf(x: float) -> float:
    """Return ``P(K > x)`` for the Kolmogorov distribution (the limit of ``sqrt(n) * D_n``).

    >>> round(kolmogorov_sf(1.3581), 4)
    0.05
    """
    if math.isnan(x):
        return math.nan
    if x <= 0.0:
        return 1.0
    if x <= _KOLMOGOROV_CUTOVER:
        # CDF = sqrt(2 pi) / x * sum_{k >= 1} exp(-(2k - 1)^2 pi^2 / (8 x^2)).
        w = math.pi**2 / (8.0 * x * x)
        cdf, k = 0.0, 1
        while True:
            term = math.exp(-((2 * k - 1) ** 2) * w)
            cdf += term
            if term <= 1e-17 * cdf or k >= 100:
                break
            k += 1
        return 1.0 - math.sqrt(2.0 * math.pi) / x * cdf
    # SF = 2 * sum_{k >= 1} (-1)^(k - 1) exp(-2 k^2 x^2).
    total, sign, k = 0.0, 1.0, 1
    while True:
        term = math.exp(-2.0 * k * k * x * x)
        total += sign * term
        if term <= 1e-17 * total or k >= 100:
            break
        sign, k = -sign, k + 1
    return min(max(2.0 * total, 0.0), 1.0)


def chi2_sf(x: float, dof: int) -> float:
    """Return ``P(X > x)`` for a chi-square variable with ``dof`` (a positive integer) degrees.

    The upper regularized incomplete gamma ``Q(dof / 2, x / 2)`` in closed form:
    for even ``dof`` a Poisson tail, for odd ``dof`` ``erfc`` plus the half-integer
    terms. Every term is positive and computed in log space, so there is no
    cancellation and no overflow, whatever ``dof``.

    >>> round(chi2_sf(3.841458820694124, 1), 6)
    0.05
    >>> round(chi2_sf(11.070497693516351, 5), 6)
    0.05
    """
    if dof < 1 or int(dof) != dof:
        raise ValueError(f"dof must be a positive integer, got {dof!r}")
    if math.isnan(x):
        return math.nan
    if x <= 0.0:
        return 1.0
    if math.isinf(x):
        return 0.0
    y = x / 2.0
    log_y = math.log(y)
    half = int(dof) // 2
    if dof % 2 == 0:
        # Q(m, y) = P(Poisson(y) < m) = sum_{k < m} exp(-y) y^k / k!
        total = 0.0
        for k in range(half):
            total += math.exp(k * log_y - y - math.lgamma(k + 1.0))
    else:
        # Q(m + 1/2, y) = erfc(sqrt(y)) + sum_{k < m} exp(-y) y^(k + 1/2) / Gamma(k + 3/2)
        total = math.erfc(math.sqrt(y))
        for k in range(half):
            total += math.exp((k + 0.5) * log_y - y - math.lgamma(k + 1.5))
    return min(total, 1.0)


def _inverse(sf: Callable[[float], float], p: float, high: float) -> float:
    """Return ``x`` with ``sf(x) = p`` for a decreasing ``sf`` on ``[0, high]`` (bisection)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    low = 0.0
    while sf(high) > p:
        high *= 2.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        if sf(middle) > p:
            low = middle
        else:
            high = middle
        if high - low <= 1e-12 * high:
            break
    return 0.5 * (low + high)


@lru_cache(maxsize=64)
def kolmogorov_isf(p: float) -> float:
    """Return ``x`` with ``P(K > x) = p`` (``scipy.stats.kstwobign.isf``).

    >>> round(kolmogorov_isf(0.05), 4)
    1.3581
    """
    return _inverse(kolmogorov_sf, p, 4.0)


@lru_cache(maxsize=256)
def chi2_isf(p: float, dof: int) -> float:
    """Return ``x`` with ``P(X > x) = p`` for chi-square with ``dof`` degrees (``chi2.isf``).

    >>> round(chi2_isf(0.05, 5), 4)
    11.0705
    """
    return _inverse(lambda x: chi2_sf(x, dof), p, 2.0 * dof + 20.0)
