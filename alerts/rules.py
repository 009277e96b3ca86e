"""Alert rules: their configuration and their verdict on one evaluated window.

A rule reads one :class:`~detectors.window_result.WindowResult` by attribute
and says, per *subject* (a feature name, or ``""`` for a rule about the whole
window), whether the window **breaches** it, is **clean**, or is **unknown**.
:mod:`alerts.engine` turns those verdicts into incidents; this module knows
nothing about time or state.

Rules are a discriminated union on ``kind`` (pydantic, unknown fields
rejected, every error naming its field):

===================== ============================================== ===================
kind                  breaches when                                  event type
===================== ============================================== ===================
``feature_drift``     the named ``feature`` drifted; or (default)    drift.detected
                      any feature drifted, one incident per
                      feature; or at least ``min_features``
                      features drifted (one incident)
``drift_share``       the drifted-feature share >= ``threshold``     drift.detected
                      (None: the drift report's own decision)
``prediction_drift``  the prediction drifted (with ``threshold``:    drift.detected
                      its statistic >= ``threshold``)
``data_quality``      a data-quality check failed (only those in     data_quality.failed
                      ``checks`` when set)
``quality``           a measured metric (labels) is                  quality.degraded
                      ``below``/``above`` ``threshold``
``estimated_quality`` a CBPE-estimated metric is                     quality.degraded
                      ``below``/``above`` ``threshold``
``joint_drift``       a multivariate method found joint drift        drift.detected
``attribution_drift`` the SHAP attributions drifted                  drift.detected
``change_point``      an online detector found a change (only in     drift.detected
                      ``stream``, ``score`` or ``error``, when set)
===================== ============================================== ===================

Common fields and their defaults per kind:

==================== ======== ========== ============= ==================================
kind                 severity fire_after resolve_after why
==================== ======== ========== ============= ==================================
feature_drift        warning  2          2             one noisy window should not page
drift_share          critical 2          2             most features moving is an outage
prediction_drift     warning  2          2             as feature drift
data_quality         warning  2          2             a broken pipeline persists; a spike
                                                       of missing values often does not
quality              warning  1          2             measured on labels: not a guess
estimated_quality    warning  1          2             as quality
joint_drift          warning  2          2             as feature drift
attribution_drift    warning  2          2             as feature drift
change_point         info     1          1             an online detector fires once at a
                                                       change and then restarts, so the
                                                       next window rarely repeats it
==================== ======== ========== ============= ==================================

``repeat_interval_s`` (default 6 hours) re-notifies a still-firing incident at
most that often, measured in window event time; ``retrain: true`` also emits
``retrain.requested`` once per incident; ``enabled: false`` keeps a rule in
the file without evaluating it. ``name`` must be unique per model; by default
it is derived from the kind and its parameters (``feature_drift``,
``feature_drift.income``, ``quality.accuracy``, ...).

With no configuration (:func:`default_rules`) a model gets four rules, all
without retrain requests: feature drift on any feature (warning), dataset
drift share at the drift report's own decision (critical), prediction drift
(warning) and data quality (warning). Quality rules have no default because
no threshold fits every model; the prediction-drift and data-quality rules
stay silent (unknown) for a model that does not test its prediction or check
its data quality.

Unknown verdicts. A rule whose input is missing from the window gives
``unknown``: a window with ``insufficient_data`` (for every kind, quality
included, as too few rows make its metrics noise), an analysis that is not
configured (``None``) or could not run (:class:`AnalysisError`), a quality
metric without labels, a feature or stream absent from the window or not
evaluated. Unknown neither breaches nor counts as clean: missing data never
fires an incident and never resolves one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from detectors.attribution import DriftImpact
from detectors.drift import DriftReport, FeatureDrift
from detectors.quality.data_quality import DataQualityReport, QualityCheck, QualityCheckName
from detectors.window_result import (
    AnalysisError,
    AttributionDrift,
    EstimatedPerformance,
    JointDrift,
    WindowResult,
)

Severity = Literal["info", "warning", "critical"]
Direction = Literal["below", "above"]
VerdictStatus = Literal["breach", "clean", "unknown"]
#: The event types an incident emits; the values of ``alerts.events.EventType``.
EventTypeName = Literal[
    "drift.detected",
    "quality.degraded",
    "data_quality.failed",
    "retrain.requested",
    "alert.resolved",
]

#: Measured-quality metrics (``MeasuredQuality.metrics``) and whether higher is better.
#: ``mean_error`` is signed, so a rule on it must set ``direction``.
QUALITY_METRICS: Mapping[str, bool | None] = MappingProxyType(
    {
        "accuracy": True,
        "macro_precision": True,
        "macro_recall": True,
        "macro_f1": True,
        "precision": True,
        "recall": True,
        "f1": True,
        "roc_auc": True,
        "average_precision": True,
        "log_loss": False,
        "brier_score": False,
        "expected_calibration_error": False,
        "mae": False,
        "rmse": False,
        "mape": False,
        "r2": True,
        "mean_error": None,
    }
)
#: CBPE-estimated metrics (``EstimatedPerformance.metrics``); higher is better for all.
ESTIMATED_METRICS: tuple[str, ...] = EstimatedPerformance.METRICS

_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")
_NOT_NAME = re.compile(r"[^A-Za-z0-9_.:-]+")


def _slug(text: str) -> str:
    """``text`` with every run of characters a name may not hold replaced by ``_``."""
    return _NOT_NAME.sub("_", text) or "_"


# --- configuration ---------------------------------------------------------------------------


class _Rule(BaseModel):
    """Fields every rule kind has; subclasses set their kind's defaults as class variables."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_severity: ClassVar[Severity] = "warning"
    default_fire_after: ClassVar[int] = 2
    default_resolve_after: ClassVar[int] = 2
    event_type: ClassVar[EventTypeName] = "drift.detected"

    name: str = ""
    severity: Severity = "warning"
    fire_after: int = Field(default=2, ge=1)
    resolve_after: int = Field(default=2, ge=1)
    repeat_interval_s: float = Field(default=6 * 3600.0, gt=0, allow_inf_nan=False)
    retrain: bool = False
    enabled: bool = True

    @model_validator(mode="before")
    @classmethod
    def _kind_defaults(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        filled = dict(data)
        filled.setdefault("severity", cls.default_severity)
        filled.setdefault("fire_after", cls.default_fire_after)
        filled.setdefault("resolve_after", cls.default_resolve_after)
        if not filled.get("name"):
            filled["name"] = cls._default_name(filled)
        return filled

    @classmethod
    def _default_name(cls, data: Mapping[str, Any]) -> str:
        kind = cls.model_fields["kind"].default
        return str(kind)

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"name {value!r}: use letters, digits and _ . : - only (it labels alerts and ids)"
            )
        return value


class FeatureDriftRule(_Rule):
    """Feature drift: a named ``feature``, any feature (default) or ``min_features`` of them.

    With ``per_feature`` (default for a named feature or any feature) each
    drifted feature is its own incident (subject = the feature name);
    otherwise, and always with ``min_features``, the window is one incident
    (subject ``""``).
    """

    kind: Literal["feature_drift"] = "feature_drift"
    feature: str | None = Field(default=None, min_length=1)
    min_features: int | None = Field(default=None, ge=1)
    per_feature: bool | None = None

    @classmethod
    def _default_name(cls, data: Mapping[str, Any]) -> str:
        if data.get("feature"):
            return f"feature_drift.{_slug(str(data['feature']))}"
        if data.get("min_features") is not None:
            return f"feature_drift.min_{data['min_features']}"
        return "feature_drift"

    @model_validator(mode="after")
    def _check_mode(self) -> FeatureDriftRule:
        if self.feature is not None and self.min_features is not None:
            raise ValueError("feature and min_features: set one of them, not both")
        if self.min_features is not None and self.per_feature:
            raise ValueError("per_feature: must be false (or unset) with min_features")
        return self

    @property
    def split(self) -> bool:
        """Whether each feature is its own subject (one incident per drifted feature)."""
        return self.min_features is None and self.per_feature is not False


class DriftShareRule(_Rule):
    """Dataset drift: the share of drifted features >= ``threshold``.

    ``threshold`` None uses the drift report's own dataset-drift decision (the
    model's ``drift_share`` setting).
    """

    default_severity: ClassVar[Severity] = "critical"
    kind: Literal["drift_share"] = "drift_share"
    threshold: float | None = Field(default=None, gt=0, le=1)


class PredictionDriftRule(_Rule):
    """Prediction drift: the prediction column's drift decision, or its statistic >= ``threshold``.

    ``threshold`` is on the method's statistic scale (e.g. a KS distance), not
    a p-value; None uses the drift test's own decision.
    """

    kind: Literal["prediction_drift"] = "prediction_drift"
    threshold: float | None = Field(default=None, gt=0, allow_inf_nan=False)


class DataQualityRule(_Rule):
    """Data quality: any failed check, or only the failed checks named in ``checks``."""

    event_type: ClassVar[EventTypeName] = "data_quality.failed"
    kind: Literal["data_quality"] = "data_quality"
    checks: tuple[QualityCheckName, ...] | None = Field(default=None, min_length=1)


def _direction(metric: str, direction: Direction | None, higher_is_better: bool | None) -> str:
    if direction is not None:
        return direction
    if higher_is_better is None:
        raise ValueError(f"direction: required for metric {metric!r} ('below' or 'above')")
    return "below" if higher_is_better else "above"


class QualityRule(_Rule):
    """Measured quality: ``metric`` (from labelled predictions) ``below``/``above`` ``threshold``.

    ``direction`` defaults to ``below`` for metrics where higher is better
    (accuracy, f1, roc_auc, r2, ...) and ``above`` for errors (mae, rmse,
    log_loss, ...). The breach is strict: a value equal to the threshold is clean.
    """

    default_fire_after: ClassVar[int] = 1
    event_type: ClassVar[EventTypeName] = "quality.degraded"
    kind: Literal["quality"] = "quality"
    metric: str
    threshold: float = Field(allow_inf_nan=False)
    direction: Direction | None = None

    @classmethod
    def _default_name(cls, data: Mapping[str, Any]) -> str:
        return f"{cls.model_fields['kind'].default}.{data.get('metric', '')}"

    @field_validator("metric")
    @classmethod
    def _check_metric(cls, value: str) -> str:
        if value not in QUALITY_METRICS:
            raise ValueError(f"metric {value!r}: not one of {', '.join(QUALITY_METRICS)}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _infer_direction(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and data.get("direction") is None:
            metric = data.get("metric")
            if isinstance(metric, str) and metric in QUALITY_METRICS:
                return {**data, "direction": _direction(metric, None, QUALITY_METRICS[metric])}
        return data

    @property
    def breach_direction(self) -> Direction:
        """The side of ``threshold`` that breaches (``direction`` after its default)."""
        return self.direction or "below"


class EstimatedQualityRule(_Rule):
    """Estimated quality (CBPE, no labels): ``metric`` ``below``/``above`` ``threshold``.

    ``direction`` defaults to ``below`` (every estimated metric is higher-better).
    """

    default_fire_after: ClassVar[int] = 1
    event_type: ClassVar[EventTypeName] = "quality.degraded"
    kind: Literal["estimated_quality"] = "estimated_quality"
    metric: str
    threshold: float = Field(allow_inf_nan=False)
    direction: Direction = "below"

    @classmethod
    def _default_name(cls, data: Mapping[str, Any]) -> str:
        return f"estimated_quality.{data.get('metric', '')}"

    @field_validator("metric")
    @classmethod
    def _check_metric(cls, value: str) -> str:
        if value not in ESTIMATED_METRICS:
            raise ValueError(f"metric {value!r}: not one of {', '.join(ESTIMATED_METRICS)}")
        return value

    @property
    def breach_direction(self) -> Direction:
        """The side of ``threshold`` that breaches."""
        return self.direction


class JointDriftRule(_Rule):
    """Joint (multivariate) drift: any configured method flagged the window."""

    kind: Literal["joint_drift"] = "joint_drift"


class AttributionDriftRule(_Rule):
    """Attribution drift: a feature's SHAP attribution, or the importance shares, drifted."""

    kind: Literal["attribution_drift"] = "attribution_drift"


class ChangePointRule(_Rule):
    """Change points: an online detector found a change, in ``stream`` only when it is set."""

    default_severity: ClassVar[Severity] = "info"
    default_fire_after: ClassVar[int] = 1
    default_resolve_after: ClassVar[int] = 1
    kind: Literal["change_point"] = "change_point"
    stream: Literal["score", "error"] | None = None

    @classmethod
    def _default_name(cls, data: Mapping[str, Any]) -> str:
        stream = data.get("stream")
        return f"change_point.{stream}" if stream else "change_point"


Rule = Annotated[
    FeatureDriftRule
    | DriftShareRule
    | PredictionDriftRule
    | DataQualityRule
    | QualityRule
    | EstimatedQualityRule
    | JointDriftRule
    | AttributionDriftRule
    | ChangePointRule,
    Field(discriminator="kind"),
]
"""Any rule kind; pydantic picks the class from ``kind``."""

_RULE: TypeAdapter[Rule] = TypeAdapter(Rule, config=ConfigDict(title="rule"))


def parse_rule(data: Mapping[str, Any]) -> Rule:
    """Validate one rule's mapping and return the rule (pydantic ``ValidationError`` if invalid)."""
    return _RULE.validate_python(data)


def default_rules() -> tuple[Rule, ...]:
    """Return the rules a model gets with no configuration (see the module docstring)."""
    return (FeatureDriftRule(), DriftShareRule(), PredictionDriftRule(), DataQualityRule())


class RulesConfig(BaseModel):
    """A model's alert rules: ``rules`` as configured, or :func:`default_rules` when unset.

    An explicit empty list means no alerts. Rule names must be unique.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: tuple[Rule, ...] | None = None

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, rules: tuple[Rule, ...] | None) -> tuple[Rule, ...] | None:
        seen: dict[str, int] = {}
        for i, rule in enumerate(rules or ()):
            if rule.name in seen:
                first = seen[rule.name]
                raise ValueError(
                    f"rules[{i}].name: {rule.name!r} is already the name of rules[{first}]"
                    " (names must be unique per model; set name)"
                )
            seen[rule.name] = i
        return rules

    @property
    def effective(self) -> tuple[Rule, ...]:
        """The rules in force: the configured ones, or the defaults when none are configured."""
        return default_rules() if self.rules is None else self.rules

    @property
    def enabled(self) -> tuple[Rule, ...]:
        """The rules in force that are enabled."""
        return tuple(r for r in self.effective if r.enabled)


def load_rules(text: str) -> RulesConfig:
    """Parse a YAML document (a mapping with ``rules``, or empty) into a :class:`RulesConfig`."""
    data = yaml.safe_load(text)
    return RulesConfig.model_validate({} if data is None else data)


# --- verdicts --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """Why a verdict was reached: the value compared, its threshold, a sentence and details.

    ``value``/``threshold`` are None when the verdict is unknown or the rule
    has no single number; ``details`` is JSON-ready (no NaN, plain types).
    """

    value: float | None
    threshold: float | None
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """One rule's verdict on one subject of one window: breach, clean or unknown."""

    status: VerdictStatus
    evidence: Evidence

    @classmethod
    def unknown(cls, summary: str) -> Verdict:
        """Return an unknown verdict that says why (``summary``)."""
        return cls(status="unknown", evidence=Evidence(value=None, threshold=None, summary=summary))


def _verdict(breach: bool, evidence: Evidence) -> Verdict:
    return Verdict(status="breach" if breach else "clean", evidence=evidence)


def evaluate_rule(rule: Rule, result: WindowResult) -> dict[str, Verdict]:
    """Return the rule's verdict on the window per subject (``""`` for a whole-window rule).

    A per-feature rule about any feature returns one verdict per feature of
    the drift report, and nothing when there is no drift report (its
    subjects are then unknown to the engine).
    """
    if result.status == "insufficient_data":
        reason = f"window has insufficient data ({result.rows} rows)"
        if isinstance(rule, FeatureDriftRule) and rule.split:
            return {} if rule.feature is None else {rule.feature: Verdict.unknown(reason)}
        return {"": Verdict.unknown(reason)}
    match rule:
        case FeatureDriftRule():
            return _feature_drift(rule, result)
        case DriftShareRule():
            return {"": _drift_share(rule, result)}
        case PredictionDriftRule():
            return {"": _prediction_drift(rule, result)}
        case DataQualityRule():
            return {"": _data_quality(rule, result.data_quality)}
        case QualityRule():
            return {"": _quality(rule, result.quality.metrics, "measured", "no labelled metric")}
        case EstimatedQualityRule():
            return {"": _estimated_quality(rule, result.estimated_performance)}
        case JointDriftRule():
            return {"": _joint_drift(result.joint_drift)}
        case AttributionDriftRule():
            return {"": _attribution_drift(result.attribution)}
        case ChangePointRule():
            return {"": _change_point(rule, result)}


# --- drift -----------------------------------------------------------------------------------


def _json_float(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _ranked(drifted: Sequence[FeatureDrift], impact: Sequence[DriftImpact]) -> list[FeatureDrift]:
    """Drifted features by drift impact when the window has one, else by severity (as given)."""
    if not impact:
        return list(drifted)
    order = {d.name: i for i, d in enumerate(impact)}
    return sorted(drifted, key=lambda f: order.get(f.name, len(order)))


def _feature_json(f: FeatureDrift, impact: Mapping[str, DriftImpact]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": f.name,
        "method": f.method,
        "statistic": _json_float(f.statistic),
        "p_value": _json_float(f.p_value),
        "threshold": _json_float(f.threshold),
        "severity": _json_float(f.severity),
        "drift": f.drift,
    }
    if f.name in impact:
        data["importance"] = _json_float(impact[f.name].importance)
        data["impact"] = _json_float(impact[f.name].impact)
    return data


def _feature_text(f: FeatureDrift) -> str:
    return f"{f.name} ({f.method}={_fmt(f.statistic)})"


def _drift_details(report: DriftReport, result: WindowResult) -> dict[str, Any]:
    impact = {d.name: d for d in result.drift_impact}
    evaluated = [f for f in report.features if f.status == "ok"]
    return {
        "drift_share": _json_float(report.drift_share),
        "dataset_drift": report.dataset_drift,
        "features_evaluated": len(evaluated),
        "ranked_by": "drift_impact" if result.drift_impact else "severity",
        "drifted": [_feature_json(f, impact) for f in _ranked(report.drifted, result.drift_impact)],
    }


def _drift_summary(report: DriftReport, result: WindowResult) -> str:
    evaluated = sum(f.status == "ok" for f in report.features)
    ranked = _ranked(report.drifted, result.drift_impact)
    text = f"{len(ranked)} of {evaluated} features drifted"
    return f"{text}; top: {_feature_text(ranked[0])}" if ranked else text


_NO_DRIFT = "no drift report for the window (drift not evaluated)"


def _feature_drift(rule: FeatureDriftRule, result: WindowResult) -> dict[str, Verdict]:
    report = result.drift
    if report is None:
        if rule.split:
            return {} if rule.feature is None else {rule.feature: Verdict.unknown(_NO_DRIFT)}
        return {"": Verdict.unknown(_NO_DRIFT)}
    if rule.split:
        impact = {d.name: d for d in result.drift_impact}
        features = [f for f in report.features if rule.feature in (None, f.name)]
        if rule.feature is not None and not features:
            return {rule.feature: Verdict.unknown(f"feature {rule.feature!r} is not monitored")}
        return {f.name: _one_feature(f, impact) for f in features}
    evaluated = [f for f in report.features if f.status == "ok"]
    if rule.feature is not None:
        evaluated = [f for f in evaluated if f.name == rule.feature]
    if not evaluated:
        return {"": Verdict.unknown("no feature could be evaluated")}
    drifted = sum(f.drift for f in evaluated)
    needed = rule.min_features or 1
    evidence = Evidence(
        value=float(drifted),
        threshold=float(needed),
        summary=_drift_summary(report, result),
        details=_drift_details(report, result),
    )
    return {"": _verdict(drifted >= needed, evidence)}


def _one_feature(f: FeatureDrift, impact: Mapping[str, DriftImpact]) -> Verdict:
    if f.status != "ok":
        return Verdict.unknown(f"feature {f.name!r} not evaluated ({f.status})")
    test = f"p={_fmt(f.p_value)}" if f.p_value is not None else f"threshold {_fmt(f.threshold)}"
    state = "drifted" if f.drift else "did not drift"
    evidence = Evidence(
        value=_json_float(f.statistic),
        threshold=_json_float(f.threshold),
        summary=f"{f.name} {state} ({f.method}={_fmt(f.statistic)}, {test})",
        details={"feature": _feature_json(f, impact)},
    )
    return _verdict(f.drift, evidence)


def _drift_share(rule: DriftShareRule, result: WindowResult) -> Verdict:
    report = result.drift
    if report is None:
        return Verdict.unknown(_NO_DRIFT)
    if not any(f.status == "ok" for f in report.features):
        return Verdict.unknown("no feature could be evaluated")
    threshold = report.drift_share_threshold if rule.threshold is None else rule.threshold
    breach = report.dataset_drift if rule.threshold is None else report.drift_share >= threshold
    summary = f"drift share {report.drift_share:.0%} (threshold {threshold:.0%}): " + (
        _drift_summary(report, result)
    )
    evidence = Evidence(
        value=report.drift_share,
        threshold=threshold,
        summary=summary,
        details=_drift_details(report, result),
    )
    return _verdict(breach, evidence)


def _prediction_drift(rule: PredictionDriftRule, result: WindowResult) -> Verdict:
    report = result.drift
    if report is None:
        return Verdict.unknown(_NO_DRIFT)
    p = report.prediction
    if p is None:
        return Verdict.unknown("the model's prediction is not tested for drift")
    if p.status != "ok" or not math.isfinite(p.statistic):
        return Verdict.unknown(f"prediction not evaluated ({p.status})")
    breach = p.drift if rule.threshold is None else p.statistic >= rule.threshold
    threshold = p.threshold if rule.threshold is None else rule.threshold
    state = "drifted" if breach else "did not drift"
    test = f", p={_fmt(p.p_value)}" if p.p_value is not None and rule.threshold is None else ""
    evidence = Evidence(
        value=p.statistic,
        threshold=threshold,
        summary=f"prediction {state} ({p.method}={_fmt(p.statistic)}{test})",
        details={"prediction": _feature_json(p, {})},
    )
    return _verdict(breach, evidence)


# --- data quality and quality ----------------------------------------------------------------


def _check_text(c: QualityCheck) -> str:
    where = f" on {c.feature}" if c.feature else ""
    if c.columns:
        where = f" ({', '.join(c.columns)})"
    return f"{c.check.value}{where} ({_fmt(c.value)} > {_fmt(c.threshold)})"


def _data_quality(rule: DataQualityRule, dq: DataQualityReport | AnalysisError | None) -> Verdict:
    if dq is None:
        return Verdict.unknown("data quality is not checked for this window")
    if isinstance(dq, AnalysisError):
        return Verdict.unknown(f"data quality could not be checked: {dq.message}")
    wanted = set(rule.checks) if rule.checks else None
    failed = [c for c in dq.failed if wanted is None or c.check in wanted]
    checked = sum(wanted is None or c.check in wanted for c in dq.checks)
    if not checked:
        return Verdict.unknown("none of the rule's checks ran on this window")
    if failed:
        summary = f"{len(failed)} of {checked} checks failed: " + "; ".join(
            _check_text(c) for c in failed[:5]
        )
        if len(failed) > 5:
            summary += f"; and {len(failed) - 5} more"
    else:
        summary = f"all {checked} checks passed"
    evidence = Evidence(
        value=float(len(failed)),
        threshold=0.0,
        summary=summary,
        details={"checks": checked, "failed": [c.to_dict() for c in failed]},
    )
    return _verdict(bool(failed), evidence)


def _quality(
    rule: QualityRule | EstimatedQualityRule,
    metrics: Mapping[str, float],
    what: str,
    missing: str,
) -> Verdict:
    value = metrics.get(rule.metric)
    if value is None or not math.isfinite(value):
        return Verdict.unknown(f"{missing} {rule.metric!r} for this window")
    direction = rule.breach_direction
    breach = value < rule.threshold if direction == "below" else value > rule.threshold
    relation = (
        ("below" if value < rule.threshold else "not below")
        if direction == "below"
        else ("above" if value > rule.threshold else "not above")
    )
    evidence = Evidence(
        value=value,
        threshold=rule.threshold,
        summary=f"{what} {rule.metric} {_fmt(value)} is {relation} {_fmt(rule.threshold)}",
        details={
            "metric": rule.metric,
            "value": value,
            "threshold": rule.threshold,
            "direction": direction,
            "source": what,
        },
    )
    return _verdict(breach, evidence)


def _estimated_quality(
    rule: EstimatedQualityRule, estimate: EstimatedPerformance | AnalysisError | None
) -> Verdict:
    if estimate is None:
        return Verdict.unknown("performance is not estimated for this window")
    if isinstance(estimate, AnalysisError):
        return Verdict.unknown(f"performance could not be estimated: {estimate.message}")
    return _quality(rule, estimate.metrics, "estimated", "no estimated")


# --- joint, attribution, change points -------------------------------------------------------


def _joint_drift(joint: JointDrift | AnalysisError | None) -> Verdict:
    if joint is None:
        return Verdict.unknown("joint drift is not evaluated for this window")
    if isinstance(joint, AnalysisError):
        return Verdict.unknown(f"joint drift could not be evaluated: {joint.message}")
    ran = [m for m in joint.methods if math.isfinite(m.result.statistic)]
    if not ran:
        return Verdict.unknown("no joint drift method had enough rows")
    flagged = joint.flagged
    summary = (
        f"joint drift found by {', '.join(flagged)}" if flagged else "no joint drift found"
    ) + f" ({len(ran)} methods, {joint.rows_current} rows)"
    evidence = Evidence(
        value=float(len(flagged)),
        threshold=1.0,
        summary=summary,
        details={
            "methods": [
                {
                    "method": m.method,
                    "statistic": _json_float(m.result.statistic),
                    "p_value": _json_float(m.result.p_value),
                    "threshold": _json_float(m.result.threshold),
                    "drift": m.drift,
                }
                for m in joint.methods
            ],
            "rows_reference": joint.rows_reference,
            "rows_current": joint.rows_current,
        },
    )
    return _verdict(joint.drift, evidence)


def _attribution_drift(attribution: AttributionDrift | AnalysisError | None) -> Verdict:
    if attribution is None:
        return Verdict.unknown("attribution drift is not evaluated for this window")
    if isinstance(attribution, AnalysisError):
        return Verdict.unknown(f"attribution drift could not be evaluated: {attribution.message}")
    report = attribution.report
    drifted = report.drifted
    parts = [f"{len(drifted)} feature attributions drifted"]
    if drifted:
        top = drifted[0]
        parts.append(f"top: {top.name} ({top.relative_change:+.0%} mean |SHAP|)")
    if report.share_drift:
        parts.append(f"importance shares moved by {_fmt(report.share_distance)}")
    evidence = Evidence(
        value=float(len(drifted)),
        threshold=None,
        summary="; ".join(parts),
        details={
            "source": attribution.source,
            "share_distance": _json_float(report.share_distance),
            "share_drift": report.share_drift,
            "drifted": [f.to_dict() for f in drifted],
        },
    )
    return _verdict(attribution.drift, evidence)


def _change_point(rule: ChangePointRule, result: WindowResult) -> Verdict:
    detection = result.change_detection
    if detection is None:
        return Verdict.unknown("change detection is not run for this window")
    streams = {name: s for name, s in detection.streams.items() if rule.stream in (None, name)}
    if not streams or not any(s.points for s in streams.values()):
        return Verdict.unknown(f"no points in the {rule.stream or 'change-detection'} stream")
    first = {n: c for n, c in detection.first_changes().items() if n in streams}
    detected = any(s.detected for s in streams.values())
    parts = [
        f"{name}: first change at point {point.index}, {total} in all"
        for name, (point, total) in sorted(first.items())
    ]
    evidence = Evidence(
        value=float(sum(total for _, total in first.values())),
        threshold=None,
        summary="; ".join(parts) if parts else "no change point",
        details={
            "streams": {
                name: {
                    "detected": s.detected,
                    "points": s.points,
                    "detectors": sorted(n for n, d in s.detectors.items() if d.detected),
                    "first_change": None
                    if name not in first
                    else {"index": first[name][0].index, "event_time": first[name][0].event_time},
                }
                for name, s in sorted(streams.items())
            }
        },
    )
    return _verdict(detected, evidence)


__all__ = [
    "ESTIMATED_METRICS",
    "QUALITY_METRICS",
    "AttributionDriftRule",
    "ChangePointRule",
    "DataQualityRule",
    "Direction",
    "DriftShareRule",
    "EstimatedQualityRule",
    "EventTypeName",
    "Evidence",
    "FeatureDriftRule",
    "JointDriftRule",
    "PredictionDriftRule",
    "QualityRule",
    "Rule",
    "RulesConfig",
    "Severity",
    "Verdict",
    "VerdictStatus",
    "default_rules",
    "evaluate_rule",
    "load_rules",
    "parse_rule",
]
