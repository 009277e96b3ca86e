"""One evaluated window's results, typed: what storage, metrics, the API and alerts read.

The service evaluates a window once (and again when late labels change its
quality) and publishes one :class:`WindowResult`. Every consumer reads it by
attribute; JSON exists only at the edges (the store's and the API's mapper),
never as ``dict`` keys passed around. The type lives in ``detectors`` because
``alerts`` must read it without importing the service (``monitor -> alerts ->
detectors``): it is made of the detectors' own result types plus the window's
bookkeeping.

An analysis that was configured but could not run on the window (no row
sample, no SHAP values in the reference, ...) is an :class:`AnalysisError`
in its field; one that is not configured (or a window with too few rows) is
``None``.

Adding a per-window analysis: give it a frozen result type (here or in its
detectors module), a field on :class:`WindowResult`, a function in
``monitor.analyses`` that computes it, and a pair of functions in the store's
mapper (``monitor.store.result_json``). Nothing else reads it by key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from detectors.attribution import AttributionDriftReport, DriftImpact
from detectors.drift import DriftReport, FeatureDrift
from detectors.multivariate.base import MultivariateResult
from detectors.performance.cbpe import PerformanceEstimate
from detectors.quality.data_quality import DataQualityReport

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class AnalysisError:
    """A configured analysis that could not run on the window; ``message`` says why and the fix.

    ``source`` is set for attribution (``"explanations"`` or ``"model"``).
    """

    message: str
    source: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MeasuredQuality:
    """Quality from the window's labelled predictions (empty ``metrics`` without labels).

    ``metrics`` maps metric names (``accuracy``, ``f1``, ``mae``, ...) to
    finite values. ``report`` holds the figures shown beside them (task, row
    counts, positive class, histogram bounds, per-class figures): it is passed
    through to JSON unchanged and nothing reads it by key.
    """

    metrics: Mapping[str, float] = field(default_factory=lambda: _EMPTY)
    report: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)


@dataclass(frozen=True, slots=True, kw_only=True)
class EstimatedPerformance:
    """The CBPE estimate of a window from its scores, without labels.

    ``window_rows`` counts the window's records, ``coverage`` the share of them
    with a score (None for an empty window); ``estimator`` is the fitted
    estimator's fingerprint and ``calibrated`` whether it calibrates scores.
    """

    estimate: PerformanceEstimate
    window_rows: int
    coverage: float | None
    estimator: str
    positive_label: str | None
    calibrated: bool

    #: The estimated metrics a gauge or a rule can read.
    METRICS = ("accuracy", "precision", "recall", "specificity", "f1", "roc_auc")

    @property
    def metrics(self) -> dict[str, float]:
        """The finite estimated metrics by name (``accuracy``, ``f1``, ``roc_auc``, ...)."""
        values = {name: float(getattr(self.estimate, name)) for name in self.METRICS}
        return {name: value for name, value in values.items() if math.isfinite(value)}


@dataclass(frozen=True, slots=True, kw_only=True)
class JointMethodResult:
    """One multivariate method's verdict; ``parameters`` are the method-specific settings."""

    result: MultivariateResult
    parameters: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    @property
    def method(self) -> str:
        """The method's registered name."""
        return self.result.method

    @property
    def drift(self) -> bool:
        """Whether this method found joint drift."""
        return self.result.drift


@dataclass(frozen=True, slots=True, kw_only=True)
class JointDrift:
    """Joint (multivariate) drift of the window's row sample against the reference's."""

    rows_reference: int
    rows_current: int
    methods: tuple[JointMethodResult, ...]

    @property
    def drift(self) -> bool:
        """Whether any method found joint drift."""
        return any(m.drift for m in self.methods)

    @property
    def flagged(self) -> tuple[str, ...]:
        """The methods that found joint drift, in configured order."""
        return tuple(m.method for m in self.methods if m.drift)


@dataclass(frozen=True, slots=True, kw_only=True)
class AttributionDrift:
    """SHAP attribution drift of the window against the reference's summary.

    ``source`` is ``"explanations"`` (sent with the records) or ``"model"``
    (computed by the service).
    """

    source: str
    report: AttributionDriftReport

    @property
    def drift(self) -> bool:
        """Whether any feature's attribution, or the importance shares, drifted."""
        return self.report.drift


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangePoint:
    """Where a detector fired: the index of the point in its stream, and its event time."""

    index: int
    event_time: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectorChanges:
    """One online detector's run over one stream of the window.

    ``changes`` lists at most the first few detections, ``n_changes`` counts
    all; ``error`` says why the run stopped early (a value the detector
    refused), None when it read every point.
    """

    points: int
    changes: tuple[ChangePoint, ...]
    n_changes: int
    detected: bool
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamChanges:
    """The detectors' runs over one stream (``score`` or ``error``) of the window."""

    points: int
    skipped: int
    dropped: int
    first_event_time: float | None
    last_event_time: float | None
    detectors: Mapping[str, DetectorChanges]

    @property
    def detected(self) -> bool:
        """Whether any detector found a change in this stream."""
        return any(d.detected for d in self.detectors.values())


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeDetection:
    """The online change detectors' findings over the window's streams, in event-time order.

    ``parameters`` are each detector's constructor parameters (passed through
    to JSON for reproducibility; nothing reads them by key).
    """

    max_points: int
    parameters: Mapping[str, Mapping[str, Any]]
    streams: Mapping[str, StreamChanges]

    @property
    def detected(self) -> bool:
        """Whether any detector found a change in any stream."""
        return any(s.detected for s in self.streams.values())

    def first_changes(self) -> dict[str, tuple[ChangePoint, int]]:
        """Per stream with a change: its earliest change (by index), most changes of a detector."""
        first: dict[str, tuple[ChangePoint, int]] = {}
        for name, stream in self.streams.items():
            changes = [c for d in stream.detectors.values() for c in d.changes]
            if changes:
                total = max(d.n_changes for d in stream.detectors.values())
                first[name] = (min(changes, key=lambda c: c.index), total)
        return first


WindowStatus = Literal["ok", "insufficient_data"]
ReferenceKind = Literal["profile", "rolling"]


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowResult:
    """Everything one evaluation of one model's window found.

    ``status`` is ``"insufficient_data"`` when the window had fewer than the
    model's ``min_records`` rows (or no partials): then only quality, label
    coverage and change points are computed, and ``drift`` and the fields
    after it are None. ``profile_version`` is the reference profile the
    window was binned on (None without partials); ``rows_other_profiles``
    counts rows binned on another version (a profile changed mid-window,
    left out). ``reference`` is which baseline the drift tests used.
    ``labelled`` / ``predictions_stored`` are the window's predictions joined
    with a label / kept for a join; ``evaluated_at`` is when this result was
    computed (a re-evaluation after late labels has a later one).
    """

    model: str
    window_start: float
    window_end: float
    rows: int
    status: WindowStatus
    profile_version: int | None
    rows_other_profiles: int = 0
    labelled: int = 0
    predictions_stored: int = 0
    quality: MeasuredQuality = field(default_factory=MeasuredQuality)
    change_detection: ChangeDetection | None = None
    reference: ReferenceKind | None = None
    drift: DriftReport | None = None
    data_quality: DataQualityReport | AnalysisError | None = None
    estimated_performance: EstimatedPerformance | AnalysisError | None = None
    joint_drift: JointDrift | AnalysisError | None = None
    attribution: AttributionDrift | AnalysisError | None = None
    drift_impact: tuple[DriftImpact, ...] = ()
    evaluated_at: float | None = None

    @property
    def dataset_drift(self) -> bool:
        """Whether the drift tests found dataset drift (False without a drift report)."""
        return self.drift is not None and self.drift.dataset_drift

    @property
    def drift_share(self) -> float:
        """The share of drifted features (0.0 without a drift report)."""
        return 0.0 if self.drift is None else self.drift.drift_share

    @property
    def prediction_drift(self) -> FeatureDrift | None:
        """The prediction column's drift result, if the model's prediction is tested."""
        return None if self.drift is None else self.drift.prediction

    @property
    def drifted_features(self) -> tuple[FeatureDrift, ...]:
        """The features that drifted, most severe first (empty without a drift report)."""
        return () if self.drift is None else self.drift.drifted


__all__ = [
    "AnalysisError",
    "AttributionDrift",
    "ChangeDetection",
    "ChangePoint",
    "DetectorChanges",
    "EstimatedPerformance",
    "JointDrift",
    "JointMethodResult",
    "MeasuredQuality",
    "ReferenceKind",
    "StreamChanges",
    "WindowResult",
    "WindowStatus",
]
