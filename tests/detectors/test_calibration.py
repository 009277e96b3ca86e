"""False-positive rate, power and multiple-testing behaviour of the drift decisions.

Each test draws many seeded reference/current pairs at once (one matrix per
test) and runs them through the same path the service uses: a reference
sketch on quantile bins, a current sketch on the same bins, a method, and for
the report-level tests :func:`compare_sketches` with a correction. The
false-positive rates must lie in [0.03, 0.07] (about two standard errors around 0.05
with 500 pairs); the multiple-testing rates within three standard errors of their bound.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from detectors.decisions import Correction, corrected_thresholds
from detectors.drift import (
    DEFAULT_MIN_EFFECT_SIZE,
    DriftSettings,
    compare_frames,
    compare_sketches,
)
from detectors.methods import DRIFT_METHODS
from detectors.pairs import CategoricalPair, NumericPair
from detectors.profile import ReferenceProfile, categorical_spec, numeric_spec
from detectors.sketch import CategoricalSketch, NumericSketch, WindowSketch

ALPHA = 0.05
PAIRS = 500
ROWS = 2000


def standard_error(rate: float, trials: int) -> float:
    """Binomial standard error of a rate estimated from ``trials`` trials."""
    return math.sqrt(rate * (1 - rate) / trials)


def numeric_sketch_pair(reference: np.ndarray, current: np.ndarray) -> NumericPair:
    """The service's pair: reference sketch on its own 1,000 quantile bins, current on the same."""
    ordered = np.sort(reference)
    spec = numeric_spec("x", ordered)
    return NumericPair.from_sketches(
        NumericSketch.from_sorted(spec, ordered), NumericSketch.from_values(spec, current)
    )


def categorical_sketch_pair(reference: np.ndarray, current: np.ndarray) -> CategoricalPair:
    """The service's pair for integer-coded categories (labels are the codes)."""

    def tally(codes: np.ndarray) -> dict[str, int]:
        counts = np.bincount(codes)
        return {str(code): int(n) for code, n in enumerate(counts) if n}

    spec = categorical_spec("c", tally(reference))
    return CategoricalPair.from_sketches(
        CategoricalSketch.from_counts(spec, tally(reference)),
        CategoricalSketch.from_counts(spec, tally(current)),
    )


def rejection_rate(method: str, pairs: list[NumericPair] | list[CategoricalPair]) -> float:
    """Share of ``pairs`` whose p-value is at most :data:`ALPHA`."""
    test = DRIFT_METHODS.create(method)
    p_values = np.array([test.compare(pair).p_value for pair in pairs])
    return float(np.mean(p_values <= ALPHA))


def normal_pairs(pairs: int, rows: int, shift: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``pairs`` seeded N(0, 1) references and N(shift, 1) currents of ``rows`` values each."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(pairs, rows)), rng.normal(shift, 1.0, size=(pairs, rows))


#: Category probabilities of the no-drift categorical tests (one rare level).
LEVELS = np.array([0.4, 0.25, 0.15, 0.1, 0.06, 0.04])


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(numeric_sketch_pair, id="ks-sketch"),
        pytest.param(NumericPair.from_values, id="ks-exact"),
    ],
)
def test_ks_false_positive_rate(path):
    """KS at alpha 0.05, no correction: 500 no-drift pairs reject between 3% and 7% of the time."""
    references, currents = normal_pairs(PAIRS, ROWS, 0.0, seed=2024)
    rate = rejection_rate("ks", [path(r, c) for r, c in zip(references, currents, strict=True)])
    assert 0.03 <= rate <= 0.07, rate


def test_chi_square_false_positive_rate():
    """Chi-square at alpha 0.05 on the sketch path: 500 no-drift pairs reject 3% to 7%."""
    rng = np.random.default_rng(2025)
    codes = rng.choice(LEVELS.size, size=(PAIRS, 2, ROWS), p=LEVELS)
    rate = rejection_rate("chi_square", [categorical_sketch_pair(r, c) for r, c in codes])
    assert 0.03 <= rate <= 0.07, rate


def test_ks_power_for_a_fifth_of_a_standard_deviation():
    """A 0.2 sd mean shift of a normal with 5,000 rows a side is found at least 95% of the time."""
    references, currents = normal_pairs(100, 5000, 0.2, seed=7)
    pairs = [numeric_sketch_pair(r, c) for r, c in zip(references, currents, strict=True)]
    assert rejection_rate("ks", pairs) >= 0.95


def test_chi_square_power_for_a_five_point_move():
    """Five points of mass moving between two of four levels is found at least 95% of the time.

    Reference 40/30/20/10%, current 35/30/20/15%: total variation distance 0.05. With
    2,000 rows a side the noncentral chi-square approximation (noncentrality
    ``nm/(n+m) * sum (p - q)^2 / ((p + q) / 2)`` = 26.7, 3 degrees of freedom) predicts
    a power of 0.996.
    """
    rng = np.random.default_rng(8)
    before, after = [0.4, 0.3, 0.2, 0.1], [0.35, 0.3, 0.2, 0.15]
    references = rng.choice(4, size=(300, ROWS), p=before)
    currents = rng.choice(4, size=(300, ROWS), p=after)
    pairs = [categorical_sketch_pair(r, c) for r, c in zip(references, currents, strict=True)]
    assert DRIFT_METHODS.create("total_variation").compare(pairs[0]).statistic == pytest.approx(
        0.05, abs=0.03
    )
    assert rejection_rate("chi_square", pairs) >= 0.95


# ---- multiple testing across the features of one report -----------------------------------


def numeric_profile_and_window(
    reference: np.ndarray, current: np.ndarray, names: list[str]
) -> tuple[ReferenceProfile, WindowSketch]:
    """The profile of the columns of ``reference`` and the window sketch of ``current``.

    Built from the specs and sketches directly (what ``from_frame`` and ``sketch`` do,
    without the data frame).
    """
    specs, reference_sketches, current_sketches = {}, {}, {}
    for name, ref_column, cur_column in zip(names, reference.T, current.T, strict=True):
        ordered = np.sort(ref_column)
        specs[name] = spec = numeric_spec(name, ordered)
        reference_sketches[name] = NumericSketch.from_sorted(spec, ordered)
        current_sketches[name] = NumericSketch.from_values(spec, cur_column)
    profile = ReferenceProfile(
        specs=specs, reference=WindowSketch(rows=len(reference), features=reference_sketches)
    )
    return profile, WindowSketch(rows=len(current), features=current_sketches)


def reports(features: int, drifted: int, correction: str, seed: int, count: int = 200):
    """``count`` seeded reports over ``features`` independent normal features of 500 rows.

    The first ``drifted`` features of every current are shifted by half a standard
    deviation; the others are not.
    """
    rng = np.random.default_rng(seed)
    names = [f"f{i:02d}" for i in range(features)]
    shift = np.where(np.arange(features) < drifted, 0.5, 0.0)
    settings = DriftSettings(correction=correction, alpha=ALPHA)
    for _ in range(count):
        reference = rng.normal(size=(500, features))
        current = rng.normal(size=(500, features)) + shift
        profile, window = numeric_profile_and_window(reference, current, names)
        yield compare_sketches(profile, window, settings)


def test_bonferroni_bounds_the_family_wise_error_rate():
    """20 no-drift features, 200 reports: Bonferroni flags any feature in at most 5% (+3 SE)."""
    flagged = []
    for report in reports(features=20, drifted=0, correction="bonferroni", seed=30):
        assert {f.threshold for f in report.features} == {ALPHA / 20}
        flagged.append(any(f.drift for f in report.features))
    rate = float(np.mean(flagged))
    assert rate <= ALPHA + 3 * standard_error(ALPHA, len(flagged)), rate


def test_benjamini_hochberg_finds_drift_and_bounds_false_discoveries():
    """25 features, 5 shifted by 0.5 sd: BH finds >= 95% of them; mean FDP <= 5% (+3 SE)."""
    found, proportions = [], []
    for report in reports(features=25, drifted=5, correction="bh", seed=31):
        truly = {f"f{i:02d}" for i in range(5)}
        discoveries = {f.name for f in report.features if f.drift}
        found.append(len(discoveries & truly) / len(truly))
        proportions.append(len(discoveries - truly) / max(len(discoveries), 1))
    assert np.mean(found) >= 0.95
    bound = ALPHA + 3 * np.std(proportions) / math.sqrt(len(proportions))
    assert np.mean(proportions) <= bound, np.mean(proportions)


#: Benjamini and Hochberg (1995), section 4: 15 p-values; at q = 0.05 the first four are
#: rejected (0.0095 <= 4 * 0.05 / 15, 0.0201 > 5 * 0.05 / 15 and no later one passes).
BH_EXAMPLE = [
    0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344,
    0.0459, 0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.0000,
]  # fmt: skip


@pytest.mark.parametrize(
    ("correction", "expected"),
    [
        pytest.param(Correction.NONE, 0.05, id="none"),
        pytest.param(Correction.BONFERRONI, 0.05 / 15, id="bonferroni"),
        pytest.param(Correction.BENJAMINI_HOCHBERG, 4 * 0.05 / 15, id="bh"),
    ],
)
def test_corrected_thresholds_on_textbook_example(correction: Correction, expected: float):
    """The thresholds of the BH paper's example, in any order of the p-values."""
    shuffled = list(np.random.default_rng(0).permutation(BH_EXAMPLE))
    for p_values in (BH_EXAMPLE, shuffled):
        thresholds = corrected_thresholds(p_values, [0.05] * 15, correction)
        assert thresholds == pytest.approx([expected] * 15, rel=1e-15)
    rejected = [p for p in BH_EXAMPLE if p <= expected]
    assert len(rejected) == {"none": 9, "bonferroni": 3, "bh": 4}[correction.value]


def test_benjamini_hochberg_without_rejection_reports_smallest_cut_off():
    """When no p-value passes its step, BH reports alpha / m, the smallest cut-off."""
    assert corrected_thresholds([0.2, 0.5, 0.9], [0.05] * 3, Correction.BENJAMINI_HOCHBERG) == (
        pytest.approx([0.05 / 3] * 3)
    )
    assert corrected_thresholds([], [], Correction.BENJAMINI_HOCHBERG) == []


def test_materiality_keeps_tiny_significant_shifts_out():
    """1,000,000 rows, 0.01 sd shift: KS detects it, but at defaults it is not material."""
    rng = np.random.default_rng(9)
    reference = pd.DataFrame({"x": rng.normal(size=1_000_000)})
    current = pd.DataFrame({"x": rng.normal(0.01, 1.0, size=1_000_000)})
    off = DriftSettings(correction="none", min_effect_size=None)
    (plain,) = compare_frames(reference, current, off).features
    assert plain.p_value is not None
    assert plain.p_value <= ALPHA
    assert (plain.drift, plain.detectable, plain.material) == (True, True, True)
    assert plain.min_effect_size == 0.0
    (gated,) = compare_frames(reference, current, DriftSettings(correction="none")).features
    assert gated.p_value == plain.p_value
    assert (gated.detectable, gated.material, gated.drift) == (True, False, False)
    assert gated.min_effect_size == DEFAULT_MIN_EFFECT_SIZE
    # the true KS distance of a 0.01 sd shift is 2 Phi(0.005) - 1 = 0.004
    assert gated.effect_size == pytest.approx(2 * stats.norm.cdf(0.005) - 1, abs=0.002)
    # the bound: effect - (Kolmogorov's 0.95 quantile) * sqrt(1/n + 1/m)
    margin = stats.kstwobign.ppf(0.95) * math.sqrt(2 / 1_000_000)
    assert gated.effect_size_lower == pytest.approx(max(0.0, gated.effect_size - margin))


def test_materiality_threshold_per_feature_and_plain_estimate():
    """``min_effect_sizes`` overrides per feature; confidence None compares the estimate itself."""
    rng = np.random.default_rng(10)
    reference = pd.DataFrame({"a": rng.normal(size=20_000), "b": rng.normal(size=20_000)})
    current = pd.DataFrame({"a": rng.normal(0.1, 1, 20_000), "b": rng.normal(0.1, 1, 20_000)})
    settings = DriftSettings(min_effect_size=0.2, min_effect_sizes={"b": 0.01})
    a, b = sorted(compare_frames(reference, current, settings).features, key=lambda f: f.name)
    assert (a.detectable, a.material, a.drift, a.min_effect_size) == (True, False, False, 0.2)
    assert (b.detectable, b.material, b.drift, b.min_effect_size) == (True, True, True, 0.01)
    (plain,) = compare_frames(
        reference[["a"]], current[["a"]], DriftSettings(effect_confidence=None)
    ).features
    assert plain.effect_size_lower == pytest.approx(plain.effect_size)
