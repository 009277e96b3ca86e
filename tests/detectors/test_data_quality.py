"""Data-quality checks: each triggered and not triggered on constructed windows.

The reference has a numeric feature ``x`` (standard normal), a numeric ``gappy``
that is 30% missing, a numeric ``flat`` that is constant, and a categorical
``colour`` with three levels. Windows are built from it with one defect at a
time, so each test shows exactly which check fires.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from detectors.errors import InvalidParameterError
from detectors.profile import ReferenceProfile
from detectors.quality import (
    DataQualityThresholds,
    QualityCheckName,
    data_quality,
)
from detectors.quality.data_quality import count_above
from detectors.sketch import NumericSketch

N = 2000
FEATURES = ["x", "gappy", "flat", "colour"]


def frame(n: int, seed: int, *, missing: float = 0.3) -> pd.DataFrame:
    """Rows like the reference's (``missing`` is ``gappy``'s missing share)."""
    rng = np.random.default_rng(seed)
    gappy = rng.normal(10, 2, n)
    gappy[rng.random(n) < missing] = np.nan
    return pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "gappy": gappy,
            "flat": np.full(n, 7.5),
            "colour": rng.choice(["red", "green", "blue"], n),
        }
    )


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return frame(N, 0)


@pytest.fixture(scope="module")
def profile(reference: pd.DataFrame) -> ReferenceProfile:
    return ReferenceProfile.from_frame(reference)


def check(profile: ReferenceProfile, window: pd.DataFrame, **thresholds: object):
    """The report of ``window`` with its own columns as the current columns."""
    return data_quality(
        profile,
        profile.sketch(window),
        DataQualityThresholds(**thresholds),  # type: ignore[arg-type]
        current_columns=list(window.columns),
    )


def test_data_like_the_reference_passes_every_check(profile: ReferenceProfile) -> None:
    report = check(profile, frame(1000, 1))
    assert report.passed, report.failed
    assert report.rows == 1000
    names = {(c.check, c.feature) for c in report.checks}
    assert (QualityCheckName.TYPE_VIOLATION, "x") in names
    assert (QualityCheckName.UNSEEN_CATEGORY, "colour") in names
    assert (QualityCheckName.UNSEEN_CATEGORY, "x") not in names
    assert (QualityCheckName.OUT_OF_RANGE, "colour") not in names
    # The reference's own missing share is the baseline of the threshold.
    missing = report.get("missing", "gappy")
    assert missing.reference == pytest.approx(0.3, abs=0.03)
    assert missing.threshold == pytest.approx(missing.reference + 0.05)
    json.dumps(report.to_dict())


def test_missing_values_beyond_the_reference_rate_fail(profile: ReferenceProfile) -> None:
    window = frame(1000, 2)
    window.loc[:149, "x"] = np.nan  # 15% missing where the reference had none
    report = check(profile, window)
    failed = report.get("missing", "x")
    assert not failed.passed
    assert failed.value == pytest.approx(0.15)
    assert failed.threshold == pytest.approx(0.05)
    assert [c.feature for c in report.failed] == ["x"]
    assert not report.passed

    window.loc[:149, "x"] = 0.0
    window.loc[:29, "x"] = np.inf  # 3% infinite: counted as missing, under the threshold
    assert check(profile, window).get("missing", "x").value == pytest.approx(0.03)
    assert check(profile, window).passed


def test_missing_threshold_is_relative_to_the_reference(profile: ReferenceProfile) -> None:
    window = frame(1000, 3, missing=0.0)
    reference_share = profile.reference.features["gappy"].missing / N
    window.loc[: int(1000 * reference_share) + 30, "gappy"] = np.nan  # 3 points above
    assert check(profile, window).get("missing", "gappy").passed
    window.loc[:449, "gappy"] = np.nan
    report = check(profile, window)
    assert not report.get("missing", "gappy").passed
    assert report.get("missing", "gappy").value == pytest.approx(0.45)
    assert report.get("missing", "gappy").threshold == pytest.approx(reference_share + 0.05)


def test_type_violations(profile: ReferenceProfile) -> None:
    window = frame(1000, 4).astype({"x": object})
    window.loc[:19, "x"] = "n/a"  # 2% strings in a numeric column
    report = check(profile, window)
    violation = report.get("type_violation", "x")
    assert not violation.passed
    assert violation.value == pytest.approx(0.02)
    # Unusable values count as missing too (as FeatureDrift.missing_share), under 5% here.
    assert report.get("missing", "x").value == pytest.approx(0.02)
    assert report.get("missing", "x").passed
    window.loc[:19, "x"] = "0.5"  # numbers as text are numbers
    assert check(profile, window).get("type_violation", "x").passed


def test_out_of_range_on_the_reference_range(
    profile: ReferenceProfile, reference: pd.DataFrame
) -> None:
    window = frame(1000, 5)
    top = reference["x"].max()
    window["x"] = window["x"].clip(reference["x"].min(), top)
    window.loc[:49, "x"] = top + 1.0  # 5% above the reference's maximum
    window.loc[50:59, "x"] = reference["x"].min() - 1.0  # 1% below its minimum
    window.loc[60:69, "x"] = top  # at the maximum: in range
    report = check(profile, window)
    out = report.get("out_of_range", "x")
    assert out.value == out.upper == pytest.approx(0.06)
    assert out.reference == 0.0
    assert not out.passed
    window.loc[:59, "x"] = 0.0
    out = check(profile, window).get("out_of_range", "x")
    assert out.value == 0.0
    assert out.passed


def test_configured_bounds_replace_the_reference_range(profile: ReferenceProfile) -> None:
    window = frame(1000, 6)
    window.loc[:99, "x"] = 4.5  # beyond the reference's range, within the configured bounds
    within = check(profile, window, bounds={"x": (-10.0, 10.0)}).get("out_of_range", "x")
    assert within.value == within.upper == 0.0
    assert within.passed
    assert not check(profile, window).get("out_of_range", "x").passed
    window.loc[:99, "x"] = 12.0  # beyond the bound
    beyond = check(profile, window, bounds={"x": (-10.0, 10.0)}).get("out_of_range", "x")
    assert not beyond.passed
    # The overflow bin also holds the window's few values just above the reference's
    # maximum: its sum brackets the count closely, not exactly.
    assert beyond.value <= 0.1 <= beyond.upper
    assert beyond.upper - beyond.value <= 0.01
    # Without those, the bin holds only values beyond the bound: resolved exactly.
    window.loc[100:, "x"] = window.loc[100:, "x"].clip(-2.0, 2.0)
    exact = check(profile, window, bounds={"x": (-10.0, 10.0)}).get("out_of_range", "x")
    assert exact.value == exact.upper == pytest.approx(0.1)


def test_configured_bounds_inside_the_range_give_a_certain_and_a_possible_share(
    profile: ReferenceProfile,
) -> None:
    window = frame(1000, 7)
    out = check(profile, window, bounds={"x": (-1.0, 1.0)}).get("out_of_range", "x")
    exact = float(((window["x"] < -1.0) | (window["x"] > 1.0)).mean())
    assert out.value <= exact <= out.upper
    # One reference bin (1/1000 of the reference) on each side: a few rows of uncertainty.
    assert out.upper - out.value <= 0.01
    assert not out.passed  # a third of normal values lie outside [-1, 1]


def test_count_above_brackets_the_exact_count(reference: pd.DataFrame) -> None:
    """Random windows and bounds, in and around the range: certain <= exact <= possible."""
    small = ReferenceProfile.from_frame(reference[["x"]], bins=20)
    spec = small.specs["x"]
    rng = np.random.default_rng(8)
    for trial in range(300):
        values = rng.normal(rng.normal(0, 2), rng.uniform(0.1, 3), rng.integers(1, 60))
        if trial % 5 == 0:
            values = np.round(values)  # ties, and values at bounds
        sketch = NumericSketch.from_values(spec, values)  # type: ignore[arg-type]
        candidates = [*rng.normal(0, 4, 3), *spec.edges[rng.integers(0, spec.edges.size, 2)]]
        for bound in [*candidates, values.min(), values.max(), float(np.round(values[0]))]:
            certain, possible = count_above(sketch, float(bound))
            exact = int((values > bound).sum())
            assert certain <= exact <= possible, (trial, bound)
            if bound in spec.edges or not values.min() <= bound < values.max():
                assert certain == possible == exact


def test_unseen_categories(profile: ReferenceProfile) -> None:
    window = frame(1000, 9)
    window.loc[:99, "colour"] = "purple"
    report = check(profile, window)
    unseen = report.get("unseen_category", "colour")
    assert unseen.value == pytest.approx(0.1)
    assert unseen.reference == 0.0
    assert not unseen.passed
    window.loc[:29, "colour"] = "red"
    window.loc[30:99, "colour"] = "green"
    assert check(profile, window).get("unseen_category", "colour").passed


def test_constant_columns(profile: ReferenceProfile) -> None:
    window = frame(500, 10)
    window["x"] = 0.25
    window["colour"] = "red"
    report = check(profile, window)
    assert not report.get("constant", "x").passed
    assert not report.get("constant", "colour").passed
    # flat was constant in the reference too: allowed.
    assert report.get("constant", "flat").value == 1.0
    assert report.get("constant", "flat").passed
    assert check(profile, window, constant=False).passed
    # One row is not a constant column.
    assert check(profile, frame(1, 11)).get("constant", "x").value == 0.0


def test_constant_unseen_category(profile: ReferenceProfile) -> None:
    window = frame(300, 12)
    window["colour"] = "purple"
    report = check(profile, window, unseen_category=math.inf)
    assert report.get("constant", "colour").value == 1.0
    assert [c.check for c in report.failed] == [QualityCheckName.CONSTANT]


def test_new_and_absent_features(profile: ReferenceProfile) -> None:
    window = frame(300, 13)
    sketch = profile.sketch(window)
    report = data_quality(profile, sketch, current_columns=[*FEATURES[:3], "extra"])
    new, absent = report.get("new_features"), report.get("absent_features")
    assert new.columns == ("extra",)
    assert absent.columns == ("colour",)
    assert not new.passed
    assert not absent.passed
    relaxed = DataQualityThresholds(new_features=1, absent_features=math.inf)
    assert data_quality(profile, sketch, relaxed, current_columns=[*FEATURES[:3], "x2"]).passed
    assert data_quality(profile, sketch).passed  # columns default to the sketch's features


def test_feature_missing_from_the_sketch_is_absent_and_skips_its_checks(
    profile: ReferenceProfile,
) -> None:
    sketch = profile.sketch(frame(300, 14))
    partial = type(sketch)(
        rows=sketch.rows, features={k: v for k, v in sketch.features.items() if k != "colour"}
    )
    report = data_quality(profile, partial)
    assert report.get("absent_features").columns == ("colour",)
    assert report.for_feature("colour") == ()


def test_empty_window_passes_with_undefined_values(profile: ReferenceProfile) -> None:
    report = data_quality(profile, profile.empty_sketch(), current_columns=FEATURES)
    assert report.passed
    assert math.isnan(report.get("missing", "x").value)
    assert json.loads(json.dumps(report.to_dict()))["checks"][0]["value"] is None


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"missing": -0.1}, "missing"),
        ({"out_of_range": math.nan}, "out_of_range"),
        ({"new_features": True}, "new_features"),
        ({"bounds": {"x": (2.0, 1.0)}}, "bounds['x']"),
        ({"bounds": {"x": (math.nan, 1.0)}}, "bounds['x']"),
    ],
)
def test_invalid_thresholds_name_the_parameter(kwargs: dict[str, object], parameter: str) -> None:
    with pytest.raises(InvalidParameterError) as raised:
        DataQualityThresholds(**kwargs)  # type: ignore[arg-type]
    assert raised.value.name == parameter


@pytest.mark.parametrize("feature", ["colour", "nope"])
def test_bounds_must_name_a_numeric_feature(profile: ReferenceProfile, feature: str) -> None:
    thresholds = DataQualityThresholds(bounds={feature: (0.0, 1.0)})
    with pytest.raises(InvalidParameterError, match="numeric feature"):
        data_quality(profile, profile.empty_sketch(), thresholds)
