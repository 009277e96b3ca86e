"""Consumer lag and transactional upstreams, on Apache Kafka.

(a) ``driftline_consumer_lag_records`` is the exact lag: after producing N
records to a partition and consuming M of them it is N - M, for every
partition, and 0 once everything is read.

(b) Many prediction logs are written by Kafka Streams or Flink jobs inside
transactions. Under the default ``consumer.isolation_level: read_committed``
the records of an aborted transaction are never counted, an open transaction
holds its records back until it commits, and the offsets taken by transaction
markers (which no poll returns) do not stall the checkpoint: the stored next
offset reaches the partition's end. A ``driftline run`` SIGKILLed while
transactions are committed and aborted stores exactly the results of the
committed records alone, consumed without transactions.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry

from monitor.config.service import ServiceConfig
from monitor.metrics import Metrics
from monitor.service.run import load_runtimes
from monitor.store import Store
from monitor.streaming.ingest import Ingestor
from tests.servers import unique_name
from tests.service.harness import (
    PARTITIONS,
    MonitorPool,
    Names,
    assert_same_results,
    create_topics,
    opened,
    produce,
    reference_results,
    snapshot,
    store_reference,
    stored_offsets,
    summaries,
    wait_until,
    write_config,
)
from tests.service.streams import Stream

pytestmark = pytest.mark.integration


def end_offsets(bootstrap: str, topic: str, *, committed_only: bool = True) -> dict[int, int]:
    """``{partition: end offset}`` as a separate client sees it (last stable offset by default)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed" if committed_only else "read_uncommitted",
    )
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return {tp.partition: offset for tp, offset in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def transactional_producer(bootstrap: str) -> KafkaProducer:
    """A producer with a transactional id of its own, its transactions initialised."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        transactional_id=unique_name("upstream"),
        enable_idempotence=True,
        acks="all",
    )
    producer.init_transactions()
    return producer


def send_in_transaction(
    producer: KafkaProducer,
    topic: str,
    records: Sequence[tuple[bytes, bytes]],
    *,
    commit: bool,
    partition: int | None = None,
) -> None:
    """Send ``records`` in one transaction and commit or abort it.

    The records are flushed first: an abort drops the batches not yet sent, and
    the test needs aborted records that are in the log.
    """
    producer.begin_transaction()
    for key, value in records:
        producer.send(topic, key=key, value=value, partition=partition)
    producer.flush()
    if commit:
        producer.commit_transaction()
    else:
        producer.abort_transaction()


@contextmanager
def ingestor_on(config_path: Path) -> Iterator[tuple[Ingestor, Metrics, Store]]:
    """An in-process :class:`Ingestor` (and its metrics and store) for the config's model."""
    config = ServiceConfig.load(config_path)
    store = Store.connect(config.database_url())
    metrics = Metrics(CollectorRegistry())
    ingestor = Ingestor(config, store, load_runtimes(config, store), metrics)
    try:
        yield ingestor, metrics, store
    finally:
        ingestor.close()
        store.close()


def lag_gauge(metrics: Metrics, topic: str, partition: int) -> float | None:
    """The ``driftline_consumer_lag_records`` sample of one partition (None if never set)."""
    value: float | None = metrics.registry.get_sample_value(
        "driftline_consumer_lag_records", {"topic": topic, "partition": str(partition)}
    )
    return value


def counted(metrics: Metrics, model: str) -> float:
    """``driftline_records_total`` of ``model`` (0 before the first record)."""
    value = metrics.registry.get_sample_value("driftline_records_total", {"model": model})
    return value or 0.0


def poll_until(ingestor: Ingestor, condition: object, timeout: float = 30.0) -> None:
    """Poll (and checkpoint) until ``condition()`` holds."""
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, (
            "condition not reached while polling: assigned "
            f"{sorted((tp.topic, tp.partition) for tp in ingestor.consumer.assignment())}, "
            f"positions { {str(tp): ingestor._position(tp) for tp in ingestor.states} }, "
            f"highwater { {str(tp): ingestor._highwater(tp) for tp in ingestor.states} }"
        )
        ingestor.poll_once(timeout_ms=100)


def checkpoint_and_read(ingestor: Ingestor, store: Store, group: str, topic: str) -> dict[int, int]:
    """Checkpoint (as the ingest loop does, with lag and heartbeats) and return stored offsets."""
    ingestor.checkpoint(heartbeat=True)
    return stored_offsets(store, group, topic)


# --- (a) lag --------------------------------------------------------------------------------


def test_lag_is_produced_minus_consumed_per_partition(kafka_broker, tmp_path: Path) -> None:
    bootstrap = kafka_broker.bootstrap
    stream = Stream(model="credit", windows=2, per_window=200, drift_from=9)
    names = Names.fresh(stream.model)
    create_topics(bootstrap, [names.predictions, names.labels, names.dead_letter])
    records = stream.records(0)
    produced = {0: 70, 1: 25, 2: 0, 3: 40}  # N per partition
    offset = 0
    for partition, n in produced.items():
        client = KafkaProducer(bootstrap_servers=bootstrap)
        for key, value in records[offset : offset + n]:
            client.send(names.predictions, key=key, value=value, partition=partition)
        client.flush()
        client.close()
        offset += n
    url = f"sqlite:///{tmp_path / 'lag.db'}"
    group = unique_name("lag")
    path = write_config(
        tmp_path / "lag.yaml",
        bootstrap=bootstrap,
        names=names,
        group=group,
        database_url=url,
        consumer={"max_poll_records": 15, "checkpoint_interval_s": 3600},
    )
    store_reference(url, path, stream)
    with ingestor_on(path) as (ingestor, metrics, store):
        poll_until(ingestor, lambda: counted(metrics, stream.model) >= 50)
        consumed = checkpoint_and_read(ingestor, store, group, names.predictions)
        assert sum(consumed.values()) == counted(metrics, stream.model)  # M per partition
        assert any(0 < consumed[p] < n for p, n in produced.items()), consumed  # mid-way
        for partition, n in produced.items():
            assert lag_gauge(metrics, names.predictions, partition) == n - consumed[partition]

        total = sum(produced.values())
        poll_until(ingestor, lambda: counted(metrics, stream.model) >= total)
        consumed = checkpoint_and_read(ingestor, store, group, names.predictions)
        assert consumed == produced
        assert [lag_gauge(metrics, names.predictions, p) for p in produced] == [0, 0, 0, 0]

        more = stream.records(1)[:9]
        produce(bootstrap, names.predictions, more)  # keyed: spread over partitions
        ends = end_offsets(bootstrap, names.predictions)
        assert sum(ends.values()) == total + len(more)
        checkpoint_and_read(ingestor, store, group, names.predictions)  # nothing polled yet
        lags = {p: lag_gauge(metrics, names.predictions, p) for p in produced}
        assert lags == {p: ends[p] - produced[p] for p in produced}


# --- (b) transactions -----------------------------------------------------------------------


def test_read_committed_counts_committed_records_only_and_offsets_pass_the_markers(
    kafka_broker, tmp_path: Path
) -> None:
    bootstrap = kafka_broker.bootstrap
    stream = Stream(model="credit", windows=2, per_window=200, drift_from=9)
    names = Names.fresh(stream.model)
    create_topics(bootstrap, [names.predictions, names.labels, names.dead_letter])
    records = stream.records(0)
    url = f"sqlite:///{tmp_path / 'txn.db'}"
    group = unique_name("txn")
    path = write_config(
        tmp_path / "txn.yaml",
        bootstrap=bootstrap,
        names=names,
        group=group,
        database_url=url,
        consumer={"checkpoint_interval_s": 3600},
    )
    store_reference(url, path, stream)
    upstream = transactional_producer(bootstrap)
    topic = names.predictions
    send_in_transaction(upstream, topic, records[0:10], commit=True, partition=0)
    send_in_transaction(upstream, topic, records[10:17], commit=False, partition=1)
    send_in_transaction(upstream, topic, records[17:21], commit=True, partition=1)
    other = transactional_producer(bootstrap)
    other.begin_transaction()  # left open: its records must wait
    for key, value in records[21:24]:
        other.send(topic, key=key, value=value, partition=2)
    other.flush()
    uncommitted = end_offsets(bootstrap, topic, committed_only=False)
    assert uncommitted == {0: 11, 1: 13, 2: 3, 3: 0}  # records plus one marker each

    with ingestor_on(path) as (ingestor, metrics, store):
        poll_until(ingestor, lambda: counted(metrics, stream.model) >= 14)
        for _ in range(5):  # more polls: nothing else may be counted
            ingestor.poll_once(timeout_ms=100)
        assert counted(metrics, stream.model) == 14  # 10 + 4: the aborted 7 never
        stored = checkpoint_and_read(ingestor, store, group, topic)
        # Past the commit markers and the aborted records: nothing left to read there.
        assert stored == {0: 11, 1: 13, 2: 0, 3: 0}
        assert [lag_gauge(metrics, topic, p) for p in range(4)] == [0, 0, 0, 0]

        other.commit_transaction()
        poll_until(ingestor, lambda: counted(metrics, stream.model) >= 17)
        stored = checkpoint_and_read(ingestor, store, group, topic)
        assert stored == {0: 11, 1: 13, 2: 4, 3: 0}
        assert counted(metrics, stream.model) == 17
    upstream.close()
    other.close()

    # A restart resumes at the stored offsets: nothing is read, nothing counted twice.
    with ingestor_on(path) as (ingestor, metrics, store):
        for _ in range(10):
            ingestor.poll_once(timeout_ms=100)
        assert counted(metrics, stream.model) == 0
        assert checkpoint_and_read(ingestor, store, group, topic) == {0: 11, 1: 13, 2: 4, 3: 0}


def test_read_uncommitted_counts_aborted_records_too(kafka_broker, tmp_path: Path) -> None:
    bootstrap = kafka_broker.bootstrap
    stream = Stream(model="credit", windows=2, per_window=200, drift_from=9)
    names = Names.fresh(stream.model)
    create_topics(bootstrap, [names.predictions, names.labels, names.dead_letter])
    url = f"sqlite:///{tmp_path / 'dirty.db'}"
    path = write_config(
        tmp_path / "dirty.yaml",
        bootstrap=bootstrap,
        names=names,
        group=unique_name("dirty"),
        database_url=url,
        consumer={"isolation_level": "read_uncommitted"},
    )
    store_reference(url, path, stream)
    upstream = transactional_producer(bootstrap)
    records = stream.records(0)
    send_in_transaction(upstream, names.predictions, records[:6], commit=False, partition=0)
    upstream.close()
    with ingestor_on(path) as (ingestor, metrics, _store):
        poll_until(ingestor, lambda: counted(metrics, stream.model) >= 6)
        assert counted(metrics, stream.model) == 6


def test_sigkill_amid_transactions_stores_the_committed_records_results(
    kafka_broker, tmp_path: Path, monitors: MonitorPool
) -> None:
    bootstrap = kafka_broker.bootstrap
    stream = Stream(model="credit", windows=6, per_window=200, drift_from=3)
    # Aborted records are drifted copies of the same windows: counting them would show.
    aborted = Stream(model="credit", windows=6, per_window=200, drift_from=0, seed=7)
    names = Names.fresh(stream.model)
    plain = Names.fresh(stream.model)  # the committed records alone, without transactions
    create_topics(bootstrap, [names.predictions, names.labels, names.dead_letter])
    create_topics(bootstrap, [plain.predictions, plain.labels, plain.dead_letter])
    url = f"sqlite:///{tmp_path / 'txn-run.db'}"
    group = unique_name("txn-run")
    config = write_config(
        tmp_path / "txn-run.yaml", bootstrap=bootstrap, names=names, group=group, database_url=url
    )
    store_reference(url, config, stream)
    monitor = monitors.new(config, "txn-run").start()
    upstream = transactional_producer(bootstrap)
    for index in range(stream.windows):
        committed = stream.records(index)
        half = len(committed) // 2
        send_in_transaction(upstream, names.predictions, committed[:half], commit=True)
        send_in_transaction(upstream, names.predictions, aborted.records(index), commit=False)
        send_in_transaction(upstream, names.predictions, committed[half:], commit=True)
        produce(bootstrap, plain.predictions, committed)
        if index == 2:  # mid-stream, amid markers and aborted batches, after a checkpoint
            with opened(url) as store:
                wait_until(
                    lambda: sum(stored_offsets(store, group, names.predictions).values()) > 0,
                    60,
                    lambda: f"nothing checkpointed\n{monitors.logs()}",
                )
            monitor.kill()
            monitor.start()
        time.sleep(0.3)
    upstream.close()

    ends = end_offsets(bootstrap, names.predictions)

    def finished() -> bool:
        with opened(url) as store:
            at_end = stored_offsets(store, group, names.predictions) == ends
            starts = [w.window_start for w in summaries(store, stream.model)]
        return at_end and starts == [stream.window_start(i) for i in range(stream.windows - 1)]

    wait_until(finished, 90, lambda: f"not finished\n{monitors.logs()}", interval=0.3)
    assert monitor.stop() == 0, monitors.logs()
    with opened(url) as store:
        results = snapshot(store, stream.model)
    assert [w["rows"] for w in results.values()] == [stream.per_window] * (stream.windows - 1)
    expected = reference_results(tmp_path, bootstrap=bootstrap, names=plain, stream=stream)
    assert_same_results(results, expected)
