"""Bad input: thousands of malformed records of every kind never stop the service.

A seeded stream of valid predictions is interleaved with 2,800 invalid
records -- malformed JSON (including empty values and tombstones), JSON that
is not an object, missing fields, wrong types, bad timestamps, records over
``max_record_bytes``, unknown models and non-finite scores. The service must
count every valid record (``driftline_records_total``, and window rows that
add up to what was produced), dead-letter every invalid one with its reason
header (the count per reason, and the very bytes, match), count them in
``driftline_records_invalid_total`` by model and reason, and keep running.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from monitor.records import InvalidRecord, decode_prediction, route
from monitor.streaming.ingest import REASON_HEADER, SOURCE_HEADER
from tests.servers import unique_name
from tests.service.harness import (
    PARTITIONS,
    Names,
    create_topics,
    opened,
    produce,
    running_service,
    sample,
    store_reference,
    summaries,
    wait_until,
    write_config,
)
from tests.service.streams import Stream

pytestmark = pytest.mark.integration

STREAM = Stream(model="credit", windows=7, per_window=200, drift_from=3)
PER_KIND = 350
MAX_RECORD_BYTES = 4096
SEED = 99


def bad_record(kind: str, i: int) -> tuple[bytes | None, str, str]:
    """Invalid record number ``i`` of ``kind``: ``(value, metric model label, reason)``."""
    ts = 1_800_000_000_000 + i
    ok = {"model": "credit", "features": {"amount": i}, "prediction": 0.5, "timestamp": ts}

    def doc(**changes: object) -> bytes:
        fields = {**ok, **changes}
        return orjson.dumps({k: v for k, v in fields.items() if v is not _DROP})

    variant = i % 4
    if kind == "malformed_json":
        values: list[bytes | None] = [
            doc()[:-1],  # truncated
            b"\xff\xfe" + doc(),  # not UTF-8
            f"not json {i}".encode(),
            None if i % 8 == 3 else b"",  # a tombstone, an empty value
        ]
        return values[variant], "unknown", kind
    if kind == "not_an_object":
        return [f"[{i}, 2]", f'"{i}"', f"{i}", "null"][variant].encode(), "unknown", kind
    if kind == "missing_field":
        if variant == 3:  # no model: nothing to attribute it to
            return doc(model=_DROP), "unknown", kind
        field = ("features", "prediction", "prediction")[variant]
        return doc(**{field: _DROP} if variant < 2 else {field: None}), "credit", kind
    if kind == "wrong_type":
        if variant == 3:
            return doc(model=i), "unknown", kind
        change = [{"features": [i]}, {"prediction": [i]}, {"features": {"a": {"b": i}}}][variant]
        return doc(**change), "credit", kind
    if kind == "bad_timestamp":
        stamp = [f"yesterday {i}", "2026-11-22T09:15:00", f"2026-13-{i % 28 + 1:02d}T00:00:00Z"]
        return doc(timestamp=stamp[variant % 3]), "credit", kind
    if kind == "oversized":  # rejected before parsing: no model known
        return doc(features={"blob": "x" * (MAX_RECORD_BYTES + i % 100)}), "unknown", kind
    if kind == "unknown_model":
        return doc(model=f"other-model-{i % 7}"), "unknown", kind
    if kind == "non_finite":
        literal = [b"NaN", b'{"score": NaN}', b"Infinity", b'{"score": -Infinity}'][variant]
        return doc(prediction=_MARK).replace(f'"{_MARK}"'.encode(), literal), "credit", kind
    raise AssertionError(kind)


_DROP = object()
_MARK = "__non_finite__"
KINDS = (
    "malformed_json",
    "not_an_object",
    "missing_field",
    "wrong_type",
    "bad_timestamp",
    "oversized",
    "unknown_model",
    "non_finite",
)


def mixed_stream() -> tuple[
    list[tuple[bytes, bytes | None]], Counter[tuple[str, str]], list[bytes | None]
]:
    """Valid records (in order) with the invalid ones shuffled in between, seeded."""
    valid = [r for i in range(STREAM.windows) for r in STREAM.records(i)]
    bad = []
    expected: Counter[tuple[str, str]] = Counter()
    for kind in KINDS:
        for i in range(PER_KIND):
            value, model, reason = bad_record(kind, i)
            # The specimen really is what it is meant to be.
            decoded = route(
                decode_prediction(value, 1_800_000_000_000, max_bytes=MAX_RECORD_BYTES), {"credit"}
            )
            assert isinstance(decoded, InvalidRecord), (kind, i, value)
            assert (decoded.model or "unknown", decoded.reason.value) == (model, reason), (kind, i)
            bad.append((f"bad-{kind}-{i}".encode(), value))
            expected[(model, reason)] += 1
    rng = random.Random(SEED)
    rng.shuffle(bad)
    # Interleave: the valid records keep their order, the bad ones land at random places.
    slots = sorted(rng.sample(range(len(valid) + len(bad)), len(bad)))
    mixed, v, b = [], iter(valid), iter(bad)
    taken = set(slots)
    for position in range(len(valid) + len(bad)):
        mixed.append(next(b) if position in taken else next(v))
    return mixed, expected, [value for _, value in bad]


def read_dead_letters(bootstrap: str, topic: str, expected: int) -> list:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        letters: list = []
        for _ in range(100):
            for messages in consumer.poll(timeout_ms=200).values():
                letters += messages
            if len(letters) >= expected:
                break
        return letters
    finally:
        consumer.close()


def test_every_bad_record_is_dead_lettered_and_every_good_one_counted(
    kafka_broker, tmp_path: Path
) -> None:
    bootstrap = kafka_broker.bootstrap
    names = Names.fresh(STREAM.model)
    create_topics(bootstrap, [names.predictions, names.labels, names.dead_letter])
    url = f"sqlite:///{tmp_path / 'bad.db'}"
    config = write_config(
        tmp_path / "bad.yaml",
        bootstrap=bootstrap,
        names=names,
        group=unique_name("bad"),
        database_url=url,
        consumer={"max_record_bytes": MAX_RECORD_BYTES},
    )
    store_reference(url, config, STREAM)
    mixed, expected, bad_values = mixed_stream()
    valid_count = STREAM.windows * STREAM.per_window
    invalid_count = len(bad_values)
    assert len(mixed) == valid_count + invalid_count
    assert invalid_count == len(KINDS) * PER_KIND
    evaluated = [STREAM.window_start(i) for i in range(STREAM.windows - 1)]

    with running_service(config) as service, opened(url) as store:
        produce(bootstrap, names.predictions, mixed)
        counted = {"model": STREAM.model}
        wait_until(
            lambda: (
                sample(service, "driftline_records_total", counted) == valid_count
                and [s.window_start for s in summaries(store, STREAM.model)] == evaluated
            ),
            45,
            lambda: (
                f"counted {sample(service, 'driftline_records_total', counted)} of "
                f"{valid_count}; windows {len(summaries(store, STREAM.model))}"
            ),
        )
        invalid = {
            key: sample(
                service, "driftline_records_invalid_total", {"model": key[0], "reason": key[1]}
            )
            for key in expected
        }
        assert invalid == {key: float(n) for key, n in expected.items()}
        assert service._thread.is_alive(), "the ingestion thread stopped"
        windows = summaries(store, STREAM.model)

    assert [w.rows for w in windows] == [STREAM.per_window] * (STREAM.windows - 1)
    assert all(w.status == "ok" for w in windows)
    letters = read_dead_letters(bootstrap, names.dead_letter, invalid_count)
    reasons = Counter(dict(m.headers)[REASON_HEADER].decode() for m in letters)
    per_reason: Counter[str] = Counter()
    for (_, reason), n in expected.items():
        per_reason[reason] += n
    assert reasons == per_reason
    assert set(per_reason) == set(KINDS)
    # Exactly the invalid records, each once, with its source offset.
    assert Counter(m.value for m in letters) == Counter(bad_values)
    sources = {dict(m.headers)[SOURCE_HEADER].decode() for m in letters}
    assert len(sources) == invalid_count
    assert all(s.startswith(f"{names.predictions}/") for s in sources)
