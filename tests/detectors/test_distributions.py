"""detectors/_distributions.py against scipy.special, whose functions it replaces."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from detectors._distributions import chi2_isf, chi2_sf, kolmogorov_isf, kolmogorov_sf

#: Both sides of the cut-over at 0.82, the bulk, and far tails (p down to ~1e-300).
KOLMOGOROV_X = [
    *np.linspace(0.0, 8.0, 801).tolist(),
    1e-9,
    0.04,
    0.819,
    0.82,
    0.8200001,
    18.0,
    26.0,
]
DOFS = [*range(1, 40), 99, 100, 199, 200, 201, 999, 1000]


def test_kolmogorov_sf_equals_scipy():
    """``kolmogorov_sf`` is ``scipy.special.kolmogorov`` to 1e-12 relative."""
    for x in KOLMOGOROV_X:
        theirs = float(special.kolmogorov(x))
        assert kolmogorov_sf(x) == pytest.approx(theirs, rel=1e-12, abs=1e-300), x


@pytest.mark.parametrize("dof", DOFS)
def test_chi2_sf_equals_scipy(dof: int):
    """``chi2_sf(x, dof)`` is ``scipy.special.chdtrc(dof, x)`` to 1e-10 relative."""
    for x in [*np.geomspace(1e-8, 1e5, 200).tolist(), dof - 0.5, float(dof), dof + 1.0]:
        theirs = float(special.chdtrc(dof, x))
        assert chi2_sf(x, dof) == pytest.approx(theirs, rel=1e-10, abs=1e-300), (dof, x)


def test_edges():
    """Non-positive statistics give 1, infinite ones 0, NaN stays NaN; dof must be a count."""
    assert kolmogorov_sf(0.0) == 1.0
    assert kolmogorov_sf(-1.0) == 1.0
    assert kolmogorov_sf(math.inf) == 0.0
    assert math.isnan(kolmogorov_sf(math.nan))
    assert chi2_sf(0.0, 3) == 1.0
    assert chi2_sf(-2.0, 3) == 1.0
    assert chi2_sf(math.inf, 3) == 0.0
    assert math.isnan(chi2_sf(math.nan, 3))
    for dof in (0, -1, 1.5):
        with pytest.raises(ValueError, match="dof"):
            chi2_sf(1.0, dof)  # type: ignore[arg-type]


@pytest.mark.parametrize("p", [0.5, 0.2, 0.1, 0.05, 0.025, 0.01, 1e-3, 1e-6])
def test_inverse_survival_functions_equal_scipy(p: float):
    """``kolmogorov_isf`` and ``chi2_isf`` are ``kstwobign.isf`` and ``chi2.isf`` to 1e-9."""
    assert kolmogorov_isf(p) == pytest.approx(float(stats.kstwobign.isf(p)), rel=1e-9)
    for dof in (1, 2, 5, 19, 200):
        assert chi2_isf(p, dof) == pytest.approx(float(stats.chi2.isf(p, dof)), rel=1e-9)


def test_inverse_survival_functions_reject_impossible_probabilities():
    for p in (0.0, 1.0, -0.1, math.nan):
        with pytest.raises(ValueError, match="p must be"):
            kolmogorov_isf(p)
