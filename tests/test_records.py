"""Tests of monitor.records: the prediction and label record contract."""

from __future__ import annotations

import dataclasses
import doctest
import json
import math
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import records
from monitor.records import (
    DEFAULT_MAX_BYTES,
    InvalidReason,
    InvalidRecord,
    LabelRecord,
    PredictionRecord,
    decode_label,
    decode_prediction,
    route,
)

KAFKA_TS_MS = 1_795_338_900_000  # 2026-11-22T09:15:00Z
CONTRACT_EXAMPLE = b"""{
  "model": "credit-risk",
  "model_version": "7",
  "request_id": "2f1c0f6e-0000",
  "timestamp": "2026-11-22T09:15:00.123Z",
  "features": {"age": 42, "income": 51000.0, "region": "EU", "has_card": true},
  "prediction": {"label": "approve", "score": 0.83},
  "explanations": {"age": 0.12, "income": -0.40}
}"""


def doc(**fields: Any) -> dict[str, Any]:
    """A valid minimal prediction document; a field given as ``...`` is removed."""
    base: dict[str, Any] = {
        "model": "credit-risk",
        "timestamp": "2026-11-22T09:15:00Z",
        "features": {"age": 42.0},
        "prediction": 0.5,
    }
    base.update(fields)
    return {key: value for key, value in base.items() if value is not ...}


def enc(**fields: Any) -> bytes:
    """The document :func:`doc` builds, encoded by orjson."""
    return orjson.dumps(doc(**fields))


def pred(fallback_ms: float | None = KAFKA_TS_MS, **fields: Any) -> Any:
    """Decode the document :func:`doc` builds, written by Python's json (NaN allowed)."""
    return decode_prediction(json.dumps(doc(**fields)).encode(), fallback_ms)


def label(fallback_ms: float | None = KAFKA_TS_MS, **fields: Any) -> Any:
    """Decode a label document: a valid one updated with ``fields`` (``...`` removes)."""
    base: dict[str, Any] = {"model": "credit-risk", "request_id": "r-1", "label": "approve"}
    base.update(fields)
    body = {key: value for key, value in base.items() if value is not ...}
    return decode_label(json.dumps(body).encode(), fallback_ms)


def valid(result: object) -> PredictionRecord:
    assert isinstance(result, PredictionRecord), result
    return result


def invalid(result: object, reason: str, field: str | None) -> InvalidRecord:
    assert isinstance(result, InvalidRecord), result
    assert (result.reason, result.field) == (reason, field), result
    return result


# --- valid records -------------------------------------------------------------------------


def test_contract_example_decodes_completely() -> None:
    rec = valid(decode_prediction(CONTRACT_EXAMPLE))
    assert rec == PredictionRecord(
        model="credit-risk",
        model_version="7",
        request_id="2f1c0f6e-0000",
        event_time=1_795_338_900.123,
        features={"age": 42.0, "income": 51000.0, "region": "EU", "has_card": True},
        prediction={"label": "approve", "score": 0.83},
        explanations={"age": 0.12, "income": -0.40},
    )
    assert type(rec.features["age"]) is float
    assert type(rec.features["has_card"]) is bool


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        ({"label": "approve", "score": 0.83}, {"label": "approve", "score": 0.83}),
        ({"label": "approve"}, {"label": "approve", "score": None}),
        ({"score": 0.83}, {"label": None, "score": 0.83}),
        ({"label": 2, "score": 1}, {"label": 2, "score": 1.0}),
        ({"label": True, "score": None, "probabilities": [0.1]}, {"label": True, "score": None}),
        (0.83, {"label": None, "score": 0.83}),
        (-1e300, {"label": None, "score": -1e300}),
        (3, {"label": 3, "score": 3.0}),
        ("approve", {"label": "approve", "score": None}),
        ("", {"label": "", "score": None}),
        (False, {"label": False, "score": None}),
    ],
)
def test_every_prediction_shape_is_normalised(prediction: Any, expected: dict[str, Any]) -> None:
    rec = valid(pred(prediction=prediction))
    assert rec.prediction == expected
    assert set(rec.prediction) == {"label", "score"}
    assert rec.prediction["score"] is None or type(rec.prediction["score"]) is float
    assert type(rec.prediction["label"]) is type(expected["label"])


def test_features_null_nan_and_infinity_are_missing_other_scalars_kept() -> None:
    raw = (
        b'{"model": "m", "timestamp": 0, "prediction": 1.0, "features": {'
        b'"a": null, "b": NaN, "c": Infinity, "d": -Infinity, "e": 1e400, "f": "NaN",'
        b' "g": 0, "h": -7, "i": true, "j": false, "k": 2.5, "l": ""}}'
    )
    rec = valid(decode_prediction(raw))
    assert rec.features == {
        "a": None,
        "b": None,
        "c": None,
        "d": None,
        "e": None,
        "f": "NaN",
        "g": 0.0,
        "h": -7.0,
        "i": True,
        "j": False,
        "k": 2.5,
        "l": "",
    }
    assert [type(rec.features[k]) for k in "ghij"] == [float, float, bool, bool]


def test_integers_beyond_64_bits_become_floats_in_both_parsers() -> None:
    big = 2**70
    text = json.dumps(doc(features={"x": big, "y": 2**64 - 1}, prediction=big))
    for raw in (text.encode(), text.replace("}}", ', "z": NaN}}', 1).encode()):
        rec = valid(decode_prediction(raw))
        assert rec.features["x"] == float(big)
        assert rec.features["y"] == float(2**64 - 1)
        assert rec.prediction["score"] == float(big)


def test_empty_features_are_valid() -> None:
    assert valid(pred(features={})).features == {}


def test_explanations_optional_ints_to_floats_missing_dropped() -> None:
    assert valid(pred()).explanations is None
    assert valid(pred(explanations=None)).explanations is None
    rec = valid(pred(explanations={"a": 1, "b": -0.5, "c": None, "d": math.nan, "e": math.inf}))
    assert rec.explanations == {"a": 1.0, "b": -0.5}
    assert type(rec.explanations["a"]) is float


def test_identifiers_accept_integers_as_strings() -> None:
    rec = valid(pred(model_version=7, request_id=123456789012))
    assert (rec.model_version, rec.request_id) == ("7", "123456789012")
    rec = valid(pred(model_version=None, request_id=None))
    assert (rec.model_version, rec.request_id) == (None, None)


def test_unknown_top_level_keys_are_ignored() -> None:
    rec = valid(pred(tenant="acme", features={"x": 1}, extra={"nested": [1, {"a": []}]}))
    assert rec.features == {"x": 1.0}
    assert not hasattr(rec, "tenant")


def test_unicode_everywhere() -> None:
    body = doc(
        model="модель-信用",
        request_id="ид-😀",
        features={"возраст": 42, "région": "Île-de-France", "emoji😀": "🚀", "": "empty key"},
        prediction={"label": "одобрить"},
    )
    for raw in (orjson.dumps(body), json.dumps(body, ensure_ascii=True).encode()):
        rec = valid(decode_prediction(raw))
        assert rec.model == "модель-信用"
        assert rec.request_id == "ид-😀"
        assert rec.features == {
            "возраст": 42.0,
            "région": "Île-de-France",
            "emoji😀": "🚀",
            "": "empty key",
        }
        assert rec.prediction["label"] == "одобрить"


def test_bytes_like_and_str_inputs() -> None:
    raw = enc()
    expected = valid(decode_prediction(raw))
    for same in (bytearray(raw), memoryview(raw), raw.decode()):
        assert decode_prediction(same) == expected


def test_records_are_frozen_and_slotted() -> None:
    rec = valid(pred())
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.model = "other"  # type: ignore[misc]
    for cls in (PredictionRecord, LabelRecord, InvalidRecord):
        assert "__slots__" in vars(cls)
        assert not hasattr(cls(**_dummy_fields(cls)), "__dict__")


def _dummy_fields(cls: type) -> dict[str, Any]:
    return {f.name: None for f in dataclasses.fields(cls)}


# --- timestamps ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("2026-11-22T09:15:00Z", 1_795_338_900.0),
        ("2026-11-22T09:15:00.123Z", 1_795_338_900.123),
        ("2026-11-22T09:15:00.123456789Z", 1_795_338_900.123456),  # ns truncated to us
        ("2026-11-22T11:15:00+02:00", 1_795_338_900.0),
        ("2026-11-22T04:45:00-0430", 1_795_338_900.0),
        ("2026-11-22 09:15:00+00:00", 1_795_338_900.0),
        ("20261122T091500Z", 1_795_338_900.0),
        ("1970-01-01T00:00:00Z", 0.0),
        (1_795_338_900_123, 1_795_338_900.123),
        (1_795_338_900_123.5, 1_795_338_900.1235),
        (0, 0.0),
    ],
)
def test_timestamp_formats(timestamp: Any, expected: float) -> None:
    rec = valid(pred(timestamp=timestamp, fallback_ms=None))
    assert rec.event_time == pytest.approx(expected, abs=1e-6)


def test_absent_or_null_timestamp_uses_the_fallback() -> None:
    assert valid(pred(timestamp=...)).event_time == KAFKA_TS_MS / 1000
    assert valid(pred(timestamp=None, fallback_ms=1500)).event_time == 1.5
    assert valid(pred(timestamp=..., fallback_ms=0)).event_time == 0.0


@pytest.mark.parametrize("fallback_ms", [None, -1, math.nan])
def test_no_timestamp_and_no_fallback_is_missing(fallback_ms: float | None) -> None:
    invalid(pred(timestamp=..., fallback_ms=fallback_ms), "missing_field", "timestamp")


def test_a_bad_timestamp_is_not_replaced_by_the_fallback() -> None:
    invalid(pred(timestamp="yesterday"), "bad_timestamp", "timestamp")


def test_out_of_range_fallback_is_bad_timestamp() -> None:
    invalid(pred(timestamp=..., fallback_ms=1e20), "bad_timestamp", "timestamp")


@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(9998, 1, 1),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=11))]
        ),
    )
)
def test_iso_round_trip(moment: datetime) -> None:
    for text in (moment.isoformat(), moment.isoformat().replace("+00:00", "Z")):
        rec = valid(pred(timestamp=text))
        assert rec.event_time == moment.timestamp()


# --- invalid records: every reason ---------------------------------------------------------

INVALID_PREDICTIONS: list[tuple[str, bytes | str | None, str, str | None]] = [
    ("tombstone", None, "malformed_json", None),
    ("empty", b"", "malformed_json", None),
    ("truncated", b'{"model": "m"', "malformed_json", None),
    ("trailing garbage", enc() + b" x", "malformed_json", None),
    ("invalid utf-8", enc(model="m").replace(b'"m"', b'"\xff"'), "malformed_json", None),
    ("byte order mark", b"\xef\xbb\xbf" + enc(), "malformed_json", None),
    ("lone surrogate", enc(model="m").replace(b'"m"', b'"\\ud800"'), "malformed_json", None),
    ("surrogate + NaN", b'{"model": "\\udc00", "x": NaN}', "malformed_json", None),
    ("single quotes", b"{'model': 'm'}", "malformed_json", None),
    ("array", b"[]", "not_an_object", None),
    ("number", b"1", "not_an_object", None),
    ("string", b'"credit-risk"', "not_an_object", None),
    ("null", b"null", "not_an_object", None),
    ("NaN alone", b"NaN", "not_an_object", None),
    ("no model", enc(model=...), "missing_field", "model"),
    ("null model", enc(model=None), "missing_field", "model"),
    ("no features", enc(features=...), "missing_field", "features"),
    ("no prediction", enc(prediction=...), "missing_field", "prediction"),
    ("null prediction", enc(prediction=None), "missing_field", "prediction"),
    ("empty prediction", enc(prediction={}), "missing_field", "prediction.label"),
    ("model number", enc(model=1), "wrong_type", "model"),
    ("model empty", enc(model=""), "wrong_type", "model"),
    ("features array", enc(features=[1, 2]), "wrong_type", "features"),
    ("features string", enc(features="a=1"), "wrong_type", "features"),
    ("feature list", enc(features={"a": 1, "b": [1]}), "wrong_type", "features.b"),
    ("feature object", enc(features={"b": {}}), "wrong_type", "features.b"),
    ("prediction list", enc(prediction=[0.1, 0.9]), "wrong_type", "prediction"),
    ("label float", enc(prediction={"label": 1.5}), "wrong_type", "prediction.label"),
    ("label list", enc(prediction={"label": []}), "wrong_type", "prediction.label"),
    ("score string", enc(prediction={"score": "0.8"}), "wrong_type", "prediction.score"),
    ("score bool", enc(prediction={"score": True}), "wrong_type", "prediction.score"),
    ("request_id empty", enc(request_id=""), "wrong_type", "request_id"),
    ("request_id float", enc(request_id=1.5), "wrong_type", "request_id"),
    ("request_id bool", enc(request_id=True), "wrong_type", "request_id"),
    ("version bool", enc(model_version=False), "wrong_type", "model_version"),
    ("version object", enc(model_version={}), "wrong_type", "model_version"),
    ("explanations list", enc(explanations=[1]), "wrong_type", "explanations"),
    ("explanation str", enc(explanations={"a": "x"}), "wrong_type", "explanations.a"),
    ("explanation bool", enc(explanations={"a": True}), "wrong_type", "explanations.a"),
    ("timestamp bool", enc(timestamp=True), "wrong_type", "timestamp"),
    ("timestamp object", enc(timestamp={"s": 1}), "wrong_type", "timestamp"),
    ("timestamp text", enc(timestamp="yesterday"), "bad_timestamp", "timestamp"),
    ("timestamp naive", enc(timestamp="2026-11-22T09:15:00"), "bad_timestamp", "timestamp"),
    ("timestamp date", enc(timestamp="2026-11-22"), "bad_timestamp", "timestamp"),
    ("timestamp hour 24", enc(timestamp="2026-11-22T24:00:00Z"), "bad_timestamp", "timestamp"),
    ("timestamp digits", enc(timestamp="1795338900000"), "bad_timestamp", "timestamp"),
    ("timestamp negative", enc(timestamp=-1), "bad_timestamp", "timestamp"),
    ("timestamp pre-1970", enc(timestamp="1969-12-31T23:59:59Z"), "bad_timestamp", "timestamp"),
    ("timestamp year 1", enc(timestamp="0001-01-01T00:00:00+01:00"), "bad_timestamp", "timestamp"),
    ("timestamp huge", enc(timestamp=1e20), "bad_timestamp", "timestamp"),
    (
        "timestamp NaN",
        b'{"model": "m", "features": {}, "prediction": 1, "timestamp": NaN}',
        "bad_timestamp",
        "timestamp",
    ),
    (
        "score NaN",
        b'{"model": "m", "features": {}, "prediction": {"score": NaN}}',
        "non_finite",
        "prediction.score",
    ),
    (
        "score -Infinity",
        b'{"model": "m", "features": {}, "prediction": {"score": -Infinity}}',
        "non_finite",
        "prediction.score",
    ),
    ("bare NaN", b'{"model": "m", "features": {}, "prediction": NaN}', "non_finite", "prediction"),
    (
        "bare 1e400",
        b'{"model": "m", "features": {}, "prediction": 1e400}',
        "non_finite",
        "prediction",
    ),
]


@pytest.mark.parametrize(
    ("raw", "reason", "field"),
    [case[1:] for case in INVALID_PREDICTIONS],
    ids=[case[0] for case in INVALID_PREDICTIONS],
)
def test_invalid_predictions(raw: bytes | None, reason: str, field: str | None) -> None:
    rejected = invalid(decode_prediction(raw, KAFKA_TS_MS), reason, field)
    _check_detail(rejected)


def _check_detail(rejected: InvalidRecord) -> None:
    """One sentence, one line, naming the field."""
    detail = rejected.detail
    assert detail.endswith("."), detail
    assert "\n" not in detail
    assert len(detail) < 300
    if rejected.field is not None:
        assert re.split(r"[.\[]", rejected.field)[0] in detail, detail


def test_every_reason_is_exercised_and_the_set_is_fixed() -> None:
    assert {r.value for r in InvalidReason} == {
        "oversized",
        "malformed_json",
        "not_an_object",
        "missing_field",
        "wrong_type",
        "bad_timestamp",
        "non_finite",
        "unknown_model",
    }
    covered = {case[2] for case in INVALID_PREDICTIONS} | {"oversized", "unknown_model"}
    assert covered == set(InvalidReason)


def test_detail_shows_odd_feature_names_quoted_and_short() -> None:
    rejected = pred(features={"a\nb" * 50: []})
    assert rejected.reason == "wrong_type"
    assert rejected.field.startswith("features['a\\nba")
    assert rejected.field.endswith("...]")
    assert len(rejected.field) < 80
    _check_detail(rejected)


def test_invalid_record_keeps_a_readable_model_name() -> None:
    assert pred(features=[]).model == "credit-risk"
    assert pred(model=5).model is None
    assert decode_prediction(b"[]").model is None


# --- size ----------------------------------------------------------------------------------


def test_oversized_is_checked_before_parsing() -> None:
    raw = enc()
    assert isinstance(decode_prediction(raw, max_bytes=len(raw)), PredictionRecord)
    rejected = invalid(decode_prediction(raw, max_bytes=len(raw) - 1), "oversized", None)
    assert str(len(raw)) in rejected.detail
    # Not parsed: garbage of the same size is "oversized", not "malformed_json".
    invalid(decode_prediction(b"x" * (DEFAULT_MAX_BYTES + 1)), "oversized", None)
    invalid(decode_label(b"x" * 11, max_bytes=10), "oversized", None)


def test_huge_records_within_the_limit() -> None:
    features: dict[str, float | str] = {f"feature_{i:05d}": float(i) for i in range(20_000)}
    features.update({f"text_{i}": "x" * 10_000 for i in range(70)})
    raw = enc(features=features)
    assert DEFAULT_MAX_BYTES < len(raw) < 2 * DEFAULT_MAX_BYTES
    invalid(decode_prediction(raw), "oversized", None)
    rec = valid(decode_prediction(raw, max_bytes=2 * DEFAULT_MAX_BYTES))
    assert rec.features == features


@pytest.mark.parametrize("depth", [100, 2_000, 100_000])
def test_deep_nesting_never_raises(depth: int) -> None:
    nested = b"[" * depth + b"]" * depth
    raw = b'{"model": "m", "features": {"a": ' + nested + b'}, "prediction": 1, "x": NaN}'
    assert isinstance(decode_prediction(raw, max_bytes=10**6), InvalidRecord)


# --- labels --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["approve", 1, 0, True, 2.5, -1e-9, ""])
def test_labels(value: Any) -> None:
    rec = label(label=value, timestamp="2026-11-22T09:15:00Z")
    assert rec == LabelRecord(
        model="credit-risk", request_id="r-1", event_time=1_795_338_900.0, label=value
    )
    assert type(rec.label) is type(value)


def test_label_fallback_time_and_integer_request_id() -> None:
    rec = label(request_id=42)
    assert (rec.request_id, rec.event_time) == ("42", KAFKA_TS_MS / 1000)


@pytest.mark.parametrize(
    ("fields", "reason", "field"),
    [
        ({"model": ...}, "missing_field", "model"),
        ({"request_id": ...}, "missing_field", "request_id"),
        ({"request_id": None}, "missing_field", "request_id"),
        ({"label": ...}, "missing_field", "label"),
        ({"label": None}, "missing_field", "label"),
        ({"label": [1]}, "wrong_type", "label"),
        ({"label": {"label": 1}}, "wrong_type", "label"),
        ({"label": math.nan}, "non_finite", "label"),
        ({"label": math.inf}, "non_finite", "label"),
        ({"request_id": ""}, "wrong_type", "request_id"),
        ({"timestamp": "2026-11-22"}, "bad_timestamp", "timestamp"),
    ],
)
def test_invalid_labels(fields: dict[str, Any], reason: str, field: str) -> None:
    _check_detail(invalid(label(**fields), reason, field))


def test_invalid_label_json() -> None:
    invalid(decode_label(b"{"), "malformed_json", None)
    invalid(decode_label(b"[1]"), "not_an_object", None)
    invalid(decode_label(None), "malformed_json", None)


@pytest.mark.parametrize("decode", [decode_prediction, decode_label])
@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (None, "The record has no value (a null Kafka value, as a tombstone has); "),
        (b"", "The record is empty (0 bytes); "),
        ("", "The record is empty (0 bytes); "),
        (bytearray(), "The record is empty (0 bytes); "),
        (memoryview(b""), "The record is empty (0 bytes); "),
        (b" \n\t", "The record holds only whitespace; "),
    ],
)
def test_empty_and_null_values_say_so(decode: Any, raw: Any, detail: str) -> None:
    """Not a crash and not the parser's wording: a sentence saying the value is absent."""
    rejected = invalid(decode(raw, KAFKA_TS_MS), "malformed_json", None)
    assert rejected.detail == detail + "expected a JSON object."
    assert rejected.model is None  # counted under model="unknown"


@pytest.mark.parametrize("decode", [decode_prediction, decode_label])
def test_an_empty_model_name_is_wrong_type_and_never_a_metric_label(decode: Any) -> None:
    raw = b'{"model": "", "request_id": "r", "label": 1, "features": {}, "prediction": 1}'
    rejected = invalid(decode(raw, KAFKA_TS_MS), "wrong_type", "model")
    assert rejected.detail == "model must be a non-empty string, got an empty string."
    assert rejected.model is None
    assert route(rejected, {"", "credit-risk"}) == rejected


def test_every_reason_value_is_kept() -> None:
    """The reason values are the label values of driftline_records_invalid_total: a contract."""
    assert {reason.value for reason in InvalidReason} >= {
        "oversized",
        "malformed_json",
        "not_an_object",
        "missing_field",
        "wrong_type",
        "bad_timestamp",
        "non_finite",
        "unknown_model",
    }


# --- routing -------------------------------------------------------------------------------


def test_route_by_model() -> None:
    known = frozenset({"credit-risk", "fraud"})
    rec = valid(pred())
    assert route(rec, known) is rec
    lab = label()
    assert route(lab, known) is lab
    rejected = invalid(route(valid(pred(model="churn\n" * 30)), known), "unknown_model", "model")
    _check_detail(rejected)
    assert rejected.model is None  # an unknown name must not become a metric label


def test_route_keeps_invalid_records_and_hides_unknown_models() -> None:
    known = {"credit-risk"}
    bad_known = pred(features=[])
    assert route(bad_known, known) is bad_known
    bad_unknown = pred(model="churn", features=[])
    routed = route(bad_unknown, known)
    assert isinstance(routed, InvalidRecord)
    assert (routed.reason, routed.field, routed.detail) == (
        bad_unknown.reason,
        bad_unknown.field,
        bad_unknown.detail,
    )
    assert routed.model is None
    nameless = decode_prediction(b"[]")
    assert route(nameless, known) is nameless


# --- properties ----------------------------------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
FIELD_NAMES = st.sampled_from(
    ["model", "model_version", "request_id", "timestamp", "features", "prediction",
     "explanations", "label", "score"]
)  # fmt: skip


def _any_result(result: object) -> None:
    assert isinstance(result, PredictionRecord | LabelRecord | InvalidRecord)
    if isinstance(result, InvalidRecord):
        assert result.reason in set(InvalidReason)
        _check_detail(result)


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    _any_result(decode_prediction(raw, KAFKA_TS_MS))
    _any_result(decode_label(raw, KAFKA_TS_MS))
    _any_result(decode_prediction(raw, None, max_bytes=50))


@settings(max_examples=200)
@given(
    st.dictionaries(FIELD_NAMES | st.text(max_size=8), JSON_VALUES, max_size=8),
    st.none() | st.integers(min_value=-(2**63), max_value=2**63),
)
def test_arbitrary_json_objects_never_raise(body: dict[str, Any], fallback: int | None) -> None:
    raw_text = json.dumps(body, ensure_ascii=False)
    for raw in (raw_text.encode("utf-8", "surrogatepass"), json.dumps(body).encode()):
        _any_result(decode_prediction(raw, fallback))
        _any_result(decode_label(raw, fallback))


FEATURE_VALUES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()
    | st.text(max_size=10)
)


@settings(max_examples=300)
@given(
    features=st.dictionaries(st.text(max_size=10), FEATURE_VALUES, max_size=30),
    score=st.floats(allow_nan=False, allow_infinity=False),
    time_ms=st.integers(min_value=0, max_value=253_402_300_799_999),
)
def test_valid_records_round_trip(features: dict[str, Any], score: float, time_ms: int) -> None:
    body = doc(features=features, prediction={"score": score}, timestamp=time_ms)
    rec = valid(decode_prediction(json.dumps(body).encode()))
    assert rec.event_time == time_ms / 1000
    assert rec.prediction == {"label": None, "score": score}
    assert rec.features.keys() == features.keys()
    for name, value in features.items():
        got = rec.features[name]
        if value is None or (type(value) is float and not math.isfinite(value)):
            assert got is None
        elif type(value) is int:
            assert type(got) is float
            assert got == float(value)
        else:
            assert type(got) is type(value)
            assert got == value


def test_module_docstring_example() -> None:
    result = doctest.testmod(records, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


# --- the OpenAPI record schemas agree with the decoders ------------------------------------

_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=8),
)
_any_json = st.recursive(
    _json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
_timestamps = st.one_of(
    st.none(),
    st.integers(0, 4_000_000_000_000),
    st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1)).map(
        lambda d: d.replace(tzinfo=UTC).isoformat()
    ),
)
_predictions = st.fixed_dictionaries(
    {
        "model": st.text(min_size=1, max_size=8),
        "features": st.dictionaries(st.text(max_size=6), _json_scalars, max_size=4),
        "prediction": st.one_of(
            _json_scalars,
            st.fixed_dictionaries(
                {},
                optional={
                    "label": st.one_of(st.text(max_size=4), st.integers(0, 3)),
                    "score": st.floats(0, 1),
                },
            ),
        ),
    },
    optional={
        "model_version": st.one_of(st.none(), st.text(max_size=4), st.integers(0, 99)),
        "request_id": st.one_of(st.none(), st.text(max_size=8), st.integers(0, 10**9)),
        "timestamp": _timestamps,
        "explanations": st.one_of(
            st.none(), st.dictionaries(st.text(max_size=6), st.floats(-5, 5), max_size=3)
        ),
    },
)
_labels = st.fixed_dictionaries(
    {
        "model": st.text(min_size=1, max_size=8),
        "request_id": st.one_of(st.text(min_size=1, max_size=8), st.integers(0, 10**9)),
        "label": st.one_of(st.text(max_size=4), st.integers(0, 3), st.booleans()),
    },
    optional={"timestamp": _timestamps},
)


def _schema_valid(schema: dict[str, Any], record: Any) -> bool:
    import jsonschema

    return jsonschema.Draft202012Validator(schema).is_valid(record)


@settings(max_examples=300, deadline=None)
@given(record=_predictions, drop=st.sampled_from([None, "model", "features", "prediction"]))
@pytest.mark.parametrize("mangle", [False, True])
def test_the_prediction_schema_accepts_what_the_decoder_accepts(record, drop, mangle):
    """A record the decoder accepts is valid in the OpenAPI schema; a required field missing
    (or ``features`` not an object) fails both."""
    if drop is not None:
        record = {k: v for k, v in record.items() if k != drop}
    if mangle:
        record = {**record, "features": [1, 2]}
    accepted = isinstance(records.decode_prediction(orjson.dumps(record)), records.PredictionRecord)
    valid = _schema_valid(records.PREDICTION_JSON_SCHEMA, record)
    if accepted:
        assert valid, record
    if drop is not None or mangle:
        assert not accepted, record
        assert not valid, record


@settings(max_examples=300, deadline=None)
@given(record=_labels, drop=st.sampled_from([None, "model", "request_id", "label"]))
def test_the_label_schema_accepts_what_the_decoder_accepts(record, drop):
    if drop is not None:
        record = {k: v for k, v in record.items() if k != drop}
    accepted = isinstance(records.decode_label(orjson.dumps(record)), records.LabelRecord)
    valid = _schema_valid(records.LABEL_JSON_SCHEMA, record)
    if accepted:
        assert valid, record
    if drop is not None:
        assert not accepted, record
        assert not valid, record


@given(record=_any_json)
def test_a_value_that_is_not_a_record_object_fails_the_schema_and_the_decoder(record):
    if isinstance(record, dict):
        return
    assert not _schema_valid(records.PREDICTION_JSON_SCHEMA, record)
    assert not isinstance(records.decode_prediction(orjson.dumps(record)), records.PredictionRecord)
