"""Every ``driftline_*`` Prometheus metric, declared in one place on an injected registry.

The names, types and label names are a contract (DESIGN.md): dashboards and
alert rules query them. :class:`Metrics` creates them all on the registry it
is given, so tests use a fresh ``CollectorRegistry()`` each and the service
passes its own.

Counters and the consumer-lag gauge are instruments the code updates
(attributes of :class:`Metrics`). The per-window gauges are not: a custom
collector (:class:`LatestWindows`) holds each model's latest
:class:`~detectors.window_result.WindowResult` and produces them from it at
scrape time, and :class:`AlertingGauges` reads the open incidents and the
outbox's sizes from callables at scrape time (:meth:`Metrics.watch_alerts`).

>>> from prometheus_client import CollectorRegistry
>>> from detectors.decisions import Correction
>>> from detectors.drift import DriftReport, FeatureDrift
>>> from detectors.kinds import ColumnKind
>>> from detectors.window_result import WindowResult
>>> def feature(name, method, statistic, p_value, drift):
...     return FeatureDrift(
...         name=name, kind=ColumnKind.NUMERIC, method=method, statistic=statistic,
...         p_value=p_value, threshold=0.05, drift=drift, detectable=drift, material=drift,
...         effect_size=statistic, bound=0.0,
...         n_reference=5000, n_current=1200, missing_share=0.0,
...     )
>>> report = DriftReport(
...     features=(
...         feature("income", "ks", 0.31, 1e-9, True),
...         feature("region", "psi", 0.02, None, False),
...     ),
...     drift_share=0.5, dataset_drift=True, drift_share_threshold=0.5, prediction=None,
...     rows_reference=5000, rows_current=1200, correction=Correction.NONE, exact=True,
... )
>>> registry = CollectorRegistry()
>>> metrics = Metrics(registry)
>>> metrics.records_total.labels(model="credit-risk").inc(3)
>>> metrics.observe_result(WindowResult(
...     model="credit-risk", window_start=1795338600.0, window_end=1795338900.0, rows=1200,
...     status="ok", profile_version=1, drift=report,
... ))
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
>>> metrics.watch_alerts(  # read at each scrape; the service passes database reads
...     lambda: {("credit-risk", "feature-drift", "critical"): 1}, lambda: {"pending": 2}
... )
>>> registry.get_sample_value(
...     "driftline_alerts_active",
...     {"model": "credit-risk", "rule": "feature-drift", "severity": "critical"},
... )
1.0
>>> registry.get_sample_value("driftline_outbox_events", {"state": "dead"})
0.0

Per-window gauges show the latest evaluated window of each model (the
drift gauges, window size and end, estimated quality, joint and attribution
drift) or its latest window with labels (measured quality and label
coverage). As they are computed from that window's result at each scrape,
a series of an older window that the latest one does not have (a feature no
longer present, a method that changed, a p-value that is now unknown) is
simply not produced: nothing is left showing a stale value, and there is no
bookkeeping of what was set. Unknown values (``None``, NaN, or infinite) are
never exported: a missing series is what PromQL comparisons and Grafana treat
as "no data", while NaN would poison ``min`` and ``max`` aggregations.

Counters also expose prometheus_client's ``*_created`` timestamps, as every
client does by default.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge
from prometheus_client import generate_latest as _generate_latest
from prometheus_client.core import GaugeMetricFamily

from detectors.window_result import AttributionDrift, JointDrift, WindowResult

__all__ = [
    "CONTENT_TYPE",
    "EXTENSION_METRICS",
    "METRICS",
    "OPERATIONAL_METRICS",
    "OUTBOX_STATES",
    "AlertingGauges",
    "LatestWindows",
    "MetricDeclaration",
    "Metrics",
    "OpenIncidents",
    "OutboxCounts",
    "render",
]

log = logging.getLogger(__name__)

#: The HTTP ``Content-Type`` of :func:`render`'s output.
CONTENT_TYPE = CONTENT_TYPE_LATEST

#: The outbox states ``driftline_outbox_events{state}`` shows (DESIGN.md).
OUTBOX_STATES = ("pending", "dead")


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricDeclaration:
    """One contract metric: its full name, type, label names and help text.

    ``collected`` metrics are produced at scrape time by one of :class:`Metrics`'
    collectors (:class:`LatestWindows`, :class:`AlertingGauges`); the others are
    instruments, attributes of :class:`Metrics` named ``attribute``.
    """

    attribute: str
    name: str
    kind: Literal["counter", "gauge"]
    labels: tuple[str, ...]
    help: str
    collected: bool = False


def _declare(
    attribute: str,
    kind: Literal["counter", "gauge"],
    labels: tuple[str, ...],
    help: str,
    *,
    collected: bool = False,
) -> MetricDeclaration:
    return MetricDeclaration(
        attribute=attribute,
        name=f"driftline_{attribute}",
        kind=kind,
        labels=labels,
        help=help,
        collected=collected,
    )


#: The DESIGN.md metrics table, in its order. Each row is an attribute of :class:`Metrics`
#: (an instrument) or, when ``collected``, a family one of its collectors produces.
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
        collected=True,
    ),
    _declare(
        "feature_drift_p_value",
        "gauge",
        ("model", "feature", "method"),
        "P-value of a feature's drift test in the latest window (absent for distance methods).",
        collected=True,
    ),
    _declare(
        "feature_drift_detected",
        "gauge",
        ("model", "feature"),
        "1 when the feature drifted in the model's latest evaluated window, else 0.",
        collected=True,
    ),
    _declare(
        "prediction_drift_score",
        "gauge",
        ("model", "method"),
        "Drift statistic of the model's prediction in the latest evaluated window.",
        collected=True,
    ),
    _declare(
        "dataset_drift_share",
        "gauge",
        ("model",),
        "Share of the model's features that drifted in the latest evaluated window.",
        collected=True,
    ),
    _declare(
        "feature_missing_ratio",
        "gauge",
        ("model", "feature"),
        "Share of missing values of a feature in the latest evaluated window.",
        collected=True,
    ),
    _declare(
        "model_quality",
        "gauge",
        ("model", "metric"),
        "Model quality measured against joined labels, by metric.",
        collected=True,
    ),
    _declare(
        "model_quality_estimated",
        "gauge",
        ("model", "metric"),
        "Model quality estimated without labels, by metric.",
        collected=True,
    ),
    _declare(
        "label_coverage_ratio",
        "gauge",
        ("model",),
        "Share of the window's predictions that have a joined label.",
        collected=True,
    ),
    _declare(
        "window_records",
        "gauge",
        ("model",),
        "Records in the model's latest evaluated window.",
        collected=True,
    ),
    _declare(
        "window_end_timestamp_seconds",
        "gauge",
        ("model",),
        "End (Unix seconds) of the model's latest evaluated window.",
        collected=True,
    ),
    _declare(
        "consumer_lag_records",
        "gauge",
        ("topic", "partition"),
        "Records between the consumer's position and the partition's end.",
    ),
    _declare("alerts_total", "counter", ("model", "rule", "severity"), "Alerts fired, by rule."),
    _declare(
        "alerts_active",
        "gauge",
        ("model", "rule", "severity"),
        "Open (firing) alert incidents, by rule.",
        collected=True,
    ),
    _declare(
        "webhook_deliveries_total",
        "counter",
        ("target", "outcome"),
        "Webhook delivery attempts, by target and outcome.",
    ),
    _declare(
        "outbox_events",
        "gauge",
        ("state",),
        "Alert events in the outbox, by state (pending, dead).",
        collected=True,
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
        collected=True,
    ),
    _declare(
        "multivariate_drift_detected",
        "gauge",
        ("model", "method"),
        "1 when a multivariate drift method flagged the latest evaluated window, else 0.",
        collected=True,
    ),
    _declare(
        "attribution_mean_abs_shap",
        "gauge",
        ("model", "feature"),
        "Mean |SHAP value| of a feature in the latest evaluated window.",
        collected=True,
    ),
    _declare(
        "attribution_drift_detected",
        "gauge",
        ("model", "feature"),
        "1 when a feature's attribution drifted in the latest evaluated window, else 0.",
        collected=True,
    ),
    _declare(
        "dead_letter_failures_total",
        "counter",
        ("reason",),
        "Invalid records given up without reaching the dead-letter topic, by failure reason "
        "(too_large, not_authorized, invalid_topic, retries_exhausted, rejected).",
    ),
)

#: Metrics about the service itself that no dashboard shows: the costs the capacity model
#: (docs/capacity.md) is built on. Sums and counts, so a rate of one over the other is a mean.
OPERATIONAL_METRICS: tuple[MetricDeclaration, ...] = (
    _declare("checkpoints_total", "counter", (), "Checkpoint transactions committed."),
    _declare(
        "checkpoint_seconds_total",
        "counter",
        (),
        "Seconds spent in committed checkpoint transactions (begin to commit).",
    ),
    _declare(
        "checkpoint_partials_total", "counter", (), "Partial sketch rows written by checkpoints."
    ),
    _declare(
        "checkpoint_bytes_total",
        "counter",
        (),
        "Bytes of partial sketch payloads written by checkpoints.",
    ),
    _declare(
        "window_evaluations_total",
        "counter",
        ("features",),
        "Windows evaluated by this process, by the model's number of features.",
    ),
    _declare(
        "window_evaluation_seconds_total",
        "counter",
        ("features",),
        "Seconds spent evaluating windows (read, analyse, store, publish), by feature count.",
    ),
)


_DECLARATIONS: dict[str, MetricDeclaration] = {
    d.attribute: d for d in (*METRICS, *EXTENSION_METRICS, *OPERATIONAL_METRICS)
}

#: Open incidents by ``(model, rule, severity)``, as :meth:`Metrics.watch_alerts` reads them.
OpenIncidents = Callable[[], Mapping[tuple[str, str, str], int]]
#: Outbox events by state, as :meth:`Metrics.watch_alerts` reads them.
OutboxCounts = Callable[[], Mapping[str, int]]

_Samples = list[tuple[tuple[str, ...], float]]
_T = TypeVar("_T")


class _Families:
    """Empty gauge families of some declared metrics, filled by a collector's scrape."""

    def __init__(self, attributes: Sequence[str]) -> None:
        self.families = {
            attribute: GaugeMetricFamily(
                _DECLARATIONS[attribute].name,
                _DECLARATIONS[attribute].help,
                labels=_DECLARATIONS[attribute].labels,
            )
            for attribute in attributes
        }

    def put(self, attribute: str, labels: Sequence[str], value: float | None) -> None:
        """Add one sample, unless ``value`` is unknown (None, NaN or infinite)."""
        if value is not None and math.isfinite(value):
            self.families[attribute].add_metric(list(labels), float(value))

    def __iter__(self) -> Iterator[GaugeMetricFamily]:
        return iter(self.families.values())


class LatestWindows:
    """A prometheus_client collector of the per-window gauges, read from results at scrape time.

    It holds each model's newest evaluated :class:`WindowResult` (the greatest
    ``window_end``; a re-evaluation of the same window replaces it) and its
    newest result that has labels (``labelled`` and ``predictions_stored`` both
    positive). The drift gauges, window size and end, estimated quality and
    joint and attribution drift come from the first; measured quality and label
    coverage from the second, because labels arrive late: the newest window
    usually has none yet, and an older window re-evaluated when its labels came
    updates them. A scrape produces exactly the series of those results, so
    nothing of an older window lingers and a model's results never touch another
    model's series.
    """

    #: The families this collector produces (attributes of the declarations).
    FAMILIES = (
        "feature_drift_score",
        "feature_drift_p_value",
        "feature_drift_detected",
        "feature_missing_ratio",
        "prediction_drift_score",
        "dataset_drift_share",
        "window_records",
        "window_end_timestamp_seconds",
        "model_quality",
        "model_quality_estimated",
        "label_coverage_ratio",
        "multivariate_drift_score",
        "multivariate_drift_detected",
        "attribution_mean_abs_shap",
        "attribution_drift_detected",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[str, tuple[WindowResult, dict[str, float]]] = {}
        self._labelled: dict[str, WindowResult] = {}
        # Models whose per-feature series are not exported (config ``metrics.per_feature``).
        self._no_feature_series: set[str] = set()

    def observe(
        self,
        result: WindowResult,
        estimated_quality: Mapping[str, float] | None = None,
        *,
        per_feature: bool = True,
    ) -> None:
        """Keep ``result`` if it is its model's newest window, or newest labelled window.

        ``estimated_quality`` is the estimated metrics to export for it
        (``driftline_model_quality_estimated``); None exports none.
        ``per_feature`` False: the model's per-feature series are left out from
        now on (docs/metrics-cardinality.md).
        """
        estimated = dict(estimated_quality or {})
        with self._lock:
            if per_feature:
                self._no_feature_series.discard(result.model)
            else:
                self._no_feature_series.add(result.model)
            if result.labelled and result.predictions_stored:
                labelled = self._labelled.get(result.model)
                if labelled is None or result.window_end >= labelled.window_end:
                    self._labelled[result.model] = result
            latest = self._latest.get(result.model)
            if latest is None or result.window_end >= latest[0].window_end:
                self._latest[result.model] = (result, estimated)

    def describe(self) -> list[GaugeMetricFamily]:
        """The families, without samples: how the registry refuses duplicate names."""
        return list(_Families(self.FAMILIES))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Every family, with the series of the results held now."""
        with self._lock:
            latest = list(self._latest.values())
            labelled = list(self._labelled.values())
            brief = set(self._no_feature_series)
        families = _Families(self.FAMILIES)
        for result, estimated in latest:
            _window_samples(families, result, estimated, per_feature=result.model not in brief)
        for result in labelled:
            model = result.model
            families.put(
                "label_coverage_ratio", (model,), result.labelled / result.predictions_stored
            )
            for metric, value in result.quality.metrics.items():
                families.put("model_quality", (model, metric), value)
        yield from families


def _window_samples(
    families: _Families,
    result: WindowResult,
    estimated: Mapping[str, float],
    *,
    per_feature: bool = True,
) -> None:
    """Add the samples of ``result``, its model's newest window, except the labelled ones.

    ``per_feature`` False leaves out the series labelled by feature.
    """
    model, report = result.model, result.drift
    if report is not None:
        for f in report.features if per_feature else ():
            families.put("feature_drift_score", (model, f.name, f.method), f.statistic)
            families.put("feature_drift_p_value", (model, f.name, f.method), f.p_value)
            families.put("feature_drift_detected", (model, f.name), float(f.drift))
            # The drift report's missing shares are the data-quality "missing" values of the
            # same features, so they are exported once, from here.
            families.put("feature_missing_ratio", (model, f.name), f.missing_share)
        if report.prediction is not None:
            prediction = report.prediction
            families.put("prediction_drift_score", (model, prediction.method), prediction.statistic)
        families.put("dataset_drift_share", (model,), report.drift_share)
    families.put("window_records", (model,), float(result.rows))
    families.put("window_end_timestamp_seconds", (model,), result.window_end)
    for metric, value in estimated.items():
        families.put("model_quality_estimated", (model, metric), value)
    joint = result.joint_drift
    if isinstance(joint, JointDrift):
        for method in joint.methods:
            families.put(
                "multivariate_drift_score", (model, method.method), method.result.statistic
            )
            families.put("multivariate_drift_detected", (model, method.method), float(method.drift))
    attribution = result.attribution
    if per_feature and isinstance(attribution, AttributionDrift):
        for feature in attribution.report.by_change():
            labels = (model, feature.name)
            families.put("attribution_mean_abs_shap", labels, feature.current_mean_abs)
            families.put("attribution_drift_detected", labels, float(feature.drift))


class AlertingGauges:
    """A prometheus_client collector of ``driftline_alerts_active`` and ``driftline_outbox_events``.

    Both are read at scrape time from the callables given to :meth:`watch`
    (the service passes database reads); until then both families have no
    samples. The outbox shows the states of :data:`OUTBOX_STATES`, 0 when the
    callable does not count one. A callable that raises makes its family empty
    for that scrape, not the scrape fail; it is logged at WARNING once per run
    of consecutive failures.
    """

    FAMILIES = ("alerts_active", "outbox_events")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open_incidents: OpenIncidents | None = None
        self._outbox_counts: OutboxCounts | None = None
        self._failing: set[str] = set()

    def watch(self, open_incidents: OpenIncidents, outbox_counts: OutboxCounts) -> None:
        """Read the gauges from these callables from now on (replacing earlier ones)."""
        with self._lock:
            self._open_incidents = open_incidents
            self._outbox_counts = outbox_counts
            self._failing.clear()

    def describe(self) -> list[GaugeMetricFamily]:
        """The families, without samples: how the registry refuses duplicate names."""
        return list(_Families(self.FAMILIES))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Both families, with the values the callables return now."""
        with self._lock:
            open_incidents, outbox_counts = self._open_incidents, self._outbox_counts
        families = _Families(self.FAMILIES)
        for labels, value in self._read("alerts_active", open_incidents, _incident_samples):
            families.put("alerts_active", labels, value)
        for labels, value in self._read("outbox_events", outbox_counts, _outbox_samples):
            families.put("outbox_events", labels, value)
        yield from families

    def _read(
        self, attribute: str, read: Callable[[], _T] | None, samples: Callable[[_T], _Samples]
    ) -> _Samples:
        """The samples of what ``read()`` returns; none when unset, or when it raises (logged
        at WARNING the first time only, until a read succeeds again)."""
        if read is None:
            return []
        try:
            found = samples(read())
        except Exception:
            with self._lock:
                first = attribute not in self._failing
                self._failing.add(attribute)
            if first:
                log.warning(
                    "cannot read driftline_%s for a scrape; it has no samples until a read "
                    "succeeds",
                    attribute,
                    exc_info=True,
                )
            return []
        with self._lock:
            recovered = attribute in self._failing
            self._failing.discard(attribute)
        if recovered:
            log.info("driftline_%s is read again", attribute)
        return found


def _incident_samples(counts: Mapping[tuple[str, str, str], int]) -> _Samples:
    return [((model, rule, severity), float(n)) for (model, rule, severity), n in counts.items()]


def _outbox_samples(counts: Mapping[str, int]) -> _Samples:
    return [((state,), float(counts.get(state, 0))) for state in OUTBOX_STATES]


class Metrics:
    """Every contract metric, on ``registry``: an attribute per instrument, and two collectors.

    Counters and ``consumer_lag_records`` are attributes named after their
    metric. The per-window gauges come from :attr:`windows` (fed by
    :meth:`observe_result`) and the alerting gauges from :attr:`alerting`
    (see :meth:`watch_alerts`); both are registered on ``registry``.

    Creating two ``Metrics`` on one registry raises ``ValueError`` (duplicate
    time series), as prometheus_client does for any duplicate.
    """

    records_total: Counter
    records_invalid_total: Counter
    records_late_total: Counter
    consumer_lag_records: Gauge
    alerts_total: Counter
    webhook_deliveries_total: Counter
    dead_letter_failures_total: Counter
    checkpoints_total: Counter
    checkpoint_seconds_total: Counter
    checkpoint_partials_total: Counter
    checkpoint_bytes_total: Counter
    window_evaluations_total: Counter
    window_evaluation_seconds_total: Counter

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        for declaration in _DECLARATIONS.values():
            if declaration.collected:
                continue
            factory = Counter if declaration.kind == "counter" else Gauge
            metric = factory(
                declaration.name, declaration.help, declaration.labels, registry=registry
            )
            setattr(self, declaration.attribute, metric)
        self.windows = LatestWindows()
        self.alerting = AlertingGauges()
        registry.register(self.windows)
        registry.register(self.alerting)

    def observe_result(
        self,
        result: WindowResult,
        *,
        estimated_quality: Mapping[str, float] | None = None,
        per_feature: bool = True,
    ) -> None:
        """Show ``result`` in the per-window gauges if it is its model's newest (labelled) window.

        ``estimated_quality`` is what ``driftline_model_quality_estimated``
        shows for it: the exported subset of its estimate
        (``monitor.analyses.quality.estimated_metrics``, which this module,
        below the analyses, cannot import); None shows none. ``per_feature``
        False (the model's ``metrics.per_feature``) exports none of the
        model's per-feature series.
        """
        self.windows.observe(result, estimated_quality, per_feature=per_feature)

    def observe_checkpoint(self, partials: int, payload_bytes: int, seconds: float) -> None:
        """Count one committed checkpoint: its partial rows, their payload bytes, its seconds."""
        self.checkpoints_total.inc()
        self.checkpoint_partials_total.inc(partials)
        self.checkpoint_bytes_total.inc(payload_bytes)
        self.checkpoint_seconds_total.inc(seconds)

    def observe_evaluation(self, features: int, seconds: float) -> None:
        """Count one window evaluation of a model with ``features`` features, and its seconds."""
        self.window_evaluations_total.labels(features=str(features)).inc()
        self.window_evaluation_seconds_total.labels(features=str(features)).inc(seconds)

    def watch_alerts(self, open_incidents: OpenIncidents, outbox_counts: OutboxCounts) -> None:
        """Read ``driftline_alerts_active`` and ``driftline_outbox_events`` at scrape time.

        ``open_incidents()`` returns the open incidents by ``(model, rule,
        severity)``, ``outbox_counts()`` the outbox's events by state; until this
        is called, both families have no samples (:class:`AlertingGauges`).
        """
        self.alerting.watch(open_incidents, outbox_counts)


def render(registry: CollectorRegistry) -> bytes:
    """Return the registry's metrics in the Prometheus text format (as :data:`CONTENT_TYPE`)."""
    return _generate_latest(registry)
