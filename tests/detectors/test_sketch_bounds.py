"""Sketch statistics stay within their reported bound of the raw-row (exact) statistics.

Every case is a seeded reference and current sample of one distribution, with and
without a location shift, at several sizes. From the sketch path each method
reports ``bound`` >= |sketch statistic - exact statistic|; Anderson-Darling has
no closed-form bound, so its deviation is measured here and held below a limit.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from detectors.drift import DriftSettings, compare_frames
from detectors.kinds import ColumnKind
from detectors.methods import DRIFT_METHODS
from detectors.methods.cramer_von_mises import ecdf_statistic
from detectors.pairs import NumericPair
from detectors.profile import ReferenceProfile

#: Location shift of the drifted current sample (in units of the distribution's scale).
SHIFT = 0.25
DISTRIBUTIONS = {
    "normal": lambda rng, size, shift: rng.normal(shift, 1.0, size),
    "lognormal": lambda rng, size, shift: rng.lognormal(shift, 1.0, size),
    "uniform": lambda rng, size, shift: rng.uniform(shift, 1.0 + shift, size),
    # ~60 distinct values: every one gets its own bin, so the sketch holds ties.
    "integer": lambda rng, size, shift: rng.poisson(30.0 + 20 * shift, size).astype(np.float64),
    "heavy_tailed": lambda rng, size, shift: rng.standard_t(1.5, size) + shift,
}
EQUAL_SIZES = [(1_000, 1_000), (10_000, 10_000), (100_000, 100_000)]
#: The service's usual shape: a large reference and small windows (and the reverse).
UNEQUAL_SIZES = [(100_000, 1_000), (10_000, 1_000), (1_000, 100_000)]
BOUNDED_METHODS = ["ks", "cramer_von_mises", "wasserstein"]
HISTOGRAM_METHODS = ["hellinger", "jensen_shannon", "psi"]

#: Largest |sketch - exact| of the standardised AD statistic without drift. Measured 0.145
#: (lognormal, 1,000-row reference, 100,000 current rows: ~100 current values tie in every
#: bin); the limit leaves a margin of about 2x. The 5% critical value is about 1.96.
AD_NO_DRIFT_LIMIT = 0.3
#: Largest relative |sketch - exact| of the AD statistic with drift. Measured 0.123 (uniform:
#: the shifted values beyond the reference's maximum all fall into the overflow bin).
AD_DRIFT_RELATIVE_LIMIT = 0.25

pytestmark = pytest.mark.filterwarnings("ignore:p-value (capped|floored)")


@dataclass(frozen=True)
class Case:
    """One seeded comparison."""

    distribution: str
    n_reference: int
    n_current: int
    drift: bool

    def __str__(self) -> str:
        shift = "shift" if self.drift else "same"
        return f"{self.distribution}-{self.n_reference}x{self.n_current}-{shift}"


def cases(sizes: list[tuple[int, int]]) -> list[Case]:
    """Every distribution, with and without drift, at ``sizes``."""
    return [
        Case(distribution, n, m, drift)
        for distribution in DISTRIBUTIONS
        for n, m in sizes
        for drift in (False, True)
    ]


ALL_CASES = cases(EQUAL_SIZES + UNEQUAL_SIZES)


@dataclass(frozen=True)
class Outcome:
    """The sketch and exact results of one method on one case, and the sketch's bound."""

    sketch: float
    exact: float
    bound: float
    sketch_p: float | None
    exact_p: float | None


@dataclass(frozen=True)
class Measured:
    """Every numeric method's outcome on a case, and scipy's AD on the case's binned values."""

    methods: dict[str, Outcome]
    anderson_on_binned: float


@functools.cache
def measure(case: Case) -> Measured:
    """Compare ``case``'s samples from sketches and from raw rows with every numeric method.

    The binned values are each value moved to the upper edge of its sketch bin
    (``edges[searchsorted(edges, x, "left")]``); values above the last edge share
    the overflow bin, so they all become one value above it.
    """
    rng = np.random.default_rng(zlib.crc32(str(case).encode()))
    draw = DISTRIBUTIONS[case.distribution]
    reference = draw(rng, case.n_reference, 0.0)
    current = draw(rng, case.n_current, SHIFT if case.drift else 0.0)
    profile = ReferenceProfile.from_frame(pd.DataFrame({"x": reference}), {"x": "numeric"})
    sketch = profile.specs["x"].sketch(pd.Series(current))
    sketch_pair = NumericPair.from_sketches(profile.reference.features["x"], sketch)
    exact_pair = NumericPair.from_values(reference, current)
    methods = {}
    for name in DRIFT_METHODS.names(lambda m: m.supports(ColumnKind.NUMERIC)):
        method = DRIFT_METHODS.create(name)
        from_sketch, exact = method.compare(sketch_pair), method.compare(exact_pair)
        exact_statistic = exact.statistic
        if name == "cramer_von_mises":
            # The bound is against the ECDF form of T on the raw rows, which is scipy's
            # midrank statistic when there are no ties (checked in test_scipy_parity) and
            # the unbiased one when there are (the integer cases).
            exact_statistic = ecdf_statistic(exact_pair.reference, exact_pair.current)
        methods[name] = Outcome(
            sketch=from_sketch.statistic,
            exact=exact_statistic,
            bound=from_sketch.bound,
            sketch_p=from_sketch.p_value,
            exact_p=exact.p_value,
        )
    upper_edges = np.append(sketch_pair.edges, sketch_pair.edges[-1] + 1.0)
    binned = [upper_edges[np.searchsorted(sketch_pair.edges, x)] for x in (reference, current)]
    anderson = stats.anderson_ksamp(binned, variant="midrank").statistic
    return Measured(methods=methods, anderson_on_binned=float(anderson))


def outcome(case: Case, name: str) -> Outcome:
    """Method ``name``'s outcome on ``case``."""
    return measure(case).methods[name]


def violations(name: str, selected: list[Case]) -> list[str]:
    """Cases where method ``name``'s sketch statistic is further from exact than its bound."""
    found = []
    for case in selected:
        result = outcome(case, name)
        if abs(result.sketch - result.exact) > result.bound + 1e-12:
            found.append(f"{case}: |{result.sketch:.5g} - {result.exact:.5g}| > {result.bound:.3g}")
    return found


@pytest.mark.parametrize(
    ("name", "sizes"),
    [
        pytest.param("ks", EQUAL_SIZES, id="ks-equal-sizes"),
        pytest.param("ks", UNEQUAL_SIZES, id="ks-unequal-sizes"),
        pytest.param("cramer_von_mises", EQUAL_SIZES, id="cvm-equal-sizes"),
        pytest.param("cramer_von_mises", UNEQUAL_SIZES, id="cvm-unequal-sizes"),
        pytest.param("wasserstein", EQUAL_SIZES, id="wasserstein-equal-sizes"),
        pytest.param("wasserstein", UNEQUAL_SIZES, id="wasserstein-unequal-sizes"),
    ],
)
def test_sketch_statistic_within_bound(name: str, sizes: list[tuple[int, int]]):
    """|sketch statistic - exact statistic| <= reported (finite) bound on every case."""
    selected = cases(sizes)
    assert all(np.isfinite(outcome(case, name).bound) for case in selected)
    found = violations(name, selected)
    assert not found, "\n".join(found)


def test_anderson_darling_sketch_is_scipy_on_binned_values():
    """The sketch AD statistic is scipy's midrank statistic on values moved to their bin's edge."""
    for case in ALL_CASES:
        result = outcome(case, "anderson_darling")
        assert result.sketch == pytest.approx(measure(case).anderson_on_binned, rel=1e-9), case
        assert result.bound == np.inf


def ad_deviations(*, drift: bool, relative: bool) -> dict[str, float]:
    """|AD sketch - exact| (divided by |exact| if ``relative``) per case with(out) drift."""
    deviations = {}
    for case in ALL_CASES:
        if case.drift is drift:
            result = outcome(case, "anderson_darling")
            scale = abs(result.exact) if relative else 1.0
            deviations[str(case)] = abs(result.sketch - result.exact) / scale
    return deviations


def test_anderson_darling_sketch_deviation_without_drift():
    """Without drift the sketch AD statistic stays within a measured limit of the exact one."""
    deviations = ad_deviations(drift=False, relative=False)
    worst = max(deviations, key=deviations.__getitem__)
    assert deviations[worst] < AD_NO_DRIFT_LIMIT, (
        f"max |AD sketch - exact| without drift = {deviations[worst]:.4f} ({worst})"
    )


def test_anderson_darling_sketch_deviation_with_drift():
    """With drift the relative AD deviation stays below a measured limit and the decision holds."""
    deviations = ad_deviations(drift=True, relative=True)
    worst = max(deviations, key=deviations.__getitem__)
    assert deviations[worst] < AD_DRIFT_RELATIVE_LIMIT, (
        f"max relative |AD sketch - exact| with drift = {deviations[worst]:.4f} ({worst})"
    )
    for case in ALL_CASES:
        result = outcome(case, "anderson_darling")
        if case.drift:
            assert result.sketch_p is not None
            assert result.exact_p is not None
            assert (result.sketch_p <= 0.05) == (result.exact_p <= 0.05), case


@pytest.mark.parametrize("name", HISTOGRAM_METHODS)
def test_histogram_distances_identical_from_sketch(name: str):
    """PSI, Jensen-Shannon and Hellinger use reference deciles: the sketch value is exact."""
    for case in ALL_CASES:
        result = outcome(case, name)
        assert result.sketch == result.exact, case
        assert result.bound == 0.0


@pytest.mark.parametrize("name", DRIFT_METHODS.names(lambda m: m.supports(ColumnKind.CATEGORICAL)))
def test_categorical_methods_identical_from_sketch(name: str):
    """Categorical methods read counts, which a sketch keeps: both paths report the same."""
    rng = np.random.default_rng(11)
    reference = pd.DataFrame(
        {"c": rng.choice(list("abcdefg"), 5000, p=[0.3, 0.2, 0.2, 0.1, 0.1, 0.05, 0.05])}
    )
    current = pd.DataFrame({"c": rng.choice(list("abcxyz"), 3000)})
    settings = DriftSettings(categorical_method=name, correction="none")
    options = {"kinds": {"c": "categorical"}}
    (from_sketch,) = compare_frames(reference, current, settings, **options).features
    (exact,) = compare_frames(reference, current, settings, exact=True, **options).features
    assert (from_sketch.statistic, from_sketch.p_value) == (exact.statistic, exact.p_value)
    assert from_sketch.bound == exact.bound == 0.0


def test_sketch_ks_sees_a_point_mass_moving_below_the_reference_minimum():
    """Zero-inflated data whose zeros become -1: the exact KS flags it, so must the sketch."""
    rng = np.random.default_rng(12)
    positive = rng.exponential(size=(2, 5000))
    reference = np.where(rng.random(5000) < 0.6, 0.0, positive[0])
    current = np.where(rng.random(5000) < 0.6, -1.0, positive[1])
    frames = pd.DataFrame({"x": reference}), pd.DataFrame({"x": current})
    settings = DriftSettings(correction="none")
    assert compare_frames(*frames, settings, exact=True).features[0].drift
    assert compare_frames(*frames, settings).features[0].drift
