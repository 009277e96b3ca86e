"""Alert events: deterministic ids, the contract's webhook body, the storage round trip."""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import orjson
import pytest

from alerts.events import (
    EVENT_NAMESPACE,
    AlertEvent,
    EventType,
    InvalidEventError,
    event_body,
    event_from_json,
    event_id,
    event_to_json,
    iso_utc,
)

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def make_event(**overrides: Any) -> AlertEvent:
    fields: dict[str, Any] = {
        "id": event_id("credit-risk", "feature-drift", "income", "inc-1", "drift.detected"),
        "type": EventType.DRIFT_DETECTED,
        "model": "credit-risk",
        "model_version": "7",
        "window_start": NOW - 3600,
        "window_end": NOW,
        "severity": "critical",
        "rule": "feature-drift",
        "subject": "income",
        "incident": "inc-1",
        "summary": "6 of 20 features drifted; top: income (ks=0.31)",
        "details": {"drift_share": 0.3, "drifted": [{"name": "income", "statistic": 0.31}]},
        "created_at": NOW + 5,
    }
    fields.update(overrides)
    return AlertEvent(**fields)


def test_event_id_is_a_stable_uuid5_of_its_fields() -> None:
    first = event_id("m", "r", "f", "i", EventType.DRIFT_DETECTED)
    assert first == event_id("m", "r", "f", "i", "drift.detected")
    parsed = uuid.UUID(first)
    assert parsed.version == 5
    expected_name = orjson.dumps(["m", "r", "f", "i", "drift.detected", 0]).decode()
    assert parsed == uuid.uuid5(EVENT_NAMESPACE, expected_name)
    # Pinned: changing the namespace or the name layout would orphan ids already sent.
    assert first == str(
        uuid.uuid5(uuid.UUID("6f1f0c3e-5d43-5b8e-9a57-d81f7e2c4b90"), expected_name)
    )


@pytest.mark.parametrize(
    "other",
    [
        ("m2", "r", "f", "i", "drift.detected", 0),
        ("m", "r2", "f", "i", "drift.detected", 0),
        ("m", "r", "", "i", "drift.detected", 0),
        ("m", "r", "f", "i2", "drift.detected", 0),
        ("m", "r", "f", "i", "alert.resolved", 0),
        ("m", "r", "f", "i", "drift.detected", 1),
    ],
)
def test_event_id_differs_when_any_field_differs(other: tuple[Any, ...]) -> None:
    assert event_id(*other) != event_id("m", "r", "f", "i", "drift.detected", 0)


def test_event_id_has_no_separator_collisions() -> None:
    assert event_id("a-b", "c", "", "i", "drift.detected") != event_id(
        "a", "b-c", "", "i", "drift.detected"
    )


def test_event_id_rejects_unknown_type_and_negative_sequence() -> None:
    with pytest.raises(ValueError, match=r"drift\.exploded"):
        event_id("m", "r", "", "i", "drift.exploded")
    with pytest.raises(InvalidEventError, match="sequence"):
        event_id("m", "r", "", "i", "drift.detected", -1)


def test_event_types_are_the_contracts_five() -> None:
    assert {t.value for t in EventType} == {
        "drift.detected",
        "quality.degraded",
        "data_quality.failed",
        "retrain.requested",
        "alert.resolved",
    }


def test_body_has_the_contract_keys_first_in_order_then_extras() -> None:
    event = make_event()
    raw = event_body(event)
    body = orjson.loads(raw)
    assert list(body) == [
        "id",
        "type",
        "model",
        "window",
        "severity",
        "rule",
        "summary",
        "details",
        "model_version",
        "subject",
        "incident",
    ]
    assert body["id"] == event.id
    assert body["type"] == "drift.detected"
    assert body["window"] == {"start": "2025-12-31T23:00:00Z", "end": "2026-01-01T00:00:00Z"}
    assert body["severity"] == "critical"
    assert body["details"] == {
        "drift_share": 0.3,
        "drifted": [{"name": "income", "statistic": 0.31}],
    }
    assert (body["model_version"], body["subject"], body["incident"]) == ("7", "income", "inc-1")
    assert event_body(event) == raw  # the same bytes for a retry


def test_iso_utc_formats() -> None:
    assert iso_utc(0) == "1970-01-01T00:00:00Z"
    assert iso_utc(NOW + 0.25) == "2026-01-01T00:00:00.250Z"


def test_storage_round_trip() -> None:
    event = make_event(model_version=None, subject="", window_start=NOW - 1.5)
    assert event_from_json(event_to_json(event)) == event
    assert event_from_json(event_to_json(event).decode()) == event


def test_numpy_scalars_in_details_serialize() -> None:
    event = make_event(details={"statistic": np.float64(0.31), "count": np.int64(3)})
    assert orjson.loads(event_body(event))["details"] == {"statistic": 0.31, "count": 3}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "not-a-uuid"),
        ("type", "drift.exploded"),
        ("severity", "fatal"),
        ("model", ""),
        ("rule", ""),
        ("incident", ""),
        ("window_start", float("nan")),
        ("window_end", 0.0),  # before window_start
        ("created_at", "yesterday"),
        ("details", {"when": object()}),
        ("model_version", 7),
    ],
)
def test_invalid_fields_are_refused_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(InvalidEventError) as raised:
        make_event(**{field: value})
    assert raised.value.name == field


def test_type_given_as_string_becomes_the_enum() -> None:
    assert make_event(type="alert.resolved").type is EventType.ALERT_RESOLVED


def test_events_are_hashable_despite_details() -> None:
    assert len({make_event(), make_event()}) == 1


@pytest.mark.parametrize(
    "stored",
    [
        b"not json",
        b"[]",
        b'{"v": 2}',
    ],
)
def test_event_from_json_refuses_what_it_did_not_write(stored: bytes) -> None:
    with pytest.raises(InvalidEventError):
        event_from_json(stored)


def test_event_from_json_names_missing_and_unknown_fields() -> None:
    stored = orjson.loads(event_to_json(make_event()))
    del stored["incident"]
    stored["colour"] = "red"
    with pytest.raises(InvalidEventError, match=r"incident.*colour|colour.*incident"):
        event_from_json(orjson.dumps(stored))
