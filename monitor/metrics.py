"""Every ``driftline_*`` Prometheus metric, declared in one place on an injected registry.

The names, types and label names are a contract (DESIGN.md): dashboards and
alert rules query them. :class:`Metrics` creates them all on the registry it
is given, so tests use a fresh ``CollectorRegistry()`` each and the service
passes its own.

>>> from prometheus_client import CollectorRegistry
>>> registry = CollectorRegistry()
>>> metrics = Metrics(registry)
>>> metrics.records_total.labels(model="credit-risk").inc(3)
>>> metrics.observe_window(
...     "credit-risk",
...     [("income", "ks", 0.31, 1e-9, True, 0.0), ("region", "psi", 0.02, None, False, 0.1)],
...     prediction=("ks", 0.12),
...     drift_share=0.5,
...     records=1200,
...     window_end=1795338900.0,
... )
>>> registry.get_sample_value("driftline_records_total", {"model": "credit-risk"})
3.0
>>> registry.get_sample_value(
...     "driftline_feature_drift_detected", {"model": "credit-risk", "feature": "income"}
... )
1.0
>>> print(registry.get_sample_value(  # distance methods have no p-value: no series
...     "driftline_feature_drift_p_value",
...     {"model": "credit-risk", "feature": "region", "method": "psi"},
... ))
None

Per-window gauges hold the latest evaluated window of each model.
:meth:`Metrics.observe_window` replaces that window's series as a whole: a
series it set for the previous window and not for this one (a feature no
longer present, a method that changed, a p-value or a prediction drift that is
now unknown) is removed rather than left showing a stale value. Unknown values
(``None`` or NaN) are never exported as NaN: a missing series is what PromQL
comparisons and Grafana treat as "no data", while NaN would poison ``min``
and ``max`` aggregations.

Counters also expose prometheus_client's ``*_created`` timestamps, as every
client does by default.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge
from prometheus_client import generate_latest as _generate_latest

__all__ = [
    "CONTENT_TYPE",
    "EXTENSION_METRICS",
    "METRICS",
    "OPERATIONAL_METRICS",
    "FeatureObservation",
    "FeatureValues",
    "MetricDeclaration",
    "Metrics",
    "render",
]

#: The HTTP ``Content-Type`` of :func:`render`'s output.
CONTENT_TYPE = CONTENT_TYPE_LATEST


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricDeclaration:
    """One contract metric: its full name, type, label names and help text."""

    attribute: str
    name: str
    kind: Literal["counter", "gauge"]
    labels: tuple[str, ...]
    help: str


def _declare(
    attribute: str, kind: Literal["counter", "gauge"], labels: tuple[str, ...], help: str
) -> MetricDeclaration:
    return MetricDeclaration(
        attribute=attribute, name=f"driftline_{attribute}", kind=kind, labels=labels, help=help
    )


#: The DESIGN.md metrics table, in its order; :class:`Metrics` has one attribute per row.
METRICS: tuple[MetricDeclaration, ...] = (
    _declare("records_total", "counter", ("model",), "Prediction records accepted."),
    _declare(
        "records_invalid_total",
        "counter",
        ("model", "reason"),
        "Records rejected (dead-lettered), by reason.",
    ),
    _declare(
        "records_late_total",
        "counter",
        ("model",),
        "Records that arrived after every window containing them was closed.",
    ),
    _declare(
        "feature_drift_score",
        "gauge",
        ("model", "feature", "method"),
        "Drift statistic of a feature in the model's latest evaluated window.",
    ),
    _declare(
        "feature_drift_p_value",
        "gauge",
        ("model", "feature", "method"),
        "P-value of a feature's drift test in the latest window (absent for distance methods).",
    ),
    _declare(
        "feature_drift_detected",
        "gauge",
        ("model", "feature"),
        "1 when the feature drifted in the model's latest evaluated window, else 0.",
    ),
    _declare(
        "prediction_drift_score",
        "gauge",
        ("model", "method"),
        "Drift statistic of the model's prediction in the latest evaluated window.",
    ),
    _declare(
        "dataset_drift_share",
        "gauge",
        ("model",),
        "Share of the model's features that drifted in the latest evaluated window.",
    ),
    _declare(
        "feature_missing_ratio",
        "gauge",
        ("model", "feature"),
        "Share of missing values of a feature in the latest evaluated window.",
    ),
    _declare(
        "model_quality",
        "gauge",
        ("model", "metric"),
        "Model quality measured against joined labels, by metric.",
    ),
    _declare(
        "model_quality_estimated",
        "gauge",
        ("model", "metric"),
        "Model quality estimated without labels, by metric.",
    ),
    _declare(
        "label_coverage_ratio",
        "gauge",
        ("model",),
        "Share of the window's predictions that have a joined label.",
    ),
    _declare(
        "window_records", "gauge", ("model",), "Records in the model's latest evaluated window."
    ),
    _declare(
        "window_end_timestamp_seconds",
        "gauge",
        ("model",),
        "End (Unix seconds) of the model's latest evaluated window.",
    ),
    _declare(
        "consumer_lag_records",
        "gauge",
        ("topic", "partition"),
        "Records between the consumer's position and the partition's end.",
    ),
    _declare("alerts_total", "counter", ("model", "rule", "severity"), "Alerts fired, by rule."),
    _declare(
        "webhook_deliveries_total",
        "counter",
        ("target", "outcome"),
        "Webhook delivery attempts, by target and outcome.",
    ),
)


#: Metrics beyond the DESIGN.md table (same naming rules): joint and attribution drift of the
#: latest evaluated window, set only for models that configure those detectors, and the
#: dead letters that could not be written (panel "Dead letters given up by reason").
EXTENSION_METRICS: tuple[MetricDeclaration, ...] = (
    _declare(
        "multivariate_drift_score",
        "gauge",
        ("model", "method"),
        "Statistic of a multivariate (joint) drift method in the latest evaluated window.",
    ),
    _declare(
        "multivariate_drift_detected",
        "gauge",
        ("model", "method"),
        "1 when a multivariate drift method flagged the latest evaluated window, else 0.",
    ),
    _declare(
        "attribution_mean_abs_shap",
        "gauge",
        ("model", "feature"),
        "Mean |SHAP value| of a feature in the latest evaluated window.",
    ),
    _declare(
        "attribution_drift_detected",
        "gauge",
        ("model", "feature"),
        "1 when a feature's attribution drifted in the latest evaluated window, else 0.",
    ),
    _declare(
        "dead_letter_failures_total",
        "counter",
        ("reason",),
        "Invalid records given up without reaching the dead-letter topic, by failure reason "
        "(too_large, not_authorized, invalid_topic, retries_exhausted, rejected).",
    ),
)

#: Metrics about the service itself that no dashboard shows (none at present).
OPERATIONAL_METRICS: tuple[MetricDeclaration, ...] = ()


class FeatureObservation(NamedTuple):
    """One feature's result in a window, as :meth:`Metrics.observe_window` takes it.

    Plain tuples in this order are accepted too. ``p_value`` is None for
    distance methods; ``missing_share`` is None when unknown.
    """

    feature: str
    method: str
    statistic: float | None
    p_value: float | None
    drift: bool
    missing_share: float | None


#: ``(feature, method, statistic, p_value, drift, missing_share)`` as a plain tuple.
FeatureValues = tuple[str, str, float | None, float | None, bool, float | None]

_Series = tuple[Gauge, tuple[str, ...]]


class Metrics:
    """Every contract metric, created on ``registry``; one attribute per metric.

    Creating two ``Metrics`` on one registry raises ``ValueError`` (duplicate
    time series), as prometheus_client does for any duplicate.
    """

    records_total: Counter
    records_invalid_total: Counter
    records_late_total: Counter
    feature_drift_score: Gauge
    feature_drift_p_value: Gauge
    feature_drift_detected: Gauge
    prediction_drift_score: Gauge
    dataset_drift_share: Gauge
    feature_missing_ratio: Gauge
    model_quality: Gauge
    model_quality_estimated: Gauge
    label_coverage_ratio: Gauge
    window_records: Gauge
    window_end_timestamp_seconds: Gauge
    consumer_lag_records: Gauge
    alerts_total: Counter
    webhook_deliveries_total: Counter
    multivariate_drift_score: Gauge
    multivariate_drift_detected: Gauge
    attribution_mean_abs_shap: Gauge
    attribution_drift_detected: Gauge
    dead_letter_failures_total: Counter

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        for declaration in (*METRICS, *EXTENSION_METRICS, *OPERATIONAL_METRICS):
            factory = Counter if declaration.kind == "counter" else Gauge
            metric = factory(
                declaration.name, declaration.help, declaration.labels, registry=registry
            )
            setattr(self, declaration.attribute, metric)
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget which per-window series were set (the series themselves stay)."""
        self._window_series: dict[str, set[_Series]] = {}
        self._metric_series: dict[tuple[str, str], set[str]] = {}

    def observe_quality(self, model: str, values: Mapping[str, float | None]) -> None:
        """Set ``driftline_model_quality{model, metric}`` to one window's measured quality.

        ``values`` maps metric names to values; metrics ``model`` had before
        and not now (or now None/NaN) lose their series, as in
        :meth:`observe_window`.
        """
        self._replace_metrics("model_quality", model, values)

    def observe_estimated_quality(self, model: str, values: Mapping[str, float | None]) -> None:
        """Set ``driftline_model_quality_estimated{model, metric}``, as :meth:`observe_quality`."""
        self._replace_metrics("model_quality_estimated", model, values)

    def observe_multivariate(
        self, model: str, results: Iterable[tuple[str, float | None, bool]]
    ) -> None:
        """Set the multivariate gauges from ``(method, statistic, drift)`` of one window."""
        results = list(results)
        self._replace_metrics("multivariate_drift_score", model, {m: v for m, v, _ in results})
        self._replace_metrics(
            "multivariate_drift_detected", model, {m: float(d) for m, _, d in results}
        )

    def observe_attribution(
        self, model: str, features: Iterable[tuple[str, float | None, bool]]
    ) -> None:
        """Set the attribution gauges from ``(feature, mean |SHAP|, drift)`` of one window."""
        features = list(features)
        self._replace_metrics("attribution_mean_abs_shap", model, {f: v for f, v, _ in features})
        self._replace_metrics(
            "attribution_drift_detected", model, {f: float(d) for f, _, d in features}
        )

    def _replace_metrics(
        self, attribute: str, model: str, values: Mapping[str, float | None]
    ) -> None:
        gauge: Gauge = getattr(self, attribute)
        known = {
            metric: float(value)
            for metric, value in values.items()
            if value is not None and not math.isnan(value)
        }
        key = (attribute, model)
        with self._lock:
            for metric in self._metric_series.get(key, set()) - known.keys():
                with contextlib.suppress(KeyError):
                    gauge.remove(model, metric)
            for metric, value in known.items():
                gauge.labels(model, metric).set(value)
            self._metric_series[key] = set(known)

    def observe_window(
        self,
        model: str,
        features: Iterable[FeatureObservation | FeatureValues],
        prediction: tuple[str, float | None] | None,
        drift_share: float | None,
        records: int,
        window_end: float,
    ) -> None:
        """Set ``model``'s per-window gauges to one evaluated window's results.

        ``features`` holds ``(feature, method, statistic, p_value, drift,
        missing_share)`` per feature; ``prediction`` is ``(method, score)`` or
        None when the prediction was not tested. Series of the model's previous
        window that this window does not set are removed; None and NaN values
        leave their series unset.
        """
        values: dict[_Series, float] = {}

        def put(gauge: Gauge, labels: Sequence[str], value: float | None) -> None:
            if value is not None and not math.isnan(value):
                values[(gauge, tuple(labels))] = float(value)

        for feature, method, statistic, p_value, drift, missing_share in map(
            FeatureObservation._make, features
        ):
            put(self.feature_drift_score, (model, feature, method), statistic)
            put(self.feature_drift_p_value, (model, feature, method), p_value)
            put(self.feature_drift_detected, (model, feature), 1.0 if drift else 0.0)
            put(self.feature_missing_ratio, (model, feature), missing_share)
        if prediction is not None:
            put(self.prediction_drift_score, (model, prediction[0]), prediction[1])
        put(self.dataset_drift_share, (model,), drift_share)
        put(self.window_records, (model,), float(records))
        put(self.window_end_timestamp_seconds, (model,), window_end)

        with self._lock:
            for gauge, labels in self._window_series.get(model, set()) - values.keys():
                with contextlib.suppress(KeyError):  # older clients raise on a missing series
                    gauge.remove(*labels)
            for (gauge, labels), value in values.items():
                gauge.labels(*labels).set(value)
            self._window_series[model] = set(values)


def render(registry: CollectorRegistry) -> bytes:
    """Return the registry's metrics in the Prometheus text format (as :data:`CONTENT_TYPE`)."""
    return _generate_latest(registry)
