"""``decode_predictions`` (the ingest loop's batch decoder) equals ``decode_prediction``.

The batch decoder checks the common record shape inline and sends everything
else through :func:`monitor.records.decode_prediction`; these tests generate
records of every shape -- valid, invalid, with NaN literals, odd types in
every field -- and compare both decoders record for record.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.records import (
    InvalidRecord,
    PredictionRecord,
    decode_prediction,
    decode_predictions,
)

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(1 << 70), max_value=1 << 70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
_VALUES = st.one_of(
    _SCALARS,
    st.lists(_SCALARS, max_size=2),
    st.dictionaries(st.text(max_size=3), _SCALARS, max_size=2),
)
_TIMESTAMPS = st.one_of(
    _VALUES,
    st.sampled_from(
        [
            "2026-11-22T09:15:00.123Z",
            "2026-11-22T09:15:00+02:00",
            "2026-11-22T09:15:00",  # naive: bad_timestamp
            "0001-01-01T00:00+01:00",
            "not a time",
            1795338900123,
            1795338900123.5,
            -5,
            1e300,
        ]
    ),
)
_PREDICTIONS = st.one_of(
    _VALUES,
    st.fixed_dictionaries({}, optional={"label": _SCALARS, "score": _SCALARS, "x": _SCALARS}),
)
_MISSING = object()


@st.composite
def documents(draw: st.DrawFn) -> Any:
    """A JSON document that is mostly record-shaped, with any field possibly odd or absent."""
    if draw(st.integers(0, 20)) == 0:
        return draw(_VALUES)  # not an object at all
    doc: dict[str, Any] = {}
    fields = {
        "model": st.one_of(st.sampled_from(["credit", ""]), _VALUES),
        "model_version": st.one_of(st.sampled_from(["7", 7, None]), _VALUES),
        "request_id": st.one_of(st.sampled_from(["r-1", 12, None, ""]), _VALUES),
        "timestamp": _TIMESTAMPS,
        "features": st.one_of(
            st.dictionaries(st.sampled_from(["a", "b", "c", "d\x00"]), _SCALARS, max_size=4),
            st.dictionaries(st.text(max_size=3), _VALUES, max_size=3),
            _VALUES,
        ),
        "prediction": _PREDICTIONS,
        "explanations": st.one_of(
            st.none(), st.dictionaries(st.sampled_from(["a", "b"]), _SCALARS, max_size=2), _VALUES
        ),
    }
    for name, strategy in fields.items():
        if draw(st.integers(0, 6)) > 0:
            doc[name] = draw(strategy)
    return doc


def _encode(doc: Any, how: int) -> bytes | None:
    try:
        if how == 0:
            return orjson.dumps(doc)  # NaN and infinities become null
    except (TypeError, orjson.JSONEncodeError):
        pass
    return json.dumps(doc).encode()  # NaN and Infinity literals


def _same(a: object, b: object) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, InvalidRecord):
        return a == b
    assert isinstance(a, PredictionRecord)
    assert isinstance(b, PredictionRecord)
    # NaN is never equal to itself: compare the JSON of both (NaN can only sit in a
    # feature that the decoders turned into None, so this is exact).
    return repr(a) == repr(b) and not any(
        isinstance(v, float) and math.isnan(v) for v in a.features.values()
    )


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(documents(), st.integers(0, 1)), min_size=1, max_size=8),
    st.one_of(st.none(), st.sampled_from([-1.0, 0.0, 1795338900000.0, 1e20])),
    st.sampled_from([40, 1 << 20]),
)
def test_the_batch_decoder_equals_one_by_one(
    docs: list[tuple[Any, int]], fallback: float | None, max_bytes: int
) -> None:
    values: list[Any] = [_encode(doc, how) for doc, how in docs]
    values += [None, b"", b"  ", b"{", b"[1]", "{}", bytearray(b'{"model": "m"}')]
    fallbacks = [fallback] * len(values)
    batch = decode_predictions(values, fallbacks, max_bytes=max_bytes)
    single = [decode_prediction(v, fallback, max_bytes=max_bytes) for v in values]
    assert len(batch) == len(single)
    for raw, got, expected in zip(values, batch, single, strict=True):
        assert _same(got, expected), (raw, got, expected)


def test_the_common_shape_takes_the_inline_path_with_ints_as_floats() -> None:
    raw = (
        b'{"model": "credit", "model_version": 7, "request_id": 12,'
        b' "timestamp": "2026-11-22T09:15:00.5Z", "features": {"age": 42, "region": "EU",'
        b' "ok": true, "x": null, "income": 1.5},'
        b' "prediction": {"label": "approve", "score": 1}, "explanations": {"age": 0.5}}'
    )
    [record] = decode_predictions([raw], [None])
    assert record == decode_prediction(raw)
    assert isinstance(record, PredictionRecord)
    assert record.model_version == "7"
    assert record.request_id == "12"
    assert record.event_time == 1795338900.5
    assert record.features == {"age": 42.0, "region": "EU", "ok": True, "x": None, "income": 1.5}
    assert type(record.features["age"]) is float
    assert record.prediction == {"label": "approve", "score": 1.0}
    assert type(record.prediction["score"]) is float
