"""Poison records: one huge record, or a dead-letter topic that refuses it, never stops ingestion.

A prediction record of 2 or 5 MB gets onto the topic (gzip shrinks it under
the broker's default ``message.max.bytes``, or a broker that allows it takes
it uncompressed). At the default ``consumer.max_record_bytes`` (1 MiB) it is
``oversized``: it must reach the dead-letter topic cut to
``dead_letter.max_value_bytes`` (64 KiB) and marked, while the valid records
around it are counted in their windows and the service keeps consuming.

When the dead-letter write itself cannot succeed -- too large for the
producer, a topic the client refuses, a topic that does not exist for longer
than the retry timeout -- the record is counted in
``driftline_dead_letter_failures_total{reason}`` and skipped: the partition
still advances. When the topic's own limit is below the cap, the reason and
source coordinates still get there.

And when ingestion does stop on an error it cannot recover from, ``driftline
run`` exits non-zero (1), so that a supervisor restarts it and alerts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from prometheus_client import CollectorRegistry

from monitor.config.service import ServiceConfig
from monitor.service.run import IngestionError, Service
from monitor.streaming.dead_letter import REASON_HEADER, SOURCE_HEADER, TRUNCATED_HEADER
from tests.apache_kafka import KafkaFactory
from tests.servers import read_topic, unique_name
from tests.service.harness import (
    PARTITIONS,
    MonitorPool,
    Names,
    create_topics,
    opened,
    running_service,
    sample,
    store_reference,
    stored_offsets,
    summaries,
    wait_until,
    write_config,
)
from tests.service.streams import Stream

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
CAP = 64 * 1024  # the default dead_letter.max_value_bytes
STREAM = Stream(model="credit", windows=4, per_window=120, drift_from=2)
SMALL = Stream(model="credit", windows=2, per_window=100, drift_from=5)
FAILURES = "driftline_dead_letter_failures_total"
INVALID = "driftline_records_invalid_total"
OVERSIZED = {"model": "unknown", "reason": "oversized"}

Record = tuple[bytes | None, bytes | None]


def poison(size: int) -> bytes:
    """A prediction record of ``size`` bytes and more: well formed, huge, very compressible."""
    return (
        b'{"model": "credit", "prediction": 0.5, "timestamp": 1800000000000, '
        b'"features": {"amount": 1.0, "note": "' + b"x" * size + b'"}}'
    )


def send_all(
    bootstrap: str, topic: str, records: Sequence[Record], compression: str | None
) -> list[tuple[int, int]]:
    """Produce ``records`` in order; return each one's ``(partition, offset)``.

    kafka-python checks a record's *uncompressed* size against
    ``max_request_size`` before compressing, so that limit is raised here; the
    broker checks the compressed batch against ``message.max.bytes``.
    """
    client = KafkaProducer(
        bootstrap_servers=bootstrap,
        compression_type=compression,
        max_request_size=32 * MIB,
        enable_idempotence=False,
        acks=1,
        linger_ms=5,
    )
    try:
        futures = [client.send(topic, key=key, value=value) for key, value in records]
        client.flush(timeout=60)
        return [(m.partition, m.offset) for m in (f.get(timeout=10) for f in futures)]
    finally:
        client.close(timeout=5)


def ends_of(placed: Sequence[tuple[int, int]]) -> dict[int, int]:
    """``{partition: next offset after the last record produced}``."""
    ends: dict[int, int] = {}
    for partition, offset in placed:
        ends[partition] = max(ends.get(partition, 0), offset + 1)
    return ends


def topic_size(bootstrap: str, topic: str) -> int:
    """Records in ``topic`` (end offsets: exact on Apache Kafka)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def with_sections(path: Path, **sections: dict[str, Any]) -> Path:
    """Add top-level ``sections`` (e.g. ``dead_letter``) to the config at ``path``."""
    data = yaml.safe_load(path.read_text())
    data.update(sections)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    ServiceConfig.load(path)
    return path


def all_stored(url: str, group: str, topic: str, ends: dict[int, int]) -> bool:
    """Every partition's checkpointed offset is past its last produced record."""
    with opened(url) as store:
        stored = stored_offsets(store, group, topic)
    return all(stored.get(p) == end for p, end in ends.items())


# --- a poison record is dead-lettered, cut to fit -------------------------------------------


@pytest.mark.parametrize(
    "broker_limit",
    [
        pytest.param("default-gzip", id="default-message.max.bytes-gzip"),
        pytest.param("raised", id="raised-message.max.bytes-uncompressed"),
    ],
)
def test_records_far_over_the_limit_are_dead_lettered_cut_and_ingestion_goes_on(
    broker_limit: str, kafka_broker, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if broker_limit == "raised":
        factory: KafkaFactory = request.getfixturevalue("kafka_factory")
        bootstrap = factory(properties={"message.max.bytes": str(16 * MIB)}).bootstrap
        compression = None
    else:
        bootstrap, compression = kafka_broker.bootstrap, "gzip"
    names = Names.fresh(STREAM.model)
    create_topics(bootstrap, [names.predictions, names.labels, names.dead_letter])
    url = f"sqlite:///{tmp_path / 'poison.db'}"
    group = unique_name("poison")
    config = write_config(
        tmp_path / "poison.yaml", bootstrap=bootstrap, names=names, group=group, database_url=url
    )
    assert ServiceConfig.load(config).consumer.max_record_bytes == MIB  # the default
    store_reference(url, config, STREAM)
    two, five = poison(2_000_000), poison(5_000_000)
    records: list[Record] = [
        *STREAM.records(0),
        *STREAM.records(1),
        (b"poison-2mb", two),
        *STREAM.records(2),
        (b"poison-5mb", five),
        *STREAM.records(3),
    ]
    valid_count = STREAM.windows * STREAM.per_window
    evaluated = [STREAM.window_start(i) for i in range(STREAM.windows - 1)]

    with running_service(config) as service, opened(url) as store:
        placed = send_all(bootstrap, names.predictions, records, compression)
        (label_at,) = send_all(bootstrap, names.labels, [(b"poison-label", two)], compression)
        counted = {"model": STREAM.model}
        pred_ends = ends_of(placed)
        wait_until(
            lambda: (
                sample(service, "driftline_records_total", counted) == valid_count
                and [s.window_start for s in summaries(store, STREAM.model)] == evaluated
                and all_stored(url, group, names.predictions, pred_ends)
                and all_stored(url, group, names.labels, ends_of([label_at]))
            ),
            60,
            lambda: (
                f"counted {sample(service, 'driftline_records_total', counted)} of {valid_count};"
                f" windows {len(summaries(store, STREAM.model))}; invalid "
                f"{sample(service, INVALID, OVERSIZED)}; dead-letter failures "
                f"{[sample(service, FAILURES, {'reason': r}) for r in ('too_large', 'rejected')]}"
            ),
        )
        assert sample(service, INVALID, OVERSIZED) == 3.0
        assert sample(service, FAILURES, {"reason": "too_large"}) is None
        assert service._thread.is_alive(), "the ingestion thread stopped"
        assert service.failure is None
        windows = summaries(store, STREAM.model)

    assert [w.rows for w in windows] == [STREAM.per_window] * (STREAM.windows - 1)
    # The partitions holding the poison records moved past them.
    for key, value in ((b"poison-2mb", two), (b"poison-5mb", five)):
        partition, offset = placed[records.index((key, value))]
        assert pred_ends[partition] > offset + 1, "no valid record followed the poison"
    letters = read_topic(bootstrap, names.dead_letter, 3)
    by_key = {m.key: m for m in letters}
    assert sorted(by_key) == [b"poison-2mb", b"poison-5mb", b"poison-label"]
    sources = {
        b"poison-2mb": (names.predictions, placed[records.index((b"poison-2mb", two))]),
        b"poison-5mb": (names.predictions, placed[records.index((b"poison-5mb", five))]),
        b"poison-label": (names.labels, label_at),
    }
    for key, original in ((b"poison-2mb", two), (b"poison-5mb", five), (b"poison-label", two)):
        letter = by_key[key]
        headers = dict(letter.headers)
        topic, (partition, offset) = sources[key]
        assert letter.value == original[:CAP]
        assert headers[TRUNCATED_HEADER] == str(len(original)).encode()
        assert headers[REASON_HEADER] == b"oversized"
        assert headers[SOURCE_HEADER] == f"{topic}/{partition}/{offset}".encode()


def test_a_dead_letter_topic_with_a_small_limit_still_gets_the_coordinates(
    kafka_broker, tmp_path: Path
) -> None:
    """The topic's ``max.message.bytes`` is below the cap: the headers alone get there."""
    bootstrap = kafka_broker.bootstrap
    names = Names.fresh(SMALL.model)
    create_topics(bootstrap, [names.predictions, names.labels])
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        limited = {"max.message.bytes": "4096"}
        admin.create_topics([NewTopic(names.dead_letter, PARTITIONS, 1, topic_configs=limited)])
    finally:
        admin.close()
    url = f"sqlite:///{tmp_path / 'small.db'}"
    group = unique_name("small-limit")
    config = write_config(
        tmp_path / "small.yaml", bootstrap=bootstrap, names=names, group=group, database_url=url
    )
    store_reference(url, config, SMALL)
    big = poison(2_000_000)
    records: list[Record] = [
        *SMALL.records(0),
        (b"poison", big),
        (b"bad-1", b"not json"),
        *SMALL.records(1),
    ]
    valid_count = SMALL.windows * SMALL.per_window

    with running_service(config) as service:
        placed = send_all(bootstrap, names.predictions, records, "gzip")
        ends = ends_of(placed)
        wait_until(
            lambda: (
                sample(service, "driftline_records_total", {"model": SMALL.model}) == valid_count
                and all_stored(url, group, names.predictions, ends)
            ),
            45,
            "the records after the poison were not all consumed and checkpointed",
        )
        assert sample(service, FAILURES, {"reason": "too_large"}) is None
        assert service._thread.is_alive()

    letters = {m.key: m for m in read_topic(bootstrap, names.dead_letter, 2)}
    assert letters[b"bad-1"].value == b"not json"
    bare = letters.get(None)
    assert bare is not None, f"no letter without key among {sorted(map(str, letters))}"
    headers = dict(bare.headers)
    partition, offset = placed[records.index((b"poison", big))]
    assert bare.value == b""
    assert headers[TRUNCATED_HEADER] == str(len(big)).encode()
    assert headers[REASON_HEADER] == b"oversized"
    assert headers[SOURCE_HEADER] == f"{names.predictions}/{partition}/{offset}".encode()


# --- a dead letter that cannot be written is counted and skipped ----------------------------


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param("producer-limit", id="max_request_size-tiny"),
        pytest.param("internal-topic", id="dead-letter-topic-internal"),
        pytest.param("missing-topic", id="dead-letter-topic-missing-retries-exhausted"),
    ],
)
def test_a_dead_letter_that_cannot_be_written_is_counted_and_the_partition_advances(
    failure: str, kafka_broker, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    names = Names.fresh(SMALL.model)
    client_options: dict[str, Any] = {}
    sections: dict[str, dict[str, Any]] = {}
    create = [names.predictions, names.labels, names.dead_letter]
    bootstrap = kafka_broker.bootstrap
    if failure == "producer-limit":
        # Not even the headers fit: refused by the producer itself (MessageSizeTooLargeError).
        client_options = {"max_request_size": 100}
        reason = "too_large"
    elif failure == "internal-topic":
        names = dataclasses.replace(names, dead_letter="__consumer_offsets")
        create = create[:2]
        reason = "rejected"  # kafka-python refuses to send there (no partition to assign)
    else:
        # No such topic and no auto-creation: metadata never comes (a retriable timeout),
        # until dead_letter.retry_timeout_s has passed.
        factory: KafkaFactory = request.getfixturevalue("kafka_factory")
        bootstrap = factory(properties={"auto.create.topics.enable": "false"}).bootstrap
        create = create[:2]
        client_options = {"max_block_ms": 500}
        sections = {"dead_letter": {"retry_timeout_s": 2}}
        reason = "retries_exhausted"
    create_topics(bootstrap, create)
    url = f"sqlite:///{tmp_path / 'fail.db'}"
    group = unique_name("dead-fail")
    config = write_config(
        tmp_path / "fail.yaml",
        bootstrap=bootstrap,
        names=names,
        group=group,
        database_url=url,
        client_options=client_options,
    )
    with_sections(config, **sections)
    store_reference(url, config, SMALL)
    bad: list[Record] = [(f"bad-{i}".encode(), f"not json {i}".encode()) for i in range(4)]
    records: list[Record] = [
        *SMALL.records(0),
        (b"poison", poison(2_000_000)),
        bad[0],
        bad[1],
        *SMALL.records(1),
        bad[2],
        bad[3],
    ]
    invalid_count = 5
    valid_count = SMALL.windows * SMALL.per_window
    counted = {"model": SMALL.model}

    with running_service(config) as service:
        placed = send_all(bootstrap, names.predictions, records, "gzip")
        ends = ends_of(placed)
        wait_until(
            lambda: (
                sample(service, FAILURES, {"reason": reason}) == invalid_count
                and sample(service, "driftline_records_total", counted) == valid_count
                and all_stored(url, group, names.predictions, ends)
            ),
            60,
            lambda: (
                f"failures {sample(service, FAILURES, {'reason': reason})} of {invalid_count}; "
                f"counted {sample(service, 'driftline_records_total', counted)} of "
                f"{valid_count}; stored {all_stored(url, group, names.predictions, ends)}"
            ),
        )
        invalid = (
            sample(service, INVALID, OVERSIZED),
            sample(service, INVALID, {"model": "unknown", "reason": "malformed_json"}),
        )
        assert invalid == (1.0, 4.0)  # the accounting of the records themselves stands
        assert service._thread.is_alive(), "the ingestion thread stopped"
        assert service.failure is None
    if failure == "producer-limit":
        assert topic_size(bootstrap, names.dead_letter) == 0


# --- a fatal error stops `driftline run` with a non-zero status -----------------------------


def test_run_exits_non_zero_when_ingestion_stops_on_an_unrecoverable_error(
    kafka_broker, tmp_path: Path, monitors: MonitorPool
) -> None:
    """The broker refuses the group join for good: ``driftline run`` must not exit 0.

    A session timeout above the broker's ``group.max.session.timeout.ms``
    (30 min by default) makes every JoinGroup fail with
    ``InvalidSessionTimeoutError``, which is not retriable: the consumer
    raises it from ``poll``, out of the ingest loop.
    """
    bootstrap = kafka_broker.bootstrap
    names = Names.fresh(SMALL.model)
    create_topics(bootstrap, [names.predictions, names.labels, names.dead_letter])
    url = f"sqlite:///{tmp_path / 'fatal.db'}"
    config = write_config(
        tmp_path / "fatal.yaml",
        bootstrap=bootstrap,
        names=names,
        group=unique_name("fatal"),
        database_url=url,
        consumer={"session_timeout_ms": 3_600_000},
    )
    store_reference(url, config, SMALL)
    monitor = monitors.new(config, "fatal").start()
    assert monitor.process is not None
    try:
        status = monitor.process.wait(60)
    except Exception:
        pytest.fail(f"driftline run kept running without consuming:\n{monitors.logs()}")
    log = monitor.log()
    assert status == 1, f"exit status {status}:\n{log[-4000:]}"
    assert "InvalidSessionTimeoutError" in log
    assert "driftline run: ingestion stopped on an unrecoverable error" in log


class _FailingIngestor:
    """Stands in for the ingestor: the real one is closed, then an error escapes ``run``."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def run(self, stop: Any) -> None:
        self.real.close()
        raise RuntimeError("a bug in the ingest loop")


def test_service_run_raises_when_the_ingestion_thread_dies(kafka_broker, tmp_path: Path) -> None:
    """Unit test of :meth:`Service.run`'s propagation (the one fake of this file)."""
    bootstrap = kafka_broker.bootstrap
    names = Names.fresh(SMALL.model)
    create_topics(bootstrap, [names.predictions, names.labels, names.dead_letter])
    url = f"sqlite:///{tmp_path / 'thread.db'}"
    config = write_config(
        tmp_path / "thread.yaml",
        bootstrap=bootstrap,
        names=names,
        group=unique_name("thread"),
        database_url=url,
    )
    store_reference(url, config, SMALL)
    service = Service(ServiceConfig.load(config), registry=CollectorRegistry())
    service.ingestor = _FailingIngestor(service.ingestor)  # type: ignore[assignment]
    with pytest.raises(IngestionError, match="RuntimeError: a bug in the ingest loop") as caught:
        service.run()
    assert isinstance(caught.value.cause, RuntimeError)
    assert caught.value.__cause__ is caught.value.cause
    assert not service._thread.is_alive()
