"""The Prometheus metrics contract (DESIGN.md) and the collectors behind the gauges.

Per-window gauges come from :class:`monitor.metrics.LatestWindows`, fed with real
:class:`~detectors.window_result.WindowResult` objects built here; the alerting gauges from
callables given to :meth:`monitor.metrics.Metrics.watch_alerts`. All on fresh registries.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.parser import text_string_to_metric_families

from detectors.attribution import AttributionDriftReport, FeatureAttributionDrift
from detectors.decisions import Correction
from detectors.drift import DriftReport, FeatureDrift
from detectors.kinds import ColumnKind
from detectors.multivariate.base import MultivariateResult
from detectors.performance.cbpe import PerformanceEstimate
from detectors.window_result import (
    AnalysisError,
    AttributionDrift,
    EstimatedPerformance,
    JointDrift,
    JointMethodResult,
    MeasuredQuality,
    WindowResult,
)
from monitor.events import WindowEvaluated
from monitor.metrics import (
    CONTENT_TYPE,
    EXTENSION_METRICS,
    METRICS,
    OPERATIONAL_METRICS,
    Metrics,
    render,
)
from monitor.streaming.evaluate import MetricsObserver

# Copied from DESIGN.md on purpose (not imported from the code under test): dashboards and
# alert rules depend on exactly these names, types and label names.
CONTRACT = {
    "driftline_records_total": ("counter", ("model",)),
    "driftline_records_invalid_total": ("counter", ("model", "reason")),
    "driftline_records_late_total": ("counter", ("model",)),
    "driftline_feature_drift_score": ("gauge", ("model", "feature", "method")),
    "driftline_feature_drift_p_value": ("gauge", ("model", "feature", "method")),
    "driftline_feature_drift_detected": ("gauge", ("model", "feature")),
    "driftline_prediction_drift_score": ("gauge", ("model", "method")),
    "driftline_dataset_drift_share": ("gauge", ("model",)),
    "driftline_feature_missing_ratio": ("gauge", ("model", "feature")),
    "driftline_model_quality": ("gauge", ("model", "metric")),
    "driftline_model_quality_estimated": ("gauge", ("model", "metric")),
    "driftline_label_coverage_ratio": ("gauge", ("model",)),
    "driftline_window_records": ("gauge", ("model",)),
    "driftline_window_end_timestamp_seconds": ("gauge", ("model",)),
    "driftline_consumer_lag_records": ("gauge", ("topic", "partition")),
    "driftline_alerts_total": ("counter", ("model", "rule", "severity")),
    "driftline_alerts_active": ("gauge", ("model", "rule", "severity")),
    "driftline_webhook_deliveries_total": ("counter", ("target", "outcome")),
    "driftline_outbox_events": ("gauge", ("state",)),
}

MODEL = "credit-risk"
WINDOW_END = 1795338960.0
WINDOW_S = 300.0


# --- building real window results ----------------------------------------------------------

#: ``(feature, method, statistic, p_value, drift, missing_share)`` of one feature.
FeatureRow = tuple[str, str, float, float | None, bool, float]


def feature_drift(
    name: str,
    method: str,
    statistic: float,
    p_value: float | None,
    drift: bool,
    missing_share: float = 0.0,
) -> FeatureDrift:
    """A feature's drift result with the fields the gauges read; the others plausible."""
    return FeatureDrift(
        name=name,
        kind=ColumnKind.NUMERIC,
        method=method,
        statistic=statistic,
        p_value=p_value,
        threshold=0.05 if p_value is not None else 0.1,
        drift=drift,
        detectable=drift,
        material=drift,
        effect_size=0.0,
        bound=0.0,
        n_reference=5000,
        n_current=1200,
        missing_share=missing_share,
    )


def drift_report(
    features: Sequence[FeatureRow],
    prediction: tuple[str, float] | None = None,
    drift_share: float = 0.0,
) -> DriftReport:
    """A drift report of ``features`` (and the prediction's ``(method, statistic)``)."""
    return DriftReport(
        features=tuple(feature_drift(*row) for row in features),
        drift_share=drift_share,
        dataset_drift=drift_share >= 0.5,
        drift_share_threshold=0.5,
        prediction=None
        if prediction is None
        else feature_drift("prediction", *prediction, None, False),
        rows_reference=5000,
        rows_current=1200,
        correction=Correction.NONE,
        exact=True,
    )


def joint_drift(*methods: tuple[str, float, bool]) -> JointDrift:
    """Joint drift with ``(method, statistic, drift)`` per method."""
    return JointDrift(
        rows_reference=500,
        rows_current=300,
        methods=tuple(
            JointMethodResult(
                result=MultivariateResult(
                    method=method,
                    statistic=statistic,
                    threshold=0.5,
                    p_value=None,
                    drift=drift,
                    n_reference=500,
                    n_current=300,
                    n_features=3,
                    alpha=0.01,
                    seed=0,
                )
            )
            for method, statistic, drift in methods
        ),
    )


def attribution_drift(
    *features: tuple[str, float, bool], share_drift: bool = False
) -> AttributionDrift:
    """Attribution drift with ``(feature, current mean |SHAP|, drift)`` per feature.

    ``share_drift``: the shares of importance moved too (the report drifts whatever
    the features do).
    """
    listed = tuple(
        FeatureAttributionDrift(
            name=name,
            reference_mean_abs=0.1,
            current_mean_abs=mean_abs,
            relative_change=(mean_abs - 0.1) / 0.1,
            reference_share=0.3,
            current_share=0.3,
            reference_mean=0.0,
            current_mean=0.0,
            z=None,
            p_value=None,
            p_threshold=None,
            threshold=0.5,
            drift=drift,
            n_reference=500,
            n_current=300,
        )
        for name, mean_abs, drift in features
    )
    report = AttributionDriftReport(
        features=listed,
        share_distance=0.3 if share_drift else 0.0,
        share_threshold=0.2,
        share_drift=share_drift,
        drift=share_drift or any(f.drift for f in listed),
        threshold=0.5,
        alpha=None,
        correction=Correction.NONE,
        rows_reference=500,
        rows_current=300,
    )
    return AttributionDrift(source="explanations", report=report)


def estimated_performance(**metrics: float) -> EstimatedPerformance:
    """A CBPE estimate whose metrics are ``metrics`` (NaN for those not given)."""
    values = {
        name: metrics.get(name, math.nan)
        for name in ("accuracy", "precision", "recall", "specificity", "f1", "roc_auc")
    }
    estimate = PerformanceEstimate(
        rows=1200,
        threshold=0.5,
        predicted_positives=300,
        expected_positives=280.0,
        true_positives=250.0,
        false_positives=50.0,
        true_negatives=870.0,
        false_negatives=30.0,
        roc_auc_bound=0.001,
        zero_division=0.0,
        **values,
    )
    return EstimatedPerformance(
        estimate=estimate,
        window_rows=1200,
        coverage=1.0,
        estimator="cbpe-test",
        positive_label="1",
        calibrated=True,
    )


DEFAULT_FEATURES: tuple[FeatureRow, ...] = (
    ("income", "ks", 0.31, 1e-9, True, 0.0),
    ("region", "psi", 0.02, None, False, 0.125),
    ("age", "ks", 0.01, 0.9, False, math.nan),
)


def window_result(
    model: str = MODEL,
    *,
    window_end: float = WINDOW_END,
    records: int = 1200,
    features: Sequence[FeatureRow] | None = DEFAULT_FEATURES,
    prediction: tuple[str, float] | None = ("ks", 0.12),
    drift_share: float = 1 / 3,
    quality: Mapping[str, float] | None = None,
    labelled: int = 0,
    predictions_stored: int = 0,
    **fields: Any,
) -> WindowResult:
    """One evaluated window of ``model``; ``features=None`` means no drift report."""
    return WindowResult(
        model=model,
        window_start=window_end - WINDOW_S,
        window_end=window_end,
        rows=records,
        status="ok",
        profile_version=1,
        labelled=labelled,
        predictions_stored=predictions_stored,
        quality=MeasuredQuality(metrics=dict(quality or {})),
        drift=None if features is None else drift_report(features, prediction, drift_share),
        **fields,
    )


# --- fixtures and helpers ------------------------------------------------------------------


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Metrics:
    return Metrics(registry)


def _populate_every_family(metrics: Metrics) -> None:
    """Give every declared metric (contract, extensions, operational) at least one series."""
    for declaration in (*METRICS, *EXTENSION_METRICS, *OPERATIONAL_METRICS):
        if declaration.collected:
            continue
        metric = getattr(metrics, declaration.attribute)
        labels = declaration.labels
        child = metric.labels(*(f"x-{label}" for label in labels)) if labels else metric
        if declaration.kind == "counter":
            child.inc()
        else:
            child.set(1.0)
    metrics.observe_result(
        window_result(
            quality={"accuracy": 0.9},
            labelled=60,
            predictions_stored=100,
            joint_drift=joint_drift(("mmd", 0.02, False)),
            attribution=attribution_drift(("income", 0.4, True)),
        ),
        estimated_quality={"accuracy": 0.88},
    )
    metrics.watch_alerts(lambda: {(MODEL, "feature-drift", "critical"): 1}, lambda: {"dead": 2})


def _families(registry: CollectorRegistry) -> dict[str, tuple[str, set[str]]]:
    """Return ``{sample name: (type, label names)}`` parsed from the text exposition."""
    found: dict[str, tuple[str, set[str]]] = {}
    for family in text_string_to_metric_families(render(registry).decode()):
        for sample in family.samples:
            found.setdefault(sample.name, (family.type, set()))[1].update(sample.labels)
    return found


def _described(metrics: Metrics) -> set[str]:
    """The names the collectors of ``metrics`` declare to the registry."""
    return {f.name for c in (metrics.windows, metrics.alerting) for f in c.describe()}


# --- the contract --------------------------------------------------------------------------


def test_every_contract_metric_is_exposed_with_its_type_and_labels(metrics: Metrics) -> None:
    _populate_every_family(metrics)
    exposed = _families(metrics.registry)
    for name, (kind, labels) in CONTRACT.items():
        assert name in exposed, name
        assert exposed[name] == (kind, set(labels)), name


def test_nothing_outside_the_contract_is_exposed(metrics: Metrics) -> None:
    """With every family populated, the exposition is exactly the declared metrics: the
    contract, the extensions and the operational ones (with their declared types and labels),
    plus prometheus_client's *_created timestamp per counter."""
    _populate_every_family(metrics)
    exposed = _families(metrics.registry)
    beyond = (*EXTENSION_METRICS, *OPERATIONAL_METRICS)
    declared = set(CONTRACT) | {d.name for d in beyond}
    counters = [name for name, (k, _) in CONTRACT.items() if k == "counter"]
    counters += [d.name for d in beyond if d.kind == "counter"]
    # prometheus_client adds a *_created timestamp per counter; nothing else is allowed.
    created = {f"{name.removesuffix('_total')}_created" for name in counters}
    assert set(exposed) == declared | created
    for declaration in beyond:
        assert exposed[declaration.name] == (declaration.kind, set(declaration.labels))


def test_declarations_match_the_contract() -> None:
    assert {d.name: (d.kind, d.labels) for d in METRICS} == CONTRACT
    assert all(d.help for d in METRICS)


def test_metrics_are_attributes_named_after_the_contract(metrics: Metrics) -> None:
    """Every contract metric is either an instrument attribute named after it (counters and the
    consumer lag, which the code updates) or a family one of the collectors produces at scrape
    time (the per-window and alerting gauges) -- never both, never neither."""
    described = _described(metrics)
    for name in CONTRACT:
        attribute = hasattr(metrics, name.removeprefix("driftline_"))
        assert attribute != (name in described), name
    for declaration in (*METRICS, *EXTENSION_METRICS, *OPERATIONAL_METRICS):
        assert declaration.collected == (declaration.name in described), declaration.name
        assert declaration.collected != hasattr(metrics, declaration.attribute), declaration.name


def test_a_second_metrics_on_one_registry_is_refused(registry: CollectorRegistry) -> None:
    Metrics(registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Metrics(registry)


def test_collector_families_are_described_to_the_registry(metrics: Metrics) -> None:
    """The collectors describe their families, so a clashing metric is refused, too."""
    for name in ("driftline_feature_drift_score", "driftline_outbox_events"):
        with pytest.raises(ValueError, match="Duplicated timeseries"):
            Gauge(name, "clash", registry=metrics.registry)


def test_fresh_registries_are_independent() -> None:
    first, second = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())
    first.records_total.labels(model=MODEL).inc()
    first.observe_result(window_result())
    assert first.registry.get_sample_value("driftline_records_total", {"model": MODEL}) == 1.0
    assert second.registry.get_sample_value("driftline_records_total", {"model": MODEL}) is None
    assert first.registry.get_sample_value("driftline_window_records", {"model": MODEL}) == 1200
    assert second.registry.get_sample_value("driftline_window_records", {"model": MODEL}) is None


def test_counters_increment(metrics: Metrics, registry: CollectorRegistry) -> None:
    metrics.records_total.labels(model=MODEL).inc()
    metrics.records_total.labels(model=MODEL).inc(41)
    metrics.records_invalid_total.labels(model=MODEL, reason="malformed_json").inc()
    metrics.alerts_total.labels(model=MODEL, rule="feature-drift", severity="critical").inc()
    get = registry.get_sample_value
    assert get("driftline_records_total", {"model": MODEL}) == 42.0
    assert get("driftline_records_invalid_total", {"model": MODEL, "reason": "malformed_json"}) == 1
    assert (
        get(
            "driftline_alerts_total",
            {"model": MODEL, "rule": "feature-drift", "severity": "critical"},
        )
        == 1.0
    )
    with pytest.raises(ValueError, match="negative"):
        metrics.records_total.labels(model=MODEL).inc(-1)


# --- per-window gauges ---------------------------------------------------------------------


def test_observe_result_sets_every_per_window_gauge(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.observe_result(window_result())
    get = registry.get_sample_value
    income = {"model": MODEL, "feature": "income"}
    assert get("driftline_feature_drift_score", {**income, "method": "ks"}) == 0.31
    assert get("driftline_feature_drift_p_value", {**income, "method": "ks"}) == 1e-9
    assert get("driftline_feature_drift_detected", income) == 1.0
    assert get("driftline_feature_missing_ratio", income) == 0.0
    region = {"model": MODEL, "feature": "region"}
    assert get("driftline_feature_drift_score", {**region, "method": "psi"}) == 0.02
    assert get("driftline_feature_drift_detected", region) == 0.0
    assert get("driftline_feature_missing_ratio", region) == 0.125
    assert get("driftline_prediction_drift_score", {"model": MODEL, "method": "ks"}) == 0.12
    assert get("driftline_dataset_drift_share", {"model": MODEL}) == pytest.approx(1 / 3)
    assert get("driftline_window_records", {"model": MODEL}) == 1200.0
    assert get("driftline_window_end_timestamp_seconds", {"model": MODEL}) == 1795338960.0


def test_unknown_p_values_leave_no_series(metrics: Metrics, registry: CollectorRegistry) -> None:
    # Distance methods have no p-value (None); a failed test may give NaN. Neither is exported:
    # a NaN gauge would poison min()/max() in PromQL, a missing one reads as "no data".
    metrics.observe_result(
        window_result(
            features=[
                ("region", "psi", 0.02, None, False, 0.0),
                ("income", "ks", math.nan, math.nan, False, math.nan),
            ]
        )
    )
    get = registry.get_sample_value
    region = {"model": MODEL, "feature": "region", "method": "psi"}
    income = {"model": MODEL, "feature": "income", "method": "ks"}
    assert get("driftline_feature_drift_p_value", region) is None
    assert get("driftline_feature_drift_score", region) == 0.02
    assert get("driftline_feature_drift_p_value", income) is None
    assert get("driftline_feature_drift_score", income) is None
    assert get("driftline_feature_missing_ratio", {"model": MODEL, "feature": "income"}) is None
    assert get("driftline_feature_drift_detected", {"model": MODEL, "feature": "income"}) == 0.0
    assert "NaN" not in render(registry).decode()


def test_a_new_window_replaces_the_previous_windows_series(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.observe_result(window_result())
    metrics.observe_result(
        window_result(
            features=[("income", "wasserstein", 0.2, None, True, 0.0)],  # method changed
            prediction=None,
            records=10,
        )
    )
    get = registry.get_sample_value
    income = {"model": MODEL, "feature": "income"}
    assert get("driftline_feature_drift_score", {**income, "method": "ks"}) is None
    assert get("driftline_feature_drift_p_value", {**income, "method": "ks"}) is None
    assert get("driftline_feature_drift_score", {**income, "method": "wasserstein"}) == 0.2
    assert get("driftline_feature_drift_detected", {"model": MODEL, "feature": "region"}) is None
    assert get("driftline_prediction_drift_score", {"model": MODEL, "method": "ks"}) is None
    assert get("driftline_window_records", {"model": MODEL}) == 10.0


def test_a_window_without_drift_report_shows_only_its_size_and_end(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.observe_result(window_result())
    metrics.observe_result(window_result(window_end=WINDOW_END + WINDOW_S, features=None))
    get = registry.get_sample_value
    assert get("driftline_window_records", {"model": MODEL}) == 1200.0
    assert get("driftline_window_end_timestamp_seconds", {"model": MODEL}) == WINDOW_END + WINDOW_S
    assert get("driftline_dataset_drift_share", {"model": MODEL}) is None
    assert get("driftline_feature_drift_detected", {"model": MODEL, "feature": "income"}) is None


def test_an_older_window_does_not_replace_the_newest(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.observe_result(window_result(records=1200))
    metrics.observe_result(window_result(window_end=WINDOW_END - WINDOW_S, records=7))
    get = registry.get_sample_value
    assert get("driftline_window_records", {"model": MODEL}) == 1200.0
    assert get("driftline_window_end_timestamp_seconds", {"model": MODEL}) == WINDOW_END


def test_models_do_not_clear_each_other(metrics: Metrics, registry: CollectorRegistry) -> None:
    metrics.observe_result(window_result())
    metrics.observe_result(
        window_result("fraud", features=[("amount", "ks", 0.5, 0.01, True, 0.0)])
    )
    get = registry.get_sample_value
    assert get("driftline_feature_drift_detected", {"model": MODEL, "feature": "income"}) == 1.0
    assert get("driftline_feature_drift_detected", {"model": "fraud", "feature": "amount"}) == 1.0
    assert get("driftline_window_records", {"model": MODEL}) == 1200.0


def test_render_is_the_text_exposition(metrics: Metrics, registry: CollectorRegistry) -> None:
    metrics.consumer_lag_records.labels(topic="predictions", partition="3").set(17)
    text = render(registry).decode()
    assert 'driftline_consumer_lag_records{partition="3",topic="predictions"} 17.0' in text
    assert CONTENT_TYPE.startswith("text/plain")


def test_observe_quality_replaces_the_models_quality_series(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    def quality(metric: str, model: str = MODEL) -> float | None:
        labels = {"model": model, "metric": metric}
        return registry.get_sample_value("driftline_model_quality", labels)

    def labelled(model: str, window_end: float, values: Mapping[str, float]) -> WindowResult:
        return window_result(
            model, window_end=window_end, quality=values, labelled=50, predictions_stored=100
        )

    metrics.observe_result(labelled(MODEL, WINDOW_END, {"accuracy": 0.9, "roc_auc": 0.8}))
    metrics.observe_result(labelled("other", WINDOW_END, {"accuracy": 0.5}))
    assert (quality("accuracy"), quality("roc_auc")) == (0.9, 0.8)
    # The next window has no ROC AUC (one class only): its series goes, not a stale value.
    metrics.observe_result(
        labelled(MODEL, WINDOW_END + WINDOW_S, {"accuracy": 0.7, "f1": math.nan})
    )
    assert (quality("accuracy"), quality("roc_auc"), quality("f1")) == (0.7, None, None)
    assert quality("accuracy", "other") == 0.5


def test_observe_estimated_quality_is_separate_from_measured(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.observe_result(
        window_result(quality={"accuracy": 0.9}, labelled=50, predictions_stored=100),
        estimated_quality={"accuracy": 0.85, "f1": 0.7, "roc_auc": 0.8},
    )
    # The next window has no labels yet: measured quality stays on the labelled one.
    metrics.observe_result(
        window_result(window_end=WINDOW_END + WINDOW_S), estimated_quality={"accuracy": 0.8}
    )
    labels = {"model": MODEL, "metric": "accuracy"}
    assert registry.get_sample_value("driftline_model_quality", labels) == 0.9
    assert registry.get_sample_value("driftline_model_quality_estimated", labels) == 0.8
    f1 = {"model": MODEL, "metric": "f1"}
    assert registry.get_sample_value("driftline_model_quality_estimated", f1) is None


def test_quality_and_coverage_follow_the_newest_labelled_window(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    """Labels arrive late: an older window re-evaluated with labels updates quality and
    coverage, while the drift gauges stay on the newest window."""
    get = registry.get_sample_value
    coverage = {"model": MODEL}
    accuracy = {"model": MODEL, "metric": "accuracy"}
    metrics.observe_result(window_result(window_end=WINDOW_END + WINDOW_S, records=5))
    assert get("driftline_label_coverage_ratio", coverage) is None
    metrics.observe_result(
        window_result(quality={"accuracy": 0.75}, labelled=30, predictions_stored=40)
    )
    assert get("driftline_label_coverage_ratio", coverage) == 0.75
    assert get("driftline_model_quality", accuracy) == 0.75
    assert get("driftline_window_records", {"model": MODEL}) == 5.0
    # An even older labelled window does not replace the newer labelled one.
    metrics.observe_result(
        window_result(
            window_end=WINDOW_END - WINDOW_S,
            quality={"accuracy": 0.1},
            labelled=1,
            predictions_stored=40,
        )
    )
    assert get("driftline_label_coverage_ratio", coverage) == 0.75
    assert get("driftline_model_quality", accuracy) == 0.75
    # Labels without stored predictions (or none at all) are not a labelled window.
    metrics.observe_result(
        window_result(window_end=WINDOW_END + 2 * WINDOW_S, quality={"accuracy": 0.2}, labelled=3)
    )
    assert get("driftline_model_quality", accuracy) == 0.75


def test_joint_and_attribution_gauges(metrics: Metrics, registry: CollectorRegistry) -> None:
    metrics.observe_result(
        window_result(
            joint_drift=joint_drift(("domain_classifier", 0.74, True), ("mmd", math.nan, False)),
            attribution=attribution_drift(("income", 0.42, True), ("age", 0.08, False)),
        )
    )
    get = registry.get_sample_value
    classifier = {"model": MODEL, "method": "domain_classifier"}
    mmd = {"model": MODEL, "method": "mmd"}
    assert get("driftline_multivariate_drift_score", classifier) == 0.74
    assert get("driftline_multivariate_drift_detected", classifier) == 1.0
    assert get("driftline_multivariate_drift_score", mmd) is None  # NaN: no series
    assert get("driftline_multivariate_drift_detected", mmd) == 0.0
    income, age = {"model": MODEL, "feature": "income"}, {"model": MODEL, "feature": "age"}
    assert get("driftline_attribution_mean_abs_shap", income) == 0.42
    assert get("driftline_attribution_drift_detected", income) == 1.0
    assert get("driftline_attribution_mean_abs_shap", age) == 0.08
    assert get("driftline_attribution_drift_detected", age) == 0.0
    # The next window's analyses failed: their series go.
    failed = AnalysisError(message="no row sample")
    metrics.observe_result(
        window_result(window_end=WINDOW_END + WINDOW_S, joint_drift=failed, attribution=failed)
    )
    assert get("driftline_multivariate_drift_detected", classifier) is None
    assert get("driftline_attribution_drift_detected", income) is None


def test_metrics_observer_exports_the_estimated_subset(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    """The window-evaluated subscriber hands the result over with the exported estimated
    metrics (roc_auc, accuracy, f1), not every metric of the estimate."""
    observer = MetricsObserver(metrics)
    estimate = estimated_performance(accuracy=0.8, precision=0.7, f1=0.6, roc_auc=math.nan)
    observer(WindowEvaluated(result=window_result(estimated_performance=estimate)))

    def estimated(metric: str) -> float | None:
        labels = {"model": MODEL, "metric": metric}
        return registry.get_sample_value("driftline_model_quality_estimated", labels)

    assert (estimated("accuracy"), estimated("f1")) == (0.8, 0.6)
    assert estimated("precision") is None
    assert estimated("roc_auc") is None
    assert registry.get_sample_value("driftline_window_records", {"model": MODEL}) == 1200.0
    failed = AnalysisError(message="no scores")
    observer(WindowEvaluated(result=window_result(estimated_performance=failed)))
    assert estimated("accuracy") is None


# --- alerting gauges -----------------------------------------------------------------------


def test_alerting_gauges_have_no_samples_until_watched(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    families = {f.name: f for f in text_string_to_metric_families(render(registry).decode())}
    for name in ("driftline_alerts_active", "driftline_outbox_events"):
        assert families[name].type == "gauge"
        assert families[name].samples == []


def test_alerting_gauges_read_the_callables_at_scrape_time(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    incidents = {(MODEL, "feature-drift", "critical"): 2, ("fraud", "quality", "warning"): 1}
    outbox = {"pending": 4, "delivered": 10}
    metrics.watch_alerts(lambda: incidents, lambda: outbox)
    get = registry.get_sample_value
    labels = {"model": MODEL, "rule": "feature-drift", "severity": "critical"}
    assert get("driftline_alerts_active", labels) == 2.0
    assert (
        get("driftline_alerts_active", {"model": "fraud", "rule": "quality", "severity": "warning"})
        == 1.0
    )
    assert get("driftline_outbox_events", {"state": "pending"}) == 4.0
    assert get("driftline_outbox_events", {"state": "dead"}) == 0.0  # not counted: zero
    assert get("driftline_outbox_events", {"state": "delivered"}) is None  # not in the contract
    incidents.clear()  # the incident resolved: read again at the next scrape
    outbox["pending"] = 0
    assert get("driftline_alerts_active", labels) is None
    assert get("driftline_outbox_events", {"state": "pending"}) == 0.0


def test_a_failing_callable_empties_its_family_not_the_scrape(
    metrics: Metrics, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    failing = {"now": True}

    def open_incidents() -> dict[tuple[str, str, str], int]:
        if failing["now"]:
            raise OSError("database is locked")
        return {(MODEL, "feature-drift", "critical"): 1}

    metrics.records_total.labels(model=MODEL).inc()
    metrics.watch_alerts(open_incidents, lambda: {"pending": 1, "dead": 0})
    labels = {"model": MODEL, "rule": "feature-drift", "severity": "critical"}
    with caplog.at_level(logging.WARNING, logger="monitor.metrics"):
        for _ in range(3):
            text = render(registry).decode()
            assert "# TYPE driftline_alerts_active gauge" in text
            assert "driftline_alerts_active{" not in text
            assert 'driftline_outbox_events{state="pending"} 1.0' in text
            assert 'driftline_records_total{model="credit-risk"} 1.0' in text
        assert len(caplog.records) == 1  # once per failure streak, not per scrape
        assert "driftline_alerts_active" in caplog.records[0].getMessage()
        failing["now"] = False
        assert registry.get_sample_value("driftline_alerts_active", labels) == 1.0
        failing["now"] = True
        render(registry)
        render(registry)
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


# --- cardinality: the per-model opt-out of per-feature series --------------------------------


def _series(registry: CollectorRegistry, model: str) -> set[str]:
    """Names of the per-window families with at least one sample of ``model``."""
    return {
        family.name
        for family in text_string_to_metric_families(render(registry).decode())
        for sample in family.samples
        if sample.labels.get("model") == model
    }


def test_a_model_opted_out_of_per_feature_series_keeps_its_model_series(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.observe_result(window_result("brief"), per_feature=False)
    metrics.observe_result(window_result("full"))
    brief, full = _series(registry, "brief"), _series(registry, "full")
    per_feature = {
        "driftline_feature_drift_score",
        "driftline_feature_drift_p_value",
        "driftline_feature_drift_detected",
        "driftline_feature_missing_ratio",
    }
    assert per_feature <= full
    assert not per_feature & brief
    assert brief == full - per_feature
    assert "driftline_dataset_drift_share" in brief
    # Opting back in (a config reload) exports them again from the next window on.
    metrics.observe_result(window_result("brief", window_end=WINDOW_END + WINDOW_S))
    assert per_feature <= _series(registry, "brief")


def test_checkpoint_and_evaluation_counters_add_up(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.observe_checkpoint(120, 4096, 0.25)
    metrics.observe_checkpoint(30, 1024, 0.05)
    metrics.observe_evaluation(30, 0.5)
    metrics.observe_evaluation(30, 0.25)
    assert registry.get_sample_value("driftline_checkpoints_total") == 2
    assert registry.get_sample_value("driftline_checkpoint_partials_total") == 150
    assert registry.get_sample_value("driftline_checkpoint_bytes_total") == 5120
    assert registry.get_sample_value("driftline_checkpoint_seconds_total") == pytest.approx(0.3)
    labels = {"features": "30"}
    assert registry.get_sample_value("driftline_window_evaluations_total", labels) == 2
    assert registry.get_sample_value("driftline_window_evaluation_seconds_total", labels) == 0.75
