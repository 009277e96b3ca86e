"""Decode and validate prediction and label records (the DESIGN.md record contract).

One place turns the raw bytes of a record -- a Kafka value, an HTTP request body
or one line of a replayed log -- into a typed, immutable record, or into an
:class:`InvalidRecord` that says why not. Decoding never raises on bad input:
a bad record is counted (``driftline_records_invalid_total{model, reason}``)
and dead-lettered, it never stops a consumer.

>>> rec = decode_prediction(
...     b'{"model": "credit-risk", "timestamp": "2026-11-22T09:15:00.5Z",'
...     b' "features": {"age": 42, "region": "EU", "income": NaN},'
...     b' "prediction": {"label": "approve", "score": 0.83}}'
... )
>>> rec.model, rec.event_time
('credit-risk', 1795338900.5)
>>> rec.features
{'age': 42.0, 'region': 'EU', 'income': None}
>>> rec.prediction
{'label': 'approve', 'score': 0.83}
>>> bad = decode_prediction(b'{"model": "credit-risk", "features": []}', 1795338900000)
>>> bad.reason, bad.field
(<InvalidReason.WRONG_TYPE: 'wrong_type'>, 'features')
>>> route(rec, {"fraud"}).reason
<InvalidReason.UNKNOWN_MODEL: 'unknown_model'>

Decisions where the contract is silent
--------------------------------------
Size and syntax
    ``max_bytes`` (default 1 MiB) is checked before parsing. Input is UTF-8
    JSON; a byte-order mark, invalid UTF-8 or a lone surrogate escape is
    ``malformed_json``. The non-standard literals ``NaN``, ``Infinity`` and
    ``-Infinity`` (what Python's ``json.dumps`` writes for missing numbers) are
    accepted: orjson rejects them, so such records take a slower fallback
    through the standard library. Unknown top-level keys are ignored. An empty
    or all-whitespace value and a null Kafka value (a tombstone; ``raw`` is
    None) are ``malformed_json`` too, each with its own detail: the reason
    values are a metric-label contract, and none of these is a record.
Identifiers
    ``model`` is a non-empty string; an empty one is ``wrong_type`` (field
    ``model``) and, like any unreadable model, is counted under the metric
    label ``model="unknown"``. ``request_id`` and ``model_version`` may
    be absent or null; when present they are non-empty strings or integers
    (integers are converted to strings, so ``7`` and ``"7"`` join). An empty
    ``request_id`` is ``wrong_type``: joining every label with an empty id to
    one prediction would be silently wrong.
Event time
    ``timestamp`` is an ISO-8601 string with ``Z`` or a UTC offset (a naive
    time is ``bad_timestamp``: guessing its zone would shift windows by hours;
    fractions beyond microseconds are truncated) or epoch milliseconds as an
    integer or a float. It must fall in [1970-01-01, 10000-01-01). No attempt
    is made to guess epoch *seconds*. When ``timestamp`` is absent or null the
    fallback (the Kafka record timestamp in ms; negative means none, as Kafka's
    -1) is used; when neither exists the record is ``missing_field``. A
    present but bad ``timestamp`` is rejected, not replaced by the fallback, so
    that producer bugs show up in the invalid-records counter.
Features
    ``features`` is an object (it may be empty). Values are numbers, strings,
    booleans or null. Integers become floats; booleans stay booleans (they are
    not numbers). Null, NaN and +/-Infinity are missing and become ``None`` --
    an infinite value cannot enter a sum or a mean, and counting it as missing
    keeps the record's other features. Arrays and objects are ``wrong_type``.
    The string ``"NaN"`` is an ordinary categorical value.
Prediction
    Normalised to ``{"label": ..., "score": ...}``, both keys always present:

    ========================== ======================= =====================
    ``prediction`` is          ``label``               ``score``
    ========================== ======================= =====================
    an object                  its ``label`` or None   its ``score`` or None
    a float, e.g. ``0.83``     None                    the number
    an integer, e.g. ``3``     the integer             the integer as float
    a string or a boolean      the value               None
    ========================== ======================= =====================

    A bare integer is ambiguous (a class or an integral regression output, as
    JavaScript writes ``3.0``), so it fills both and the model's configuration
    decides which one is used. In an object, ``label`` is a string, integer
    or boolean and ``score`` a number (a boolean is not a number); at least
    one of them must be non-null; other keys are ignored. Null prediction is
    ``missing_field``. NaN or infinite score is ``non_finite``: the prediction
    is required, so unlike a feature it cannot just be missing.
Explanations
    Optional object of per-feature numbers. Null, NaN and infinite entries are
    dropped (an explanation may cover only some features); other types are
    ``wrong_type``. Integers become floats.
Labels
    A label record needs ``model``, ``request_id`` and ``label``; ``label`` is
    a string, integer, boolean or finite float (regression ground truth).

Metric cardinality: :attr:`InvalidRecord.model` is whatever the record said.
Use it as a Prometheus label only for known models; :func:`route` never puts
an unknown model name there.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final, TypeAlias, TypeVar, cast

import orjson

__all__ = [
    "DEFAULT_MAX_BYTES",
    "LABEL_JSON_SCHEMA",
    "PREDICTION_JSON_SCHEMA",
    "FeatureValue",
    "InvalidReason",
    "InvalidRecord",
    "LabelRecord",
    "LabelValue",
    "PredictionRecord",
    "decode_label",
    "decode_prediction",
    "decode_predictions",
    "route",
]

#: JSON Schemas of the two record kinds, as the HTTP API's OpenAPI description shows them.
#: They describe the shape :func:`decode_prediction` and :func:`decode_label` accept (the
#: decoders also check values: parseable times, finite numbers, sizes); tests/test_records.py
#: checks on generated records that every record a decoder accepts is valid here and that
#: records missing a required field or of a wrong type fail both.
PREDICTION_JSON_SCHEMA: Final[dict[str, Any]] = {
    "title": "PredictionRecord",
    "type": "object",
    "required": ["model", "features", "prediction"],
    "properties": {
        "model": {"type": "string"},
        "model_version": {"type": ["string", "integer", "null"]},
        "request_id": {"type": ["string", "integer", "null"]},
        "timestamp": {
            "type": ["string", "number", "null"],
            "description": "ISO 8601 with offset, or epoch milliseconds; default: arrival time",
        },
        "features": {
            "type": "object",
            "additionalProperties": {"type": ["number", "string", "boolean", "null"]},
        },
        "prediction": {
            "description": '{"label": ..., "score": ...}, a number, or a class',
            "type": ["object", "number", "string", "integer", "boolean"],
        },
        "explanations": {"type": ["object", "null"], "additionalProperties": {"type": "number"}},
    },
}


LABEL_JSON_SCHEMA: Final[dict[str, Any]] = {
    "title": "LabelRecord",
    "type": "object",
    "required": ["model", "request_id", "label"],
    "properties": {
        "model": {"type": "string"},
        "request_id": {"type": ["string", "integer"]},
        "label": {"type": ["string", "number", "boolean"]},
        "timestamp": {"type": ["string", "number", "null"]},
    },
}


#: Default size limit of one encoded record: 1 MiB.
DEFAULT_MAX_BYTES: Final = 1 << 20

FeatureValue: TypeAlias = float | str | bool | None
LabelValue: TypeAlias = str | int | float | bool
RawRecord: TypeAlias = bytes | bytearray | memoryview | str | None

# [1970-01-01, 10000-01-01) in epoch seconds; beyond it datetime cannot represent the time.
_MIN_EVENT_TIME: Final = 0.0
_MAX_EVENT_TIME: Final = 253402300800.0
_DETAIL_VALUE_CHARS: Final = 60
# orjson returns integers up to this as int and larger ones as float; the fallback does the same.
_MAX_JSON_INT: Final = (1 << 64) - 1
_MIN_JSON_INT: Final = -(1 << 63)
# Value types of the common record shape (decode_predictions' inline path). orjson's floats
# are finite; bool is its own type, not int.
_LABEL_TYPES: Final = frozenset({str, int, bool, type(None)})
_FLOAT: Final = frozenset({float})


class InvalidReason(StrEnum):
    """Why a record was rejected: the fixed value set of the metric label ``reason``."""

    OVERSIZED = "oversized"
    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    BAD_TIMESTAMP = "bad_timestamp"
    NON_FINITE = "non_finite"
    UNKNOWN_MODEL = "unknown_model"


@dataclass(frozen=True, slots=True, kw_only=True)
class PredictionRecord:
    """One validated prediction: what the model saw, what it answered, and when.

    ``event_time`` is in epoch seconds (UTC). ``features`` maps each feature to
    a float, string, boolean or ``None`` (missing). ``prediction`` always has
    exactly the keys ``label`` and ``score`` (see the module docstring).
    """

    model: str
    model_version: str | None
    request_id: str | None
    event_time: float
    features: dict[str, FeatureValue]
    prediction: dict[str, Any]
    explanations: dict[str, float] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelRecord:
    """One validated ground-truth label, joined later to its prediction by ``request_id``."""

    model: str
    request_id: str
    event_time: float
    label: LabelValue


@dataclass(frozen=True, slots=True, kw_only=True)
class InvalidRecord:
    """A rejected record: a machine ``reason``, a one-sentence ``detail`` and where.

    ``field`` is the offending field's path (``"features.age"``) or ``None``
    when the problem is the record as a whole; ``model`` is the record's model
    name when it could be read (untrusted, see the module docstring).
    """

    reason: InvalidReason
    detail: str
    field: str | None = None
    model: str | None = None


class _RecordError(Exception):
    """Internal early exit of a validator; turned into an :class:`InvalidRecord`."""

    def __init__(self, reason: InvalidReason, field: str | None, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.field = field
        self.detail = detail


def _show(value: object) -> str:
    """Short, log-safe representation of an untrusted value for a detail message."""
    text = repr(value)
    if len(text) > _DETAIL_VALUE_CHARS:
        text = text[: _DETAIL_VALUE_CHARS - 3] + "..."
    return text


def _json_kind(value: object) -> str:
    """The JSON type name of a decoded value, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string" if value else "an empty string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _path(parent: str, name: str) -> str:
    """``parent.name`` for a message, with an unusual key shown quoted and shortened."""
    if name.isprintable() and len(name) <= _DETAIL_VALUE_CHARS:
        return f"{parent}.{name}"
    return f"{parent}[{_show(name)}]"


def _missing(field: str) -> _RecordError:
    return _RecordError(InvalidReason.MISSING_FIELD, field, f"The field {field} is missing.")


def _wrong(field: str, expected: str, value: object) -> _RecordError:
    return _RecordError(
        InvalidReason.WRONG_TYPE, field, f"{field} must be {expected}, got {_json_kind(value)}."
    )


def _fallback_int(text: str) -> int | float:
    """Parse an integer literal the way orjson does: beyond 64 bits it becomes a float."""
    if len(text) <= 20:
        number = int(text)
        if _MIN_JSON_INT <= number <= _MAX_JSON_INT:
            return number
    return float(text)


def _parse(raw: RawRecord, max_bytes: int) -> tuple[Any, bool]:
    """Decode ``raw``; return the value and whether its floats are known to be finite.

    orjson rejects NaN, Infinity and numbers beyond the float range, so values it
    returns need no finiteness checks; values of the fallback parser do.
    """
    if raw is None:
        raise _RecordError(
            InvalidReason.MALFORMED_JSON,
            None,
            "The record has no value (a null Kafka value, as a tombstone has); "
            "expected a JSON object.",
        )
    if len(raw) > max_bytes:
        raise _RecordError(
            InvalidReason.OVERSIZED,
            None,
            f"The record is {len(raw)} bytes, more than the limit of {max_bytes}.",
        )
    try:
        return orjson.loads(raw), True
    except orjson.JSONDecodeError as error:
        first_error = error
    blank = raw.strip() if isinstance(raw, str | bytes) else bytes(raw).strip()
    if not blank:  # orjson's message for these ("input data is empty") reads like a bug
        what = "is empty (0 bytes)" if len(raw) == 0 else "holds only whitespace"
        raise _RecordError(
            InvalidReason.MALFORMED_JSON, None, f"The record {what}; expected a JSON object."
        )
    # Slow path, reached only by invalid JSON or by the NaN/Infinity literals that Python's
    # json.dumps writes; the contract counts NaN features as missing, so they must decode.
    try:
        text = raw if isinstance(raw, str) else bytes(raw).decode("utf-8")
        value = json.loads(text, parse_int=_fallback_int)
        orjson.dumps(value)  # rejects lone surrogates, as orjson.loads would have
    except Exception:  # ValueError, RecursionError, orjson.JSONEncodeError...
        raise _RecordError(
            InvalidReason.MALFORMED_JSON, None, f"The record is not valid JSON: {first_error}."
        ) from None
    return value, False


def _root(raw: RawRecord, max_bytes: int) -> tuple[dict[str, Any], bool]:
    """Decode ``raw`` and check that it is a JSON object; the flag is as for :func:`_parse`."""
    doc, finite = _parse(raw, max_bytes)
    if type(doc) is not dict:
        raise _RecordError(
            InvalidReason.NOT_AN_OBJECT,
            None,
            f"The record must be a JSON object, got {_json_kind(doc)}.",
        )
    return doc, finite


def _model(doc: dict[str, Any]) -> str:
    model = doc.get("model")
    if type(model) is str and model:
        return model
    if model is None:
        raise _missing("model")
    raise _wrong("model", "a non-empty string", model)


def _identifier(doc: dict[str, Any], field: str) -> str | None:
    """An optional id-like field: non-empty string or integer, returned as a string."""
    value: Any = doc.get(field)
    kind = type(value)
    if kind is str and value:
        return cast(str, value)
    if kind is int:
        return str(value)
    if value is None:
        return None
    raise _wrong(field, "a non-empty string or an integer", value)


def _event_time(doc: dict[str, Any], fallback_ms: float | None) -> float:
    """Event time in epoch seconds from ``timestamp`` or the fallback (epoch ms)."""
    value: Any = doc.get("timestamp")
    kind = type(value)
    if kind is str:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _RecordError(
                InvalidReason.BAD_TIMESTAMP,
                "timestamp",
                f"timestamp {_show(value)} is not an ISO-8601 date-time.",
            ) from None
        if parsed.tzinfo is None:
            raise _RecordError(
                InvalidReason.BAD_TIMESTAMP,
                "timestamp",
                f"timestamp {_show(value)} has no UTC offset; add Z or +HH:MM.",
            )
        try:
            seconds = parsed.timestamp()
        except (OverflowError, ValueError):  # e.g. 0001-01-01T00:00+01:00
            seconds = -1.0
    elif kind is int or kind is float:
        seconds = value / 1000.0
    elif value is None:
        if fallback_ms is None or not fallback_ms >= 0:
            raise _RecordError(
                InvalidReason.MISSING_FIELD,
                "timestamp",
                "The field timestamp is missing and there is no fallback record timestamp.",
            )
        seconds = fallback_ms / 1000.0
        if seconds < _MAX_EVENT_TIME:
            return seconds
        raise _RecordError(
            InvalidReason.BAD_TIMESTAMP,
            "timestamp",
            f"The fallback record timestamp {_show(fallback_ms)} ms is out of range.",
        )
    else:
        raise _wrong("timestamp", "an ISO-8601 string or epoch milliseconds", value)
    # Written so that NaN fails too.
    if _MIN_EVENT_TIME <= seconds < _MAX_EVENT_TIME:
        return seconds
    raise _RecordError(
        InvalidReason.BAD_TIMESTAMP,
        "timestamp",
        f"timestamp {_show(value)} is outside 1970-01-01 to 9999-12-31.",
    )


def _features(doc: dict[str, Any], finite: bool) -> dict[str, FeatureValue]:
    """Validate ``features`` in place: ints to floats, NaN and infinities to ``None``."""
    features = doc.get("features")
    if type(features) is not dict:
        if features is None:
            raise _missing("features")
        raise _wrong("features", "an object", features)
    # Only values of existing keys are replaced, which is safe while iterating.
    for name, value in features.items():
        kind = type(value)
        if kind is float:
            if not finite and value - value != 0.0:  # NaN or +/-inf
                features[name] = None
        elif kind is str or kind is bool or value is None:
            pass
        elif kind is int:
            features[name] = float(value)  # exact: the parser keeps only 64-bit ints
        else:
            raise _wrong(_path("features", name), "a number, string, boolean or null", value)
    return features


def _score(value: Any, field: str) -> float | None:
    kind = type(value)
    if kind is float:
        if value - value != 0.0:
            raise _RecordError(
                InvalidReason.NON_FINITE, field, f"{field} must be finite, got {_show(value)}."
            )
        return cast(float, value)
    if kind is int:
        return float(value)
    if value is None:
        return None
    raise _wrong(field, "a number", value)


def _prediction(doc: dict[str, Any]) -> dict[str, Any]:
    """Normalise the three allowed shapes of ``prediction`` to ``{"label", "score"}``."""
    value: Any = doc.get("prediction")
    kind = type(value)
    if kind is dict:
        label = value.get("label")
        label_kind = type(label)
        if not (label is None or label_kind is str or label_kind is int or label_kind is bool):
            raise _wrong("prediction.label", "a string, integer or boolean", label)
        score = _score(value.get("score"), "prediction.score")
        if label is None and score is None:
            raise _RecordError(
                InvalidReason.MISSING_FIELD,
                "prediction.label",
                "prediction has neither a label nor a score.",
            )
        return {"label": label, "score": score}
    if kind is float:
        return {"label": None, "score": _score(value, "prediction")}
    if kind is int:
        return {"label": value, "score": float(value)}
    if kind is str or kind is bool:
        return {"label": value, "score": None}
    if value is None:
        raise _missing("prediction")
    raise _wrong("prediction", "an object, a number, a string or a boolean", value)


def _explanations(doc: dict[str, Any], finite: bool) -> dict[str, float] | None:
    value: Any = doc.get("explanations")
    if value is None:
        return None
    if type(value) is not dict:
        raise _wrong("explanations", "an object", value)
    if finite:
        for weight in value.values():
            if type(weight) is not float:
                break
        else:  # the common case: all finite floats, keep the parsed dict
            return cast(dict[str, float], value)
    clean: dict[str, float] = {}
    for name, weight in value.items():
        kind = type(weight)
        if kind is float:
            if weight - weight == 0.0:  # drops NaN and +/-inf
                clean[name] = weight
        elif kind is int:
            clean[name] = float(weight)
        elif weight is not None:
            raise _wrong(_path("explanations", name), "a number or null", weight)
    return clean


def _label_value(doc: dict[str, Any]) -> LabelValue:
    value: Any = doc.get("label")
    kind = type(value)
    if kind is str or kind is int or kind is bool:
        return cast(LabelValue, value)
    if kind is float:
        if value - value != 0.0:
            raise _RecordError(
                InvalidReason.NON_FINITE, "label", f"label must be finite, got {_show(value)}."
            )
        return cast(float, value)
    if value is None:
        raise _missing("label")
    raise _wrong("label", "a string, number or boolean", value)


def _invalid(reject: _RecordError, doc: object) -> InvalidRecord:
    model = doc.get("model") if type(doc) is dict else None
    return InvalidRecord(
        reason=reject.reason,
        detail=reject.detail,
        field=reject.field,
        model=model if type(model) is str and model else None,
    )


def decode_prediction(
    raw: RawRecord, fallback_ms: float | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> PredictionRecord | InvalidRecord:
    """Decode and validate one prediction record; never raises on bad input.

    ``raw`` is the encoded JSON (bytes, or a str for callers that already
    decoded it); ``fallback_ms`` is the event time in epoch milliseconds used
    when the record has no ``timestamp`` (the Kafka record timestamp; HTTP
    ingest passes the arrival time). Records longer than ``max_bytes`` are
    rejected before parsing. Returns a :class:`PredictionRecord`, or an
    :class:`InvalidRecord` saying why not.
    """
    doc: Any = None
    try:
        doc, finite = _root(raw, max_bytes)
        return PredictionRecord(
            model=_model(doc),
            model_version=_identifier(doc, "model_version"),
            request_id=_identifier(doc, "request_id"),
            event_time=_event_time(doc, fallback_ms),
            features=_features(doc, finite),
            prediction=_prediction(doc),
            explanations=_explanations(doc, finite),
        )
    except _RecordError as reject:
        return _invalid(reject, doc)


def decode_predictions(
    values: Sequence[RawRecord],
    fallbacks_ms: Sequence[float | None],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> list[PredictionRecord | InvalidRecord]:
    """Decode a batch of prediction records (one Kafka poll's values of a partition).

    Equal to ``[decode_prediction(v, f, max_bytes=max_bytes) for v, f in zip(values,
    fallbacks_ms)]``, record for record, reasons and details included; never raises
    on bad input. Returns one :class:`PredictionRecord` or :class:`InvalidRecord`
    per value, in order.

    >>> [type(r).__name__ for r in decode_predictions(
    ...     [b'{"model": "m", "features": {}, "prediction": 1}', b"[]"], [0, 0])]
    ['PredictionRecord', 'InvalidRecord']
    """
    # The common shape of a valid record is checked inline, without a call per field
    # (this loop is most of the ingest path's own CPU time). Anything else -- invalid,
    # NaN literals, integer explanations, a str value -- goes through decode_prediction,
    # so every result equals that function's.
    out: list[PredictionRecord | InvalidRecord] = []
    append = out.append
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    fromisoformat = datetime.fromisoformat
    for raw, fallback_ms in zip(values, fallbacks_ms, strict=True):
        record = None
        if type(raw) is bytes and len(raw) <= max_bytes:
            try:
                doc = loads(raw)
            except decode_error:
                doc = None
            if type(doc) is dict:
                record = _common_prediction(doc, fallback_ms, fromisoformat)
        append(
            record
            if record is not None
            else decode_prediction(raw, fallback_ms, max_bytes=max_bytes)
        )
    return out


def _common_prediction(
    doc: dict[str, Any], fallback_ms: float | None, fromisoformat: Any
) -> PredictionRecord | None:
    """The record of ``doc`` (parsed by orjson) if it has the usual shape; None otherwise.

    Accepts a subset of what :func:`decode_prediction` accepts and returns what it
    would; None sends the record down that slower, complete path.
    """
    get = doc.get
    model = get("model")
    if type(model) is not str or not model:
        return None
    version = get("model_version")
    if version is not None and (type(version) is not str or not version):
        if type(version) is not int:
            return None
        version = str(version)
    request_id = get("request_id")
    if request_id is not None and (type(request_id) is not str or not request_id):
        if type(request_id) is not int:
            return None
        request_id = str(request_id)
    stamp: Any = get("timestamp")
    kind = type(stamp)
    if kind is str:
        try:
            parsed = fromisoformat(stamp)
            if parsed.tzinfo is None:
                return None
            event_time = parsed.timestamp()
        except (ValueError, OverflowError):
            return None
    elif kind is int or kind is float:
        event_time = stamp / 1000.0
    elif stamp is None and fallback_ms is not None and fallback_ms >= 0:
        event_time = fallback_ms / 1000.0
    else:
        return None
    if not _MIN_EVENT_TIME <= event_time < _MAX_EVENT_TIME:
        return None
    features = get("features")
    if type(features) is not dict:
        return None
    for name, feature in features.items():
        kind = type(feature)
        if kind is float or kind is str:
            continue
        if kind is int:
            features[name] = float(feature)  # exact: orjson keeps only 64-bit ints
        elif kind is not bool and feature is not None:
            return None
    value: Any = get("prediction")
    kind = type(value)
    if kind is dict:
        label = value.get("label")
        score: Any = value.get("score")
        if type(label) not in _LABEL_TYPES:
            return None
        score_kind = type(score)
        if score_kind is int:
            score = float(score)
        elif score_kind is not float and (score is not None or label is None):
            return None
        prediction = {"label": label, "score": score}
    elif kind is float:
        prediction = {"label": None, "score": value}
    elif kind is int:
        prediction = {"label": value, "score": float(value)}
    elif kind is str or kind is bool:
        prediction = {"label": value, "score": None}
    else:
        return None
    explanations = get("explanations")
    if explanations is not None and (
        type(explanations) is not dict or not set(map(type, explanations.values())) <= _FLOAT
    ):
        return None
    # As PredictionRecord(...) would, without the frozen dataclass's __init__, which sets
    # each field through object.__setattr__ (about 1.2 us of the ~5 us this path takes).
    record = _new_record(PredictionRecord)
    _set_model(record, model)
    _set_version(record, version)
    _set_request_id(record, request_id)
    _set_event_time(record, event_time)
    _set_features(record, features)
    _set_prediction(record, prediction)
    _set_explanations(record, explanations)
    return record


def _slot_setter(name: str) -> Callable[[Any, Any], None]:
    """The ``__set__`` of ``PredictionRecord``'s slot ``name`` (bypasses the frozen check)."""
    setter: Callable[[Any, Any], None] = vars(PredictionRecord)[name].__set__
    return setter


_new_record = object.__new__
_set_model = _slot_setter("model")
_set_version = _slot_setter("model_version")
_set_request_id = _slot_setter("request_id")
_set_event_time = _slot_setter("event_time")
_set_features = _slot_setter("features")
_set_prediction = _slot_setter("prediction")
_set_explanations = _slot_setter("explanations")


def decode_label(
    raw: RawRecord, fallback_ms: float | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> LabelRecord | InvalidRecord:
    """Decode and validate one label record; never raises on bad input.

    Arguments as for :func:`decode_prediction`. Returns a :class:`LabelRecord`
    (``model``, ``request_id``, ``label`` required) or an :class:`InvalidRecord`.
    """
    doc: Any = None
    try:
        doc, _ = _root(raw, max_bytes)
        model = _model(doc)
        request_id = _identifier(doc, "request_id")
        if request_id is None:
            raise _missing("request_id")
        return LabelRecord(
            model=model,
            request_id=request_id,
            event_time=_event_time(doc, fallback_ms),
            label=_label_value(doc),
        )
    except _RecordError as reject:
        return _invalid(reject, doc)


_Routed = TypeVar("_Routed", PredictionRecord, LabelRecord)


def route(
    record: _Routed | InvalidRecord, known_models: Collection[str]
) -> _Routed | InvalidRecord:
    """Return ``record`` if its model is one of ``known_models``, else an ``unknown_model`` one.

    An :class:`InvalidRecord` passes through unchanged, except that its
    ``model`` is cleared when unknown, so that it is safe as a metric label.
    Pass a set or frozenset: this is called once per record.
    """
    if isinstance(record, InvalidRecord):
        if record.model is None or record.model in known_models:
            return record
        return InvalidRecord(reason=record.reason, detail=record.detail, field=record.field)
    if record.model in known_models:
        return record
    return InvalidRecord(
        reason=InvalidReason.UNKNOWN_MODEL,
        detail=f"model {_show(record.model)} is not configured.",
        field="model",
    )
