"""Attribution summaries merge exactly and round-trip; attribution drift decides as documented.

SHAP values here are built in closed form: for a linear model ``f(x) = w.x + b``
with independent features, the SHAP value of feature ``j`` is
``w_j (x_j - E[x_j])``. For Gaussian ``x_j ~ N(mu_j, sd_j)`` its absolute value
has mean ``|w_j| sd_j sqrt(2/pi)`` and standard deviation
``|w_j| sd_j sqrt(1 - 2/pi)``, so mean ``|SHAP|``, its standard error and the
normalised importances are known exactly.
"""

from __future__ import annotations

import json
import math
from functools import reduce

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from detectors.attribution import (
    ATTRIBUTION_FORMAT_VERSION,
    AttributionSummary,
    DriftImpact,
    attribution_drift,
    comparable_statistics,
    drift_impact_ranking,
)
from detectors.decisions import Correction
from detectors.drift import compare_frames
from detectors.errors import IncompatibleSketchError, InvalidParameterError, StateVersionError

FEATURES = ("age", "income", "tenure", "region_code", "score")
WEIGHTS = np.array([2.0, -1.0, 0.5, 0.25, 0.0])  # "score" is not used by the model
SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


def linear_shap(
    rows: int,
    seed: int,
    *,
    sd: np.ndarray | None = None,
    mean: np.ndarray | None = None,
    weights: np.ndarray = WEIGHTS,
) -> pd.DataFrame:
    """SHAP values of the linear model ``WEIGHTS.x`` on Gaussian rows (reference mean 0)."""
    rng = np.random.default_rng(seed)
    sd = np.ones(len(FEATURES)) if sd is None else sd
    mean = np.zeros(len(FEATURES)) if mean is None else mean
    x = rng.normal(mean, sd, size=(rows, len(FEATURES)))
    return pd.DataFrame(weights * x, columns=list(FEATURES))  # E[x] = 0 on the reference


# --- the summary -------------------------------------------------------------------------------


def test_summary_sums_and_sorted_features() -> None:
    frame = pd.DataFrame({"b": [1.0, -2.0, np.nan], "a": [0.5, None, -0.5]})
    summary = AttributionSummary.from_values(frame)
    assert summary.features == ("a", "b")
    assert summary.rows == 3
    assert summary.counts.tolist() == [2, 2]
    assert summary.abs_sum.tolist() == [1.0, 3.0]
    assert summary.total.tolist() == [0.0, -1.0]
    assert summary.abs_sq_sum.tolist() == [0.5, 5.0]
    assert summary.mean_abs() == {"a": 0.5, "b": 1.5}
    assert summary.mean() == {"a": 0.0, "b": -0.5}
    assert summary.importance() == {"a": 0.25, "b": 0.75}


def test_summary_from_array_needs_names_and_matches_frame() -> None:
    shap = linear_shap(100, seed=1)
    from_array = AttributionSummary.from_values(shap.to_numpy(), features=list(FEATURES))
    assert from_array == AttributionSummary.from_values(shap)
    with pytest.raises(InvalidParameterError, match="features"):
        AttributionSummary.from_values(shap.to_numpy())


def test_non_finite_values_are_not_counted() -> None:
    frame = pd.DataFrame({"a": [1.0, np.inf, -np.inf, np.nan, -3.0]})
    summary = AttributionSummary.from_values(frame)
    assert summary.counts.tolist() == [2]
    assert summary.rows == 5
    assert summary.mean_abs() == {"a": 2.0}


@pytest.mark.parametrize(
    ("values", "features", "match"),
    [
        (pd.DataFrame({"a": ["x", "y"]}), None, "numbers"),
        (np.zeros((3, 2)), ["a"], "one column per feature"),
        (np.zeros(3), ["a"], "2-d"),
        (np.zeros((3, 2)), ["a", "a"], "distinct"),
        (pd.DataFrame({"a": [1.0]}), ["b"], "columns"),
    ],
)
def test_summary_rejects_bad_input(values: object, features: list[str] | None, match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        AttributionSummary.from_values(values, features)


def test_merge_equals_summary_of_all_rows() -> None:
    shap = linear_shap(3_000, seed=2)
    shap.iloc[::7, 1] = np.nan  # some rows explain only some features
    parts = [shap.iloc[k : k + 1_000] for k in range(0, len(shap), 1_000)]
    merged = reduce(AttributionSummary.merge, (AttributionSummary.from_values(p) for p in parts))
    whole = AttributionSummary.from_values(shap)
    assert merged == whole
    assert np.array_equal(merged.counts, whole.counts)  # counts exactly
    np.testing.assert_allclose(merged.abs_sum, whole.abs_sum, rtol=1e-12)
    np.testing.assert_allclose(merged.abs_sq_sum, whole.abs_sq_sum, rtol=1e-12)
    a, b = (AttributionSummary.from_values(p) for p in parts[:2])
    assert a.merge(b) == b.merge(a)
    empty = AttributionSummary.empty(FEATURES)
    assert a.merge(empty) == a
    assert empty.merge(a) == a


def test_merge_takes_the_union_of_features() -> None:
    left = AttributionSummary.from_values(pd.DataFrame({"b": [1.0], "c": [2.0]}))
    right = AttributionSummary.from_values(pd.DataFrame({"a": [-1.0, 3.0], "b": [4.0, 4.0]}))
    merged = left.merge(right)
    assert merged.features == ("a", "b", "c")
    assert merged.counts.tolist() == [2, 3, 1]
    assert merged.abs_sum.tolist() == [4.0, 9.0, 2.0]
    assert merged.rows == 3
    together = pd.DataFrame(
        {"a": [np.nan, -1.0, 3.0], "b": [1.0, 4.0, 4.0], "c": [2.0, None, None]}
    )
    assert merged == AttributionSummary.from_values(together)


def test_round_trip_through_json() -> None:
    summary = AttributionSummary.from_values(linear_shap(500, seed=3))
    data = json.loads(json.dumps(summary.to_dict()))
    assert data["version"] == ATTRIBUTION_FORMAT_VERSION
    assert AttributionSummary.from_dict(data) == summary
    empty = AttributionSummary.empty()
    assert AttributionSummary.from_dict(json.loads(json.dumps(empty.to_dict()))) == empty


def test_newer_version_and_other_formats_are_refused() -> None:
    data = AttributionSummary.from_values(linear_shap(10, seed=4)).to_dict()
    with pytest.raises(StateVersionError, match="upgrade driftline"):
        AttributionSummary.from_dict({**data, "version": ATTRIBUTION_FORMAT_VERSION + 1})
    with pytest.raises(IncompatibleSketchError, match="attribution_summary"):
        AttributionSummary.from_dict({**data, "format": "driftline.regression_sketch"})


def test_inconsistent_state_is_refused() -> None:
    good = AttributionSummary.from_values(linear_shap(10, seed=5)).to_dict()
    with pytest.raises(InvalidParameterError, match="sorted"):
        AttributionSummary.from_dict({**good, "features": list(reversed(good["features"]))})
    with pytest.raises(InvalidParameterError, match="shape"):
        AttributionSummary.from_dict({**good, "counts": good["counts"][:-1]})
    with pytest.raises(InvalidParameterError, match="rows"):
        AttributionSummary.from_dict({**good, "rows": 3})


def test_closed_form_mean_abs_and_standard_error() -> None:
    rows = 200_000
    sd = np.array([1.0, 2.0, 0.5, 3.0, 1.0])
    summary = AttributionSummary.from_values(linear_shap(rows, seed=6, sd=sd))
    expected = np.abs(WEIGHTS) * sd * SQRT_2_OVER_PI
    expected_se = np.abs(WEIGHTS) * sd * math.sqrt(1 - 2 / math.pi) / math.sqrt(rows)
    mean_abs = np.array([summary.mean_abs()[f] for f in sorted(FEATURES)])
    se = np.array([summary.standard_error()[f] for f in sorted(FEATURES)])
    order = np.argsort(FEATURES)
    # Within 4 standard errors of the closed form; the estimated SE within 1% of the true one.
    assert np.all(np.abs(mean_abs - expected[order]) <= 4 * expected_se[order] + 1e-15)
    np.testing.assert_allclose(se, expected_se[order], rtol=0.01)
    shares = np.array([summary.importance()[f] for f in sorted(FEATURES)])
    true_shares = expected / expected.sum()
    np.testing.assert_allclose(shares, true_shares[order], atol=2e-3)
    assert summary.importance()["score"] == 0.0  # unused feature: SHAP exactly 0


def test_standard_error_needs_two_values() -> None:
    summary = AttributionSummary.from_values(pd.DataFrame({"a": [1.0, np.nan]}))
    assert math.isnan(summary.standard_error()["a"])


# --- attribution drift -------------------------------------------------------------------------


def test_same_distribution_does_not_drift() -> None:
    reference = AttributionSummary.from_values(linear_shap(20_000, seed=10))
    current = AttributionSummary.from_values(linear_shap(5_000, seed=11))
    report = attribution_drift(reference, current)
    assert not report.drift
    assert report.drifted == ()
    assert report.share_distance < 0.02
    assert {f.name: f.status for f in report.features} == {
        **dict.fromkeys(FEATURES, "ok"),
        "score": "negligible",  # weight 0: no share of importance
    }


def test_importance_shift_drifts_on_that_feature_only() -> None:
    reference = AttributionSummary.from_values(linear_shap(20_000, seed=12))
    sd = np.array([1.0, 1.0, 2.0, 1.0, 1.0])  # tenure's spread doubles: its mean |SHAP| too
    current = AttributionSummary.from_values(linear_shap(5_000, seed=13, sd=sd))
    report = attribution_drift(reference, current)
    assert [f.name for f in report.drifted] == ["tenure"]
    tenure = next(f for f in report.features if f.name == "tenure")
    assert tenure.relative_change == pytest.approx(1.0, abs=0.05)
    assert tenure.p_value is not None
    assert tenure.p_value < 1e-12
    assert tenure.current_share > tenure.reference_share
    # Share of importance moved: tenure's share grows from 0.5/3.75 to 1/4.25, TV ~ 0.102.
    assert report.share_distance == pytest.approx(1 / 4.25 - 0.5 / 3.75, abs=0.01)
    assert report.drift


def test_scale_change_is_relative_drift_but_no_share_drift() -> None:
    reference = AttributionSummary.from_values(linear_shap(10_000, seed=14))
    current = AttributionSummary.from_values(linear_shap(10_000, seed=14) * 2.0)
    report = attribution_drift(reference, current)
    assert report.share_distance == pytest.approx(0.0, abs=1e-12)
    assert not report.share_drift
    used = [f for f in report.features if f.name != "score"]
    assert all(f.relative_change == pytest.approx(1.0) for f in used)
    assert all(f.drift for f in used)
    score = next(f for f in report.features if f.name == "score")  # unused: share 0
    assert (score.relative_change, score.drift, score.p_value) == (0.0, False, None)
    assert score.status == "negligible"


def test_z_is_welchs_t_statistic() -> None:
    ref_values = linear_shap(300, seed=15)
    cur_values = linear_shap(200, seed=16, sd=np.array([1.3, 1.0, 1.0, 1.0, 1.0]))
    report = attribution_drift(
        AttributionSummary.from_values(ref_values),
        AttributionSummary.from_values(cur_values),
        correction="none",
    )
    for f in report.features:
        if f.name == "score":
            continue
        welch = stats.ttest_ind(cur_values[f.name].abs(), ref_values[f.name].abs(), equal_var=False)
        assert f.z == pytest.approx(float(welch.statistic), rel=1e-9)
        # Normal approximation of the t distribution: close at these sample sizes.
        assert f.p_value == pytest.approx(float(welch.pvalue), abs=2e-3)
        assert f.p_threshold == 0.05


def test_false_alarm_rate_is_bounded() -> None:
    # Under no change, with the relative-change rule out of the way, a window drifts only when
    # BH rejects a true null: at most alpha of the windows (family-wise under the global null).
    trials = 200
    alarms = 0
    reference = AttributionSummary.from_values(linear_shap(2_000, seed=100))
    for seed in range(trials):
        current = AttributionSummary.from_values(linear_shap(500, seed=1_000 + seed))
        report = attribution_drift(reference, current, threshold=1e-9, share_threshold=None)
        alarms += report.drift
    assert alarms <= 0.05 * trials + 3 * math.sqrt(0.05 * 0.95 * trials)  # alpha + 3 sd


def test_threshold_only_when_alpha_is_none() -> None:
    reference = AttributionSummary.from_values(pd.DataFrame({"a": [1.0, -1.0], "b": [2.0, 2.0]}))
    current = AttributionSummary.from_values(pd.DataFrame({"a": [1.5, -1.5], "b": [3.0, 1.0]}))
    report = attribution_drift(reference, current, threshold=0.5, alpha=None, min_samples=2)
    a, b = report.features
    assert a.relative_change == 0.5  # at the threshold: drift
    assert (a.drift, a.p_value, a.z) == (True, None, None)
    assert (b.relative_change, b.drift) == (0.0, False)
    assert report.correction is Correction.BENJAMINI_HOCHBERG


def test_zero_reference_importance() -> None:
    reference = AttributionSummary.from_values(pd.DataFrame({"a": [0.0] * 40, "b": [1.0] * 40}))
    current = AttributionSummary.from_values(pd.DataFrame({"a": [0.5] * 40, "b": [1.0] * 40}))
    a, b = attribution_drift(reference, current).features
    assert a.relative_change == math.inf
    assert a.z == math.inf
    assert a.p_value == 0.0
    assert a.drift
    assert (b.relative_change, b.z, b.drift) == (0.0, 0.0, False)
    assert a.to_dict()["relative_change"] is None  # JSON has no infinity


def test_negligible_features_are_not_decided() -> None:
    # "score" carries 0.3% of the importance; its mean |SHAP| triples, "age" moves by 30%.
    weights = np.array([2.0, -1.0, 0.5, 0.25, 0.01])
    reference = AttributionSummary.from_values(linear_shap(20_000, seed=30, weights=weights))
    sd = np.array([1.3, 1.0, 1.0, 1.0, 3.0])
    current = AttributionSummary.from_values(linear_shap(20_000, seed=31, weights=weights, sd=sd))
    report = attribution_drift(reference, current)
    score = next(f for f in report.features if f.name == "score")
    assert score.relative_change == pytest.approx(2.0, abs=0.1)
    assert max(score.reference_share, score.current_share) < 0.01
    assert (score.status, score.drift, score.p_value) == ("negligible", False, None)
    assert [f.name for f in report.drifted] == ["age"]
    every = attribution_drift(reference, current, min_share=0.0)
    assert [f.name for f in every.drifted] == ["score", "age"]
    # A feature that becomes important is decided even though it was negligible before.
    grown = AttributionSummary.from_values(
        linear_shap(20_000, seed=32, weights=weights, sd=np.array([1, 1, 1, 1, 30.0]))
    )
    assert "score" in [f.name for f in attribution_drift(reference, grown).drifted]


def test_too_few_values_are_not_decided() -> None:
    reference = AttributionSummary.from_values(linear_shap(1_000, seed=17))
    current = AttributionSummary.from_values(linear_shap(10, seed=18) * 5.0)
    report = attribution_drift(reference, current, min_samples=30)
    assert all(f.status == "insufficient_data" and not f.drift for f in report.features)
    assert all(f.p_value is None for f in report.features)
    assert math.isnan(report.share_distance)
    assert not report.drift


def test_features_on_one_side_only() -> None:
    reference = AttributionSummary.from_values(pd.DataFrame({"a": [1.0] * 50}))
    current = AttributionSummary.from_values(pd.DataFrame({"a": [1.0] * 50, "b": [1.0] * 50}))
    report = attribution_drift(reference, current)
    _a, b = report.features
    assert b.name == "b"
    assert b.status == "insufficient_data"
    assert b.n_reference == 0
    assert math.isnan(b.reference_mean_abs)
    assert b.reference_share == 0.0
    assert report.share_distance == pytest.approx(0.5)  # half the importance is on b now
    assert report.share_drift
    assert report.drift


def test_report_order_and_json() -> None:
    reference = AttributionSummary.from_values(linear_shap(5_000, seed=19))
    sd = np.array([1.0, 3.0, 2.0, 1.0, 1.0])
    current = AttributionSummary.from_values(linear_shap(5_000, seed=20, sd=sd))
    report = attribution_drift(reference, current)
    assert [f.name for f in report.drifted] == ["income", "tenure"]
    data = json.loads(json.dumps(report.to_dict()))
    assert [f["name"] for f in data["features"]][:2] == ["income", "tenure"]
    assert data["drift"] is True
    assert data["correction"] == "bh"


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"threshold": 0.0}, "threshold"),
        ({"threshold": math.nan}, "threshold"),
        ({"alpha": 1.0}, "alpha"),
        ({"correction": "holm"}, "correction"),
        ({"share_threshold": 0.0}, "share_threshold"),
        ({"min_samples": 0}, "min_samples"),
        ({"min_share": 1.0}, "min_share"),
    ],
)
def test_drift_parameters_are_validated(options: dict[str, object], name: str) -> None:
    summary = AttributionSummary.from_values(linear_shap(10, seed=21))
    with pytest.raises(InvalidParameterError, match=name):
        attribution_drift(summary, summary, **options)  # type: ignore[arg-type]


# --- drift-impact ranking ----------------------------------------------------------------------


def test_ranking_multiplies_and_sorts() -> None:
    ranking = drift_impact_ranking(
        {"a": 0.1, "b": 0.5, "c": 0.2, "d": 0.3},
        {"a": 6.0, "b": 0.0, "c": 3.0, "d": 1.0},  # raw mean |SHAP|: normalised by 10
    )
    assert ranking == (
        DriftImpact(name="a", statistic=0.1, importance=0.6, impact=pytest.approx(0.06)),  # type: ignore[arg-type]
        DriftImpact(name="c", statistic=0.2, importance=0.3, impact=pytest.approx(0.06)),  # type: ignore[arg-type]
        DriftImpact(name="d", statistic=0.3, importance=0.1, impact=pytest.approx(0.03)),  # type: ignore[arg-type]
        DriftImpact(name="b", statistic=0.5, importance=0.0, impact=0.0),
    )


def test_ranking_ties_by_name_missing_importance_and_nan_last() -> None:
    ranking = drift_impact_ranking(
        {"z": 0.5, "y": 0.5, "x": math.nan, "w": 0.9, "v": 0.0},
        {"z": 1.0, "y": 1.0, "x": 1.0, "v": 1.0, "only_importance": 1.0},
    )
    assert [d.name for d in ranking] == ["y", "z", "v", "w", "x"]
    assert ranking[0].importance == 0.2
    w = next(d for d in ranking if d.name == "w")
    assert (w.importance, w.impact) == (0.0, 0.0)
    assert math.isnan(ranking[-1].impact)


def test_ranking_of_zero_importance_and_empty_input() -> None:
    assert drift_impact_ranking({}, {"a": 1.0}) == ()
    (only,) = drift_impact_ranking({"a": 0.4}, {"a": 0.0})
    assert (only.importance, only.impact) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("statistics", "importance", "name"),
    [
        ({"a": -0.1}, {"a": 1.0}, "drift_statistics"),
        ({"a": math.inf}, {"a": 1.0}, "drift_statistics"),
        ({"a": 0.1}, {"a": -1.0}, "importance"),
        ({"a": 0.1}, {"a": math.nan}, "importance"),
    ],
)
def test_ranking_validates(
    statistics: dict[str, float], importance: dict[str, float], name: str
) -> None:
    with pytest.raises(InvalidParameterError, match=name):
        drift_impact_ranking(statistics, importance)


def test_ranking_from_a_drift_report_puts_important_drift_first() -> None:
    rng = np.random.default_rng(22)
    rows = 4_000
    reference = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=list(FEATURES))
    current = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=list(FEATURES))
    current["score"] += 1.0  # large drift of a feature the model ignores
    current["age"] += 0.3  # smaller drift of the most important feature
    current["region_code"] = current["region_code"].round().astype(str)
    reference["region_code"] = reference["region_code"].round().astype(str)
    report = compare_frames(reference, current)
    statistics = comparable_statistics(report)
    assert set(statistics) == set(FEATURES)
    assert all(0 <= s <= 1 for s in statistics.values())
    importance = AttributionSummary.from_values(linear_shap(rows, seed=23)).importance()
    ranking = drift_impact_ranking(statistics, importance)
    assert ranking[0].name == "age"
    assert next(d for d in ranking if d.name == "score").impact == 0.0
    assert statistics["score"] > statistics["age"]  # by drift alone the unused feature wins
