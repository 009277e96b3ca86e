"""Alertmanager notifier payloads: alert events as ``POST /api/v2/alerts`` bodies.

Each event becomes one alert with labels ``alertname`` (``driftline_<rule>``, the rule
name with every character outside ``[A-Za-z0-9_]`` replaced by ``_``, as Prometheus alert
names are), ``model``, ``rule``, ``severity`` and, when the event has a subject,
``feature``. Alertmanager identifies an alert by its labels, so the ``alert.resolved``
event that ends an alert must carry the same rule, subject and severity as the events
that fired it.

A firing alert says it ends ``horizon_s`` after ``now``: Alertmanager resolves it by
itself unless it is re-sent before then (Prometheus does the same with its own alerts;
:class:`~alerts.targets.AlertmanagerTarget` sets the horizon to three re-send intervals).
A resolved alert ends at the resolve event's ``created_at``. ``startsAt`` is
``details["started_at"]`` (Unix seconds) when the event has it, otherwise the event's
``created_at``; Alertmanager keeps the earliest start of an alert it already has.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson

from alerts.events import AlertEvent, EventType, iso_utc
from alerts.formats import JSON, HttpRequest
from alerts.targets import AlertmanagerTarget

ALERTS_PATH: Final = "/api/v2/alerts"
ALERTNAME_PREFIX: Final = "driftline_"
#: Re-send intervals a firing alert outlives before Alertmanager resolves it by itself.
HORIZON_RESENDS: Final = 3
_NOT_NAME: Final = re.compile(r"[^A-Za-z0-9_]")


class AlertmanagerPayloadError(ValueError):
    """An Alertmanager payload parameter is invalid; ``name`` is the parameter."""

    def __init__(self, name: str, allowed: str, given: object) -> None:
        self.name = name
        super().__init__(f"{name} must be {allowed}; got {given!r}")


def alertname(rule: str) -> str:
    """Returns the ``alertname`` of ``rule``: ``driftline_<rule>``, ``[^A-Za-z0-9_]`` as ``_``."""
    return ALERTNAME_PREFIX + _NOT_NAME.sub("_", rule)


def alert_labels(event: AlertEvent) -> dict[str, str]:
    """Returns the labels that identify ``event``'s alert in Alertmanager."""
    labels = {
        "alertname": alertname(event.rule),
        "model": event.model,
        "rule": event.rule,
        "severity": event.severity,
    }
    if event.subject:
        labels["feature"] = event.subject
    return labels


def _description(event: AlertEvent) -> str:
    version = f" version {event.model_version}" if event.model_version else ""
    about = f", feature {event.subject}" if event.subject else ""
    return (
        f"{event.type.value} for model {event.model}{version}{about}: rule {event.rule}, "
        f"window {iso_utc(event.window_start)} to {iso_utc(event.window_end)} "
        f"(event {event.id}, incident {event.incident})"
    )


def _started_at(event: AlertEvent) -> float:
    started = event.details.get("started_at")
    if (
        isinstance(started, int | float)
        and not isinstance(started, bool)
        and math.isfinite(started)
    ):
        return float(started)
    return event.created_at


def alertmanager_alert(
    event: AlertEvent, *, now: float, horizon_s: float, generator_url: str | None = None
) -> dict[str, Any]:
    """Returns the postable alert of ``event``: labels, annotations, ``startsAt``, ``endsAt``."""
    if not (math.isfinite(horizon_s) and horizon_s > 0):
        raise AlertmanagerPayloadError("horizon_s", "a finite number of seconds > 0", horizon_s)
    resolved = event.type is EventType.ALERT_RESOLVED
    starts = _started_at(event)
    ends = event.created_at if resolved else now + horizon_s
    alert: dict[str, Any] = {
        "labels": alert_labels(event),
        "annotations": {"summary": event.summary, "description": _description(event)},
        "startsAt": iso_utc(min(starts, ends)),
        "endsAt": iso_utc(ends),
    }
    if generator_url is not None:
        alert["generatorURL"] = generator_url
    return alert


def alertmanager_body(
    events: Sequence[AlertEvent], *, now: float, horizon_s: float, generator_url: str | None = None
) -> bytes:
    """Returns the JSON array ``POST /api/v2/alerts`` takes, one alert per event."""
    alerts = [
        alertmanager_alert(event, now=now, horizon_s=horizon_s, generator_url=generator_url)
        for event in events
    ]
    return orjson.dumps(alerts)


def render_alertmanager_request(
    events: Sequence[AlertEvent],
    target: AlertmanagerTarget,
    *,
    now: float,
    headers: Mapping[str, str] | None = None,
    generator_url: str | None = None,
) -> HttpRequest:
    """Returns the request posting ``events`` to ``target`` (firing ones last 3 re-sends)."""
    body = alertmanager_body(
        events,
        now=now,
        horizon_s=HORIZON_RESENDS * target.resend_interval_s,
        generator_url=generator_url,
    )
    merged = {"Content-Type": JSON}
    merged.update({k: v for k, v in (headers or {}).items() if k.lower() != "content-type"})
    return HttpRequest(
        method="POST", url=target.url + ALERTS_PATH, headers=tuple(merged.items()), body=body
    )
