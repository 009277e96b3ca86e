"""Faults: the broker restarts, the database goes away -- the monitor recovers, loses nothing.

(a) Apache Kafka (its log directory on disk) is SIGKILLed mid-stream and
restarted on the same port; the rest of the stream is produced after the
restart. The running ``driftline run`` must reconnect, rejoin and store
exactly the results of an uninterrupted run. Likewise when the broker is
frozen (SIGSTOP) for twice the session timeout and then resumed.

(b) The PostgreSQL database becomes unreachable mid-stream (the monitor
reaches it through a TCP proxy that the test stops: connections reset, new
ones refused) while records keep arriving. The monitor must stay up, stop
consuming (no Kafka offset committed past what is stored, nothing stored
during the outage), and when the database returns resume and store exactly
the results of an uninterrupted run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy.engine import make_url

from tests import servers
from tests.apache_kafka import KafkaFactory, KafkaServer
from tests.servers import unique_name
from tests.service.harness import (
    PARTITIONS,
    MonitorPool,
    Names,
    PacedProducer,
    TcpProxy,
    assert_same_results,
    create_topics,
    opened,
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


def chunks_of(stream: Stream, per_window: int = 2) -> list[list[tuple[bytes, bytes]]]:
    records = [r for i in range(stream.windows) for r in stream.records(i)]
    size = stream.per_window // per_window
    return [records[i : i + size] for i in range(0, len(records), size)]


def finished(url: str, group: str, topic: str, stream: Stream) -> bool:
    """Every record checkpointed and every window but the last evaluated."""
    with opened(url) as store:
        consumed = sum(stored_offsets(store, group, topic).values())
        starts = [w.window_start for w in summaries(store, stream.model)]
    expected = [stream.window_start(i) for i in range(stream.windows - 1)]
    return consumed == stream.windows * stream.per_window and starts == expected


# --- (a) broker restart and freeze ---


def survive_broker_outage(
    broker: KafkaServer,
    outage: Callable[[], None],
    stream: Stream,
    tmp_path: Path,
    monitors: MonitorPool,
) -> None:
    """Stream half the records, run ``outage`` mid-stream, stream the rest; assert nothing is lost.

    The running ``driftline run`` must stay up, store one window per produced
    window with every record, and exactly the results of an uninterrupted run.
    """
    bootstrap = broker.bootstrap
    names = Names.fresh(stream.model)
    create_topics(bootstrap, [names.predictions, names.labels, names.dead_letter])
    url = f"sqlite:///{tmp_path / 'outage.db'}"
    group = unique_name("outage")
    config = write_config(
        tmp_path / "outage.yaml", bootstrap=bootstrap, names=names, group=group, database_url=url
    )
    store_reference(url, config, stream)
    chunks = chunks_of(stream)
    half = len(chunks) // 2
    monitor = monitors.new(config, "outage").start()
    PacedProducer(bootstrap, names.predictions, chunks[:half], 0.2).start().join(60)
    with opened(url) as store:
        wait_until(
            lambda: len(summaries(store, stream.model)) >= 2,
            60,
            lambda: f"nothing evaluated before the outage\n{monitors.logs()}",
            interval=0.2,
        )
        before = sum(stored_offsets(store, group, names.predictions).values())
    assert before < stream.windows * stream.per_window

    outage()
    assert monitor.alive, monitors.logs()
    PacedProducer(bootstrap, names.predictions, chunks[half:], 0.2).start().join(60)
    wait_until(
        lambda: finished(url, group, names.predictions, stream),
        90,
        lambda: f"the monitor did not recover from the outage\n{monitors.logs()}",
        interval=0.3,
    )
    assert monitor.alive, monitors.logs()
    assert monitor.stop() == 0, monitors.logs()
    with opened(url) as store:
        results = snapshot(store, stream.model)
    assert [w["rows"] for w in results.values()] == [stream.per_window] * (stream.windows - 1)
    expected = reference_results(tmp_path, bootstrap=bootstrap, names=names, stream=stream)
    assert_same_results(results, expected)


def test_broker_restart_mid_stream_loses_nothing(
    kafka_factory: KafkaFactory, tmp_path: Path, monitors: MonitorPool
) -> None:
    """SIGKILL the broker (its log directory stays, as after a host crash), restart it."""
    broker = kafka_factory()

    def crash_and_restart() -> None:
        broker.kill()
        time.sleep(1.5)
        broker.start()

    stream = Stream(model="credit", windows=10, per_window=200, drift_from=4)
    survive_broker_outage(broker, crash_and_restart, stream, tmp_path, monitors)


def test_broker_freeze_mid_stream_loses_nothing(
    kafka_factory: KafkaFactory, tmp_path: Path, monitors: MonitorPool
) -> None:
    """The broker stops answering (SIGSTOP) for longer than the session timeout, then resumes."""
    broker = kafka_factory()

    def freeze() -> None:
        with broker.frozen():
            time.sleep(4)  # twice the session timeout: the group coordinator is gone meanwhile

    stream = Stream(model="credit", windows=8, per_window=200, drift_from=4)
    survive_broker_outage(broker, freeze, stream, tmp_path, monitors)


# --- (b) database outage ---


def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int | None]:
    """The offsets ``group`` committed to Kafka (read without joining the group)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)}
    finally:
        consumer.close(autocommit=False)


def test_database_outage_pauses_consumption_and_loses_nothing(
    kafka_broker, postgres_url: str, tmp_path: Path, monitors: MonitorPool
) -> None:
    bootstrap = kafka_broker.bootstrap
    stream = Stream(model=unique_name("credit"), windows=10, per_window=200, drift_from=4)
    names = Names.fresh(stream.model)
    create_topics(bootstrap, [names.predictions, names.labels])
    target = make_url(postgres_url)
    proxy = TcpProxy(target.host or servers.LOCALHOST, target.port or 5432).start()
    try:
        proxied = target.set(port=proxy.port).render_as_string(hide_password=False)
        group = unique_name("outage")
        config = write_config(
            tmp_path / "outage.yaml",
            bootstrap=bootstrap,
            names=names,
            group=group,
            database_url=proxied,
        )
        store_reference(postgres_url, config, stream)
        chunks = chunks_of(stream)
        total = stream.windows * stream.per_window
        monitor = monitors.new(config, "outage").start()
        outage: dict[str, object] = {}

        def cut_database(index: int) -> None:
            if index == 6:  # the stream goes on during the outage
                proxy.stop()
                outage["at"] = time.monotonic()

        with opened(postgres_url) as store:  # direct, not through the proxy

            def consumed() -> dict[int, int]:
                return stored_offsets(store, group, names.predictions)

            wait_until(
                lambda: f"assigned {names.predictions}/" in monitor.log(),
                60,
                lambda: f"the monitor did not start\n{monitors.logs()}",
            )
            paced = PacedProducer(
                bootstrap, names.predictions, chunks, 0.25, before_chunk=cut_database
            ).start()
            try:
                wait_until(lambda: "at" in outage, 30, "the outage did not start")
                time.sleep(0.5)  # a checkpoint in flight at the cut has failed by now
                during = consumed()
                assert sum(during.values()) < total
                # Eight seconds without the database while records keep arriving.
                for _ in range(16):
                    time.sleep(0.5)
                    assert monitor.alive, f"the monitor died in the outage\n{monitors.logs()}"
                    # Nothing stored, and Kafka's committed offsets never pass the stored ones.
                    assert consumed() == during
                    committed = committed_offsets(bootstrap, group, names.predictions)
                    assert all((committed[p] or 0) <= during.get(p, 0) for p in committed), (
                        committed,
                        during,
                    )
                assert "consumption paused" in monitor.log(), monitors.logs()
            finally:
                proxy.start()  # the database is back
                paced.join(60)
            wait_until(
                lambda: finished(postgres_url, group, names.predictions, stream),
                60,
                lambda: f"the monitor did not recover from the outage\n{monitors.logs()}",
                interval=0.3,
            )
            assert "consumption resumed" in monitor.log()
            assert monitor.alive, monitors.logs()
            assert monitor.stop() == 0, monitors.logs()
            results = snapshot(store, stream.model)
    finally:
        proxy.stop()
    assert [w["rows"] for w in results.values()] == [stream.per_window] * (stream.windows - 1)
    expected = reference_results(tmp_path, bootstrap=bootstrap, names=names, stream=stream)
    assert_same_results(results, expected)
