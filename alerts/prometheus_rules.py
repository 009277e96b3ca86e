"""Prometheus alerting rules equivalent to driftline's alert rules, over its exported gauges.

For teams that route alerts through Prometheus and Alertmanager instead of
driftline's webhooks. :func:`export_rules` writes one rule group per model:

==================== ================================================================
rule kind            expression
==================== ================================================================
feature_drift        ``driftline_feature_drift_detected{model, feature} == 1`` (one
                     alert per feature); ``max by (model) (...) == 1`` without
                     ``per_feature``; ``sum by (model) (...) >= min_features``
drift_share          ``driftline_dataset_drift_share{model} >= threshold`` (the
                     model's ``drift_share`` setting when the rule has none)
prediction_drift     ``driftline_prediction_drift_score{model} >= threshold``: only
                     with a ``threshold`` (the test's decision is not exported)
quality              ``driftline_model_quality{model, metric} < threshold``
                     (``>`` for ``direction: above``)
estimated_quality    the same on ``driftline_model_quality_estimated``
joint_drift          ``max by (model) (driftline_multivariate_drift_detected{model})
                     == 1`` (exported only for models that configure joint drift)
==================== ================================================================

``data_quality``, ``attribution_drift`` and ``change_point`` rules have no
metric equivalent (no gauge carries their verdict; the attribution gauge
misses the importance-share test) and are listed in a comment at the top,
as are disabled rules.

Timing. The gauges hold the latest evaluated window, so a breach is visible
from one window's evaluation to the next. A rule fires on its
``fire_after``-th consecutive breaching window, which is published
``(fire_after - 1)`` windows after the first, hence ``for: (fire_after - 1) x
window``; ``fire_after x window`` would need the condition still true when
the window after the last one is published, i.e. one more breaching window
than the rule asks for. Resolution after ``resolve_after`` clean windows is
``keep_firing_for: (resolve_after - 1) x window`` (Prometheus 2.42+).

Differences that remain: Prometheus samples the gauges instead of counting
windows (a window published late stretches its value), and a missing series
(service down, feature removed) resolves a Prometheus alert where driftline
keeps the incident open. ``driftline_window_end_timestamp_seconds`` is not
used as a staleness guard for that reason: it would resolve on missing data.
Repeat intervals are Alertmanager's ``repeat_interval``, not a rule setting.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from alerts.rules import (
    DriftShareRule,
    EstimatedQualityRule,
    FeatureDriftRule,
    JointDriftRule,
    PredictionDriftRule,
    QualityRule,
    Rule,
)

#: ``DriftSettings.drift_share``'s default: a drift-share rule without a threshold uses it
#: unless the model's own setting is passed.
DEFAULT_DRIFT_SHARE = 0.5

_NO_EQUIVALENT = {
    "data_quality": "no metric carries the data-quality verdict",
    "attribution_drift": "driftline_attribution_drift_detected misses the importance-share test",
    "change_point": "no metric carries change-point detections",
}


def _label(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _selector(name: str, labels: Mapping[str, str]) -> str:
    inner = ",".join(f"{label}={_label(value)}" for label, value in labels.items())
    return f"{name}{{{inner}}}"


def _number(value: float) -> str:
    return repr(float(value))


def duration(seconds: float) -> str:
    """Return ``seconds`` as a Prometheus duration (``1h30m``, ``90s``, ``0s``), to the ms."""
    ms = round(seconds * 1000)
    if ms < 0:
        raise ValueError(f"duration: must be >= 0; got {seconds}")
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    if ms:
        parts.append(f"{ms}ms")
    return "".join(parts) or "0s"


def _alert_name(rule: Rule) -> str:
    words = re.split(r"[^A-Za-z0-9]+", rule.name)
    return "Driftline" + "".join(w[:1].upper() + w[1:] for w in words if w)


def rule_expression(rule: Rule, model: str, drift_share: float = DEFAULT_DRIFT_SHARE) -> str | None:
    """Return the PromQL expression that is true while ``rule`` breaches, None without one."""
    match rule:
        case FeatureDriftRule():
            labels = {"model": model} | ({"feature": rule.feature} if rule.feature else {})
            detected = _selector("driftline_feature_drift_detected", labels)
            if rule.min_features is not None:
                return f"sum by (model) ({detected}) >= {rule.min_features}"
            if rule.split:
                return f"{detected} == 1"
            return f"max by (model) ({detected}) == 1"
        case DriftShareRule():
            threshold = drift_share if rule.threshold is None else rule.threshold
            share = _selector("driftline_dataset_drift_share", {"model": model})
            return f"{share} >= {_number(threshold)}"
        case PredictionDriftRule():
            if rule.threshold is None:
                return None
            score = _selector("driftline_prediction_drift_score", {"model": model})
            return f"{score} >= {_number(rule.threshold)}"
        case QualityRule() | EstimatedQualityRule():
            metric = (
                "driftline_model_quality"
                if isinstance(rule, QualityRule)
                else "driftline_model_quality_estimated"
            )
            value = _selector(metric, {"model": model, "metric": rule.metric})
            operator = "<" if rule.breach_direction == "below" else ">"
            return f"{value} {operator} {_number(rule.threshold)}"
        case JointDriftRule():
            detected = _selector("driftline_multivariate_drift_detected", {"model": model})
            return f"max by (model) ({detected}) == 1"
        case _:
            return None


def _summary(rule: Rule, model: str) -> str:
    match rule:
        case FeatureDriftRule() if rule.min_features is not None:
            return f"{{{{ $value }}}} features of model {model} drifted"
        case FeatureDriftRule() if rule.split:
            return f"Feature {{{{ $labels.feature }}}} of model {model} drifted"
        case FeatureDriftRule():
            return f"Features of model {model} drifted"
        case DriftShareRule():
            return f"Dataset drift share of model {model} is {{{{ $value }}}}"
        case PredictionDriftRule():
            return f"Prediction drift score of model {model} is {{{{ $value }}}}"
        case QualityRule() | EstimatedQualityRule():
            what = "Measured" if isinstance(rule, QualityRule) else "Estimated"
            return (
                f"{what} {rule.metric} of model {model} is {{{{ $value }}}} "
                f"({rule.breach_direction} {_number(rule.threshold)})"
            )
        case _:
            return f"Joint drift in model {model}"


def _no_equivalent(rule: Rule) -> str:
    if not rule.enabled:
        return "disabled"
    if isinstance(rule, PredictionDriftRule):
        return "without threshold it uses the drift test's decision, which no metric carries"
    return _NO_EQUIVALENT.get(rule.kind, "no metric equivalent")


def export_rules(
    model_rules: Mapping[str, Sequence[Rule]],
    window_seconds: Mapping[str, float],
    *,
    drift_share: Mapping[str, float] | None = None,
) -> str:
    """Return a Prometheus rule file (YAML) equivalent to each model's rules.

    ``window_seconds`` is each model's window size; ``drift_share`` each
    model's ``drift_share`` setting (default :data:`DEFAULT_DRIFT_SHARE`).
    Rules without an equivalent are listed in comments at the top (module
    docstring). KeyError when a model has no window size.
    """
    skipped: list[str] = []
    groups: list[dict[str, Any]] = []
    for model in sorted(model_rules):
        window = float(window_seconds[model])
        if not window > 0:
            raise ValueError(f"window_seconds[{model!r}]: must be > 0; got {window}")
        share = (drift_share or {}).get(model, DEFAULT_DRIFT_SHARE)
        alerts: list[dict[str, Any]] = []
        for rule in model_rules[model]:
            expression = rule_expression(rule, model, share) if rule.enabled else None
            if expression is None:
                reason = _no_equivalent(rule)
                skipped.append(f"model {model!r}, rule {rule.name!r} ({rule.kind}): {reason}")
                continue
            alert: dict[str, Any] = {
                "alert": _alert_name(rule),
                "expr": expression,
                "for": duration((rule.fire_after - 1) * window),
            }
            if rule.resolve_after > 1:
                alert["keep_firing_for"] = duration((rule.resolve_after - 1) * window)
            alert["labels"] = {"severity": rule.severity, "model": model, "rule": rule.name}
            alert["annotations"] = {"summary": _summary(rule, model)}
            alerts.append(alert)
        if alerts:
            groups.append({"name": f"driftline:{model}", "rules": alerts})
    header = ["# Prometheus alerting rules generated by driftline from its alert rules."]
    if skipped:
        header.append("# Rules without a metric equivalent (not exported):")
        header.extend("#   " + " ".join(line.splitlines()) for line in skipped)
    body = yaml.safe_dump({"groups": groups}, sort_keys=False, allow_unicode=True, width=1000)
    return "\n".join(header) + "\n" + body


__all__ = ["DEFAULT_DRIFT_SHARE", "duration", "export_rules", "rule_expression"]
