"""Alert rule configuration and verdicts on windows built from real detector results.

The builders at the top (:func:`window`, :func:`feature`, ...) are shared with
the engine, backtest and Prometheus tests.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from alerts.rules import AttributionDriftRule as AttributionRule
from alerts.rules import (
    ChangePointRule,
    DataQualityRule,
    DriftShareRule,
    EstimatedQualityRule,
    FeatureDriftRule,
    JointDriftRule,
    PredictionDriftRule,
    QualityRule,
    RulesConfig,
    Verdict,
    default_rules,
    evaluate_rule,
    load_rules,
    parse_rule,
)
from detectors.attribution import AttributionDriftReport, DriftImpact
from detectors.decisions import Correction
from detectors.drift import DriftReport, FeatureDrift, compare_frames
from detectors.kinds import ColumnKind
from detectors.multivariate.base import MultivariateResult
from detectors.performance.cbpe import PerformanceEstimate
from detectors.profile import ReferenceProfile
from detectors.quality.data_quality import data_quality
from detectors.window_result import (
    AnalysisError,
    AttributionDrift,
    ChangeDetection,
    ChangePoint,
    DetectorChanges,
    EstimatedPerformance,
    JointDrift,
    JointMethodResult,
    MeasuredQuality,
    StreamChanges,
    WindowResult,
)

# --- builders shared by the alert tests ----------------------------------------------------

T0 = 1_795_334_400.0  # 2026-11-22T08:00:00Z
HOUR = 3600.0
FEATURES = ("age", "income", "region", "tenure")


def feature(
    name: str, *, drift: bool, statistic: float | None = None, status: str = "ok"
) -> FeatureDrift:
    """A KS feature result: drifted ones with a tiny p-value, the others with p=0.4."""
    stat = statistic if statistic is not None else (0.3 if drift else 0.02)
    return FeatureDrift(
        name=name,
        kind=ColumnKind.NUMERIC,
        method="ks",
        statistic=stat,
        p_value=1e-9 if drift else 0.4,
        threshold=0.05,
        drift=drift and status == "ok",
        detectable=drift and status == "ok",
        material=drift and status == "ok",
        effect_size=stat,
        bound=0.001,
        n_reference=1000,
        n_current=500,
        missing_share=0.0,
        status=status,
    )


def drift_report(
    drifted: Iterable[str] = (),
    *,
    features: Iterable[str] = FEATURES,
    prediction: bool | None = None,
    share_threshold: float = 0.5,
    statistics: Mapping[str, float] | None = None,
    insufficient: Iterable[str] = (),
) -> DriftReport:
    """A drift report over ``features`` where ``drifted`` drifted (dataset drift by share)."""
    gone, stats = set(insufficient), statistics or {}
    decided = tuple(
        feature(
            n,
            drift=n in set(drifted),
            statistic=stats.get(n),
            status="insufficient_data" if n in gone else "ok",
        )
        for n in features
    )
    evaluated = [f for f in decided if f.status == "ok"]
    share = sum(f.drift for f in evaluated) / len(evaluated) if evaluated else 0.0
    return DriftReport(
        features=decided,
        drift_share=share,
        dataset_drift=bool(evaluated) and share >= share_threshold,
        drift_share_threshold=share_threshold,
        prediction=None if prediction is None else feature("score", drift=prediction),
        rows_reference=1000,
        rows_current=500,
        correction=Correction.BENJAMINI_HOCHBERG,
        exact=False,
    )


def window(
    i: int,
    *,
    drifted: Iterable[str] = (),
    model: str = "credit-risk",
    size: float = HOUR,
    **fields: Any,
) -> WindowResult:
    """Window ``i`` (hourly from :data:`T0`) of ``model`` with a drift report unless given."""
    fields.setdefault("status", "ok")
    if fields["status"] == "ok":
        fields.setdefault("drift", drift_report(drifted))
    return WindowResult(
        model=model,
        window_start=T0 + i * size,
        window_end=T0 + (i + 1) * size,
        rows=500 if fields["status"] == "ok" else 3,
        profile_version=1,
        **fields,
    )


def estimated(**metrics: float) -> EstimatedPerformance:
    """An estimated-performance result with the given metrics (the others NaN)."""
    values = dict.fromkeys(EstimatedPerformance.METRICS, math.nan) | metrics
    estimate = PerformanceEstimate(
        rows=500,
        threshold=0.5,
        predicted_positives=100,
        expected_positives=110.0,
        true_positives=80.0,
        false_positives=20.0,
        true_negatives=370.0,
        false_negatives=30.0,
        roc_auc_bound=0.001,
        zero_division=0.0,
        **values,
    )
    return EstimatedPerformance(
        estimate=estimate,
        window_rows=500,
        coverage=1.0,
        estimator="abc",
        positive_label="1",
        calibrated=True,
    )


def joint(*flags: bool, statistic: float = 0.2) -> JointDrift:
    """Joint drift with one method result per flag."""
    methods = tuple(
        JointMethodResult(
            result=MultivariateResult(
                method=f"method{i}",
                statistic=statistic,
                threshold=0.05,
                p_value=0.001 if flag else 0.5,
                drift=flag,
                n_reference=1000,
                n_current=500,
                n_features=4,
                alpha=0.05,
                seed=0,
            )
        )
        for i, flag in enumerate(flags)
    )
    return JointDrift(rows_reference=1000, rows_current=500, methods=methods)


def changes(**streams: bool) -> ChangeDetection:
    """Change detection over the named streams, each with or without a change."""
    return ChangeDetection(
        max_points=1000,
        parameters={},
        streams={
            name: StreamChanges(
                points=400,
                skipped=0,
                dropped=0,
                first_event_time=T0,
                last_event_time=T0 + HOUR,
                detectors={
                    "adwin": DetectorChanges(
                        points=400,
                        changes=(ChangePoint(index=250, event_time=T0 + 1800),) if found else (),
                        n_changes=int(found),
                        detected=found,
                    )
                },
            )
            for name, found in streams.items()
        },
    )


def only(verdicts: Mapping[str, Verdict]) -> Verdict:
    """The single whole-window verdict."""
    assert list(verdicts) == [""]
    return verdicts[""]


def json_ready(value: object) -> None:
    """Fail unless ``value`` is strict JSON (no NaN, only plain types)."""
    json.dumps(value, allow_nan=False)


# --- configuration -------------------------------------------------------------------------


def test_defaults_without_configuration() -> None:
    for config in (RulesConfig(), load_rules(""), load_rules("rules: null")):
        rules = config.enabled
        assert [(r.kind, r.name, r.severity, r.fire_after, r.retrain) for r in rules] == [
            ("feature_drift", "feature_drift", "warning", 2, False),
            ("drift_share", "drift_share", "critical", 2, False),
            ("prediction_drift", "prediction_drift", "warning", 2, False),
            ("data_quality", "data_quality", "warning", 2, False),
        ]
        assert all(r.resolve_after == 2 and r.repeat_interval_s == 6 * HOUR for r in rules)
    assert default_rules() == RulesConfig().effective
    assert isinstance(RulesConfig().enabled[0], FeatureDriftRule)
    assert RulesConfig().enabled[0].split  # type: ignore[union-attr]
    assert load_rules("rules: []").enabled == ()


def test_defaults_per_kind_and_overrides() -> None:
    quality = parse_rule({"kind": "quality", "metric": "accuracy", "threshold": 0.8})
    assert (quality.name, quality.fire_after, quality.severity) == (
        "quality.accuracy",
        1,
        "warning",
    )
    assert isinstance(quality, QualityRule)
    assert quality.breach_direction == "below"
    assert parse_rule({"kind": "quality", "metric": "rmse", "threshold": 3}).breach_direction == (  # type: ignore[union-attr]
        "above"
    )
    estimate = parse_rule({"kind": "estimated_quality", "metric": "roc_auc", "threshold": 0.7})
    assert (estimate.name, estimate.fire_after, estimate.event_type) == (
        "estimated_quality.roc_auc",
        1,
        "quality.degraded",
    )
    change = parse_rule({"kind": "change_point", "stream": "error"})
    assert (change.name, change.severity, change.fire_after, change.resolve_after) == (
        "change_point.error",
        "info",
        1,
        1,
    )
    named = parse_rule({"kind": "feature_drift", "feature": "income", "retrain": True})
    assert (named.name, named.event_type, named.retrain) == (
        "feature_drift.income",
        "drift.detected",
        True,
    )
    several = parse_rule({"kind": "feature_drift", "min_features": 3})
    assert several.name == "feature_drift.min_3"
    assert not several.split  # type: ignore[union-attr]
    custom = parse_rule(
        {
            "kind": "drift_share",
            "name": "share-60",
            "threshold": 0.6,
            "severity": "info",
            "fire_after": 1,
        }
    )
    assert (custom.name, custom.severity, custom.fire_after) == ("share-60", "info", 1)
    assert parse_rule({"kind": "data_quality"}).event_type == "data_quality.failed"
    assert JointDriftRule().event_type == AttributionRule().event_type == "drift.detected"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"kind": "feature_drift", "bogus": 1}, "feature_drift.bogus"),
        ({"kind": "feature_drift", "feature": "a", "min_features": 2}, "feature and min_features"),
        ({"kind": "feature_drift", "min_features": 0}, "feature_drift.min_features"),
        ({"kind": "feature_drift", "min_features": 2, "per_feature": True}, "per_feature"),
        ({"kind": "drift_share", "fire_after": 0}, "drift_share.fire_after"),
        ({"kind": "drift_share", "threshold": 1.5}, "drift_share.threshold"),
        ({"kind": "drift_share", "severity": "page"}, "drift_share.severity"),
        ({"kind": "drift_share", "repeat_interval_s": 0}, "drift_share.repeat_interval_s"),
        ({"kind": "drift_share", "name": "has space"}, "drift_share.name"),
        ({"kind": "quality", "metric": "acuracy", "threshold": 0.8}, "quality.metric"),
        ({"kind": "quality", "metric": "accuracy"}, "quality.threshold"),
        ({"kind": "quality", "metric": "mean_error", "threshold": 1}, "direction"),
        (
            {"kind": "estimated_quality", "metric": "mae", "threshold": 1},
            "estimated_quality.metric",
        ),
        ({"kind": "data_quality", "checks": ["missin"]}, "data_quality.checks.0"),
        ({"kind": "change_point", "stream": "label"}, "change_point.stream"),
        ({"kind": "drift"}, "'drift'"),
    ],
)
def test_invalid_rules_name_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_rule(data)
    assert field in str(caught.value)


def test_invalid_config_names_the_field() -> None:
    with pytest.raises(ValidationError, match=r"rules\[1\]\.name: 'drift_share' is already"):
        load_rules("rules:\n  - kind: drift_share\n  - kind: drift_share\n")
    with pytest.raises(ValidationError, match=r"rules\.0\.quality\.threshold"):
        load_rules("rules:\n  - {kind: quality, metric: f1}\n")
    with pytest.raises(ValidationError, match="defaults"):
        load_rules("defaults: true\n")
    both = load_rules(
        "rules:\n  - {kind: drift_share}\n  - {kind: drift_share, name: share_70, threshold: 0.7}\n"
    )
    assert [r.name for r in both.enabled] == ["drift_share", "share_70"]
    assert load_rules("rules: [{kind: joint_drift, enabled: false}]").enabled == ()


# --- drift verdicts ------------------------------------------------------------------------


def test_feature_drift_any_is_one_verdict_per_feature() -> None:
    result = window(0, drift=drift_report(["income"], insufficient=["tenure"]))
    verdicts = evaluate_rule(FeatureDriftRule(), result)
    assert {s: v.status for s, v in verdicts.items()} == {
        "age": "clean",
        "income": "breach",
        "region": "clean",
        "tenure": "unknown",
    }
    income = verdicts["income"].evidence
    assert (income.value, income.threshold) == (0.3, 0.05)
    assert income.summary == "income drifted (ks=0.3, p=1e-09)"
    assert income.details["feature"]["name"] == "income"
    for verdict in verdicts.values():
        json_ready(verdict.evidence.details)


def test_feature_drift_named_and_min_features() -> None:
    result = window(0, drift=drift_report(["income", "age"], statistics={"age": 0.5}))
    assert set(evaluate_rule(FeatureDriftRule(feature="income"), result)) == {"income"}
    assert evaluate_rule(FeatureDriftRule(feature="income"), result)["income"].status == "breach"
    missing = evaluate_rule(FeatureDriftRule(feature="salary"), result)["salary"]
    assert missing.status == "unknown"
    assert "salary" in missing.evidence.summary
    two = only(evaluate_rule(FeatureDriftRule(min_features=2), result))
    assert two.status == "breach"
    assert (two.evidence.value, two.evidence.threshold) == (2.0, 2.0)
    assert two.evidence.summary == "2 of 4 features drifted; top: age (ks=0.5)"
    assert [f["name"] for f in two.evidence.details["drifted"]] == ["age", "income"]
    assert two.evidence.details["ranked_by"] == "severity"
    assert only(evaluate_rule(FeatureDriftRule(min_features=3), result)).status == "clean"
    merged = only(evaluate_rule(FeatureDriftRule(per_feature=False), result))
    assert merged.status == "breach"


def test_drifted_features_are_ranked_by_drift_impact() -> None:
    impact = (
        DriftImpact(name="income", statistic=0.3, importance=0.6, impact=0.18),
        DriftImpact(name="age", statistic=0.5, importance=0.1, impact=0.05),
        DriftImpact(name="region", statistic=0.02, importance=0.3, impact=0.006),
    )
    result = window(
        0, drift=drift_report(["income", "age"], statistics={"age": 0.5}), drift_impact=impact
    )
    verdict = only(evaluate_rule(FeatureDriftRule(min_features=1), result))
    details = verdict.evidence.details
    assert details["ranked_by"] == "drift_impact"
    assert [(f["name"], f["impact"]) for f in details["drifted"]] == [
        ("income", 0.18),
        ("age", 0.05),
    ]
    assert verdict.evidence.summary == "2 of 4 features drifted; top: income (ks=0.3)"
    json_ready(details)


def test_drift_share_uses_the_report_decision_or_a_threshold() -> None:
    half = window(0, drifted=["age", "income"])
    quarter = window(1, drifted=["age"])
    assert only(evaluate_rule(DriftShareRule(), half)).status == "breach"
    assert only(evaluate_rule(DriftShareRule(), quarter)).status == "clean"
    low = DriftShareRule(threshold=0.25)
    verdict = only(evaluate_rule(low, quarter))
    assert verdict.status == "breach"
    assert (verdict.evidence.value, verdict.evidence.threshold) == (0.25, 0.25)
    assert verdict.evidence.summary.startswith("drift share 25% (threshold 25%): 1 of 4")
    strict = window(2, drift=drift_report(["age"], share_threshold=0.2))
    assert only(evaluate_rule(DriftShareRule(), strict)).status == "breach"
    none = window(3, drift=drift_report(insufficient=FEATURES))
    assert only(evaluate_rule(DriftShareRule(), none)).status == "unknown"


def test_prediction_drift() -> None:
    assert only(evaluate_rule(PredictionDriftRule(), window(0))).status == "unknown"
    drifted = window(0, drift=drift_report(prediction=True))
    stable = window(1, drift=drift_report(prediction=False))
    assert only(evaluate_rule(PredictionDriftRule(), drifted)).status == "breach"
    assert only(evaluate_rule(PredictionDriftRule(), stable)).status == "clean"
    by_score = PredictionDriftRule(threshold=0.25)
    verdict = only(evaluate_rule(by_score, drifted))
    assert (verdict.status, verdict.evidence.threshold) == ("breach", 0.25)
    assert only(evaluate_rule(by_score, stable)).status == "clean"


def test_drift_from_real_detectors() -> None:
    rng = np.random.default_rng(7)
    reference = pd.DataFrame({n: rng.normal(size=2000) for n in FEATURES})
    current = pd.DataFrame({n: rng.normal(size=1000) for n in FEATURES})
    current["income"] += 1.0
    report = compare_frames(reference, current)
    result = window(0, drift=report)
    verdicts = evaluate_rule(FeatureDriftRule(), result)
    assert {s for s, v in verdicts.items() if v.status == "breach"} == {"income"}
    assert only(evaluate_rule(DriftShareRule(), result)).status == "clean"
    summary = only(evaluate_rule(FeatureDriftRule(min_features=1), result)).evidence.summary
    assert summary.startswith("1 of 4 features drifted; top: income (ks=0.")


# --- other kinds ---------------------------------------------------------------------------


def test_data_quality() -> None:
    rule = DataQualityRule()
    assert only(evaluate_rule(rule, window(0))).status == "unknown"
    broken = window(0, data_quality=AnalysisError(message="no profile"))
    assert "no profile" in only(evaluate_rule(rule, broken)).evidence.summary
    profile = ReferenceProfile.from_frame(pd.DataFrame({"x": [1.5, 2.5, 3.5, 4.5] * 25}))
    sketch = profile.sketch(pd.DataFrame({"x": [2.5, 9.5, None, 3.5]}))
    failing = window(1, data_quality=data_quality(profile, sketch, current_columns=["x"]))
    verdict = only(evaluate_rule(rule, failing))
    assert verdict.status == "breach"
    assert verdict.evidence.value == 2.0
    assert verdict.evidence.summary.startswith("2 of 6 checks failed: missing on x (0.25 > 0.05)")
    json_ready(verdict.evidence.details)
    only_constant = DataQualityRule.model_validate({"checks": ["constant"]})
    assert only(evaluate_rule(only_constant, failing)).status == "clean"
    fine = profile.sketch(pd.DataFrame({"x": [2.5, 3.5, 1.5, 4.5]}))
    passing = window(2, data_quality=data_quality(profile, fine, current_columns=["x"]))
    assert only(evaluate_rule(rule, passing)).status == "clean"


def test_measured_quality() -> None:
    rule = QualityRule(metric="accuracy", threshold=0.8)
    assert only(evaluate_rule(rule, window(0))).status == "unknown"  # no labels
    low = window(0, quality=MeasuredQuality(metrics={"accuracy": 0.7}))
    verdict = only(evaluate_rule(rule, low))
    assert verdict.status == "breach"
    assert verdict.evidence.summary == "measured accuracy 0.7 is below 0.8"
    at = window(1, quality=MeasuredQuality(metrics={"accuracy": 0.8}))
    assert only(evaluate_rule(rule, at)).status == "clean"  # strict
    error = QualityRule(metric="mae", threshold=2.0)
    high = window(2, quality=MeasuredQuality(metrics={"mae": 2.5}))
    assert only(evaluate_rule(error, high)).status == "breach"
    assert only(evaluate_rule(error, low)).status == "unknown"  # metric not measured


def test_estimated_quality() -> None:
    rule = EstimatedQualityRule(metric="roc_auc", threshold=0.75)
    assert only(evaluate_rule(rule, window(0))).status == "unknown"
    failed = window(0, estimated_performance=AnalysisError(message="no scores"))
    assert only(evaluate_rule(rule, failed)).status == "unknown"
    assert only(evaluate_rule(rule, window(0, estimated_performance=estimated()))).status == (
        "unknown"
    )  # NaN AUC
    low = window(1, estimated_performance=estimated(roc_auc=0.7, accuracy=0.9))
    verdict = only(evaluate_rule(rule, low))
    assert (verdict.status, verdict.evidence.value) == ("breach", 0.7)
    assert verdict.evidence.summary == "estimated roc_auc 0.7 is below 0.75"
    good = window(2, estimated_performance=estimated(roc_auc=0.8))
    assert only(evaluate_rule(rule, good)).status == "clean"


def test_joint_attribution_and_change_points() -> None:
    rule = JointDriftRule()
    assert only(evaluate_rule(rule, window(0))).status == "unknown"
    assert only(evaluate_rule(rule, window(0, joint_drift=joint(False, True)))).status == "breach"
    assert only(evaluate_rule(rule, window(0, joint_drift=joint(False)))).status == "clean"
    too_few = window(0, joint_drift=joint(False, statistic=math.nan))
    assert only(evaluate_rule(rule, too_few)).status == "unknown"
    assert (
        "method1"
        in only(evaluate_rule(rule, window(0, joint_drift=joint(False, True)))).evidence.summary
    )

    report = AttributionDriftReport(
        features=(),
        share_distance=0.3,
        share_threshold=0.1,
        share_drift=True,
        drift=True,
        threshold=0.25,
        alpha=0.05,
        correction=Correction.BENJAMINI_HOCHBERG,
        rows_reference=1000,
        rows_current=500,
    )
    attribution = AttributionDrift(source="model", report=report)
    verdict = only(evaluate_rule(AttributionRule(), window(0, attribution=attribution)))
    assert verdict.status == "breach"
    assert "importance shares moved by 0.3" in verdict.evidence.summary
    unavailable = window(0, attribution=AnalysisError(message="no SHAP", source="model"))
    assert only(evaluate_rule(AttributionRule(), unavailable)).status == "unknown"

    points = ChangePointRule()
    assert only(evaluate_rule(points, window(0))).status == "unknown"
    found = window(0, change_detection=changes(score=True, error=False))
    verdict = only(evaluate_rule(points, found))
    assert verdict.status == "breach"
    assert verdict.evidence.summary == "score: first change at point 250, 1 in all"
    assert only(evaluate_rule(ChangePointRule(stream="error"), found)).status == "clean"
    no_error = window(0, change_detection=changes(score=True))
    assert only(evaluate_rule(ChangePointRule(stream="error"), no_error)).status == "unknown"
    json_ready(verdict.evidence.details)


def test_insufficient_data_is_unknown_for_every_kind() -> None:
    result = window(
        0,
        status="insufficient_data",
        quality=MeasuredQuality(metrics={"accuracy": 0.1}),
        change_detection=changes(score=True),
    )
    rules = [
        *default_rules(),
        FeatureDriftRule(feature="income"),
        FeatureDriftRule(min_features=1),
        QualityRule(metric="accuracy", threshold=0.9),
        EstimatedQualityRule(metric="f1", threshold=0.5),
        JointDriftRule(),
        AttributionRule(),
        ChangePointRule(),
    ]
    for rule in rules:
        verdicts = evaluate_rule(rule, result)
        assert all(v.status == "unknown" for v in verdicts.values()), rule.name
        assert all("insufficient data" in v.evidence.summary for v in verdicts.values())
    assert evaluate_rule(FeatureDriftRule(), result) == {}  # no features known: none judged
