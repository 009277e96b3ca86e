"""Alert events: what rules emit, the outbox stores and notifiers send.

:class:`AlertEvent` is one event; :func:`event_body` renders the webhook body of the
contract (``DESIGN.md``, "Webhook"); :func:`event_to_json` and :func:`event_from_json`
are the one storage mapping (the outbox payload). :func:`event_id` derives the id from
what identifies the event, so a retry or a re-evaluation after a crash sends the same id
(the receivers' idempotency key) instead of minting a new one.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, Literal, cast

import orjson


class EventType(StrEnum):
    """The ``type`` of an alert event (the contract's five values)."""

    DRIFT_DETECTED = "drift.detected"
    QUALITY_DEGRADED = "quality.degraded"
    DATA_QUALITY_FAILED = "data_quality.failed"
    RETRAIN_REQUESTED = "retrain.requested"
    ALERT_RESOLVED = "alert.resolved"


Severity = Literal["info", "warning", "critical"]
SEVERITIES: Final[tuple[Severity, ...]] = ("info", "warning", "critical")

#: The namespace of :func:`event_id`'s uuid5. Never change it: ids of events already in an
#: outbox or seen by receivers would stop matching their retries.
EVENT_NAMESPACE: Final = uuid.UUID("6f1f0c3e-5d43-5b8e-9a57-d81f7e2c4b90")

#: Version of the :func:`event_to_json` storage layout.
STORAGE_VERSION: Final = 1

_STORED_FIELDS: Final = frozenset(
    {
        "v",
        "id",
        "type",
        "model",
        "model_version",
        "window_start",
        "window_end",
        "severity",
        "rule",
        "subject",
        "incident",
        "summary",
        "details",
        "created_at",
    }
)
# numpy scalars in detector results serialize as numbers instead of failing.
_JSON_OPTIONS: Final = orjson.OPT_SERIALIZE_NUMPY


class InvalidEventError(ValueError):
    """An alert-event field or stored event is invalid; ``name`` is the field."""

    def __init__(self, name: str, allowed: str, given: object) -> None:
        self.name = name
        self.allowed = allowed
        self.given = given
        super().__init__(f"{name} must be {allowed}; got {given!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertEvent:
    """One alert event. Times are Unix seconds (UTC); ``details`` must be JSON-ready.

    ``subject`` is what the event is about within the model (a feature name), ``""`` for
    the whole model; ``incident`` identifies the firing episode the event belongs to (a
    resolve carries the incident it ends).
    """

    id: str
    type: EventType
    model: str
    model_version: str | None = None
    window_start: float
    window_end: float
    severity: Severity
    rule: str
    subject: str = ""
    incident: str
    summary: str
    # Excluded from the hash so events stay hashable although details is a dict.
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)
    created_at: float

    def __post_init__(self) -> None:
        try:
            uuid.UUID(self.id)
        except (ValueError, TypeError, AttributeError):
            raise InvalidEventError("id", "a UUID string", self.id) from None
        try:
            object.__setattr__(self, "type", EventType(self.type))
        except ValueError:
            allowed = "one of " + ", ".join(t.value for t in EventType)
            raise InvalidEventError("type", allowed, self.type) from None
        if self.severity not in SEVERITIES:
            raise InvalidEventError("severity", "one of " + ", ".join(SEVERITIES), self.severity)
        for name in ("model", "rule", "incident"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise InvalidEventError(name, "a non-empty string", value)
        if not isinstance(self.subject, str) or not isinstance(self.summary, str):
            bad = "subject" if not isinstance(self.subject, str) else "summary"
            raise InvalidEventError(bad, "a string", getattr(self, bad))
        if self.model_version is not None and not isinstance(self.model_version, str):
            raise InvalidEventError("model_version", "a string or None", self.model_version)
        for name in ("window_start", "window_end", "created_at"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidEventError(name, "Unix seconds (a finite number)", value)
            if not math.isfinite(value):
                raise InvalidEventError(name, "Unix seconds (a finite number)", value)
        if self.window_end < self.window_start:
            raise InvalidEventError(
                "window_end", f">= window_start ({self.window_start})", self.window_end
            )
        try:
            orjson.dumps(self.details, option=_JSON_OPTIONS)
        except TypeError as error:
            raise InvalidEventError("details", f"JSON-serializable ({error})", "...") from None


def event_id(
    model: str,
    rule: str,
    subject: str,
    incident: str,
    event_type: EventType | str,
    sequence: int = 0,
) -> str:
    """Returns the deterministic uuid5 (a string) of the event these fields identify.

    ``sequence`` numbers the repeats of a still-firing incident (0 for the first).
    """
    kind = EventType(event_type)
    if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 0:
        raise InvalidEventError("sequence", "an integer >= 0", sequence)
    # A JSON array is unambiguous where joining with a separator is not ("a-b","c" vs "a","b-c").
    name = orjson.dumps([model, rule, subject, incident, kind.value, sequence]).decode()
    return str(uuid.uuid5(EVENT_NAMESPACE, name))


def iso_utc(seconds: float) -> str:
    """Returns Unix ``seconds`` as ISO-8601 UTC with a ``Z`` suffix.

    Whole seconds print without a fraction (``2026-01-01T00:00:00Z``), others with
    milliseconds (``2026-01-01T00:00:00.250Z``).
    """
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    timespec = "seconds" if float(seconds).is_integer() else "milliseconds"
    return moment.replace(tzinfo=None).isoformat(timespec=timespec) + "Z"


def body_dict(event: AlertEvent) -> dict[str, Any]:
    """Returns the webhook body of ``event`` as a dict: the contract's keys first, then extras."""
    return {
        "id": event.id,
        "type": event.type.value,
        "model": event.model,
        "window": {"start": iso_utc(event.window_start), "end": iso_utc(event.window_end)},
        "severity": event.severity,
        "rule": event.rule,
        "summary": event.summary,
        "details": event.details,
        "model_version": event.model_version,
        "subject": event.subject,
        "incident": event.incident,
    }


def event_body(event: AlertEvent) -> bytes:
    """Returns the webhook body of ``event`` as JSON bytes (the same bytes on every call)."""
    return orjson.dumps(body_dict(event), option=_JSON_OPTIONS)


def event_to_json(event: AlertEvent) -> bytes:
    """Returns ``event`` as stored (the outbox payload); :func:`event_from_json` reads it back."""
    return orjson.dumps(
        {
            "v": STORAGE_VERSION,
            "id": event.id,
            "type": event.type.value,
            "model": event.model,
            "model_version": event.model_version,
            "window_start": event.window_start,
            "window_end": event.window_end,
            "severity": event.severity,
            "rule": event.rule,
            "subject": event.subject,
            "incident": event.incident,
            "summary": event.summary,
            "details": event.details,
            "created_at": event.created_at,
        },
        option=_JSON_OPTIONS,
    )


def event_from_json(data: bytes | str) -> AlertEvent:
    """Returns the :class:`AlertEvent` that :func:`event_to_json` stored as ``data``."""
    try:
        stored = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise InvalidEventError("data", "a stored event (JSON)", "<not JSON>") from None
    if not isinstance(stored, dict):
        raise InvalidEventError("data", "a JSON object", type(stored).__name__)
    if stored.get("v") != STORAGE_VERSION:
        raise InvalidEventError("v", f"storage version {STORAGE_VERSION}", stored.get("v"))
    if set(stored) != _STORED_FIELDS:
        missing = sorted(_STORED_FIELDS - set(stored))
        unknown = sorted(set(stored) - _STORED_FIELDS)
        raise InvalidEventError(
            "data", "exactly the stored event fields", {"missing": missing, "unknown": unknown}
        )
    if not isinstance(stored["details"], dict):
        raise InvalidEventError("details", "a JSON object", stored["details"])
    return AlertEvent(
        id=stored["id"],
        type=stored["type"],
        model=stored["model"],
        model_version=stored["model_version"],
        window_start=stored["window_start"],
        window_end=stored["window_end"],
        severity=cast(Severity, stored["severity"]),
        rule=stored["rule"],
        subject=stored["subject"],
        incident=stored["incident"],
        summary=stored["summary"],
        details=stored["details"],
        created_at=stored["created_at"],
    )
