"""Alertmanager ``POST /api/v2/alerts`` bodies: labels, annotations and the alert's lifetime."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from alerts.alertmanager import (
    AlertmanagerPayloadError,
    alertmanager_alert,
    alertmanager_body,
    alertname,
    render_alertmanager_request,
)
from alerts.events import EventType
from alerts.targets import AlertmanagerTarget
from tests.alerts.test_events import NOW, make_event


def test_firing_alert() -> None:
    event = make_event()
    alert = alertmanager_alert(
        event, now=NOW + 10, horizon_s=180, generator_url="http://driftline:8000/models/credit-risk"
    )
    assert alert == {
        "labels": {
            "alertname": "driftline_feature_drift",
            "model": "credit-risk",
            "rule": "feature-drift",
            "severity": "critical",
            "feature": "income",
        },
        "annotations": {
            "summary": event.summary,
            "description": (
                "drift.detected for model credit-risk version 7, feature income: rule "
                "feature-drift, window 2025-12-31T23:00:00Z to 2026-01-01T00:00:00Z "
                f"(event {event.id}, incident inc-1)"
            ),
        },
        "startsAt": "2026-01-01T00:00:05Z",  # created_at
        "endsAt": "2026-01-01T00:03:10Z",  # now + horizon
        "generatorURL": "http://driftline:8000/models/credit-risk",
    }


def test_model_wide_alert_has_no_feature_label_nor_generator_url() -> None:
    alert = alertmanager_alert(make_event(subject="", model_version=None), now=NOW, horizon_s=60)
    assert "feature" not in alert["labels"]
    assert "generatorURL" not in alert
    assert "version" not in alert["annotations"]["description"]


def test_resolved_alert_ends_at_resolve_time_with_the_same_labels() -> None:
    firing = make_event()
    resolved = make_event(
        type=EventType.ALERT_RESOLVED,
        created_at=NOW + 900,
        details={"started_at": NOW + 5},
    )
    fired = alertmanager_alert(firing, now=NOW + 10, horizon_s=180)
    ended = alertmanager_alert(resolved, now=NOW + 1000, horizon_s=180)
    assert ended["labels"] == fired["labels"]
    assert ended["endsAt"] == "2026-01-01T00:15:00Z"  # created_at of the resolve, not now
    assert ended["startsAt"] == "2026-01-01T00:00:05Z"


def test_starts_at_never_after_ends_at() -> None:
    resolved = make_event(type="alert.resolved", created_at=NOW, details={"started_at": NOW + 50})
    alert = alertmanager_alert(resolved, now=NOW, horizon_s=60)
    assert alert["startsAt"] == alert["endsAt"] == "2026-01-01T00:00:00Z"


def test_alertname_is_a_valid_prometheus_name() -> None:
    assert alertname("quality.accuracy") == "driftline_quality_accuracy"
    assert alertname("feature_drift.income-v2") == "driftline_feature_drift_income_v2"


@pytest.mark.parametrize("horizon", [0.0, -1.0, float("inf"), float("nan")])
def test_horizon_must_be_positive_and_finite(horizon: float) -> None:
    with pytest.raises(AlertmanagerPayloadError, match="horizon_s"):
        alertmanager_alert(make_event(), now=NOW, horizon_s=horizon)


def test_body_is_a_json_array_in_event_order() -> None:
    events = [make_event(subject="income"), make_event(subject="age")]
    body = orjson.loads(alertmanager_body(events, now=NOW, horizon_s=60))
    assert isinstance(body, list)
    assert [a["labels"]["feature"] for a in body] == ["income", "age"]


def test_request_uses_three_resend_intervals_and_the_v2_path() -> None:
    target = AlertmanagerTarget(
        name="am",
        url="http://127.0.0.1:9093/",
        resend_interval_s=120,
        headers_env={"X-Scope-OrgID": "AM_TENANT"},
    )
    request = render_alertmanager_request(
        [make_event()], target, now=NOW, headers={"X-Scope-OrgID": "team-ml"}
    )
    assert request.method == "POST"
    assert request.url == "http://127.0.0.1:9093/api/v2/alerts"
    assert request.header("Content-Type") == "application/json"
    assert request.header("X-Scope-OrgID") == "team-ml"
    (alert,) = orjson.loads(request.body)
    assert alert["endsAt"] == "2026-01-01T00:06:00Z"  # NOW + 3 * 120 s


def test_alertmanager_target_validation() -> None:
    with pytest.raises(ValidationError, match="resend_interval_s"):
        AlertmanagerTarget(name="am", url="http://am", resend_interval_s=0)
    with pytest.raises(ValidationError, match="secret_env"):
        AlertmanagerTarget.model_validate({"name": "am", "url": "http://am", "secret_env": "X"})
