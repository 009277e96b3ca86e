"""Stored partials: format 2 is small and exact, and format-1 payloads (plain JSON) still read."""

from __future__ import annotations

import struct
import zlib
from types import SimpleNamespace

import numpy as np
import orjson
import pandas as pd
import pytest

from detectors.errors import IncompatibleSketchError, StateVersionError
from detectors.sketch import (
    CategoricalSketch,
    CategoricalSpec,
    NumericSketch,
    NumericSpec,
    WindowSketch,
)
from monitor.analyses.attribution import records_attribution
from monitor.analyses.model import ModelRuntime
from monitor.analyses.reference import build_profile
from monitor.config.service import ModelConfig
from monitor.records import PredictionRecord
from monitor.streaming.partials import (
    MAGIC,
    NumericColumns,
    PartialParts,
    decode_varints,
    encode_varints,
    partial_from_bytes,
    parts_to_bytes,
    sketch_to_bytes,
)
from monitor.streaming.sketching import record_keys, sketch_records
from tests.test_window_sample import runtime_and_records

X = NumericSpec(name="x", edges=np.array([0.0, 1.0, 2.0]), coarse_edges=np.array([1.0]))
C = CategoricalSpec(name="c", categories=("a", "b"))
TINY = SimpleNamespace(specs={"x": X, "c": C})

#: Written by driftline before format 2 (``orjson.dumps`` of ``WindowSketch.to_dict()``).
FORMAT_1 = (
    b'{"profile_version":3,"sketch":{"format":"driftline.sketch","version":2,"rows":5,'
    b'"features":{"x":{"counts":[1,2,0,1],"missing":1,"infinite":0,"invalid":0,"min":-0.5,'
    b'"max":2.5,"total":3.25,"total_sq":7.5625,"under_sum":-0.5,"over_sum":2.5},'
    b'"c":{"counts":[2,0],"unseen":2,"top_unseen":{"z":2},"missing":1}}}}'
)


def tiny_sketch() -> WindowSketch:
    return WindowSketch(
        rows=5,
        features={
            "x": NumericSketch.from_values(X, np.array([-0.5, 0.25, 1.0, 2.5]), missing=1),
            "c": CategoricalSketch.from_counts(C, {"a": 2, "z": 2}, missing=1),
        },
    )


def bits(sketch: NumericSketch) -> bytes:
    """The float fields bit for bit (NaN included)."""
    fields = (sketch.min, sketch.max, sketch.total, sketch.total_sq)
    return struct.pack("<6d", *fields, sketch.under_sum, sketch.over_sum)


def fleet_model(features: int = 30, seed: int = 0) -> tuple[ModelRuntime, list[PredictionRecord]]:
    """A model of ``features`` numeric features plus its prediction, and 100 odd records."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"f{i:02d}": rng.normal(size=5000) for i in range(features)})
    frame["prediction"] = rng.random(5000)
    config = ModelConfig.model_validate(
        {
            "name": "m",
            "prediction": {"field": "score"},
            "attribution": {"source": "explanations"},
        }
    )
    runtime = ModelRuntime(config, build_profile(config, frame), 4)
    records = []
    for i in range(100):
        row: dict[str, object] = {f"f{j:02d}": float(v) for j, v in enumerate(rng.normal(size=30))}
        row["f00"] = [None, float("inf"), "n/a", 1e300][i % 4] if i < 8 else row["f00"]
        row.pop("f01") if i == 3 else None
        records.append(
            PredictionRecord(
                model="m",
                model_version=None,
                request_id=None,
                event_time=float(i),
                features=row,  # type: ignore[arg-type]
                prediction={"label": None, "score": float(rng.random())},
                explanations={"f02": float(rng.normal())},
            )
        )
    return runtime, records


def test_format_1_payloads_still_read() -> None:
    stored = partial_from_bytes(FORMAT_1, lambda version: TINY)  # type: ignore[arg-type,return-value]
    assert stored.profile_version == 3
    assert stored.sketch == tiny_sketch()
    assert stored.sketch.features["x"].counts.tolist() == [1, 2, 0, 1]
    assert stored.attribution is None
    assert stored.performance is None


def test_format_2_round_trips_bit_for_bit() -> None:
    runtime, records = fleet_model()
    sketch = sketch_records(runtime, records)
    attribution = records_attribution(records)
    payload = sketch_to_bytes(4, sketch, attribution)
    assert payload.startswith(MAGIC)
    stored = partial_from_bytes(payload, lambda version: runtime.profile)
    assert stored.profile_version == 4
    assert stored.sketch == sketch
    assert stored.attribution == attribution
    assert list(stored.sketch.features) == list(sketch.features)
    for name, original in sketch.features.items():
        copy = stored.sketch.features[name]
        assert isinstance(original, NumericSketch)
        assert isinstance(copy, NumericSketch)
        assert bits(copy) == bits(original)
        assert copy.counts.dtype == np.int64
    x = sketch.features["f00"]
    assert isinstance(x, NumericSketch)
    assert (x.missing, x.infinite, x.invalid) == (2, 2, 2)  # the odd values are kept apart


def test_categorical_sketches_and_row_samples_round_trip() -> None:
    sketch = tiny_sketch()
    stored = partial_from_bytes(sketch_to_bytes(3, sketch), lambda version: TINY)  # type: ignore[arg-type,return-value]
    assert stored.sketch == sketch
    assert bits(stored.sketch.features["x"]) == bits(sketch.features["x"])  # type: ignore[arg-type]
    runtime, records = runtime_and_records(300, 2)
    sampled = sketch_records(runtime, records, keys=record_keys(0, range(300)))
    assert sampled.sample is not None
    stored = partial_from_bytes(sketch_to_bytes(1, sampled), lambda version: runtime.profile)
    assert stored.sketch == sampled
    assert stored.sketch.sample == sampled.sample


def test_an_empty_numeric_sketch_round_trips() -> None:
    empty = WindowSketch(
        rows=2,
        features={
            "x": NumericSketch.from_values(X, np.array([]), missing=2),
            "c": CategoricalSketch.from_counts(C, {}, missing=2),
        },
    )
    stored = partial_from_bytes(sketch_to_bytes(1, empty), lambda version: TINY)  # type: ignore[arg-type,return-value]
    assert stored.sketch == empty
    assert np.isnan(stored.sketch.features["x"].min)  # type: ignore[union-attr]


def test_a_100_record_partial_of_30_features_fits_in_4_kb() -> None:
    runtime, records = fleet_model()
    sketch = sketch_records(runtime, records, keys=record_keys(0, range(100)))
    payload = sketch_to_bytes(4, sketch)
    old = orjson.dumps({"profile_version": 4, "sketch": sketch.to_dict()})
    assert len(payload) <= 4096
    assert len(old) > 10 * len(payload)


def test_merging_decoded_partials_equals_the_sketch_of_all_rows() -> None:
    runtime, records = fleet_model(seed=1)
    parts = [records[:37], records[37:38], records[38:]]
    decoded = [
        partial_from_bytes(
            sketch_to_bytes(4, sketch_records(runtime, part)), lambda v: runtime.profile
        )
        for part in parts
    ]
    merged = decoded[0].sketch.merge(decoded[1].sketch).merge(decoded[2].sketch)
    whole = sketch_records(runtime, records)
    assert merged == whole
    for name, sketch in whole.features.items():
        assert np.array_equal(merged.features[name].counts, sketch.counts)


@pytest.mark.parametrize(
    "values",
    [[], [0], [127, 128, 16383, 16384], [2**63, 2**64 - 1, 1, 0, 300], list(range(0, 5000, 7))],
)
def test_varints_round_trip(values: list[int]) -> None:
    array = np.array(values, dtype=np.uint64)
    encoded = encode_varints(array)
    decoded, end = decode_varints(b"xx" + encoded + b"\x05", 2, len(values))
    assert decoded.tolist() == values
    assert end == 2 + len(encoded)


def test_a_truncated_or_corrupt_payload_is_refused_with_an_explanation() -> None:
    runtime, records = fleet_model()
    payload = sketch_to_bytes(4, sketch_records(runtime, records[:10]))
    with pytest.raises(IncompatibleSketchError, match="not readable"):
        partial_from_bytes(payload[:-20], lambda v: runtime.profile)
    with pytest.raises(IncompatibleSketchError, match="truncated"):
        decode_varints(encode_varints(np.array([1, 2, 300], dtype=np.uint64))[:-1], 0, 3)


def test_a_newer_partial_format_is_refused() -> None:
    raw = zlib.decompress(sketch_to_bytes(3, tiny_sketch())[len(MAGIC) :])
    size = int.from_bytes(raw[:4], "little")
    header = orjson.loads(raw[4 : 4 + size])
    header["version"] = 99
    head = orjson.dumps(header)
    newer = MAGIC + zlib.compress(len(head).to_bytes(4, "little") + head + raw[4 + size :])
    with pytest.raises(StateVersionError, match="upgrade driftline"):
        partial_from_bytes(newer, lambda version: TINY)  # type: ignore[arg-type,return-value]


def test_many_partials_encoded_together_are_the_partials_encoded_alone() -> None:
    runtime, records = fleet_model(seed=3)
    only_categorical = WindowSketch(
        rows=4, features={"c": CategoricalSketch.from_counts(C, {"a": 3, "q": 1})}
    )
    crowded = WindowSketch(  # many values a bin: counts are stored, not one position each
        rows=1000,
        features={
            "x": NumericSketch.from_values(X, np.random.default_rng(0).normal(1, 1, 1000)),
            "c": CategoricalSketch.from_counts(C, {"b": 1000}),
        },
    )
    sketches = [
        sketch_records(runtime, records[:1]),
        crowded,
        tiny_sketch(),
        only_categorical,
        sketch_records(runtime, records),
        sketch_records(runtime, []),
    ]
    alone = [sketch_to_bytes(2, s) for s in sketches]
    together = parts_to_bytes(
        [
            PartialParts(
                2,
                s.rows,
                list(s.features),
                NumericColumns.of(
                    {n: f for n, f in s.features.items() if isinstance(f, NumericSketch)}
                ),
                {n: f for n, f in s.features.items() if isinstance(f, CategoricalSketch)},
            )
            for s in sketches
        ]
    )
    assert together == alone
    for payload, sketch in zip(alone, sketches, strict=True):
        profile = TINY if "f00" not in sketch.features else runtime.profile
        assert partial_from_bytes(payload, lambda v, p=profile: p).sketch == sketch  # type: ignore[arg-type,misc]
