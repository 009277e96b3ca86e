"""Every method on raw rows (exact pairs) agrees with scipy or with its closed form.

The exact path puts one bin on every distinct value, so its statistics must be
the textbook ones; scipy is the reference implementation. Histogram distances
are also checked to be identical from a sketch (they use reference-decile bins,
which a sketch keeps exactly).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from detectors.methods import DRIFT_METHODS
from detectors.methods.cramer_von_mises import ecdf_statistic
from detectors.methods.ks import EXACT_MAX_N
from detectors.methods.psi import PSI_FLOOR
from detectors.pairs import CategoricalPair, NumericPair
from detectors.profile import ReferenceProfile

#: (reference size, current size): small (exact CvM p-values), medium and large.
SIZES = [(5, 7), (13, 20), (20, 20), (150, 90), (1000, 1000), (2500, 10_000), (12_000, 15_000)]
#: scipy warns whenever its Anderson-Darling p-value hits a cap; the caps are what we test.
ignore_ad_cap_warning = pytest.mark.filterwarnings("ignore:p-value (capped|floored)")


def numeric_sample(size: int, *, shift: float, ties: bool, seed: int) -> np.ndarray:
    """Seeded N(shift, 1) values; with ``ties`` rounded to a grid of 0.5 (many repeats)."""
    values = np.random.default_rng(seed).normal(shift, 1.0, size)
    return np.round(values * 2) / 2 if ties else values


def numeric_case(n: int, m: int, shift: float, ties: bool) -> tuple[np.ndarray, np.ndarray]:
    """A seeded reference of ``n`` and current of ``m`` values, the current shifted."""
    seed = n * 100_003 + m * 7 + int(ties)
    reference = numeric_sample(n, shift=0.0, ties=ties, seed=seed)
    return reference, numeric_sample(m, shift=shift, ties=ties, seed=seed + 1)


NUMERIC_CASES = [
    pytest.param(n, m, shift, ties, id=f"{n}x{m}-shift{shift}-{'ties' if ties else 'continuous'}")
    for n, m in SIZES
    for shift in (0.0, 0.3)
    for ties in (False, True)
]


def exact_result(name: str, reference: np.ndarray, current: np.ndarray):
    """The method's result on the exact (raw-row) pair."""
    return DRIFT_METHODS.create(name).compare(NumericPair.from_values(reference, current))


@pytest.mark.parametrize(("n", "m", "shift", "ties"), NUMERIC_CASES)
def test_ks_matches_scipy(n: int, m: int, shift: float, ties: bool):
    """KS statistic equals ks_2samp's; so does the p-value up to 10,000 values per side."""
    reference, current = numeric_case(n, m, shift, ties)
    ours = exact_result("ks", reference, current)
    theirs = stats.ks_2samp(reference, current)
    assert ours.statistic == pytest.approx(theirs.statistic, abs=1e-12)
    if max(n, m) <= EXACT_MAX_N:
        assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9)


@pytest.mark.parametrize(("n", "m", "shift", "ties"), NUMERIC_CASES)
def test_cramer_von_mises_matches_scipy(n: int, m: int, shift: float, ties: bool):
    """CvM statistic and p-value equal cramervonmises_2samp's (exact p-value for n, m <= 20)."""
    reference, current = numeric_case(n, m, shift, ties)
    ours = exact_result("cramer_von_mises", reference, current)
    theirs = stats.cramervonmises_2samp(reference, current)
    assert ours.statistic == pytest.approx(theirs.statistic, rel=1e-9)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize(("n", "m", "shift", "ties"), [c for c in NUMERIC_CASES if not c.values[3]])
def test_cramer_von_mises_ecdf_form_is_scipy_without_ties(n: int, m: int, shift: float, ties: bool):
    """The ECDF form the sketch path uses equals scipy's statistic when no value is tied."""
    reference, current = numeric_case(n, m, shift, ties)
    pair = NumericPair.from_values(reference, current)
    theirs = stats.cramervonmises_2samp(reference, current).statistic
    assert ecdf_statistic(pair.reference, pair.current) == pytest.approx(theirs, rel=1e-9)


def scipy_anderson(reference: np.ndarray, current: np.ndarray):
    """scipy's two-sample midrank Anderson-Darling result."""
    return stats.anderson_ksamp([reference, current], variant="midrank")


@ignore_ad_cap_warning
@pytest.mark.parametrize(("n", "m", "shift", "ties"), NUMERIC_CASES)
def test_anderson_darling_matches_scipy(n: int, m: int, shift: float, ties: bool):
    """AD statistic and its interpolated, capped p-value equal anderson_ksamp's (midrank)."""
    reference, current = numeric_case(n, m, shift, ties)
    ours = exact_result("anderson_darling", reference, current)
    theirs = scipy_anderson(reference, current)
    assert ours.statistic == pytest.approx(theirs.statistic, rel=1e-9)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9)


def test_anderson_darling_cases_cover_both_caps_and_interpolation():
    """The parity cases reach the 0.25 cap, the 0.001 floor and the interpolated range."""
    p_values = {
        exact_result("anderson_darling", *numeric_case(n, m, shift, ties)).p_value
        for n, m, shift, ties in (case.values for case in NUMERIC_CASES)
    }
    assert 0.25 in p_values
    assert 0.001 in p_values
    assert any(0.001 < p < 0.25 for p in p_values if p is not None), p_values


@pytest.mark.parametrize(("n", "m", "shift", "ties"), NUMERIC_CASES)
def test_wasserstein_matches_scipy(n: int, m: int, shift: float, ties: bool):
    """Normalised Wasserstein equals wasserstein_distance / max(population std of ref, 1e-3)."""
    reference, current = numeric_case(n, m, shift, ties)
    ours = exact_result("wasserstein", reference, current)
    expected = stats.wasserstein_distance(reference, current) / max(np.std(reference), 1e-3)
    assert ours.statistic == pytest.approx(expected, rel=1e-9, abs=1e-12)


# ---- KS p-values above 10,000 values per side --------------------------------------------

#: Sizes where scipy switches to its asymptotic ``kstwo`` p-value.
LARGE_SIZES = [(10_001, 10_001), (25_000, 15_000), (60_000, 40_000)]


@functools.cache
def large_ks_cases() -> tuple[tuple[float, float, float, float], ...]:
    """``(scipy D, our D, scipy p, our p)`` over shifts giving p from about 0.9 to 1e-9.

    One seeded pair per size; the current is shifted by up to 6.5 / sqrt(nm / (n + m)),
    which walks the p-value through the whole range.
    """
    rows = []
    for n, m in LARGE_SIZES:
        rng = np.random.default_rng(n + m)
        reference, base = rng.normal(size=n), rng.normal(size=m)
        for shift in np.linspace(0.0, 6.5, 24) / math.sqrt(n * m / (n + m)):
            theirs = stats.ks_2samp(reference, base + shift)
            ours = exact_result("ks", reference, base + shift)
            rows.append((theirs.statistic, ours.statistic, theirs.pvalue, ours.p_value))
    return tuple(rows)


def test_large_sample_ks_statistic_matches_scipy():
    """Above 10,000 values the KS statistic is still scipy's."""
    for theirs, ours, _, _ in large_ks_cases():
        assert ours == pytest.approx(theirs, abs=1e-12)


@pytest.mark.parametrize(
    ("low", "high", "tolerance"),
    [
        pytest.param(0.03, 0.08, 1e-3, id="near-0.05-within-0.1%"),
        pytest.param(1e-8, 1.0, 3e-2, id="down-to-1e-8-within-3%"),
    ],
)
def test_large_sample_ks_p_value_within_documented_tolerance(
    low: float, high: float, tolerance: float
):
    """The fast large-sample p-value is within ks.py's documented relative error of scipy's."""
    in_band = [(theirs, ours) for _, _, theirs, ours in large_ks_cases() if low <= theirs <= high]
    assert len(in_band) >= 3, "the shifts must put some p-values in this band"
    errors = [abs(ours / theirs - 1) for theirs, ours in in_band]
    assert max(errors) < tolerance, f"max relative error {max(errors):.2e} at p in [{low}, {high}]"


# ---- categorical tests and histogram distances -------------------------------------------

LETTERS = np.array(list("abcdefgh"))
REFERENCE_P = [0.3, 0.2, 0.15, 0.1, 0.1, 0.08, 0.05, 0.02]


def categorical_case(case: str) -> tuple[pd.Series, pd.Series, int]:
    """``(reference, current, max_categories)`` for a named seeded categorical scenario.

    * ``unseen``: 6 reference categories kept (g and h count as unseen on both sides);
      the current lacks e and f and has new labels x, y, z;
    * ``known``: the current draws from a subset of the kept categories (no unseen cell);
    * ``binary``: two levels with a shifted rate;
    * ``single``: one level on both sides (zero degrees of freedom).
    """
    rng = np.random.default_rng(sum(map(ord, case)))
    reference = pd.Series(rng.choice(LETTERS, 3000, p=REFERENCE_P))
    if case == "unseen":
        current = rng.choice(list("abcdghxyz"), 2000, p=[0.3, 0.2, 0.15, 0.1, 0.05] + [0.05] * 4)
        return reference, pd.Series(current), 6
    if case == "known":
        return reference, pd.Series(rng.choice(LETTERS[:4], 1500)), 8
    if case == "binary":
        return (
            pd.Series(rng.choice(["no", "yes"], 800, p=[0.7, 0.3])),
            pd.Series(rng.choice(["no", "yes"], 600, p=[0.6, 0.4])),
            8,
        )
    return pd.Series(["a"] * 40), pd.Series(["a"] * 25), 8


CATEGORICAL_CASES = ["unseen", "known", "binary", "single"]


def categorical_sketch_pair(case: str) -> tuple[CategoricalPair, np.ndarray]:
    """The sketch pair of a scenario and the 2 x k table built independently from raw labels.

    The table has one column per kept reference category and one for every other
    label pooled, then drops columns empty on both sides (as the tests do).
    """
    reference, current, max_categories = categorical_case(case)
    profile = ReferenceProfile.from_frame(
        pd.DataFrame({"c": reference}), max_categories=max_categories
    )
    spec = profile.specs["c"]
    pair = CategoricalPair.from_sketches(profile.reference.features["c"], spec.sketch(current))

    def row(labels: pd.Series) -> list[int]:
        known = [int((labels == category).sum()) for category in spec.categories]
        return [*known, labels.size - sum(known)]

    table = np.array([row(reference), row(current)])
    return pair, table[:, table.sum(axis=0) > 0]


@pytest.mark.parametrize("case", CATEGORICAL_CASES)
@pytest.mark.parametrize(
    ("name", "options"),
    [("chi_square", {}), ("g_test", {"lambda_": "log-likelihood"})],
)
def test_contingency_tests_match_scipy(case: str, name: str, options: dict[str, str]):
    """Chi-square and G-test equal chi2_contingency (no Yates) on the pooled-unseen table."""
    pair, table = categorical_sketch_pair(case)
    ours = DRIFT_METHODS.create(name).compare(pair)
    theirs = stats.chi2_contingency(table, correction=False, **options)
    assert ours.statistic == pytest.approx(theirs.statistic, rel=1e-9, abs=1e-12)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-300)


def proportions_of(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference and current proportions of a 2 x k table."""
    return table[0] / table[0].sum(), table[1] / table[1].sum()


def psi_closed_form(p: np.ndarray, q: np.ndarray) -> float:
    """PSI with zero proportions floored at 1e-4 (psi.py's definition)."""
    p, q = np.where(p == 0, PSI_FLOOR, p), np.where(q == 0, PSI_FLOOR, q)
    return float(np.sum((q - p) * np.log(q / p)))


CLOSED_FORMS = {
    "jensen_shannon": lambda p, q: float(jensenshannon(p, q, base=2)),
    "psi": psi_closed_form,
    "hellinger": lambda p, q: float(np.sqrt(np.sum((np.sqrt(p) - np.sqrt(q)) ** 2) / 2)),
    "total_variation": lambda p, q: float(0.5 * np.abs(p - q).sum()),
}


@pytest.mark.parametrize("case", CATEGORICAL_CASES)
@pytest.mark.parametrize("name", sorted(CLOSED_FORMS))
def test_categorical_distances_match_closed_form(case: str, name: str):
    """Histogram distances on categories equal scipy's Jensen-Shannon or their closed form."""
    pair, table = categorical_sketch_pair(case)
    expected = CLOSED_FORMS[name](*proportions_of(table))
    assert DRIFT_METHODS.create(name).compare(pair).statistic == pytest.approx(
        expected, rel=1e-12, abs=1e-15
    )


def decile_table(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Counts of both samples on the reference-decile bins ``(-inf, d1], ..., (d9, inf)``.

    The deciles are the reference's sorted values at positions ``floor(k (n - 1) / 10)``.
    """
    ordered = np.sort(reference)
    positions = np.arange(1, 10) * (ordered.size - 1) // 10
    deciles = np.unique(ordered[positions])
    table = np.array(
        [
            np.bincount(np.searchsorted(deciles, x, side="left"), minlength=deciles.size + 1)
            for x in (reference, current)
        ]
    )
    return table[:, table.sum(axis=0) > 0]


@pytest.mark.parametrize(("n", "m", "shift", "ties"), NUMERIC_CASES)
@pytest.mark.parametrize("name", ["hellinger", "jensen_shannon", "psi"])
def test_numeric_histogram_distances(name: str, n: int, m: int, shift: float, ties: bool):
    """On numeric data the distance is the closed form on reference deciles, sketch == exact."""
    reference, current = numeric_case(n, m, shift, ties)
    method = DRIFT_METHODS.create(name)
    exact = method.compare(NumericPair.from_values(reference, current)).statistic
    expected = CLOSED_FORMS[name](*proportions_of(decile_table(reference, current)))
    assert exact == pytest.approx(expected, rel=1e-12, abs=1e-15)

    profile = ReferenceProfile.from_frame(pd.DataFrame({"x": reference}), {"x": "numeric"})
    sketch = profile.specs["x"].sketch(pd.Series(current))
    from_sketch = method.compare(NumericPair.from_sketches(profile.reference.features["x"], sketch))
    assert from_sketch.statistic == exact
    assert from_sketch.bound == 0.0
