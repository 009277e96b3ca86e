"""The Prometheus metrics contract (DESIGN.md) and Metrics.observe_window, on fresh registries."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from monitor.metrics import CONTENT_TYPE, METRICS, FeatureObservation, Metrics, render

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
    "driftline_webhook_deliveries_total": ("counter", ("target", "outcome")),
}

MODEL = "credit-risk"


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Metrics:
    return Metrics(registry)


def _touch_every_series(metrics: Metrics) -> None:
    """Give every labelled metric one series, so that each shows up in the exposition."""
    for declaration in METRICS:
        metric = getattr(metrics, declaration.attribute)
        child = metric.labels(*(f"x-{label}" for label in declaration.labels))
        if declaration.kind == "counter":
            child.inc()
        else:
            child.set(1.0)


def _families(registry: CollectorRegistry) -> dict[str, tuple[str, set[str]]]:
    """Return ``{sample name: (type, label names)}`` parsed from the text exposition."""
    found: dict[str, tuple[str, set[str]]] = {}
    for family in text_string_to_metric_families(render(registry).decode()):
        for sample in family.samples:
            found.setdefault(sample.name, (family.type, set()))[1].update(sample.labels)
    return found


def test_every_contract_metric_is_exposed_with_its_type_and_labels(metrics: Metrics) -> None:
    _touch_every_series(metrics)
    exposed = _families(metrics.registry)
    for name, (kind, labels) in CONTRACT.items():
        assert name in exposed, name
        assert exposed[name] == (kind, set(labels)), name


def test_nothing_outside_the_contract_is_exposed(metrics: Metrics) -> None:
    _touch_every_series(metrics)
    extra = set(_families(metrics.registry)) - set(CONTRACT)
    # prometheus_client adds a *_created timestamp per counter; nothing else is allowed.
    counters = {name.removesuffix("_total") for name, (k, _) in CONTRACT.items() if k == "counter"}
    assert extra <= {f"{base}_created" for base in counters}


def test_declarations_match_the_contract() -> None:
    assert {d.name: (d.kind, d.labels) for d in METRICS} == CONTRACT
    assert all(d.help for d in METRICS)


def test_metrics_are_attributes_named_after_the_contract(metrics: Metrics) -> None:
    for name in CONTRACT:
        assert hasattr(metrics, name.removeprefix("driftline_")), name


def test_a_second_metrics_on_one_registry_is_refused(registry: CollectorRegistry) -> None:
    Metrics(registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Metrics(registry)


def test_fresh_registries_are_independent() -> None:
    first, second = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())
    first.records_total.labels(model=MODEL).inc()
    assert first.registry.get_sample_value("driftline_records_total", {"model": MODEL}) == 1.0
    assert second.registry.get_sample_value("driftline_records_total", {"model": MODEL}) is None


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


def _observe(metrics: Metrics, **overrides: object) -> None:
    arguments: dict[str, object] = {
        "model": MODEL,
        "features": [
            ("income", "ks", 0.31, 1e-9, True, 0.0),
            FeatureObservation("region", "psi", 0.02, None, False, 0.125),
            ("age", "ks", 0.01, 0.9, False, None),
        ],
        "prediction": ("ks", 0.12),
        "drift_share": 1 / 3,
        "records": 1200,
        "window_end": 1795338960.0,
    }
    arguments.update(overrides)
    metrics.observe_window(**arguments)  # type: ignore[arg-type]


def test_observe_window_sets_every_per_window_gauge(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    _observe(metrics)
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
    _observe(
        metrics,
        features=[
            ("region", "psi", 0.02, None, False, 0.0),
            ("income", "ks", math.nan, math.nan, False, math.nan),
        ],
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
    _observe(metrics)
    _observe(
        metrics,
        features=[("income", "wasserstein", 0.2, None, True, 0.0)],  # method changed
        prediction=None,
        records=10,
    )
    get = registry.get_sample_value
    income = {"model": MODEL, "feature": "income"}
    assert get("driftline_feature_drift_score", {**income, "method": "ks"}) is None
    assert get("driftline_feature_drift_p_value", {**income, "method": "ks"}) is None
    assert get("driftline_feature_drift_score", {**income, "method": "wasserstein"}) == 0.2
    assert get("driftline_feature_drift_detected", {"model": MODEL, "feature": "region"}) is None
    assert get("driftline_prediction_drift_score", {"model": MODEL, "method": "ks"}) is None
    assert get("driftline_window_records", {"model": MODEL}) == 10.0


def test_models_do_not_clear_each_other(metrics: Metrics, registry: CollectorRegistry) -> None:
    _observe(metrics)
    _observe(metrics, model="fraud", features=[("amount", "ks", 0.5, 0.01, True, 0.0)])
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

    metrics.observe_quality(MODEL, {"accuracy": 0.9, "roc_auc": 0.8})
    metrics.observe_quality("other", {"accuracy": 0.5})
    assert (quality("accuracy"), quality("roc_auc")) == (0.9, 0.8)
    # The next window has no ROC AUC (one class only): its series goes, not a stale value.
    metrics.observe_quality(MODEL, {"accuracy": 0.7, "roc_auc": None, "f1": math.nan})
    assert (quality("accuracy"), quality("roc_auc"), quality("f1")) == (0.7, None, None)
    assert quality("accuracy", "other") == 0.5


def test_observe_estimated_quality_is_separate_from_measured(
    metrics: Metrics, registry: CollectorRegistry
) -> None:
    metrics.observe_quality(MODEL, {"accuracy": 0.9})
    metrics.observe_estimated_quality(MODEL, {"accuracy": 0.85, "f1": 0.7, "roc_auc": 0.8})
    metrics.observe_estimated_quality(MODEL, {"accuracy": 0.8})
    labels = {"model": MODEL, "metric": "accuracy"}
    assert registry.get_sample_value("driftline_model_quality", labels) == 0.9
    assert registry.get_sample_value("driftline_model_quality_estimated", labels) == 0.8
    f1 = {"model": MODEL, "metric": "f1"}
    assert registry.get_sample_value("driftline_model_quality_estimated", f1) is None
