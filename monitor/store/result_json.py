"""The one mapper between :class:`~detectors.window_result.WindowResult` and its stored JSON.

A window's result is stored as one summary row (its ``details`` column a JSON
object) and one row per tested feature. This module is the only place that
writes or reads those ``details`` keys; everything else reads the typed
result. One pair of functions per result type (``*_json`` and
``*_from_json``), as NannyML's ``io/db/mappers.py`` does.

The ``details`` object::

    profile_version, rows_other_profiles, labelled, predictions_stored
    quality            measured metrics ({} without labels)
    quality_report     the figures beside them (MeasuredQuality.report)
    change_detection   ChangeDetection           (models with change_detection)
    reference          "profile" | "rolling"     (windows with enough rows; as below)
    drift              the drift report's own figures not in the feature rows
    data_quality       DataQualityReport or {"error": ...}
    estimated_performance   EstimatedPerformance or {"error": ...}
    multivariate       JointDrift or {"error": ...}
    attribution        AttributionDrift or {"error": ..., "source": ...}
    drift_impact       the drift-impact ranking (with attribution)

Non-finite floats are stored as ``null`` and read back as NaN. Rows written
before ``drift`` was stored rebuild each feature's ``bound`` as NaN and its
row counts as 0; which row is the prediction column's is then unknown (none is).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from detectors.attribution import AttributionDriftReport, DriftImpact, FeatureAttributionDrift
from detectors.decisions import Correction
from detectors.drift import DriftReport, FeatureDrift
from detectors.kinds import ColumnKind
from detectors.multivariate.base import MultivariateResult
from detectors.performance.cbpe import PerformanceEstimate
from detectors.quality.data_quality import DataQualityReport, QualityCheck, QualityCheckName
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
    WindowStatus,
)
from monitor.store.rows import FeatureResultRow, WindowSummaryRow

JSON = dict[str, Any]
_MULTIVARIATE_FIELDS = (
    "method",
    "statistic",
    "threshold",
    "p_value",
    "drift",
    "n_reference",
    "n_current",
    "n_features",
    "alpha",
    "seed",
)


# --- the window --------------------------------------------------------------------------


def window_result_rows(result: WindowResult) -> tuple[WindowSummaryRow, list[FeatureResultRow]]:
    """Return the summary row and the per-feature rows that store ``result``."""
    summary = WindowSummaryRow(
        model=result.model,
        window_start=result.window_start,
        window_end=result.window_end,
        rows=result.rows,
        status=result.status,
        dataset_drift=result.dataset_drift,
        drift_share=result.drift_share,
        prediction_drift=None if result.prediction_drift is None else result.prediction_drift.drift,
        details=window_details(result),
        evaluated_at=result.evaluated_at,
    )
    report = result.drift
    features = (
        []
        if report is None
        else [
            feature_row(result, f)
            for f in (*report.features, *([report.prediction] if report.prediction else []))
        ]
    )
    return summary, features


def window_details(result: WindowResult) -> JSON:
    """Return the summary's ``details`` object of ``result`` (layout in the module docstring)."""
    details: JSON = {
        "profile_version": result.profile_version,
        "rows_other_profiles": result.rows_other_profiles,
        "labelled": result.labelled,
        "predictions_stored": result.predictions_stored,
        "quality": dict(result.quality.metrics),
        "quality_report": dict(result.quality.report),
    }
    if result.change_detection is not None:
        details["change_detection"] = change_detection_json(result.change_detection)
    if result.reference is not None:
        details["reference"] = result.reference
    if result.drift is not None:
        details["drift"] = drift_json(result.drift)
    if result.data_quality is not None:
        details["data_quality"] = _or_error(result.data_quality, DataQualityReport.to_dict)
    if result.estimated_performance is not None:
        details["estimated_performance"] = _or_error(
            result.estimated_performance, estimated_performance_json
        )
    if result.joint_drift is not None:
        details["multivariate"] = _or_error(result.joint_drift, joint_drift_json)
    if result.attribution is not None:
        details["attribution"] = _or_error(result.attribution, attribution_json)
        details["drift_impact"] = drift_impact_json(result.drift_impact)
    return details


def window_result_from_rows(
    summary: WindowSummaryRow, features: Sequence[FeatureResultRow]
) -> WindowResult:
    """Rebuild the :class:`WindowResult` stored as ``summary`` and its feature rows."""
    d = summary.details
    drift = None
    if summary.status == "ok" and (features or "drift" in d):
        drift = drift_from_json(d.get("drift") or {}, summary, features)
    status: WindowStatus = "ok" if summary.status == "ok" else "insufficient_data"
    reference = d.get("reference")
    return WindowResult(
        model=summary.model,
        window_start=summary.window_start,
        window_end=summary.window_end,
        rows=summary.rows,
        status=status,
        profile_version=d.get("profile_version"),
        rows_other_profiles=int(d.get("rows_other_profiles") or 0),
        labelled=int(d.get("labelled") or 0),
        predictions_stored=int(d.get("predictions_stored") or 0),
        quality=MeasuredQuality(
            metrics=_floats(d.get("quality") or {}), report=dict(d.get("quality_report") or {})
        ),
        change_detection=None
        if d.get("change_detection") is None
        else change_detection_from_json(d["change_detection"]),
        reference="rolling" if reference == "rolling" else "profile" if reference else None,
        drift=drift,
        data_quality=_read(d.get("data_quality"), data_quality_from_json),
        estimated_performance=_read(
            d.get("estimated_performance"), estimated_performance_from_json
        ),
        joint_drift=_read(d.get("multivariate"), joint_drift_from_json),
        attribution=_read(d.get("attribution"), attribution_from_json),
        drift_impact=drift_impact_from_json(d.get("drift_impact") or []),
        evaluated_at=summary.evaluated_at,
    )


def stored_labelled(summary: WindowSummaryRow) -> int | None:
    """The labelled-prediction count stored with a window's result (None if not stored)."""
    labelled = summary.details.get("labelled")
    return None if labelled is None else int(labelled)


# --- drift ---------------------------------------------------------------------------------


def feature_row(result: WindowResult, f: FeatureDrift) -> FeatureResultRow:
    """Return the stored row of one feature's (or the prediction's) drift result."""
    return FeatureResultRow(
        model=result.model,
        window_start=result.window_start,
        feature=f.name,
        method=f.method,
        kind=f.kind.value,
        statistic=_finite(f.statistic),
        p_value=None if f.p_value is None else _finite(f.p_value),
        threshold=f.threshold,
        drift=f.drift,
        effect_size=_finite(f.effect_size),
        missing_share=f.missing_share,
        status=f.status,
        detectable=f.detectable,
        material=f.material,
        effect_size_lower=_finite(f.effect_size_lower),
        min_effect_size=f.min_effect_size,
    )


def drift_json(report: DriftReport) -> JSON:
    """The drift report's figures that the feature rows do not hold."""
    tested = (*report.features, *([report.prediction] if report.prediction else []))
    return {
        "drift_share_threshold": report.drift_share_threshold,
        "rows": {"reference": report.rows_reference, "current": report.rows_current},
        "correction": report.correction.value,
        "exact": report.exact,
        "prediction": None if report.prediction is None else report.prediction.name,
        # A list, in the report's order: PostgreSQL's JSONB does not keep an object's key order.
        "features": [
            {
                "name": f.name,
                "bound": _finite(f.bound),
                "n_reference": f.n_reference,
                "n_current": f.n_current,
            }
            for f in tested
        ],
    }


def drift_from_json(
    data: Mapping[str, Any], summary: WindowSummaryRow, rows: Sequence[FeatureResultRow]
) -> DriftReport:
    """Rebuild a window's :class:`DriftReport` from its feature rows and :func:`drift_json`."""
    listed = data.get("features") or []
    extra = {f["name"]: f for f in listed}
    order = {f["name"]: k for k, f in enumerate(listed)}
    rows = sorted(rows, key=lambda r: (order.get(r.feature, len(order)), r.feature))
    prediction_name = data.get("prediction")

    def feature(row: FeatureResultRow) -> FeatureDrift:
        more = extra.get(row.feature) or {}
        return FeatureDrift(
            name=row.feature,
            kind=ColumnKind(row.kind),
            method=row.method,
            statistic=_nan(row.statistic),
            p_value=row.p_value,
            threshold=row.threshold,
            drift=row.drift,
            # Rows stored before migration 0004 hold only the decision.
            detectable=row.drift if row.detectable is None else row.detectable,
            material=True if row.material is None else row.material,
            effect_size=_nan(row.effect_size),
            effect_size_lower=_nan(row.effect_size_lower),
            min_effect_size=row.min_effect_size or 0.0,
            bound=_nan(more.get("bound")),
            n_reference=int(more.get("n_reference") or 0),
            n_current=int(more.get("n_current") or 0),
            missing_share=row.missing_share,
            status=row.status,
        )

    features = [feature(r) for r in rows if r.feature != prediction_name]
    prediction = [feature(r) for r in rows if r.feature == prediction_name]
    counts = data.get("rows") or {}
    return DriftReport(
        features=tuple(features),
        drift_share=summary.drift_share,
        dataset_drift=summary.dataset_drift,
        drift_share_threshold=float(data.get("drift_share_threshold", math.nan)),
        prediction=prediction[0] if prediction else None,
        rows_reference=int(counts.get("reference") or 0),
        rows_current=int(counts.get("current") or summary.rows),
        correction=Correction(data.get("correction", Correction.NONE.value)),
        exact=bool(data.get("exact", False)),
    )


# --- data quality ----------------------------------------------------------------------------


def data_quality_from_json(data: Mapping[str, Any]) -> DataQualityReport:
    """Rebuild a :class:`DataQualityReport` from its ``to_dict``."""
    return DataQualityReport(
        passed=bool(data["passed"]),
        rows=int(data["rows"]),
        checks=tuple(
            QualityCheck(
                check=QualityCheckName(c["check"]),
                feature=c["feature"],
                value=_nan(c["value"]),
                upper=_nan(c.get("upper")),
                reference=_nan(c.get("reference")),
                threshold=_nan(c["threshold"]),
                passed=bool(c["passed"]),
                columns=tuple(c.get("columns") or ()),
            )
            for c in data["checks"]
        ),
    )


# --- estimated performance ----------------------------------------------------------------------


def estimated_performance_json(value: EstimatedPerformance) -> JSON:
    """The CBPE estimate plus the window's row count, coverage and the estimator used."""
    return {
        **value.estimate.to_dict(),
        "window_rows": value.window_rows,
        "coverage": value.coverage,
        "estimator": value.estimator,
        "positive_label": value.positive_label,
        "calibrated": value.calibrated,
    }


def estimated_performance_from_json(data: Mapping[str, Any]) -> EstimatedPerformance:
    """Rebuild an :class:`EstimatedPerformance` from :func:`estimated_performance_json`."""
    counts = ("rows", "predicted_positives")
    fields: dict[str, Any] = {
        name: (int(data[name]) if name in counts else _nan(data.get(name)))
        for name in PerformanceEstimate.__dataclass_fields__
    }
    return EstimatedPerformance(
        estimate=PerformanceEstimate(**fields),
        window_rows=int(data["window_rows"]),
        coverage=data.get("coverage"),
        estimator=str(data.get("estimator", "")),
        positive_label=data.get("positive_label"),
        calibrated=bool(data.get("calibrated", False)),
    )


# --- joint drift ------------------------------------------------------------------------------


def joint_drift_json(value: JointDrift) -> JSON:
    """Whether any method flagged, the row samples' sizes and each method's result."""
    return {
        "drift": value.drift,
        "rows_reference": value.rows_reference,
        "rows_current": value.rows_current,
        "methods": [{**m.result.to_dict(), **m.parameters} for m in value.methods],
    }


def joint_drift_from_json(data: Mapping[str, Any]) -> JointDrift:
    """Rebuild a :class:`JointDrift` (each method's specific settings as ``parameters``)."""
    methods = []
    for m in data.get("methods", ()):
        base = {k: m.get(k) for k in _MULTIVARIATE_FIELDS}
        result = MultivariateResult(
            method=str(base["method"]),
            statistic=_nan(base["statistic"]),
            threshold=_nan(base["threshold"]),
            p_value=base["p_value"],
            drift=bool(base["drift"]),
            n_reference=int(base["n_reference"] or 0),
            n_current=int(base["n_current"] or 0),
            n_features=int(base["n_features"] or 0),
            alpha=_nan(base["alpha"]),
            seed=int(base["seed"] or 0),
        )
        extra = {k: v for k, v in m.items() if k not in _MULTIVARIATE_FIELDS}
        methods.append(JointMethodResult(result=result, parameters=extra))
    return JointDrift(
        rows_reference=int(data.get("rows_reference") or 0),
        rows_current=int(data.get("rows_current") or 0),
        methods=tuple(methods),
    )


# --- attribution ------------------------------------------------------------------------------


def attribution_json(value: AttributionDrift) -> JSON:
    """The attribution-drift report with its source (features drifted first)."""
    return {"source": value.source, **value.report.to_dict()}


def attribution_from_json(data: Mapping[str, Any]) -> AttributionDrift:
    """Rebuild an :class:`AttributionDrift` from :func:`attribution_json`."""
    rows = data.get("rows") or {}
    return AttributionDrift(
        source=str(data["source"]),
        report=AttributionDriftReport(
            features=tuple(
                FeatureAttributionDrift(
                    name=f["name"],
                    reference_mean_abs=_nan(f["reference_mean_abs"]),
                    current_mean_abs=_nan(f["current_mean_abs"]),
                    relative_change=_nan(f["relative_change"]),
                    reference_share=_nan(f["reference_share"]),
                    current_share=_nan(f["current_share"]),
                    reference_mean=_nan(f["reference_mean"]),
                    current_mean=_nan(f["current_mean"]),
                    z=f["z"],
                    p_value=f["p_value"],
                    p_threshold=f["p_threshold"],
                    threshold=f["threshold"],
                    drift=bool(f["drift"]),
                    n_reference=int(f["n_reference"]),
                    n_current=int(f["n_current"]),
                    status=f.get("status", "ok"),
                )
                for f in data.get("features", ())
            ),
            share_distance=_nan(data.get("share_distance")),
            share_threshold=data.get("share_threshold"),
            share_drift=bool(data.get("share_drift", False)),
            drift=bool(data["drift"]),
            threshold=float(data["threshold"]),
            alpha=data.get("alpha"),
            correction=Correction(data.get("correction", Correction.NONE.value)),
            rows_reference=int(rows.get("reference") or 0),
            rows_current=int(rows.get("current") or 0),
        ),
    )


def drift_impact_json(ranking: Sequence[DriftImpact]) -> list[JSON]:
    """A drift-impact ranking: name, statistic, importance, impact per feature."""
    return [d.to_dict() for d in ranking]


def drift_impact_from_json(data: Sequence[Mapping[str, Any]]) -> tuple[DriftImpact, ...]:
    """Rebuild a drift-impact ranking from :func:`drift_impact_json`."""
    return tuple(
        DriftImpact(
            name=d["name"],
            statistic=_nan(d.get("statistic")),
            importance=_nan(d.get("importance")),
            impact=_nan(d.get("impact")),
        )
        for d in data
    )


# --- change detection ------------------------------------------------------------------------


def change_detection_json(value: ChangeDetection) -> JSON:
    """The detectors' parameters and, per stream, each detector's changes."""
    return {
        "max_points": value.max_points,
        "parameters": {name: dict(p) for name, p in value.parameters.items()},
        "streams": {name: _stream_json(s) for name, s in value.streams.items()},
    }


def _stream_json(stream: StreamChanges) -> JSON:
    return {
        "points": stream.points,
        "skipped": stream.skipped,
        "dropped": stream.dropped,
        "first_event_time": stream.first_event_time,
        "last_event_time": stream.last_event_time,
        "detectors": {name: _detector_json(d) for name, d in stream.detectors.items()},
    }


def _detector_json(run: DetectorChanges) -> JSON:
    data: JSON = {
        "points": run.points,
        "changes": [{"index": c.index, "event_time": c.event_time} for c in run.changes],
        "n_changes": run.n_changes,
        "detected": run.detected,
    }
    if run.error is not None:
        data["error"] = run.error
    return data


def change_detection_from_json(data: Mapping[str, Any]) -> ChangeDetection:
    """Rebuild a :class:`ChangeDetection` from :func:`change_detection_json`."""
    return ChangeDetection(
        max_points=int(data["max_points"]),
        parameters={name: dict(p) for name, p in (data.get("parameters") or {}).items()},
        streams={
            name: StreamChanges(
                points=int(s["points"]),
                skipped=int(s["skipped"]),
                dropped=int(s["dropped"]),
                first_event_time=s.get("first_event_time"),
                last_event_time=s.get("last_event_time"),
                detectors={
                    detector: DetectorChanges(
                        points=int(d["points"]),
                        changes=tuple(
                            ChangePoint(index=int(c["index"]), event_time=c.get("event_time"))
                            for c in d.get("changes", ())
                        ),
                        n_changes=int(d["n_changes"]),
                        detected=bool(d["detected"]),
                        error=d.get("error"),
                    )
                    for detector, d in (s.get("detectors") or {}).items()
                },
            )
            for name, s in (data.get("streams") or {}).items()
        },
    )


# --- helpers ------------------------------------------------------------------------------------


def analysis_error_json(error: AnalysisError) -> JSON:
    """``{"error": message}``, plus ``source`` when the error names one."""
    data: JSON = {"error": error.message}
    if error.source is not None:
        data["source"] = error.source
    return data


def _or_error(value: Any, to_json: Any) -> JSON:
    if isinstance(value, AnalysisError):
        return analysis_error_json(value)
    result: JSON = to_json(value)
    return result


def _read(data: Mapping[str, Any] | None, from_json: Any) -> Any:
    if data is None:
        return None
    if "error" in data:
        return AnalysisError(message=str(data["error"]), source=data.get("source"))
    return from_json(data)


def _floats(values: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if isinstance(v, int | float)}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _nan(value: Any) -> float:
    return math.nan if value is None else float(value)


__all__ = [
    "analysis_error_json",
    "attribution_from_json",
    "attribution_json",
    "change_detection_from_json",
    "change_detection_json",
    "data_quality_from_json",
    "drift_from_json",
    "drift_impact_from_json",
    "drift_impact_json",
    "drift_json",
    "estimated_performance_from_json",
    "estimated_performance_json",
    "feature_row",
    "joint_drift_from_json",
    "joint_drift_json",
    "stored_labelled",
    "window_details",
    "window_result_from_rows",
    "window_result_rows",
]
